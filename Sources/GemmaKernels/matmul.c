// Matrix products: ISA selection, dispatch, and the portable scalar path (inputs: activations.c).
// The SIMD paths live in matmul_avx2.c (x86-64) and matmul_neon.c (AArch64).
#include "matmul_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- ISA selection ----

static const char *const isa_names[GT_ISA_COUNT] = { "scalar", "avx2", "neon", "neon+dotprod", "avx2+vnni", "avx512+vnni" };

const char *gt_isa_name(int isa) { return isa >= 0 && isa < GT_ISA_COUNT ? isa_names[isa] : NULL; }

int gt_isa_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < GT_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) return i;
    }
    return -1;
}

int gt_isa_supported(int isa) {
    switch (isa) {
    case GT_ISA_SCALAR: return 1;
#if defined(__x86_64__) || defined(_M_X64)
    case GT_ISA_AVX2: return gt_cpu_has_avx2();
    case GT_ISA_AVX2_VNNI: return gt_cpu_has_avxvnni();
    case GT_ISA_AVX512_VNNI: return gt_cpu_has_avx512vnni();
#endif
#if defined(__aarch64__)
    case GT_ISA_NEON: return 1;
    case GT_ISA_NEON_DOTPROD: return gt_cpu_has_dotprod();
#endif
    default: return 0;
    }
}

static const gt_kernel_table *table_for(int isa) {
    switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case GT_ISA_AVX2: return &gt_kernels_avx2;
    case GT_ISA_AVX2_VNNI: return &gt_kernels_avxvnni;
    case GT_ISA_AVX512_VNNI: return &gt_kernels_avx512vnni;
#endif
#if defined(__aarch64__)
    case GT_ISA_NEON: return &gt_kernels_neon;
    case GT_ISA_NEON_DOTPROD: return &gt_kernels_neon_dotprod;
#endif
    default: return &gt_kernels_scalar;
    }
}

static int best_isa(void) {
    const char *forced = getenv("GEMMA_TINY_KERNELS");
    int want = gt_isa_from_name(forced);
    if (want >= 0 && gt_isa_supported(want)) return want;
    static const int order[] = { GT_ISA_AVX512_VNNI, GT_ISA_AVX2_VNNI, GT_ISA_AVX2, GT_ISA_NEON_DOTPROD, GT_ISA_NEON };
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (gt_isa_supported(order[i])) return order[i];
    }
    return GT_ISA_SCALAR;
}

// -1 until first use. Racing first uses all store the same value.
static int selected_isa = -1;

int gt_kernel_isa_id(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_ACQUIRE);
    if (isa < 0) {
        isa = best_isa();
        __atomic_store_n(&selected_isa, isa, __ATOMIC_RELEASE);
    }
    return isa;
}

const char *gt_kernel_isa(void) { return isa_names[gt_kernel_isa_id()]; }

int gt_set_kernel_isa(int isa) {
    if (isa == GT_ISA_AUTO) isa = best_isa();
    if (!gt_isa_supported(isa)) return -1;
    __atomic_store_n(&selected_isa, isa, __ATOMIC_RELEASE);
    return isa;
}

void gt_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

// ---- dispatch ----  (input preparation: activations.c)

// Nothing to do for an unknown type, an empty range or batch, or quantized rows that are not
// whole blocks (no kernel exists for them); zero-length rows give zeros.
static int valid_call(int type, size_t cols, size_t count, float *y, size_t y_stride, size_t r0, size_t r1) {
    if (type < 0 || type >= GT_TYPE_COUNT || r0 >= r1 || count == 0) return 0;
    if (cols % gt_type_block(type)) return 0;
    if (cols == 0) {
        for (size_t t = 0; t < count; t++)
            for (size_t r = r0; r < r1; r++) y[t * y_stride + r] = 0.0f;
        return 0;
    }
    return 1;
}

// The kernel of `type` on path `isa`: the scalar table's when that path has none (NULL entry),
// NULL when neither has one.
static gt_matmul_fn kernel_for(int isa, int type) {
    gt_matmul_fn fn = table_for(isa)->fn[type];
    return fn ? fn : gt_kernels_scalar.fn[type];
}

void gt_matmul_isa(int isa, int type, const void *w, size_t row_stride, size_t cols, const void *act,
                   size_t count, float *y, size_t y_stride, size_t row_begin, size_t row_end) {
    if (!valid_call(type, cols, count, y, y_stride, row_begin, row_end)) return;
    if (!gt_isa_supported(isa)) isa = GT_ISA_SCALAR;
    gt_matmul_fn fn = kernel_for(isa, type);
    if (fn) fn((const uint8_t *)w, row_stride, cols, (const uint8_t *)act, gt_act_stride(type, cols), count, y, y_stride,
               row_begin, row_end);
}

// The x86 paths compute K-quant products in row lanes (matmul_kquant_rowlanes.c); the scalar
// and ARM paths in matmul_kquant.c's lanes.
static int gt_kquant_rowlanes(int isa) {
    return isa == GT_ISA_AVX2 || isa == GT_ISA_AVX2_VNNI || isa == GT_ISA_AVX512_VNNI;
}

