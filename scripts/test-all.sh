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
set -e
# One total line for the whole run (cargo prints one per test binary, the last of which is
# often a doc-test run with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
if [ -s "$results" ]; then
    echo "== real-guest measurements ($results)"
    cat "$results"
fi

# Fuzzing (cargo-fuzz, fuzz/): only with a nightly toolchain and cargo-fuzz already installed
# (this never installs or downloads either). Builds the targets without a sanitizer (they
# are safe Rust: a panic or an abort is the finding) and runs each for a bounded time on its
# corpus (fuzz/corpus/<target>, kept between runs, plus the committed seeds); a crash fails
# the run and leaves its input in fuzz/artifacts/<target>/. The whole step, build included,
# stays within FUZZ_BUDGET seconds (default 300): each target gets its share of what the
# build left, between 20 and 60 s.
echo "== fuzz"
fuzz_rc=0
if ! { command -v rustup >/dev/null && rustup toolchain list 2>/dev/null | grep -q '^nightly'; }; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly), stable only"
elif ! RUSTUP_AUTO_INSTALL=0 cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
else
    budget=${FUZZ_BUDGET:-300}
    t0=$(date +%s)
    targets=$(RUSTUP_AUTO_INSTALL=0 cargo +nightly fuzz list --fuzz-dir fuzz || true)
    if ! RUSTUP_AUTO_INSTALL=0 cargo +nightly fuzz build --fuzz-dir fuzz -O -s none; then
        echo "fuzz: FAILED: the fuzz targets do not build"
        fuzz_rc=1
    else
        n=$(echo "$targets" | wc -w)
        left=$(( budget - ($(date +%s) - t0) ))
        secs=$(( left / (n > 0 ? n : 1) - 5 ))
        [ "$secs" -gt 60 ] && secs=60
        [ "$secs" -lt 20 ] && secs=20
        for t in $targets; do
            mkdir -p "fuzz/corpus/$t"
            flog="target/tmp/fuzz-$t.log"
            if RUSTUP_AUTO_INSTALL=0 cargo +nightly fuzz run --fuzz-dir fuzz -O -s none "$t" \
                "fuzz/corpus/$t" "fuzz/corpus-seed/$t" -- \
                -max_total_time="$secs" -print_final_stats=1 > "$flog" 2>&1; then
                execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$flog")
                rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$flog")
                echo "fuzz: $t: ok, ${execs:-?} executions in ${secs} s (${rate:-?}/s)"
            else
                echo "fuzz: $t: FAILED (crash input in fuzz/artifacts/$t/; log $flog):"
                tail -n 40 "$flog"
                fuzz_rc=1
            fi
        done
    fi
    echo "fuzz: $(( $(date +%s) - t0 )) s in all"
fi
[ "$rc" -eq 0 ] && rc=$fuzz_rc
exit "$rc"
