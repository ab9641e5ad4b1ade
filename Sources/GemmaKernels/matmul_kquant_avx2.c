// x86-64 AVX2 (+ AVX-VNNI) kernels for K-quant weights, row-lane arithmetic
// (matmul_kquant_rowlanes.c): the avx512+vnni path's results, bit for bit, with 8 rows in the 8
// int32 lanes of a ymm instead of 16 in a zmm.
//
// A tile takes 8 rows and up to 64 tokens. Per super-block it first unpacks the rows'
// weights once into a small table on the stack, transposed so that vector k of a block holds
// dword k (4 values) of each row, lane i = row i (2 KiB: the Q4_K nibbles or the Q6_K six-bit
// values as bytes), and decodes the rows' scales into vectors in the same lane order. Then each
// block runs over all the tokens: 8 vectors of weights in registers, each token's input dword k
// broadcast against vector k. With AVX2, `vpmaddubsw` gives int16 sums of 2 products and `vpaddw`
// adds them: a Q4_K block's 32 products fit one int16 sum per lane (at most 16 x 2 x 15 x 128 =
// 30720 in magnitude, no saturation), so `vpmaddwd` makes the block sum; a Q6_K sub-block's 16
// products (values 0..63) are two int16 sums of 4 x 63 x 128 <= 32256 each. With AVX-VNNI
// `vpdpbusd` makes the same int32 sums. Per block, row and token there is then one conversion,
// one scale product and one fused multiply-add for 8 rows at once, the operations, operands and
// order of the row-lane scalar reference. Accumulators stay on the stack between blocks (one
// load and store per block and token: cheap next to its 8 products per lane).
// Q6_K's values stay unsigned (0..63); each sub-block sum starts from -32 x its 16 inputs' sum.
// That start, and Q4_K's minimum-term factor d x c of each block, depend on the tokens only: they
// are taken once per column slice for all the tokens (q6k_call_starts, q4k_call_mins), not per tile.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_kquant_x86.h"
#include "simd_x86.h"

// ROWS per tile; CHUNK tokens per pass (their accumulators, 2 KiB); SLICE super-blocks of
// columns per pass over a call's tiles, so that the tokens' inputs of a slice (2.5 KiB per
// token) stay in L2 while every tile reads them.
#ifndef KQ_SLICE
#define KQ_SLICE 8
#endif
enum { ROWS = 8, CHUNK = 64, SLICE = KQ_SLICE };

// W[k] lane i = dword k (k = 0..7) of the 32 bytes at rowp[i] + off.
AVX2_INLINE void transpose8x8(const uint8_t *const *rowp, size_t off, __m256i *W) {
    transpose8x4(rowp, off, W);
    transpose8x4(rowp, off + 16, W + 4);
}

// d x c of each block of every token (mn[t * nb + b]): Q4_K's minimum-term factor, the products
// q4k_min_inputs_x86 makes.
AVX2_INLINE void q4k_call_mins(const uint8_t *act, size_t as, size_t count, size_t nb, float *mn) {
    for (size_t t = 0; t < count; t++)
        for (size_t b = 0; b < nb; b += 8) q4k_min_inputs_x86(act + t * as, nb, b, mn + t * nb + b);
}

// -32 x the sum of each 16 inputs of every token (st[t * 2nb + 2b + i], sub-block i of block b):
// sums of x + 128 by `vpsadbw` over 8 bytes, two per sub-block, less 16 x 128.
AVX2_INLINE void q6k_call_starts(const uint8_t *act, size_t as, size_t count, size_t nb, int32_t *st) {
    const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (size_t t = 0; t < count; t++) {
        const int8_t *x = gt_act_q(act + t * as);
        int32_t *o = st + t * 2 * nb;
        for (size_t b = 0; b < nb; b++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(x + b * GT_BLOCK));
            const __m256i e = _mm256_sad_epu8(_mm256_xor_si256(v, bias), zero);  // 4 sums of 8, in 64-bit lanes
            const __m256i pairs = _mm256_add_epi64(e, _mm256_srli_si256(e, 8));  // lanes 0 and 2: the sub-blocks
            o[2 * b] = -32 * (_mm256_extract_epi32(pairs, 0) - 16 * 128);
            o[2 * b + 1] = -32 * (_mm256_extract_epi32(pairs, 4) - 16 * 128);
        }
    }
}

