// AArch64 kernels: NEON (ARMv8.0, every AArch64 CPU) and NEON + SDOT (ARMv8.2 dotprod, e.g.
// Cortex-A55/A76, Raspberry Pi 5; not the Pi 4's Cortex-A72), chosen at run time with
// getauxval(AT_HWCAP). No global -march: the dotprod functions carry a target attribute, which
// gcc spells "arch=armv8.2-a+dotprod" and clang "dotprod".
//
// q4: nibbles stay unsigned (0..15, valid int8); the -8 offset comes from the inputs' block sum
// (sum (q - 8) a = sum q a - 8 sum a), folded into the integer accumulator's starting value
// (-2 sum a in each of the 4 lanes). q5: the same with bit 4 from qh and twice the offset
// (values 0..31: |31 * 127| * 2 still fits an int16 lane). q8: signed x signed directly.
// SDOT: vdotq_s32, 4 products per lane. Without it: vmull_s8 / vmlal_high_s8 (two products per
// int16 lane: |15 * 127| * 2 and |128 * 127| * 2 both fit) and vpadalq_s16 into int32.
// Per block and row the 4 int32 lanes become f32 and accumulate with the combined scale (f16
// weight scale x f32 input scale); one horizontal sum per row at the end.
// Each tile prefetches the next tile's rows as it goes (rows of 2048 q4 weights are 1152 bytes:
// streams too short for hardware prefetchers to ramp up; on x86 this doubled the bandwidth).
#if defined(__aarch64__)

#include "matmul_internal.h"
#include "matmul_tiles.h"
#include <arm_neon.h>
#include "matmul_neon.h"

// ---- integer block products (4 int32 lanes summing to the block's dot product) ----

// q4 nibbles (as int8 0..15) lo = elements 0..15, hi = 16..31, times inputs a0, a1; lanes start at `init`.
NEON_INLINE int32x4_t q4_block_neon(int8x16_t lo, int8x16_t hi, int8x16_t a0, int8x16_t a1, int32x4_t init) {
    int16x8_t p0 = vmull_s8(vget_low_s8(lo), vget_low_s8(a0));
    p0 = vmlal_high_s8(p0, lo, a0);
    int16x8_t p1 = vmull_s8(vget_low_s8(hi), vget_low_s8(a1));
    p1 = vmlal_high_s8(p1, hi, a1);
    return vpadalq_s16(vpadalq_s16(init, p0), p1);
}

DOT_INLINE int32x4_t q4_block_dot(int8x16_t lo, int8x16_t hi, int8x16_t a0, int8x16_t a1, int32x4_t init) {
    return vdotq_s32(vdotq_s32(init, lo, a0), hi, a1);
}

// The q8 block as two halves w0 = elements 0..15, w1 = 16..31: the same shapes as q4.
#define q8_block_neon q4_block_neon
#define q8_block_dot q4_block_dot

NEON_INLINE float hsum(float32x4_t v) { return vaddvq_f32(v); }

