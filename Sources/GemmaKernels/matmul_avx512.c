// x86-64 AVX-512 + VNNI kernels for prompt processing (batches of tokens), e.g. Ice Lake,
// Sapphire Rapids, Zen 4/5. Per-function target attributes, chosen at run time (cpuid + XCR0).
//
// Prompt processing is compute-bound: a 512-bit vpdpbusd does the work of two 256-bit ones, so
// a batch tile here handles 4 rows per register where the AVX2 tile handles 2 (q4/q5) or 1 (q8).
// Each row keeps exactly the int32 and f32 lanes of the AVX2 + VNNI tile (matmul_avx2.c): a q4/q5
// row in one 128-bit quarter (its 16 nibble bytes, inputs broadcast to every quarter), a q8 row in
// one 256-bit half; the same block products, the same scale products, the same fused
// multiply-adds and the same final horizontal sums. The results are therefore bit-identical to the
// avx2+vnni path, whose kernels this path uses as they are for single tokens (decoding is
// memory-bound) and for f32 / bf16.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_tiles.h"
#include "simd_x86.h"

// AVX512_FN / AVX512_INLINE and the AVX2 path's horizontal sums hsum4 / hsum8 (so that the last
// additions happen in the same order): simd_x86.h.

// The f16 scales of block `offset` of rows p[0..3], as f32: row i in lanes 4i..4i+3 (QUARTERS)
// or in lanes 8i..8i+7 of two rows (halves: rows p[0], p[1] only).
AVX512_INLINE __m128 load_scales4(const uint8_t *const *p, size_t offset) {
    uint16_t h[4];
    GT_UNROLL for (int i = 0; i < 4; i++) memcpy(&h[i], p[i] + offset, 2);
    return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)h));
}

AVX512_INLINE __m512 spread_quarters(__m128 s) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}

AVX512_INLINE __m512i load_quarters(const uint8_t *const *p, size_t offset) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[0] + offset)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[1] + offset)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[2] + offset)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[3] + offset)), 3);
}

// q5: bit 4 of each element from the rows' qh words into the nibble vectors (see matmul_avx2.c).
AVX512_INLINE void q5_high_bits4(const uint8_t *const *p, size_t offset, __m512i *lo, __m512i *hi) {
    __m512i qh = _mm512_castsi128_si512(_mm_cvtsi32_si128((int)gt_load_u32(p[0] + offset)));
    qh = _mm512_inserti32x4(qh, _mm_cvtsi32_si128((int)gt_load_u32(p[1] + offset)), 1);
    qh = _mm512_inserti32x4(qh, _mm_cvtsi32_si128((int)gt_load_u32(p[2] + offset)), 2);
    qh = _mm512_inserti32x4(qh, _mm_cvtsi32_si128((int)gt_load_u32(p[3] + offset)), 3);
    const __m512i bits = _mm512_set1_epi64((long long)0x8040201008040201ULL);
    const __m512i spread_lo = _mm512_set4_epi64(0x0101010101010101LL, 0, 0x0101010101010101LL, 0);
    const __m512i spread_hi = _mm512_set4_epi64(0x0303030303030303LL, 0x0202020202020202LL,
                                                0x0303030303030303LL, 0x0202020202020202LL);
    const __m512i b4 = _mm512_set1_epi8(0x10);
    __mmask64 l = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, spread_lo), bits);
    __mmask64 h = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, spread_hi), bits);
    *lo = _mm512_or_si512(*lo, _mm512_maskz_mov_epi8(l, b4));
    *hi = _mm512_or_si512(*hi, _mm512_maskz_mov_epi8(h, b4));
}

// q4 / q5: Q row quads (R = 4 Q rows, the last quad padded by repeating the last row) x T tokens.
AVX512_INLINE void q4_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                           float *y, size_t ys, size_t r, const int R, const int T, const int FIVE) {
    const int Q = (R + 3) / 4;
    const size_t nb = cols / GT_BLOCK;
    const size_t block_bytes = FIVE ? GT_Q5_BLOCK_BYTES : GT_Q4_BLOCK_BYTES;
    const size_t nibbles = FIVE ? 6 : 2;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[2][8];
    GT_UNROLL for (int q = 0; q < Q; q++)
        GT_UNROLL for (int t = 0; t < T; t++) acc[q][t] = _mm512_setzero_ps();
    const uint8_t *wr[8];
    GT_UNROLL for (int i = 0; i < 4 * Q; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;
    for (size_t b = 0; b < nb; b++) {
        const size_t off = b * block_bytes;
        __m512 sc[2];
        __m512i lo[2], hi[2];
        GT_UNROLL for (int q = 0; q < Q; q++) {
            sc[q] = spread_quarters(load_scales4(wr + 4 * q, off));
            __m512i v = load_quarters(wr + 4 * q, off + nibbles);
            lo[q] = _mm512_and_si512(v, m4);
            hi[q] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            if (FIVE) q5_high_bits4(wr + 4 * q, off + 2, &lo[q], &hi[q]);
        }
        GT_UNROLL for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * as;
            const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;
            __m512i alo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)aq));
            __m512i ahi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(aq + 16)));
            __m512i corr = _mm512_set1_epi32(gt_act_c(a, nb)[b] * (FIVE ? 2 : 1));
            __m512 ad = _mm512_set1_ps(gt_act_d(a, nb)[b]);
            GT_UNROLL for (int q = 0; q < Q; q++) {
                __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(corr, lo[q], alo), hi[q], ahi);
                acc[q][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sc[q], ad), acc[q][t]);
            }
        }
    }
    GT_UNROLL for (int q = 0; q < Q; q++)
        GT_UNROLL for (int t = 0; t < T; t++) {
            GT_UNROLL for (int i = 0; i < 4; i++) {
                if (4 * q + i >= R) break;
                __m128 quarter = _mm512_extractf32x4_ps(acc[q][t], 0);
                if (i == 1) quarter = _mm512_extractf32x4_ps(acc[q][t], 1);
                if (i == 2) quarter = _mm512_extractf32x4_ps(acc[q][t], 2);
                if (i == 3) quarter = _mm512_extractf32x4_ps(acc[q][t], 3);
                y[t * ys + r + 4 * q + i] = hsum4(quarter);
            }
        }
}

