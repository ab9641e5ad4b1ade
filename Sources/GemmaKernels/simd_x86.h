// Shared by the x86-64 kernels (matmul_*_avx2/avx512.c, attention_avx2.c, and the converter's
// quantize_avx2.c): the per-function target attributes of the AVX2 and AVX-512 paths and the
// fixed-order horizontal reductions, written once so that every path sums (and so rounds) alike.
// Private to the C kernels; the SIMD files include it inside their x86-64 guard.
#ifndef GEMMA_SIMD_X86_H
#define GEMMA_SIMD_X86_H

#include <immintrin.h>

// AVX2 + FMA + F16C (gt_cpu_has_avx2 checks all three).
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))
// AVX-512 VNNI with VL but no AVX-VNNI (Ice Lake, Zen 4): the same vpdpbusd on 256-bit registers,
// EVEX-encoded (the AVX-512 tables' single-token products).
#define EVEX_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define EVEX_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
// The same with AVX-VNNI (VEX vpdpbusd, VNNI_DPBUSD). GT_TEST_AVXVNNI_AS_EVEX, for a test build
// only (scripts/test-arm.sh), compiles this path with the EVEX form of the same instruction
// instead, and has gt_cpu_has_avxvnni report AVX-512 VNNI: so a CPU with AVX-512 VNNI but no
// AVX-VNNI (Zen 4, Ice Lake) runs the AVX-VNNI path's code against the scalar reference. Neither
// qemu (10.0) nor these hosts execute the VEX form.
#ifdef GT_TEST_AVXVNNI_AS_EVEX
#define VNNI_FN EVEX_FN
#define VNNI_INLINE EVEX_INLINE
#define VNNI_DPBUSD _mm256_dpbusd_epi32
#else
#define VNNI_FN __attribute__((target("avx2,fma,f16c,avxvnni")))
#define VNNI_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c,avxvnni")))
#define VNNI_DPBUSD _mm256_dpbusd_avx_epi32
#endif
// The AVX-512 matrix products: F, BW, VL, VNNI as gt_cpu_has_avx512vnni requires (no DQ).
#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

// Horizontal sums in a fixed order (AVX2 instructions; they inline into the AVX-512 functions too).
// hsum4: (v0 + v2) + (v1 + v3).
AVX2_INLINE float hsum4(__m128 v) {
    __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
// hsum8: the halves added lane-wise, then hsum4: ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)).
AVX2_INLINE float hsum8(__m256 v) {
    return hsum4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
// hmax8: the same tree with maxps (each max takes the lower lanes as its first operand).
AVX2_INLINE float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