// q5: ORs bit 4 of each element into the nibbles: qh bits 0..15 go to lo (elements 0..15),
// 16..31 to hi. Each qh byte is copied to 8 lanes and tested against one bit per lane.
NEON_INLINE void q5_high_bits(uint32_t qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit_table[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const uint8x16_t bits = vld1q_u8(bit_table), b4 = vdupq_n_u8(0x10);
    uint8x16_t l = vcombine_u8(vdup_n_u8((uint8_t)qh), vdup_n_u8((uint8_t)(qh >> 8)));
    uint8x16_t h = vcombine_u8(vdup_n_u8((uint8_t)(qh >> 16)), vdup_n_u8((uint8_t)(qh >> 24)));
    *lo = vorrq_u8(*lo, vandq_u8(vtstq_u8(l, bits), b4));
    *hi = vorrq_u8(*hi, vandq_u8(vtstq_u8(h, bits), b4));
}

// ---- tiles, one body for both integer product flavours ----
#define DEFINE_Q_TILES(SUFFIX, INLINE, BLOCK)                                                                  \
    INLINE void q4_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,     \
                                 float *y, size_t ys, size_t r, const int R, const int T, const int FIVE) {   \
        const size_t nb = cols / GT_BLOCK;                                                                    \
        const size_t block_bytes = FIVE ? GT_Q5_BLOCK_BYTES : GT_Q4_BLOCK_BYTES;                              \
        float32x4_t acc[4][4];                                                                                \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = vdupq_n_f32(0.0f);                              \
        const uint8_t *wr[4];                                                                                 \
        GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;                                       \
        const uint8_t *pf = w + (r + R) * rs; /* the next tile's rows */                                      \
        const size_t pf_step = R * rs / nb;                                                                   \
        const uint8x16_t m4 = vdupq_n_u8(0x0f);                                                               \
        for (size_t b = 0; b < nb; b++) {                                                                     \
            GT_PREFETCH_SPAN(pf + b * pf_step, pf_step);                                                      \
            int8x16_t lo[4], hi[4];                                                                           \
            float wd[4];                                                                                      \
            GT_UNROLL for (int i = 0; i < R; i++) {                                                           \
                const uint8_t *p = wr[i] + b * block_bytes;                                                   \
                uint8x16_t v = vld1q_u8(p + (FIVE ? 6 : 2));                                                  \
                uint8x16_t l = vandq_u8(v, m4), h = vshrq_n_u8(v, 4);                                         \
                if (FIVE) q5_high_bits(gt_load_u32(p + 2), &l, &h);                                           \
                lo[i] = vreinterpretq_s8_u8(l);                                                               \
                hi[i] = vreinterpretq_s8_u8(h);                                                               \
                wd[i] = load_scale(p);                                                                        \
            }                                                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) {                                                           \
                const uint8_t *a = act + t * as;                                                              \
                const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                                \
                int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);                                          \
                float ad = gt_act_d(a, nb)[b];                                                                \
                int32x4_t init = vdupq_n_s32(gt_act_c(a, nb)[b] * (FIVE ? 2 : 1));                            \
                GT_UNROLL for (int i = 0; i < R; i++) {                                                       \
                    int32x4_t s = BLOCK(lo[i], hi[i], a0, a1, init);                                          \
                    acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(s), wd[i] * ad);                         \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum(acc[i][t]);                        \
    }                                                                                                         \
                                                                                                              \
    INLINE void q8_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,     \
                                 float *y, size_t ys, size_t r, const int R, const int T) {                   \
        const size_t nb = cols / GT_BLOCK;                                                                    \
        float32x4_t acc[4][4];                                                                                \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = vdupq_n_f32(0.0f);                              \
        const uint8_t *wr[4];                                                                                 \
        GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;                                       \
        const uint8_t *pf = w + (r + R) * rs; /* the next tile's rows */                                      \
        const size_t pf_step = R * rs / nb;                                                                   \
        const int32x4_t zero = vdupq_n_s32(0);                                                                \
        for (size_t b = 0; b < nb; b++) {                                                                     \
            GT_PREFETCH_SPAN(pf + b * pf_step, pf_step);                                                      \
            int8x16_t w0[4], w1[4];                                                                           \
            float wd[4];                                                                                      \
            GT_UNROLL for (int i = 0; i < R; i++) {                                                           \
                const uint8_t *p = wr[i] + b * GT_Q8_BLOCK_BYTES;                                             \
                w0[i] = vld1q_s8((const int8_t *)(p + 2));                                                    \
                w1[i] = vld1q_s8((const int8_t *)(p + 18));                                                   \
                wd[i] = load_scale(p);                                                                        \
            }                                                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) {                                                           \
                const uint8_t *a = act + t * as;                                                              \
                const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                                \
                int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);                                          \
                float ad = gt_act_d(a, nb)[b];                                                                \
                GT_UNROLL for (int i = 0; i < R; i++) {                                                       \
                    int32x4_t s = BLOCK(w0[i], w1[i], a0, a1, zero);                                          \
                    acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(s), wd[i] * ad);                         \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                 \
            GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum(acc[i][t]);                        \
    }

DEFINE_Q_TILES(neon, NEON_INLINE, q4_block_neon)
DEFINE_Q_TILES(dot, DOT_INLINE, q4_block_dot)

// ---- f32 / bf16 (f32 inputs); 8 columns per step in two 4-lane accumulators per row ----

NEON_INLINE float32x4_t bf16_lo(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)); }
NEON_INLINE float32x4_t bf16_hi(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)); }

NEON_INLINE void load_w8(const uint8_t *p, const int bf16, float32x4_t *w0, float32x4_t *w1) {
    if (bf16) {
        uint16x8_t v = vld1q_u16((const uint16_t *)p);
        *w0 = bf16_lo(v);
        *w1 = bf16_hi(v);
    } else {
        *w0 = vld1q_f32((const float *)p);
        *w1 = vld1q_f32((const float *)p + 4);
    }
}

