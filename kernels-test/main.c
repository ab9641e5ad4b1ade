// Test driver for the matrix-product kernels, in plain C so that it runs anywhere the kernels
// compile: natively on x86-64 (AVX-512 VNNI, AVX2 + VNNI and AVX2 where the CPU has them, and the
// scalar path) and cross-compiled for AArch64 under
// qemu-aarch64 (NEON, NEON+dotprod and scalar paths). See scripts/test-arm.sh.
//
// Every ISA path this CPU supports is checked against the scalar reference gt_dot_scalar
// (f32 inputs, one dot product at a time) on random data:
//   - f32 / bf16: |y - ref| <= 2e-5 * sum |w x| (both sides differ only in f32 summation order;
//     each is within ~1e-6 of the exact value at these lengths, 2e-5 leaves a wide margin);
//   - q8 / q4 / q5: |y - ref| <= sum over blocks (max|x| / 254) * sum |w| (+1e-5 * sum |w x| for
//     rounding): rounding an input to the nearest of 255 levels moves it by at most half a step,
//     max|x| / 254, and nothing else differs (int8 x int8 products are exact);
//   - every SIMD path against the portable scalar path of gt_matmul with the same prepared
//     inputs: only the f32 summation order differs, |diff| <= 1e-5 * sum |w x|;
//   - a batch of `count` tokens equals `count` single-token calls bit for bit, and a row range
//     [begin, end) equals the same rows of a full call bit for bit, with nothing written outside;
//   - input preparation: block maxima map to +-127 and every value rounds within half a step;
//   - the q8 / q4 row quantizers (converter side) of every path write exactly the bytes of
//     gt_quantize_row_reference (x86-64's portable q4 path excepted: it rounds twice, see quantize.c).
//   - the tiled attention: attention_test.c (every path within a stated bound of an f64 softmax,
//     and bit-identical however its rows are batched, blocked, threaded or its positions split);
//   - the K-quant kernels (q4k / q6k): kquant_test.c (every path equals the scalar path bit for
//     bit, and both meet the q types' bound against an f64 dot product of ggml's dequantized values).
//
// Usage: kernels-test [--expect-isa NAME] [--quick] [--goldens DIR] [--write-kquant-goldens DIR]
//   --expect-isa NAME  also fail unless the automatically chosen path is NAME
//   --quick            fewer, smaller shapes (for slow emulation)
//   --goldens DIR      where the K-quant goldens are (default fixtures/goldens; see kquant.c)
//   --write-kquant-goldens DIR  only write DIR/kquant-q4k.bin and kquant-q6k.bin from
//                      DIR/kquant-input.f32 (fixtures/kquant_golden.py describes the steps)
// Prints one line per failure and a final "N passed, M failed"; exits 1 on any failure.
#include "gemma_kernels.h"
#include "gemma_quantize.h"
#include "test_support.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

