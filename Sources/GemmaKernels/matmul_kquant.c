// K-quant matrix products (GT_Q4K, GT_Q6K weights x int8 prepared inputs): the arithmetic every
// ISA path follows, and the portable scalar path that spells it out.
//
// Super-blocks of 256 weights meet 8 prepared input blocks of 32 (int8 q, f32 scale ad[b],
// int32 c[b] = -2 x sum(q), see matmul_internal.h). Per row and token, every path computes
//
// Q4_K (sub-block j of 32 = input block b = 8s + j; q the unsigned nibbles 0..15):
//   4 f32 lanes acc[k], k = 0..3, zero at the start. For each super-block s in order:
//     for each of its blocks b = 8s + j in order (j = 0..7):
//       L[k] = sum of q[i] * x[i] over i in {4k..4k+3} and {16+4k..16+4k+3}    (exact int32)
//       D    = (d * sc_j) * ad[b]         d * sc_j is exact (11-bit x 6-bit), one rounding
//       acc[k] = fma((float)L[k], D, acc[k])
//     then the mins, sub-blocks k and k+4 into lane k:
//       M[j] = (dmin * m_j) * 0.5         exact
//       A[j] = ad[8s+j] * (float)c[8s+j]  one rounding
//       acc[k] = fma(M[k], A[k], acc[k]);  acc[k] = fma(M[k+4], A[k+4], acc[k])
//   y = (acc[0] + acc[2]) + (acc[1] + acc[3])
//   The min term of sub-block j: -dmin * m_j * ad[b] * sum(x) = dmin * m_j * ad[b] * c[b] / 2
//   (c = -2 sum). Adding the mins once per super-block rather than per block saves SIMD work.
//
// Q6_K (input block b = 8s + i covers sub-blocks 2i and 2i+1 of 16; q the 6-bit values 0..63):
//   4 f32 lanes acc[k], k = 2u + v: lane v (0, 1) of sub-block u (0, 1) of each block.
//   For each block b in order:
//     L[k] = sum of (q[e] - 32) * x[e] over e in {16u+4v..16u+4v+3} and {16u+8+4v..16u+8+4v+3}
//                                                                              (exact int32)
//     D0   = (d * sc[2i]) * ad[b], D1 = (d * sc[2i+1]) * ad[b]   (d * sc exact: 11-bit x 8-bit)
//     acc[k] = fma((float)L[k], k < 2 ? D0 : D1, acc[k])
//   y = (acc[0] + acc[2]) + (acc[1] + acc[3])
//   Each lane sums 8 products, the most a lane can before a scale applies on x86 (two int16 sums
//   of 4 added, then widened) and the grouping that SDOT on bytes regrouped by 8 gives directly,
//   so there is one conversion and one FMA per 8 products (session 16: 1 per 4 before).
//
// The lanes are those the SIMD instructions produce naturally: x86 maddubs + madd and vpdpbusd,
// and ARM sdot, all sum 4 consecutive byte products into an int32 lane, two of which meet in
// one lane (q4-style row halves for Q4_K; for Q6_K bytes regrouped by 8, see
// matmul_kquant_neon.c), and the NEON path without sdot builds the same sums from widening
// multiplies and pairwise adds. Integer lanes are exact, and every path performs the same
// f32 operations in the same order with fused multiply-adds, so these paths (scalar, neon,
// neon+dotprod) give bit-identical results. The x86 paths (avx2, avx2+vnni, avx512+vnni) follow
// a second arithmetic, one lane per row and block (matmul_kquant_rowlanes.c), which their 8- and
// 16-row tiles need; it differs from this one by rounding only.
#include "kquant_internal.h"
#include <math.h>

// No product here feeds an addition (sums of products are explicit fmaf calls), so contraction
// cannot change results; clang is told so anyway (gcc ignores the STDC pragma).
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

static float q4k_row(const uint8_t *p, size_t nsb, const uint8_t *a, size_t nb) {
    const int8_t *aq = gt_act_q(a);
    const float *ad = gt_act_d(a, nb);
    const int32_t *ac = gt_act_c(a, nb);
    float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (size_t s = 0; s < nsb; s++, p += GT_Q4K_BLOCK_BYTES) {
        const float d = gt_load_f16(p), dmin = gt_load_f16(p + 2);
        float M[8], A[8];
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * s + (size_t)j;
            const uint8_t *q = p + 16 + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            const int8_t *x = aq + b * GT_BLOCK;
            int sc, m;
            gt_q4k_scale_min(j, p + 4, &sc, &m);
            const float D = d * (float)sc * ad[b];
            M[j] = dmin * (float)m * 0.5f;
            A[j] = ad[b] * (float)ac[b];
            for (int k = 0; k < 4; k++) {
                int32_t L = 0;
                for (int i = 4 * k; i < 4 * k + 4; i++)
                    L += ((q[i] >> shift) & 15) * x[i] + ((q[16 + i] >> shift) & 15) * x[16 + i];
                acc[k] = fmaf((float)L, D, acc[k]);
            }
        }
        for (int k = 0; k < 4; k++) {
            acc[k] = fmaf(M[k], A[k], acc[k]);
            acc[k] = fmaf(M[k + 4], A[k + 4], acc[k]);
        }
    }
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

static float q6k_row(const uint8_t *p, size_t nsb, const uint8_t *a, size_t nb) {
    const int8_t *aq = gt_act_q(a);
    const float *ad = gt_act_d(a, nb);
    float acc[4] = { 0 };
    for (size_t s = 0; s < nsb; s++, p += GT_Q6K_BLOCK_BYTES) {
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = gt_load_f16(p + 208);
        for (int bi = 0; bi < 8; bi++) {
            const size_t b = 8 * s + (size_t)bi;
            // Block bi = 4h + c of the super-block: half h, quarter c (gguf_dequant.c's q1..q4).
            const int h = bi / 4, c = bi % 4;
            const uint8_t *ql = p + 64 * h + 32 * (c & 1), *qh = p + 128 + 32 * h;
            const int8_t *x = aq + b * GT_BLOCK;
            const float D0 = d * (float)sc[2 * bi] * ad[b], D1 = d * (float)sc[2 * bi + 1] * ad[b];
            for (int k = 0; k < 4; k++) {
                // Lane k: sub-block k / 2, elements 4v..4v+3 and 8+4v..8+4v+3 of it (v = k & 1).
                const int base = 16 * (k >> 1) + 4 * (k & 1);
                int32_t L = 0;
                for (int i = base; i < base + 4; i++)
                    for (int e = i; e <= i + 8; e += 8) {
                        int q = (c >= 2 ? ql[e] >> 4 : ql[e] & 15) | ((qh[e] >> (2 * c)) & 3) << 4;
                        L += (q - 32) * x[e];
                    }
                acc[k] = fmaf((float)L, k < 2 ? D0 : D1, acc[k]);
            }
        }
    }
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

void gt_q4k_scalar(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                   float *y, size_t ys, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < count; t++)
            y[t * ys + r] = q4k_row(w + r * rs, cols / GT_KBLOCK, act + t * as, cols / GT_BLOCK);
}

void gt_q6k_scalar(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                   float *y, size_t ys, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < count; t++)
            y[t * ys + r] = q6k_row(w + r * rs, cols / GT_KBLOCK, act + t * as, cols / GT_BLOCK);
}
