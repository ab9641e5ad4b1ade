// Scalar number-format conversions: IEEE half, bfloat16.
#include "gemma_kernels.h"
#include <string.h>

static inline uint32_t f32_bits(float f) { uint32_t x; memcpy(&x, &f, 4); return x; }
static inline float bits_f32(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }

float gt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        // zero or subnormal: mant * 2^-24
        return bits_f32(f32_bits((float)mant * (1.0f / 16777216.0f)) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t gt_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t half = 1u << (shift - 1);
        uint32_t rounded = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        if (rem > half || (rem == half && (rounded & 1))) rounded++;
        return (uint16_t)(sign | rounded);
    }
    uint32_t rounded = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if (rem > 0x1000 || (rem == 0x1000 && (rounded & 1))) rounded++;
    return (uint16_t)(sign | rounded);
}

float gt_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t gt_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
    uint32_t bias = 0x7fff + ((x >> 16) & 1);
    return (uint16_t)((x + bias) >> 16);
}

size_t gt_row_bytes(int type, size_t n) {
    switch (type) {
    case GT_F32: return n * 4;
    case GT_BF16: return n * 2;
    case GT_Q8: return n % GT_BLOCK ? 0 : n / GT_BLOCK * GT_Q8_BLOCK_BYTES;
    case GT_Q4: return n % GT_BLOCK ? 0 : n / GT_BLOCK * GT_Q4_BLOCK_BYTES;
    case GT_Q5: return n % GT_BLOCK ? 0 : n / GT_BLOCK * GT_Q5_BLOCK_BYTES;
    case GT_Q4K: return n % GT_KBLOCK ? 0 : n / GT_KBLOCK * GT_Q4K_BLOCK_BYTES;
    case GT_Q6K: return n % GT_KBLOCK ? 0 : n / GT_KBLOCK * GT_Q6K_BLOCK_BYTES;
    default: return 0;
    }
}
