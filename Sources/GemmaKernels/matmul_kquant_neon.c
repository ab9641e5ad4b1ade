// AArch64 kernels for K-quant weights: NEON (every AArch64 CPU) and NEON + SDOT (ARMv8.2
// dotprod), chosen at run time like matmul_neon.c. The arithmetic of matmul_kquant.c, so both are
// bit-identical to each other, to the scalar path and to the x86-64 paths.
//
// Integer lanes: SDOT sums 4 consecutive byte products into each int32 lane; two SDOTs into one
// accumulator give the contract's lane (Q4_K: a row's two 16-byte halves; Q6_K: bytes regrouped
// by 8, q6k_prep_sdot). Without SDOT the same sums come from widening multiplies (vmull_s8 /
// vmull_high_s8: int16 products) and pairwise adds. No int16 can overflow: a Q4_K lane's two
// halves are added in int16 first, at most 4 x 15 x 127; Q6_K's values are taken as q - 32
// (-32..31), at most 2 x 32 x 127 per int16.
// f32: vfmaq_n_f32 / vfmaq_f32 are the contract's fused multiply-adds, and the final sums are
// spelled out in its order ((v0 + v2) + (v1 + v3), not faddp's (v0 + v1) + (v2 + v3)).
#if defined(__aarch64__)

#include "matmul_internal.h"
#include "matmul_tiles.h"
#include <arm_neon.h>
#include "matmul_neon.h"

NEON_INLINE float hsum4(float32x4_t v) {  // (v0 + v2) + (v1 + v3)
    return vpadds_f32(vadd_f32(vget_low_f32(v), vget_high_f32(v)));
}

// ---- integer products ----
// 4 lanes of 4 consecutive products of w and a (16 bytes each) as int16 pairs: [2m] + [2m+1].
NEON_INLINE int16x8_t pair_products(int8x16_t w, int8x16_t a) {
    return vpaddq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(a)), vmull_high_s8(w, a));
}
// Q4_K: lane k = elements 4k..4k+3 of w0 . a0 plus those of w1 . a1.
NEON_INLINE int32x4_t q4k_dot_neon(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return vpaddlq_s16(vaddq_s16(pair_products(w0, a0), pair_products(w1, a1)));
}
DOT_INLINE int32x4_t q4k_dot_sdot(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, a0), w1, a1);
}
// Q6_K: a block's 4 lanes [sub-block 0 lane 0, lane 1, sub-block 1 lane 0, lane 1], lane v of a
// sub-block of 16 summing its elements 4v..4v+3 and 8+4v..8+4v+3. The tiles hand each kernel the
// block's values as q_lo / q_hi (elements 0..15 / 16..31) after its Q6PREP, and the inputs likewise.
// NEON: values q - 32, inputs as they are; the int16 sums of elements i and i + 8 of a sub-block
// (vmull_s8 + vmull_high_s8, at most 2 x 32 x 127), then pairwise (4 elements), then pairwise
// across the two sub-blocks' vectors: [0+1 of sub-block 0, 2+3 of it, 0+1 of sub-block 1, 2+3].
NEON_INLINE void q6k_prep_neon(int8x16_t lo, int8x16_t hi, int8x16_t *p0, int8x16_t *p1) { *p0 = lo, *p1 = hi; }
NEON_INLINE int32x4_t q6k_half_neon(int8x16_t w, int8x16_t a) {
    return vpaddlq_s16(vaddq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(a)), vmull_high_s8(w, a)));
}
NEON_INLINE int32x4_t q6k_dot_neon(int32x4_t start, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    (void)start;  // always 0 here
    return vpaddq_s32(q6k_half_neon(w0, a0), q6k_half_neon(w1, a1));
}
NEON_INLINE int32x4_t q6k_start_zero(int8x16_t a0, int8x16_t a1) {  // the NEON tiles' (never called: Q6START1 = 0)
    (void)a0, (void)a1;
    return vdupq_n_s32(0);
}
// SDOT: both operands regrouped by 8 bytes, [elements 0..7, 16..23] and [8..15, 24..31], so that
// two SDOTs into one accumulator give the lanes directly. On a single token the values stay q
// (0..63) and each lane starts from -32 x the sum of its 8 inputs (q6k_start_sdot, computed once
// per block and shared by the rows, as the x86 kernels do): the same exact sums, with no
// subtraction and no zeroed accumulator per row. (In batches the values are shared by the tokens
// and the starts are not, so there the subtraction is cheaper.)
DOT_INLINE void q6k_prep_sdot(int8x16_t lo, int8x16_t hi, int8x16_t *p0, int8x16_t *p1) {
    *p0 = vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(lo), vreinterpretq_s64_s8(hi)));
    *p1 = vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(lo), vreinterpretq_s64_s8(hi)));
}
DOT_INLINE int32x4_t q6k_start_sdot(int8x16_t a0, int8x16_t a1) {
    const int8x16_t k32 = vdupq_n_s8(32);
    return vnegq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), k32, a0), k32, a1));
}
DOT_INLINE int32x4_t q6k_dot_sdot(int32x4_t start, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(start, w0, a0), w1, a1);
}

