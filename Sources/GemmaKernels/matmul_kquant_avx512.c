// x86-64 AVX-512 + VNNI kernels for K-quant weights, row-lane arithmetic
// (matmul_kquant_rowlanes.c): 16 rows in the 16 int32 lanes of a zmm, one lane per row and block.
//
// A tile reads 16 rows' 32-byte groups of a super-block and transposes them in registers to 8
// dword vectors (lane r = row r), so that `vpdpbusd` with one input dword broadcast (embedded
// {1to16}) adds 4 products to every row's block sum; 8 of them cover a block of 32. Per block,
// row and token there is then one conversion, one scale product and one fused multiply-add, for
// 16 rows at once, and each of the tile's tokens keeps one zmm accumulator. Batches run it (16, 8, 4,
// 2 or 1 tokens per tile; full groups of 16 read inputs rearranged once per call, see "groups"
// below); single tokens run 8-row tiles of 256-bit registers with the same arithmetic, so a
// token alone equals the same token in a batch.
// Build with clang (the Swift toolchain's): gcc 12 neither unrolls the inner loops nor folds the
// broadcasts into `vpdpbusd`, and runs these tiles at about half the speed.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_kquant_x86.h"
#include "simd_x86.h"

enum { TILE_ROWS = 16, MAX_TOKENS = 16 };

// W[k] lane r = dword k (k = 0..7) of the 32 bytes at rowp[r] + off, r = 0..15.
AVX512_INLINE void transpose16x8(const uint8_t *const *rowp, size_t off, __m512i *W) {
    __m512i z[8], t0[8], t1[8];
    KQ_UNROLL8 for (int r = 0; r < 8; r++)
        z[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(rowp[r] + off))),
                                  _mm256_loadu_si256((const __m256i *)(rowp[r + 8] + off)), 1);
    KQ_UNROLL8 for (int i = 0; i < 4; i++) {
        t0[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
        t0[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
    }
    KQ_UNROLL8 for (int i = 0; i < 2; i++)
        KQ_UNROLL8 for (int h = 0; h < 2; h++) {
            t1[4 * i + h] = _mm512_unpacklo_epi64(t0[4 * i + h], t0[4 * i + 2 + h]);
            t1[4 * i + 2 + h] = _mm512_unpackhi_epi64(t0[4 * i + h], t0[4 * i + 2 + h]);
        }
    // t1[0..3]: rows 0-3 (+8), dwords (0,4) (2,6) (1,5) (3,7) per 128-bit quarter; t1[4..7]: rows 4-7.
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    static const int order[4] = { 0, 2, 1, 3 };
    KQ_UNROLL8 for (int k = 0; k < 4; k++) {
        W[k] = _mm512_permutex2var_epi64(t1[order[k]], lo, t1[4 + order[k]]);
        W[k + 4] = _mm512_permutex2var_epi64(t1[order[k]], hi, t1[4 + order[k]]);
    }
}

// H[k] lane r = dword k (k = 0..3) of the 16 bytes at rowp[r] + off.
AVX512_INLINE void transpose16x4(const uint8_t *const *rowp, size_t off, __m512i *H) {
    __m512i z[4];
    KQ_UNROLL8 for (int q = 0; q < 4; q++) {  // quarter c of z[q]: row q + 4c
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rowp[q] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rowp[q + 4] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rowp[q + 8] + off)), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rowp[q + 12] + off)), 3);
    }
    const __m512i lo01 = _mm512_unpacklo_epi32(z[0], z[1]), hi01 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i lo23 = _mm512_unpacklo_epi32(z[2], z[3]), hi23 = _mm512_unpackhi_epi32(z[2], z[3]);
    H[0] = _mm512_unpacklo_epi64(lo01, lo23);
    H[1] = _mm512_unpackhi_epi64(lo01, lo23);
    H[2] = _mm512_unpacklo_epi64(hi01, hi23);
    H[3] = _mm512_unpackhi_epi64(hi01, hi23);
}

