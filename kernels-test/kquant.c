// Tests of the K-quant storage types GT_Q4K and GT_Q6K (ggml's Q4_K / Q6_K super-blocks):
//   - row sizes and prepared-input sizes;
//   - dequantization of hand-built blocks (random bytes) against the layout as documented in
//     gemma_kernels.h, decoded here independently, bit for bit;
//   - the quantizers: every path of gt_quantize_row_isa writes exactly the bytes of
//     gt_quantize_row_reference, on rows that probe the searches' corners (zeros, -0, constant
//     rows, sub-blocks of one sign, outliers, tiny and huge magnitudes, values on a grid);
//   - quantize -> dequantize error: relative RMS below a stated bound on Gaussian-like rows, and
//     below that of naive rounding (min/max or absmax scales kept in f32, no search);
//   - gt_dot_scalar / gt_matvec_scalar against a double-precision dot of the dequantized row;
//   - gt_convert_row from bf16 equals widening then gt_quantize_row;
//   - gt_matmul on K rows: never crashes; whatever it writes (a path may have no K kernel yet)
//     is within the input-rounding bound of gt_dot_scalar;
//   - goldens (fixtures/kquant_golden.py): the committed inputs quantize to exactly the committed
//     bytes (which are also ggml's), and those dequantize to exactly gguf-py's floats.
#include "gemma_kernels.h"
#include "gemma_quantize.h"
#include "test_support.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float f16(const uint8_t *p) { return gt_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static size_t kblock_bytes(int type) { return type == GT_Q4K ? GT_Q4K_BLOCK_BYTES : GT_Q6K_BLOCK_BYTES; }
static const char *kname(int type) { return type == GT_Q4K ? "q4k" : "q6k"; }

static void check_sizes(void) {
    check(gt_row_bytes(GT_Q4K, 256) == 144 && gt_row_bytes(GT_Q4K, 2048) == 8 * 144, "q4k row bytes");
    check(gt_row_bytes(GT_Q6K, 256) == 210 && gt_row_bytes(GT_Q6K, 16384) == 64 * 210, "q6k row bytes");
    check(gt_row_bytes(GT_Q4K, 32) == 0 && gt_row_bytes(GT_Q6K, 288) == 0 && gt_row_bytes(GT_Q4K, 255) == 0,
          "K rows that are not whole super-blocks have no size");
    check(gt_row_bytes(GT_Q4K, 0) == 0 && gt_row_bytes(7, 256) == 0, "K row bytes: empty rows, unknown type");
    check(gt_activation_bytes(GT_Q4K, 2048) == gt_activation_bytes(GT_Q8, 2048) &&
          gt_activation_bytes(GT_Q6K, 256) == gt_activation_bytes(GT_Q4, 256), "K prepared inputs are q8's");
    check(gt_activation_bytes(GT_Q4K, 288) == 0 && gt_activation_bytes(GT_Q6K, 32) == 0,
          "K prepared inputs need whole super-blocks");
}

// A random f16 of moderate magnitude (|v| in 2^-14 .. 2^2, either sign when `sign`).
static uint16_t random_half(int sign) {
    float v = ldexpf(0.5f + 0.5f * fabsf(rng_float()), (int)(rng_next() % 16) - 14);
    if (sign && (rng_next() & 1)) v = -v;
    return gt_f32_to_f16(v);
}

// The layouts as gemma_kernels.h states them, decoded value by value.
static float q4k_value(const uint8_t *b, int v) {
    int j = v / 32;  // sub-block
    const uint8_t *s = b + 4;
    int sc, m;
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) + 16 * (s[j - 4] >> 6);
        m = (s[j + 4] >> 4) + 16 * (s[j] >> 6);
    }
    int g = v / 64, within = v % 64;
    int byte = b[16 + 32 * g + within % 32];
    int q = within < 32 ? byte & 15 : byte >> 4;
    float ds = f16(b) * (float)sc, dm = f16(b + 2) * (float)m;
    return ds * (float)q - dm;
}

