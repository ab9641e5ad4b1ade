// The single-token K-quant tiles of the x86 paths: 8 rows per tile, 256-bit registers, row-lane
// arithmetic (matmul_kquant_rowlanes.c), bit for bit. Included once per flavour with
//   KS_NAME(x)               the flavour's name for function x
//   KS_INLINE                its target attributes
//   KS_DOT2(u0, s0, u1, s1)  int32 lanes: 4-byte products of u0 . s0 plus those of u1 . s1
//   KS_DOT1(acc, u, s)       acc plus the 4-byte products of u . s (u unsigned, s signed)
//   KS_Q6K_VALUES(ql0, ql1, qh, c)  the six-bit values of block c (q6k_values_x86 or faster)
// (matmul_kquant_avx512.c: `vpdpbusd` with EVEX; matmul_kquant_avx2.c: AVX2 and AVX-VNNI).
#ifndef GEMMA_MATMUL_KQUANT_SINGLE_X86_H
#define GEMMA_MATMUL_KQUANT_SINGLE_X86_H

#include "matmul_kquant_x86.h"

// ---- single tokens: 8 rows per tile, 256-bit, each row read front to back ----
// 16 rows read side by side, a few bytes of each per step, defeat the hardware prefetchers:
// the 16-row tile ran a lone token's Q6_K product at half the previous speed from memory. These
// tiles read 8 rows a 32-byte group at a time, make int32 lanes of 4 products each, and then
// add a block's lanes exactly across 4 rows at a time (sum_quads), which leaves the rows' block
// sums in one register's lanes: the row-lane arithmetic of matmul_kquant_rowlanes.c, bit for bit.
enum { q4k_single_ROWS = 8, q6k_single_ROWS = 8 };

// Rows r..r+R-1 of a single-token tile (R <= 8), the rest repeating the last.
AVX2_INLINE void single_rows(const uint8_t *w, size_t rs, size_t r, int R, const uint8_t **wr) {
    for (int i = 0; i < 8; i++) wr[i] = w + (r + (size_t)(i < R ? i : R - 1)) * rs;
}

// The 4 int32 lanes of each 128-bit half of a, b, c, d summed into one lane each: [a b c d] per
// half (what two levels of `vphaddd` give, by unpacks and adds: 7% faster on Zen 4).
AVX2_INLINE __m256i sum_quads(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

AVX2_INLINE void ks_store_rows(float *y, int R, __m256 acc) {
    if (R == 8) _mm256_storeu_ps(y, acc);
    else _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32(R), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), acc);
}

#endif  // GEMMA_MATMUL_KQUANT_SINGLE_X86_H

// Q4_K, one token, rows r..r+R-1 (R <= 8; the rest repeat the last row). Rows in pairs, one per
// 128-bit half (bytes 0..15 and 16..31 of a nibble group in two registers); sum_quads turns the
// 4 pairs' lanes into the 8 rows' block sums in the order [r0 r2 r4 r6 | r1 r3 r5 r7], the
// scales are decoded in that order, and rows are put back in order only at the store.
KS_INLINE void KS_NAME(q4k_single)(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, float *y, size_t r, int R) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *wr[8];
    single_rows(w, rs, r, R, wr);
    // The rows in the block sums' lane order (sum_quads): [r0 r2 r4 r6 | r1 r3 r5 r7].
    const uint8_t *const wp[8] = { wr[0], wr[2], wr[4], wr[6], wr[1], wr[3], wr[5], wr[7] };
    const uint8_t *pf = w + (r + 8) * rs;  // the next tile's rows, one super-block's share per step
    const size_t pf_step = 8 * GT_Q4K_BLOCK_BYTES;
    __m256 acc = _mm256_setzero_ps();
    const int8_t *aq = gt_act_q(act);
    const float *ad = gt_act_d(act, nb);
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q4K_BLOCK_BYTES;
        for (size_t l = 0; l < pf_step; l += 64) __builtin_prefetch(pf + s * pf_step + l, 0, 2);  // into L2
        // ds[j] = d * sc_j and ms[j] = dmin * m_j / 2 of the 8 rows, in the block sums' row order.
        __m256 ds[8], ms[8];
        q4k_scales8(wp, off, ds, ms);
        KQ_UNROLL8 for (int g = 0; g < 4; g++) {
            __m256i v0[4], v1[4];
            KQ_UNROLL8 for (int p = 0; p < 4; p++) {
                const uint8_t *qa = wr[2 * p] + off + 16 + 32 * g, *qb = wr[2 * p + 1] + off + 16 + 32 * g;
                v0[p] = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)qa), _mm_loadu_si128((const __m128i *)qb));
                v1[p] = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)(qa + 16)),
                                          _mm_loadu_si128((const __m128i *)(qb + 16)));
            }
            KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h;
                const size_t b = 8 * s + (size_t)j;
                const int8_t *x = aq + b * GT_BLOCK;
                const __m256i a0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x));
                const __m256i a1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x + 16)));
                __m256i L[4];
                KQ_UNROLL8 for (int p = 0; p < 4; p++) {
                    const __m256i w0 = _mm256_and_si256(h ? _mm256_srli_epi16(v0[p], 4) : v0[p], m4);
                    const __m256i w1 = _mm256_and_si256(h ? _mm256_srli_epi16(v1[p], 4) : v1[p], m4);
                    L[p] = KS_DOT2(w0, a0, w1, a1);
                }
                // Whole block sums, rows [r0 r2 r4 r6 | r1 r3 r5 r7].
                const __m256i S = sum_quads(L[0], L[1], L[2], L[3]);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S), _mm256_mul_ps(ds[j], _mm256_set1_ps(ad[b])), acc);
            }
        }
        float am[8];
        q4k_min_inputs_x86(act, nb, 8 * s, am);
        KQ_UNROLL8 for (int j = 0; j < 8; j++) acc = _mm256_fmadd_ps(ms[j], _mm256_set1_ps(am[j]), acc);
    }
    acc = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    ks_store_rows(y + r, R, acc);
}

