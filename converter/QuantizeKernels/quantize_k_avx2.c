// x86-64 AVX2 K-quant quantizers for the converter (GT_Q4K, GT_Q6K): the SIMD body of
// quantize_k_simd.h with 8 lanes, bit-identical to the portable reference (quantize_k.c).
// Compiled for avx2 + f16c only, not fma, so no multiply-add can be fused.
#if defined(__x86_64__) || defined(_M_X64)

#include "kquant_quantize.h"
#include <immintrin.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define KFN __attribute__((target("avx2,f16c")))
#define KINLINE static inline __attribute__((always_inline, target("avx2,f16c")))
#define KSUFFIX(name) name##_avx2

#define VEC __m256
#define MASK __m256
#define LANES 8
#define Q4K_G 1  // vectors searched together: 1 Q4_K super-block (more only spills: measured slower)
#define Q6K_G 4  // 2 Q6_K super-blocks (measured fastest)

#define V_SET1(f) _mm256_set1_ps(f)
#define V_ZERO() _mm256_setzero_ps()
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_STORE_INT(p, v) _mm256_storeu_si256((__m256i *)(p), _mm256_cvttps_epi32(v))
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_MIN _mm256_min_ps
#define V_MAX _mm256_max_ps
#define V_SQRT _mm256_sqrt_ps
#define V_ROUND(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_ABS(v) _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))
#define V_NEG(v) _mm256_xor_ps(v, _mm256_set1_ps(-0.0f))
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define V_NE(a, b) _mm256_cmp_ps(a, b, _CMP_NEQ_UQ)
#define M_AND _mm256_and_ps
#define V_BLEND(a, b, m) _mm256_blendv_ps(a, b, m)
#define V_ZERO_IF(v, m) _mm256_andnot_ps(m, v)
#define V_KEEP_IF(v, m) _mm256_and_ps(v, m)

#include "quantize_k_simd.h"

KQ_ROW(gt_quantize_row_q4k_avx2, q4k_blocks_avx2, Q4K_G, GT_Q4K_BLOCK_BYTES, Q4K_G * LANES / 8)
KQ_ROW(gt_quantize_row_q6k_avx2, q6k_blocks_avx2, Q6K_G, GT_Q6K_BLOCK_BYTES, Q6K_G * LANES / 16)

#endif