// ---- a block's integer sums for 8 rows (q[k] = the rows' dword k of values, x = a token's inputs) ----
// Q4_K: the 32 products of each row.
AVX2_INLINE __m256i q4k_block_avx2(const __m256i *q, const int32_t *x) {
#define PAIR(k) _mm256_add_epi16(_mm256_maddubs_epi16(q[k], _mm256_set1_epi32(x[k])),                     \
                                 _mm256_maddubs_epi16(q[k + 1], _mm256_set1_epi32(x[k + 1])))
    const __m256i s = _mm256_add_epi16(_mm256_add_epi16(PAIR(0), PAIR(2)), _mm256_add_epi16(PAIR(4), PAIR(6)));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}
// Q6_K: the 16 products of sub-block i (values q[4i..4i+3]) plus its start.
AVX2_INLINE __m256i q6k_half_avx2(const __m256i *q, const int32_t *x, int32_t start) {
    const __m256i one = _mm256_set1_epi16(1);
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(PAIR(0), one), _mm256_madd_epi16(PAIR(2), one)),
                            _mm256_set1_epi32(start));
#undef PAIR
}
VNNI_INLINE __m256i q4k_block_vnni(const __m256i *q, const int32_t *x) {
    const __m256i z = _mm256_setzero_si256();
#define DP(acc, k) VNNI_DPBUSD(acc, q[k], _mm256_set1_epi32(x[k]))
    return _mm256_add_epi32(DP(DP(DP(DP(z, 0), 2), 4), 6), DP(DP(DP(DP(z, 1), 3), 5), 7));
}
VNNI_INLINE __m256i q6k_half_vnni(const __m256i *q, const int32_t *x, int32_t start) {
    return DP(DP(DP(DP(_mm256_set1_epi32(start), 0), 1), 2), 3);
#undef DP
}

// Rows r..r+R-1 of a tile (R <= 8), the rest repeating the last.
AVX2_INLINE void tile_rows(const uint8_t *w, size_t rs, size_t r, int R, const uint8_t **rowp) {
    KQ_UNROLL8 for (int i = 0; i < ROWS; i++) rowp[i] = w + (r + (size_t)(i < R ? i : R - 1)) * rs;
}

// The next tile's bytes of this super-block (a prefetch past the matrix is harmless).
AVX2_INLINE void prefetch_next_tile(const uint8_t *const *rowp, size_t rs, size_t off, size_t block_bytes) {
    KQ_UNROLL8 for (int i = 0; i < ROWS; i++) {
        const char *p = (const char *)rowp[i] + ROWS * rs + off;
        for (size_t l = 0; l < block_bytes + 63; l += 64) _mm_prefetch(p + l, _MM_HINT_T0);
    }
}

// A tile's accumulators: zero before the first column slice, the stored partial sums after it
// (exact copies: the operations per row and token stay those of one pass).
AVX2_INLINE void load_rows(const float *y, size_t ys, int R, __m256 *acc, size_t T, int first) {
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(R), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t t = 0; t < T; t++)
        acc[t] = first ? _mm256_setzero_ps() : R == ROWS ? _mm256_loadu_ps(y + t * ys) : _mm256_maskload_ps(y + t * ys, keep);
}

AVX2_INLINE void store_rows(float *y, size_t ys, int R, const __m256 *acc, size_t T) {
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(R), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t t = 0; t < T; t++) {
        if (R == ROWS) _mm256_storeu_ps(y + t * ys, acc[t]);
        else _mm256_maskstore_ps(y + t * ys, keep, acc[t]);
    }
}