// Q4_K super-block scales of 16 rows: dsc[j] = d * sc_j, mq[j] = dmin * m_j / 2 (exact), lane r
// = row r. Bytes 0..15 of a super-block: d, dmin (f16), then the 12 packed bytes s0..s11 whose
// dwords are H[1] = s0..3, H[2] = s4..7, H[3] = s8..11 (see q4k_scales8).
AVX512_INLINE void q4k_scales16(const uint8_t *const *rowp, size_t off, float (*dsc)[16], float (*mq)[16]) {
    __m512i H[4];
    transpose16x4(rowp, off, H);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(H[0]));
    const __m512 dmin = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(H[0], 16))),
                                      _mm512_set1_ps(0.5f));
    const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15), m3 = _mm512_set1_epi32(3);
    KQ_UNROLL8 for (int j = 0; j < 4; j++) {
        const __m512i sc = _mm512_and_si512(_mm512_srli_epi32(H[1], 8 * j), m63);
        const __m512i m = _mm512_and_si512(_mm512_srli_epi32(H[2], 8 * j), m63);
        const __m512i sc4 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(H[3], 8 * j), m15),
                                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(H[1], 8 * j + 6), m3), 4));
        const __m512i m4 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(H[3], 8 * j + 4), m15),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(H[2], 8 * j + 6), m3), 4));
        _mm512_store_ps(dsc[j], _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
        _mm512_store_ps(mq[j], _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(m)));
        _mm512_store_ps(dsc[j + 4], _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc4)));
        _mm512_store_ps(mq[j + 4], _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(m4)));
    }
}

// Q6_K super-block scales of 16 rows: dsc[k] = d * sc_k (exact), lane r = row r; the 16 int8
// scales are bytes 192..207 of a super-block, d (f16) bytes 208..209.
AVX512_INLINE void q6k_scales16(const uint8_t *const *rowp, size_t off, float (*dsc)[16]) {
    __m512i H[4];
    transpose16x4(rowp, off + 192, H);
    uint16_t dh[16];
    KQ_UNROLL16 for (int i = 0; i < TILE_ROWS; i++) memcpy(&dh[i], rowp[i] + off + 208, 2);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
    KQ_UNROLL16 for (int k = 0; k < 16; k++) {
        const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(H[k / 4], 24 - 8 * (k % 4)), 24);
        _mm512_store_ps(dsc[k], _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
    }
}

// Row pointers of a tile: rows r..r+R-1, the rest repeating the last (computed, never stored).
AVX512_INLINE void tile_rows(const uint8_t *w, size_t rs, size_t r, int R, const uint8_t **rowp) {
    KQ_UNROLL16 for (int i = 0; i < TILE_ROWS; i++) rowp[i] = w + (r + (size_t)(i < R ? i : R - 1)) * rs;
}

// Each row's bytes PREFETCH_STEPS super-blocks ahead, into L2 (past the end of the row: the
// same bytes of the next tile's row). The hardware prefetchers do not follow 16 rows read side
// by side in steps of 144 or 210 bytes; fetched one tile ahead in order, or into L1, the tiles
// measured slower (docs/BENCHMARKS.md, session 14).
enum { PREFETCH_STEPS = 4 };
AVX512_INLINE void prefetch_rows(const uint8_t *const *rowp, size_t rs, size_t off, size_t block_bytes) {
    const size_t ahead = off + PREFETCH_STEPS * block_bytes;
    const size_t skip = ahead >= rs ? (TILE_ROWS - 1) * rs : 0;
    KQ_UNROLL16 for (int i = 0; i < TILE_ROWS; i++) {
        const char *p = (const char *)rowp[i] + ahead + skip;
        for (size_t l = 0; l < block_bytes + 63; l += 64) __builtin_prefetch(p + l, 0, 2);
    }
}

AVX512_INLINE void store_rows(float *y, size_t ys, size_t r, int R, const __m512 *acc, const int T) {
    const __mmask16 keep = (__mmask16)((1u << R) - 1);
    KQ_UNROLL16 for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys + r, keep, acc[t]);
}

