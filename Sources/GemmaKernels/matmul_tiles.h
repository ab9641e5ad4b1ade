// The row/token tiling shared by every SIMD path. Include after defining
//   TILE_ATTR    the function attributes of the ISA (target, always_inline)
//   a tile function  NAME_tile(w, rs, cols, act, as, y, ys, r, R, T) computing rows r..r+R-1
//                    for tokens 0..T-1 (act and y already offset to the first token)
// and then instantiate GT_DEFINE_DRIVER(driver_name, tile_name, attributes).
//
// Tiles: one token (decoding) runs 4 rows at a time, sharing each input load across the rows;
// a batch runs 2 rows x up to 4 tokens, so every weight block loaded feeds up to 8 products.
#ifndef GEMMA_MATMUL_TILES_H
#define GEMMA_MATMUL_TILES_H

// Fully unrolls the small row / token loops of a tile so its accumulators live in registers.
#define GT_UNROLL _Pragma("GCC unroll 4")

// Prefetches every cache line of [p, p + n): a tile fetches the next tile's rows, one step's share
// (R rows x one block) per block step. That share is 2-3 lines for q8 and f32 (4 x 34 bytes,
// 4 x 32 bytes): fetching only the step's first line left every other line to the hardware
// prefetchers, which do not ramp up on rows this short, and halved q8's read rate.
#define GT_PREFETCH_SPAN(p, n)                                  \
    for (size_t pl_ = 0; pl_ < (n); pl_ += 64) __builtin_prefetch((const char *)(p) + pl_, 0, 3)

// Batches: rows go in chunks of about GT_ROW_CHUNK_BYTES of weights (kept in L2), and within a
// chunk the tokens in groups of 4 (their inputs stay in L1) over the chunk's row pairs. Weights
// are thus read from memory once per batch, inputs from L1.
#define GT_ROW_CHUNK_BYTES 65536

// Calls TILE for R rows and the n (1..4) tokens of a group, with constant R and T.
#define GT_TILE_N(TILE, w, rs, cols, a, as, yt, ys, r, R, n)                                                  \
    switch (n) {                                                                                              \
    case 1: TILE(w, rs, cols, a, as, yt, ys, r, R, 1); break;                                                 \
    case 2: TILE(w, rs, cols, a, as, yt, ys, r, R, 2); break;                                                 \
    case 3: TILE(w, rs, cols, a, as, yt, ys, r, R, 3); break;                                                 \
    default: TILE(w, rs, cols, a, as, yt, ys, r, R, 4); break;                                                \
    }

// BATCH_ROWS: rows per tile in a batch (2 or 4); 4 shares each token's input loads across more
// rows where the ISA has the registers for it.
#define GT_DEFINE_DRIVER_ROWS(NAME, TILE, ATTR, BATCH_ROWS)                                                   \
    ATTR static void NAME(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,            \
                          size_t count, float *y, size_t ys, size_t r0, size_t r1) {                          \
        if (count == 1) {                                                                                     \
            size_t r = r0;                                                                                    \
            for (; r + 4 <= r1; r += 4) TILE(w, rs, cols, act, as, y, ys, r, 4, 1);                           \
            for (; r < r1; r++) TILE(w, rs, cols, act, as, y, ys, r, 1, 1);                                   \
            return;                                                                                           \
        }                                                                                                     \
        GT_BATCH_LOOP(TILE, w, rs, cols, act, as, count, y, ys, r0, r1, BATCH_ROWS)                           \
    }

