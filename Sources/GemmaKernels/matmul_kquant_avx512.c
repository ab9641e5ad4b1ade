// x86-64 AVX-512 + VNNI kernels for K-quant weights (avx512+vnni path).
// Single tokens (decoding, memory-bound) take the AVX2 kernels, as for the other types.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"

static gt_matmul_fn single_token(int type) {
    const gt_kernel_table *t = gt_cpu_has_avxvnni() ? &gt_kernels_avxvnni : &gt_kernels_avx2;
    return t->fn[type];
}

void gt_q4k_avx512vnni(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    single_token(GT_Q4K)(w, rs, cols, act, as, count, y, ys, r0, r1);
}

void gt_q6k_avx512vnni(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    single_token(GT_Q6K)(w, rs, cols, act, as, count, y, ys, r0, r1);
}

#endif
