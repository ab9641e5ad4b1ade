// Tests of the tiled attention (gt_attention_rows, attention_tiled.c) on every path this CPU
// runs, against an f64 softmax:
//   - every path within |out - exact| <= 5e-6 * max|v| per output (1e-5 with soft-capping, whose
//     SIMD tanh loses a little more), scores spread over about -10..10 (measured: up to 1e-6), and
//     so is the exact per-query gt_attention_head_spans;
//   - on each path, bit for bit: all rows in one call == each row alone over one contiguous run
//     == rows in other blocks / split between "threads" == positions split into other runs
//     (a ring buffer's halves, the batch) == the segments' states computed on two "threads"
//     (gt_attention_partials) and folded (gt_attention_merge), and gt_attention_rows == the
//     selected path.
// Shapes: head_dim 256 (Gemma), 128, 24 and 7 (tails), GQA groups 1, 4 and 8, global and
// sliding-window layers, batches starting mid-chunk, with and without soft-capping.
// Each shape runs twice: over an f32 cache (gt_attention_rows) and over an f16 one
// (gt_attention_rows_f16, the keys and values rounded by gt_f16_store), where the exact
// softmax is computed from the same f16-rounded keys and values, with the same bounds.
#include "gemma_kernels.h"
#include "gemma_ops.h"
#include "test_support.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t d, group, positions, batch, window;  // window 0: global
    float softcap;
} att_shape;

// The exact result for row (q, lo..hi) in f64.
static void exact(const float *q, const float *k, const float *v, size_t stride, size_t lo, size_t hi, size_t d,
                  float scale, float softcap, double *out) {
    double m = -INFINITY;
    double *s = malloc((hi - lo) * sizeof(double));
    for (size_t t = lo; t < hi; t++) {
        double dot = 0;
        for (size_t i = 0; i < d; i++) dot += (double)q[i] * k[t * stride + i];
        dot *= scale;
        if (softcap > 0) dot = tanh(dot / softcap) * softcap;
        s[t - lo] = dot;
        if (dot > m) m = dot;
    }
    double sum = 0;
    for (size_t t = lo; t < hi; t++) sum += (s[t - lo] = exp(s[t - lo] - m));
    for (size_t i = 0; i < d; i++) {
        double a = 0;
        for (size_t t = lo; t < hi; t++) a += s[t - lo] * v[t * stride + i];
        out[i] = a / sum;
    }
    free(s);
}

static int same(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) return 0;
    return 1;
}

// The cache under test: f32 (k, v) or f16 (k16, v16, whose widened values are k, v).
typedef struct {
    int f16;
    const float *k, *v;
    const uint16_t *k16, *v16;
    size_t stride, column;
} att_cache;

// The runs of `count` spans given as first position and count.
static void make_runs(const att_cache *c, const size_t (*spans)[2], size_t count, gt_kv_run *runs,
                      gt_kv_run_f16 *runs16) {
    for (size_t i = 0; i < count; i++) {
        const size_t off = spans[i][0] * c->stride + c->column;
        runs[i] = (gt_kv_run){c->k + off, c->v + off, spans[i][0], spans[i][1]};
        runs16[i] = (gt_kv_run_f16){c->f16 ? c->k16 + off : NULL, c->f16 ? c->v16 + off : NULL, spans[i][0],
                                    spans[i][1]};
    }
}

// gt_attention_partials(_isa) of segments s0..<s1 over the spans (isa < 0: the selected path).
static void attend_partials(const att_cache *c, int isa, const gt_attention_row *rows, size_t nr,
                            const size_t (*spans)[2], size_t count, size_t d, float scale, float softcap, size_t s0,
                            size_t s1, float *partials, void *scratch) {
    gt_kv_run runs[4];
    gt_kv_run_f16 runs16[4];
    make_runs(c, spans, count, runs, runs16);
    if (c->f16) {
        if (isa < 0) gt_attention_partials_f16(rows, nr, runs16, count, c->stride, d, scale, softcap, s0, s1, partials, scratch);
        else gt_attention_partials_f16_isa(isa, rows, nr, runs16, count, c->stride, d, scale, softcap, s0, s1, partials, scratch);
    } else {
        if (isa < 0) gt_attention_partials(rows, nr, runs, count, c->stride, d, scale, softcap, s0, s1, partials, scratch);
        else gt_attention_partials_isa(isa, rows, nr, runs, count, c->stride, d, scale, softcap, s0, s1, partials, scratch);
    }
}