void check(int ok, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= 40) {
        va_list ap;
        va_start(ap, fmt);
        printf("FAIL: ");
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float rng_float(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static const char *type_name(int type) {
    static const char *names[] = { "f32", "bf16", "q8", "q4", "q5", "q4k", "q6k" };
    return names[type];
}

void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

// Random inputs with a spread of magnitudes: some blocks tiny, some large, an occasional outlier,
// an all-zero block now and then.
void fill_inputs(float *x, size_t n) {
    for (size_t i = 0; i < n; i += 32) {
        float scale = powf(10.0f, 2.0f * rng_float());
        int zero = (rng_next() % 17) == 0;
        for (size_t j = i; j < i + 32 && j < n; j++) {
            x[j] = zero ? 0.0f : scale * rng_float();
            if (!zero && rng_next() % 61 == 0) x[j] *= 20.0f;
        }
    }
}

static void check_prepare(size_t cols) {
    size_t n = cols;
    float *x = xmalloc(n * sizeof(float));
    fill_inputs(x, n);
    size_t bytes = gt_activation_bytes(GT_Q8, cols);
    check(bytes % 64 == 0 && bytes >= cols + cols / 32 * 8, "activation bytes %zu for %zu cols", bytes, cols);
    check(gt_activation_bytes(GT_Q4, cols + 1) == 0, "q4 activation bytes for a partial block must be 0");
    uint8_t *act = xmalloc(bytes);
    gt_prepare_activations(GT_Q4, x, cols, 1, cols, act);
    size_t nb = cols / 32;
    const int8_t *q = (const int8_t *)act;
    const float *d = (const float *)(act + nb * 32);
    const int32_t *s = (const int32_t *)(act + nb * 36);
    int ok = 1;
    for (size_t b = 0; b < nb && ok; b++) {
        float amax = 0;
        int32_t sum = 0, qmax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        for (int i = 0; i < 32; i++) {
            sum += q[b * 32 + i];
            qmax = abs(q[b * 32 + i]) > qmax ? abs(q[b * 32 + i]) : qmax;
            float err = fabsf(x[b * 32 + i] - d[b] * q[b * 32 + i]);
            if (err > amax / 254.0f * 1.0001f + 1e-30f) ok = 0;
        }
        if (-2 * sum != s[b]) ok = 0;  // stored as -2 x the sum
        if (amax > 0 && qmax != 127) ok = 0;
        if (fabsf(d[b] - amax / 127.0f) > 1e-6f * amax) ok = 0;
    }
    check(ok, "prepared q8 inputs for %zu cols", cols);
    // f32 / bf16 inputs are copied unchanged.
    uint8_t *fact = xmalloc(gt_activation_bytes(GT_BF16, cols));
    gt_prepare_activations(GT_BF16, x, cols, 1, cols, fact);
    check(memcmp(fact, x, cols * sizeof(float)) == 0, "prepared f32 inputs for %zu cols", cols);
    free(x);
    free(act);
    free(fact);
}

typedef struct {
    int type;
    size_t rows, cols, row_bytes, max_count;
    uint8_t *w;       // stored weights
    float *wf;        // dequantized weights
    float *x;         // max_count input vectors, cols apart
    uint8_t *act;     // prepared inputs
    float *ref;       // gt_dot_scalar: ref[t * rows + r]
    double *mag;      // sum |w x| per (t, r)
    double *qbound;   // input-rounding bound per (t, r) (q types)
} problem;

static problem make_problem(int type, size_t rows, size_t cols, size_t max_count) {
    problem p = { type, rows, cols, gt_row_bytes(type, cols), max_count, 0, 0, 0, 0, 0, 0, 0 };
    p.w = xmalloc(rows * p.row_bytes);
    p.wf = xmalloc(rows * cols * sizeof(float));
    float *tmp = xmalloc(cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        float scale = 0.02f + (float)(rng_next() % 100) / 100.0f;
        for (size_t c = 0; c < cols; c++) tmp[c] = scale * rng_float();
        gt_quantize_row(type, tmp, cols, p.w + r * p.row_bytes);
        gt_dequantize_row(type, p.w + r * p.row_bytes, cols, p.wf + r * cols);
    }
    free(tmp);
    p.x = xmalloc(max_count * cols * sizeof(float));
    fill_inputs(p.x, max_count * cols);
    size_t ab = gt_activation_bytes(type, cols);
    p.act = xmalloc(max_count * ab);
    gt_prepare_activations(type, p.x, cols, max_count, cols, p.act);
    p.ref = xmalloc(max_count * rows * sizeof(float));
    p.mag = xmalloc(max_count * rows * sizeof(double));
    p.qbound = xmalloc(max_count * rows * sizeof(double));
    for (size_t t = 0; t < max_count; t++) {
        const float *xt = p.x + t * cols;
        for (size_t r = 0; r < rows; r++) {
            const float *wr = p.wf + r * cols;
            p.ref[t * rows + r] = gt_dot_scalar(type, p.w + r * p.row_bytes, xt, cols);
            double mag = 0, qb = 0;
            for (size_t c = 0; c < cols; c++) mag += fabs((double)wr[c] * xt[c]);
            if (type == GT_Q8 || type == GT_Q4 || type == GT_Q5) {
                for (size_t b = 0; b < cols / 32; b++) {
                    double amax = 0, wsum = 0;
                    for (int i = 0; i < 32; i++) {
                        amax = fmax(amax, fabs(xt[b * 32 + i]));
                        wsum += fabs(wr[b * 32 + i]);
                    }
                    qb += amax / 254.0 * wsum;
                }
            }
            p.mag[t * rows + r] = mag;
            p.qbound[t * rows + r] = qb;
        }
    }
    return p;
}

static void free_problem(problem *p) {
    free(p->w);
    free(p->wf);
    free(p->x);
    free(p->act);
    free(p->ref);
    free(p->mag);
    free(p->qbound);
}

// Runs every supported path on rows [begin, end) for counts 1..max_count.
static void check_problem(const problem *p, size_t begin, size_t end) {
    size_t rows = p->rows, cols = p->cols;
    size_t ab = gt_activation_bytes(p->type, cols);
    size_t n = p->max_count * rows;
    float *y = xmalloc(n * sizeof(float));
    float *yscalar = xmalloc(n * sizeof(float));
    float *single = xmalloc(rows * sizeof(float));
    int quant = p->type == GT_Q8 || p->type == GT_Q4 || p->type == GT_Q5;
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        for (size_t count = 1; count <= p->max_count; count++) {
            for (size_t i = 0; i < n; i++) y[i] = NAN;
            gt_matmul_isa(isa, p->type, p->w, p->row_bytes, cols, p->act, count, y, rows, begin, end);
            gt_matmul_isa(GT_ISA_SCALAR, p->type, p->w, p->row_bytes, cols, p->act, count, yscalar, rows, begin, end);
            int ok_ref = 1, ok_scalar = 1, ok_outside = 1, ok_single = 1;
            double worst = 0;
            for (size_t t = 0; t < p->max_count; t++) {
                for (size_t r = 0; r < rows; r++) {
                    size_t k = t * rows + r;
                    if (t >= count || r < begin || r >= end) {
                        if (!isnan(y[k])) ok_outside = 0;
                        continue;
                    }
                    double mag = p->mag[k];
                    double tol = quant ? p->qbound[k] * 1.0001 + 1e-5 * mag : 2e-5 * mag;
                    double err = fabs((double)y[k] - p->ref[k]);
                    if (!(err <= tol + 1e-30)) ok_ref = 0;
                    if (tol > 0 && err / tol > worst) worst = err / tol;
                    if (!(fabs((double)y[k] - yscalar[k]) <= 1e-5 * mag + 1e-30)) ok_scalar = 0;
                }
            }
            // Batched = one token at a time, bit for bit.
            for (size_t t = 0; t < count && ok_single; t++) {
                gt_matmul_isa(isa, p->type, p->w, p->row_bytes, cols, p->act + t * ab, 1, single, 0, begin, end);
                if (memcmp(single + begin, y + t * rows + begin, (end - begin) * sizeof(float)) != 0) ok_single = 0;
            }
            // avx2+vnni and avx512+vnni compute the same int32 and f32 lanes as avx2: bit-identical results.
            int ok_twin = 1;
            if (isa == GT_ISA_AVX2_VNNI || isa == GT_ISA_AVX512_VNNI) {
                gt_matmul_isa(GT_ISA_AVX2, p->type, p->w, p->row_bytes, cols, p->act, count, yscalar, rows, begin, end);
                for (size_t t = 0; t < count; t++)
                    if (memcmp(y + t * rows + begin, yscalar + t * rows + begin, (end - begin) * sizeof(float))) ok_twin = 0;
            }
            const char *name = gt_isa_name(isa);
            check(ok_twin, "%s %s %zux%zu rows [%zu,%zu) count %zu: differs from avx2", name, type_name(p->type),
                  rows, cols, begin, end, count);
            check(ok_ref, "%s %s %zux%zu rows [%zu,%zu) count %zu: vs gt_dot_scalar (worst err/tol %.3g)",
                  name, type_name(p->type), rows, cols, begin, end, count, worst);
            check(ok_scalar, "%s %s %zux%zu rows [%zu,%zu) count %zu: vs the scalar path",
                  name, type_name(p->type), rows, cols, begin, end, count);
            check(ok_outside, "%s %s %zux%zu rows [%zu,%zu) count %zu: wrote outside its rows/tokens",
                  name, type_name(p->type), rows, cols, begin, end, count);
            check(ok_single, "%s %s %zux%zu rows [%zu,%zu) count %zu: batch differs from single-token calls",
                  name, type_name(p->type), rows, cols, begin, end, count);
        }
        // Split rows: two halves at an odd boundary equal one call.
        if (end - begin >= 2) {
            size_t count = p->max_count < 5 ? p->max_count : 5;
            size_t mid = begin + (end - begin) / 2 + ((end - begin) / 2 % 2 == 0);
            if (mid >= end) mid = end - 1;
            gt_matmul_isa(isa, p->type, p->w, p->row_bytes, cols, p->act, count, y, rows, begin, end);
            for (size_t i = 0; i < n; i++) yscalar[i] = NAN;
            gt_matmul_isa(isa, p->type, p->w, p->row_bytes, cols, p->act, count, yscalar, rows, begin, mid);
            gt_matmul_isa(isa, p->type, p->w, p->row_bytes, cols, p->act, count, yscalar, rows, mid, end);
            int same = 1;
            for (size_t t = 0; t < count; t++)
                if (memcmp(y + t * rows + begin, yscalar + t * rows + begin, (end - begin) * sizeof(float))) same = 0;
            check(same, "%s %s %zux%zu: rows split at %zu differ from one call", gt_isa_name(isa),
                  type_name(p->type), rows, cols, mid);
        }
    }
    free(y);
    free(yscalar);
    free(single);
}

// Non-finite inputs reach the outputs as NaN / inf rather than vanishing in quantization.
// (The K types' kernels are tested with their own shapes in their own file.)
static void check_nonfinite(void) {
    for (int type = 0; type <= GT_Q5; type++) {
        problem p = make_problem(type, 5, 64, 1);
        p.x[40] = NAN;
        gt_prepare_activations(type, p.x, 64, 1, 64, p.act);
        float y[5];
        for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
            if (!gt_isa_supported(isa)) continue;
            gt_matmul_isa(isa, type, p.w, p.row_bytes, 64, p.act, 1, y, 5, 0, 5);
            int all_nan = 1;
            for (int r = 0; r < 5; r++) all_nan &= isnan(y[r]);
            check(all_nan, "%s %s: a NaN input must give NaN outputs", gt_isa_name(isa), type_name(type));
        }
        free_problem(&p);
    }
}

