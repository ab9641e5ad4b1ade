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

#endif
