// Private to the converter's C: the quantizers' shared constants and the per-ISA row quantizers.
// The block layouts are the runtime's (Sources/GemmaKernels/matmul_internal.h).
#ifndef GEMMA_QUANTIZE_INTERNAL_H
#define GEMMA_QUANTIZE_INTERNAL_H

#include "matmul_internal.h"
#include "gemma_quantize.h"

// The q4 scale search tries d = vmax / divisor for these divisors, in this order (vmax: the
// block's element of largest magnitude, the first one on a tie).
#define GT_Q4_CANDIDATES 6
extern const float gt_q4_divisors[GT_Q4_CANDIDATES];

// q5 rows (quantize_q5.c): the search below with levels -16..15.
void gt_quantize_row_q5(const float *x, size_t n, uint8_t *out);

#if defined(__x86_64__) || defined(_M_X64)
// AVX2 + FMA + F16C (quantize_avx2.c): bit-identical to gt_quantize_row_reference.
void gt_quantize_row_q8_avx2(const float *x, size_t n, uint8_t *out);
void gt_quantize_row_q4_avx2(const float *x, size_t n, uint8_t *out);
// bf16 -> f32 with the non-finite check; returns n, or the index of the first NaN / infinity.
size_t gt_widen_bf16_avx2(const void *src, size_t n, float *dst);
#endif

#endif