static float q6k_value(const uint8_t *b, int v) {
    int h = v / 128, k = (v % 128) / 32, l = v % 32;
    int lo = b[64 * h + 32 * (k & 1) + l];
    lo = k < 2 ? lo & 15 : lo >> 4;
    int hi = (b[128 + 32 * h + l] >> (2 * k)) & 3;
    int q = lo + 16 * hi;
    float ds = f16(b + 208) * (float)(int8_t)b[192 + v / 16];
    return ds * (float)(q - 32);
}

static void check_dequantize_layout(void) {
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        size_t bb = kblock_bytes(type);
        int nb = 3, ok = 1, first = -1;
        uint8_t *w = xmalloc(nb * bb);
        for (int rep = 0; rep < 20; rep++) {
            for (size_t i = 0; i < nb * bb; i++) w[i] = (uint8_t)rng_next();
            for (int b = 0; b < nb; b++) {
                uint8_t *blk = w + b * bb;
                uint16_t d = random_half(type == GT_Q6K), dmin = random_half(0);
                if (type == GT_Q4K) {
                    memcpy(blk, &d, 2);
                    memcpy(blk + 2, &dmin, 2);
                } else {
                    memcpy(blk + 208, &d, 2);
                }
            }
            float y[3 * 256];
            gt_dequantize_row(type, w, nb * 256, y);
            for (int b = 0; b < nb; b++) {
                for (int v = 0; v < 256; v++) {
                    float want = type == GT_Q4K ? q4k_value(w + b * bb, v) : q6k_value(w + b * bb, v);
                    if (memcmp(&want, &y[b * 256 + v], 4) != 0 && ok) { ok = 0; first = b * 256 + v; }
                }
            }
        }
        check(ok, "%s dequantization of hand-built blocks differs from the documented layout at value %d", kname(type), first);
        free(w);
    }
}

// Rows that probe the searches: kind 0..15 per super-block (sub-blocks may differ).
static void fill_kind(float *x, int kind) {
    float scale = powf(10.0f, (float)(rng_next() % 1200) / 100.0f - 8.0f);  // 1e-8 .. 1e4
    for (int i = 0; i < 256; i++) {
        float g = (rng_float() + rng_float() + rng_float()) * scale;  // roughly Gaussian
        float v;
        switch (kind) {
        case 0: v = 0.0f; break;
        case 1: v = (i / 16) % 2 ? -0.0f : 0.0f; break;
        case 2: v = scale; break;                                   // constant positive
        case 3: v = -scale; break;                                  // constant negative
        case 4: v = fabsf(g); break;                                // one sign per row
        case 5: v = -fabsf(g); break;
        case 6: v = i % 37 == 5 ? 40.0f * g : g; break;            // outliers
        case 7: v = (float)((int)(rng_next() % 16) - 8) * scale; break;  // on a grid
        case 8: v = g * 1e-30f; break;                              // tiny, some subnormal
        case 9: v = rng_float() * 1e6f; break;                      // large (f16 scales still finite)
        case 10: v = rng_float() * 3e37f; break;                    // huge: saturated scales
        case 11: v = (i / 32) % 3 == 0 ? 0.0f : g; break;          // zero sub-blocks among others
        case 12: v = (i / 16) % 5 == 0 ? g * 1e-6f : g; break;     // sub-blocks far below the rest
        case 13: v = i % 16 == 0 ? scale : (i % 16 == 1 ? -scale : 0.5f * g); break;  // +-ties for max
        default: v = g; break;
        }
        x[i] = v;
    }
}