NEON_INLINE void float_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, const int R, const int T, const int bf16) {
    const size_t esize = bf16 ? 2 : 4;
    float32x4_t acc0[4][4], acc1[4][4];
    GT_UNROLL for (int i = 0; i < R; i++)
        GT_UNROLL for (int t = 0; t < T; t++) acc0[i][t] = acc1[i][t] = vdupq_n_f32(0.0f);
    const uint8_t *wr[4];
    const float *xt[4];
    GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;
    GT_UNROLL for (int t = 0; t < T; t++) xt[t] = (const float *)(act + t * as);
    const uint8_t *pf = w + (r + R) * rs;  // the next tile's rows
    const size_t pf_step = R * 8 * esize;
    size_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        GT_PREFETCH_SPAN(pf + k / 8 * pf_step, pf_step);
        float32x4_t w0[4], w1[4];
        GT_UNROLL for (int i = 0; i < R; i++) load_w8(wr[i] + k * esize, bf16, &w0[i], &w1[i]);
        GT_UNROLL for (int t = 0; t < T; t++) {
            float32x4_t x0 = vld1q_f32(xt[t] + k), x1 = vld1q_f32(xt[t] + k + 4);
            GT_UNROLL for (int i = 0; i < R; i++) {
                acc0[i][t] = vfmaq_f32(acc0[i][t], w0[i], x0);
                acc1[i][t] = vfmaq_f32(acc1[i][t], w1[i], x1);
            }
        }
    }
    if (k < cols) {
        // The last cols % 8 columns, zero-padded.
        size_t n = cols - k;
        float32x4_t w0[4], w1[4];
        GT_UNROLL for (int i = 0; i < R; i++) {
            uint8_t tmp[32] = {0};
            memcpy(tmp, wr[i] + k * esize, n * esize);
            load_w8(tmp, bf16, &w0[i], &w1[i]);
        }
        GT_UNROLL for (int t = 0; t < T; t++) {
            float tmp[8] = {0};
            memcpy(tmp, xt[t] + k, n * sizeof(float));
            float32x4_t x0 = vld1q_f32(tmp), x1 = vld1q_f32(tmp + 4);
            GT_UNROLL for (int i = 0; i < R; i++) {
                acc0[i][t] = vfmaq_f32(acc0[i][t], w0[i], x0);
                acc1[i][t] = vfmaq_f32(acc1[i][t], w1[i], x1);
            }
        }
    }
    GT_UNROLL for (int i = 0; i < R; i++)
        GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum(vaddq_f32(acc0[i][t], acc1[i][t]));
}

#define F32_TILE(w, rs, cols, a, as, y, ys, r, R, T) float_tile(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define BF16_TILE(w, rs, cols, a, as, y, ys, r, R, T) float_tile(w, rs, cols, a, as, y, ys, r, R, T, 1)

#define Q4_TILE_NEON(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_neon(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define Q5_TILE_NEON(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_neon(w, rs, cols, a, as, y, ys, r, R, T, 1)
#define Q4_TILE_DOT(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_dot(w, rs, cols, a, as, y, ys, r, R, T, 0)
#define Q5_TILE_DOT(w, rs, cols, a, as, y, ys, r, R, T) q4_tile_dot(w, rs, cols, a, as, y, ys, r, R, T, 1)

GT_DEFINE_DRIVER(neon_q4, Q4_TILE_NEON, NEON_FN)
GT_DEFINE_DRIVER(neon_q5, Q5_TILE_NEON, NEON_FN)
GT_DEFINE_DRIVER(neon_q8, q8_tile_neon, NEON_FN)
GT_DEFINE_DRIVER(dot_q4, Q4_TILE_DOT, DOT_FN)
GT_DEFINE_DRIVER(dot_q5, Q5_TILE_DOT, DOT_FN)
GT_DEFINE_DRIVER(dot_q8, q8_tile_dot, DOT_FN)
GT_DEFINE_DRIVER(neon_f32, F32_TILE, NEON_FN)
GT_DEFINE_DRIVER(neon_bf16, BF16_TILE, NEON_FN)

const gt_kernel_table gt_kernels_neon = { "neon", { neon_f32, neon_bf16, neon_q8, neon_q4, neon_q5, gt_q4k_neon, gt_q6k_neon } };
// f32 / bf16 have no integer products: the dotprod path shares the NEON kernels.
const gt_kernel_table gt_kernels_neon_dotprod = { "neon+dotprod", { neon_f32, neon_bf16, dot_q8, dot_q4, dot_q5,
                                                                     gt_q4k_dot, gt_q6k_dot } };

#endif
