// x86-64 AVX2 + FMA + F16C kernels. Compiled with per-function target attributes (no global
// -march), used only when cpuid reports the features (gt_cpu_has_avx2).
//
// q4 x int8: the nibbles stay unsigned (0..15) so _mm256_maddubs_epi16 (u8 x s8) multiplies them
// by the int8 inputs directly; the -8 offset is applied once per block from the inputs' block sum
// (sum (q - 8) a = sum q a - 8 sum a: each of the 8 i32 lanes subtracts the sum once).
// q5 x int8: the same with 5-bit values (0..31) and a -16 offset.
// q8 x int8: |w| x sign(a, w) through maddubs, as the products are signed x signed.
// Per block and row, the 8 i32 lanes become f32 and accumulate with the block's combined scale
// (f16 weight scale x f32 input scale); one horizontal sum per row at the end.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_tiles.h"
#include "simd_x86.h"

// Target macros AVX2_* (AVX2 + FMA + F16C), VNNI_* (with AVX-VNNI), EVEX_* (AVX-512 VNNI + VL on
// 256-bit registers, for the AVX-512 table's single-token products) and hsum4 / hsum8: simd_x86.h.
// Rows of 2048 q4 / q8 weights are 1-2 KiB: a 4-row tile reads 4 short streams, too short for
// the hardware prefetchers to ramp up before they end. Each tile therefore prefetches the next
// tile's rows, each block step its share (GT_PREFETCH_SPAN), so they arrive while this tile computes.

// The f16 scales of block b of up to 4 rows (at p[i] + b * block_bytes), as f32 in lanes 0..n-1.
AVX2_INLINE __m128 load_scales(const uint8_t *const *p, size_t offset, const int n) {
    int16_t v;
    memcpy(&v, p[0] + offset, 2);
    __m128i h = _mm_cvtsi32_si128((uint16_t)v);
#define GT_INSERT_SCALE(i)                       \
    if (i < n) {                                 \
        memcpy(&v, p[i] + offset, 2);            \
        h = _mm_insert_epi16(h, v, i);           \
    }
    GT_INSERT_SCALE(1)
    GT_INSERT_SCALE(2)
    GT_INSERT_SCALE(3)
#undef GT_INSERT_SCALE
    return _mm_cvtph_ps(h);
}

// Lane i of v (i < 4) in all 8 lanes.
AVX2_INLINE __m256 splat_lane(__m128 v, const int i) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(i));
}

// Lane 2p in lanes 0..3 and lane 2p+1 in lanes 4..7.
AVX2_INLINE __m256 splat_pair(__m128 v, const int p) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v),
                                    _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1));
}

// q5: ORs bit 4 of each element into a row pair's nibble vectors (row A in the low 128-bit half,
// row B in the high one). qh bits 0..15 belong to lo (elements 0..15), bits 16..31 to hi: each
// qh byte is copied to 8 bytes, tested against one bit per byte, and the hits become 0x10.
AVX2_INLINE void q5_high_bits(const uint8_t *qh_a, const uint8_t *qh_b, __m256i *lo, __m256i *hi) {
    const __m256i qh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtsi32_si128((int)gt_load_u32(qh_a))),
                                               _mm_cvtsi32_si128((int)gt_load_u32(qh_b)), 1);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i spread_lo = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0, 0x0101010101010101LL);
    const __m256i spread_hi = _mm256_setr_epi64x(0x0202020202020202LL, 0x0303030303030303LL,
                                                 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i b4 = _mm256_set1_epi8(0x10);
    __m256i l = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, spread_lo), bits), bits);
    __m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, spread_hi), bits), bits);
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(l, b4));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(h, b4));
}

