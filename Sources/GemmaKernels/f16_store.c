// f32 -> IEEE half rows for the f16 KV cache (gemma_ops.h: gt_f16_store): a scalar reference,
// F16C (x86-64, with the AVX2 paths: gt_cpu_has_avx2 checks F16C) and NEON, bit-identical. Each
// clamps to +-65504 first (min / max keep a NaN: it is their second operand on x86, and NEON's
// fmin / fmax propagate it), then converts rounding to nearest even.
#include "gemma_ops.h"
#include "gemma_kernels.h"
#include <string.h>

#define F16_MAX 65504.0f

// The reference: what vcvtps2ph / fcvtn do after the clamp, bit for bit.
static inline uint16_t f32_to_f16_sat(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((x & 0x7fffff) >> 13));  // NaN, quieted
    if (f > F16_MAX) f = F16_MAX;
    if (f < -F16_MAX) f = -F16_MAX;
    memcpy(&x, &f, 4);
    const uint32_t exp = (x >> 23) & 0xff;
    uint32_t mant = x & 0x7fffff;
    const int e = (int)exp - 127 + 15;  // the half's biased exponent (<= 30 after the clamp)
    if (e <= 0) {  // a subnormal half or zero: the mantissa (with its leading 1) shifted right
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        const int shift = 14 - e;
        const uint32_t half = 1u << (shift - 1), rem = mant & ((1u << shift) - 1);
        uint32_t r = mant >> shift;
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)e << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;  // a carry bumps the exponent (at most to 65504)
    return (uint16_t)(sign | r);
}

static void store_scalar(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_f16_sat(src[i]);
}

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

__attribute__((target("avx2,f16c"))) static void store_f16c(uint16_t *dst, const float *src, size_t n) {
    const __m256 hi = _mm256_set1_ps(F16_MAX), lo = _mm256_set1_ps(-F16_MAX);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        // min(c, x) returns x when x is NaN (the second operand), and so does max.
        const __m256 x = _mm256_max_ps(lo, _mm256_min_ps(hi, _mm256_loadu_ps(src + i)));
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = f32_to_f16_sat(src[i]);
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

static void store_neon(uint16_t *dst, const float *src, size_t n) {
    const float32x4_t hi = vdupq_n_f32(F16_MAX), lo = vdupq_n_f32(-F16_MAX);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vmaxq_f32(lo, vminq_f32(hi, vld1q_f32(src + i)));  // NaN stays NaN
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(x)));  // rounds as FPCR says: nearest even
    }
    for (; i < n; i++) dst[i] = f32_to_f16_sat(src[i]);
}
#endif

int gt_f16_store_isa(int isa, uint16_t *dst, const float *src, size_t n) {
    if (isa != GT_ISA_SCALAR && gt_isa_supported(isa)) {
        switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
        case GT_ISA_AVX2:
        case GT_ISA_AVX2_VNNI:
        case GT_ISA_AVX512_VNNI: store_f16c(dst, src, n); return GT_ISA_AVX2;
#endif
#if defined(__aarch64__)
        case GT_ISA_NEON:
        case GT_ISA_NEON_DOTPROD: store_neon(dst, src, n); return GT_ISA_NEON;
#endif
        default: break;
        }
    }
    store_scalar(dst, src, n);
    return GT_ISA_SCALAR;
}

void gt_f16_store(uint16_t *dst, const float *src, size_t n) { gt_f16_store_isa(gt_kernel_isa_id(), dst, src, n); }
