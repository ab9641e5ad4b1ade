// AArch64 NEON steps of the tiled attention (attention_internal.h), for every AArch64 CPU (no
// dotprod needed: all f32). 4 floats per register; one accumulator register per dot product,
// summed in order over head_dim, then vaddvq_f32, then the scalar tail of a head_dim that is
// not whole registers, in every tile shape.
#if defined(__aarch64__)

#include "attention_internal.h"
#include <arm_neon.h>

#define NEON_INLINE static inline __attribute__((always_inline))

// 4 cached floats from row p at x: f32, or halves widened (vcvt_f32_f16, exact; every AArch64
// CPU has it).
NEON_INLINE float32x4_t load4(const void *p, size_t x, int half) {
    if (half) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + x)));
    return vld1q_f32((const float *)p + x);
}

// One cached float (a tail of head_dim).
NEON_INLINE float load1(const void *p, size_t x, int half) {
    return half ? gt_att_h2f(((const uint16_t *)p)[x]) : ((const float *)p)[x];
}

// exp with the steps of gt_att_expf (multiply-adds fused); 0 below GT_EXP_MIN (and for -inf).
NEON_INLINE float32x4_t exp4(float32x4_t x) {
    const uint32x4_t keep = vcgeq_f32(x, vdupq_n_f32(GT_EXP_MIN));
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(GT_EXP_MIN)), vdupq_n_f32(88.0f));
    const float32x4_t shift = vdupq_n_f32(GT_EXP_SHIFT);
    const float32x4_t n = vsubq_f32(vfmaq_f32(shift, x, vdupq_n_f32(GT_EXP_LOG2E)), shift);
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(GT_EXP_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(GT_EXP_LN2_LO));
    float32x4_t p = vdupq_n_f32(GT_EXP_P0);
    p = vfmaq_f32(vdupq_n_f32(GT_EXP_P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(GT_EXP_P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(GT_EXP_P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(GT_EXP_P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(GT_EXP_P5), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
    const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    const float32x4_t e = vmulq_f32(p, vreinterpretq_f32_s32(bits));
    return vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(e)));
}

// tanh(y) = sign(y) (1 - t) / (1 + t), t = exp(-2 |y|).
NEON_INLINE float32x4_t tanh4(float32x4_t y) {
    const float32x4_t t = exp4(vmulq_f32(vdupq_n_f32(-2.0f), vabsq_f32(y)));
    const float32x4_t one = vdupq_n_f32(1.0f);
    const float32x4_t v = vdivq_f32(vsubq_f32(one, t), vaddq_f32(one, t));
    const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(y), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(v), sign));
}

// R x K dot products (R, K <= 4, constants after inlining).
NEON_INLINE void tile(const float *const *q, const void *const *k, size_t d, float *s, size_t lds, int R, int K,
                      int half) {
    float32x4_t acc[4][4];
    GT_UNROLL
    for (int i = 0; i < R; i++)
        GT_UNROLL
        for (int j = 0; j < K; j++) acc[i][j] = vdupq_n_f32(0.0f);
    size_t x = 0;
    for (; x + 4 <= d; x += 4) {
        float32x4_t kv[4];
        GT_UNROLL
        for (int j = 0; j < K; j++) kv[j] = load4(k[j], x, half);
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            const float32x4_t qv = vld1q_f32(q[i] + x);
            GT_UNROLL
            for (int j = 0; j < K; j++) acc[i][j] = vfmaq_f32(acc[i][j], qv, kv[j]);
        }
    }
    GT_UNROLL
    for (int i = 0; i < R; i++) {
        GT_UNROLL
        for (int j = 0; j < K; j++) {
            float sum = vaddvq_f32(acc[i][j]);
            for (size_t t = x; t < d; t++) sum = fmaf(q[i][t], load1(k[j], t, half), sum);
            s[i * lds + j] = sum;
        }
    }
}

NEON_INLINE void tile_row(const float *const *q, const void *const *k, size_t nk, size_t d, float *s, int R,
                          size_t lds, int half) {
    size_t j = 0;
    if (R == 4) {
        for (; j + 2 <= nk; j += 2) tile(q, k + j, d, s + j, lds, 4, 2, half);
    } else {
        for (; j + 4 <= nk; j += 4) tile(q, k + j, d, s + j, lds, R, 4, half);
        for (; j + 2 <= nk; j += 2) tile(q, k + j, d, s + j, lds, R, 2, half);
    }
    for (; j < nk; j++) tile(q, k + j, d, s + j, lds, R, 1, half);
}

NEON_INLINE void scores_any(const float *const *q, size_t nr, const void *const *k, size_t nk, size_t d, float *s,
                            size_t lds, int half) {
    size_t r = 0;
    for (; r + 4 <= nr; r += 4) tile_row(q + r, k, nk, d, s + r * lds, 4, lds, half);
    for (; r + 2 <= nr; r += 2) tile_row(q + r, k, nk, d, s + r * lds, 2, lds, half);
    for (; r < nr; r++) tile_row(q + r, k, nk, d, s + r * lds, 1, lds, half);
}

