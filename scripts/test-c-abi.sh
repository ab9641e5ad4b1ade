#!/usr/bin/env bash
# Tests of the C library (run by scripts/test.sh after `swift build --build-tests`):
# installs a debug build into a temporary prefix (scripts/build-c-library.sh), checks what the .so
# exports and needs, compiles the header as C99 and C++, builds examples/c against both
# pkg-config files, runs Tests/c-abi/test_c_abi.c under AddressSanitizer (leak checking on), and
# runs examples/python, all against the tiny fixture model; output compared with gemma-tiny's.
# Last line: "c-abi: P passed, F failed".
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gemma-tiny-c-abi.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
pass() { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "not ok - $1"; failed=$((failed + 1)); }
finish() { echo "c-abi: $passed passed, $failed failed"; [ "$failed" = 0 ]; exit; }
# Keeps the known warning of Foundation's static library (mktemp) out of the log.
quiet() { grep -vE "mktemp|createTemporaryFile|_ThreadLocal.swift.o" || true; }

prefix=$work/prefix
if scripts/build-c-library.sh --debug "$prefix" >"$work/build.log" 2>&1; then
    pass "scripts/build-c-library.sh --debug installs into a prefix"
else
    cat "$work/build.log"; fail "scripts/build-c-library.sh"; finish
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
header=$prefix/include/gemma_tiny.h
so=$prefix/lib/libgemmatiny.so

# The exports: exactly the header's functions, and the version script lists the same.
declared=$(sed -nE 's/^[a-z].*[ *](gt_[a-z_]+)\(.*/\1/p' "$header" | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[A-Z]$/ { print $3 }' | sort -u)
mapped=$(sed -nE 's/^ *(gt_[a-z_]+);/\1/p' scripts/c-abi/gemmatiny.map | sort -u)
if [ -n "$declared" ] && [ "$declared" = "$exported" ] && [ "$declared" = "$mapped" ]; then
    pass "libgemmatiny.so exports the header's $(echo "$declared" | wc -l) functions and nothing else"
else
    fail "exports differ: header vs nm -D vs gemmatiny.map"
    diff <(echo "$declared") <(echo "$exported"); diff <(echo "$declared") <(echo "$mapped")
fi
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
extra=$(for lib in $needed; do case $lib in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|libgcc_s.so.1|libstdc++.so.6|libzstd.so.1|ld-linux-*) ;;
    *) echo "$lib" ;; esac; done)
if [ -z "$extra" ]; then pass "libgemmatiny.so needs no Swift library (NEEDED: $needed)"; else fail "libgemmatiny.so needs $extra"; fi

# The header alone: C99 (pedantic, every warning an error) and C++.
if echo '#include <gemma_tiny.h>' | cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c - &&
   echo '#include <gemma_tiny.h>' | c++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ -; then
    pass "gemma_tiny.h compiles as C99 and as C++11"
else
    fail "gemma_tiny.h does not compile cleanly"
fi

# The fixture model and what gemma-tiny says about it.
bin=$(swift build --show-bin-path)
model=$work/tiny.gtm
"$bin/gemma-quantize" fixtures/tiny-gemma -o "$model" --type q8 --no-compress >/dev/null || { fail "gemma-quantize"; finish; }
"$bin/gemma-tiny" tokenize -m "$model" -p "$(printf 'Hello world, h\xc3\xa9llo \xf0\x9f\x98\x80')" | tr -d '[],' >"$work/ids.txt"
"$bin/gemma-tiny" run -m "$model" -p Hello -n 24 --temp 0 --json |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["text"])' >"$work/text.txt"
greedy20=$("$bin/gemma-tiny" run -m "$model" -p Hello -n 20 --temp 0 --json |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["text"])')
expected_example="gemma-tiny $(sed -n 's/^public let gemmaTinyVersion = "\(.*\)"/\1/p' Sources/GemmaTiny/Format/ModelMetadata.swift)
error 3: cannot load the model /no/such/model.gtm: cannot open /no/such/model.gtm: No such file or directory
$greedy20
[stop reason cancelled, 5 prompt tokens, 20 generated]"

# examples/c, as its README builds it, against the .so and against the .a.
check_example() {  # check_example LABEL OUTPUT
    if [ "$2" = "$expected_example" ]; then pass "$1: version, the error, gemma-tiny run's text, stop after 20 pieces"
    else fail "$1 printed:"; echo "$2"; echo "--- expected:"; echo "$expected_example"; fi
}
# shellcheck disable=SC2046
if cc -std=c99 -Wall -Wextra -Werror -pedantic examples/c/example.c $(pkg-config --cflags --libs gemma-tiny) -o "$work/example"; then
    check_example "examples/c (libgemmatiny.so)" "$(LD_LIBRARY_PATH=$prefix/lib "$work/example" "$model" Hello 2>&1)"
else
    fail "examples/c does not build with pkg-config gemma-tiny"
fi
# shellcheck disable=SC2046
if cc -std=c99 -Wall -Wextra -Werror examples/c/example.c $(pkg-config --cflags --libs gemma-tiny-static) \
        -o "$work/example-static" 2>&1 | quiet | grep -v "in function"; [ -x "$work/example-static" ]; then
    check_example "examples/c (libgemmatiny.a)" "$("$work/example-static" "$model" Hello 2>&1)"
else
    fail "examples/c does not link with pkg-config gemma-tiny-static"
fi

# The thorough test, under AddressSanitizer with leak checking.
mkdir -p "$work/tmp"
# shellcheck disable=SC2046
if cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address -fno-omit-frame-pointer Tests/c-abi/test_c_abi.c \
        $(pkg-config --cflags --libs gemma-tiny) -lpthread -lm -o "$work/test_c_abi"; then
    ASAN_OPTIONS=detect_leaks=1 LD_LIBRARY_PATH=$prefix/lib \
        "$work/test_c_abi" "$model" "$work/ids.txt" "$work/text.txt" "$work/tmp" >"$work/test.out" 2>&1
    rc=$?
    grep -E "^not ok|^Bail|^#" "$work/test.out"
    summary=$(grep -E "^c-abi: [0-9]+ passed, [0-9]+ failed" "$work/test.out" | tail -n 1)
    if [ -z "$summary" ] || grep -qE "AddressSanitizer|LeakSanitizer" "$work/test.out"; then
        tail -n 60 "$work/test.out"; fail "Tests/c-abi/test_c_abi.c did not finish cleanly (exit $rc)"
    else
        echo "Tests/c-abi/test_c_abi.c (AddressSanitizer, leaks checked): ${summary#c-abi: }"
        test_failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failed/\1/')
        passed=$((passed + $(echo "$summary" | sed -E 's/c-abi: ([0-9]+) passed.*/\1/')))
        failed=$((failed + test_failed))
        if [ $rc != 0 ] && [ "$test_failed" = 0 ]; then fail "test_c_abi exited with $rc"; fi
    fi
else
    fail "Tests/c-abi/test_c_abi.c does not compile"
fi

# examples/python: ctypes only.
out=$(GEMMA_TINY_LIB=$so python3 examples/python/example.py "$model" Hello 2>&1)
check_example "examples/python" "$out"
finish
