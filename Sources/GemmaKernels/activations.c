// Input preparation for the matrix products: each vector to int8 blocks of 32 with an f32 scale
// and -2 x the block sum (quantized weight types; layout in matmul_internal.h), or copied as f32.
//
// The block quantizer exists once per path family: the portable scalar one (the definition),
// AVX2 (used by the avx2, avx2+vnni and avx512+vnni paths) and NEON (neon, neon+dotprod). All
// write the same bytes:
//   - amax is a maximum (exact in any order); a block with NaN or infinity is caught by a sum of
//     x * 0 (NaN exactly when one element is not finite), whatever amax then reads;
//   - t = x * (127 / amax), one rounding, clamped to [-127, 127] BEFORE rounding to an integer:
//     the same integers as clamping after (|t| <= 127 rounds into range, t >= 127.5 becomes 127
//     either way), and the clamp sits between the product and round_even's addition, so no
//     compiler can fuse them into one fused multiply-add (gcc contracts across statements);
//   - round_even in the scalar code and cvtps2dq / fcvtns (round to nearest, ties to even, the
//     default mode) give the same integers for |t| < 2^22.
// Prompt batches prepare their tokens on several threads (SIMDKernels in Swift): token ranges
// are independent, so the bytes do not depend on the split.
#include "matmul_internal.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(_M_X64)
#include "simd_x86.h"
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

// Round to nearest, ties to even, for |v| < 2^22 (see converter/QuantizeKernels/quantize.c).
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

// One block of 32 inputs to int8. Scale amax / 127 (kept in f32, not rounded to f16), so the
// largest element maps to +-127 exactly and every other to within half a step.
static void quantize_block_scalar(const float *x, int8_t *q, float *d, int32_t *c) {
    float amax = 0.0f, probe = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) {
        amax = fmaxf(amax, fabsf(x[i]));
        probe += x[i] * 0.0f;  // NaN when any element is NaN or infinite
    }
    int32_t sum = 0;
    if (probe == 0.0f && amax >= 1e-30f) {
        const float id = 127.0f / amax;
        for (int i = 0; i < GT_BLOCK; i++) {
            float t = x[i] * id;
            t = t > 127.0f ? 127.0f : (t < -127.0f ? -127.0f : t);
            const float v = round_even(t);
            q[i] = (int8_t)v;
            sum += (int32_t)v;
        }
        *d = amax / 127.0f;
    } else {
        // A block of zeros (or of magnitudes below 1e-30, negligible next to any real input),
        // or one holding NaN / infinity: q = 0, and a NaN scale for the latter so that
        // non-finite inputs give NaN outputs as they would in f32, rather than vanishing.
        memset(q, 0, GT_BLOCK);
        *d = probe == 0.0f ? 0.0f : NAN;
    }
    *c = -2 * sum;
}

static void quantize_row_scalar(const float *x, size_t nb, int8_t *q, float *d, int32_t *c) {
    for (size_t b = 0; b < nb; b++) quantize_block_scalar(x + b * GT_BLOCK, q + b * GT_BLOCK, d + b, c + b);
}

#if defined(__x86_64__) || defined(_M_X64)
AVX2_INLINE void quantize_block_avx2(const float *x, int8_t *q, float *d, int32_t *c) {
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    __m256 v[4], m = zero, probe = zero;
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        probe = _mm256_add_ps(probe, _mm256_mul_ps(v[i], zero));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float amax = _mm_cvtss_f32(h);
    const int finite = _mm256_movemask_ps(_mm256_cmp_ps(probe, probe, _CMP_UNORD_Q)) == 0;
    if (finite && amax >= 1e-30f) {
        const __m256 id = _mm256_set1_ps(127.0f / amax), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
        __m256i r[4], s = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi);
            r[i] = _mm256_cvtps_epi32(t);
            s = _mm256_add_epi32(s, r[i]);
        }
        // packs work per 128-bit lane: the bytes come out as 4-value groups 0 2 4 6 1 3 5 7
        // (in units of 4 values) and one cross-lane permute puts them back in order.
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)q, b);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        *d = amax / 127.0f;
        *c = -2 * _mm_cvtsi128_si32(s4);
    } else {
        memset(q, 0, GT_BLOCK);
        *d = finite ? 0.0f : NAN;
        *c = 0;
    }
}

AVX2_FN static void quantize_row_avx2(const float *x, size_t nb, int8_t *q, float *d, int32_t *c) {
    for (size_t b = 0; b < nb; b++) quantize_block_avx2(x + b * GT_BLOCK, q + b * GT_BLOCK, d + b, c + b);
}
#endif

