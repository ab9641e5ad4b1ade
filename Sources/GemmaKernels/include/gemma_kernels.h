// gemma_kernels: the C hot loops of gemma-tiny.
//
// Storage types and their block layouts (little-endian, see docs/FORMAT.md):
//   GT_F32   4 bytes per weight
//   GT_BF16  2 bytes per weight (upper half of an IEEE f32)
//   GT_Q8    blocks of 32: f16 scale d, then 32 int8 q;         x = d * q          (8.5 bits/weight)
//   GT_Q4    blocks of 32: f16 scale d, then 16 bytes of nibbles; x = d * (q - 8)  (4.5 bits/weight)
//            byte j holds element j in its low nibble and element j + 16 in its high nibble.
// Rows of quantized tensors are whole blocks: the row length is a multiple of GT_BLOCK.
#ifndef GEMMA_KERNELS_H
#define GEMMA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GT_F32 = 0,
    GT_BF16 = 1,
    GT_Q8 = 2,
    GT_Q4 = 3,
};

#define GT_BLOCK 32
#define GT_Q8_BLOCK_BYTES 34
#define GT_Q4_BLOCK_BYTES 18

/// Bytes one row of `n` weights takes in `type`; 0 when `type` is unknown or `n` is not whole blocks.
size_t gt_row_bytes(int type, size_t n);

// ---- scalar conversions ----
float gt_f16_to_f32(uint16_t h);
uint16_t gt_f32_to_f16(float f);      // round to nearest even, saturates to +-inf like IEEE
float gt_bf16_to_f32(uint16_t h);
uint16_t gt_f32_to_bf16(float f);     // round to nearest even (as torch does); NaN stays NaN

// ---- quantization (converter side); `n` is a multiple of GT_BLOCK for q8/q4 ----
void gt_quantize_row(int type, const float *x, size_t n, void *out);
void gt_dequantize_row(int type, const void *row, size_t n, float *out);

// ---- dot products and matrix-vector products (scalar reference implementations) ----
float gt_dot_scalar(int type, const void *row, const float *x, size_t n);
/// y[r] = dot(row r of w, x) for r in [row_begin, row_end); rows are `row_stride` bytes apart.
void gt_matvec_scalar(int type, const void *w, size_t row_stride, size_t cols,
                      const float *x, float *y, size_t row_begin, size_t row_end);

// ---- checksums: XXH64 (xxhash.com spec), one-shot and streaming ----
uint64_t gt_xxh64(const void *data, size_t len, uint64_t seed);

typedef struct {
    uint64_t total_len;
    uint64_t v[4];
    uint64_t mem[4];
    uint32_t memsize;
    uint64_t seed;
} gt_xxh64_state;

void gt_xxh64_reset(gt_xxh64_state *s, uint64_t seed);
void gt_xxh64_update(gt_xxh64_state *s, const void *data, size_t len);
uint64_t gt_xxh64_digest(const gt_xxh64_state *s);


// ---- converter helpers ----
enum { GT_SRC_F32 = 0, GT_SRC_BF16 = 1, GT_SRC_F16 = 2 };
/// Widens `n` source values (f32, bf16 or f16, little-endian, any alignment) to f32.
void gt_widen_to_f32(int src_type, const void *src, size_t n, float *dst);
/// Index of the first NaN or infinity in x, or n if all are finite.
size_t gt_first_nonfinite(const float *x, size_t n);
/// Sums of squares for relative RMS error: *err += sum (x - y)^2, *ref += sum x^2.
void gt_error_sums(const float *x, const float *y, size_t n, double *err, double *ref);

#ifdef __cplusplus
}
#endif
#endif