// Rows of zero length give zeros; quantized rows that are not whole blocks are refused (y untouched).
static void check_degenerate(void) {
    float y[6] = { 1, 1, 1, 1, 1, 1 };
    float act[16] = { 0 };
    uint8_t w[64] = { 0 };
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        for (int i = 0; i < 6; i++) y[i] = 1;
        gt_matmul_isa(isa, GT_BF16, w, 0, 0, act, 2, y, 3, 0, 3);
        int zeros = 1;
        for (int i = 0; i < 6; i++) zeros &= y[i] == 0.0f;
        check(zeros, "%s: zero-length rows must give zeros", gt_isa_name(isa));
        gt_matmul_isa(isa, GT_Q4, w, 18, 40, act, 1, y, 3, 0, 3);
        check(y[0] == 0.0f, "%s: q4 rows of 40 must be refused", gt_isa_name(isa));
        gt_matmul_isa(isa, GT_Q5, w, 22, 40, act, 1, y, 3, 0, 3);
        check(y[0] == 0.0f, "%s: q5 rows of 40 must be refused", gt_isa_name(isa));
        gt_matmul_isa(isa, GT_Q4K, w, 18, 96, act, 1, y, 3, 0, 3);
        check(y[0] == 0.0f, "%s: q4k rows of 96 (not whole super-blocks) must be refused", gt_isa_name(isa));
        gt_matmul_isa(isa, GT_Q6K, w, 18, 288, act, 1, y, 3, 0, 3);
        check(y[0] == 0.0f, "%s: q6k rows of 288 must be refused", gt_isa_name(isa));
    }
}