// ---- scales ----
// Q4_K super-block at p: dsc[j] = d * sc_j, mq[j] = dmin * m_j / 2 (exact products; see
// matmul_kquant_x86.h for the unpacking).
NEON_INLINE void q4k_scales_neon(const uint8_t *p, float *dsc, float *mq) {
    uint32_t u[3], sc[2], m[2];
    memcpy(u, p + 4, 12);
    sc[0] = u[0] & 0x3f3f3f3fu;
    m[0] = u[1] & 0x3f3f3f3fu;
    sc[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    m[1] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    uint16x8_t s16 = vmovl_u8(vld1_u8((const uint8_t *)sc)), m16 = vmovl_u8(vld1_u8((const uint8_t *)m));
    const float d = load_scale(p), dm = load_scale(p + 2) * 0.5f;
    vst1q_f32(dsc, vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(s16))), d));
    vst1q_f32(dsc + 4, vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(s16)), d));
    vst1q_f32(mq, vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(m16))), dm));
    vst1q_f32(mq + 4, vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(m16)), dm));
}

// Q6_K: d * sc[0..15].
NEON_INLINE void q6k_scales_neon(const uint8_t *p, float *ds) {
    int8x16_t s = vld1q_s8((const int8_t *)(p + 192));
    int16x8_t lo = vmovl_s8(vget_low_s8(s)), hi = vmovl_high_s8(s);
    const float d = load_scale(p + 208);
    vst1q_f32(ds, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    vst1q_f32(ds + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    vst1q_f32(ds + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    vst1q_f32(ds + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

// 16 Q6_K values of block c of a half, minus `offset` (32 or 0): the low (c < 2) or high nibbles of ql, bits
// 2c, 2c+1 of qh (ql, qh: 16 bytes at the same position l).
NEON_INLINE int8x16_t q6k_values_neon(uint8x16_t ql, uint8x16_t qh, const int c, const int offset) {
    uint8x16_t lo = c >= 2 ? vshrq_n_u8(ql, 4) : vandq_u8(ql, vdupq_n_u8(0x0f));
    uint8x16_t hi = c == 0 ? vshlq_n_u8(qh, 4) : c == 1 ? vshlq_n_u8(qh, 2) : c == 2 ? qh : vshrq_n_u8(qh, 2);
    uint8x16_t q = vorrq_u8(lo, vandq_u8(hi, vdupq_n_u8(0x30)));
    return offset ? vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8((int8_t)offset)) : vreinterpretq_s8_u8(q);
}

#define DEFINE_KQ_TILES(SUFFIX, INLINE, Q4DOT, Q6DOT, Q6START1, Q6START, Q6PREP)                                      \
    INLINE void q4k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,   \
                                  float *y, size_t ys, size_t r, const int R, const int T) {                 \
        const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;                                           \
        float32x4_t acc[4][4];                                                                               \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                \
            GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = vdupq_n_f32(0.0f);                             \
        const uint8_t *wr[4];                                                                                \
        GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;                                      \
        const uint8_t *pf = w + (r + R) * rs; /* the next tile's rows */                                     \
        const size_t pf_step = R * rs / nsb;                                                                 \
        const uint8x16_t m4 = vdupq_n_u8(0x0f);                                                              \
        for (size_t s = 0; s < nsb; s++) {                                                                   \
            const size_t off = s * GT_Q4K_BLOCK_BYTES;                                                       \
            for (size_t l = 0; l < pf_step; l += 64) __builtin_prefetch(pf + s * pf_step + l, 0, 3);         \
            float dsc[4][8], mq[4][8], am[4][8];                                                             \
            GT_UNROLL for (int i = 0; i < R; i++) q4k_scales_neon(wr[i] + off, dsc[i], mq[i]);               \
            GT_UNROLL for (int t = 0; t < T; t++) {                                                          \
                const float *ad = gt_act_d(act + t * as, nb) + 8 * s;                                        \
                const int32_t *c = gt_act_c(act + t * as, nb) + 8 * s;                                       \
                vst1q_f32(am[t], vmulq_f32(vld1q_f32(ad), vcvtq_f32_s32(vld1q_s32(c))));                     \
                vst1q_f32(am[t] + 4, vmulq_f32(vld1q_f32(ad + 4), vcvtq_f32_s32(vld1q_s32(c + 4))));         \
            }                                                                                                \
            if (T == 1) { /* one token: d * sc times the input scales, ahead (the same products) */         \
                const float *ad = gt_act_d(act, nb) + 8 * s;                                                 \
                GT_UNROLL for (int i = 0; i < R; i++) {                                                      \
                    vst1q_f32(dsc[i], vmulq_f32(vld1q_f32(dsc[i]), vld1q_f32(ad)));                          \
                    vst1q_f32(dsc[i] + 4, vmulq_f32(vld1q_f32(dsc[i] + 4), vld1q_f32(ad + 4)));              \
                }                                                                                            \
            }                                                                                                \
            GT_UNROLL for (int g = 0; g < 4; g++) {                                                          \
                uint8x16_t v0[4], v1[4];                                                                     \
                GT_UNROLL for (int i = 0; i < R; i++) {                                                      \
                    v0[i] = vld1q_u8(wr[i] + off + 16 + 32 * g);                                             \
                    v1[i] = vld1q_u8(wr[i] + off + 32 + 32 * g);                                             \
                }                                                                                            \
                GT_UNROLL for (int h = 0; h < 2; h++) {                                                      \
                    const int j = 2 * g + h;                                                                 \
                    const size_t b = 8 * s + j;                                                              \
                    int8x16_t w0[4], w1[4];                                                                  \
                    GT_UNROLL for (int i = 0; i < R; i++) {                                                  \
                        w0[i] = vreinterpretq_s8_u8(h ? vshrq_n_u8(v0[i], 4) : vandq_u8(v0[i], m4));         \
                        w1[i] = vreinterpretq_s8_u8(h ? vshrq_n_u8(v1[i], 4) : vandq_u8(v1[i], m4));         \
                    }                                                                                        \
                    GT_UNROLL for (int t = 0; t < T; t++) {                                                  \
                        const uint8_t *a = act + t * as;                                                     \
                        const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                       \
                        int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);                                 \
                        float ad = gt_act_d(a, nb)[b];                                                       \
                        GT_UNROLL for (int i = 0; i < R; i++) {                                              \
                            int32x4_t L = Q4DOT(w0[i], w1[i], a0, a1);                                       \
                            float D = T == 1 ? dsc[i][j] : dsc[i][j] * ad;                                   \
                            acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(L), D);                         \
                        }                                                                                    \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            /* The mins: sub-blocks k and k + 4 into lane k. */                                              \
            GT_UNROLL for (int i = 0; i < R; i++) {                                                          \
                float32x4_t m0 = vld1q_f32(mq[i]), m1 = vld1q_f32(mq[i] + 4);                                \
                GT_UNROLL for (int t = 0; t < T; t++) {                                                      \
                    acc[i][t] = vfmaq_f32(acc[i][t], m0, vld1q_f32(am[t]));                                  \
                    acc[i][t] = vfmaq_f32(acc[i][t], m1, vld1q_f32(am[t] + 4));                              \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                \
            GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum4(acc[i][t]);                      \
    }                                                                                                        \
                                                                                                             \
    INLINE void q6k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,   \
                                  float *y, size_t ys, size_t r, const int R, const int T) {                 \
        const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;                                           \
        float32x4_t acc[4][4];                                                                               \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                \
            GT_UNROLL for (int t = 0; t < T; t++) acc[i][t] = vdupq_n_f32(0.0f);                             \
        const uint8_t *wr[4];                                                                                \
        GT_UNROLL for (int i = 0; i < R; i++) wr[i] = w + (r + i) * rs;                                      \
        const uint8_t *pf = w + (r + R) * rs;                                                                \
        const size_t pf_step = R * rs / nsb;                                                                 \
        for (size_t s = 0; s < nsb; s++) {                                                                   \
            const size_t off = s * GT_Q6K_BLOCK_BYTES;                                                       \
            for (size_t l = 0; l < pf_step; l += 64) __builtin_prefetch(pf + s * pf_step + l, 0, 3);         \
            /* 0: values q and lanes started by Q6START1 (one token, SDOT); 32: values q - 32. */           \
            const int off6 = Q6START1 && T == 1 ? 0 : 32;                                                    \
            float ds[4][16];                                                                                 \
            GT_UNROLL for (int i = 0; i < R; i++) q6k_scales_neon(wr[i] + off, ds[i]);                       \
            if (T == 1) { /* one token: d * sc[2b], d * sc[2b + 1] times ad[b], ahead (the same products) */ \
                const float32x4_t ad0 = vld1q_f32(gt_act_d(act, nb) + 8 * s);                                \
                const float32x4_t ad1 = vld1q_f32(gt_act_d(act, nb) + 8 * s + 4);                            \
                const float32x4_t e[4] = { vzip1q_f32(ad0, ad0), vzip2q_f32(ad0, ad0),                       \
                                           vzip1q_f32(ad1, ad1), vzip2q_f32(ad1, ad1) };                     \
                GT_UNROLL for (int i = 0; i < R; i++)                                                        \
                    GT_UNROLL for (int k = 0; k < 4; k++)                                                    \
                        vst1q_f32(ds[i] + 4 * k, vmulq_f32(vld1q_f32(ds[i] + 4 * k), e[k]));                 \
            }                                                                                                \
            for (int bi = 0; bi < 8; bi++) {                                                                 \
                const int h = bi / 4;                                                                        \
                const size_t b = 8 * s + bi;                                                                 \
                int8x16_t q0[4], q1[4];                                                                      \
                GT_UNROLL for (int i = 0; i < R; i++) {                                                      \
                    const uint8_t *ql = wr[i] + off + 64 * h + 32 * (bi & 1), *qh = wr[i] + off + 128 + 32 * h; \
                    uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);                                    \
                    uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);                                    \
                    int8x16_t v0, v1;                                                                        \
                    switch (bi & 3) {                                                                        \
                    case 0: v0 = q6k_values_neon(l0, h0, 0, off6); v1 = q6k_values_neon(l1, h1, 0, off6); break;   \
                    case 1: v0 = q6k_values_neon(l0, h0, 1, off6); v1 = q6k_values_neon(l1, h1, 1, off6); break;   \
                    case 2: v0 = q6k_values_neon(l0, h0, 2, off6); v1 = q6k_values_neon(l1, h1, 2, off6); break;   \
                    default: v0 = q6k_values_neon(l0, h0, 3, off6); v1 = q6k_values_neon(l1, h1, 3, off6); break;  \
                    }                                                                                        \
                    Q6PREP(v0, v1, &q0[i], &q1[i]);                                                          \
                }                                                                                            \
                GT_UNROLL for (int t = 0; t < T; t++) {                                                      \
                    const uint8_t *a = act + t * as;                                                         \
                    const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;                                           \
                    int8x16_t a0, a1;                                                                        \
                    Q6PREP(vld1q_s8(aq), vld1q_s8(aq + 16), &a0, &a1);                                       \
                    float ad = gt_act_d(a, nb)[b];                                                           \
                    const int32x4_t st = off6 ? vdupq_n_s32(0) : Q6START(a0, a1);                            \
                    GT_UNROLL for (int i = 0; i < R; i++) {                                                  \
                        /* [D0, D0, D1, D1]: sub-block 2bi's scale for lanes 0, 1, 2bi + 1's for 2, 3. */    \
                        const float32x2_t d2 = vld1_f32(ds[i] + 2 * bi);                                     \
                        const float32x4_t dd = vcombine_f32(vzip1_f32(d2, d2), vzip2_f32(d2, d2));           \
                        const float32x4_t D = T == 1 ? dd : vmulq_n_f32(dd, ad);                             \
                        acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(Q6DOT(st, q0[i], q1[i], a0, a1)), D); \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        GT_UNROLL for (int i = 0; i < R; i++)                                                                \
            GT_UNROLL for (int t = 0; t < T; t++) y[t * ys + r + i] = hsum4(acc[i][t]);                      \
    }

DEFINE_KQ_TILES(neon, NEON_INLINE, q4k_dot_neon, q6k_dot_neon, 0, q6k_start_zero, q6k_prep_neon)
DEFINE_KQ_TILES(sdot, DOT_INLINE, q4k_dot_sdot, q6k_dot_sdot, 1, q6k_start_sdot, q6k_prep_sdot)

GT_DEFINE_DRIVER(q4k_neon, q4k_tile_neon, NEON_FN)
GT_DEFINE_DRIVER(q6k_neon, q6k_tile_neon, NEON_FN)
GT_DEFINE_DRIVER(q4k_sdot, q4k_tile_sdot, DOT_FN)
GT_DEFINE_DRIVER(q6k_sdot, q6k_tile_sdot, DOT_FN)

void gt_q4k_neon(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count, float *y,
                 size_t ys, size_t r0, size_t r1) {
    q4k_neon(w, rs, cols, act, as, count, y, ys, r0, r1);
}
void gt_q6k_neon(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count, float *y,
                 size_t ys, size_t r0, size_t r1) {
    q6k_neon(w, rs, cols, act, as, count, y, ys, r0, r1);
}
DOT_FN void gt_q4k_dot(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    q4k_sdot(w, rs, cols, act, as, count, y, ys, r0, r1);
}
DOT_FN void gt_q6k_dot(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    q6k_sdot(w, rs, cols, act, as, count, y, ys, r0, r1);
}

#endif
