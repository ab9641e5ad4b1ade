// x86-64 AVX2 (+ AVX-VNNI) kernels for K-quant weights: the arithmetic of matmul_kquant.c, with
// per-function target attributes (no global -march), chosen at run time.
//
// Q4_K: rows in pairs, one row per 128-bit half (as the q4 tile in matmul_avx2.c): the 32 bytes
// of nibble group g hold sub-block 2g in their low nibbles and 2g+1 in their high ones; bytes
// 0..15 of both rows fill one register, bytes 16..31 another, so each 4-byte product sum lands in
// the int32 lane the contract names (elements 4k..4k+3 plus 16+4k..16+4k+3). The sub-block scales
// d*sc and halved mins dmin*m/2 of a row pair are unpacked in registers once per super-block
// (q4k_pair_scales_x86: byte shuffles, no stack round trip; a block's [a x 4 | b x 4] is then an
// in-lane broadcast), and d*sc is multiplied by each token's 8 input scales there too (for a
// batch, a table per token): the same products, hoisted, and a block's product is then a shuffle
// rather than a multiplication on the FMA ports. A single token takes 4 rows (two pairs) per tile, so each input
// load feeds both pairs; that and the register unpacking made the kernel 1.26x-1.47x faster.
// Q6_K: rows in pairs too. Each row's 32 six-bit values of a block are unpacked in a register
// (elements 0..15 | 16..31), then two rows are interleaved by 8 bytes: x0 = [a 0..7, b 0..7 |
// a 16..23, b 16..23], x1 = the bytes 8..15 and 24..31; the inputs likewise ([0..7, 0..7 | 16..23,
// 16..23] and the rest, one in-lane shuffle each). Then x0 . a0 + x1 . a1 puts in each int32
// lane one lane of the contract (elements 4v..4v+3 and 8+4v..8+4v+3 of a sub-block): two rows x
// two sub-blocks x 2 lanes per register, one conversion and one FMA per 64 products instead of
// per 32. The values stay unsigned (0..63) for maddubs / vpdpbusd and each lane starts from
// -32 x the sum of its 8 inputs (computed once per token and block, shared by the pairs), giving
// sum (q - 32) x. The scales, in the same lane order (q6k_pair_scales_x86), are multiplied by
// each token's input scales once per super-block; a block's lanes are then one in-lane shuffle.
// Both kernels come in an AVX2 flavour (maddubs + madd: no int16 sum can saturate, at most
// 4 x 15 x 127 (Q4_K) or 4 x 63 x 128 (Q6_K)) and an AVX-VNNI one (vpdpbusd); the int32 lanes, and so the results, are the same.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_kquant_x86.h"
#include "matmul_tiles.h"
#include "simd_x86.h"

// Fetches the next tile's share of bytes for this super-block (as GT_PREFETCH_SPAN in matmul_tiles.h).
#ifndef KQ_NO_PREFETCH
#define KQ_PREFETCH(p, n) for (size_t l_ = 0; l_ < (n); l_ += 64) _mm_prefetch((const char *)(p) + l_, _MM_HINT_T0)
#else
#define KQ_PREFETCH(p, n) (void)0
#endif

// Rows per tile: 4 for a single token (two Q4_K pairs share each input load) and 4 in batches
// (x 4 tokens); measured with kernels-test/bench.c against 2 (docs/BENCHMARKS.md, session 12).
#ifndef KQ_DEC_ROWS
#define KQ_DEC_ROWS 4
#endif
#ifndef KQ_BATCH_ROWS
#define KQ_BATCH_ROWS 4
#endif

// Target macros AVX2_*, VNNI_*, EVEX_* and hsum4 / hsum8: simd_x86.h.

