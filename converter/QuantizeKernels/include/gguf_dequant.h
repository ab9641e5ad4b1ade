// gguf_dequant: widening of GGUF (llama.cpp / ggml) tensor rows to f32, for the converter's
// GGUF import. Type ids are ggml's (GGMLQuantizationType in gguf-py).
//
// Block layouts (little-endian; f16 = IEEE half; "d" a scale, "m"/"dmin" an offset):
//   F32, F16, BF16  plain values
//   Q8_0   32 values, 34 bytes: f16 d, int8 q[32]                       x = q*d
//   Q4_0   32 values, 18 bytes: f16 d, u8 qs[16]                        x = (nibble - 8)*d
//   Q4_1   32 values, 20 bytes: f16 d, f16 m, u8 qs[16]                 x = nibble*d + m
//   Q5_0   32 values, 22 bytes: f16 d, u32 qh, u8 qs[16]                x = (nibble | hbit<<4 - 16)*d
//   Q5_1   32 values, 24 bytes: f16 d, f16 m, u32 qh, u8 qs[16]         x = (nibble | hbit<<4)*d + m
//          (legacy types: byte j holds value j in its low nibble and value j+16 in its high one;
//           bit j of qh is the fifth bit of value j)
//   Q4_K  256 values, 144 bytes: f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and mins),
//          u8 qs[128]; eight sub-blocks of 32: x = (d*sc)*q - (dmin*m)
//   Q5_K  256 values, 176 bytes: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
//   Q6_K  256 values, 210 bytes: u8 ql[128], u8 qh[64], int8 scales[16], f16 d;
//          sixteen sub-blocks of 16: x = (d*sc)*(q - 32)
// The arithmetic is done in the same order as ggml's reference dequantizers (and gguf-py's),
// without fused multiply-adds, so results are bit-identical to theirs.
#ifndef GGUF_DEQUANT_H
#define GGUF_DEQUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GT_GGML_F32 = 0,
    GT_GGML_F16 = 1,
    GT_GGML_Q4_0 = 2,
    GT_GGML_Q4_1 = 3,
    GT_GGML_Q5_0 = 6,
    GT_GGML_Q5_1 = 7,
    GT_GGML_Q8_0 = 8,
    GT_GGML_Q4_K = 12,
    GT_GGML_Q5_K = 13,
    GT_GGML_Q6_K = 14,
    GT_GGML_BF16 = 30,
};

/// 1 if gt_gguf_dequantize_row handles `ggml_type`, else 0.
int gt_gguf_can_dequantize(int ggml_type);

/// Values per block and bytes per block of a type gt_gguf_dequantize_row handles; 0 otherwise.
size_t gt_gguf_block_values(int ggml_type);
size_t gt_gguf_block_bytes(int ggml_type);

/// Widens `n` values of `ggml_type` at `src` (any alignment) to f32 in `dst`.
/// Returns 0, or -1 when the type is not handled or `n` is not a whole number of blocks
/// (then `dst` is untouched).
int gt_gguf_dequantize_row(int ggml_type, const void *src, size_t n, float *dst);

#ifdef __cplusplus
}
#endif
#endif
