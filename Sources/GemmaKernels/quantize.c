// Quantization (used by the converter) and dequantization of rows.
#include "gemma_kernels.h"
#include <math.h>
#include <string.h>

static inline void put_f16(uint8_t *p, float v) { uint16_t h = gt_f32_to_f16(v); memcpy(p, &h, 2); }
static inline float get_f16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return gt_f16_to_f32(h); }

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void quantize_block_q8(const float *x, uint8_t *out) {
    float amax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
    // Quantize against the scale as stored (f16), not the exact one, so rounding is consistent.
    uint16_t dh = gt_f32_to_f16(amax / 127.0f);
    float d = gt_f16_to_f32(dh);
    float id = d > 0.0f ? 1.0f / d : 0.0f;
    memcpy(out, &dh, 2);
    int8_t *q = (int8_t *)(out + 2);
    for (int i = 0; i < GT_BLOCK; i++) q[i] = (int8_t)clampi((int)lrintf(x[i] * id), -127, 127);
}

// Squared error of quantizing x with scale d to levels -8..7, and the least-squares scale for
// the chosen levels (sum x*q / sum q*q).
static float q4_error(const float *x, float d, float *ls_scale) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err = 0.0f, sxq = 0.0f, sqq = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) {
        float q = (float)clampi((int)lrintf(x[i] * id), -8, 7);
        float e = x[i] - d * q;
        err += e * e;
        sxq += x[i] * q;
        sqq += q * q;
    }
    *ls_scale = sqq > 0.0f ? sxq / sqq : d;
    return err;
}

// q4 scale search: rather than mapping the largest magnitude to -8 (Q4_0's choice), try a few
// scales around it, refine each by least squares, and keep the one with the smallest error.
static void quantize_block_q4(const float *x, uint8_t *out) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) {
        float a = fabsf(x[i]);
        if (a > amax) { amax = a; vmax = x[i]; }
    }
    float best_d = 0.0f;
    if (amax > 0.0f) {
        static const float divisors[] = { -8.0f, -7.5f, -7.0f, 7.0f, -6.5f, 6.5f };
        float best_err = INFINITY;
        for (size_t c = 0; c < sizeof(divisors) / sizeof(divisors[0]); c++) {
            float d = vmax / divisors[c], ls;
            float err = q4_error(x, d, &ls);
            if (err < best_err) { best_err = err; best_d = d; }
            float err_ls = q4_error(x, ls, &ls);
            if (err_ls < best_err) { best_err = err_ls; best_d = ls; }
        }
    }
    uint16_t dh = gt_f32_to_f16(best_d);
    float d = gt_f16_to_f32(dh);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    memcpy(out, &dh, 2);
    uint8_t *qs = out + 2;
    for (int j = 0; j < GT_BLOCK / 2; j++) {
        int lo = clampi((int)lrintf(x[j] * id), -8, 7) + 8;
        int hi = clampi((int)lrintf(x[j + GT_BLOCK / 2] * id), -8, 7) + 8;
        qs[j] = (uint8_t)(lo | (hi << 4));
    }
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
        for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q4(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES);
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
    }
}
