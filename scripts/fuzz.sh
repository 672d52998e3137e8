#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target in fuzz/ (what scripts/test-all.sh runs).
#
# Only with a nightly toolchain and cargo-fuzz already installed: this never installs or
# downloads either (RUSTUP_AUTO_INSTALL=0); without them it prints why it skips and exits 0.
# Builds the targets without a sanitizer (they are safe Rust: a panic, an abort or a failed
# invariant is the finding, and ASan would cost 3-10x the executions) and runs each on its
# corpus (fuzz/corpus/<target>, kept between runs, plus the committed seeds in
# fuzz/corpus-seed/<target>). A crash fails the script and leaves its input in
# fuzz/artifacts/<target>/. The whole step, build included, stays within FUZZ_BUDGET seconds
# (default 300): each target gets its share of what the build left, between 20 and 60 s.
set -uo pipefail
cd "$(dirname "$0")/.."
export RUSTUP_AUTO_INSTALL=0
if ! { command -v rustup >/dev/null && rustup toolchain list 2>/dev/null | grep -q '^nightly'; }; then
    echo "fuzz: skipped: no rustup nightly toolchain (only stable is guaranteed; rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi
budget=${FUZZ_BUDGET:-300}
t0=$(date +%s)
targets=$(cargo +nightly fuzz list --fuzz-dir fuzz) || { echo "fuzz: FAILED: cargo fuzz list"; exit 1; }
if ! cargo +nightly fuzz build --fuzz-dir fuzz -O -s none; then
    echo "fuzz: FAILED: the fuzz targets do not build"
    exit 1
fi
n=$(echo "$targets" | wc -w)
left=$(( budget - ($(date +%s) - t0) ))
secs=$(( left / (n > 0 ? n : 1) - 5 ))
[ "$secs" -gt 60 ] && secs=60
[ "$secs" -lt 20 ] && secs=20
mkdir -p target/tmp
rc=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    flog="target/tmp/fuzz-$t.log"
    if cargo +nightly fuzz run --fuzz-dir fuzz -O -s none "$t" \
        "fuzz/corpus/$t" "fuzz/corpus-seed/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 > "$flog" 2>&1; then
        execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$flog")
        rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$flog")
        echo "fuzz: $t: ok, ${execs:-?} executions in $secs s (${rate:-?}/s)"
    else
        echo "fuzz: $t: FAILED (crash input in fuzz/artifacts/$t/; log $flog):"
        tail -n 40 "$flog"
        rc=1
    fi
done
echo "fuzz: $(( $(date +%s) - t0 )) s in all"
exit "$rc"