// Q6_K, one token, rows r..r+R-1 (R <= 8): one row per register, lanes 0..3 the block's first
// sub-block (4 products each, started from -32 x their inputs' sum), lanes 4..7 the second;
// sum_quads gives [rows 0..3 of sub-block 2i | of 2i + 1] from 4 rows, and two such registers
// make the 8 rows' sums of each sub-block.
KS_INLINE void KS_NAME(q6k_single)(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, float *y, size_t r, int R) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m256i zero = _mm256_setzero_si256(), k32 = _mm256_set1_epi8(32);
    const uint8_t *wr[8];
    single_rows(w, rs, r, R, wr);
    const uint8_t *pf = w + (r + 8) * rs;  // the next tile's rows, one super-block's share per step
    const size_t pf_step = 8 * GT_Q6K_BLOCK_BYTES;
    __m256 acc = _mm256_setzero_ps();
    const int8_t *aq = gt_act_q(act);
    const float *ad = gt_act_d(act, nb);
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q6K_BLOCK_BYTES;
        for (size_t l = 0; l < pf_step; l += 64) __builtin_prefetch(pf + s * pf_step + l, 0, 2);  // into L2
        __m256 ds[16];  // d * sc[k] of the 8 rows, k = 0..15
        q6k_scales8(wr, off, ds);
        KQ_UNROLL8 for (int h = 0; h < 2; h++) {
            // The half's 4 blocks, 4 rows at a time: each row's ql, ql + 32 and qh loaded once.
            __m256i S[2][4];  // S[quad][c]: [rows of the quad, first 16 | second 16]
            KQ_UNROLL8 for (int quad = 0; quad < 2; quad++) {
                __m256i ql0[4], ql1[4], qh[4];
                KQ_UNROLL8 for (int i = 0; i < 4; i++) {
                    const uint8_t *p = wr[4 * quad + i] + off;
                    ql0[i] = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
                    ql1[i] = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
                    qh[i] = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
                }
                KQ_UNROLL8 for (int c = 0; c < 4; c++) {
                    const __m256i av = _mm256_loadu_si256((const __m256i *)(aq + (8 * s + 4 * (size_t)h + (size_t)c) * GT_BLOCK));
                    const __m256i start = _mm256_sub_epi32(zero, KS_DOT1(zero, k32, av));
                    __m256i L[4];
                    KQ_UNROLL8 for (int i = 0; i < 4; i++)
                        L[i] = KS_DOT1(start, KS_Q6K_VALUES(ql0[i], ql1[i], qh[i], c), av);
                    S[quad][c] = sum_quads(L[0], L[1], L[2], L[3]);
                }
            }
            KQ_UNROLL8 for (int c = 0; c < 4; c++) {
                const int bi = 4 * h + c;
                const __m256 f0 = _mm256_cvtepi32_ps(_mm256_permute2x128_si256(S[0][c], S[1][c], 0x20));
                const __m256 f1 = _mm256_cvtepi32_ps(_mm256_permute2x128_si256(S[0][c], S[1][c], 0x31));
                const __m256 adb = _mm256_set1_ps(ad[8 * s + (size_t)bi]);
                acc = _mm256_fmadd_ps(f0, _mm256_mul_ps(ds[2 * bi], adb), acc);
                acc = _mm256_fmadd_ps(f1, _mm256_mul_ps(ds[2 * bi + 1], adb), acc);
            }
        }
    }
    ks_store_rows(y + r, R, acc);
}