// Q4_K: rows r..r+R-1 x tokens 0..T-1 (T <= CHUNK) of act; y points at row 0 of token 0; pre = the
// tokens' minimum-term factors (q4k_call_mins), nb per token.
#define DEFINE_Q4K_TILE(SUFFIX, INLINE, BLOCK)                                                            \
INLINE void q4k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,    \
                              const void *pre, size_t T, float *y, size_t ys, size_t r, int R, int first) { \
    const size_t nb = cols / GT_BLOCK;                                                                    \
    const float *mn = (const float *)pre;                                                                 \
    const __m256i m4 = _mm256_set1_epi8(0x0f);                                                            \
    const uint8_t *rowp[ROWS];                                                                            \
    tile_rows(w, rs, r, R, rowp);                                                                         \
    __m256 acc[CHUNK];                                                                                    \
    load_rows(y + r, ys, R, acc, T, first);                                                               \
    for (size_t s = 0; s < nb / 8; s++) {                                                                 \
        const size_t off = s * GT_Q4K_BLOCK_BYTES;                                                        \
        prefetch_next_tile(rowp, rs, off, GT_Q4K_BLOCK_BYTES);                                            \
        __m256i Q[8][8]; /* [block][dword]: the rows' nibbles */                                          \
        __m256 dsc[8], mq[8];                                                                             \
        q4k_scales8(rowp, off, dsc, mq);                                                                  \
        KQ_UNROLL8 for (int g = 0; g < 4; g++) {                                                          \
            __m256i W[8];                                                                                 \
            transpose8x8(rowp, off + 16 + 32 * (size_t)g, W);                                             \
            KQ_UNROLL8 for (int k = 0; k < 8; k++) {                                                      \
                Q[2 * g][k] = _mm256_and_si256(W[k], m4);                                                 \
                Q[2 * g + 1][k] = _mm256_and_si256(_mm256_srli_epi16(W[k], 4), m4);                       \
            }                                                                                             \
        }                                                                                                 \
        KQ_NO_UNROLL for (int j = 0; j < 8; j++) {                                                        \
            const size_t b = 8 * s + (size_t)j;                                                           \
            __m256i q[8];                                                                                 \
            KQ_UNROLL8 for (int k = 0; k < 8; k++) q[k] = Q[j][k];                                        \
            const __m256 dv = dsc[j];                                                                     \
            const uint8_t *a = act;                                                                       \
            KQ_NO_UNROLL for (size_t t = 0; t < T; t++, a += as) {                                        \
                const __m256i L = BLOCK(q, (const int32_t *)(gt_act_q(a) + b * GT_BLOCK));                \
                const __m256 D = _mm256_mul_ps(dv, _mm256_broadcast_ss(gt_act_d(a, nb) + b));             \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L), D, acc[t]);                               \
            }                                                                                             \
        }                                                                                                 \
        KQ_NO_UNROLL for (size_t t = 0; t < T; t++) {                                                     \
            const float *am = mn + t * nb + 8 * s;                                                        \
            __m256 v = acc[t];                                                                            \
            KQ_UNROLL8 for (int j = 0; j < 8; j++) v = _mm256_fmadd_ps(mq[j], _mm256_broadcast_ss(am + j), v); \
            acc[t] = v;                                                                                   \
        }                                                                                                 \
    }                                                                                                     \
    store_rows(y + r, ys, R, acc, T);                                                                     \
}

// Q6_K: as Q4_K; pre = the tokens' starts (q6k_call_starts), 2nb per token.
#define DEFINE_Q6K_TILE(SUFFIX, INLINE, HALF)                                                             \
INLINE void q6k_tile_##SUFFIX(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,    \
                              const void *pre, size_t T, float *y, size_t ys, size_t r, int R,            \
                              int first) {                                                                \
    const size_t nb = cols / GT_BLOCK;                                                                    \
    const int32_t *st = (const int32_t *)pre;                                                             \
    const uint8_t *rowp[ROWS];                                                                            \
    tile_rows(w, rs, r, R, rowp);                                                                         \
    __m256 acc[CHUNK];                                                                                    \
    load_rows(y + r, ys, R, acc, T, first);                                                               \
    for (size_t s = 0; s < nb / 8; s++) {                                                                 \
        const size_t off = s * GT_Q6K_BLOCK_BYTES;                                                        \
        prefetch_next_tile(rowp, rs, off, GT_Q6K_BLOCK_BYTES);                                            \
        __m256i V[8][8]; /* [block][dword]: the rows' six-bit values */                                   \
        __m256 dsc[16];                                                                                   \
        q6k_scales8(rowp, off, dsc);                                                                      \
        for (int hf = 0; hf < 2; hf++) {                                                                  \
            __m256i L0[8], L1[8], QH[8];                                                                  \
            transpose8x8(rowp, off + 64 * (size_t)hf, L0);                                                \
            transpose8x8(rowp, off + 64 * (size_t)hf + 32, L1);                                           \
            transpose8x8(rowp, off + 128 + 32 * (size_t)hf, QH);                                          \
            KQ_UNROLL8 for (int c = 0; c < 4; c++)                                                        \
                KQ_UNROLL8 for (int k = 0; k < 8; k++) V[4 * hf + c][k] = q6k_values_x86(L0[k], L1[k], QH[k], c); \
        }                                                                                                 \
        KQ_NO_UNROLL for (int bi = 0; bi < 8; bi++) {                                                     \
            const size_t b = 8 * s + (size_t)bi;                                                          \
            __m256i q[8];                                                                                 \
            KQ_UNROLL8 for (int k = 0; k < 8; k++) q[k] = V[bi][k];                                       \
            const __m256 d0 = dsc[2 * bi], d1 = dsc[2 * bi + 1];                                          \
            const uint8_t *a = act;                                                                       \
            const int32_t *sb = st + 2 * b;                                                               \
            KQ_NO_UNROLL for (size_t t = 0; t < T; t++, a += as, sb += 2 * nb) {                          \
                const int32_t *x = (const int32_t *)(gt_act_q(a) + b * GT_BLOCK);                         \
                const __m256i S0 = HALF(q, x, sb[0]), S1 = HALF(q + 4, x + 4, sb[1]);                     \
                const __m256 ad = _mm256_broadcast_ss(gt_act_d(a, nb) + b);                               \
                __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S0), _mm256_mul_ps(d0, ad), acc[t]);        \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S1), _mm256_mul_ps(d1, ad), v);               \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
    store_rows(y + r, ys, R, acc, T);                                                                     \
}