// ---- integer products, 8 int32 lanes ----
// q4k: w0 / w1 = nibbles of elements 0..15 / 16..31 (a row per half), a0 / a1 the inputs.
AVX2_INLINE __m256i q4k_dot_avx2(__m256i w0, __m256i w1, __m256i a0, __m256i a1) {
    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, a0), _mm256_maddubs_epi16(w1, a1));
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
}
// q6k, two rows per register (the low / high 128 bits): x0 / x1 = values of elements 0..7, 16..23 /
// 8..15, 24..31 of each row, a0 / a1 the inputs in the same order; lane k of a half sums elements
// 4k..4k+3 of x0 . a0 and of x1 . a1. `start` = -32 x the sum of each lane's 8 inputs.
AVX2_INLINE __m256i q6k_start_avx2(__m256i a0, __m256i a1) {
    const __m256i k32 = _mm256_set1_epi8(32);
    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(k32, a0), _mm256_maddubs_epi16(k32, a1));
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}
// No int16 sum saturates: each is 4 products of a value 0..63 and an input -128..127 (|sum| <= 32256).
AVX2_INLINE __m256i q6k_dot_avx2(__m256i start, __m256i x0, __m256i x1, __m256i a0, __m256i a1) {
    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, a0), _mm256_maddubs_epi16(x1, a1));
    return _mm256_add_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), start);
}
// The same with vpdpbusd: DPBUSD is the VEX (AVX-VNNI) or the EVEX (AVX-512 VNNI + VL, 256-bit)
// intrinsic; the EVEX one serves the single tokens of the AVX-512 path.
#define DEFINE_DPBUSD_DOTS(SUFFIX, INLINE, DPBUSD)                                                       \
INLINE __m256i q4k_dot_##SUFFIX(__m256i w0, __m256i w1, __m256i a0, __m256i a1) {                        \
    return DPBUSD(DPBUSD(_mm256_setzero_si256(), w0, a0), w1, a1);                                       \
}                                                                                                        \
INLINE __m256i q6k_start_##SUFFIX(__m256i a0, __m256i a1) {                                              \
    const __m256i z = _mm256_setzero_si256(), k32 = _mm256_set1_epi8(32);                                \
    return _mm256_sub_epi32(z, DPBUSD(DPBUSD(z, k32, a0), k32, a1));                                     \
}                                                                                                        \
INLINE __m256i q6k_dot_##SUFFIX(__m256i start, __m256i x0, __m256i x1, __m256i a0, __m256i a1) {         \
    return DPBUSD(DPBUSD(start, x0, a0), x1, a1);                                                        \
}
DEFINE_DPBUSD_DOTS(vnni, VNNI_INLINE, _mm256_dpbusd_avx_epi32)
DEFINE_DPBUSD_DOTS(evex, EVEX_INLINE, _mm256_dpbusd_epi32)

// Block j's [a[j] x 4 | b[j] x 4] from a pair's tables t[0] (j = 0..3) and t[1] (j = 4..7) of
// q4k_pair_scales_x86: an in-lane broadcast.
#define pair_lanes(t, j) kq_lane_broadcast((t)[(j) >> 2], (j))

// A super-block's two tables of scales (sub-blocks 0..3 / 4..7 of each 128-bit half, as
// q4k_pair_scales_x86 lays them out) times the 8 input scales ad8 of its
// blocks: the contract's products (d x sc) x ad, taken once per super-block.
AVX2_INLINE void times_input_scales(const __m256 *t, const float *ad8, __m256 *out) {
    out[0] = _mm256_mul_ps(t[0], _mm256_broadcast_ps((const __m128 *)ad8));
    out[1] = _mm256_mul_ps(t[1], _mm256_broadcast_ps((const __m128 *)(ad8 + 4)));
}

