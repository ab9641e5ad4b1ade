#!/usr/bin/env bash
# Will this model fit in SIZE of memory, and what does it cost when it does not?
#
#   scripts/fit-test.sh [--bin PATH] [-n TOKENS] [--keep-cache] [--llama-bench PATH GGUF] \
#       SIZE MODEL [extra gemma-tiny bench args]
#
# Measures generation (`gemma-tiny bench -p 0 -n TOKENS -r 1`, decode tokens/s) twice, each in a
# fresh memory cgroup of its own: first without a limit, then limited to SIZE (e.g. 1.75G, 1792M,
# 512K or bytes; binary units). Reports both speeds, their ratio, and each cgroup's peak memory
# usage and major page faults. The page cache is dropped before each run (sync; echo 3 >
# /proc/sys/vm/drop_caches) so both start cold; --keep-cache skips that (tests).
# With --llama-bench PATH GGUF, llama.cpp's llama-bench runs the same way on GGUF afterwards.
#
# Needs root and the cgroup memory controller (v1 at /sys/fs/cgroup/memory, or v2). The cgroups
# are made at the top of the hierarchy (gemma-fit-test-PID-N) and removed on exit, also on error
# or Ctrl-C. gemma-tiny is --bin, else $GEMMA_TINY_BIN, else .build/release, else .build/debug.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--bin PATH] [-n TOKENS] [--keep-cache] [--llama-bench PATH GGUF] SIZE MODEL [extra gemma-tiny bench args]" >&2; exit 2; }
fail() { echo "fit-test: error: $*" >&2; exit 1; }

bin="${GEMMA_TINY_BIN:-}"
tokens=32
drop_cache=1
llama_bench="" llama_gguf=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) [ $# -ge 2 ] || usage; bin="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || usage; tokens="$2"; shift 2 ;;
        --keep-cache) drop_cache=0; shift ;;
        --llama-bench) [ $# -ge 3 ] || usage; llama_bench="$2"; llama_gguf="$3"; shift 3 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
size_arg="$1" model="$2"
shift 2
extra=("$@")

# SIZE -> bytes: a number with an optional K/M/G/T suffix (powers of 1024; "GiB", "G" and "GB" alike).
limit=$(echo "$size_arg" | awk '
    match($0, /^[0-9]+(\.[0-9]+)?/) {
        n = substr($0, 1, RLENGTH); unit = toupper(substr($0, RLENGTH + 1)); sub(/I?B$/, "", unit)
        m = (unit == "") ? 1 : (unit == "K") ? 1024 : (unit == "M") ? 1048576 : (unit == "G") ? 1073741824 : (unit == "T") ? 1099511627776 : 0
        if (m > 0) { printf "%.0f\n", n * m; exit }
    }')
[ -n "$limit" ] && [ "$limit" -gt 0 ] || fail "SIZE must be a size like 1.75G, 1792M or 1879048192, got '$size_arg'"
[ -f "$model" ] || fail "no model file at $model"
if [ -z "$bin" ]; then
    for candidate in .build/release/gemma-tiny .build/debug/gemma-tiny; do
        if [ -x "$candidate" ]; then bin="$candidate"; break; fi
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || fail "gemma-tiny not found: build it (swift build -c release), or give --bin PATH or GEMMA_TINY_BIN"
if [ -n "$llama_bench" ]; then
    [ -x "$llama_bench" ] || fail "--llama-bench: $llama_bench is not an executable"
    [ -f "$llama_gguf" ] || fail "--llama-bench: no GGUF file at $llama_gguf"
fi
[ "$(id -u)" -eq 0 ] || fail "needs root (to make memory cgroups and drop the page cache); run it with sudo"

# The cgroup layout: v1 (memory controller mounted on its own) or v2 (unified).
if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    version=1 base=/sys/fs/cgroup/memory
    limit_file=memory.limit_in_bytes peak_file=memory.max_usage_in_bytes
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    version=2 base=/sys/fs/cgroup
    limit_file=memory.max peak_file=memory.peak
    grep -qw memory "$base/cgroup.subtree_control" || echo +memory > "$base/cgroup.subtree_control" \
        || fail "cannot enable the memory controller in $base/cgroup.subtree_control"
else
    fail "no cgroup memory controller found (neither /sys/fs/cgroup/memory nor cgroup v2 with memory)"
fi

created=()
temp_files=()
cleanup() {
    local cg pid
    rm -f "${temp_files[@]}"
    for cg in "${created[@]}"; do
        [ -d "$cg" ] || continue
        # Only what this script started can be in there.
        while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$cg/cgroup.procs"
        for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
        [ -d "$cg" ] && echo "fit-test: warning: could not remove $cg" >&2
    done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_cgroup LIMIT_BYTES|"": a new cgroup, its path in $new_cg (no subshell: `created` must see it).
make_cgroup() {
    new_cg="$base/gemma-fit-test-$$-${#created[@]}"
    mkdir "$new_cg" || fail "cannot create cgroup $new_cg"
    created+=("$new_cg")
    if [ -n "$1" ]; then
        echo "$1" > "$new_cg/$limit_file" || fail "cannot set $new_cg/$limit_file to $1"
        # No swap either, so the limit means what it says (only where swap is accounted).
        if [ $version = 1 ]; then echo "$1" > "$new_cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
        else echo 0 > "$new_cg/memory.swap.max" 2>/dev/null || true; fi
    fi
}

stat_value() {  # stat_value CGROUP KEY: a memory.stat entry, or "n/a"
    awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print "n/a" }' "$1/memory.stat" 2>/dev/null || echo n/a
}

speed() {  # tokens/s with two decimals, or the word as it is ("failed")
    case "$1" in ''|*[!0-9.eE+-]*) echo "${1:-n/a}" ;; *) awk -v v="$1" 'BEGIN { printf "%.2f", v }' ;; esac
}

