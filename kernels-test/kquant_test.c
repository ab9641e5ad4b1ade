// The K-quant kernels (GT_Q4K, GT_Q6K) on every ISA path this CPU supports.
//
// Weights are random bytes with random finite f16 scales (every byte pattern is a valid ggml
// Q4_K / Q6_K block), dequantized by gguf_dequant.c (ggml's decoding). Checks:
//   - every path equals its scalar reference bit for bit (gt_matmul_reference: matmul_kquant.c's
//     arithmetic, or matmul_kquant_rowlanes.c's for the x86 paths);
//   - every path is within the input-rounding bound of a double-precision dot product of the
//     dequantized weights and the f32 inputs: sum over blocks of (max|x| / 254) * sum |w|, plus
//     1e-5 * sum (|w_scaled| + |w_min|) |x| for f32 rounding (Q4_K's two terms d*sc*q and
//     dmin*m are summed separately and may cancel, so their magnitudes bound the rounding);
//   - both scalar arithmetics are within 1e-5 * that magnitude sum of a double-precision dot product of
//     the dequantized weights and the dequantized int8 inputs (ad * q): f32 rounding alone;
//   - a batch of 1..17 tokens equals single-token calls bit for bit, row ranges equal the same
//     rows of a full call bit for bit, with nothing written outside;
//   - NaN inputs give NaN outputs.
#include "gemma_kernels.h"
#include "gemma_quantize.h"
#include "gguf_dequant.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t kblock_bytes(int type) { return type == GT_Q4K ? GT_Q4K_BLOCK_BYTES : GT_Q6K_BLOCK_BYTES; }

// A random finite f16 scale: mostly ordinary magnitudes, sometimes zero, subnormal, or large.
static uint16_t random_scale(void) {
    switch (rng_next() % 16) {
    case 0: return 0;
    case 1: return (uint16_t)(rng_next() % 0x400);  // subnormal
    case 2: return gt_f32_to_f16(rng_float() * 60000.0f);
    default: return gt_f32_to_f16(rng_float() * powf(10.0f, -3.0f + 2.0f * (rng_float() + 1.0f) / 2.0f));
    }
}

static void put_f16(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }

static void fill_kblock(int type, uint8_t *b, int huge_ok) {
    size_t n = kblock_bytes(type);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rng_next();
    uint16_t d = random_scale(), dmin = random_scale();
    if (!huge_ok) {  // keep products far from f32 overflow in rows that are summed with others
        if (fabsf(gt_f16_to_f32(d)) > 1.0f) d = gt_f32_to_f16(0.01f);
        if (fabsf(gt_f16_to_f32(dmin)) > 1.0f) dmin = gt_f32_to_f16(-0.02f);
    }
    if (type == GT_Q4K) {
        put_f16(b, d);
        put_f16(b + 2, dmin);
    } else {
        put_f16(b + 208, d);
    }
}

typedef struct {
    int type;
    size_t rows, cols, rb, max_count, ab;
    uint8_t *w;
    float *wf, *x;
    uint8_t *act;
    double *ref, *tol;    // f64 dot with the f32 inputs, and its bound (input rounding + f32)
    double *refq, *tolq;  // f64 dot with the prepared int8 inputs (ad * q), and its bound (f32 only)
} kproblem;