// ---- q4 ----
// Rows go in pairs, one row per 128-bit half: a block's 16 bytes of nibbles from two rows fill
// one register, whose low nibbles (elements 0..15 of each row) multiply the inputs 0..15
// broadcast to both halves and whose high nibbles (16..31) the inputs 16..31. Per pair and block:
// one shift, two ands, two maddubs, an add and a madd, then 4 int32 lanes per row. A tile with
// an odd row count pairs its last row with itself; a row's lanes see the same operations in
// either half, so its result never depends on its partner.
// q8:
// One row per register (32 int8); |w| x sign(a, w) through maddubs. The scales of up to 4 rows
// are converted together and spread to each row's lanes with one permute.
// Both tiles are instantiated twice: with the AVX2 integer products (maddubs + madd) and with
// AVX-VNNI's vpdpbusd, which does both in one instruction. The int32 lanes come out the same
// (no product sum overflows int16 on the AVX2 side), so both give bit-identical results.
// q5 is the q4 tile plus bit 4 of each element, spread from qh into the nibble vectors
// (q5_high_bits), and twice the offset correction (-16 x the block sum).
#define DEFINE_Q_TILES(SUFFIX, INLINE, Q4DOT, Q8DOT) \
INLINE void q4_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,   \
                         float *y, size_t ys, size_t r, const int R, const int T, const int FIVE) {     \
    const int NP = (R + 1) / 2;                                                                         \
    const size_t block_bytes = FIVE ? GT_Q5_BLOCK_BYTES : GT_Q4_BLOCK_BYTES;                            \
    const size_t nibbles = FIVE ? 6 : 2;                                                                \
    const size_t nb = cols / GT_BLOCK;                                                                  \
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);                             \
    __m256 acc[2][4];                                                                                   \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                              \
        GT_UNROLL for (int t = 0; t < T; t++) acc[p][t] = _mm256_setzero_ps();                          \
    const uint8_t *wr[4];                                                                               \
    GT_UNROLL for (int i = 0; i < 2 * NP; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;              \
    const uint8_t *pf = w + (r + R) * rs;  /* the next tile's rows, fetched during this one */          \
    const size_t pf_step = R * rs / nb;                                                                 \
    for (size_t b = 0; b < nb; b++) {                                                                   \
        const size_t off = b * block_bytes;                                                             \
        GT_PREFETCH_SPAN(pf + b * pf_step, pf_step);                                                    \
        __m128 ws = load_scales(wr, off, 2 * NP);                                                       \
        if (T == 1) ws = _mm_mul_ps(ws, _mm_set1_ps(gt_act_d(act, nb)[b]));                             \
        __m256 sc[2];                                                                                   \
        __m256i lo[2], hi[2];                                                                           \
        GT_UNROLL for (int p = 0; p < NP; p++) {                                                        \
            sc[p] = splat_pair(ws, p);                                                                  \
            __m256i v = _mm256_inserti128_si256(                                                        \
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(wr[2 * p] + off + nibbles))),  \
                _mm_loadu_si128((const __m128i *)(wr[2 * p + 1] + off + nibbles)), 1);                  \
            lo[p] = _mm256_and_si256(v, m4);                                                            \
            hi[p] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);                                      \
            if (FIVE) q5_high_bits(wr[2 * p] + off + 2, wr[2 * p + 1] + off + 2, &lo[p], &hi[p]);       \
        }                                                                                               \
        GT_UNROLL for (int t = 0; t < T; t++) {                                                         \
            const uint8_t *a = act + t * as;                                                            \
            const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                              \
            __m256i alo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)aq));            \
            __m256i ahi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(aq + 16)));     \
            __m256i corr = _mm256_set1_epi32(gt_act_c(a, nb)[b] * (FIVE ? 2 : 1)); /* 4 lanes x -2 (-4) x sum */\
            __m256 ad = _mm256_set1_ps(gt_act_d(a, nb)[b]);                                             \
            GT_UNROLL for (int p = 0; p < NP; p++) {                                                    \
                __m256i s = Q4DOT(lo[p], hi[p], alo, ahi, corr, ones);                                  \
                __m256 scale = T == 1 ? sc[p] : _mm256_mul_ps(sc[p], ad);                               \
                acc[p][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[p][t]);                   \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    GT_UNROLL for (int p = 0; p < NP; p++)                                                              \
        GT_UNROLL for (int t = 0; t < T; t++) {                                                         \
            y[t * ys + r + 2 * p] = hsum4(_mm256_castps256_ps128(acc[p][t]));                           \
            if (2 * p + 1 < R) y[t * ys + r + 2 * p + 1] = hsum4(_mm256_extractf128_ps(acc[p][t], 1));  \
        }                                                                                               \
}                                                                                                       \
                                                                                                        \