static void check_quantize_paths(int quick) {
    static const size_t lengths[] = { 256, 512, 768, 2048, 256 * 9, 16384 };
    size_t nl = sizeof(lengths) / sizeof(lengths[0]) - (quick ? 1 : 0);
    for (size_t li = 0; li < nl; li++) {
        size_t n = lengths[li];
        float *x = xmalloc(n * sizeof(float));
        for (int round = 0; round < (quick ? 2 : 10); round++) {
            for (size_t b = 0; b < n / 256; b++) fill_kind(x + 256 * b, (int)(rng_next() % 18));
            for (int type = GT_Q4K; type <= GT_Q6K; type++) {
                size_t bytes = gt_row_bytes(type, n);
                uint8_t *ref = xmalloc(bytes), *out = xmalloc(bytes);
                gt_quantize_row_reference(type, x, n, ref);
                for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
                    if (!gt_isa_supported(isa)) continue;
                    memset(out, 0xAA, bytes);
                    gt_quantize_row_isa(isa, type, x, n, out);
                    size_t first = bytes;
                    for (size_t i = 0; i < bytes && first == bytes; i++)
                        if (out[i] != ref[i]) first = i;
                    check(first == bytes, "%s %s quantization of %zu values differs from the reference at byte %zu",
                          gt_isa_name(isa), kname(type), n, first);
                }
                memset(out, 0xAA, bytes);
                gt_quantize_row(type, x, n, out);
                check(memcmp(out, ref, bytes) == 0, "gt_quantize_row %s differs from the reference", kname(type));
                // Every stored value is finite (huge inputs saturate the f16 scales).
                float *y = xmalloc(n * sizeof(float));
                gt_dequantize_row(type, ref, n, y);
                int finite = 1;
                for (size_t i = 0; i < n; i++) finite &= isfinite(y[i]) != 0;
                check(finite, "%s: dequantized values must be finite", kname(type));
                free(y);
                free(ref);
                free(out);
            }
        }
        free(x);
    }
    // Zero rows are all-zero bytes but for Q4_K's dmin... both give exact zeros back.
    float z[256] = { 0 }, y[256];
    uint8_t blk[256];
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        gt_quantize_row(type, z, 256, blk);
        gt_dequantize_row(type, blk, 256, y);
        int zeros = 1;
        for (int i = 0; i < 256; i++) zeros &= y[i] == 0.0f;
        check(zeros, "%s: a zero row must come back as zeros", kname(type));
    }
}

// Naive quantization with f32 scales (no search, no scale rounding): Q4_K-like min/max per 32,
// Q6_K-like absmax per 16. Returns the squared error.
static double naive_error(int type, const float *x, size_t n) {
    double err = 0;
    size_t sub = type == GT_Q4K ? 32 : 16;
    for (size_t b = 0; b < n; b += sub) {
        float mn = 0, mx = 0, amax = 0, vmax = 0;
        mn = mx = x[b];
        for (size_t i = b; i < b + sub; i++) {
            mn = fminf(mn, x[i]);
            mx = fmaxf(mx, x[i]);
            if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
        }
        mn = fminf(mn, 0.0f);
        for (size_t i = b; i < b + sub; i++) {
            double y;
            if (type == GT_Q4K) {
                double s = (mx - mn) / 15.0;
                double q = s > 0 ? fmin(15, fmax(0, nearbyint((x[i] - mn) / s))) : 0;
                y = s * q + mn;
            } else {
                double d = vmax / -32.0;
                double q = d != 0 ? fmin(31, fmax(-32, nearbyint(x[i] / d))) : 0;
                y = d * q;
            }
            err += (x[i] - y) * (x[i] - y);
        }
    }
    return err;
}

static void check_quantize_error(int quick) {
    size_t n = quick ? 2048 : 16384;
    int rows = quick ? 4 : 16;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    uint8_t *q = xmalloc(gt_row_bytes(GT_Q6K, n));
    // Bounds: relative RMS of Gaussian-like rows (sum of three uniforms) with a few outliers,
    // as weight matrices are; measured 0.074 (q4k) and 0.0194 (q6k), bounds with a margin.
    const double bound[2] = { 0.085, 0.022 };
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        double err = 0, ref = 0, naive = 0;
        for (int r = 0; r < rows; r++) {
            float s = 0.01f + 0.1f * fabsf(rng_float());
            for (size_t i = 0; i < n; i++) {
                x[i] = (rng_float() + rng_float() + rng_float()) * s;
                if (rng_next() % 500 == 0) x[i] *= 8.0f;
            }
            gt_quantize_row(type, x, n, q);
            gt_dequantize_row(type, q, n, y);
            gt_error_sums(x, y, n, &err, &ref);
            naive += naive_error(type, x, n);
        }
        double rel = sqrt(err / ref), rel_naive = sqrt(naive / ref);
        printf("%s: relative RMS error %.5f (naive rounding with f32 scales: %.5f)\n", kname(type), rel, rel_naive);
        check(rel < bound[type - GT_Q4K], "%s relative RMS error %.5f above %.3f", kname(type), rel, bound[type - GT_Q4K]);
        check(rel < rel_naive, "%s relative RMS error %.5f not below naive rounding's %.5f", kname(type), rel, rel_naive);
    }
    free(x);
    free(y);
    free(q);
}