static kproblem make_kproblem(int type, size_t rows, size_t cols, size_t max_count) {
    kproblem p = { type, rows, cols, cols / GT_KBLOCK * kblock_bytes(type), max_count, gt_activation_bytes(type, cols),
                   0, 0, 0, 0, 0, 0, 0, 0 };
    size_t nsb = cols / GT_KBLOCK, nb = cols / 32;
    p.w = xmalloc(rows * p.rb);
    p.wf = xmalloc(rows * cols * sizeof(float));
    // Per-value magnitude of the terms the kernel sums: |d sc q| + |dmin m| (Q4_K), |w| (Q6_K).
    float *wmag = xmalloc(rows * cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        for (size_t s = 0; s < nsb; s++) fill_kblock(type, p.w + r * p.rb + s * kblock_bytes(type), 0);
        gt_gguf_dequantize_row(type == GT_Q4K ? GT_GGML_Q4_K : GT_GGML_Q6_K, p.w + r * p.rb, cols, p.wf + r * cols);
        for (size_t c = 0; c < cols; c++) wmag[r * cols + c] = fabsf(p.wf[r * cols + c]);
        if (type == GT_Q4K) {
            for (size_t s = 0; s < nsb; s++) {
                const uint8_t *b = p.w + r * p.rb + s * GT_Q4K_BLOCK_BYTES;
                float dmin = fabsf(gt_f16_to_f32((uint16_t)(b[2] | b[3] << 8)));
                for (int c = 0; c < GT_KBLOCK; c++) wmag[r * cols + s * GT_KBLOCK + c] += 2.0f * 63.0f * dmin;
            }
        }
    }
    p.x = xmalloc(max_count * cols * sizeof(float));
    fill_inputs(p.x, max_count * cols);
    p.act = xmalloc(max_count * p.ab);
    gt_prepare_activations(type, p.x, cols, max_count, cols, p.act);
    p.ref = xmalloc(max_count * rows * sizeof(double));
    p.tol = xmalloc(max_count * rows * sizeof(double));
    p.refq = xmalloc(max_count * rows * sizeof(double));
    p.tolq = xmalloc(max_count * rows * sizeof(double));
    float *xq = xmalloc(cols * sizeof(float));
    for (size_t t = 0; t < max_count; t++) {
        const float *xt = p.x + t * cols;
        const uint8_t *a = p.act + t * p.ab;
        const float *ad = (const float *)(a + nb * 32);
        for (size_t c = 0; c < cols; c++) xq[c] = ad[c / 32] * (float)((const int8_t *)a)[c];
        for (size_t r = 0; r < rows; r++) {
            const float *wr = p.wf + r * cols;
            double dot = 0, mag = 0, qb = 0, dotq = 0, magq = 0;
            for (size_t c = 0; c < cols; c++) {
                dot += (double)wr[c] * xt[c];
                mag += (double)wmag[r * cols + c] * fabs(xt[c]);
                dotq += (double)wr[c] * xq[c];
                magq += (double)wmag[r * cols + c] * fabs(xq[c]);
            }
            for (size_t b = 0; b < nb; b++) {
                double amax = 0, wsum = 0;
                for (int i = 0; i < 32; i++) {
                    amax = fmax(amax, fabs(xt[b * 32 + i]));
                    wsum += fabs(wr[b * 32 + i]);
                }
                qb += amax / 254.0 * wsum;
            }
            p.ref[t * rows + r] = dot;
            p.tol[t * rows + r] = qb * 1.0001 + 1e-5 * mag * 1.01 + 1e-30;
            p.refq[t * rows + r] = dotq;
            p.tolq[t * rows + r] = 1e-5 * magq + 1e-30;
        }
    }
    free(wmag);
    free(xq);
    return p;
}

static void free_kproblem(kproblem *p) {
    free(p->w);
    free(p->wf);
    free(p->x);
    free(p->act);
    free(p->ref);
    free(p->tol);
    free(p->refq);
    free(p->tolq);
}

static const char *kname(int type) { return type == GT_Q4K ? "q4k" : "q6k"; }

static int same_rows(const float *a, const float *b, size_t rows, size_t count, size_t begin, size_t end) {
    for (size_t t = 0; t < count; t++)
        if (memcmp(a + t * rows + begin, b + t * rows + begin, (end - begin) * sizeof(float))) return 0;
    return 1;
}