#if defined(__aarch64__)
static inline __attribute__((always_inline)) void quantize_block_neon(const float *x, int8_t *q, float *d, int32_t *c) {
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t v[8], m = zero, probe = zero;
    for (int i = 0; i < 8; i++) {
        v[i] = vld1q_f32(x + 4 * i);
        m = vmaxq_f32(m, vabsq_f32(v[i]));
        probe = vaddq_f32(probe, vmulq_f32(v[i], zero));
    }
    const float amax = vmaxvq_f32(m);
    const int finite = vminvq_u32(vceqq_f32(probe, probe)) != 0;
    if (finite && amax >= 1e-30f) {
        const float id = 127.0f / amax;
        const float32x4_t hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
        int32x4_t r[8], s = vdupq_n_s32(0);
        for (int i = 0; i < 8; i++) {
            float32x4_t t = vminq_f32(vmaxq_f32(vmulq_n_f32(v[i], id), lo), hi);
            r[i] = vcvtnq_s32_f32(t);
            s = vaddq_s32(s, r[i]);
        }
        for (int i = 0; i < 2; i++) {
            int16x8_t a = vcombine_s16(vmovn_s32(r[4 * i]), vmovn_s32(r[4 * i + 1]));
            int16x8_t b = vcombine_s16(vmovn_s32(r[4 * i + 2]), vmovn_s32(r[4 * i + 3]));
            vst1q_s8(q + 16 * i, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
        }
        *d = amax / 127.0f;
        *c = -2 * vaddvq_s32(s);
    } else {
        memset(q, 0, GT_BLOCK);
        *d = finite ? 0.0f : NAN;
        *c = 0;
    }
}

static void quantize_row_neon(const float *x, size_t nb, int8_t *q, float *d, int32_t *c) {
    for (size_t b = 0; b < nb; b++) quantize_block_neon(x + b * GT_BLOCK, q + b * GT_BLOCK, d + b, c + b);
}
#endif

typedef void (*quantize_row_fn)(const float *x, size_t nb, int8_t *q, float *d, int32_t *c);

static quantize_row_fn row_quantizer(int isa) {
    if (!gt_isa_supported(isa)) return quantize_row_scalar;
    switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case GT_ISA_AVX2: case GT_ISA_AVX2_VNNI: case GT_ISA_AVX512_VNNI: return quantize_row_avx2;
#endif
#if defined(__aarch64__)
    case GT_ISA_NEON: case GT_ISA_NEON_DOTPROD: return quantize_row_neon;
#endif
    default: return quantize_row_scalar;
    }
}

size_t gt_activation_bytes(int type, size_t cols) {
    switch (type) {
    case GT_F32:
    case GT_BF16:
        return gt_act_stride(type, cols);
    case GT_Q8:
    case GT_Q4:
    case GT_Q5:
    case GT_Q4K:
    case GT_Q6K:
        return cols % gt_type_block(type) ? 0 : gt_act_stride(type, cols);
    default:
        return 0;
    }
}

void gt_prepare_activations_isa(int isa, int type, const float *x, size_t cols, size_t t0, size_t t1,
                                size_t x_stride, void *out) {
    const size_t stride = gt_activation_bytes(type, cols);
    if (stride == 0) return;
    const quantize_row_fn quantize = row_quantizer(isa);
    const size_t nb = cols / GT_BLOCK;
    for (size_t t = t0; t < t1; t++) {
        const float *xt = x + t * x_stride;
        uint8_t *o = (uint8_t *)out + t * stride;
        if (gt_is_quantized(type))
            quantize(xt, nb, (int8_t *)o, (float *)(o + nb * GT_BLOCK), (int32_t *)(o + nb * (GT_BLOCK + 4)));
        else
            memcpy(o, xt, cols * sizeof(float));
    }
}

// What the int8 rounding of prepared inputs left over: r = x - d * q per block. Preparing r as
// well and adding its product to the first gives inputs of about 15 bits (SIMDKernels'
// preciseInputs). In double, d * q is exact, so whether a compiler fuses it with the subtraction
// changes nothing: every build and path gives the same r.
void gt_activation_residuals(int type, const float *x, size_t cols, size_t t0, size_t t1, size_t x_stride,
                             const void *act, float *r, size_t r_stride) {
    const size_t stride = gt_activation_bytes(type, cols);
    if (stride == 0 || !gt_is_quantized(type)) return;
    const size_t nb = cols / GT_BLOCK;
    for (size_t t = t0; t < t1; t++) {
        const void *a = (const uint8_t *)act + t * stride;
        const int8_t *q = gt_act_q(a);
        const float *d = gt_act_d(a, nb);
        const float *xt = x + t * x_stride;
        float *rt = r + t * r_stride;
        for (size_t i = 0; i < nb * GT_BLOCK; i++) rt[i] = (float)((double)xt[i] - (double)d[i / GT_BLOCK] * q[i]);
    }
}

void gt_prepare_activations(int type, const float *x, size_t cols, size_t count, size_t x_stride, void *out) {
    gt_prepare_activations_isa(gt_kernel_isa_id(), type, x, cols, 0, count, x_stride, out);
}
