// AArch64 only: the function attributes of the NEON and NEON+SDOT kernels (the dot-product path
// is compiled per function, so the file itself stays at the baseline ISA) and the f16 scale load
// they share. Included by matmul_neon.c and matmul_kquant_neon.c.
#ifndef GEMMA_MATMUL_NEON_H
#define GEMMA_MATMUL_NEON_H

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define NEON_FN
#define NEON_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define DOT_FN __attribute__((target("dotprod")))
#define DOT_INLINE static inline __attribute__((always_inline, target("dotprod")))
#else
#define DOT_FN __attribute__((target("arch=armv8.2-a+dotprod")))
#define DOT_INLINE static inline __attribute__((always_inline, target("arch=armv8.2-a+dotprod")))
#endif

NEON_INLINE float load_scale(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}

#endif