void gt_matmul_reference(int isa, int type, const void *w, size_t row_stride, size_t cols, const void *act,
                         size_t count, float *y, size_t y_stride, size_t row_begin, size_t row_end) {
    if (!valid_call(type, cols, count, y, y_stride, row_begin, row_end)) return;
    gt_matmul_fn fn = kernel_for(GT_ISA_SCALAR, type);
    if (gt_kquant_rowlanes(isa) && gt_is_kquant(type))
        fn = type == GT_Q4K ? gt_q4k_rowlanes_scalar : gt_q6k_rowlanes_scalar;
    if (fn) fn((const uint8_t *)w, row_stride, cols, (const uint8_t *)act, gt_act_stride(type, cols), count, y, y_stride,
               row_begin, row_end);
}

void gt_matmul(int type, const void *w, size_t row_stride, size_t cols, const void *act, size_t count,
               float *y, size_t y_stride, size_t row_begin, size_t row_end) {
    if (!valid_call(type, cols, count, y, y_stride, row_begin, row_end)) return;
    gt_matmul_fn fn = kernel_for(gt_kernel_isa_id(), type);
    if (fn) fn((const uint8_t *)w, row_stride, cols, (const uint8_t *)act, gt_act_stride(type, cols), count, y, y_stride,
               row_begin, row_end);
}

// ---- portable scalar path ----
// f32 / bf16: gt_dot_scalar itself (bit-identical to gt_matvec_scalar). q8 / q4: the same
// integer arithmetic as the SIMD paths, one block at a time.

static void scalar_float(int type, const uint8_t *w, size_t row_stride, size_t cols, const uint8_t *act,
                         size_t act_stride, size_t count, float *y, size_t y_stride, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
        for (size_t t = 0; t < count; t++) {
            y[t * y_stride + r] = gt_dot_scalar(type, w + r * row_stride, (const float *)(act + t * act_stride), cols);
        }
    }
}

static void scalar_f32(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    scalar_float(GT_F32, w, rs, cols, act, as, count, y, ys, r0, r1);
}

static void scalar_bf16(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                        float *y, size_t ys, size_t r0, size_t r1) {
    scalar_float(GT_BF16, w, rs, cols, act, as, count, y, ys, r0, r1);
}

static void scalar_q8(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                      float *y, size_t ys, size_t r0, size_t r1) {
    size_t nb = cols / GT_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        for (size_t t = 0; t < count; t++) {
            const uint8_t *a = act + t * as;
            const int8_t *aq = gt_act_q(a);
            const float *ad = gt_act_d(a, nb);
            const uint8_t *p = w + r * rs;
            float sum = 0.0f;
            for (size_t b = 0; b < nb; b++, p += GT_Q8_BLOCK_BYTES) {
                const int8_t *q = (const int8_t *)(p + 2);
                int32_t isum = 0;
                for (int i = 0; i < GT_BLOCK; i++) isum += (int32_t)q[i] * aq[b * GT_BLOCK + i];
                sum += gt_load_f16(p) * ad[b] * (float)isum;
            }
            y[t * ys + r] = sum;
        }
    }
}

static void scalar_q4(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                      float *y, size_t ys, size_t r0, size_t r1) {
    size_t nb = cols / GT_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        for (size_t t = 0; t < count; t++) {
            const uint8_t *a = act + t * as;
            const int8_t *aq = gt_act_q(a);
            const float *ad = gt_act_d(a, nb);
            const int32_t *ac = gt_act_c(a, nb);
            const uint8_t *p = w + r * rs;
            float sum = 0.0f;
            for (size_t b = 0; b < nb; b++, p += GT_Q4_BLOCK_BYTES) {
                const uint8_t *qs = p + 2;
                const int8_t *x = aq + b * GT_BLOCK;
                int32_t isum = 0;
                for (int j = 0; j < GT_BLOCK / 2; j++) {
                    isum += (int32_t)(qs[j] & 0x0f) * x[j] + (int32_t)(qs[j] >> 4) * x[j + GT_BLOCK / 2];
                }
                isum += 4 * ac[b];
                sum += gt_load_f16(p) * ad[b] * (float)isum;
            }
            y[t * ys + r] = sum;
        }
    }
}

// q5: the q4 nibbles plus bit 4 from qh; the -16 offset is twice q4's correction.
static void scalar_q5(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                      float *y, size_t ys, size_t r0, size_t r1) {
    size_t nb = cols / GT_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        for (size_t t = 0; t < count; t++) {
            const uint8_t *a = act + t * as;
            const int8_t *aq = gt_act_q(a);
            const float *ad = gt_act_d(a, nb);
            const int32_t *ac = gt_act_c(a, nb);
            const uint8_t *p = w + r * rs;
            float sum = 0.0f;
            for (size_t b = 0; b < nb; b++, p += GT_Q5_BLOCK_BYTES) {
                uint32_t qh = gt_load_u32(p + 2);
                const uint8_t *qs = p + 6;
                const int8_t *x = aq + b * GT_BLOCK;
                int32_t isum = 0;
                for (int j = 0; j < GT_BLOCK / 2; j++) {
                    int32_t lo = (qs[j] & 0x0f) | (int32_t)((qh >> j) & 1) << 4;
                    int32_t hi = (qs[j] >> 4) | (int32_t)((qh >> (j + 16)) & 1) << 4;
                    isum += lo * x[j] + hi * x[j + GT_BLOCK / 2];
                }
                isum += 8 * ac[b];
                sum += gt_load_f16(p) * ad[b] * (float)isum;
            }
            y[t * ys + r] = sum;
        }
    }
}

const gt_kernel_table gt_kernels_scalar = { "scalar", { scalar_f32, scalar_bf16, scalar_q8, scalar_q4, scalar_q5,
                                                     gt_q4k_scalar, gt_q6k_scalar } };