// q8: P row pairs (R = 2 P rows; one row per 256-bit half) x T tokens. vpdpbusd multiplies
// unsigned by signed bytes: the weights go in as w + 128 (w ^ 0x80), and each int32 lane starts
// from -128 x the sum of its 4 inputs (one vpdpbusd of 0x80 bytes per token and block, shared by
// every row), which leaves exactly sum w x a, the AVX2 path's lane.
AVX512_INLINE void q8_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                           float *y, size_t ys, size_t r, const int R, const int T) {
    const int P = (R + 1) / 2;
    const size_t nb = cols / GT_BLOCK;
    __m512 acc[2][8];
    GT_UNROLL for (int p = 0; p < P; p++)
        GT_UNROLL for (int t = 0; t < T; t++) acc[p][t] = _mm512_setzero_ps();
    const uint8_t *wr[4];
    GT_UNROLL for (int i = 0; i < 2 * P; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;
    const __m512i zero = _mm512_setzero_si512(), bias = _mm512_set1_epi8((char)0x80);
    const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (size_t b = 0; b < nb; b++) {
        const size_t off = b * GT_Q8_BLOCK_BYTES;
        __m512 sc[2];
        __m512i wu[2];
        GT_UNROLL for (int p = 0; p < P; p++) {
            uint16_t h0, h1;
            memcpy(&h0, wr[2 * p] + off, 2);
            memcpy(&h1, wr[2 * p + 1] + off, 2);
            __m128 s2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(h0 | (uint32_t)h1 << 16)));
            sc[p] = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(s2));
            __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(wr[2 * p] + off + 2))),
                                           _mm256_loadu_si256((const __m256i *)(wr[2 * p + 1] + off + 2)), 1);
            wu[p] = _mm512_xor_si512(v, bias);
        }
        GT_UNROLL for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * as;
            __m512i aq = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(gt_act_q(a) + b * GT_BLOCK)));
            __m512i start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, aq));
            __m512 ad = _mm512_set1_ps(gt_act_d(a, nb)[b]);
            GT_UNROLL for (int p = 0; p < P; p++) {
                __m512i s = _mm512_dpbusd_epi32(start, wu[p], aq);
                acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sc[p], ad), acc[p][t]);
            }
        }
    }
    GT_UNROLL for (int p = 0; p < P; p++)
        GT_UNROLL for (int t = 0; t < T; t++) {
            y[t * ys + r + 2 * p] = hsum8(_mm512_castps512_ps256(acc[p][t]));
            if (2 * p + 1 < R) y[t * ys + r + 2 * p + 1] = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][t]), 1)));
        }
}

// Single tokens: the 256-bit kernels of matmul_avx2.c, with VEX vpdpbusd where the CPU has
// AVX-VNNI and the EVEX one otherwise (Ice Lake and Zen 4 have AVX-512 VNNI but not AVX-VNNI;
// maddubs + madd there cost one more instruction per block). All give the same results.
static const gt_kernel_table *single_token_table(void) {
    return gt_cpu_has_avxvnni() ? &gt_kernels_avxvnni : &gt_kernels_avx512_single;
}

#define Q4_CALL(R, T) q4_tile(w, rs, cols, a, as, yt, ys, r, R, T, 0)
#define Q5_CALL(R, T) q4_tile(w, rs, cols, a, as, yt, ys, r, R, T, 1)
#define Q8_CALL(R, T) q8_tile(w, rs, cols, a, as, yt, ys, r, R, T)

DEFINE_BATCH_DRIVER(avx512_q4, GT_Q4, Q4_CALL, 8)
DEFINE_BATCH_DRIVER(avx512_q5, GT_Q5, Q5_CALL, 8)
DEFINE_BATCH_DRIVER(avx512_q8, GT_Q8, Q8_CALL, 4)

static void avx512_f32(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    single_token_table()->fn[GT_F32](w, rs, cols, act, as, count, y, ys, r0, r1);
}

static void avx512_bf16(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                        float *y, size_t ys, size_t r0, size_t r1) {
    single_token_table()->fn[GT_BF16](w, rs, cols, act, as, count, y, ys, r0, r1);
}

const gt_kernel_table gt_kernels_avx512vnni = { "avx512+vnni", { avx512_f32, avx512_bf16, avx512_q8, avx512_q4, avx512_q5,
                                                                   gt_q4k_avx512vnni, gt_q6k_avx512vnni } };

#endif
