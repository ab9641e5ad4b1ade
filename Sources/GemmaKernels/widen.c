// Converter helpers: widening source dtypes to f32, finiteness checks, error sums.
#include "gemma_kernels.h"
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

size_t gt_first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, 4);
        if ((b & 0x7f800000u) == 0x7f800000u) return i;
    }
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