static void check_dot_and_convert(void) {
    const size_t n = 1024, rows = 5;
    float *x = xmalloc(rows * n * sizeof(float)), *a = xmalloc(n * sizeof(float)), *wf = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < rows * n; i++) x[i] = rng_float() * (1.0f + (float)(i % 7));
    for (size_t i = 0; i < n; i++) a[i] = rng_float();
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        size_t rb = gt_row_bytes(type, n);
        uint8_t *w = xmalloc(rows * rb);
        for (size_t r = 0; r < rows; r++) gt_quantize_row(type, x + r * n, n, w + r * rb);
        float y[5];
        for (size_t r = 0; r < rows; r++) y[r] = NAN;
        gt_matvec_scalar(type, w, rb, n, a, y, 1, rows);
        int ok = isnan(y[0]);
        for (size_t r = 1; r < rows; r++) {
            gt_dequantize_row(type, w + r * rb, n, wf);
            double exact = 0, mag = 0;
            for (size_t i = 0; i < n; i++) { exact += (double)wf[i] * a[i]; mag += fabs((double)wf[i] * a[i]); }
            float dot = gt_dot_scalar(type, w + r * rb, a, n);
            if (memcmp(&dot, &y[r], 4) != 0 || !(fabs(dot - exact) <= 1e-5 * mag)) ok = 0;
        }
        check(ok, "%s gt_dot_scalar / gt_matvec_scalar against the dequantized row", kname(type));

        // Prepared inputs: exactly q8's bytes.
        size_t ab = gt_activation_bytes(type, n);
        uint8_t *act = xmalloc(ab), *act8 = xmalloc(ab);
        memset(act, 0x55, ab);
        memset(act8, 0x55, ab);
        gt_prepare_activations(type, a, n, 1, n, act);
        gt_prepare_activations(GT_Q8, a, n, 1, n, act8);
        check(memcmp(act, act8, ab) == 0, "%s prepared inputs are q8's", kname(type));
        free(act8);
        // Rows that are not whole super-blocks are refused: y untouched on every path.
        for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
            if (!gt_isa_supported(isa)) continue;
            float yd[2] = { 7.0f, 7.0f };
            gt_matmul_isa(isa, type, w, rb, 288, act, 1, yd, 2, 0, 2);
            check(yd[0] == 7.0f && yd[1] == 7.0f, "%s %s: rows of 288 must be refused", gt_isa_name(isa), kname(type));
        }
        // gt_matmul: no crash; outputs either untouched (no kernel) or within the input-rounding bound.
        for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
            if (!gt_isa_supported(isa)) continue;
            float ym[5];
            for (size_t r = 0; r < rows; r++) ym[r] = NAN;
            gt_matmul_isa(isa, type, w, rb, n, act, 1, ym, rows, 1, rows);
            int fine = isnan(ym[0]);
            for (size_t r = 1; r < rows; r++) {
                if (isnan(ym[r])) continue;  // no K kernel on this path yet
                gt_dequantize_row(type, w + r * rb, n, wf);
                double qb = 0, mag = 0;
                for (size_t b = 0; b < n / 32; b++) {
                    double amax = 0, ws = 0;
                    for (int i = 0; i < 32; i++) { amax = fmax(amax, fabs(a[b * 32 + i])); ws += fabs(wf[b * 32 + i]); }
                    qb += amax / 254.0 * ws;
                }
                for (size_t i = 0; i < n; i++) mag += fabs((double)wf[i] * a[i]);
                float ref = gt_dot_scalar(type, w + r * rb, a, n);
                if (!(fabs((double)ym[r] - ref) <= qb * 1.0001 + 1e-5 * mag)) fine = 0;
            }
            check(fine, "%s gt_matmul on the %s path", kname(type), gt_isa_name(isa));
        }
        free(act);

        // gt_convert_row from bf16 = widening + gt_quantize_row.
        uint16_t *src = xmalloc(n * 2);
        float *scratch = xmalloc(n * sizeof(float)), *wide = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) src[i] = gt_f32_to_bf16(x[i]);
        gt_widen_to_f32(GT_SRC_BF16, src, n, wide);
        uint8_t *c1 = xmalloc(rb), *c2 = xmalloc(rb);
        size_t got = gt_convert_row(GT_SRC_BF16, src, n, type, c1, scratch);
        gt_quantize_row(type, wide, n, c2);
        check(got == n && memcmp(c1, c2, rb) == 0, "%s gt_convert_row from bf16", kname(type));
        src[300] = 0x7fc0;  // NaN
        check(gt_convert_row(GT_SRC_BF16, src, n, type, c1, scratch) == 300, "%s gt_convert_row finds a NaN", kname(type));
        free(src); free(scratch); free(wide); free(c1); free(c2);
        free(w);
    }
    free(x);
    free(a);
    free(wf);
}