static void scores_neon(const float *const *q, size_t nr, const float *const *k, size_t nk, size_t d, float *s,
                        size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 0);
}

static void scores_f16_neon(const float *const *q, size_t nr, const uint16_t *const *k, size_t nk, size_t d, float *s,
                            size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 1);
}

static float transform_max_neon(float *s, size_t b, size_t e, float scale, float softcap) {
    const uint32x4_t iota = {0, 1, 2, 3};
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    for (int c = 0; c < GT_ATT_CHUNK; c += 4) {
        float32x4_t x = vmulq_f32(vld1q_f32(s + c), vdupq_n_f32(scale));
        if (softcap > 0) x = vmulq_f32(tanh4(vdivq_f32(x, vdupq_n_f32(softcap))), vdupq_n_f32(softcap));
        const uint32x4_t j = vaddq_u32(iota, vdupq_n_u32((uint32_t)c));
        const uint32x4_t in = vandq_u32(vcgeq_u32(j, vdupq_n_u32((uint32_t)b)), vcltq_u32(j, vdupq_n_u32((uint32_t)e)));
        x = vbslq_f32(in, x, vdupq_n_f32(-INFINITY));
        vst1q_f32(s + c, x);
        vmax = vmaxq_f32(vmax, x);
    }
    return vmaxvq_f32(vmax);
}

static float exp_sum_neon(float *s, float m) {
    float32x4_t sum = vdupq_n_f32(0.0f);
    const float32x4_t mv = vdupq_n_f32(m);
    for (int c = 0; c < GT_ATT_CHUNK; c += 4) {
        const float32x4_t p = exp4(vsubq_f32(vld1q_f32(s + c), mv));
        vst1q_f32(s + c, p);
        sum = vaddq_f32(sum, p);
    }
    return vaddvq_f32(sum);
}

// R rows (<= 4) of o += p v, keys jb..je-1 (outside them every p of these rows is 0).
NEON_INLINE void acc_rows(const float *p, size_t ldp, const void *const *v, size_t jb, size_t je, size_t d, float *o,
                          size_t ldo, int R, int half) {
    size_t x = 0;
    for (; x + 8 <= d; x += 8) {
        float32x4_t acc[4][2];
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            acc[i][0] = vld1q_f32(o + i * ldo + x);
            acc[i][1] = vld1q_f32(o + i * ldo + x + 4);
        }
        for (size_t j = jb; j < je; j++) {
            const float32x4_t v0 = load4(v[j], x, half), v1 = load4(v[j], x + 4, half);
            GT_UNROLL
            for (int i = 0; i < R; i++) {
                const float w = p[i * ldp + j];
                acc[i][0] = vfmaq_n_f32(acc[i][0], v0, w);
                acc[i][1] = vfmaq_n_f32(acc[i][1], v1, w);
            }
        }
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            vst1q_f32(o + i * ldo + x, acc[i][0]);
            vst1q_f32(o + i * ldo + x + 4, acc[i][1]);
        }
    }
    for (; x < d; x++) {
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            float a = o[i * ldo + x];
            for (size_t j = jb; j < je; j++) a = fmaf(p[i * ldp + j], load1(v[j], x, half), a);
            o[i * ldo + x] = a;
        }
    }
}

NEON_INLINE void accumulate_any(const float *p, size_t ldp, size_t nr, const void *const *v, size_t nk, size_t d,
                                float *o, size_t ldo, int half) {
    size_t r = 0, jb, je;
    for (; r + 4 <= nr; r += 4) {
        gt_att_live_keys(p + r * ldp, ldp, nk, 4, &jb, &je);
        acc_rows(p + r * ldp, ldp, v, jb, je, d, o + r * ldo, ldo, 4, half);
    }
    for (; r + 2 <= nr; r += 2) {
        gt_att_live_keys(p + r * ldp, ldp, nk, 2, &jb, &je);
        acc_rows(p + r * ldp, ldp, v, jb, je, d, o + r * ldo, ldo, 2, half);
    }
    for (; r < nr; r++) {
        gt_att_live_keys(p + r * ldp, ldp, nk, 1, &jb, &je);
        acc_rows(p + r * ldp, ldp, v, jb, je, d, o + r * ldo, ldo, 1, half);
    }
}

static void accumulate_neon(const float *p, size_t ldp, size_t nr, const float *const *v, size_t nk, size_t d,
                            float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 0);
}

static void accumulate_f16_neon(const float *p, size_t ldp, size_t nr, const uint16_t *const *v, size_t nk, size_t d,
                                float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 1);
}

const gt_attention_isa gt_attention_neon = {scores_neon,     transform_max_neon, exp_sum_neon, accumulate_neon,
                                            scores_f16_neon, accumulate_f16_neon};

#endif