// The row quantizers (converter side): every path against gt_quantize_row_reference, bit for
// bit, on blocks that probe the q4 search's corners: zeros, all-equal values, +-ties for the
// largest magnitude, values on the q4 grid, an outlier, huge and tiny (subnormal) magnitudes,
// and random rows of lengths that leave 1..7 blocks after the SIMD path's groups of eight.
static void fill_quantize_block(float *x, int kind) {
    float scale = powf(10.0f, (float)(rng_next() % 1600) / 100.0f - 10.0f);  // 1e-10 .. 1e6
    for (int i = 0; i < GT_BLOCK; i++) {
        float v = rng_float() * scale;
        switch (kind) {
        case 0: v = 0.0f; break;
        case 1: v = scale; break;
        case 2: v = -scale; break;
        case 3: v = (rng_next() & 1) ? scale : -scale; break;
        case 4: v = (float)((int)(rng_next() % 16) - 8) * scale; break;
        case 5: v = i == 7 ? 30.0f * scale : v; break;
        case 6: v = rng_float() * 3e37f; break;
        case 7: v = rng_float() * 1e-38f; break;
        case 8: v = i % 2 ? 0.0f : -0.0f; break;
        case 9: v = i == 31 ? -scale : v * 1e-3f; break;
        default: break;
        }
        x[i] = v;
    }
}