// Reads a whole file of exactly `size` bytes; NULL (after a failed check) otherwise.
static void *read_golden(const char *dir, const char *name, size_t size) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    void *p = xmalloc(size + 1);
    size_t got = f ? fread(p, 1, size + 1, f) : 0;
    if (f) fclose(f);
    check(got == size, "golden %s: %zu bytes, expected %zu (run from the repository root, or --goldens DIR)", path, got, size);
    if (got != size) { free(p); return NULL; }
    return p;
}

enum { GOLDEN_ROWS = 6, GOLDEN_COLS = 512 };

static void check_goldens(const char *dir) {
    const size_t n = GOLDEN_ROWS * GOLDEN_COLS;
    float *x = read_golden(dir, "kquant-input.f32", n * sizeof(float));
    if (!x) return;
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        char name[64];
        size_t bytes = GOLDEN_ROWS * gt_row_bytes(type, GOLDEN_COLS);
        snprintf(name, sizeof(name), "kquant-%s.bin", kname(type));
        uint8_t *want = read_golden(dir, name, bytes);
        snprintf(name, sizeof(name), "kquant-%s.f32", kname(type));
        float *want_f = read_golden(dir, name, n * sizeof(float));
        if (want && want_f) {
            uint8_t *q = xmalloc(bytes);
            float *y = xmalloc(n * sizeof(float));
            for (int isa = -1; isa < GT_ISA_COUNT; isa++) {
                if (isa >= 0 && !gt_isa_supported(isa)) continue;
                for (int r = 0; r < GOLDEN_ROWS; r++) {
                    uint8_t *o = q + r * gt_row_bytes(type, GOLDEN_COLS);
                    if (isa < 0) gt_quantize_row_reference(type, x + r * GOLDEN_COLS, GOLDEN_COLS, o);
                    else gt_quantize_row_isa(isa, type, x + r * GOLDEN_COLS, GOLDEN_COLS, o);
                }
                check(memcmp(q, want, bytes) == 0, "%s %s: the golden inputs no longer quantize to the golden bytes",
                      isa < 0 ? "reference" : gt_isa_name(isa), kname(type));
            }
            gt_dequantize_row(type, want, n, y);  // rows are whole super-blocks: one call for all
            check(memcmp(y, want_f, n * sizeof(float)) == 0, "%s: dequantized golden bytes differ from gguf-py's", kname(type));
            free(q);
            free(y);
        }
        free(want);
        free(want_f);
    }
    free(x);
}

int write_kquant_goldens(const char *dir) {
    const size_t n = GOLDEN_ROWS * GOLDEN_COLS;
    float *x = read_golden(dir, "kquant-input.f32", n * sizeof(float));
    if (!x) return 1;
    for (int type = GT_Q4K; type <= GT_Q6K; type++) {
        size_t bytes = GOLDEN_ROWS * gt_row_bytes(type, GOLDEN_COLS);
        uint8_t *q = xmalloc(bytes);
        gt_quantize_row_reference(type, x, n, q);
        char path[1024];
        snprintf(path, sizeof(path), "%s/kquant-%s.bin", dir, kname(type));
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(q, 1, bytes, f) != bytes || fclose(f) != 0) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("wrote %s\n", path);
        free(q);
    }
    free(x);
    return 0;
}

void check_kquant(int quick, const char *goldens) {
    check_goldens(goldens);
    check_sizes();
    check_dequantize_layout();
    check_quantize_paths(quick);
    check_quantize_error(quick);
    check_dot_and_convert();
}
