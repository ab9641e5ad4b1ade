// AVX-512 steps of the tiled attention (attention_internal.h): 16 floats per register, fused
// multiply-adds, masked loads for a head_dim that is not whole registers. Each dot product is one
// accumulator register summed over head_dim in order, then _mm512_reduce_add_ps, in every tile
// shape, so a score never depends on the tile it was computed in.
#if defined(__x86_64__) || defined(_M_X64)

#include "attention_internal.h"
#include <immintrin.h>

// BW + VL (checked by gt_cpu_has_avx512vnni) for the masked loads of halves; F16C with AVX2.
#define A512_FN __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))
#define A512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))

// 16 cached floats from row p at x: f32, or halves widened (vcvtph2ps, exact).
A512_INLINE __m512 load16(const void *p, size_t x, int half) {
    if (half) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + x)));
    return _mm512_loadu_ps((const float *)p + x);
}

// The lanes of mask m, the rest 0.
A512_INLINE __m512 load16_mask(const void *p, size_t x, __mmask16 m, int half) {
    if (half) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + x));
    return _mm512_maskz_loadu_ps(m, (const float *)p + x);
}

// exp with the steps of gt_att_expf (multiply-adds fused); 0 below GT_EXP_MIN (and for -inf).
A512_INLINE __m512 exp16(__m512 x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(GT_EXP_MIN), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(GT_EXP_MIN)), _mm512_set1_ps(88.0f));
    const __m512 shift = _mm512_set1_ps(GT_EXP_SHIFT);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(GT_EXP_LOG2E), shift), shift);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(GT_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(GT_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(GT_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GT_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GT_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GT_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GT_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GT_EXP_P5));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, p, _mm512_castsi512_ps(bits));
}

// tanh(y) = sign(y) (1 - t) / (1 + t), t = exp(-2 |y|).
A512_INLINE __m512 tanh16(__m512 y) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 t = exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), _mm512_andnot_ps(sign, y)));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 v = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
    return _mm512_or_ps(v, _mm512_and_ps(sign, y));
}

// R x K dot products (R, K <= 4, constants after inlining).
A512_INLINE void tile(const float *const *q, const void *const *k, size_t d, float *s, size_t lds, int R, int K,
                      int half) {
    __m512 acc[4][4];
    GT_UNROLL
    for (int i = 0; i < R; i++)
        GT_UNROLL
        for (int j = 0; j < K; j++) acc[i][j] = _mm512_setzero_ps();
    size_t x = 0;
    for (; x + 16 <= d; x += 16) {
        __m512 kv[4];
        GT_UNROLL
        for (int j = 0; j < K; j++) kv[j] = load16(k[j], x, half);
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            const __m512 qv = _mm512_loadu_ps(q[i] + x);
            GT_UNROLL
            for (int j = 0; j < K; j++) acc[i][j] = _mm512_fmadd_ps(qv, kv[j], acc[i][j]);
        }
    }
    if (x < d) {
        const __mmask16 m = (__mmask16)((1u << (d - x)) - 1);
        __m512 kv[4];
        GT_UNROLL
        for (int j = 0; j < K; j++) kv[j] = load16_mask(k[j], x, m, half);
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            const __m512 qv = _mm512_maskz_loadu_ps(m, q[i] + x);
            GT_UNROLL
            for (int j = 0; j < K; j++) acc[i][j] = _mm512_fmadd_ps(qv, kv[j], acc[i][j]);
        }
    }
    GT_UNROLL
    for (int i = 0; i < R; i++)
        GT_UNROLL
        for (int j = 0; j < K; j++) s[i * lds + j] = _mm512_reduce_add_ps(acc[i][j]);
}

A512_INLINE void tile_row(const float *const *q, const void *const *k, size_t nk, size_t d, float *s, int R,
                          size_t lds, int half) {
    size_t j = 0;
    for (; j + 4 <= nk; j += 4) tile(q, k + j, d, s + j, lds, R, 4, half);  // 32 registers: 16 sums
    for (; j + 2 <= nk; j += 2) tile(q, k + j, d, s + j, lds, R, 2, half);
    for (; j < nk; j++) tile(q, k + j, d, s + j, lds, R, 1, half);
}

A512_INLINE void scores_any(const float *const *q, size_t nr, const void *const *k, size_t nk, size_t d, float *s,
                            size_t lds, int half) {
    size_t r = 0;
    for (; r + 4 <= nr; r += 4) tile_row(q + r, k, nk, d, s + r * lds, 4, lds, half);
    for (; r + 2 <= nr; r += 2) tile_row(q + r, k, nk, d, s + r * lds, 2, lds, half);
    for (; r < nr; r++) tile_row(q + r, k, nk, d, s + r * lds, 1, lds, half);
}

