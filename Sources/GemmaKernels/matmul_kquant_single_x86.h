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

// ---- single tokens: 8 rows per tile, 256-bit, rows read one (pair) after another ----
// A lone token's product reads every weight once, from memory, and its reads must look linear to
// the hardware prefetchers. 16 rows read side by side, a few bytes of each per step, ran Q6_K at
// half speed; 8 rows side by side still read Q6_K 20-40% slower from memory than rows read one
// after another, and Q4_K's 2048 x 2048 product 13% (docs/BENCHMARKS.md, "Session 20"). So a
// tile reads a window of up to 8 super-blocks of one row (Q6_K) or one row pair (Q4_K: a row per
// 128-bit half) front to back, keeps its int32 sums of 4 blocks (sum_quads), and then turns 4
// rows' registers into per-block registers of 4 rows (transpose_quads): the row-lane arithmetic
// of matmul_kquant_rowlanes.c, bit for bit, since integer sums are exact in any order and the
// float steps come in the reference's order.
enum { q4k_single_ROWS = 8, q6k_single_ROWS = 8 };
enum { SINGLE_WINDOW = 8 };  // super-blocks per window (its sums on the stack: 2 KiB for Q4_K, 6 for Q6_K)

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

// Per 128-bit half, the 4x4 transpose of int32 lanes: out[k] = [a_k b_k c_k d_k] in each half.
AVX2_INLINE void transpose_quads(__m256i a, __m256i b, __m256i c, __m256i d, __m256i *out) {
    const __m256i t0 = _mm256_unpacklo_epi32(a, b), t1 = _mm256_unpackhi_epi32(a, b);
    const __m256i t2 = _mm256_unpacklo_epi32(c, d), t3 = _mm256_unpackhi_epi32(c, d);
    out[0] = _mm256_unpacklo_epi64(t0, t2);
    out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3);
    out[3] = _mm256_unpackhi_epi64(t1, t3);
}

AVX2_INLINE void ks_store_rows(float *y, int R, __m256 acc) {
    if (R == 8) _mm256_storeu_ps(y, acc);
    else _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32(R), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), acc);
}

#endif  // GEMMA_MATMUL_KQUANT_SINGLE_X86_H

// Q4_K, one token, rows r..r+R-1 (R <= 8; the rest repeat the last row). A row pair per register
// (a row per 128-bit half), read a window at a time: its sums of 4 blocks are [row 2p | row 2p +
// 1], and transpose_quads gives each block's sums of the 8 rows in the order [r0 r2 r4 r6 | r1 r3
// r5 r7]. The scales are decoded in that order, and rows are put back in order only at the store.
KS_INLINE void KS_NAME(q4k_single)(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, float *y, size_t r, int R) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *wr[8];
    single_rows(w, rs, r, R, wr);
    // The rows in the block sums' lane order (sum_quads): [r0 r2 r4 r6 | r1 r3 r5 r7].
    const uint8_t *const wp[8] = { wr[0], wr[2], wr[4], wr[6], wr[1], wr[3], wr[5], wr[7] };
    const uint8_t *pf = w + (r + 8) * rs;  // the next tile, in the order its pairs are read
    __m256 acc = _mm256_setzero_ps();
    const int8_t *aq = gt_act_q(act);
    const float *ad = gt_act_d(act, nb);
    for (size_t s0 = 0; s0 < nsb; s0 += SINGLE_WINDOW) {
        const size_t n = nsb - s0 < SINGLE_WINDOW ? nsb - s0 : SINGLE_WINDOW;
        __m256i X[4][SINGLE_WINDOW][2];  // pair, super-block, blocks 0..3 / 4..7
        KQ_UNROLL8 for (int p = 0; p < 4; p++) {
            const uint8_t *ra = wr[2 * p], *rb = wr[2 * p + 1];
            for (size_t i = 0; i < n; i++) {
                const size_t s = s0 + i, off = s * GT_Q4K_BLOCK_BYTES;
                const uint8_t *pp = pf + 2 * (size_t)p * rs + 2 * off;
                for (size_t l = 0; l < 2 * GT_Q4K_BLOCK_BYTES; l += 64) __builtin_prefetch(pp + l, 0, 2);  // into L2
                __m256i L[8];
                KQ_UNROLL8 for (int g = 0; g < 4; g++) {
                    const uint8_t *qa = ra + off + 16 + 32 * g, *qb = rb + off + 16 + 32 * g;
                    const __m256i v0 = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)qa), _mm_loadu_si128((const __m128i *)qb));
                    const __m256i v1 = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)(qa + 16)),
                                                         _mm_loadu_si128((const __m128i *)(qb + 16)));
                    KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                        const int8_t *x = aq + (8 * s + (size_t)(2 * g + h)) * GT_BLOCK;
                        const __m256i a0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x));
                        const __m256i a1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x + 16)));
                        const __m256i w0 = _mm256_and_si256(h ? _mm256_srli_epi16(v0, 4) : v0, m4);
                        const __m256i w1 = _mm256_and_si256(h ? _mm256_srli_epi16(v1, 4) : v1, m4);
                        L[2 * g + h] = KS_DOT2(w0, a0, w1, a1);
                    }
                }
                X[p][i][0] = sum_quads(L[0], L[1], L[2], L[3]);
                X[p][i][1] = sum_quads(L[4], L[5], L[6], L[7]);
            }
        }
        for (size_t i = 0; i < n; i++) {
            const size_t s = s0 + i;
            // ds[j] = d * sc_j and ms[j] = dmin * m_j / 2 of the 8 rows, in the block sums' row order.
            __m256 ds[8], ms[8];
            q4k_scales8(wp, s * GT_Q4K_BLOCK_BYTES, ds, ms);
            KQ_UNROLL8 for (int q = 0; q < 2; q++) {
                // Blocks 4q..4q+3: [pair p's row a: 4 blocks | row b] -> [block's r0 r2 r4 r6 | r1 r3 r5 r7].
                __m256i S[4];
                transpose_quads(X[0][i][q], X[1][i][q], X[2][i][q], X[3][i][q], S);
                KQ_UNROLL8 for (int k = 0; k < 4; k++) {
                    const int j = 4 * q + k;
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S[k]), _mm256_mul_ps(ds[j], _mm256_set1_ps(ad[8 * s + (size_t)j])), acc);
                }
            }
            float am[8];
            q4k_min_inputs_x86(act, nb, 8 * s, am);
            KQ_UNROLL8 for (int j = 0; j < 8; j++) acc = _mm256_fmadd_ps(ms[j], _mm256_set1_ps(am[j]), acc);
        }
    }
    acc = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    ks_store_rows(y + r, R, acc);
}