human() {  # bytes -> "1.75 GiB"
    case "$1" in ''|*[!0-9]*) echo "${1:-n/a}"; return ;; esac
    awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ } printf(i == 1 ? "%d %s" : "%.2f %s", b, u[i]) }'
}

# run_in LABEL LIMIT KIND: runs one measurement in a new cgroup; sets the globals ts, peak, majflt.
run_in() {
    local label="$1" lim="$2" kind="$3" cg out err
    make_cgroup "$lim"
    cg=$new_cg
    if [ $drop_cache = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
    out=$(mktemp) err=$(mktemp)
    temp_files+=("$out" "$err")
    local cmd
    if [ "$kind" = gemma ]; then
        cmd=("$bin" bench -m "$model" -p 0 -n "$tokens" -r 1 --no-bandwidth -o json "${extra[@]}")
    else
        cmd=("$llama_bench" -m "$llama_gguf" -p 0 -n "$tokens" -r 1 -o json)
    fi
    echo "fit-test: [$label] ${cmd[*]}" >&2
    local status=0
    # In the background and waited for, so that a TERM or INT reaches the traps at once.
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' fit-test "$cg" "${cmd[@]}" > "$out" 2> "$err" &
    wait $! || status=$?
    # gemma-tiny's memory warning, if it printed one.
    grep -m1 '^warning:' "$err" | sed "s/^/fit-test: [$label] /" >&2 || true
    if [ $status -ne 0 ]; then
        echo "fit-test: [$label] exited with status $status; its stderr:" >&2
        tail -n 20 "$err" >&2
        [ $status -eq 137 ] && echo "fit-test: [$label] killed (SIGKILL): the out-of-memory killer, most likely" >&2
        ts="failed"
    elif [ "$kind" = gemma ]; then
        ts=$(grep -o '"median_ts" *: *[0-9.eE+-]*' "$out" | head -n1 | sed 's/.*: *//')
    else
        ts=$(grep -o '"avg_ts" *: *[0-9.eE+-]*' "$out" | head -n1 | sed 's/.*: *//')
    fi
    [ -n "$ts" ] || { ts="failed"; echo "fit-test: [$label] no tokens/s in the output:" >&2; head -c 2000 "$out" >&2; }
    peak=$(cat "$cg/$peak_file" 2>/dev/null || echo n/a)
    if [ $version = 1 ]; then majflt=$(stat_value "$cg" total_pgmajfault); else majflt=$(stat_value "$cg" pgmajfault); fi
    rm -f "$out" "$err"
}

report_pair() {  # report_pair NAME: runs unconstrained and limited, prints the table rows
    local name="$1" kind="$2" free_ts free_peak free_flt
    run_in "$name, no limit" "" "$kind"
    free_ts=$ts free_peak=$peak free_flt=$majflt
    run_in "$name, $size_arg" "$limit" "$kind"
    printf '%-12s %-14s %12s %14s %14s\n' "$name" "no limit" "$(speed "$free_ts")" "$(human "$free_peak")" "$free_flt"
    printf '%-12s %-14s %12s %14s %14s\n' "$name" "$size_arg" "$(speed "$ts")" "$(human "$peak")" "$majflt"
    if [[ "$free_ts" =~ ^[0-9.eE+-]+$ && "$ts" =~ ^[0-9.eE+-]+$ ]]; then
        awk -v a="$ts" -v b="$free_ts" -v n="$name" -v s="$size_arg" 'BEGIN {
            if (b <= 0 || a <= 0) exit
            printf "%s: %s runs at %.3fx the unconstrained speed", n, s, a / b
            if (a < b) printf " (%.1fx slower)", b / a
            printf "\n" }'
    fi
}

echo "fit-test: $(basename "$model") ($(human "$(stat -c %s "$model")")), tg$tokens, cgroup v$version, limit $size_arg = $limit bytes" >&2
printf '%-12s %-14s %12s %14s %14s\n' "runtime" "memory limit" "tg$tokens t/s" "peak usage" "major faults"
report_pair gemma-tiny gemma
if [ -n "$llama_bench" ]; then report_pair llama.cpp llama; fi
