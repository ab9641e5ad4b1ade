// Dequantization of K-quant super-blocks (GT_Q4K = ggml's Q4_K, GT_Q6K = ggml's Q6_K): used by
// gt_dequantize_row and gt_dot_scalar at run time and by the converter's GGUF import
// (converter/QuantizeKernels/gguf_dequant.c). Every product is written in ggml's order and fused multiply-adds are
// disabled, so the values are bit-identical to ggml's reference dequantizers and gguf-py's.
#include "kquant_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

void gt_dequantize_q4k(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += GT_Q4K_BLOCK_BYTES) {
        const float d = gt_load_f16(b);
        const float dmin = gt_load_f16(b + 2);
        const uint8_t *scales = b + 4;
        const uint8_t *q = b + 16;
        // Groups of 64 values: sub-block 2g in the low nibbles of 32 bytes, 2g + 1 in the high ones.
        for (int g = 0; g < 4; g++, q += 32) {
            int sc, m;
            gt_q4k_scale_min(2 * g, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            gt_q4k_scale_min(2 * g + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void gt_dequantize_q6k(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += GT_Q6K_BLOCK_BYTES) {
        const uint8_t *ql = b;
        const uint8_t *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = gt_load_f16(b + 208);
        // Two halves of 128 values; in each, value l (0..31) of the four quarters shares qh[l]
        // (two bits each) and the low nibbles / high nibbles of ql[l] and ql[l + 32].
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}
