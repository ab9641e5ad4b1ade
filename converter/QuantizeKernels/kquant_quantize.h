// Private to the converter's C: the K-quant quantizers of GT_Q4K and GT_Q6K, split into the
// per-sub-block scale searches (portable in quantize_k.c; AVX2 and AVX-512 in quantize_k_simd.h,
// bit-identical) and the per-super-block packing both share (quantize_k.c). The block layout and
// the dequantizers are the runtime's (Sources/GemmaKernels/kquant_internal.h).
#ifndef GEMMA_KQUANT_QUANTIZE_H
#define GEMMA_KQUANT_QUANTIZE_H

#include "kquant_internal.h"

// The Q4_K search tries the inverse scales gt_q4k_step(k) / (max - min), k = 0..GT_Q4K_STEPS - 1,
// after the plain 15 / (max - min): ggml's rmin -1, rdelta 0.1, 20 steps, as ggml computes it.
#define GT_Q4K_STEPS 21
static inline float gt_q4k_step(int k) {
    float r = 0.1f * (float)k;
    r = -1.0f + r;
    return r + 15.0f;
}
// The Q6_K search tries -(32 + 0.1 * is) / max for is = -9..9, is != 0, after -32 / max.
static inline float gt_q6k_step(int is) {
    float r = 0.1f * (float)is;
    return -(32.0f + r);
}

// round_even(clamp(v, lo, hi)), with NaN mapped to lo: `t = v > lo ? v : lo; t < hi ? t : hi`
// is exactly x86's max(v, lo) then min(t, hi) (maxps/minps return the second operand when the
// comparison is false). Equal to ggml's nearest_int then clamp for every v it handles.
static inline float gt_kq_level(float v, float lo, float hi) {
    float t = v > lo ? v : lo;
    t = t < hi ? t : hi;
    return (t + 12582912.0f) - 12582912.0f;
}

// The per-super-block steps after the searches, shared by every path (quantize_k.c).
// Q4_K: from the search's scale and -min of each sub-block of 32, writes d, dmin and the packed
// six-bit scales of `out` and returns each sub-block's rounded scale d[j] = d * sc_j and offset
// dm[j] = dmin * m_j. The values are then re-quantized, l = clamp(round((x + dm[j]) / d[j]), 0, 15),
// except in sub-blocks with d[j] == 0, which keep the search's levels (as ggml's do).
void gt_q4k_scales(const float *scales, const float *mins, uint8_t *out, float *d, float *dm);
// Writes qs of `out` from the levels L[256] (0..15) in value order.
void gt_q4k_pack_levels(const uint8_t *L, uint8_t *out);
// Q6_K: from the search's signed scale of each sub-block of 16, writes d and the int8 scales of
// `out` and returns each sub-block's rounded scale d[j] = d * scales_j, or returns 0 after zeroing
// the whole block (every scale below 1e-15). Re-quantization: l = clamp(round(x / d[j]), -32, 31)
// + 32, except where d[j] == 0 (the search's levels stay).
int gt_q6k_scales(const float *scales, uint8_t *out, float *d);
// Writes ql and qh of `out` from the levels L[256] (0..63) in value order.
void gt_q6k_pack_levels(const uint8_t *L, uint8_t *out);

// Whole rows (n a multiple of 256). The portable code is the reference.
void gt_quantize_row_q4k_ref(const float *x, size_t n, uint8_t *out);
void gt_quantize_row_q6k_ref(const float *x, size_t n, uint8_t *out);
#if defined(__x86_64__) || defined(_M_X64)
void gt_quantize_row_q4k_avx2(const float *x, size_t n, uint8_t *out);
void gt_quantize_row_q6k_avx2(const float *x, size_t n, uint8_t *out);
// AVX-512 F (quantize_k_avx512.c), for the avx512+vnni path; the same bytes again.
void gt_quantize_row_q4k_avx512(const float *x, size_t n, uint8_t *out);
void gt_quantize_row_q6k_avx512(const float *x, size_t n, uint8_t *out);
#endif

#endif