// The rounding error of prepared inputs (gt_activation_residuals, the precise-inputs mode) on
// the special blocks above: at most half a step in a finite block, x itself in a block below the
// cut-off (scale 0), NaN in a NaN / infinity block; and the error prepared in turn (unless it is
// below the cut-off itself) brings d q + d2 q2 to within a step / 254 of x (in theory half that),
// where d q alone is within half a step.
static void check_residuals(const float *x, size_t cols, size_t count, const uint8_t *act) {
    const size_t nb = cols / GT_BLOCK, bytes = gt_activation_bytes(GT_Q8, cols);
    float *r = xmalloc(cols * count * sizeof(float));
    uint8_t *act2 = xmalloc(bytes * count);
    gt_activation_residuals(GT_Q8, x, cols, 0, count, cols, act, r, cols);
    gt_prepare_activations_isa(GT_ISA_SCALAR, GT_Q8, r, cols, 0, count, cols, act2);
    size_t bad = 0, bad_sum = 0;
    for (size_t t = 0; t < count; t++)
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *o = act + t * bytes, *o2 = act2 + t * bytes;
            const float dv = ((const float *)(o + nb * GT_BLOCK))[b], d2 = ((const float *)(o2 + nb * GT_BLOCK))[b];
            for (size_t i = b * GT_BLOCK; i < (b + 1) * GT_BLOCK; i++) {
                const float xv = x[t * cols + i], rv = r[t * cols + i];
                const int8_t q = ((const int8_t *)o)[i], q2 = ((const int8_t *)o2)[i];
                if (isnan(dv)) { bad += !isnan(rv); continue; }
                if (dv == 0.0f) { bad += rv != xv; continue; }
                if (!(fabsf(rv) <= dv / 2 * 1.00001f)) bad++;
                if (d2 == 0.0f) continue;  // an error below the 1e-30 cut-off is dropped, as any such block
                const double rebuilt = (double)dv * q + (double)d2 * q2;
                if (!(fabs(rebuilt - xv) <= dv / 254.0 * 1.0001 + 1e-37)) bad_sum++;
            }
        }
    check(bad == 0, "input residuals: %zu values beyond half a step (or not x / NaN where defined)", bad);
    check(bad_sum == 0, "input residuals: %zu values not rebuilt to a step / 254", bad_sum);
    free(r);
    free(act2);
}

