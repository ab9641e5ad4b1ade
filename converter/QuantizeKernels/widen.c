// Converter helpers: widening source dtypes to f32, finiteness checks, error sums.
#include "quantize_internal.h"
#include <math.h>
#include <string.h>

void gt_widen_to_f32(int src_type, const void *src, size_t n, float *dst) {
    const uint8_t *p = (const uint8_t *)src;
    switch (src_type) {
    case GT_SRC_F32:
        memcpy(dst, src, n * 4);
        break;
    case GT_SRC_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t x = (uint32_t)h << 16;
            memcpy(dst + i, &x, 4);
        }
        break;
    case GT_SRC_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = gt_f16_to_f32(h);
        }
        break;
    }
}

static inline int nonfinite(const float *p) {
    uint32_t b;
    memcpy(&b, p, 4);
    return (b & 0x7f800000u) == 0x7f800000u;
}

size_t gt_first_nonfinite(const float *x, size_t n) {
    // Whole groups of 64 without an early exit (so the check vectorizes), then the exact index.
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        int any = 0;
        for (int j = 0; j < 64; j++) any |= nonfinite(x + i + j);
        if (any) break;
    }
    for (; i < n; i++) {
        if (nonfinite(x + i)) return i;
    }
    return n;
}

size_t gt_convert_row(int src_type, const void *src, size_t n, int type, void *out, float *scratch) {
    size_t bad;
#if defined(__x86_64__) || defined(_M_X64)
    int isa = gt_kernel_isa_id();
    if (src_type == GT_SRC_BF16 && (isa == GT_ISA_AVX2 || isa == GT_ISA_AVX2_VNNI || isa == GT_ISA_AVX512_VNNI)) {
        bad = gt_widen_bf16_avx2(src, n, scratch);
    } else
#endif
    {
        gt_widen_to_f32(src_type, src, n, scratch);
        bad = gt_first_nonfinite(scratch, n);
    }
    if (bad < n) return bad;
    gt_quantize_row(type, scratch, n, out);
    return n;
}

void gt_error_sums(const float *x, const float *y, size_t n, double *err, double *ref) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)y[i];
        e += d * d;
        r += (double)x[i] * (double)x[i];
    }
    *err += e;
    *ref += r;
}