// Q6_K, one token, rows r..r+R-1 (R <= 8). The tile reads one row at a time over a window of up
// to 8 super-blocks (front to back: linear reads). Each block gives int32 lanes of 4 products,
// lanes 0..3 its first sub-block and 4..7 the second, started from -32 x their inputs' sum (the
// window's starts taken once for all rows); sum_quads of a row's 4 blocks of a half keeps [4
// blocks' first sub-blocks | second], and a 4x4 transpose per half over 4 rows then gives [rows
// 0..3 of sub-block 2i | of 2i + 1], two such registers the 8 rows' sums of each sub-block.
KS_INLINE void KS_NAME(q6k_single)(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, float *y, size_t r, int R) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m256i zero = _mm256_setzero_si256(), k32 = _mm256_set1_epi8(32);
    const uint8_t *wr[8];
    single_rows(w, rs, r, R, wr);
    const uint8_t *pf = w + (r + 8) * rs;  // the next tile, in the order its rows are read
    __m256 acc = _mm256_setzero_ps();
    const int8_t *aq = gt_act_q(act);
    const float *ad = gt_act_d(act, nb);
    for (size_t s0 = 0; s0 < nsb; s0 += SINGLE_WINDOW) {
        const size_t n = nsb - s0 < SINGLE_WINDOW ? nsb - s0 : SINGLE_WINDOW;
        __m256i start[SINGLE_WINDOW][8];  // -32 x the inputs' sums, per block
        for (size_t i = 0; i < n; i++)
            KQ_UNROLL8 for (int b = 0; b < 8; b++) {
                const __m256i av = _mm256_loadu_si256((const __m256i *)(aq + (8 * (s0 + i) + (size_t)b) * GT_BLOCK));
                start[i][b] = _mm256_sub_epi32(zero, KS_DOT1(zero, k32, av));
            }
        __m256i X[8][SINGLE_WINDOW][2];  // row, super-block, half: [4 blocks' first 16 | second 16]
        KQ_UNROLL8 for (int row = 0; row < 8; row++) {
            const uint8_t *rp = wr[row];
            for (size_t i = 0; i < n; i++) {
                const size_t s = s0 + i, off = s * GT_Q6K_BLOCK_BYTES;
                const uint8_t *pp = pf + (size_t)row * rs + off;
                for (size_t l = 0; l < GT_Q6K_BLOCK_BYTES; l += 64) __builtin_prefetch(pp + l, 0, 2);  // into L2
                KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(rp + off + 64 * h));
                    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(rp + off + 64 * h + 32));
                    const __m256i qh = _mm256_loadu_si256((const __m256i *)(rp + off + 128 + 32 * h));
                    __m256i L[4];
                    KQ_UNROLL8 for (int c = 0; c < 4; c++) {
                        const __m256i av = _mm256_loadu_si256((const __m256i *)(aq + (8 * s + 4 * (size_t)h + (size_t)c) * GT_BLOCK));
                        L[c] = KS_DOT1(start[i][4 * h + c], KS_Q6K_VALUES(ql0, ql1, qh, c), av);
                    }
                    X[row][i][h] = sum_quads(L[0], L[1], L[2], L[3]);
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            const size_t s = s0 + i, off = s * GT_Q6K_BLOCK_BYTES;
            __m256 ds[16];  // d * sc[k] of the 8 rows, k = 0..15
            q6k_scales8(wr, off, ds);
            KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                __m256i S[2][4];  // S[quad][c]: [rows of the quad, first 16 | second 16]
                KQ_UNROLL8 for (int quad = 0; quad < 2; quad++)
                    transpose_quads(X[4 * quad][i][h], X[4 * quad + 1][i][h], X[4 * quad + 2][i][h], X[4 * quad + 3][i][h], S[quad]);
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
    }
    ks_store_rows(y + r, R, acc);
}
