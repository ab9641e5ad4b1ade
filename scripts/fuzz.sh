#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for SECONDS (default 20) on a scratch copy
# of its seed corpus (fuzz/corpus/<target>; the committed corpus is never modified).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: modelfile safetensors gguf tokenizer chat spmodel schema
#
# Environment: FUZZ_WORK=DIR  scratch folder (default: a new mktemp folder, kept for inspection)
#              FUZZ_SKIP_BUILD=1  use the existing fuzz/.build
#              FUZZ_ARGS="..."    extra libFuzzer flags (e.g. -jobs=2 -workers=2)
# Prints executions and exec/s per target; exits non-zero if any target crashed, naming the
# crash file (reproduce: fuzz/.build/release/fuzz-<target> <crash file>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(modelfile safetensors gguf tokenizer chat spmodel schema)
export PATH="/opt/swift/usr/bin:$PATH"

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    # -sanitize=fuzzer,address instruments the Swift code (and links libFuzzer and ASan);
    # -Xcc -fsanitize=... does the same for the C kernels; -enable-testing lets the targets
    # @testable-import the converter's internal readers; -parse-as-library because the targets'
    # entry points are @main types (see fuzz/Sources/FuzzSupport).
    (cd fuzz && nice -n 10 swift build -c release \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing \
        -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -v "Cannot export local symbol" ) || exit 1
fi
bin="$root/fuzz/.build/release"

work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gemma-fuzz.XXXXXX")}
mkdir -p "$work"
# Swift's crash handler would fight ASan over a crashing process; libFuzzer reports instead.
export SWIFT_BACKTRACE=enable=no
export GEMMA_FUZZ_ROOT="$root"

failed=0
summary=()
for t in "${targets[@]}"; do
    [ -x "$bin/fuzz-$t" ] || { echo "error: no fuzz target $t" >&2; exit 2; }
    dir="$work/$t"
    rm -rf "$dir"; mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -R "fuzz/corpus/$t/." "$dir/corpus/"
    echo "== fuzz-$t: ${seconds}s (log: $dir/log)"
    status=0
    # shellcheck disable=SC2086
    nice -n 10 "$bin/fuzz-$t" "$dir/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" ${FUZZ_ARGS:-} >"$dir/log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    crashes=$(find "$dir/artifacts" -type f | sort)
    line="fuzz-$t: ${execs:-?} executions, ${rate:-?} exec/s, corpus $(ls "$dir/corpus" | wc -l) inputs"
    if [ "$status" -ne 0 ] || [ -n "$crashes" ]; then
        failed=1
        line="$line, FAILED (exit $status): ${crashes:-see $dir/log}"
        grep -m1 -A3 "invariant violated\|ERROR: \|Fatal error\|SUMMARY" "$dir/log" | sed 's/^/    /' || true
    fi
    echo "$line"
    summary+=("$line")
done
echo
echo "fuzz summary ($work):"
printf '  %s\n' "${summary[@]}"
exit $failed
