#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/golden tests, and (as root) the live
# tests with real kernels in network namespaces. Installs the system packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    bash scripts/deps.sh
    # QEMU and the real-guest images (cached: ~1 min the first time, then well under 1 s)
    echo "== guest images"
    bash guests/build.sh
else
    echo "note: not root: live tests will be skipped (they say so)" >&2
    if ! command -v protoc >/dev/null; then
        echo "protoc is missing: the agent (its etcd client) does not build without it;" \
             "run scripts/deps.sh as root or apt-get install protobuf-compiler" >&2
        exit 1
    fi
fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
results=target/tmp/guest-results.txt   # the real-guest tier appends its measurements here
mkdir -p target/tmp
: > "$results"
set +e
cargo test --workspace -- --test-threads=2 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The switches above run the default worker engine (`[switch] io = "auto"`: io_uring where
# the kernel has it). The live suite runs once more on the other engine, poll + read/write.
if [ "$(id -u)" = 0 ]; then
    # (the whole live suite, every agent/tests/live_*.rs: single-host datapath, HA recipes,
    # overlay and cluster labs, captures, and the QEMU guest tier)
    echo "== live tests again with [switch] io = \"epoll\""
    live=()
    for f in agent/tests/live_*.rs; do live+=(--test "$(basename "$f" .rs)"); done
    VSWITCH_TEST_IO=epoll cargo test -p agent "${live[@]}" -- --test-threads=2 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    # and with two workers (multi-queue taps, PACKET_FANOUT)
    echo "== single-host live tests again with [switch] workers = 2"
    VSWITCH_TEST_WORKERS=2 cargo test -p agent --test live_switch --test live_order \
        -- --test-threads=2 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
fi
set -e
# Fuzzing: each cargo-fuzz target for about a minute when a nightly toolchain and cargo-fuzz
# are installed (scripts/fuzz.sh says why it skips otherwise); a crash fails the run.
echo "== fuzz"
fuzz_rc=0
bash scripts/fuzz.sh || fuzz_rc=1
[ "$rc" -eq 0 ] && rc=$fuzz_rc
if [ -s "$results" ]; then
    echo "== real-guest measurements ($results)"
    cat "$results"
fi
# One total line for the whole run, last (cargo prints one per test binary, the last of
# which is often a doc-test run with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