DEFINE_Q4K_TILE(avx2, AVX2_INLINE, q4k_block_avx2)
DEFINE_Q4K_TILE(vnni, VNNI_INLINE, q4k_block_vnni)
DEFINE_Q6K_TILE(avx2, AVX2_INLINE, q6k_half_avx2)
DEFINE_Q6K_TILE(vnni, VNNI_INLINE, q6k_half_vnni)

// ---- single tokens: matmul_kquant_single_x86.h (rows read front to back, as a lone token's
// product from memory wants), with `vpmaddubsw` + `vpmaddwd` (no int16 sum saturates: at most 4
// products of 15 x 128 or 2 of 63 x 128) or with AVX-VNNI ----
#define KS_NAME(x) x##_avx2
#define KS_INLINE AVX2_INLINE
#define KS_DOT2(u0, s0, u1, s1)                                                                           \
    _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(u0, s0), _mm256_maddubs_epi16(u1, s1)), _mm256_set1_epi16(1))
#define KS_DOT1(acc, u, s) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
#define KS_Q6K_VALUES(ql0, ql1, qh, c) q6k_values_x86(ql0, ql1, qh, c)
#include "matmul_kquant_single_x86.h"
#undef KS_NAME
#undef KS_INLINE
#undef KS_DOT2
#undef KS_DOT1
#define KS_NAME(x) x##_vnni
#define KS_INLINE VNNI_INLINE
#define KS_DOT2(u0, s0, u1, s1) VNNI_DPBUSD(VNNI_DPBUSD(_mm256_setzero_si256(), u0, s0), u1, s1)
#define KS_DOT1(acc, u, s) VNNI_DPBUSD(acc, u, s)
#include "matmul_kquant_single_x86.h"

// Copies T tokens' inputs (from act, `as` bytes apart) of super-blocks s0..s0+n-1 into `out`, one
// prepared input row of n x 256 columns per token, `os` bytes apart: int8 values, block scales,
// block sums.
AVX2_INLINE void copy_slice(const uint8_t *act, size_t as, size_t nb, size_t T, size_t s0, size_t n,
                            uint8_t *out, size_t os) {
    const size_t nbs = 8 * n;
    for (size_t t = 0; t < T; t++, act += as, out += os) {
        memcpy(out, gt_act_q(act) + s0 * GT_KBLOCK, n * GT_KBLOCK);
        memcpy((void *)gt_act_d(out, nbs), gt_act_d(act, nb) + 8 * s0, nbs * sizeof(float));
        memcpy((void *)gt_act_c(out, nbs), gt_act_c(act, nb) + 8 * s0, nbs * sizeof(int32_t));
    }
}

