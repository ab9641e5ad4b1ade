#!/usr/bin/env bash
# Tests the C matrix-product kernels and the row quantizers on every ISA path, and the worker
# pool's hand-off (pool_sync.c, whose sleep / wake-up must also hold under qemu's emulation of
# ARM's memory ordering), with the plain-C driver kernels-test/main.c:
#   - cross-compiled for AArch64 with aarch64-linux-gnu-gcc -O2 (default -march) and run under
#     qemu-aarch64 with -cpu max (SDOT present: the neon+dotprod path is chosen) and
#     -cpu cortex-a72 (no SDOT: the neon path must be chosen), plus the scalar path on both;
#   - the same AArch64 sources compiled by clang (if it can target aarch64), run under -cpu max;
#   - built natively with gcc and clang (x86-64: every path the CPU has, and the scalar one);
#   - on an x86-64 CPU with AVX-512 VNNI, built again so that the AVX-VNNI path runs too.
# Needs: gcc-aarch64-linux-gnu, qemu-user (Debian/Ubuntu package names). Set
# GEMMA_TINY_SKIP_ARM=1 to skip the AArch64 part on a machine without them.
set -euo pipefail
cd "$(dirname "$0")/.."

out=.build-kernels-test
mkdir -p "$out"
# The kernels (matrix products, attention), the converter's quantizers, and what they call
# (not the rest of the C targets).
srcs=(kernels-test/main.c kernels-test/kquant.c kernels-test/kquant_test.c kernels-test/attention_test.c kernels-test/f16_test.c kernels-test/pool_sync_test.c
      Sources/GemmaKernels/{cpu_features,activations,matmul,matmul_avx2,matmul_avx512,matmul_neon,dot_scalar,convert,dequantize,dequant_k}.c
      Sources/GemmaKernels/matmul_kquant{,_rowlanes,_avx2,_avx512,_neon}.c Sources/GemmaKernels/kquant_scratch.c
      Sources/GemmaKernels/{ops,attention_tiled,attention_avx2,attention_avx512,attention_neon,f16_store,pool_sync}.c
      converter/QuantizeKernels/{quantize,quantize_avx2,quantize_q5,quantize_k,quantize_k_avx2,quantize_k_avx512,widen,gguf_dequant}.c)
# The converter's C reads the runtime's private layout headers (Sources/GemmaKernels/*.h).
inc=(-I Sources/GemmaKernels/include -I converter/QuantizeKernels/include -I Sources/GemmaKernels)
status=0

run() {  # run LABEL COMMAND...: runs a driver, shows its last line, records failure
    local label=$1 start=$SECONDS; shift
    local log="$out/$label.log"
    if "$@" >"$log" 2>&1; then
        echo "ok    $label: $(tail -n 1 "$log") ($((SECONDS - start)) s)"
    else
        echo "FAIL  $label: $(tail -n 1 "$log") ($((SECONDS - start)) s; full output: $log)"
        grep '^FAIL' "$log" | head -n 20 || true
        status=1
    fi
}

# ---- native ----
native=0
for cc in gcc clang; do
    command -v "$cc" >/dev/null || continue
    "$cc" -O2 -Wall -Wno-unused-function "${inc[@]}" "${srcs[@]}" -pthread -lm -o "$out/native-$cc"
    native=1
    run "native-$cc" "$out/native-$cc"
    run "native-$cc-forced-scalar" env GEMMA_TINY_KERNELS=scalar "$out/native-$cc" --expect-isa scalar --quick
done
[ "$native" = 1 ] || { echo "error: no native C compiler (gcc or clang) found"; exit 1; }

# The AVX-VNNI path (Alder Lake, N100, Sapphire Rapids, Zen 5) on a CPU without AVX-VNNI but
# with AVX-512 VNNI (Zen 4, Ice Lake: every CI host seen so far, and qemu runs neither): built
# with that path's vpdpbusd in its EVEX form, the same operation (GT_TEST_AVXVNNI_AS_EVEX,
# simd_x86.h), chosen by name and checked against the scalar reference like every other path.
# A CPU with AVX-VNNI runs the real path in the native builds above.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has_flags() { local f; for f; do grep -qw "$f" <<<"$flags" || return 1; done; }
if [ "$(uname -m)" = x86_64 ] && has_flags avx512f avx512bw avx512vl avx512_vnni; then
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        "$cc" -O2 -Wall -Wno-unused-function -DGT_TEST_AVXVNNI_AS_EVEX "${inc[@]}" "${srcs[@]}" -pthread -lm \
            -o "$out/native-$cc-avxvnni-as-evex"
        run "native-$cc-avxvnni-as-evex" env GEMMA_TINY_KERNELS=avx2+vnni "$out/native-$cc-avxvnni-as-evex" --expect-isa avx2+vnni
    done
else
    echo "skip  native-avxvnni-as-evex: no AVX-512 VNNI on this CPU$(has_flags avx_vnni && echo ' (it has AVX-VNNI: the native runs above test that path)')"
fi

# ---- AArch64 under qemu ----
if [ "${GEMMA_TINY_SKIP_ARM:-0}" = 1 ]; then
    echo "skipping the AArch64 tests (GEMMA_TINY_SKIP_ARM=1)"
    exit $status
fi
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (apt-get install gcc-aarch64-linux-gnu qemu-user), or set GEMMA_TINY_SKIP_ARM=1"
        exit 1
    }
done
sysroot=/usr/aarch64-linux-gnu
qemu=(qemu-aarch64 -L "$sysroot")

aarch64-linux-gnu-gcc -O2 -Wall -Wno-unused-function "${inc[@]}" "${srcs[@]}" -pthread -lm -o "$out/arm-gcc"
run arm-gcc-cpu-max "${qemu[@]}" -cpu max "$out/arm-gcc" --expect-isa neon+dotprod
run arm-gcc-cortex-a72 "${qemu[@]}" -cpu cortex-a72 "$out/arm-gcc" --expect-isa neon
run arm-gcc-cpu-max-forced-neon env GEMMA_TINY_KERNELS=neon "${qemu[@]}" -cpu max "$out/arm-gcc" --expect-isa neon --quick
run arm-gcc-forced-scalar env GEMMA_TINY_KERNELS=scalar "${qemu[@]}" -cpu cortex-a72 "$out/arm-gcc" --expect-isa scalar --quick

# clang (the compiler SwiftPM uses on an ARM board): compile with it, link with the gcc cross
# toolchain's libc.
if command -v clang >/dev/null && clang --target=aarch64-linux-gnu -print-targets 2>/dev/null | grep -q aarch64; then
    objs=()
    for f in "${srcs[@]}"; do
        o="$out/arm-clang-$(basename "$f" .c).o"
        clang --target=aarch64-linux-gnu -isystem "$sysroot/include" -O2 -Wall -Wno-unused-function "${inc[@]}" -c "$f" -o "$o"
        objs+=("$o")
    done
    aarch64-linux-gnu-gcc "${objs[@]}" -pthread -lm -o "$out/arm-clang"
    run arm-clang-cpu-max "${qemu[@]}" -cpu max "$out/arm-clang" --expect-isa neon+dotprod
    run arm-clang-cortex-a72 "${qemu[@]}" -cpu cortex-a72 "$out/arm-clang" --expect-isa neon --quick
fi

exit $status