// Q4_K: rows r..r+R-1 (R <= 16) x T tokens.
AVX512_INLINE void q4k_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, int R, const int T) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m512i m4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
    const uint8_t *rowp[TILE_ROWS];
    tile_rows(w, rs, r, R, rowp);
    __m512 acc[MAX_TOKENS];
    KQ_UNROLL16 for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q4K_BLOCK_BYTES;
        float dsc[8][16] __attribute__((aligned(64))), mq[8][16] __attribute__((aligned(64)));
        float am[MAX_TOKENS][8];
        prefetch_rows(rowp, rs, off, GT_Q4K_BLOCK_BYTES);
        q4k_scales16(rowp, off, dsc, mq);
        KQ_UNROLL16 for (int t = 0; t < T; t++) q4k_min_inputs_x86(act + t * as, nb, 8 * s, am[t]);
        KQ_UNROLL8 for (int g = 0; g < 4; g++) {
            __m512i W[8];  // the rows' nibble group g: blocks 2g (low nibbles) and 2g + 1 (high)
            transpose16x8(rowp, off + 16 + 32 * (size_t)g, W);
            KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h;
                const size_t b = 8 * s + (size_t)j;
                __m512i q[8];
                KQ_UNROLL8 for (int k = 0; k < 8; k++) q[k] = _mm512_and_si512(h ? _mm512_srli_epi16(W[k], 4) : W[k], m4);
                const __m512 dv = _mm512_load_ps(dsc[j]);
                KQ_UNROLL8 for (int t = 0; t < T; t++) {
                    const uint8_t *a = act + t * as;
                    const int32_t *x = (const int32_t *)(gt_act_q(a) + b * GT_BLOCK);
                    __m512i L = _mm512_dpbusd_epi32(zero, q[0], _mm512_set1_epi32(x[0]));
                    KQ_UNROLL8 for (int k = 1; k < 8; k++) L = _mm512_dpbusd_epi32(L, q[k], _mm512_set1_epi32(x[k]));
                    const __m512 D = _mm512_mul_ps(dv, _mm512_set1_ps(gt_act_d(a, nb)[b]));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), D, acc[t]);
                }
            }
        }
        KQ_UNROLL8 for (int t = 0; t < T; t++)
            KQ_UNROLL8 for (int j = 0; j < 8; j++)
                acc[t] = _mm512_fmadd_ps(_mm512_load_ps(mq[j]), _mm512_set1_ps(am[t][j]), acc[t]);
    }
    store_rows(y, ys, r, R, acc, T);
}

// The 6-bit values (0..63) of block c of a half from its ql, ql + 32 and qh bytes (any width): the
// low (c < 2) or high nibble of ql or ql + 32 for bits 0..3, bits 2c, 2c + 1 of qh moved to bits
// 4..5, merged by one bit select (`vpternlogd`) and the top two bits cleared. (16-bit shifts are
// fine: the select and the mask keep only bits that came from the same byte.) q6k_values_x86's
// values in 3-4 operations instead of 4-6.
#define Q6K_VALUES(W, ql0, ql1, qh, c)                                                                   \
    _mm##W##_and_si##W(_mm##W##_ternarylogic_epi32(                                                      \
        _mm##W##_set1_epi8(0x0f), (c) >= 2 ? _mm##W##_srli_epi16((c) & 1 ? (ql1) : (ql0), 4) : ((c) & 1 ? (ql1) : (ql0)), \
        (c) == 0 ? _mm##W##_slli_epi16(qh, 4) : (c) == 1 ? _mm##W##_slli_epi16(qh, 2) : (c) == 2 ? (qh) : _mm##W##_srli_epi16(qh, 2), \
        0xca), _mm##W##_set1_epi8(0x3f))
AVX512_INLINE __m512i q6k_values16(__m512i ql0, __m512i ql1, __m512i qh, const int c) { return Q6K_VALUES(512, ql0, ql1, qh, c); }
AVX512_INLINE __m256i q6k_values8(__m256i ql0, __m256i ql1, __m256i qh, const int c) { return Q6K_VALUES(256, ql0, ql1, qh, c); }

