#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/golden tests, and (as root) the live
# tests with real kernels in network namespaces. Installs the system packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    bash scripts/deps.sh
else
    echo "note: not root: live tests will be skipped (they say so)" >&2
fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads=2
