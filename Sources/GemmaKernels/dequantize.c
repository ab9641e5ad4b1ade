// Rows of stored weights back to f32 (the embedding lookup, tests, the converter's error report):
// every storage type, each in the order of operations its quantizer and kernels assume.
#include "matmul_internal.h"
#include "kquant_internal.h"
#include <string.h>

static void dequantize_row_q5(const uint8_t *p, size_t n, float *out) {
    for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q5_BLOCK_BYTES) {
        float d = gt_load_f16(p);
        uint32_t qh = gt_load_u32(p + 2);
        const uint8_t *qs = p + 6;
        for (int j = 0; j < GT_BLOCK / 2; j++) {
            int lo = (qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (qs[j] >> 4) | (int)((qh >> (j + GT_BLOCK / 2)) & 1) << 4;
            out[b * GT_BLOCK + j] = d * (float)(lo - 16);
            out[b * GT_BLOCK + j + GT_BLOCK / 2] = d * (float)(hi - 16);
        }
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
            float d = gt_load_f16(p);
            const int8_t *q = (const int8_t *)(p + 2);
            for (int i = 0; i < GT_BLOCK; i++) out[b * GT_BLOCK + i] = d * (float)q[i];
        }
        break;
    case GT_Q4:
        for (size_t b = 0; b < n / GT_BLOCK; b++, p += GT_Q4_BLOCK_BYTES) {
            float d = gt_load_f16(p);
            const uint8_t *qs = p + 2;
            for (int j = 0; j < GT_BLOCK / 2; j++) {
                out[b * GT_BLOCK + j] = d * (float)((qs[j] & 0x0f) - 8);
                out[b * GT_BLOCK + j + GT_BLOCK / 2] = d * (float)((qs[j] >> 4) - 8);
            }
        }
        break;
    case GT_Q5:
        dequantize_row_q5(p, n, out);
        break;
    case GT_Q4K:
        gt_dequantize_q4k(p, n / GT_KBLOCK, out);
        break;
    case GT_Q6K:
        gt_dequantize_q6k(p, n / GT_KBLOCK, out);
        break;
    }
}