// -32 x the sum of each 16 inputs of super-block s (st[k], sub-block k = 0..15): sums of
// x + 128 by `vpsadbw` over 8 bytes, two per sub-block, less 16 x 128.
AVX512_INLINE void q6k_input_offsets(const uint8_t *a, size_t s, int32_t *st) {
    const __m512i bias = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    KQ_UNROLL8 for (int v = 0; v < 4; v++) {
        const __m512i x = _mm512_loadu_si512((const void *)(gt_act_q(a) + s * GT_KBLOCK + 64 * (size_t)v));
        uint64_t e[8];
        _mm512_storeu_si512((void *)e, _mm512_sad_epu8(_mm512_xor_si512(x, bias), zero));
        KQ_UNROLL8 for (int i = 0; i < 4; i++) st[4 * v + i] = -32 * ((int32_t)(e[2 * i] + e[2 * i + 1]) - 16 * 128);
    }
}

// Q6_K: rows r..r+R-1 (R <= 16) x T tokens. Per block two lanes per row (sub-blocks of 16, each
// with its own scale), each started from -32 x its inputs' sum so that the values stay unsigned
// 0..63 for `vpdpbusd`. ql, ql + 32 and qh of a half are transposed once for its four blocks.
AVX512_INLINE void q6k_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, int R, const int T) {
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const uint8_t *rowp[TILE_ROWS];
    tile_rows(w, rs, r, R, rowp);
    __m512 acc[MAX_TOKENS];
    KQ_UNROLL16 for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q6K_BLOCK_BYTES;
        float dsc[16][16] __attribute__((aligned(64)));  // [sub-block][row]: d * sc
        int32_t st[MAX_TOKENS][16];                       // [token][sub-block]: -32 x its inputs' sum
        prefetch_rows(rowp, rs, off, GT_Q6K_BLOCK_BYTES);
        q6k_scales16(rowp, off, dsc);
        KQ_UNROLL16 for (int t = 0; t < T; t++) q6k_input_offsets(act + t * as, s, st[t]);
        for (int hf = 0; hf < 2; hf++) {
            __m512i L0[8], L1[8], QH[8];
            transpose16x8(rowp, off + 64 * (size_t)hf, L0);
            transpose16x8(rowp, off + 64 * (size_t)hf + 32, L1);
            transpose16x8(rowp, off + 128 + 32 * (size_t)hf, QH);
            KQ_UNROLL8 for (int c = 0; c < 4; c++) {
                const int bi = 4 * hf + c;
                const size_t b = 8 * s + (size_t)bi;
                __m512i V[8];
                KQ_UNROLL8 for (int k = 0; k < 8; k++) V[k] = q6k_values16(L0[k], L1[k], QH[k], c);
                const __m512 d0 = _mm512_load_ps(dsc[2 * bi]), d1 = _mm512_load_ps(dsc[2 * bi + 1]);
                KQ_UNROLL8 for (int t = 0; t < T; t++) {
                    const uint8_t *a = act + t * as;
                    const int32_t *x = (const int32_t *)(gt_act_q(a) + b * GT_BLOCK);
                    __m512i s0 = _mm512_set1_epi32(st[t][2 * bi]), s1 = _mm512_set1_epi32(st[t][2 * bi + 1]);
                    KQ_UNROLL8 for (int k = 0; k < 4; k++) {
                        s0 = _mm512_dpbusd_epi32(s0, V[k], _mm512_set1_epi32(x[k]));
                        s1 = _mm512_dpbusd_epi32(s1, V[k + 4], _mm512_set1_epi32(x[k + 4]));
                    }
                    const __m512 ad = _mm512_set1_ps(gt_act_d(a, nb)[b]);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(d0, ad), acc[t]);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(d1, ad), acc[t]);
                }
            }
        }
    }
    store_rows(y, ys, r, R, acc, T);
}

