// Dequantization of GGUF (ggml) tensor rows to f32: see include/gguf_dequant.h for the layouts.
//
// Every product is written in ggml's order and fused multiply-adds are disabled, so the values
// are bit-identical to ggml's reference dequantizers and to gguf-py's numpy ones.
#include "gguf_dequant.h"
#include "kquant_internal.h"
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma STDC FP_CONTRACT OFF
#endif

static inline float bits_f32(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }

static inline float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        // zero or subnormal: mant * 2^-24 (exact in f32)
        float v = (float)mant * (1.0f / 16777216.0f);
        uint32_t b;
        memcpy(&b, &v, 4);
        return bits_f32(b | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline float load_f16(const uint8_t *p) { return half_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

size_t gt_gguf_block_values(int type) {
    switch (type) {
    case GT_GGML_F32: case GT_GGML_F16: case GT_GGML_BF16: return 1;
    case GT_GGML_Q4_0: case GT_GGML_Q4_1: case GT_GGML_Q5_0: case GT_GGML_Q5_1: case GT_GGML_Q8_0: return 32;
    case GT_GGML_Q4_K: case GT_GGML_Q5_K: case GT_GGML_Q6_K: return 256;
    default: return 0;
    }
}

size_t gt_gguf_block_bytes(int type) {
    switch (type) {
    case GT_GGML_F32: return 4;
    case GT_GGML_F16: case GT_GGML_BF16: return 2;
    case GT_GGML_Q4_0: return 18;
    case GT_GGML_Q4_1: return 20;
    case GT_GGML_Q5_0: return 22;
    case GT_GGML_Q5_1: return 24;
    case GT_GGML_Q8_0: return 34;
    case GT_GGML_Q4_K: return 144;
    case GT_GGML_Q5_K: return 176;
    case GT_GGML_Q6_K: return 210;
    default: return 0;
    }
}

int gt_gguf_can_dequantize(int type) { return gt_gguf_block_values(type) != 0; }

// ---- legacy 32-value blocks ----

static void row_q8_0(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 34, y += 32) {
        const float d = load_f16(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
    }
}

static void row_q4_0(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 18, y += 32) {
        const float d = load_f16(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            const int x0 = (qs[j] & 0x0F) - 8;
            const int x1 = (qs[j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
    }
}

static void row_q4_1(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 20, y += 32) {
        const float d = load_f16(b);
        const float m = load_f16(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            const int x0 = qs[j] & 0x0F;
            const int x1 = qs[j] >> 4;
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

static void row_q5_0(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 22, y += 32) {
        const float d = load_f16(b);
        const uint32_t qh = load_u32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            const int h0 = (int)((qh >> j) & 1u) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            const int x0 = ((qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((qs[j] >> 4) | h1) - 16;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
    }
}

static void row_q5_1(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 24, y += 32) {
        const float d = load_f16(b);
        const float m = load_f16(b + 2);
        const uint32_t qh = load_u32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            const int h0 = (int)((qh >> j) & 1u) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            const int x0 = (qs[j] & 0x0F) | h0;
            const int x1 = (qs[j] >> 4) | h1;
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

// ---- K-quants: 256-value super-blocks ----

// Q4_K and Q6_K: the runtime's own dequantizers (dequant_k.c, GT_Q4K / GT_Q6K share ggml's
// layouts); Q5_K reads Q4_K's packed scales.

static void row_q5_k(const uint8_t *b, size_t nb, float *y) {
    for (size_t i = 0; i < nb; i++, b += 176) {
        const float d = load_f16(b);
        const float dmin = load_f16(b + 2);
        const uint8_t *scales = b + 4;
        const uint8_t *qh = b + 16;
        const uint8_t *ql = b + 48;
        for (int j = 0; j < 4; j++, ql += 32) {
            int sc, m;
            gt_q4k_scale_min(2 * j, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            gt_q4k_scale_min(2 * j + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            // Sub-block 2j takes its fifth bits from bit 2j of qh[l], sub-block 2j+1 from bit 2j+1.
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0x0F) | (((qh[l] >> (2 * j)) & 1) << 4)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) - m2;
        }
    }
}

int gt_gguf_dequantize_row(int type, const void *src, size_t n, float *dst) {
    const size_t bv = gt_gguf_block_values(type);
    if (bv == 0 || n % bv != 0) return -1;
    const uint8_t *b = (const uint8_t *)src;
    const size_t nb = n / bv;
    switch (type) {
    case GT_GGML_F32:
        memcpy(dst, b, n * 4);
        break;
    case GT_GGML_F16:
        for (size_t i = 0; i < n; i++) dst[i] = load_f16(b + 2 * i);
        break;
    case GT_GGML_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bits_f32(((uint32_t)b[2 * i] | ((uint32_t)b[2 * i + 1] << 8)) << 16);
        break;
    case GT_GGML_Q8_0: row_q8_0(b, nb, dst); break;
    case GT_GGML_Q4_0: row_q4_0(b, nb, dst); break;
    case GT_GGML_Q4_1: row_q4_1(b, nb, dst); break;
    case GT_GGML_Q5_0: row_q5_0(b, nb, dst); break;
    case GT_GGML_Q5_1: row_q5_1(b, nb, dst); break;
    case GT_GGML_Q4_K: gt_dequantize_q4k(b, nb, dst); break;
    case GT_GGML_Q5_K: row_q5_k(b, nb, dst); break;
    case GT_GGML_Q6_K: gt_dequantize_q6k(b, nb, dst); break;
    default: return -1;
    }
    return 0;
}