// Tokens in chunks of CHUNK; columns in slices of SLICE super-blocks, each slice's inputs first
// copied together (copy_slice): read in place, 64 tokens' rows of the 2B's down product lie 18 KiB
// apart and the tile ran 20% slower than on 2048 columns. Every tile takes a slice for all the
// chunk's tokens, its accumulators carried over in y. The tokens' per-block terms (Q4_K's minimum
// factors, Q6_K's starts: 4 or 8 bytes per token and block) are taken per slice. The buffers are
// per thread (gt_kquant_scratch); if they cannot be allocated, the row-lane scalar reference runs
// instead (the same results). Each driver starts on a 64-byte boundary (as matmul_kquant_avx512.c's).
#define DEFINE_DRIVER(NAME, TYPE, TILE, SINGLE, FN)                                                       \
__attribute__((aligned(64))) FN void NAME(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act,   \
                                          size_t as, size_t count, float *y, size_t ys, size_t r0, size_t r1) { \
    if (count == 1) {                                                                                     \
        for (size_t r = r0; r < r1; r += ROWS) SINGLE(w, rs, cols, act, y, r, r1 - r < ROWS ? (int)(r1 - r) : ROWS); \
        return;                                                                                           \
    }                                                                                                     \
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;                                            \
    const size_t block_bytes = TYPE == GT_Q4K ? GT_Q4K_BLOCK_BYTES : GT_Q6K_BLOCK_BYTES;                  \
    const int sliced = nsb > SLICE;                                                                       \
    const size_t slice_nb = sliced ? 8 * SLICE : nb, sas = gt_act_stride(TYPE, GT_BLOCK * slice_nb);      \
    const size_t copy_bytes = sliced ? CHUNK * sas : 0;                                                   \
    const size_t pre_bytes = CHUNK * slice_nb * (TYPE == GT_Q6K ? 2 * sizeof(int32_t) : sizeof(float));   \
    uint8_t *buf = gt_kquant_scratch(copy_bytes + pre_bytes);                                             \
    if (!buf) {                                                                                           \
        (TYPE == GT_Q4K ? gt_q4k_rowlanes_scalar : gt_q6k_rowlanes_scalar)(w, rs, cols, act, as, count, y, ys, r0, r1); \
        return;                                                                                           \
    }                                                                                                     \
    void *pre = buf + copy_bytes;                                                                         \
    const size_t step = sliced ? SLICE : nsb ? nsb : 1;                                                   \
    for (size_t t0 = 0; t0 < count; t0 += CHUNK) {                                                        \
        const size_t T = count - t0 < CHUNK ? count - t0 : CHUNK;                                         \
        for (size_t s0 = 0; s0 == 0 || s0 < nsb; s0 += step) {                                            \
            const size_t n = nsb - s0 < step ? nsb - s0 : step;                                           \
            const uint8_t *a = act + t0 * as;                                                             \
            size_t a_stride = as;                                                                         \
            if (sliced) {                                                                                 \
                copy_slice(a, as, nb, T, s0, n, buf, sas);                                                \
                a = buf;                                                                                  \
                a_stride = sas;                                                                           \
            }                                                                                             \
            if (TYPE == GT_Q6K) q6k_call_starts(a, a_stride, T, 8 * n, (int32_t *)pre);                   \
            else q4k_call_mins(a, a_stride, T, 8 * n, (float *)pre);                                      \
            for (size_t r = r0; r < r1; r += ROWS)                                                        \
                TILE(w + s0 * block_bytes, rs, GT_KBLOCK * n, a, a_stride, pre, T, y + t0 * ys, ys, r,    \
                     r1 - r < ROWS ? (int)(r1 - r) : ROWS, s0 == 0);                                      \
        }                                                                                                 \
    }                                                                                                     \
}

DEFINE_DRIVER(gt_q4k_avx2, GT_Q4K, q4k_tile_avx2, q4k_single_avx2, AVX2_FN)
DEFINE_DRIVER(gt_q6k_avx2, GT_Q6K, q6k_tile_avx2, q6k_single_avx2, AVX2_FN)
DEFINE_DRIVER(gt_q4k_avxvnni, GT_Q4K, q4k_tile_vnni, q4k_single_vnni, VNNI_FN)
DEFINE_DRIVER(gt_q6k_avxvnni, GT_Q6K, q6k_tile_vnni, q6k_single_vnni, VNNI_FN)

#endif
