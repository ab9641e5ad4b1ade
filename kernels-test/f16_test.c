// Tests of gt_f16_store (f16_store.c), the f32 -> half rounding of the f16 KV cache, on every
// path this CPU runs:
//   - every half round-trips: store(widen(h)) == h for all 65536 halves (NaNs quieted, +-inf
//     saturated to +-65504);
//   - every path gives the scalar path's bits, for a sweep over the whole f32 bit space (every
//     exponent, many mantissas), values halfway between halves, and the edges (+-0, subnormals,
//     65504, 65519.99, 65520, inf, NaNs with payloads);
//   - the scalar path rounds to nearest even (== gt_f32_to_f16 in the half range) and saturates:
//     |x| > 65504, inf included, gives +-65504; NaN stays NaN.
#include "gemma_kernels.h"
#include "gemma_ops.h"
#include "test_support.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float from_bits(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }

// Lengths that leave a tail after every vector width.
static void compare_paths(const float *x, size_t n, const char *what) {
    uint16_t *ref = xmalloc(n * sizeof(uint16_t)), *got = xmalloc((n + 1) * sizeof(uint16_t));
    gt_f16_store_isa(GT_ISA_SCALAR, ref, x, n);
    for (int isa = 1; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        got[n] = 0xbeef;  // nothing written past the end
        const int used = gt_f16_store_isa(isa, got, x, n);
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (got[i] != ref[i]) bad = i;
        check(bad == n, "f16 store %s (as %s) %s: x=%a gives 0x%04x, scalar 0x%04x", gt_isa_name(isa),
              gt_isa_name(used), what, bad < n ? x[bad] : 0.0, bad < n ? got[bad] : 0, bad < n ? ref[bad] : 0);
        check(got[n] == 0xbeef, "f16 store %s %s: wrote past the end", gt_isa_name(isa), what);
    }
    uint16_t sel;
    gt_f16_store(&sel, x, 1);
    check(sel == ref[0], "f16 store: gt_f16_store differs from the paths");
    free(ref);
    free(got);
}

void check_f16_store(int quick) {
    // Round trip of every half.
    float *w = xmalloc(65536 * sizeof(float));
    uint16_t *h = xmalloc(65536 * sizeof(uint16_t));
    for (uint32_t i = 0; i < 65536; i++) w[i] = gt_f16_to_f32((uint16_t)i);
    gt_f16_store_isa(GT_ISA_SCALAR, h, w, 65536);
    size_t bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        const int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        const int inf = (i & 0x7fff) == 0x7c00;  // saturates to the largest half
        const uint16_t want = nan ? (uint16_t)(i | 0x200) : inf ? (uint16_t)(i - 1) : (uint16_t)i;
        if (h[i] != want) bad++;
    }
    check(bad == 0, "f16 store: %zu halves do not round-trip", bad);
    compare_paths(w, 65536, "every half");

    // Scalar rounding and saturation against gt_f32_to_f16 and by hand.
    struct { float x; uint16_t want; } edges[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {65504.0f, 0x7bff}, {65519.99f, 0x7bff},
        {65520.0f, 0x7bff}, {1e9f, 0x7bff}, {INFINITY, 0x7bff}, {-INFINITY, 0xfbff}, {-7e4f, 0xfbff},
        {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001}, {0x1.8p-24f, 0x0002},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x1.8p-10f, 0x3c02}, {from_bits(0x7f800001u), 0x7e00},
        {from_bits(0xffc12345u), 0xfe09},
    };
    const size_t ne = sizeof(edges) / sizeof(edges[0]);
    float ex[sizeof(edges) / sizeof(edges[0])];
    for (size_t i = 0; i < ne; i++) {
        uint16_t got;
        gt_f16_store_isa(GT_ISA_SCALAR, &got, &edges[i].x, 1);
        check(got == edges[i].want, "f16 store: %a gives 0x%04x, expected 0x%04x", edges[i].x, got, edges[i].want);
        ex[i] = edges[i].x;
    }
    compare_paths(ex, ne, "edges");

    // A sweep over the f32 bit space, and halfway points between neighbouring halves.
    const size_t n = quick ? 1u << 18 : 1u << 21;
    float *x = xmalloc(n * sizeof(float));
    const uint32_t step = (uint32_t)(0x100000000ull / n) | 1;
    for (size_t i = 0; i < n; i++) x[i] = from_bits((uint32_t)(i * step) ^ (uint32_t)(rng_next() & 0xff));
    uint16_t *r = xmalloc(n * sizeof(uint16_t));
    gt_f16_store_isa(GT_ISA_SCALAR, r, x, n);
    bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) || fabsf(x[i]) > 65504.0f) continue;
        if (r[i] != gt_f32_to_f16(x[i])) bad++;
    }
    check(bad == 0, "f16 store: %zu values round otherwise than gt_f32_to_f16", bad);
    compare_paths(x, n - 3, "bit sweep");
    for (size_t i = 0; i + 1 < 65536 && i < n; i++) {  // midpoints (and quarter points) of halves
        const float a = gt_f16_to_f32((uint16_t)i), b = gt_f16_to_f32((uint16_t)(i + 1));
        x[i] = isfinite(a) && isfinite(b) ? (i & 1 ? a + (b - a) / 2 : a + (b - a) / 4) : a;
    }
    compare_paths(x, 65535 < n ? 65535 : n, "midpoints");
    free(w); free(h); free(x); free(r);
}
