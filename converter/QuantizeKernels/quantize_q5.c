// q5 quantization (the converter): 32 weights per block, levels -16..15.
// The scale search is q4's (quantize.c) with twice the levels: a few scales mapping the largest
// magnitude near the end of the range, a least-squares refinement of the best, and the one with
// the smallest squared error wins. A block already on a 5-bit grid (GGUF Q5_0) comes back exactly:
// the divisor -16 recovers its scale.
#include "quantize_internal.h"
#include <math.h>

// No fused multiply-adds: the AVX2 copy below and the portable code then round alike, so a
// q5 file does not depend on the converting CPU.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }
static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Squared error of x at scale d with levels -16..15, and the least-squares scale for those levels.
static inline __attribute__((always_inline)) float q5_error(const float *x, float d, float *ls_scale) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err[8] = {0}, sxq[8] = {0}, sqq[8] = {0};
    for (int i = 0; i < GT_BLOCK; i += 8) {
        for (int l = 0; l < 8; l++) {
            float v = x[i + l];
            float q = round_even(clampf(v * id, -16.0f, 15.0f));
            float e = v - d * q;
            err[l] += e * e;
            sxq[l] += v * q;
            sqq[l] += q * q;
        }
    }
    float e = 0.0f, a = 0.0f, b = 0.0f;
    for (int l = 0; l < 8; l++) { e += err[l]; a += sxq[l]; b += sqq[l]; }
    *ls_scale = b > 0.0f ? a / b : d;
    return e;
}

static inline __attribute__((always_inline)) void quantize_block_q5(const float *x, uint8_t *out) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
    for (int i = 0; i < GT_BLOCK; i++) {
        if (fabsf(x[i]) == amax) { vmax = x[i]; break; }
    }
    float best_d = 0.0f;
    if (amax > 0.0f) {
        static const float divisors[] = { -16.0f, -15.5f, -15.0f, 15.0f, -14.5f, 14.5f };
        float best_err = INFINITY, best_ls = 0.0f;
        for (size_t c = 0; c < sizeof(divisors) / sizeof(divisors[0]); c++) {
            float d = vmax / divisors[c], ls;
            float err = q5_error(x, d, &ls);
            if (err < best_err) { best_err = err; best_d = d; best_ls = ls; }
        }
        float unused;
        if (q5_error(x, best_ls, &unused) < best_err) best_d = best_ls;
    }
    uint16_t dh = gt_f32_to_f16(best_d);
    float d = gt_f16_to_f32(dh);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    memcpy(out, &dh, 2);
    uint32_t qh = 0;
    uint8_t *qs = out + 6;
    for (int j = 0; j < GT_BLOCK / 2; j++) {
        int lo = (int)round_even(clampf(x[j] * id, -16.0f, 15.0f)) + 16;
        int hi = (int)round_even(clampf(x[j + GT_BLOCK / 2] * id, -16.0f, 15.0f)) + 16;
        qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
        qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + GT_BLOCK / 2);
    }
    memcpy(out + 2, &qh, 4);
}

static void quantize_row_q5_generic(const float *x, size_t n, uint8_t *o) {
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q5(x + b * GT_BLOCK, o + b * GT_Q5_BLOCK_BYTES);
}

#if defined(__x86_64__)
// The same code compiled for AVX2 (the block loops vectorize); chosen at run time.
__attribute__((target("avx2,fma")))
static void quantize_row_q5_avx2(const float *x, size_t n, uint8_t *o) {
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q5(x + b * GT_BLOCK, o + b * GT_Q5_BLOCK_BYTES);
}
#endif

void gt_quantize_row_q5(const float *x, size_t n, uint8_t *o) {
#if defined(__x86_64__)
    if (gt_cpu_has_avx2()) {
        quantize_row_q5_avx2(x, n, o);
        return;
    }
#endif
    quantize_row_q5_generic(x, n, o);
}