// gt_attention_rows(_isa) (isa < 0: the selected path) over `count` runs given as first
// position and count.
static int attend(const att_cache *c, int isa, const gt_attention_row *rows, size_t nr, const size_t (*spans)[2],
                  size_t count, size_t d, float scale, float softcap, void *scratch) {
    gt_kv_run runs[4];
    gt_kv_run_f16 runs16[4];
    make_runs(c, spans, count, runs, runs16);
    if (c->f16) {
        if (isa < 0) {
            gt_attention_rows_f16(rows, nr, runs16, count, c->stride, d, scale, softcap, scratch);
            return isa;
        }
        return gt_attention_rows_f16_isa(isa, rows, nr, runs16, count, c->stride, d, scale, softcap, scratch);
    }
    if (isa < 0) {
        gt_attention_rows(rows, nr, runs, count, c->stride, d, scale, softcap, scratch);
        return isa;
    }
    return gt_attention_rows_isa(isa, rows, nr, runs, count, c->stride, d, scale, softcap, scratch);
}

static void check_shape(const att_shape *sh, int quick, int f16) {
    const size_t d = sh->d, G = sh->group, P = sh->positions, n = sh->batch, kvh = 2;
    const size_t stride = kvh * d + 3;  // two KV heads and some padding: rows are not packed
    const size_t first = P - n;         // the batch's first position
    const float scale = 6.0f / sqrtf((float)d), softcap = sh->softcap;  // scores spread over about -10..10
    float *k = xmalloc(P * stride * sizeof(float)), *v = xmalloc(P * stride * sizeof(float));
    uint16_t *k16 = xmalloc(P * stride * sizeof(uint16_t)), *v16 = xmalloc(P * stride * sizeof(uint16_t));
    float *q = xmalloc(n * G * d * sizeof(float));
    for (size_t i = 0; i < P * stride; i++) { k[i] = rng_float(); v[i] = rng_float() * 2.0f; }
    for (size_t i = 0; i < n * G * d; i++) q[i] = rng_float();
    if (f16) {  // the cache holds halves; the exact softmax uses their values
        gt_f16_store(k16, k, P * stride);
        gt_f16_store(v16, v, P * stride);
        for (size_t i = 0; i < P * stride; i++) { k[i] = gt_f16_to_f32(k16[i]); v[i] = gt_f16_to_f32(v16[i]); }
    }
    const size_t head = 1;  // the second KV head
    const float *kh = k + head * d, *vh = v + head * d;
    const att_cache cache = {f16, k, v, k16, v16, stride, head * d};
    const size_t rows = n * G;
    float *out = xmalloc(rows * d * sizeof(float)), *alone = xmalloc(rows * d * sizeof(float));
    float *other = xmalloc(rows * d * sizeof(float)), *ref_out = xmalloc(rows * d * sizeof(float));
    double *ex = malloc(d * sizeof(double));
    gt_attention_row *r = malloc(rows * sizeof(gt_attention_row));
    void *scratch = xmalloc(gt_attention_scratch_bytes(d));
    for (size_t i = 0; i < n; i++) {
        const size_t p = first + i;
        const size_t lo = sh->window && p + 1 > sh->window ? p + 1 - sh->window : 0;
        for (size_t g = 0; g < G; g++) r[i * G + g] = (gt_attention_row){q + (i * G + g) * d, NULL, lo, p + 1};
    }
    // Runs as the session makes them: the cached positions in two pieces (a ring's halves, at a
    // position that is not a chunk boundary), then the batch.
    const size_t lo0 = r[0].lo, cut = lo0 + (first - lo0) / 3;
    const size_t runs[3][2] = {{lo0, cut - lo0}, {cut, first - cut}, {first, n}};
    const size_t whole[1][2] = {{0, P}};
    char what[176];

    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (isa != GT_ISA_SCALAR && !gt_isa_supported(isa)) continue;
        snprintf(what, sizeof what, "attention %s%s d=%zu group=%zu positions=%zu batch=%zu window=%zu softcap=%g",
                 f16 ? "f16 " : "", gt_isa_name(isa), d, G, P, n, sh->window, softcap);
        // All rows, one call, three runs.
        for (size_t i = 0; i < rows; i++) r[i].out = out + i * d;
        int used = attend(&cache, isa, r, rows, runs, 3, d, scale, softcap, scratch);
        if (isa == GT_ISA_SCALAR) memcpy(ref_out, out, rows * d * sizeof(float));
        check(used == isa || (isa == GT_ISA_AVX2_VNNI || isa == GT_ISA_NEON_DOTPROD), "%s: path %d used", what, used);
        // Against the exact softmax.
        const double tol = softcap > 0 ? 1e-5 : 5e-6;
        double worst = 0, worst_old = 0;
        for (size_t i = 0; i < rows; i++) {
            exact(r[i].q, kh, vh, stride, r[i].lo, r[i].hi, d, scale, softcap, ex);
            double vmax = 0;
            for (size_t t = r[i].lo; t < r[i].hi; t++)
                for (size_t x = 0; x < d; x++) vmax = fmax(vmax, fabs(vh[t * stride + x]));
            for (size_t x = 0; x < d; x++) {
                const double e = fabs(out[i * d + x] - ex[x]) / vmax;
                if (e > worst) worst = e;
            }
            if (isa == GT_ISA_SCALAR && (i % 7 == 0 || i + 1 == rows)) {  // the exact per-query kernel too
                gt_kv_span span = {kh + r[i].lo * stride, vh + r[i].lo * stride, r[i].hi - r[i].lo};
                float *scores = malloc((r[i].hi - r[i].lo) * sizeof(float));
                gt_attention_head_spans(r[i].q, &span, 1, stride, d, scale, softcap, scores, other);
                for (size_t x = 0; x < d; x++) worst_old = fmax(worst_old, fabs(other[x] - ex[x]) / vmax);
                free(scores);
            }
        }
        if (getenv("ATT_VERBOSE")) printf("%s: error %.3g, exact kernel %.3g\n", what, worst, worst_old);
        check(worst <= tol, "%s: error %.3g * max|v| (bound %.3g)", what, worst, tol);
        check(worst_old <= tol, "%s: exact kernel error %.3g * max|v|", what, worst_old);
        // Each row alone over one contiguous run (decoding), bit for bit.
        for (size_t i = 0; i < rows; i++) {
            gt_attention_row one = r[i];
            one.out = alone + i * d;
            attend(&cache, isa, &one, 1, whole, 1, d, scale, softcap, scratch);
        }
        check(same(out, alone, rows * d), "%s: batch != one row at a time", what);
        // Other blocks: rows in two "threads" (odd and even groups of 3 rows), runs split elsewhere.
        const size_t runs2[4][2] = {{lo0, 1}, {lo0 + 1, first + 1 - (lo0 + 1)}, {first + 1, n > 2 ? n - 2 : 0}, {P - 1, 1}};
        const size_t (*rs)[2] = n > 2 ? runs2 : runs;
        const size_t rc = n > 2 ? 4 : 3;
        for (int part = 0; part < 2; part++) {
            for (size_t b = (size_t)part * 3; b < rows; b += 6) {
                const size_t cnt = rows - b < 3 ? rows - b : 3;
                gt_attention_row blk[3];
                for (size_t j = 0; j < cnt; j++) { blk[j] = r[b + j]; blk[j].out = other + (b + j) * d; }
                attend(&cache, isa, blk, cnt, rs, rc, d, scale, softcap, scratch);
            }
        }
        check(same(out, other, rows * d), "%s: other blocks / threads / runs differ", what);
        // Blocks of 16 rows, each block's segments split between two "threads" (the first one
        // taking the lower half, in another split of the runs), then folded in order.
        const size_t pf = GT_ATTENTION_PARTIAL_FLOATS(d), nseg = (P - 1) / GT_ATTENTION_SEGMENT + 1;
        float *partials = xmalloc(nseg * GT_ATTENTION_BLOCK_ROWS * pf * sizeof(float));
        memset(other, 0, rows * d * sizeof(float));
        for (size_t b = 0; b < rows; b += GT_ATTENTION_BLOCK_ROWS) {
            const size_t cnt = rows - b < GT_ATTENTION_BLOCK_ROWS ? rows - b : GT_ATTENTION_BLOCK_ROWS;
            gt_attention_row blk[GT_ATTENTION_BLOCK_ROWS];
            for (size_t j = 0; j < cnt; j++) { blk[j] = r[b + j]; blk[j].out = other + (b + j) * d; }
            const size_t s0 = blk[0].lo / GT_ATTENTION_SEGMENT, s1 = (blk[cnt - 1].hi - 1) / GT_ATTENTION_SEGMENT + 1;
            const size_t split = s0 + (s1 - s0 + 1) / 2;
            attend_partials(&cache, isa, blk, cnt, runs, 3, d, scale, softcap, s0, split, partials, scratch);
            attend_partials(&cache, isa, blk, cnt, rs, rc, d, scale, softcap, split, s1, partials + (split - s0) * cnt * pf,
                            scratch);
            gt_attention_merge(blk, cnt, partials, s1 - s0, d);
        }
        free(partials);
        check(same(out, other, rows * d), "%s: segments split over threads and folded differ", what);
        if (isa == gt_kernel_isa_id()) {
            for (size_t i = 0; i < rows; i++) r[i].out = other + i * d;
            attend(&cache, -1, r, rows, runs, 3, d, scale, softcap, scratch);
            check(same(out, other, rows * d), "%s: gt_attention_rows is not the selected path", what);
        }
    }
    (void)quick;
    (void)ref_out;
    free(k); free(v); free(k16); free(v16); free(q); free(out); free(alone); free(other); free(ref_out); free(ex); free(r); free(scratch);
}