// ---- batches: groups of 16 tokens, their inputs interleaved once per call ----
// The tiles above read a token's inputs at its own prepared vector (act + t * as): 16 addresses,
// which the compiler keeps on the stack and reloads, and the per-block work of each token
// (its scale, Q6_K starts, Q4_K minimum terms) is read or recomputed in every 16-row tile. A
// full group of 16 tokens is therefore rearranged once per call into a per-thread buffer, in
// the order the tiles read it, so that a tile addresses every token from one pointer with
// constant offsets (the `vpdpbusd` broadcasts fold into 7-byte instructions), and the group
// tiles below unpack a super-block's weights once for all the groups. The values and the order
// of every operation per row and token are those of the tiles above (the same row-lane
// arithmetic, bit for bit); only where the inputs are read from changes (docs/BENCHMARKS.md,
// session 17). A group of `cols` inputs (nb = cols / 32 blocks):
//   int32 q[nb][8][16]   dword k of block b of token t at (8b + k) * 16 + t
//   float d[nb][16]      the block scales
//   Q4_K: float am[nb][16]      d * c, the minimum terms' input factor (q4k_min_inputs_x86)
//   Q6_K: int32 st[2nb][16]     -32 x the sum of each 16 inputs (q6k_input_offsets)
AVX512_INLINE size_t group_bytes(size_t cols) { return 16 * cols + 192 * (cols / GT_BLOCK); }
AVX512_INLINE size_t group_d_offset(size_t cols) { return 16 * cols; }   // after q
AVX512_INLINE size_t group_am_st_offset(size_t cols) { return 18 * cols; }  // after d (64 bytes per block)

AVX512_INLINE void group_inputs(const uint8_t *act, size_t as, size_t cols, int type, uint8_t *g) {
    const size_t nb = cols / GT_BLOCK;
    const uint8_t *tok[16];
    KQ_UNROLL16 for (int t = 0; t < 16; t++) tok[t] = act + (size_t)t * as;
    int32_t *gq = (int32_t *)g;
    float *gd = (float *)(g + group_d_offset(cols));
    uint8_t *gx = g + group_am_st_offset(cols);
    const __m512i zero = _mm512_setzero_si512(), w32 = _mm512_set1_epi8(32);
    for (size_t b = 0; b < nb; b++) {
        __m512i W[8];
        transpose16x8(tok, b * GT_BLOCK, W);
        KQ_UNROLL8 for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(gq + (8 * b + (size_t)k) * 16), W[k]);
        if (type == GT_Q6K)
            KQ_UNROLL8 for (int h = 0; h < 2; h++) {
                __m512i sum = zero;
                KQ_UNROLL8 for (int k = 0; k < 4; k++) sum = _mm512_dpbusd_epi32(sum, w32, W[4 * h + k]);
                _mm512_store_si512((void *)(gx + ((2 * b + (size_t)h) * 16) * 4), _mm512_sub_epi32(zero, sum));
            }
    }
    for (size_t s = 0; s < nb / 8; s++) {
        __m512i D[8], C[8];
        transpose16x8(tok, nb * GT_BLOCK + 32 * s, D);
        if (type == GT_Q4K) transpose16x8(tok, nb * (GT_BLOCK + 4) + 32 * s, C);
        KQ_UNROLL8 for (int k = 0; k < 8; k++) {
            const size_t b = 8 * s + (size_t)k;
            _mm512_store_si512((void *)(gd + b * 16), D[k]);
            if (type == GT_Q4K)
                _mm512_store_ps((float *)gx + b * 16, _mm512_mul_ps(_mm512_castsi512_ps(D[k]), _mm512_cvtepi32_ps(C[k])));
        }
    }
}

// The group tiles take rows r..r+R-1 (R <= 16) and every full group of the call (G groups of
// 16 tokens, gbytes apart from gb): a super-block's weights are transposed, unpacked and their
// scales decoded once and stored (4-5 KiB, in L1), then each group runs its 16 tokens over them,
// its accumulators loaded from and stored back to `accs` (G x 16 vectors, exact copies) between
// super-blocks. The per-(row, token) sequence of operations is q4k_tile's / q6k_tile's.