// A scalar arithmetic (ref_isa: GT_ISA_SCALAR, or GT_ISA_AVX512_VNNI for the row lanes of
// matmul_kquant_rowlanes.c, see gt_matmul_reference) against the double-precision references.
static void check_reference_accuracy(const kproblem *p, int ref_isa, float *ys, size_t begin, size_t end) {
    size_t rows = p->rows, n = p->max_count * rows;
    const char *label = ref_isa == GT_ISA_SCALAR ? "scalar" : "row-lane scalar";
    for (size_t i = 0; i < n; i++) ys[i] = NAN;
    gt_matmul_reference(ref_isa, p->type, p->w, p->rb, p->cols, p->act, p->max_count, ys, rows, begin, end);
    double worst = 0, worstq = 0;
    int ok_ref = 1, ok_refq = 1;
    for (size_t t = 0; t < p->max_count; t++)
        for (size_t r = begin; r < end; r++) {
            size_t k = t * rows + r;
            double err = fabs((double)ys[k] - p->ref[k]), errq = fabs((double)ys[k] - p->refq[k]);
            if (!(err <= p->tol[k])) ok_ref = 0;
            if (!(errq <= p->tolq[k])) ok_refq = 0;
            if (err / p->tol[k] > worst) worst = err / p->tol[k];
            if (errq / p->tolq[k] > worstq) worstq = errq / p->tolq[k];
        }
    check(ok_ref, "%s %s %zux%zu rows [%zu,%zu): vs the f64 reference (worst err/tol %.3g)", label, kname(p->type), rows,
          p->cols, begin, end, worst);
    check(ok_refq, "%s %s %zux%zu rows [%zu,%zu): vs the f64 reference on the int8 inputs (worst err/tol %.3g)",
          label, kname(p->type), rows, p->cols, begin, end, worstq);
    if (getenv("KQUANT_VERBOSE"))
        printf("%s %s %zux%zu: worst err/tol %.3g, on int8 inputs %.3g\n", label, kname(p->type), rows, p->cols, worst,
               worstq);
}

static void check_kproblem(const kproblem *p, size_t begin, size_t end) {
    size_t rows = p->rows, n = p->max_count * rows;
    float *y = xmalloc(n * sizeof(float)), *ys = xmalloc(n * sizeof(float)), *tmp = xmalloc(n * sizeof(float));
    // Both scalar arithmetics against the double-precision reference, on every machine.
    check_reference_accuracy(p, GT_ISA_AVX512_VNNI, ys, begin, end);
    check_reference_accuracy(p, GT_ISA_SCALAR, ys, begin, end);
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        const char *name = gt_isa_name(isa);
        for (size_t i = 0; i < n; i++) ys[i] = NAN;
        gt_matmul_reference(isa, p->type, p->w, p->rb, p->cols, p->act, p->max_count, ys, rows, begin, end);
        for (size_t count = 1; count <= p->max_count; count++) {
            for (size_t i = 0; i < n; i++) y[i] = NAN;
            gt_matmul_isa(isa, p->type, p->w, p->rb, p->cols, p->act, count, y, rows, begin, end);
            int outside = 1;
            for (size_t t = 0; t < p->max_count; t++)
                for (size_t r = 0; r < rows; r++)
                    if ((t >= count || r < begin || r >= end) && !isnan(y[t * rows + r])) outside = 0;
            check(outside, "%s %s %zux%zu rows [%zu,%zu) count %zu: wrote outside its rows/tokens", name,
                  kname(p->type), rows, p->cols, begin, end, count);
            check(same_rows(y, ys, rows, count, begin, end), "%s %s %zux%zu rows [%zu,%zu) count %zu: differs from its scalar reference",
                  name, kname(p->type), rows, p->cols, begin, end, count);
            int single = 1;
            for (size_t t = 0; t < count && single; t++) {
                gt_matmul_isa(isa, p->type, p->w, p->rb, p->cols, p->act + t * p->ab, 1, tmp, 0, begin, end);
                single = memcmp(tmp + begin, y + t * rows + begin, (end - begin) * sizeof(float)) == 0;
            }
            check(single, "%s %s %zux%zu rows [%zu,%zu) count %zu: batch differs from single-token calls", name,
                  kname(p->type), rows, p->cols, begin, end, count);
        }
        // Row splits at every boundary (small problems) or a few: the halves equal one call.
        size_t step = end - begin > 12 ? (end - begin) / 5 + 1 : 1;
        size_t count = p->max_count < 9 ? p->max_count : 9;
        gt_matmul_isa(isa, p->type, p->w, p->rb, p->cols, p->act, count, y, rows, begin, end);
        for (size_t mid = begin + 1; mid < end; mid += step) {
            for (size_t i = 0; i < n; i++) tmp[i] = NAN;
            gt_matmul_isa(isa, p->type, p->w, p->rb, p->cols, p->act, count, tmp, rows, begin, mid);
            gt_matmul_isa(isa, p->type, p->w, p->rb, p->cols, p->act, count, tmp, rows, mid, end);
            check(same_rows(y, tmp, rows, count, begin, end), "%s %s %zux%zu: rows split at %zu differ from one call",
                  name, kname(p->type), rows, p->cols, mid);
        }
    }
    free(y);
    free(ys);
    free(tmp);
}

