// Internal interface of the tiled attention (attention_tiled.c): the per-ISA steps a key chunk
// goes through, and what every path shares. See gemma_ops.h for the design.
#ifndef GT_ATTENTION_INTERNAL_H
#define GT_ATTENTION_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "gemma_ops.h"

// Fully unrolls a tile's small row / key / register loops so its sums live in registers (as
// matmul_tiles.h does; without it gcc keeps the arrays of vectors on the stack).
#ifndef GT_UNROLL
#define GT_UNROLL _Pragma("GCC unroll 4")
#endif

// Keys per chunk. Chunks are aligned to absolute positions (chunk c = positions 64c..64c+63), so
// a query meets the same chunks, with each key in the same lane, whichever other queries share
// its block and however the positions are split between the cache and the batch: that is what
// makes batched, one-by-one and threaded results bit-identical. A multiple of every vector width.
#define GT_ATT_CHUNK 64
// Query rows per block: a chunk's keys and values are read once for all of them (the query heads
// of a GQA group, for several tokens). The scratch space holds a block's scores and outputs.
#define GT_ATT_ROWS GT_ATTENTION_BLOCK_ROWS

typedef struct {
    // s[r * lds + j] = dot(q[r], k[j]) for r < nr, j < nk (each dot summed in the same order
    // whatever nr, nk and the tile it falls in).
    void (*scores)(const float *const *q, size_t nr, const float *const *k, size_t nk, size_t d, float *s, size_t lds);
    // One row's chunk, s[0..GT_ATT_CHUNK): x = s * scale, then softcap * tanh(x / softcap) when
    // softcap > 0, written back for b <= j < e and -inf elsewhere; returns the max over [b, e).
    float (*transform_max)(float *s, size_t b, size_t e, float scale, float softcap);
    // p = exp(s - m) over the whole chunk (0 where s = -inf), written back; returns sum p, summed
    // lane-wise over the chunk and then across lanes in a fixed order.
    float (*exp_sum)(float *s, float m);
    // o[r * ldo + i] += sum_j p[r * ldp + j] * v[j][i] for r < nr, j < nk ascending, i < d.
    void (*accumulate)(const float *p, size_t ldp, size_t nr, const float *const *v, size_t nk, size_t d,
                       float *o, size_t ldo);
    // The same two steps over an f16 cache (IEEE halves, widened exactly to f32 as they are
    // loaded, so each sum runs as it would over the widened floats).
    void (*scores_f16)(const float *const *q, size_t nr, const uint16_t *const *k, size_t nk, size_t d, float *s,
                       size_t lds);
    void (*accumulate_f16)(const float *p, size_t ldp, size_t nr, const uint16_t *const *v, size_t nk, size_t d,
                           float *o, size_t ldo);
} gt_attention_isa;

extern const gt_attention_isa gt_attention_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const gt_attention_isa gt_attention_avx2;
extern const gt_attention_isa gt_attention_avx512;
#endif
#if defined(__aarch64__)
extern const gt_attention_isa gt_attention_neon;
#endif

// An IEEE half widened to f32 (exact), in software: the scalar path's loads and the SIMD paths'
// tails.
static inline float gt_att_h2f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in f32
        float f = (float)mant * (1.0f / 16777216.0f);
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// exp's constants (Cephes' expf: exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2,
// exp(r) by a degree-7 polynomial), shared by the scalar and vector versions.
#define GT_EXP_LOG2E 1.44269504088896341f
#define GT_EXP_SHIFT 12582912.0f  // 1.5 * 2^23: adding and subtracting it rounds to an integer
#define GT_EXP_LN2_HI 0.693359375f
#define GT_EXP_LN2_LO -2.12194440e-4f
#define GT_EXP_P0 1.9875691500e-4f
#define GT_EXP_P1 1.3981999507e-3f
#define GT_EXP_P2 8.3334519073e-3f
#define GT_EXP_P3 4.1665795894e-2f
#define GT_EXP_P4 1.6666665459e-1f
#define GT_EXP_P5 5.0000001201e-1f
// Below this exp is not a normal float: 0 (so that masked scores, -inf, weigh exactly nothing).
#define GT_EXP_MIN -87.0f

// Scalar exp with those steps (within 2 ulp for x in [-87, 88]; 0 below -87).
static inline float gt_att_expf(float x) {
    if (!(x >= GT_EXP_MIN)) return 0.0f;
    x = fminf(x, 88.0f);
    const float n = (x * GT_EXP_LOG2E + GT_EXP_SHIFT) - GT_EXP_SHIFT;
    float r = x - n * GT_EXP_LN2_HI;
    r = r - n * GT_EXP_LN2_LO;
    float p = GT_EXP_P0;
    p = p * r + GT_EXP_P1;
    p = p * r + GT_EXP_P2;
    p = p * r + GT_EXP_P3;
    p = p * r + GT_EXP_P4;
    p = p * r + GT_EXP_P5;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// The keys [jb, je) of R rows of weights (ldp apart, nk keys) outside which every weight is 0:
// the accumulation skips the rest, which would add exactly nothing.
static inline void gt_att_live_keys(const float *p, size_t ldp, size_t nk, int R, size_t *jb, size_t *je) {
    size_t b = nk, e = 0;
    for (int i = 0; i < R; i++) {
        const float *row = p + i * ldp;
        size_t x = 0, y = nk;
        while (x < y && row[x] == 0.0f) x++;
        while (y > x && row[y - 1] == 0.0f) y--;
        if (x < y) {
            if (x < b) b = x;
            if (y > e) e = y;
        }
    }
    *jb = b;
    *je = b < e ? e : b;
}

#endif