// Q4_K.
AVX512_INLINE void q4k_groups_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *gb, size_t gbytes,
                                   size_t G, __m512 *accs, float *y, size_t ys, size_t r, int R) {
    const size_t nsb = cols / GT_KBLOCK;
    const __m512i m4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
    const uint8_t *rowp[TILE_ROWS];
    tile_rows(w, rs, r, R, rowp);
    for (size_t i = 0; i < 16 * G; i++) accs[i] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q4K_BLOCK_BYTES;
        float dsc[8][16] __attribute__((aligned(64))), mq[8][16] __attribute__((aligned(64)));
        __m512i qv[8][8];  // [block j][dword k]: the rows' 4-bit values, lane = row
        prefetch_rows(rowp, rs, off, GT_Q4K_BLOCK_BYTES);
        q4k_scales16(rowp, off, dsc, mq);
        KQ_UNROLL8 for (int gi = 0; gi < 4; gi++) {
            __m512i W[8];
            transpose16x8(rowp, off + 16 + 32 * (size_t)gi, W);
            KQ_UNROLL8 for (int k = 0; k < 8; k++) {
                qv[2 * gi][k] = _mm512_and_si512(W[k], m4);
                qv[2 * gi + 1][k] = _mm512_and_si512(_mm512_srli_epi16(W[k], 4), m4);
            }
        }
        // Each group in two halves of 8 tokens: 8 accumulators and a block's 8 value vectors
        // stay in registers (16 accumulators and the values spilled).
        for (size_t g = 0; g < G; g++)
            for (int hv = 0; hv < 2; hv++) {
                const uint8_t *grp = gb + g * gbytes;
                const int32_t *gq = (const int32_t *)grp + 8 * hv;
                const float *gd = (const float *)(grp + group_d_offset(cols)) + 8 * hv;
                const float *gam = (const float *)(grp + group_am_st_offset(cols)) + 8 * hv;
                __m512 *acc = accs + 16 * g + 8 * hv;
                __m512 a[8];
                KQ_UNROLL8 for (int u = 0; u < 8; u++) a[u] = acc[u];
                KQ_NO_UNROLL for (int j = 0; j < 8; j++) {
                    const size_t b = 8 * s + (size_t)j;
                    __m512i q[8];
                    KQ_UNROLL8 for (int k = 0; k < 8; k++) q[k] = qv[j][k];
                    const __m512 dv = _mm512_load_ps(dsc[j]);
                    const int32_t *xb = gq + b * 128;
                    const float *db = gd + b * 16;
                    KQ_UNROLL8 for (int u = 0; u < 8; u++) {
                        __m512i L = _mm512_dpbusd_epi32(zero, q[0], _mm512_set1_epi32(xb[u]));
                        KQ_UNROLL8 for (int k = 1; k < 8; k++) L = _mm512_dpbusd_epi32(L, q[k], _mm512_set1_epi32(xb[16 * k + u]));
                        a[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_mul_ps(dv, _mm512_set1_ps(db[u])), a[u]);
                    }
                }
                const float *amb = gam + 8 * s * 16;
                KQ_UNROLL8 for (int u = 0; u < 8; u++)
                    KQ_UNROLL8 for (int j = 0; j < 8; j++)
                        a[u] = _mm512_fmadd_ps(_mm512_load_ps(mq[j]), _mm512_set1_ps(amb[16 * j + u]), a[u]);
                KQ_UNROLL8 for (int u = 0; u < 8; u++) acc[u] = a[u];
            }
    }
    for (size_t g = 0; g < G; g++) store_rows(y + 16 * g * ys, ys, r, R, accs + 16 * g, 16);
}