// Extreme scales (up to 65504) and NaN inputs: every path equals its reference, NaN reaches the output.
static void check_kquant_extremes(int type) {
    size_t rows = 9, cols = 512;
    kproblem p = make_kproblem(type, rows, cols, 3);
    for (size_t r = 0; r < rows; r++)
        for (size_t s = 0; s < cols / GT_KBLOCK; s++) fill_kblock(type, p.w + r * p.rb + s * kblock_bytes(type), 1);
    float y[27], ys[27];
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        gt_matmul_reference(isa, type, p.w, p.rb, cols, p.act, 3, ys, rows, 0, rows);
        gt_matmul_isa(isa, type, p.w, p.rb, cols, p.act, 3, y, rows, 0, rows);
        check(memcmp(y, ys, sizeof(y)) == 0, "%s %s: extreme scales differ from scalar", gt_isa_name(isa), kname(type));
    }
    p.x[cols + 300] = NAN;  // token 1
    gt_prepare_activations(type, p.x, cols, 3, cols, p.act);
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        gt_matmul_isa(isa, type, p.w, p.rb, cols, p.act, 3, y, rows, 0, rows);
        int nan = 1;
        for (size_t r = 0; r < rows; r++) nan &= isnan(y[rows + r]);
        check(nan, "%s %s: a NaN input must give NaN outputs", gt_isa_name(isa), kname(type));
    }
    free_kproblem(&p);
}

void check_kquant_matmul(int quick) {
    typedef struct { size_t rows, cols, begin, end, count; } shape;
    static const shape shapes[] = {
        { 1, 256, 0, 1, 17 },   { 3, 256, 1, 3, 17 },   { 5, 512, 0, 5, 10 },     { 8, 768, 0, 8, 17 },
        { 9, 1024, 2, 9, 12 },  { 17, 256, 3, 16, 17 }, { 33, 2048, 1, 32, 9 },   { 12, 4096, 0, 12, 9 },
        { 7, 4096, 1, 6, 17 },  { 40, 512, 5, 37, 17 }, { 6, 16384, 0, 6, 3 },
        // Several row chunks (16 rows of 4096 columns each on the AVX-512 path), each passed over
        // by several token groups (16 + 16 + 8 + 2 + 1).
        { 50, 4096, 3, 45, 43 },
        // More tokens than a pass of the AVX2 tiles (64) and columns in a whole and a partial
        // slice (8 + 1 super-blocks); on the AVX-512 path 4 token groups and a tail.
        { 11, 2304, 2, 11, 70 },
    };
    size_t ns = sizeof(shapes) / sizeof(shapes[0]);
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        check(gt_activation_bytes(type, 256) == gt_activation_bytes(GT_Q8, 256) && gt_activation_bytes(type, 288) == 0,
              "%s prepared inputs: the q8 layout, whole super-blocks only", kname(type));
        for (size_t s = 0; s < ns; s++) {
            if (quick && (s % 3 == 1 || shapes[s].cols > 4096)) continue;
            size_t count = quick && shapes[s].count > 9 ? 9 : shapes[s].count;
            kproblem p = make_kproblem(type, shapes[s].rows, shapes[s].cols, count);
            check_kproblem(&p, shapes[s].begin, shapes[s].end);
            if (shapes[s].begin != 0 || shapes[s].end != shapes[s].rows) check_kproblem(&p, 0, shapes[s].rows);
            free_kproblem(&p);
        }
        check_kquant_extremes(type);
    }
}