INLINE void q8_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,   \
                         float *y, size_t ys, size_t r, const int R, const int T) {                     \
    const size_t nb = cols / GT_BLOCK;                                                                  \
    const __m256i ones = _mm256_set1_epi16(1);                                                          \
    __m256 acc[4][4];                                                                                   \
    GT_UNROLL for (int i = 0; i < R; i++)                                                               \
        GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();                          \
    const uint8_t *wr[4];                                                                               \
    GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;                                     \
    const uint8_t *pf = w + (r + R) * rs;  /* the next tile's rows, fetched during this one */          \
    const size_t pf_step = R * rs / nb;                                                                 \
    for (size_t b = 0; b < nb; b++) {                                                                   \
        const size_t off = b * GT_Q8_BLOCK_BYTES;                                                       \
        GT_PREFETCH_SPAN(pf + b * pf_step, pf_step);                                                    \
        __m128 ws = load_scales(wr, off, R);                                                            \
        if (T == 1) ws = _mm_mul_ps(ws, _mm_set1_ps(gt_act_d(act, nb)[b]));                             \
        __m256i wq[4], wa[4];                                                                           \
        __m256 sc[4];                                                                                   \
        GT_UNROLL for (int i = 0; i < R; i++) {                                                         \
            sc[i] = splat_lane(ws, i);                                                                  \
            wq[i] = _mm256_loadu_si256((const __m256i *)(wr[i] + off + 2));                             \
            wa[i] = _mm256_abs_epi8(wq[i]);                                                             \
        }                                                                                               \
        GT_UNROLL for (int t = 0; t < T; t++) {                                                         \
            const uint8_t *a = act + t * as;                                                            \
            __m256i aq = _mm256_loadu_si256((const __m256i *)(gt_act_q(a) + b * GT_BLOCK));             \
            __m256 ad = _mm256_set1_ps(gt_act_d(a, nb)[b]);                                             \
            GT_UNROLL for (int i = 0; i < R; i++) {                                                     \
                __m256i s = Q8DOT(wa[i], _mm256_sign_epi8(aq, wq[i]), ones);                            \
                __m256 scale = T == 1 ? sc[i] : _mm256_mul_ps(sc[i], ad);                               \
                acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[i][t]);                   \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    GT_UNROLL for (int i = 0; i < R; i++)                                                               \
        GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum8(acc[i][t]);                     \
}                                                                                                       \

// Integer block products, 8 int32 lanes. q4: lo/hi = a row pair's low/high nibbles, alo/ahi the
// inputs 0..15 / 16..31 in both halves, corr the -8 offset per lane. q8: wa = |w|, sa = sign(a, w).
AVX2_INLINE __m256i q4_dot_avx2(__m256i lo, __m256i hi, __m256i alo, __m256i ahi, __m256i corr, __m256i ones) {
    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
    return _mm256_add_epi32(_mm256_madd_epi16(s16, ones), corr);
}
AVX2_INLINE __m256i q8_dot_avx2(__m256i wa, __m256i sa, __m256i ones) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wa, sa), ones);
}
// The same products with vpdpbusd, which does both in one instruction: DPBUSD is the VEX
// (AVX-VNNI) or the EVEX (AVX-512 VNNI + VL, 256-bit) intrinsic.
#define DEFINE_DPBUSD_DOTS(SUFFIX, INLINE, DPBUSD)                                                       \
INLINE __m256i q4_dot_##SUFFIX(__m256i lo, __m256i hi, __m256i alo, __m256i ahi, __m256i corr, __m256i ones) { \
    (void)ones;                                                                                          \
    return DPBUSD(DPBUSD(corr, lo, alo), hi, ahi);                                                       \
}                                                                                                        \
INLINE __m256i q8_dot_##SUFFIX(__m256i wa, __m256i sa, __m256i ones) {                                   \
    (void)ones;                                                                                          \
    return DPBUSD(_mm256_setzero_si256(), wa, sa);                                                       \
}
DEFINE_DPBUSD_DOTS(vnni, VNNI_INLINE, VNNI_DPBUSD)
DEFINE_DPBUSD_DOTS(evex, EVEX_INLINE, _mm256_dpbusd_epi32)

DEFINE_Q_TILES(avx2, AVX2_INLINE, q4_dot_avx2, q8_dot_avx2)
DEFINE_Q_TILES(vnni, VNNI_INLINE, q4_dot_vnni, q8_dot_vnni)
DEFINE_Q_TILES(evex, EVEX_INLINE, q4_dot_evex, q8_dot_evex)

