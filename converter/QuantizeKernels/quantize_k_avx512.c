// x86-64 AVX-512 K-quant quantizers for the converter (GT_Q4K, GT_Q6K): the SIMD body of
// quantize_k_simd.h with 16 lanes (half the instructions of the AVX2 copy), bit-identical to the
// portable reference (quantize_k.c). AVX-512 F only (what every avx512+vnni CPU has); the
// contraction pragmas keep the compiler from fusing multiply-adds (avx512f brings FMA along).
#if defined(__x86_64__) || defined(_M_X64)

#include "kquant_quantize.h"
#include <immintrin.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define KFN __attribute__((target("avx512f,avx2,f16c")))
#define KINLINE static inline __attribute__((always_inline, target("avx512f,avx2,f16c")))
#define KSUFFIX(name) name##_avx512

#define VEC __m512
#define MASK __mmask16
#define LANES 16
#define Q4K_G 1  // vectors searched together: 2 Q4_K super-blocks (measured fastest)
#define Q6K_G 1  // 1 Q6_K super-block (measured fastest)

#define V_SET1(f) _mm512_set1_ps(f)
#define V_ZERO() _mm512_setzero_ps()
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_STORE_INT(p, v) _mm512_storeu_si512((void *)(p), _mm512_cvttps_epi32(v))
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_DIV _mm512_div_ps
#define V_MIN _mm512_min_ps
#define V_MAX _mm512_max_ps
#define V_SQRT _mm512_sqrt_ps
#define V_ROUND(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_ABS(v) _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)))
#define V_NEG(v) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)))
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define V_EQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define V_NE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ)
#define M_AND(m, n) ((__mmask16)((m) & (n)))
#define V_BLEND(a, b, m) _mm512_mask_blend_ps(m, a, b)
#define V_ZERO_IF(v, m) _mm512_maskz_mov_ps((__mmask16)~(m), v)
#define V_KEEP_IF(v, m) _mm512_maskz_mov_ps(m, v)

#include "quantize_k_simd.h"

KQ_ROW(gt_quantize_row_q4k_avx512, q4k_blocks_avx512, Q4K_G, GT_Q4K_BLOCK_BYTES, Q4K_G * LANES / 8)
KQ_ROW(gt_quantize_row_q6k_avx512, q6k_blocks_avx512, Q6K_G, GT_Q6K_BLOCK_BYTES, Q6K_G * LANES / 16)

#endif