#define DEFINE_KQ_TILES(SUFFIX, INLINE, Q4DOT, Q6START, Q6DOT)                                              \
INLINE void q4k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,     \
                              float *y, size_t ys, size_t r, const int R, const int T) {                   \
    const int NP = (R + 1) / 2;                                                                            \
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;                                             \
    const __m256i m4 = _mm256_set1_epi8(0x0f);                                                             \
    __m256 acc[4][4];                                                                                      \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                                 \
        GT_UNROLL for (int t = 0; t < T; t++) acc[p][t] = _mm256_setzero_ps();                             \
    const uint8_t *wr[8];                                                                                  \
    GT_UNROLL for (int i = 0; i < 2 * NP; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;                 \
    const uint8_t *pf = w + (r + R) * rs; /* the next tile's rows, fetched during this one */              \
    const size_t pf_step = R * rs / nsb;                                                                   \
    for (size_t s = 0; s < nsb; s++) {                                                                     \
        const size_t off = s * GT_Q4K_BLOCK_BYTES;                                                         \
        KQ_PREFETCH(pf + s * pf_step, pf_step);                                                            \
        __m256 dsc[4][2], mq[4][2]; /* [pair][sub-blocks 0..3 / 4..7], rows of a pair in halves */         \
        float am[4][8];                                                                                    \
        GT_UNROLL for (int p = 0; p < NP; p++)                                                             \
            q4k_pair_scales_x86(wr[2 * p] + off, wr[2 * p + 1] + off, dsc[p], mq[p]);                      \
        GT_UNROLL for (int t = 0; t < T; t++) q4k_min_inputs_x86(act + t * as, nb, 8 * s, am[t]);          \
        /* Each token's scale products for the super-block, ahead (the same products as per block). */   \
        __m256 dt[4][4][2];                                                                                \
        GT_UNROLL for (int t = 0; t < T; t++)                                                              \
            GT_UNROLL for (int p = 0; p < NP; p++)                                                         \
                times_input_scales(dsc[p], gt_act_d(act + t * as, nb) + 8 * s, dt[p][t]);                  \
        GT_UNROLL for (int g = 0; g < 4; g++) {                                                            \
            __m256i v0[4], v1[4];                                                                          \
            GT_UNROLL for (int p = 0; p < NP; p++) {                                                       \
                const uint8_t *qa = wr[2 * p] + off + 16 + 32 * g, *qb = wr[2 * p + 1] + off + 16 + 32 * g; \
                v0[p] = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)qa), _mm_loadu_si128((const __m128i *)qb)); \
                v1[p] = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)(qa + 16)),                      \
                                          _mm_loadu_si128((const __m128i *)(qb + 16)));                    \
            }                                                                                              \
            GT_UNROLL for (int h = 0; h < 2; h++) {                                                        \
                const int j = 2 * g + h;                                                                   \
                const size_t b = 8 * s + j;                                                                \
                __m256i w0[4], w1[4];                                                                      \
                GT_UNROLL for (int p = 0; p < NP; p++) {                                                   \
                    w0[p] = _mm256_and_si256(h ? _mm256_srli_epi16(v0[p], 4) : v0[p], m4);                  \
                    w1[p] = _mm256_and_si256(h ? _mm256_srli_epi16(v1[p], 4) : v1[p], m4);                  \
                }                                                                                          \
                GT_UNROLL for (int t = 0; t < T; t++) {                                                    \
                    const uint8_t *a = act + t * as;                                                       \
                    const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                         \
                    __m256i a0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)aq));        \
                    __m256i a1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(aq + 16))); \
                    GT_UNROLL for (int p = 0; p < NP; p++) {                                               \
                        __m256i L = Q4DOT(w0[p], w1[p], a0, a1);                                           \
                        acc[p][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L), pair_lanes(dt[p][t], j), acc[p][t]); \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
        /* The mins: sub-blocks k and k + 4 into lane k of each row. */                                    \
        GT_UNROLL for (int p = 0; p < NP; p++) {                                                           \
            const __m256 m0 = mq[p][0], m1 = mq[p][1];                                                     \
            GT_UNROLL for (int t = 0; t < T; t++) {                                                        \
                acc[p][t] = _mm256_fmadd_ps(m0, _mm256_broadcast_ps((const __m128 *)am[t]), acc[p][t]);     \
                acc[p][t] = _mm256_fmadd_ps(m1, _mm256_broadcast_ps((const __m128 *)(am[t] + 4)), acc[p][t]); \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                                 \
        GT_UNROLL for (int t = 0; t < T; t++) {                                                            \
            y[t * ys + r + 2 * p] = hsum4(_mm256_castps256_ps128(acc[p][t]));                              \
            if (2 * p + 1 < R) y[t * ys + r + 2 * p + 1] = hsum4(_mm256_extractf128_ps(acc[p][t], 1));     \
        }                                                                                                  \
}                                                                                                          \
                                                                                                           \
INLINE void q6k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,     \
                              float *y, size_t ys, size_t r, const int R, const int T) {                   \
    const int NP = (R + 1) / 2;                                                                            \
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;                                             \
    __m256 acc[2][4];                                                                                      \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                                 \
        GT_UNROLL for (int t = 0; t < T; t++) acc[p][t] = _mm256_setzero_ps();                             \
    const uint8_t *wr[4];                                                                                  \
    GT_UNROLL for (int i = 0; i < 2 * NP; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;                 \
    const uint8_t *pf = w + (r + R) * rs;                                                                  \
    const size_t pf_step = R * rs / nsb;                                                                   \
    for (size_t s = 0; s < nsb; s++) {                                                                     \
        const size_t off = s * GT_Q6K_BLOCK_BYTES;                                                         \
        KQ_PREFETCH(pf + s * pf_step, pf_step);                                                            \
        /* Each token's scale products for the super-block, ahead: dt[p][t][m] serves blocks 2m and */    \
        /* 2m + 1 of pair p (q6k_pair_scales_x86's tables times their input scales). */                   \
        __m256 dt[2][4][4];                                                                                \
        {                                                                                                  \
            __m256 g[2][4];                                                                                \
            GT_UNROLL for (int p = 0; p < NP; p++) q6k_pair_scales_x86(wr[2 * p] + off, wr[2 * p + 1] + off, g[p]); \
            GT_UNROLL for (int t = 0; t < T; t++) {                                                        \
                const float *ad8 = gt_act_d(act + t * as, nb) + 8 * s;                                     \
                GT_UNROLL for (int m = 0; m < 4; m++) {                                                    \
                    const __m256 adm = _mm256_castpd_ps(_mm256_broadcast_sd((const double *)(ad8 + 2 * m))); \
                    GT_UNROLL for (int p = 0; p < NP; p++) dt[p][t][m] = _mm256_mul_ps(g[p][m], adm);      \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
        GT_UNROLL for (int h = 0; h < 2; h++) {                                                            \
            __m256i ql0[4], ql1[4], qh[4];                                                                 \
            GT_UNROLL for (int i = 0; i < 2 * NP; i++) {                                                   \
                const uint8_t *p = wr[i] + off;                                                            \
                ql0[i] = _mm256_loadu_si256((const __m256i *)(p + 64 * h));                                \
                ql1[i] = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));                           \
                qh[i] = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));                           \
            }                                                                                              \
            GT_UNROLL for (int c = 0; c < 4; c++) {                                                        \
                const int bi = 4 * h + c;                                                                  \
                const size_t b = 8 * s + bi;                                                               \
                /* x0 / x1: elements 0..7 / 8..15 of rows a, b in the low half, 16..23 / 24..31 in the */ \
                /* high half, so lane k of x0 . a0 + x1 . a1 is a row's lane of the contract. */          \
                __m256i x0[2], x1[2];                                                                      \
                GT_UNROLL for (int p = 0; p < NP; p++) {                                                   \
                    const __m256i va = q6k_values_x86(ql0[2 * p], ql1[2 * p], qh[2 * p], c);               \
                    const __m256i vb = q6k_values_x86(ql0[2 * p + 1], ql1[2 * p + 1], qh[2 * p + 1], c);   \
                    x0[p] = _mm256_unpacklo_epi64(va, vb);                                                 \
                    x1[p] = _mm256_unpackhi_epi64(va, vb);                                                 \
                }                                                                                          \
                GT_UNROLL for (int t = 0; t < T; t++) {                                                    \
                    const __m256i av = _mm256_loadu_si256((const __m256i *)(gt_act_q(act + t * as) + b * GT_BLOCK)); \
                    const __m256i a0 = _mm256_unpacklo_epi64(av, av), a1 = _mm256_unpackhi_epi64(av, av);  \
                    const __m256i start = Q6START(a0, a1);                                                 \
                    GT_UNROLL for (int p = 0; p < NP; p++) {                                               \
                        __m256i L = Q6DOT(start, x0[p], x1[p], a0, a1);                                    \
                        acc[p][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L), q6k_block_lanes(dt[p][t][bi >> 1], bi), acc[p][t]); \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    /* Row a: (lane 0 + lane 4) + (lane 1 + lane 5); row b: lanes 2, 6, 3, 7 (the contract's order). */   \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                                 \
        GT_UNROLL for (int t = 0; t < T; t++) {                                                            \
            const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc[p][t]), _mm256_extractf128_ps(acc[p][t], 1)); \
            y[t * ys + r + 2 * p] = _mm_cvtss_f32(_mm_add_ss(sum, _mm_movehdup_ps(sum)));                  \
            if (2 * p + 1 < R) {                                                                           \
                const __m128 hi = _mm_movehl_ps(sum, sum);                                                 \
                y[t * ys + r + 2 * p + 1] = _mm_cvtss_f32(_mm_add_ss(hi, _mm_movehdup_ps(hi)));            \
            }                                                                                              \
        }                                                                                                  \
}

DEFINE_KQ_TILES(avx2, AVX2_INLINE, q4k_dot_avx2, q6k_start_avx2, q6k_dot_avx2)
DEFINE_KQ_TILES(vnni, VNNI_INLINE, q4k_dot_vnni, q6k_start_vnni, q6k_dot_vnni)
DEFINE_KQ_TILES(evex, EVEX_INLINE, q4k_dot_evex, q6k_start_evex, q6k_dot_evex)

// As GT_DEFINE_DRIVER, with DEC_ROWS rows per single-token tile; NAME is the exported kernel,
// on a 64-byte boundary (as matmul_kquant_avx512.c's drivers: a speed that does not move with
// unrelated code).
#define KQ_DRIVER(NAME, TILE, ATTR, DEC_ROWS)                                                                 \
    __attribute__((aligned(64))) ATTR void NAME(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act,  \
                                                size_t as, size_t count, float *y, size_t ys, size_t r0, size_t r1) { \
        if (count == 1) {                                                                                     \
            size_t r = r0;                                                                                    \
            for (; r + DEC_ROWS <= r1; r += DEC_ROWS) TILE(w, rs, cols, act, as, y, ys, r, DEC_ROWS, 1);      \
            for (; r < r1; r++) TILE(w, rs, cols, act, as, y, ys, r, 1, 1);                                   \
            return;                                                                                           \
        }                                                                                                     \
        GT_BATCH_LOOP(TILE, w, rs, cols, act, as, count, y, ys, r0, r1, KQ_BATCH_ROWS)                                    \
    }

KQ_DRIVER(gt_q4k_avx2, q4k_tile_avx2, AVX2_FN, KQ_DEC_ROWS)
KQ_DRIVER(gt_q6k_avx2, q6k_tile_avx2, AVX2_FN, 4)
KQ_DRIVER(gt_q4k_avxvnni, q4k_tile_vnni, VNNI_FN, KQ_DEC_ROWS)
KQ_DRIVER(gt_q6k_avxvnni, q6k_tile_vnni, VNNI_FN, 4)
KQ_DRIVER(gt_q4k_evex, q4k_tile_evex, EVEX_FN, KQ_DEC_ROWS)
KQ_DRIVER(gt_q6k_evex, q6k_tile_evex, EVEX_FN, 4)

#endif
