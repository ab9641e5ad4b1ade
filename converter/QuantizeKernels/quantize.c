// Row quantization (the converter): q8 and q4 here, q5 in quantize_q5.c, q4k / q6k in quantize_k.c;
// the path is chosen at run time.
#include "quantize_internal.h"
#include "kquant_quantize.h"
#include <math.h>
#include <string.h>

static inline void put_f16(uint8_t *p, float v) { uint16_t h = gt_f32_to_f16(v); memcpy(p, &h, 2); }


// Round to nearest, ties to even, for |v| < 2^22: adding and subtracting 1.5 * 2^23 leaves
// only the integer bits. Branch-free, so the block loops vectorize (lrintf is a libm call).
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }
static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The portable reference. The AVX2 path (quantize_avx2.c) reproduces it bit for bit.

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

// One multiply-add of the q4 search. Fused (one rounding, fmaf) is the reference arithmetic:
// the AVX2 path (quantize_avx2.c) performs exactly these operations, AArch64 has them natively,
// and it is what the compiler made of `e = v - d * q; err += e * e` on any target with FMA.
// Unfused (two roundings) serves x86-64 CPUs without FMA only, where fmaf is a slow libm call:
// it is what they computed before, and picks a different (equally good) scale in a few blocks
// in 10^4. Separate statements, so that no compiler contracts them.
static inline __attribute__((always_inline)) float mul_add(float a, float b, float c, int fused) {
    if (fused) return fmaf(a, b, c);
    float p = a * b;
    return p + c;
}

// Squared error of quantizing x with scale d to levels -8..7, and the least-squares scale for
// the chosen levels (sum x*q / sum q*q). Eight lanes of partial sums (lane l takes elements l,
// l + 8, l + 16, l + 24 in that order), then the lanes summed in order 0..7: SIMD paths keep
// exactly this order.
static inline __attribute__((always_inline)) float q4_error(const float *x, float d, float *ls_scale, int fused) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err[8] = {0}, sxq[8] = {0}, sqq[8] = {0};
    for (int i = 0; i < GT_BLOCK; i += 8) {
        for (int l = 0; l < 8; l++) {
            float v = x[i + l];
            float q = round_even(clampf(v * id, -8.0f, 7.0f));
            float e = mul_add(-d, q, v, fused);
            err[l] = mul_add(e, e, err[l], fused);
            sxq[l] = mul_add(v, q, sxq[l], fused);
            sqq[l] = mul_add(q, q, sqq[l], fused);
        }
    }
    float e = 0.0f, a = 0.0f, b = 0.0f;
    for (int l = 0; l < 8; l++) { e += err[l]; a += sxq[l]; b += sqq[l]; }
    *ls_scale = b > 0.0f ? a / b : d;
    return e;
}

// q4 scale search: rather than mapping the largest magnitude to -8 (Q4_0's choice), try a few
// scales around it, refine the best by least squares, and keep whichever has the smallest error.
static inline __attribute__((always_inline)) void quantize_block_q4(const float *x, uint8_t *out, int fused) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < GT_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
    for (int i = 0; i < GT_BLOCK; i++) {
        if (fabsf(x[i]) == amax) { vmax = x[i]; break; }
    }
    float best_d = 0.0f;
    if (amax > 0.0f) {
        float best_err = INFINITY, best_ls = 0.0f;
        for (int c = 0; c < GT_Q4_CANDIDATES; c++) {
            float d = vmax / gt_q4_divisors[c], ls;
            float err = q4_error(x, d, &ls, fused);
            if (err < best_err) { best_err = err; best_d = d; best_ls = ls; }
        }
        float unused;
        if (q4_error(x, best_ls, &unused, fused) < best_err) best_d = best_ls;
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

// The reference (fused) q4 rows.
static void quantize_row_q4_fused(const float *x, size_t n, uint8_t *o) {
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q4(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES, 1);
}

// The portable path: the reference where the target has FMA instructions (AArch64: fmaf is
// one fmadd), the unfused variant on x86-64 without FMA.
static void quantize_row_q4_portable(const float *x, size_t n, uint8_t *o) {
#if defined(__x86_64__) && !defined(__FMA__)
    for (size_t b = 0; b < n / GT_BLOCK; b++) quantize_block_q4(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES, 0);
#else
    quantize_row_q4_fused(x, n, o);
#endif
}

const float gt_q4_divisors[GT_Q4_CANDIDATES] = { -8.0f, -7.5f, -7.0f, 7.0f, -6.5f, 6.5f };

static void quantize_row_scalar(int type, const float *x, size_t n, uint8_t *o, int reference) {
    switch (type) {
    case GT_F32:
        memcpy(o, x, n * 4);
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
        if (reference) quantize_row_q4_fused(x, n, o);
        else quantize_row_q4_portable(x, n, o);
        break;
    case GT_Q5:
        gt_quantize_row_q5(x, n, o);
        break;
    case GT_Q4K:  // no fused multiply-adds: the portable path is the reference everywhere
        gt_quantize_row_q4k_ref(x, n, o);
        break;
    case GT_Q6K:
        gt_quantize_row_q6k_ref(x, n, o);
        break;
    }
}

void gt_quantize_row_isa(int isa, int type, const float *x, size_t n, void *out) {
    uint8_t *o = (uint8_t *)out;
#if defined(__x86_64__) || defined(_M_X64)
    if ((isa == GT_ISA_AVX2 || isa == GT_ISA_AVX2_VNNI || isa == GT_ISA_AVX512_VNNI) &&
        (type == GT_Q8 || type == GT_Q4 || type == GT_Q4K || type == GT_Q6K) && gt_isa_supported(isa)) {
        switch (type) {
        case GT_Q8: gt_quantize_row_q8_avx2(x, n, o); break;
        case GT_Q4: gt_quantize_row_q4_avx2(x, n, o); break;
        // K types: quantize_k_avx512.c / quantize_k_avx2.c, the same bytes.
        case GT_Q4K:
            if (isa == GT_ISA_AVX512_VNNI) gt_quantize_row_q4k_avx512(x, n, o);
            else gt_quantize_row_q4k_avx2(x, n, o);
            break;
        default:
            if (isa == GT_ISA_AVX512_VNNI) gt_quantize_row_q6k_avx512(x, n, o);
            else gt_quantize_row_q6k_avx2(x, n, o);
            break;
        }
        return;
    }
#endif
    (void)isa;
    quantize_row_scalar(type, x, n, o, 0);
}

void gt_quantize_row_reference(int type, const float *x, size_t n, void *out) {
    quantize_row_scalar(type, x, n, (uint8_t *)out, 1);
}

void gt_quantize_row(int type, const float *x, size_t n, void *out) {
    gt_quantize_row_isa(gt_kernel_isa_id(), type, x, n, out);
}
