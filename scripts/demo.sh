#!/usr/bin/env bash
# The demo: builds the switch, installs the few tools it needs, and runs `vswitch demo`
# (three VMs as network namespaces on the switch's taps). Run as root. Extra arguments are
# passed on (e.g. --keep to leave it running until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -q -p agent
exec ./target/release/vswitch demo "$@"