void check_attention(int quick) {
    static const att_shape shapes[] = {
        {256, 4, 200, 64, 0, 0},     // Gemma 3 270M global layer: 4 heads on one KV head
        {256, 4, 700, 70, 512, 0},   // its sliding layers (window 512), a batch across chunks
        {256, 8, 150, 1, 0, 0},      // Gemma 2B decoding (8 heads on one KV head)
        {256, 8, 1300, 1, 512, 0},   // decoding in a sliding layer far into the context
        {256, 8, 900, 1, 0, 0},      // decoding at depth 899: four segments
        {64, 4, 600, 40, 0, 0},      // a batch across a segment boundary, global
        {128, 2, 90, 17, 0, 50.0f},  // Gemma 2 style soft-capping
        {256, 1, 100, 9, 33, 5.0f},  // soft-cap 5 (the parity fixture's), a tiny window
        {24, 1, 77, 13, 0, 0},       // head_dim tails
        {7, 3, 40, 40, 0, 0},        // a whole prompt from position 0
        {7, 3, 40, 40, 6, 30.0f},
    };
    const size_t count = sizeof(shapes) / sizeof(shapes[0]);
    for (size_t s = 0; s < count; s++) {
        if (quick && shapes[s].positions > 1000) continue;
        check_shape(&shapes[s], quick, 0);
        check_shape(&shapes[s], quick, 1);
    }
}