A512_FN static void scores_avx512(const float *const *q, size_t nr, const float *const *k, size_t nk, size_t d,
                                  float *s, size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 0);
}

A512_FN static void scores_f16_avx512(const float *const *q, size_t nr, const uint16_t *const *k, size_t nk, size_t d,
                                      float *s, size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 1);
}

A512_FN static float transform_max_avx512(float *s, size_t b, size_t e, float scale, float softcap) {
    const uint64_t range = (e >= 64 ? ~0ull : (1ull << e) - 1) & ~((1ull << b) - 1);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int c = 0; c < GT_ATT_CHUNK; c += 16) {
        __m512 x = _mm512_mul_ps(_mm512_loadu_ps(s + c), _mm512_set1_ps(scale));
        if (softcap > 0) x = _mm512_mul_ps(tanh16(_mm512_div_ps(x, _mm512_set1_ps(softcap))), _mm512_set1_ps(softcap));
        x = _mm512_mask_blend_ps((__mmask16)(range >> c), _mm512_set1_ps(-INFINITY), x);
        _mm512_storeu_ps(s + c, x);
        vmax = _mm512_max_ps(vmax, x);
    }
    return _mm512_reduce_max_ps(vmax);
}

A512_FN static float exp_sum_avx512(float *s, float m) {
    __m512 sum = _mm512_setzero_ps();
    const __m512 mv = _mm512_set1_ps(m);
    for (int c = 0; c < GT_ATT_CHUNK; c += 16) {
        const __m512 p = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + c), mv));
        _mm512_storeu_ps(s + c, p);
        sum = _mm512_add_ps(sum, p);
    }
    return _mm512_reduce_add_ps(sum);
}

// R rows (<= 4) of o += p v, keys jb..je-1 (outside them every p of these rows is 0).
A512_INLINE void acc_rows(const float *p, size_t ldp, const void *const *v, size_t jb, size_t je, size_t d, float *o,
                          size_t ldo, int R, int half) {
    size_t x = 0;
    for (; x + 64 <= d; x += 64) {  // 4 rows x 4 registers: 16 sums, each v load used 4 times
        __m512 acc[4][4];
        GT_UNROLL
        for (int i = 0; i < R; i++)
            GT_UNROLL
            for (int c = 0; c < 4; c++) acc[i][c] = _mm512_loadu_ps(o + i * ldo + x + 16 * c);
        for (size_t j = jb; j < je; j++) {
            __m512 vv[4];
            GT_UNROLL
            for (int c = 0; c < 4; c++) vv[c] = load16(v[j], x + 16 * c, half);
            GT_UNROLL
            for (int i = 0; i < R; i++) {
                const __m512 w = _mm512_set1_ps(p[i * ldp + j]);
                GT_UNROLL
                for (int c = 0; c < 4; c++) acc[i][c] = _mm512_fmadd_ps(w, vv[c], acc[i][c]);
            }
        }
        GT_UNROLL
        for (int i = 0; i < R; i++)
            GT_UNROLL
            for (int c = 0; c < 4; c++) _mm512_storeu_ps(o + i * ldo + x + 16 * c, acc[i][c]);
    }
    for (; x < d; x += 16) {
        const __mmask16 m = d - x >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - x)) - 1);
        __m512 acc[4];
        GT_UNROLL
        for (int i = 0; i < R; i++) acc[i] = _mm512_maskz_loadu_ps(m, o + i * ldo + x);
        for (size_t j = jb; j < je; j++) {
            const __m512 v0 = load16_mask(v[j], x, m, half);
            GT_UNROLL
            for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i * ldp + j]), v0, acc[i]);
        }
        GT_UNROLL
        for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(o + i * ldo + x, m, acc[i]);
    }
}

A512_INLINE void accumulate_any(const float *p, size_t ldp, size_t nr, const void *const *v, size_t nk, size_t d,
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

A512_FN static void accumulate_avx512(const float *p, size_t ldp, size_t nr, const float *const *v, size_t nk,
                                      size_t d, float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 0);
}

A512_FN static void accumulate_f16_avx512(const float *p, size_t ldp, size_t nr, const uint16_t *const *v, size_t nk,
                                          size_t d, float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 1);
}

const gt_attention_isa gt_attention_avx512 = {scores_avx512,   transform_max_avx512, exp_sum_avx512, accumulate_avx512,
                                              scores_f16_avx512, accumulate_f16_avx512};

#endif
