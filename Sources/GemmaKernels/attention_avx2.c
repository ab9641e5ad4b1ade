// AVX2 + FMA steps of the tiled attention (attention_internal.h): attention_avx512.c with 8
// floats per register (same structure: one accumulator register per dot product, summed in
// order over head_dim, then a fixed horizontal sum), for x86-64 CPUs without AVX-512.
#if defined(__x86_64__) || defined(_M_X64)

#include "attention_internal.h"
#include "simd_x86.h"

// AVX2_FN / AVX2_INLINE, hsum8 and hmax8: simd_x86.h. F16C (vcvtph2ps, for an f16 cache) comes
// with this path: gt_cpu_has_avx2 checks it.

// Lanes < n set (0 <= n <= 8), for masked loads and stores.
AVX2_INLINE __m256i lanes(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 cached floats from row p at x: f32, or halves widened (vcvtph2ps, exact).
AVX2_INLINE __m256 load8(const void *p, size_t x, int half) {
    if (half) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + x)));
    return _mm256_loadu_ps((const float *)p + x);
}

// The first n (< 8) of them, the rest 0.
AVX2_INLINE __m256 load8_tail(const void *p, size_t x, size_t n, int half) {
    if (half) {
        uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(h, (const uint16_t *)p + x, n * sizeof(uint16_t));
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    }
    return _mm256_maskload_ps((const float *)p + x, lanes(n));
}

// exp with the steps of gt_att_expf (multiply-adds fused); 0 below GT_EXP_MIN (and for -inf).
AVX2_INLINE __m256 exp8(__m256 x) {
    const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(GT_EXP_MIN), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(GT_EXP_MIN)), _mm256_set1_ps(88.0f));
    const __m256 shift = _mm256_set1_ps(GT_EXP_SHIFT);
    const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(GT_EXP_LOG2E), shift), shift);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(GT_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(GT_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(GT_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GT_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GT_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GT_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GT_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GT_EXP_P5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

// tanh(y) = sign(y) (1 - t) / (1 + t), t = exp(-2 |y|).
AVX2_INLINE __m256 tanh8(__m256 y) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), _mm256_andnot_ps(sign, y)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 v = _mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t));
    return _mm256_or_ps(v, _mm256_and_ps(sign, y));
}

// R x K dot products (R, K <= 4, constants after inlining).
AVX2_INLINE void tile(const float *const *q, const void *const *k, size_t d, float *s, size_t lds, int R, int K,
                      int half) {
    __m256 acc[4][4];
    GT_UNROLL
    for (int i = 0; i < R; i++)
        GT_UNROLL
        for (int j = 0; j < K; j++) acc[i][j] = _mm256_setzero_ps();
    size_t x = 0;
    for (; x + 8 <= d; x += 8) {
        __m256 kv[4];
        GT_UNROLL
        for (int j = 0; j < K; j++) kv[j] = load8(k[j], x, half);
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            const __m256 qv = _mm256_loadu_ps(q[i] + x);
            GT_UNROLL
            for (int j = 0; j < K; j++) acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
        }
    }
    if (x < d) {
        const __m256i m = lanes(d - x);
        __m256 kv[4];
        GT_UNROLL
        for (int j = 0; j < K; j++) kv[j] = load8_tail(k[j], x, d - x, half);
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            const __m256 qv = _mm256_maskload_ps(q[i] + x, m);
            GT_UNROLL
            for (int j = 0; j < K; j++) acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
        }
    }
    GT_UNROLL
    for (int i = 0; i < R; i++)
        GT_UNROLL
        for (int j = 0; j < K; j++) s[i * lds + j] = hsum8(acc[i][j]);
}

AVX2_INLINE void tile_row(const float *const *q, const void *const *k, size_t nk, size_t d, float *s, int R,
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

AVX2_INLINE void scores_any(const float *const *q, size_t nr, const void *const *k, size_t nk, size_t d, float *s,
                            size_t lds, int half) {
    size_t r = 0;
    for (; r + 4 <= nr; r += 4) tile_row(q + r, k, nk, d, s + r * lds, 4, lds, half);
    for (; r + 2 <= nr; r += 2) tile_row(q + r, k, nk, d, s + r * lds, 2, lds, half);
    for (; r < nr; r++) tile_row(q + r, k, nk, d, s + r * lds, 1, lds, half);
}

AVX2_FN static void scores_avx2(const float *const *q, size_t nr, const float *const *k, size_t nk, size_t d,
                                float *s, size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 0);
}