// Q6_K.
AVX512_INLINE void q6k_groups_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *gb, size_t gbytes,
                                   size_t G, __m512 *accs, float *y, size_t ys, size_t r, int R) {
    const size_t nsb = cols / GT_KBLOCK;
    const uint8_t *rowp[TILE_ROWS];
    tile_rows(w, rs, r, R, rowp);
    for (size_t i = 0; i < 16 * G; i++) accs[i] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q6K_BLOCK_BYTES;
        float dsc[16][16] __attribute__((aligned(64)));  // [sub-block][row]: d * sc
        __m512i vv[8][8];                                 // [block][dword]: the rows' 6-bit values
        prefetch_rows(rowp, rs, off, GT_Q6K_BLOCK_BYTES);
        q6k_scales16(rowp, off, dsc);
        for (int hf = 0; hf < 2; hf++) {
            __m512i L0[8], L1[8], QH[8];
            transpose16x8(rowp, off + 64 * (size_t)hf, L0);
            transpose16x8(rowp, off + 64 * (size_t)hf + 32, L1);
            transpose16x8(rowp, off + 128 + 32 * (size_t)hf, QH);
            KQ_UNROLL8 for (int c = 0; c < 4; c++)
                KQ_UNROLL8 for (int k = 0; k < 8; k++) vv[4 * hf + c][k] = q6k_values16(L0[k], L1[k], QH[k], c);
        }
        for (size_t g = 0; g < G; g++)
            for (int hv = 0; hv < 2; hv++) {  // halves of 8 tokens, as the Q4_K tile
                const uint8_t *grp = gb + g * gbytes;
                const int32_t *gq = (const int32_t *)grp + 8 * hv;
                const int32_t *gst = (const int32_t *)(grp + group_am_st_offset(cols)) + 8 * hv;
                const float *gd = (const float *)(grp + group_d_offset(cols)) + 8 * hv;
                __m512 *acc = accs + 16 * g + 8 * hv;
                __m512 a[8];
                KQ_UNROLL8 for (int u = 0; u < 8; u++) a[u] = acc[u];
                KQ_NO_UNROLL for (int bi = 0; bi < 8; bi++) {
                    const size_t b = 8 * s + (size_t)bi;
                    __m512i V[8];
                    KQ_UNROLL8 for (int k = 0; k < 8; k++) V[k] = vv[bi][k];
                    const __m512 d0 = _mm512_load_ps(dsc[2 * bi]), d1 = _mm512_load_ps(dsc[2 * bi + 1]);
                    const int32_t *xb = gq + b * 128, *stb = gst + b * 32;
                    const float *db = gd + b * 16;
                    KQ_UNROLL8 for (int u = 0; u < 8; u++) {
                        __m512i s0 = _mm512_set1_epi32(stb[u]), s1 = _mm512_set1_epi32(stb[16 + u]);
                        KQ_UNROLL8 for (int k = 0; k < 4; k++) {
                            s0 = _mm512_dpbusd_epi32(s0, V[k], _mm512_set1_epi32(xb[16 * k + u]));
                            s1 = _mm512_dpbusd_epi32(s1, V[k + 4], _mm512_set1_epi32(xb[16 * (k + 4) + u]));
                        }
                        const __m512 ad = _mm512_set1_ps(db[u]);
                        a[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(d0, ad), a[u]);
                        a[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(d1, ad), a[u]);
                    }
                }
                KQ_UNROLL8 for (int u = 0; u < 8; u++) acc[u] = a[u];
            }
    }
    for (size_t g = 0; g < G; g++) store_rows(y + 16 * g * ys, ys, r, R, accs + 16 * g, 16);
}

// ---- single tokens: matmul_kquant_single_x86.h with `vpdpbusd` (EVEX, 256-bit) ----
#define KS_NAME(x) x
#define KS_INLINE AVX512_INLINE
#define KS_DOT2(u0, s0, u1, s1) _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u0, s0), u1, s1)
#define KS_DOT1(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define KS_Q6K_VALUES(ql0, ql1, qh, c) q6k_values8(ql0, ql1, qh, c)
#include "matmul_kquant_single_x86.h"

