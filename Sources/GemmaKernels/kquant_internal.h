// Private to the kernels: the K-quant storage types GT_Q4K and GT_Q6K (ggml's Q4_K and Q6_K
// super-blocks of 256 values; layouts in include/gemma_kernels.h and docs/FORMAT.md).
//
// The block layout and the dequantizers (dequant_k.c). The converter's C (converter/QuantizeKernels)
// includes this header too, for its quantizers (kquant_quantize.h) and its GGUF import; nothing
// here includes the converter's headers.
#ifndef GEMMA_KQUANT_INTERNAL_H
#define GEMMA_KQUANT_INTERNAL_H

#include "matmul_internal.h"

#define GT_Q4K_SUB 32  // values per Q4_K sub-block (8 per super-block)
#define GT_Q6K_SUB 16  // values per Q6_K sub-block (16 per super-block)

// Six-bit scale and min of Q4_K (and Q5_K) sub-block j (0..7) from the 12 packed bytes: the
// first four sub-blocks keep them in the low 6 bits of bytes j and j + 4; the last four split
// them between a nibble of bytes 8..11 and the two top bits of bytes j - 4 and j.
static inline void gt_q4k_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// ---- dequantization (dequant_k.c): `nb` super-blocks to nb * 256 floats, in ggml's order of
// operations without fused multiply-adds, so bit-identical to ggml's and gguf-py's dequantizers.
void gt_dequantize_q4k(const uint8_t *blocks, size_t nb, float *y);
void gt_dequantize_q6k(const uint8_t *blocks, size_t nb, float *y);

#endif