AVX2_FN static void scores_f16_avx2(const float *const *q, size_t nr, const uint16_t *const *k, size_t nk, size_t d,
                                    float *s, size_t lds) {
    scores_any(q, nr, (const void *const *)k, nk, d, s, lds, 1);
}

AVX2_FN static float transform_max_avx2(float *s, size_t b, size_t e, float scale, float softcap) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int c = 0; c < GT_ATT_CHUNK; c += 8) {
        __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + c), _mm256_set1_ps(scale));
        if (softcap > 0) x = _mm256_mul_ps(tanh8(_mm256_div_ps(x, _mm256_set1_ps(softcap))), _mm256_set1_ps(softcap));
        const __m256i j = _mm256_add_epi32(iota, _mm256_set1_epi32(c));
        const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_set1_epi32((int)b - 1)),
                                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)e), j));
        x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(in));
        _mm256_storeu_ps(s + c, x);
        vmax = _mm256_max_ps(vmax, x);
    }
    return hmax8(vmax);
}

AVX2_FN static float exp_sum_avx2(float *s, float m) {
    __m256 sum = _mm256_setzero_ps();
    const __m256 mv = _mm256_set1_ps(m);
    for (int c = 0; c < GT_ATT_CHUNK; c += 8) {
        const __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + c), mv));
        _mm256_storeu_ps(s + c, p);
        sum = _mm256_add_ps(sum, p);
    }
    return hsum8(sum);
}

// R rows (<= 4) of o += p v, keys jb..je-1 (outside them every p of these rows is 0).
AVX2_INLINE void acc_rows(const float *p, size_t ldp, const void *const *v, size_t jb, size_t je, size_t d, float *o,
                          size_t ldo, int R, int half) {
    size_t x = 0;
    for (; x + 16 <= d; x += 16) {
        __m256 acc[4][2];
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            acc[i][0] = _mm256_loadu_ps(o + i * ldo + x);
            acc[i][1] = _mm256_loadu_ps(o + i * ldo + x + 8);
        }
        for (size_t j = jb; j < je; j++) {
            const __m256 v0 = load8(v[j], x, half), v1 = load8(v[j], x + 8, half);
            GT_UNROLL
            for (int i = 0; i < R; i++) {
                const __m256 w = _mm256_broadcast_ss(p + i * ldp + j);
                acc[i][0] = _mm256_fmadd_ps(w, v0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(w, v1, acc[i][1]);
            }
        }
        GT_UNROLL
        for (int i = 0; i < R; i++) {
            _mm256_storeu_ps(o + i * ldo + x, acc[i][0]);
            _mm256_storeu_ps(o + i * ldo + x + 8, acc[i][1]);
        }
    }
    for (; x < d; x += 8) {
        const __m256i m = lanes(d - x >= 8 ? 8 : d - x);
        __m256 acc[4];
        GT_UNROLL
        for (int i = 0; i < R; i++) acc[i] = _mm256_maskload_ps(o + i * ldo + x, m);
        for (size_t j = jb; j < je; j++) {
            const __m256 v0 = d - x >= 8 ? load8(v[j], x, half) : load8_tail(v[j], x, d - x, half);
            GT_UNROLL
            for (int i = 0; i < R; i++) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + i * ldp + j), v0, acc[i]);
        }
        GT_UNROLL
        for (int i = 0; i < R; i++) _mm256_maskstore_ps(o + i * ldo + x, m, acc[i]);
    }
}

AVX2_INLINE void accumulate_any(const float *p, size_t ldp, size_t nr, const void *const *v, size_t nk, size_t d,
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

AVX2_FN static void accumulate_avx2(const float *p, size_t ldp, size_t nr, const float *const *v, size_t nk, size_t d,
                                    float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 0);
}

AVX2_FN static void accumulate_f16_avx2(const float *p, size_t ldp, size_t nr, const uint16_t *const *v, size_t nk,
                                        size_t d, float *o, size_t ldo) {
    accumulate_any(p, ldp, nr, (const void *const *)v, nk, d, o, ldo, 1);
}

const gt_attention_isa gt_attention_avx2 = {scores_avx2, transform_max_avx2, exp_sum_avx2, accumulate_avx2,
                                            scores_f16_avx2, accumulate_f16_avx2};

#endif