// Every path's input preparation against the scalar one, byte for byte: blocks of every kind
// above, plus ties (x * 127 / amax exactly k + 0.5), NaN, +-infinity, magnitudes around the
// 1e-30 cut-off, and denormals; prepared whole and as two token ranges (as threads split them).
static void check_prepare_paths(int quick) {
    const size_t cols = 256, count = quick ? 64 : 512, nb = cols / GT_BLOCK;
    float *x = xmalloc(cols * count * sizeof(float));
    for (size_t b = 0; b < nb * count; b++) {
        float *xb = x + b * GT_BLOCK;
        const int kind = (int)(b % 16);
        fill_quantize_block(xb, kind < 11 ? kind : 10);
        if (kind == 11) {  // ties: amax 127 gives id 1, so t = x
            for (int i = 0; i < GT_BLOCK; i++) xb[i] = (float)((int)(rng_next() % 254) - 127) + 0.5f;
            xb[3] = 127.0f;
        }
        if (kind == 12) xb[rng_next() % GT_BLOCK] = (b & 16) ? NAN : -NAN;
        if (kind == 13) xb[rng_next() % GT_BLOCK] = (b & 16) ? INFINITY : -INFINITY;
        if (kind == 14) {  // around the cut-off: amax just below or just above 1e-30
            for (int i = 0; i < GT_BLOCK; i++) xb[i] = rng_float() * 1e-30f;
            xb[5] = (b & 16) ? 1.0000001e-30f : 0.9999999e-30f;
        }
        if (kind == 15)  // denormals next to a normal amax: products far below a step
            for (int i = 0; i < GT_BLOCK; i++) xb[i] = i == 9 ? 1e-20f : rng_float() * 1e-39f;
    }
    const size_t bytes = gt_activation_bytes(GT_Q8, cols);
    uint8_t *ref = xmalloc(bytes * count), *got = xmalloc(bytes * count);
    gt_prepare_activations_isa(GT_ISA_SCALAR, GT_Q8, x, cols, 0, count, cols, ref);
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        memset(got, 0xA5, bytes * count);
        gt_prepare_activations_isa(isa, GT_Q8, x, cols, 0, count / 3, cols, got);
        gt_prepare_activations_isa(isa, GT_Q8, x, cols, count / 3, count, cols, got);
        size_t bad = 0;
        for (size_t t = 0; t < count; t++)  // the bytes between the vector and its 64-byte stride are padding
            bad += memcmp(got + t * bytes, ref + t * bytes, nb * (GT_BLOCK + 8)) != 0;
        check(bad == 0, "%s prepared inputs equal scalar's (%zu of %zu vectors differ)", gt_isa_name(isa), bad, count);
    }
    // And the reference follows the definition on the special blocks: a zero block (kind 0) has
    // scale 0, a NaN / infinity block (12, 13) a NaN scale, both all-zero q and sum; a tie block
    // (11) rounds every k + 0.5 to the even neighbour.
    int special_ok = 1;
    for (size_t b = 0; b < nb * count; b++) {
        const int kind = (int)(b % 16);
        const uint8_t *o = ref + b / nb * bytes;
        const size_t j = b % nb;
        const int8_t *q = (const int8_t *)o + j * GT_BLOCK;
        const float dv = ((const float *)(o + nb * GT_BLOCK))[j];
        const int32_t cv = ((const int32_t *)(o + nb * (GT_BLOCK + 4)))[j];
        int zero_q = 1;
        for (int i = 0; i < GT_BLOCK; i++) zero_q &= q[i] == 0;
        if (kind == 0 && !(dv == 0.0f && zero_q && cv == 0)) special_ok = 0;
        if ((kind == 12 || kind == 13) && !(isnan(dv) && zero_q && cv == 0)) special_ok = 0;
        if (kind == 11)
            for (int i = 0; i < GT_BLOCK; i++) {
                const float xv = x[b * GT_BLOCK + (size_t)i];
                const float lo = floorf(xv);
                const float even = fmodf(lo, 2.0f) == 0.0f ? lo : lo + 1.0f;
                if (xv != 127.0f && q[i] != (int8_t)even) special_ok = 0;
            }
    }
    check(special_ok, "prepared inputs: zero, non-finite and tie blocks as defined");
    check_residuals(x, cols, count, ref);
    free(x);
    free(ref);
    free(got);
}

