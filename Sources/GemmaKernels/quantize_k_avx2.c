// x86-64 AVX2 K-quant scale searches for the converter (GT_Q4K, GT_Q6K), bit-identical to the
// portable reference in quantize_k.c: the same IEEE operations in the same order, one sub-block
// per lane ("structure of arrays": X[i] holds element i of eight sub-blocks). Each lane then
// runs the reference's sequential sums unchanged, its `if (err < best)` becomes a compare and
// blend, and the long dependency chains of one sub-block overlap those of the seven others.
//   - Compiled for avx2 + f16c only, not fma: the reference fuses nothing, and without the fma
//     target the compiler cannot contract a multiply and an add either.
//   - gt_kq_level's `t = v > lo ? v : lo; t < hi ? t : hi` is max(v, lo) then min(t, hi) with
//     the x86 operand rule (the second operand when the comparison is false or unordered).
//   - `x < min ? x : min` is min(x, min), `min > 0 ? 0 : min` is min(0, min) (so -0 stays -0).
//   - Division and square root are IEEE-exact in both.
// The per-super-block packing (scale quantization, re-quantization, bit packing) is the shared
// scalar code of quantize_k.c (gt_q4k_pack / gt_q6k_pack): the searches are ~95% of the time.
#if defined(__x86_64__) || defined(_M_X64)

#include "kquant_internal.h"
#include <immintrin.h>
#include <string.h>

#define KFN __attribute__((target("avx2,f16c")))
#define KINLINE static inline __attribute__((always_inline, target("avx2,f16c")))

KINLINE __m256 level(__m256 v, __m256 lo, __m256 hi) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_sub_ps(_mm256_add_ps(t, magic), magic);
}

KINLINE __m256 blend(__m256 a, __m256 b, __m256 mask) { return _mm256_blendv_ps(a, b, mask); }

// Element i of sub-block j (`len` values each, back to back at x) into X[i] lane j.
KINLINE void load_soa(const float *x, int len, __m256 *X) {
    float t[GT_Q4K_SUB][8];
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < len; i++) t[i][j] = x[len * j + i];
    for (int i = 0; i < len; i++) X[i] = _mm256_loadu_ps(t[i]);
}

// Levels in V[i] lane j (0..63, as floats) into L[len * j + i].
KINLINE void store_levels(const __m256 *V, int len, float add, uint8_t *L) {
    float t[GT_Q4K_SUB][8];
    for (int i = 0; i < len; i++) _mm256_storeu_ps(t[i], _mm256_add_ps(V[i], _mm256_set1_ps(add)));
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < len; i++) L[len * j + i] = (uint8_t)(int)t[i][j];
}

// ---- Q4_K: q4k_search of quantize_k.c for the eight sub-blocks of a super-block ----

KINLINE void q4k_search8(const float *x, float *scales, float *mins, uint8_t *L) {
    const __m256 zero = _mm256_setzero_ps(), fifteen = _mm256_set1_ps(15.0f);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 X[GT_Q4K_SUB], W[GT_Q4K_SUB];
    load_soa(x, GT_Q4K_SUB, X);

    __m256 sum_x2 = zero;
    for (int i = 0; i < GT_Q4K_SUB; i++) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(X[i], X[i]));
    __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
    for (int i = 0; i < GT_Q4K_SUB; i++) W[i] = _mm256_add_ps(av_x, _mm256_and_ps(X[i], absmask));

    __m256 min = X[0], max = X[0], sum_w = W[0], sum_x = _mm256_mul_ps(W[0], X[0]);
    for (int i = 1; i < GT_Q4K_SUB; i++) {
        min = _mm256_min_ps(X[i], min);
        max = _mm256_max_ps(X[i], max);
        sum_w = _mm256_add_ps(sum_w, W[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W[i], X[i]));
    }
    min = _mm256_min_ps(zero, min);
    const __m256 min0 = min;
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);  // the reference returns early

    __m256 iscale = _mm256_div_ps(fifteen, _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < GT_Q4K_SUB; i++) {
        __m256 l = level(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min)), zero, fifteen);
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, l), min), X[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(W[i], _mm256_mul_ps(diff, diff)));
    }
    // The winner's levels are recomputed at the end from the inverse scale and offset that made them.
    __m256 l_iscale = iscale, l_min = min;
    for (int k = 0; k < GT_Q4K_STEPS; k++) {
        iscale = _mm256_div_ps(_mm256_set1_ps(gt_q4k_step(k)), _mm256_sub_ps(max, min));
        __m256 la[GT_Q4K_SUB];
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            __m256 l = level(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min)), zero, fifteen);
            la[i] = l;
            __m256 wl = _mm256_mul_ps(W[i], l);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X[i]));
        }
        __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        __m256 fit = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        __m256 positive = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = blend(this_min, zero, positive);
        this_scale = blend(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        __m256 err = zero;
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, la[i]), this_min), X[i]);
            err = _mm256_add_ps(err, _mm256_mul_ps(W[i], _mm256_mul_ps(diff, diff)));
        }
        __m256 win = _mm256_and_ps(fit, _mm256_cmp_ps(err, best, _CMP_LT_OQ));
        best = blend(best, err, win);
        scale = blend(scale, this_scale, win);
        l_iscale = blend(l_iscale, iscale, win);
        l_min = blend(l_min, min, win);  // the offset these levels were made with
        min = blend(min, this_min, win);
    }
    scale = blend(scale, zero, flat);
    min = blend(min, min0, flat);
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, _mm256_xor_ps(min, _mm256_set1_ps(-0.0f)));  // -min
    __m256 V[GT_Q4K_SUB];
    for (int i = 0; i < GT_Q4K_SUB; i++) {
        __m256 l = level(_mm256_mul_ps(l_iscale, _mm256_sub_ps(X[i], l_min)), zero, fifteen);
        V[i] = _mm256_andnot_ps(flat, l);  // flat sub-blocks: levels 0
    }
    store_levels(V, GT_Q4K_SUB, 0.0f, L);
}

