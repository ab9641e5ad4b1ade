// Quantization (used by the converter) and dequantization of rows.
#include "matmul_internal.h"
#include <math.h>
#include <string.h>

static inline void put_f16(uint8_t *p, float v) { uint16_t h = gt_f32_to_f16(v); memcpy(p, &h, 2); }
static inline float get_f16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return gt_f16_to_f32(h); }


// Round to nearest, ties to even, for |v| < 2^22: adding and subtracting 1.5 * 2^23 leaves
// only the integer bits. Branch-free, so the block loops vectorize (lrintf is a libm call).
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }
static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void quantize_block_q8(const float *x, uint8_t *out) {
    float amax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
    // Quantize against the scale as stored (f16), not the exact one, so rounding is consistent.
    uint16_t dh = gt_f32_to_f16(amax / 127.0f);
    float d = gt_f16_to_f32(dh);
    float id = d > 0.0f ? 1.0f / d : 0.0f;
    memcpy(out, &dh, 2);
    int8_t *q = (int8_t *)(out + 2);
    for (int i = 0; i < GT_BLOCK; i++) q[i] = (int8_t)round_even(clampf(x[i] * id, -127.0f, 127.0f));
}

// Squared error of quantizing x with scale d to levels -8..7, and the least-squares scale for
// the chosen levels (sum x*q / sum q*q). Eight lanes of partial sums let the loop vectorize
// without reassociating floating-point math.
static inline __attribute__((always_inline)) float q4_error(const float *x, float d, float *ls_scale) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err[8] = {0}, sxq[8] = {0}, sqq[8] = {0};
    for (int i = 0; i < GT_BLOCK; i += 8) {
        for (int l = 0; l < 8; l++) {
            float v = x[i + l];
            float q = round_even(clampf(v * id, -8.0f, 7.0f));
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

// q4 scale search: rather than mapping the largest magnitude to -8 (Q4_0's choice), try a few
// scales around it, refine the best by least squares, and keep whichever has the smallest error.
static inline __attribute__((always_inline)) void quantize_block_q4(const float *x, uint8_t *out) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
    for (int i = 0; i < GT_BLOCK; i++) {
        if (fabsf(x[i]) == amax) { vmax = x[i]; break; }
    }
    float best_d = 0.0f;
    if (amax > 0.0f) {
        static const float divisors[] = { -8.0f, -7.5f, -7.0f, 7.0f, -6.5f, 6.5f };
        float best_err = INFINITY, best_ls = 0.0f;
        for (size_t c = 0; c < sizeof(divisors) / sizeof(divisors[0]); c++) {
            float d = vmax / divisors[c], ls;
            float err = q4_error(x, d, &ls);
            if (err < best_err) { best_err = err; best_d = d; best_ls = ls; }
        }
        float unused;
        if (q4_error(x, best_ls, &unused) < best_err) best_d = best_ls;
    }
    uint16_t dh = gt_f32_to_f16(best_d);
    float d = gt_f16_to_f32(dh);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    memcpy(out, &dh, 2);
    uint8_t *qs = out + 2;
    for (int j = 0; j < GT_BLOCK / 2; j++) {
        int lo = (int)round_even(clampf(x[j] * id, -8.0f, 7.0f)) + 8;
        int hi = (int)round_even(clampf(x[j + GT_BLOCK / 2] * id, -8.0f, 7.0f)) + 8;
        qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

static void quantize_row_q4_generic(const float *x, size_t n, uint8_t *o) {
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q4(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES);
}

#if defined(__x86_64__)
// The same code compiled for AVX2: the block loops vectorize eight wide. Chosen at run time.
__attribute__((target("avx2,fma")))
static void quantize_row_q4_avx2(const float *x, size_t n, uint8_t *o) {
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q4(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES);
}
#endif

static void quantize_row_q4(const float *x, size_t n, uint8_t *o) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        quantize_row_q4_avx2(x, n, o);
        return;
    }
#endif
    quantize_row_q4_generic(x, n, o);
}

void gt_quantize_row(int type, const float *x, size_t n, void *out) {
    uint8_t *o = (uint8_t *)out;
    switch (type) {
    case GT_F32:
        memcpy(out, x, n * 4);
        break;
    case GT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = gt_f32_to_bf16(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        break;
    case GT_Q8:
        for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q8(x + b * GT_BLOCK, o + b * GT_Q8_BLOCK_BYTES);
        break;
    case GT_Q4:
        quantize_row_q4(x, n, o);
        break;
    case GT_Q5:
        gt_quantize_row_q5(x, n, o);
        break;
    }
}

void gt_dequantize_row(int type, const void *row, size_t n, float *out) {
    const uint8_t *p = (const uint8_t *)row;
    switch (type) {
    case GT_F32:
        memcpy(out, row, n * 4);
        break;
    case GT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = gt_bf16_to_f32(h);
        }
        break;
    case GT_Q8:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q8_BLOCK_BYTES) {
            float d = get_f16(p);
            const int8_t *q = (const int8_t *)(p + 2);
            for (int i = 0; i < GT_BLOCK; i++) out[b * GT_BLOCK + i] = d * (float)q[i];
        }
        break;
    case GT_Q4:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q4_BLOCK_BYTES) {
            float d = get_f16(p);
            const uint8_t *qs = p + 2;
            for (int j = 0; j < GT_BLOCK / 2; j++) {
                out[b * GT_BLOCK + j] = d * (float)((qs[j] & 0x0f) - 8);
                out[b * GT_BLOCK + j + GT_BLOCK / 2] = d * (float)((qs[j] >> 4) - 8);
            }
        }
        break;
    case GT_Q5:
        gt_dequantize_row_q5(p, n, out);
        break;
    }
}
