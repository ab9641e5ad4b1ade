// Portable scalar reference kernels: fused dequantize + dot product, and matrix-vector product.
// Every SIMD path is tested against these.
#include "kquant_internal.h"
#include <string.h>

static inline float get_f16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return gt_f16_to_f32(h); }

float gt_dot_scalar(int type, const void *row, const float *x, size_t n) {
    const uint8_t *p = (const uint8_t *)row;
    float sum = 0.0f;
    switch (type) {
    case GT_F32: {
        const float *w = (const float *)row;
        for (size_t i = 0; i < n; i++) sum += w[i] * x[i];
        break;
    }
    case GT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            sum += gt_bf16_to_f32(h) * x[i];
        }
        break;
    case GT_Q8:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q8_BLOCK_BYTES, x += GT_BLOCK) {
            const int8_t *q = (const int8_t *)(p + 2);
            float s = 0.0f;
            for (int i = 0; i < GT_BLOCK; i++) s += (float)q[i] * x[i];
            sum += get_f16(p) * s;
        }
        break;
    case GT_Q4:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q4_BLOCK_BYTES, x += GT_BLOCK) {
            const uint8_t *qs = p + 2;
            float s = 0.0f;
            for (int j = 0; j < GT_BLOCK / 2; j++) {
                s += (float)((qs[j] & 0x0f) - 8) * x[j];
                s += (float)((qs[j] >> 4) - 8) * x[j + GT_BLOCK / 2];
            }
            sum += get_f16(p) * s;
        }
        break;
    case GT_Q5:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q5_BLOCK_BYTES, x += GT_BLOCK) {
            uint32_t qh;
            memcpy(&qh, p + 2, 4);
            const uint8_t *qs = p + 6;
            float s = 0.0f;
            for (int j = 0; j < GT_BLOCK / 2; j++) {
                s += (float)((int)((qs[j] & 0x0f) | ((qh >> j) & 1) << 4) - 16) * x[j];
                s += (float)((int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16) * x[j + GT_BLOCK / 2];
            }
            sum += get_f16(p) * s;
        }
        break;
    case GT_Q4K:
    case GT_Q6K:
        // The dot product with the dequantized row (dequant_k.c), one super-block at a time, in
        // element order: the reference the K kernels are tested against.
        for (size_t b = 0; b < n / GT_KBLOCK; b++, x += GT_KBLOCK) {
            float w[GT_KBLOCK];
            if (type == GT_Q4K) gt_dequantize_q4k(p + b * GT_Q4K_BLOCK_BYTES, 1, w);
            else gt_dequantize_q6k(p + b * GT_Q6K_BLOCK_BYTES, 1, w);
            for (int i = 0; i < GT_KBLOCK; i++) sum += w[i] * x[i];
        }
        break;
    }
    return sum;
}

void gt_matvec_scalar(int type, const void *w, size_t row_stride, size_t cols,
                      const float *x, float *y, size_t row_begin, size_t row_end) {
    const uint8_t *base = (const uint8_t *)w;
    for (size_t r = row_begin; r < row_end; r++) y[r] = gt_dot_scalar(type, base + r * row_stride, x, cols);
}
