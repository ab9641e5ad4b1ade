// gemma_quantize: the converter's C. Rows of f32 (widened from bf16 / f16 / f32 checkpoints and
// checked for NaN and infinities) quantized to the storage types of gemma_kernels.h, the error
// report's sums, and GGUF rows dequantized (gguf_dequant.h). The runtime never links this: it
// only reads what these functions wrote (gemma_kernels.h has the layouts and gt_dequantize_row).
#ifndef GEMMA_QUANTIZE_H
#define GEMMA_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- quantization; `n` is a multiple of GT_BLOCK for q8/q4/q5, of GT_KBLOCK for q4k/q6k ----
//
// q8: d = f16(max|x| / 127), q = round_even(x / d) (multiplying by 1/d). q4: a search over six
// candidate scales around max|x| / 8 plus a least-squares refinement, keeping the one with the
// smallest squared error (quantize.c describes the exact arithmetic); q5 the same search with
// levels -16..15 (quantize_q5.c, portable code only). q4k / q6k: ggml's reference quantizers
// without an importance matrix (quantize_row_q4_K_ref / _q6_K_ref: a weighted scale-and-min
// search per sub-block of 32, resp. a symmetric scale search per sub-block of 16, then six- or
// eight-bit sub-block scales against the f16 super-block scale), reimplemented with the same IEEE
// operations in the same order and no fused multiply-adds: for finite inputs of magnitude below
// ~1e7 they write exactly ggml's bytes (quantize_k.c; beyond, ggml overflows its f16 scales and
// these saturate them instead). Inputs must be free of NaN
// and infinities (the converter checks them first); for such inputs every SIMD path writes
// exactly the bytes of gt_quantize_row_reference.
/// Quantizes with the path gt_matmul uses (gt_kernel_isa_id: AVX2 on x86-64 with AVX2/FMA/F16C,
/// so GEMMA_TINY_KERNELS=scalar forces the portable code here too).
void gt_quantize_row(int type, const float *x, size_t n, void *out);
/// The same with an explicit path: GT_ISA_AVX2 / GT_ISA_AVX2_VNNI / GT_ISA_AVX512_VNNI run the AVX2 quantizers (if
/// the CPU supports them; GT_ISA_AVX512_VNNI the AVX-512 ones for q4k / q6k); anything else runs the portable code.
void gt_quantize_row_isa(int isa, int type, const float *x, size_t n, void *out);
/// The reference the SIMD quantizers are tested against, bit for bit: portable C with every
/// multiply-add of the q4 search fused (fmaf). The portable path equals it except on x86-64
/// CPUs without FMA, which round those multiply-adds twice (fmaf would be a slow libm call). q4k / q6k fuse
/// nothing: there the portable path is the reference on every CPU.
void gt_quantize_row_reference(int type, const float *x, size_t n, void *out);
// ---- converter rows ----
enum { GT_SRC_F32 = 0, GT_SRC_BF16 = 1, GT_SRC_F16 = 2 };
/// Widens `n` source values (f32, bf16 or f16, little-endian, any alignment) to f32.
void gt_widen_to_f32(int src_type, const void *src, size_t n, float *dst);
/// Index of the first NaN or infinity in x, or n if all are finite.
size_t gt_first_nonfinite(const float *x, size_t n);
/// One converter row: widens `n` source values into `scratch` (n floats), checks them, and
/// quantizes them to `type` at `out` (gt_quantize_row). Returns n, or the index of the first NaN
/// or infinity (then `out` is not written). The same bytes as gt_widen_to_f32,
/// gt_first_nonfinite and gt_quantize_row in turn, with bf16 widened and checked in one pass.
size_t gt_convert_row(int src_type, const void *src, size_t n, int type, void *out, float *scratch);
/// Sums of squares for relative RMS error: *err += sum (x - y)^2, *ref += sum x^2.
void gt_error_sums(const float *x, const float *y, size_t n, double *err, double *ref);

#ifdef __cplusplus
}
#endif
#endif