// Rows in chunks of about 64 KiB of weights (a multiple of 16 rows, kept in L2 while the
// batch's tokens pass over them), tokens in groups of 16, 8, 4, 2, 1 over each chunk's tiles.
// The full groups of 16 are first rearranged (group_inputs) and run by the group tiles. The
// rearrangement is per call, and a product's rows reach a thread as several calls (about 8), so
// it is repeated that often: by instruction counts about 2% of a 128-row call of the 2B's down
// product. Doing it once per product would need the inputs' preparation (Swift side) to know it.
// Each driver starts on a 64-byte boundary: where its hot loops fall relative to the cache lines
// and the op cache otherwise moves with unrelated code, and so did its speed (the same Q6_K
// code measured 10% apart at two offsets in one process; docs/BENCHMARKS.md, session 15).
#define DEFINE_ROWLANE_DRIVER(NAME, TYPE, TILE, GROUPS_TILE, SINGLE)                                     \
    __attribute__((aligned(64))) AVX512_FN void NAME(const uint8_t *w, size_t rs, size_t cols,           \
                                                     const uint8_t *act, size_t as, size_t count, float *y, \
                                                     size_t ys, size_t r0, size_t r1) {                  \
        if (count == 1) {                                                                                \
            for (size_t r = r0; r < r1; r += SINGLE##_ROWS)                                              \
                SINGLE(w, rs, cols, act, y, r, r1 - r < SINGLE##_ROWS ? (int)(r1 - r) : SINGLE##_ROWS);  \
            return;                                                                                      \
        }                                                                                                \
        const size_t gbytes = group_bytes(cols), groups = count / 16;                                    \
        uint8_t *gb = groups ? gt_kquant_scratch(groups * (gbytes + 16 * sizeof(__m512))) : NULL;        \
        size_t t0 = 0; /* the first token of the tiles below */                                          \
        if (gb) {                                                                                        \
            __m512 *accs = (__m512 *)(void *)(gb + groups * gbytes);                                     \
            for (size_t g = 0; g < groups; g++) group_inputs(act + 16 * g * as, as, cols, TYPE, gb + g * gbytes); \
            for (size_t r = r0; r < r1; r += TILE_ROWS)                                                  \
                GROUPS_TILE(w, rs, cols, gb, gbytes, groups, accs, y, ys, r,                             \
                            r1 - r < TILE_ROWS ? (int)(r1 - r) : TILE_ROWS);                             \
            t0 = 16 * groups;                                                                            \
        }                                                                                                \
        size_t chunk = (65536 / (rs ? rs : 1)) & ~(size_t)(TILE_ROWS - 1);                               \
        if (chunk < TILE_ROWS) chunk = TILE_ROWS;                                                        \
        for (size_t c0 = r0; c0 < r1 && t0 < count; c0 += chunk) {                                       \
            const size_t c1 = c0 + chunk < r1 ? c0 + chunk : r1;                                         \
            for (size_t t = t0; t < count;) {                                                            \
                const size_t n = count - t;                                                              \
                const int T = n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;                   \
                const uint8_t *a = act + t * as;                                                         \
                float *yt = y + t * ys;                                                                  \
                for (size_t r = c0; r < c1; r += TILE_ROWS) {                                            \
                    const int R = c1 - r < TILE_ROWS ? (int)(c1 - r) : TILE_ROWS;                        \
                    switch (T) {                                                                         \
                    case 16: TILE(w, rs, cols, a, as, yt, ys, r, R, 16); break;                          \
                    case 8: TILE(w, rs, cols, a, as, yt, ys, r, R, 8); break;                            \
                    case 4: TILE(w, rs, cols, a, as, yt, ys, r, R, 4); break;                            \
                    case 2: TILE(w, rs, cols, a, as, yt, ys, r, R, 2); break;                            \
                    default: TILE(w, rs, cols, a, as, yt, ys, r, R, 1); break;                           \
                    }                                                                                    \
                }                                                                                        \
                t += (size_t)T;                                                                          \
            }                                                                                            \
        }                                                                                                \
    }

DEFINE_ROWLANE_DRIVER(gt_q4k_avx512vnni, GT_Q4K, q4k_tile, q4k_groups_tile, q4k_single)
DEFINE_ROWLANE_DRIVER(gt_q6k_avx512vnni, GT_Q6K, q6k_tile, q6k_groups_tile, q6k_single)

#endif
