// K-quant matrix products, second arithmetic: "row lanes", the contract of the x86 paths
// (matmul_kquant_avx2.c, matmul_kquant_avx512.c), and the scalar reference that spells it out.
//
// matmul_kquant.c's arithmetic spreads each block of 32 over 4 (Q4_K) or 8 (Q6_K) f32 lanes per
// row, so a SIMD tile pays a conversion and a fused multiply-add per lane and block. Here a
// block's products are summed in ONE exact int32 per row (and per sub-block of 16 for Q6_K), so
// a 512-bit tile holds 16 rows in its 16 lanes (a 256-bit one 8) and converts once per row, block and token: the
// shape of llama.cpp's tiled products, with today's inputs (int8, one f32 scale per 32) and so
// today's accuracy. Per row and token, one f32 accumulator, zero at the start:
//
// Q4_K, super-block s in order:
//   for each block b = 8s + j, j = 0..7 in order:
//     L   = sum of q[i] * x[i], i = 0..31               (exact int32; q the nibbles 0..15)
//     acc = fma((float)L, (d * sc_j) * ad[b], acc)      d * sc_j exact, one rounding
//   then the mins, j = 0..7 in order:
//     acc = fma((dmin * m_j) * 0.5, ad[b] * (float)c[b], acc)   (as in matmul_kquant.c)
//
// Q6_K, block b = 8s + i in order (sub-blocks 2i and 2i+1 of 16, q the 6-bit values 0..63):
//     S0  = sum of (q[k] - 32) * x[k], k = 0..15;  S1 the same over k = 16..31   (exact int32)
//     acc = fma((float)S0, (d * sc[2i]) * ad[b], acc)
//     acc = fma((float)S1, (d * sc[2i+1]) * ad[b], acc)
//
// y = acc. Integer sums are exact in any order, and the f32 operations are the same and in the
// same order on the scalar and the x86 SIMD paths, so they agree bit for bit. The results differ
// from matmul_kquant.c's by rounding only (the same exact block sums, added in another order):
// kernels-test bounds both against a double-precision reference.
#include "kquant_internal.h"
#include <math.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

static float q4k_row(const uint8_t *p, size_t nsb, const uint8_t *a, size_t nb) {
    const int8_t *aq = gt_act_q(a);
    const float *ad = gt_act_d(a, nb);
    const int32_t *ac = gt_act_c(a, nb);
    float acc = 0.0f;
    for (size_t s = 0; s < nsb; s++, p += GT_Q4K_BLOCK_BYTES) {
        const float d = gt_load_f16(p), dmin = gt_load_f16(p + 2);
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * s + (size_t)j;
            const uint8_t *q = p + 16 + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            const int8_t *x = aq + b * GT_BLOCK;
            int sc, m;
            gt_q4k_scale_min(j, p + 4, &sc, &m);
            int32_t L = 0;
            for (int i = 0; i < 32; i++) L += ((q[i] >> shift) & 15) * x[i];
            acc = fmaf((float)L, d * (float)sc * ad[b], acc);
        }
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * s + (size_t)j;
            int sc, m;
            gt_q4k_scale_min(j, p + 4, &sc, &m);
            acc = fmaf(dmin * (float)m * 0.5f, ad[b] * (float)ac[b], acc);
        }
    }
    return acc;
}

static float q6k_row(const uint8_t *p, size_t nsb, const uint8_t *a, size_t nb) {
    const int8_t *aq = gt_act_q(a);
    const float *ad = gt_act_d(a, nb);
    float acc = 0.0f;
    for (size_t s = 0; s < nsb; s++, p += GT_Q6K_BLOCK_BYTES) {
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = gt_load_f16(p + 208);
        for (int bi = 0; bi < 8; bi++) {
            const size_t b = 8 * s + (size_t)bi;
            const int h = bi / 4, c = bi % 4;  // half h, quarter c (as in matmul_kquant.c)
            const uint8_t *ql = p + 64 * h + 32 * (c & 1), *qh = p + 128 + 32 * h;
            const int8_t *x = aq + b * GT_BLOCK;
            int32_t S[2] = { 0, 0 };
            for (int i = 0; i < 32; i++) {
                int q = (c >= 2 ? ql[i] >> 4 : ql[i] & 15) | ((qh[i] >> (2 * c)) & 3) << 4;
                S[i / 16] += (q - 32) * x[i];
            }
            acc = fmaf((float)S[0], d * (float)sc[2 * bi] * ad[b], acc);
            acc = fmaf((float)S[1], d * (float)sc[2 * bi + 1] * ad[b], acc);
        }
    }
    return acc;
}

void gt_q4k_rowlanes_scalar(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                            float *y, size_t ys, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < count; t++)
            y[t * ys + r] = q4k_row(w + r * rs, cols / GT_KBLOCK, act + t * as, cols / GT_BLOCK);
}

void gt_q6k_rowlanes_scalar(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                            float *y, size_t ys, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < count; t++)
            y[t * ys + r] = q6k_row(w + r * rs, cols / GT_KBLOCK, act + t * as, cols / GT_BLOCK);
}