// ---- f32 / bf16 (f32 inputs) ----
AVX2_INLINE __m256 load_bf16x8(const uint8_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2_INLINE __m256 load_w8(const uint8_t *p, const int bf16) {
    return bf16 ? load_bf16x8(p) : _mm256_loadu_ps((const float *)p);
}

// The last cols % 8 weights and inputs, zero-padded to a full vector.
AVX2_INLINE __m256 load_w_tail(const uint8_t *p, size_t n, const int bf16) {
    uint8_t tmp[32] = {0};
    memcpy(tmp, p, n * (bf16 ? 2 : 4));
    return load_w8(tmp, bf16);
}

AVX2_INLINE __m256 load_x_tail(const float *x, size_t n) {
    float tmp[8] = {0};
    memcpy(tmp, x, n * sizeof(float));
    return _mm256_loadu_ps(tmp);
}

AVX2_INLINE void float_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, const int R, const int T, const int bf16) {
    const size_t esize = bf16 ? 2 : 4;
    __m256 acc[4][4];
    GT_UNROLL for (int i = 0; i < R; i++)
        GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
    const uint8_t *wr[4];
    const float *xt[4];
    GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;
    GT_UNROLL for (int t = 0; t < T; t++) xt[t] = (const float *)(act + t * as);
    const uint8_t *pf = w + (r + R) * rs;  // the next tile's rows (GT_PREFETCH_SPAN)
    const size_t pf_step = R * 8 * esize;
    size_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        GT_PREFETCH_SPAN(pf + k / 8 * pf_step, pf_step);
        __m256 wv[4];
        GT_UNROLL for (int i = 0; i < R; i++) wv[i] = load_w8(wr[i] + k * esize, bf16);
        GT_UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(xt[t] + k);
            GT_UNROLL for (int i = 0; i < R; i++) acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
        }
    }
    if (k < cols) {
        __m256 wv[4];
        GT_UNROLL for (int i = 0; i < R; i++) wv[i] = load_w_tail(wr[i] + k * esize, cols - k, bf16);
        GT_UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = load_x_tail(xt[t] + k, cols - k);
            GT_UNROLL for (int i = 0; i < R; i++) acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
        }
    }
    GT_UNROLL for (int i = 0; i < R; i++)
        GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum8(acc[i][t]);
}

#define F32_TILE(w, rs, cols, a, as, y, ys, r, R, T) float_tile(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define BF16_TILE(w, rs, cols, a, as, y, ys, r, R, T) float_tile(w, rs, cols, a, as, y, ys, r, R, T, 1)

#define Q4_TILE_AVX2(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_avx2(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define Q5_TILE_AVX2(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_avx2(w, rs, cols, a, as, y, ys, r, R, T, 1)
#define Q4_TILE_VNNI(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_vnni(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define Q5_TILE_VNNI(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_vnni(w, rs, cols, a, as, y, ys, r, R, T, 1)
#define Q4_TILE_EVEX(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_evex(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define Q5_TILE_EVEX(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_evex(w, rs, cols, a, as, y, ys, r, R, T, 1)

GT_DEFINE_DRIVER(avx2_q4, Q4_TILE_AVX2, AVX2_FN)
GT_DEFINE_DRIVER(avx2_q5, Q5_TILE_AVX2, AVX2_FN)
GT_DEFINE_DRIVER(avx2_q8, q8_tile_avx2, AVX2_FN)
GT_DEFINE_DRIVER_ROWS(vnni_q4, Q4_TILE_VNNI, VNNI_FN, 4)
GT_DEFINE_DRIVER_ROWS(vnni_q5, Q5_TILE_VNNI, VNNI_FN, 4)
GT_DEFINE_DRIVER(vnni_q8, q8_tile_vnni, VNNI_FN)
GT_DEFINE_DRIVER_ROWS(evex_q4, Q4_TILE_EVEX, EVEX_FN, 4)
GT_DEFINE_DRIVER_ROWS(evex_q5, Q5_TILE_EVEX, EVEX_FN, 4)
GT_DEFINE_DRIVER(evex_q8, q8_tile_evex, EVEX_FN)
GT_DEFINE_DRIVER(avx2_f32, F32_TILE, AVX2_FN)
GT_DEFINE_DRIVER(avx2_bf16, BF16_TILE, AVX2_FN)

const gt_kernel_table gt_kernels_avx2 = { "avx2", { avx2_f32, avx2_bf16, avx2_q8, avx2_q4, avx2_q5, gt_q4k_avx2, gt_q6k_avx2 } };
// f32 / bf16 have no integer products: the VNNI path shares the AVX2 kernels.
const gt_kernel_table gt_kernels_avxvnni = { "avx2+vnni", { avx2_f32, avx2_bf16, vnni_q8, vnni_q4, vnni_q5,
                                                               gt_q4k_avxvnni, gt_q6k_avxvnni } };
// The single-token kernels of the AVX-512 path on CPUs without AVX-VNNI (matmul_avx512.c). No
// K entries: the AVX-512 path's K-quant drivers run single tokens themselves and never look here.
const gt_kernel_table gt_kernels_avx512_single = { "avx512vl+vnni", { avx2_f32, avx2_bf16, evex_q8, evex_q4, evex_q5,
                                                                        NULL, NULL } };

#endif