static void check_quantize(int quick) {
    static const size_t lengths[] = { 32, 64, 96, 224, 256, 288, 480, 2048, 16384 + 32 * 5 };
    size_t nl = sizeof(lengths) / sizeof(lengths[0]) - (quick ? 1 : 0);
    for (size_t li = 0; li < nl; li++) {
        size_t n = lengths[li];
        float *x = xmalloc(n * sizeof(float));
        for (int round = 0; round < (quick ? 2 : 8); round++) {
            for (size_t b = 0; b < n / GT_BLOCK; b++) fill_quantize_block(x + b * GT_BLOCK, (int)(rng_next() % 16));
            for (int type = GT_Q8; type <= GT_Q4; type++) {
                size_t bytes = gt_row_bytes(type, n);
                uint8_t *ref = xmalloc(bytes), *out = xmalloc(bytes);
                gt_quantize_row_reference(type, x, n, ref);
                for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
                    if (!gt_isa_supported(isa)) continue;
#if defined(__x86_64__)
                    // x86-64 without FMA rounds the q4 search's multiply-adds twice (see quantize.c).
                    if (isa == GT_ISA_SCALAR && type == GT_Q4) continue;
#endif
                    memset(out, 0xAA, bytes);
                    gt_quantize_row_isa(isa, type, x, n, out);
                    size_t first = bytes;
                    for (size_t i = 0; i < bytes && first == bytes; i++)
                        if (out[i] != ref[i]) first = i;
                    check(first == bytes, "%s %s quantization of %zu values differs from the reference at byte %zu",
                          gt_isa_name(isa), type_name(type), n, first);
                }
                free(ref);
                free(out);
            }
        }
        free(x);
    }
}

static void check_selection(const char *expect) {
    const char *chosen = gt_kernel_isa();
    printf("chosen path: %s; supported:", chosen);
    for (int isa = 0; isa < GT_ISA_COUNT; isa++)
        if (gt_isa_supported(isa)) printf(" %s", gt_isa_name(isa));
    printf("\n");
    if (expect) check(strcmp(chosen, expect) == 0, "chosen path %s, expected %s", chosen, expect);
    check(gt_isa_supported(GT_ISA_SCALAR), "scalar is always supported");
    check(gt_isa_from_name("scalar") == GT_ISA_SCALAR && gt_isa_from_name("nope") == -1, "isa names");
    int before = gt_kernel_isa_id();
    check(gt_set_kernel_isa(GT_ISA_SCALAR) == GT_ISA_SCALAR && strcmp(gt_kernel_isa(), "scalar") == 0, "force scalar");
    int unsupported = -1;
    for (int isa = 0; isa < GT_ISA_COUNT; isa++)
        if (!gt_isa_supported(isa)) unsupported = isa;
    if (unsupported >= 0)
        check(gt_set_kernel_isa(unsupported) == -1 && gt_kernel_isa_id() == GT_ISA_SCALAR,
              "selecting unsupported %s must fail", gt_isa_name(unsupported));
    check(gt_set_kernel_isa(before) == before, "restore the chosen path");
    // gt_matmul follows the selection.
    problem p = make_problem(GT_Q4, 9, 96, 2);
    float a[18], b[18];
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        gt_set_kernel_isa(isa);
        gt_matmul(GT_Q4, p.w, p.row_bytes, 96, p.act, 2, a, 9, 0, 9);
        gt_matmul_isa(isa, GT_Q4, p.w, p.row_bytes, 96, p.act, 2, b, 9, 0, 9);
        check(memcmp(a, b, sizeof(a)) == 0, "gt_matmul uses the selected path %s", gt_isa_name(isa));
    }
    gt_set_kernel_isa(before);
    free_problem(&p);
}