KFN void gt_quantize_row_q4k_avx2(const float *x, size_t n, uint8_t *out) {
    for (size_t b = 0; b < n / GT_KBLOCK; b++, x += GT_KBLOCK, out += GT_Q4K_BLOCK_BYTES) {
        float scales[8], mins[8];
        uint8_t L[GT_KBLOCK];
        q4k_search8(x, scales, mins, L);
        gt_q4k_pack(x, scales, mins, L, out);
    }
}

// ---- Q6_K: q6k_search of quantize_k.c for eight sub-blocks of 16 (half a super-block) ----

KINLINE void q6k_search8(const float *x, float *scales, uint8_t *L) {
    const __m256 zero = _mm256_setzero_ps(), lo = _mm256_set1_ps(-32.0f), hi = _mm256_set1_ps(31.0f);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 X[GT_Q6K_SUB], W[GT_Q6K_SUB], WX[GT_Q6K_SUB];
    load_soa(x, GT_Q6K_SUB, X);
    __m256 max = zero, amax = zero;
    for (int i = 0; i < GT_Q6K_SUB; i++) {
        __m256 ax = _mm256_and_ps(X[i], absmask);
        __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = blend(amax, ax, gt);
        max = blend(max, X[i], gt);
        W[i] = _mm256_mul_ps(X[i], X[i]);
        WX[i] = _mm256_mul_ps(W[i], X[i]);
    }
    const __m256 empty = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);

    __m256 iscale = _mm256_div_ps(lo, max), best_iscale = iscale;
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < GT_Q6K_SUB; i++) {
        __m256 l = level(_mm256_mul_ps(iscale, X[i]), lo, hi);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(WX[i], l));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], l), l));
    }
    __m256 scale = _mm256_and_ps(_mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = _mm256_div_ps(_mm256_set1_ps(gt_q6k_step(is)), max);
        sumlx = suml2 = zero;
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            __m256 l = level(_mm256_mul_ps(iscale, X[i]), lo, hi);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(WX[i], l));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], l), l));
        }
        __m256 win = _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                                   _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
        __m256 s = _mm256_div_ps(sumlx, suml2);
        best_iscale = blend(best_iscale, iscale, win);
        scale = blend(scale, s, win);
        best = blend(best, _mm256_mul_ps(s, sumlx), win);
    }
    _mm256_storeu_ps(scales, _mm256_andnot_ps(empty, scale));
    __m256 V[GT_Q6K_SUB];
    // Levels + 32 (0..63); empty sub-blocks: 0 (the -32 here cancels the +32 of store_levels).
    for (int i = 0; i < GT_Q6K_SUB; i++) V[i] = blend(level(_mm256_mul_ps(best_iscale, X[i]), lo, hi), lo, empty);
    store_levels(V, GT_Q6K_SUB, 32.0f, L);
}

KFN void gt_quantize_row_q6k_avx2(const float *x, size_t n, uint8_t *out) {
    for (size_t b = 0; b < n / GT_KBLOCK; b++, x += GT_KBLOCK, out += GT_Q6K_BLOCK_BYTES) {
        float scales[16];
        uint8_t L[GT_KBLOCK];
        q6k_search8(x, scales, L);
        q6k_search8(x + 8 * GT_Q6K_SUB, scales + 8, L + 8 * GT_Q6K_SUB);
        gt_q6k_pack(x, scales, L, out);
    }
}

#endif
