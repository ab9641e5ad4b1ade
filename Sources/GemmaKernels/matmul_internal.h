// Private to the kernels: the prepared-activation layout and the per-ISA kernel tables.
// Not part of the public header (Swift never sees this file).
#ifndef GEMMA_MATMUL_INTERNAL_H
#define GEMMA_MATMUL_INTERNAL_H

#include "gemma_kernels.h"
#include "cpu_features.h"
#include <string.h>

// ---- prepared activations ----
//
// One prepared vector takes gt_activation_bytes(type, cols) bytes (a multiple of 64); vector t
// of a batch starts at t times that. Its layout depends only on the weight type, never on the ISA,
// so any path can consume what gt_prepare_activations wrote.
//
// f32 / bf16 weights: `cols` f32 values, copied as they are (no rounding).
// q8 / q4 / q5 weights (cols = nb * 32), three arrays back to back:
//   int8  q[nb * 32]  block b holds round_even(x * 127 / amax_b), in [-127, 127]
//   float d[nb]       amax_b / 127: element i of block b is approximately d[b] * q[i]
//   int32 c[nb]       -2 x the sum of block b's 32 q values: the q4 weights' -8 offset spread over
//                     4 int32 lanes (4 x -2 x sum = -8 x sum), ready to load as an accumulator's start
//                     (q5's -16 offset is twice that)

static inline size_t gt_round64(size_t n) { return (n + 63) & ~(size_t)63; }

// The K types (GT_Q4K, GT_Q6K) take the same prepared inputs as q8/q4/q5 (blocks of 32 within
// their super-blocks of 256).
static inline int gt_is_quantized(int type) {
    return type == GT_Q8 || type == GT_Q4 || type == GT_Q5 || type == GT_Q4K || type == GT_Q6K;
}

// Values per block of a storage type: 1 (f32, bf16), GT_BLOCK, or GT_KBLOCK (K types); a row
// is a whole number of them. 0 for an unknown type.
static inline size_t gt_type_block(int type) {
    switch (type) {
    case GT_F32: case GT_BF16: return 1;
    case GT_Q8: case GT_Q4: case GT_Q5: return GT_BLOCK;
    case GT_Q4K: case GT_Q6K: return GT_KBLOCK;
    default: return 0;
    }
}

static inline int gt_is_kquant(int type) { return type == GT_Q4K || type == GT_Q6K; }

static inline size_t gt_act_stride(int type, size_t cols) {
    if (gt_is_quantized(type)) return gt_round64(cols / GT_BLOCK * (GT_BLOCK + 8));
    return gt_round64(cols * sizeof(float));
}

static inline const int8_t *gt_act_q(const void *act) { return (const int8_t *)act; }
static inline const float *gt_act_d(const void *act, size_t nb) {
    return (const float *)((const uint8_t *)act + nb * GT_BLOCK);
}
static inline const int32_t *gt_act_c(const void *act, size_t nb) {
    return (const int32_t *)((const uint8_t *)act + nb * (GT_BLOCK + 4));
}

static inline uint32_t gt_load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;  // little-endian hosts only (x86-64, AArch64)
}

static inline float gt_load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return gt_f16_to_f32(h);
}

// ---- kernel tables ----
//
// One kernel per storage type and ISA. Same contract as gt_matmul, with `act_stride` =
// gt_act_stride(type, cols). A kernel computes every row with the same sequence of operations
// whatever the row range and batch size, so results do not depend on how rows are split across
// threads or tokens across calls.
typedef void (*gt_matmul_fn)(const uint8_t *w, size_t row_stride, size_t cols,
                             const uint8_t *act, size_t act_stride, size_t count,
                             float *y, size_t y_stride, size_t row_begin, size_t row_end);

typedef struct {
    const char *name;
    // Indexed by GT_F32, GT_BF16, GT_Q8, GT_Q4, GT_Q5, GT_Q4K, GT_Q6K. A NULL entry (a type a
    // path has no kernel for yet) falls back to the scalar table's, and to nothing if that is NULL.
    gt_matmul_fn fn[GT_TYPE_COUNT];
} gt_kernel_table;

// K-quant kernels, one per ISA (matmul_kquant*.c; the tables above list them).
#define GT_DECLARE_MATMUL(NAME)                                                                     \
    void NAME(const uint8_t *w, size_t row_stride, size_t cols, const uint8_t *act, size_t act_stride, \
              size_t count, float *y, size_t y_stride, size_t row_begin, size_t row_end)
GT_DECLARE_MATMUL(gt_q4k_scalar);
GT_DECLARE_MATMUL(gt_q6k_scalar);
GT_DECLARE_MATMUL(gt_q4k_rowlanes_scalar);  // matmul_kquant_rowlanes.c: the x86 paths' arithmetic
GT_DECLARE_MATMUL(gt_q6k_rowlanes_scalar);
#if defined(__x86_64__) || defined(_M_X64)
GT_DECLARE_MATMUL(gt_q4k_avx2);
GT_DECLARE_MATMUL(gt_q6k_avx2);
GT_DECLARE_MATMUL(gt_q4k_avxvnni);
GT_DECLARE_MATMUL(gt_q6k_avxvnni);
GT_DECLARE_MATMUL(gt_q4k_avx512vnni);
GT_DECLARE_MATMUL(gt_q6k_avx512vnni);
#endif
#if defined(__aarch64__)
GT_DECLARE_MATMUL(gt_q4k_neon);
GT_DECLARE_MATMUL(gt_q6k_neon);
GT_DECLARE_MATMUL(gt_q4k_dot);
GT_DECLARE_MATMUL(gt_q6k_dot);
#endif

// A per-thread buffer of at least `bytes` bytes, 64-byte aligned, kept for the thread's next
// calls (kquant_scratch.c); NULL if it cannot be allocated.
uint8_t *gt_kquant_scratch(size_t bytes);

extern const gt_kernel_table gt_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const gt_kernel_table gt_kernels_avx2;
extern const gt_kernel_table gt_kernels_avxvnni;
extern const gt_kernel_table gt_kernels_avx512_single;  // AVX-512 VNNI+VL, 256-bit: one token at a time
extern const gt_kernel_table gt_kernels_avx512vnni;
#endif
#if defined(__aarch64__)
extern const gt_kernel_table gt_kernels_neon;
extern const gt_kernel_table gt_kernels_neon_dotprod;
#endif

#endif