int main(int argc, char **argv) {
    const char *expect = NULL, *goldens = "fixtures/goldens";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--expect-isa") == 0 && i + 1 < argc) expect = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--goldens") == 0 && i + 1 < argc) goldens = argv[++i];
        else if (strcmp(argv[i], "--write-kquant-goldens") == 0 && i + 1 < argc) return write_kquant_goldens(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--expect-isa NAME] [--quick] [--goldens DIR] [--write-kquant-goldens DIR]\n", argv[0]);
            return 2;
        }
    }
    check_selection(expect);
    size_t prep_cols[] = { 32, 64, 2080, 16416 };
    for (size_t i = 0; i < sizeof(prep_cols) / sizeof(prep_cols[0]); i++) check_prepare(prep_cols[i]);
    check_prepare_paths(quick);
    check_nonfinite();
    check_degenerate();
    check_quantize(quick);
    check_kquant(quick, goldens);

    // Shapes: (rows, cols, row range). Quantized types need whole blocks of 32; f32 / bf16 rows
    // may have any length, so they also get odd lengths.
    typedef struct { size_t rows, cols, begin, end; } shape;
    static const shape qshapes[] = {
        { 1, 32, 0, 1 }, { 3, 64, 1, 3 }, { 7, 96, 2, 7 }, { 17, 160, 3, 16 }, { 64, 2080, 5, 64 },
        { 9, 16416, 1, 8 }, { 17, 16384 + 32 * 3, 0, 17 },
    };
    static const shape fshapes[] = {
        { 1, 1, 0, 1 }, { 3, 7, 0, 3 }, { 7, 33, 1, 7 }, { 17, 95, 3, 17 }, { 5, 96, 0, 5 },
        { 64, 2081, 7, 60 }, { 9, 16417, 1, 9 },
    };
    size_t nq = sizeof(qshapes) / sizeof(qshapes[0]), nf = sizeof(fshapes) / sizeof(fshapes[0]);
    if (quick) { nq -= 1; nf -= 1; }
    for (int type = 0; type <= GT_Q5; type++) {  // K-quants: check_kquant
        int quant = type == GT_Q8 || type == GT_Q4 || type == GT_Q5;
        const shape *shapes = quant ? qshapes : fshapes;
        size_t ns = quant ? nq : nf;
        for (size_t s = 0; s < ns; s++) {
            size_t max_count = shapes[s].cols > 4096 ? (quick ? 5 : 9) : 9;
            problem p = make_problem(type, shapes[s].rows, shapes[s].cols, max_count);
            check_problem(&p, shapes[s].begin, shapes[s].end);
            if (shapes[s].begin != 0 || shapes[s].end != shapes[s].rows) check_problem(&p, 0, shapes[s].rows);
            free_problem(&p);
        }
    }
    check_kquant_matmul(quick);
    check_f16_store(quick);
    check_attention(quick);
    check_pool_sync(quick);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