// The batch part of a driver: rows in chunks, tokens in groups of 4, BATCH_ROWS-row tiles.
#define GT_BATCH_LOOP(TILE, w, rs, cols, act, as, count, y, ys, r0, r1, BATCH_ROWS)                          \
        size_t chunk = (GT_ROW_CHUNK_BYTES / (rs ? rs : 1)) & ~(size_t)3;                                     \
        if (chunk < 4) chunk = 4;                                                                             \
        for (size_t c0 = r0; c0 < r1; c0 += chunk) {                                                          \
            size_t c1 = c0 + chunk < r1 ? c0 + chunk : r1;                                                    \
            for (size_t t = 0; t < count; t += 4) {                                                           \
                const uint8_t *a = act + t * as;                                                              \
                float *yt = y + t * ys;                                                                       \
                size_t n = count - t < 4 ? count - t : 4;                                                     \
                size_t r = c0;                                                                                \
                for (; r + BATCH_ROWS <= c1; r += BATCH_ROWS) GT_TILE_N(TILE, w, rs, cols, a, as, yt, ys, r, BATCH_ROWS, n) \
                for (; r + 2 <= c1; r += 2) GT_TILE_N(TILE, w, rs, cols, a, as, yt, ys, r, 2, n)              \
                if (r < c1) GT_TILE_N(TILE, w, rs, cols, a, as, yt, ys, r, 1, n)                              \
            }                                                                                                 \
        }

#define GT_DEFINE_DRIVER(NAME, TILE, ATTR) GT_DEFINE_DRIVER_ROWS(NAME, TILE, ATTR, 2)

#define GT_TILE_ROWS_N(CALL, R, n)       \
    switch (n) {                         \
    case 1: CALL(R, 1); break;           \
    case 2: CALL(R, 2); break;           \
    case 3: CALL(R, 3); break;           \
    case 4: CALL(R, 4); break;           \
    case 5: CALL(R, 5); break;           \
    case 6: CALL(R, 6); break;           \
    case 7: CALL(R, 7); break;           \
    default: CALL(R, 8); break;          \
    }

// AVX-512 batch drivers (matmul_avx512.c, matmul_kquant_avx512.c; the including file defines
// AVX512_FN and single_token_table(), the kernels for one token). A batch: rows in chunks of
// ~64 KiB of weights (kept in L2, a multiple of 8 rows), tokens in groups of 8 over each chunk's
// TILE_ROWS-row tiles (8 for q4/q5/q4k, 4 for q8/q6k: as many accumulators as there are
// registers). A single token takes the 256-bit kernel of single_token_table().
#define DEFINE_BATCH_DRIVER(NAME, TYPE, TILE_CALL, TILE_ROWS)                                                           \
    AVX512_FN static void NAME(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,      \
                               size_t count, float *y, size_t ys, size_t r0, size_t r1) {                    \
        if (count == 1) {                                                                                    \
            single_token_table()->fn[TYPE](w, rs, cols, act, as, count, y, ys, r0, r1);                         \
            return;                                                                                          \
        }                                                                                                    \
        size_t chunk = (65536 / (rs ? rs : 1)) & ~(size_t)7;                                                 \
        if (chunk < 8) chunk = 8;                                                                            \
        for (size_t c0 = r0; c0 < r1; c0 += chunk) {                                                         \
            size_t c1 = c0 + chunk < r1 ? c0 + chunk : r1;                                                   \
            for (size_t t = 0; t < count; t += 8) {                                                          \
                const uint8_t *a = act + t * as;                                                             \
                float *yt = y + t * ys;                                                                      \
                size_t n = count - t < 8 ? count - t : 8;                                                    \
                size_t r = c0;                                                                               \
                for (; r + TILE_ROWS <= c1; r += TILE_ROWS) {                                                \
                    GT_TILE_ROWS_N(TILE_CALL, TILE_ROWS, n)                                                  \
                }                                                                                            \
                if (TILE_ROWS == 8 && r + 4 <= c1) {                                                         \
                    GT_TILE_ROWS_N(TILE_CALL, 4, n)                                                          \
                    r += 4;                                                                                  \
                }                                                                                            \
                if (r < c1) {                                                                                \
                    const int rest = (int)(c1 - r);                                                          \
                    if (rest == 1) { GT_TILE_ROWS_N(TILE_CALL, 1, n) }                                       \
                    else if (rest == 2) { GT_TILE_ROWS_N(TILE_CALL, 2, n) }                                  \
                    else { GT_TILE_ROWS_N(TILE_CALL, 3, n) }                                                 \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#endif
