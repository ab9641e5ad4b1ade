// Prototype of a possible next K-quant contract (not used by the runtime; docs/BENCHMARKS.md,
// "Session 13"): Q4_K weights x today's inputs (int8, one f32 scale per 32) with ONE int32 lane
// per row and block, the block's 32 products summed inside the lane by 8 vpdpbusd, 16 rows per
// zmm and TOKENS tokens per tile, one f32 accumulator per row and token. Times the gate/up
// product (16384 x 2048 x 64 tokens, one thread) and checks 200 results against a
// double-precision reference. AVX-512 F/BW/VL/VNNI only; build with clang (gcc 12 neither unrolls
// the inner loops nor folds the input broadcasts into vpdpbusd):
//   clang -O2 -mavx2 -mfma -mf16c [-DTOKENS=16] kernels-test/prototype_row_lanes.c -lm -o proto
//   ./proto [avx2|q6k]  (avx2: Q4_K on AVX2, 8 rows x 4 tokens per tile; q6k: Q6_K, AVX-512)
// The weights are random bytes with small f16 scales; the scales are unpacked in scalar code.
// The token loops unroll by 8 even with 16 tokens: unrolled whole they measured slower (196
// against 225 GFLOP/s).
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#define QK 256
#define BB 144
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float f16(uint16_t h){ return _cvtsh_ss(h); }
static void scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) { *sc = s[j] & 63; *m = s[j + 4] & 63; }
    else { *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4); *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
}
// inputs: per token: q[cols] int8, d[cols/32] f32, sum[cols/32] int32
typedef struct { int8_t *q; float *d; int32_t *sum; } act_t;
static double ref(const uint8_t *w, int cols, act_t a) {
    double y = 0;
    for (int s = 0; s < cols / QK; s++) {
        const uint8_t *p = w + s * BB; float d = f16(*(uint16_t*)p), dmin = f16(*(uint16_t*)(p+2));
        for (int j = 0; j < 8; j++) {
            int sc, m; scale_min(j, p + 4, &sc, &m);
            int b = s * 8 + j; long L = 0;
            for (int v = 0; v < 32; v++) { int g = j / 2; int byte = p[16 + 32 * g + v]; int q = (j & 1) ? byte >> 4 : byte & 15; L += q * a.q[b * 32 + v]; }
            y += (double)d * sc * a.d[b] * L - (double)dmin * m * a.d[b] * a.sum[b];
        }
    }
    return y;
}
#define R 16
#define AVX512_TILE_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#ifndef TOKENS
#define TOKENS 16
#endif
// d * sc_j and dmin * m_j of super-block s of rows 0..n-1: dsc[j * n + r], mq[j * n + r].
static inline __attribute__((always_inline)) void q4k_row_scales(const uint8_t *w, size_t rs, int s, int n, float *dsc, float *mq) {
    for (int r = 0; r < n; r++) {
        const uint8_t *p = w + r * rs + s * BB; float d = f16(*(uint16_t*)p), dmin = f16(*(uint16_t*)(p+2));
        for (int j = 0; j < 8; j++) { int sc, m; scale_min(j, p + 4, &sc, &m); dsc[j * n + r] = d * sc; mq[j * n + r] = dmin * m; }
    }
}

// W[k] = dword k (k = 0..7) of the 32 bytes at rowp[r] + off, for rows r = 0..15 (lane r).
AVX512_TILE_ATTR static inline __attribute__((always_inline)) void transpose16x8(const uint8_t *const *rowp, size_t off, __m512i *W) {
    __m512i z[8], t0[8], t1[8];
    for (int r = 0; r < 8; r++)
        z[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(rowp[r] + off))),
                                  _mm256_loadu_si256((const __m256i *)(rowp[r + 8] + off)), 1);
    for (int i = 0; i < 4; i++) { t0[2*i] = _mm512_unpacklo_epi32(z[2*i], z[2*i+1]); t0[2*i+1] = _mm512_unpackhi_epi32(z[2*i], z[2*i+1]); }
    for (int i = 0; i < 2; i++) for (int h = 0; h < 2; h++) {
        t1[4*i+h] = _mm512_unpacklo_epi64(t0[4*i+h], t0[4*i+2+h]);
        t1[4*i+2+h] = _mm512_unpackhi_epi64(t0[4*i+h], t0[4*i+2+h]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    const int order[4] = {0, 2, 1, 3};
    for (int kk = 0; kk < 4; kk++) {
        W[kk] = _mm512_permutex2var_epi64(t1[order[kk]], lo, t1[4 + order[kk]]);
        W[kk + 4] = _mm512_permutex2var_epi64(t1[order[kk]], hi, t1[4 + order[kk]]);
    }
}
AVX512_TILE_ATTR
static void tile(const uint8_t *w, size_t rs, int cols, const act_t *a, float *y, size_t ys) {
    enum { T = TOKENS };
    const int nsb = cols / QK;
    __m512 acc[16];
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15);
    const uint8_t *rowp[16];
    for (int r = 0; r < R; r++) rowp[r] = w + r * rs;
    for (int s = 0; s < nsb; s++) {
        float dsc[8][16] __attribute__((aligned(64))), mq[8][16] __attribute__((aligned(64)));
        q4k_row_scales(w, rs, s, R, dsc[0], mq[0]);
        for (int g = 0; g < 4; g++) {
            __m512i W[8];  // rows' 32-byte nibble groups as dword vectors
            transpose16x8(rowp, s * BB + 16 + 32 * g, W);
            for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h, b = s * 8 + j;
                __m512i Wn[8];
                for (int k = 0; k < 8; k++) Wn[k] = _mm512_and_si512(h ? _mm512_srli_epi16(W[k], 4) : W[k], m4);
                const __m512 dv = _mm512_load_ps(dsc[j]);
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                    const int32_t *aq = (const int32_t *)(a[t].q + b * 32);
                    __m512i L = _mm512_dpbusd_epi32(_mm512_setzero_si512(), Wn[0], _mm512_set1_epi32(aq[0]));
                    _Pragma("GCC unroll 8") for (int k = 1; k < 8; k++) L = _mm512_dpbusd_epi32(L, Wn[k], _mm512_set1_epi32(aq[k]));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_mul_ps(dv, _mm512_set1_ps(a[t].d[b])), acc[t]);
                }
            }
        }
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            for (int j = 0; j < 8; j++) {
                int b = s * 8 + j;
                acc[t] = _mm512_fmadd_ps(_mm512_load_ps(mq[j]), _mm512_set1_ps(-a[t].d[b] * a[t].sum[b]), acc[t]);
            }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// The same contract on AVX2 (no VNNI): 8 rows per ymm, 4 tokens per tile. vpmaddubsw sums two
// products per int16 lane; the 8 dword steps of a block add up in int16 (at most
// 8 x 2 x 15 x 127 = 30480, no saturation) and one vpmaddwd by 1 widens them to the row's int32.
#define R2 8
__attribute__((target("avx2,fma,f16c")))
static void tile_avx2(const uint8_t *w, size_t rs, int cols, const act_t *a, float *y, size_t ys) {
    enum { T = 4 };
    const int nsb = cols / QK;
    __m256 acc[T];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    for (int s = 0; s < nsb; s++) {
        float dsc[8][8] __attribute__((aligned(32))), mq[8][8] __attribute__((aligned(32)));
        q4k_row_scales(w, rs, s, R2, dsc[0], mq[0]);
        for (int g = 0; g < 4; g++) {
            __m256i r8[8], u[8], v[8], W[8];
            for (int r = 0; r < R2; r++) r8[r] = _mm256_loadu_si256((const __m256i *)(w + r * rs + s * BB + 16 + 32 * g));
            for (int i = 0; i < 4; i++) { u[2*i] = _mm256_unpacklo_epi32(r8[2*i], r8[2*i+1]); u[2*i+1] = _mm256_unpackhi_epi32(r8[2*i], r8[2*i+1]); }
            for (int i = 0; i < 2; i++) for (int h = 0; h < 2; h++) {
                v[4*i+h] = _mm256_unpacklo_epi64(u[4*i+h], u[4*i+2+h]);
                v[4*i+2+h] = _mm256_unpackhi_epi64(u[4*i+h], u[4*i+2+h]);
            }
            // v[0..3]: rows 0-3, dwords (0,4) (1,5) (2,6) (3,7) per 128-bit half; v[4..7]: rows 4-7
            const int order[4] = {0, 2, 1, 3};
            for (int kk = 0; kk < 4; kk++) {
                W[kk] = _mm256_permute2x128_si256(v[order[kk]], v[4 + order[kk]], 0x20);
                W[kk + 4] = _mm256_permute2x128_si256(v[order[kk]], v[4 + order[kk]], 0x31);
            }
            for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h, b = s * 8 + j;
                __m256i Wn[8];
                for (int k = 0; k < 8; k++) Wn[k] = _mm256_and_si256(h ? _mm256_srli_epi16(W[k], 4) : W[k], m4);
                const __m256 dv = _mm256_load_ps(dsc[j]);
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                    const int32_t *aq = (const int32_t *)(a[t].q + b * 32);
                    __m256i s16 = _mm256_maddubs_epi16(Wn[0], _mm256_set1_epi32(aq[0]));
                    _Pragma("GCC unroll 8") for (int k = 1; k < 8; k++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(Wn[k], _mm256_set1_epi32(aq[k])));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones)), _mm256_mul_ps(dv, _mm256_set1_ps(a[t].d[b])), acc[t]);
                }
            }
        }
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            for (int j = 0; j < 8; j++) {
                int b = s * 8 + j;
                acc[t] = _mm256_fmadd_ps(_mm256_load_ps(mq[j]), _mm256_set1_ps(-a[t].d[b] * a[t].sum[b]), acc[t]);
            }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(y + t * ys, acc[t]);
}


// Q6_K with the same contract (`./proto q6k`): per block two int32 lanes per row, one per
// sub-block of 16 (its own scale), each started from -32 x the sum of its 16 inputs, so the
// values stay unsigned 0..63; 16 rows per zmm, 16 tokens per tile. ql, ql + 32 and qh of a half
// are transposed once (16 rows x 8 dwords each) and serve its four blocks.
#define B6 210
static double ref6(const uint8_t *w, int cols, act_t a) {
    double y = 0;
    for (int s = 0; s < cols / QK; s++) {
        const uint8_t *p = w + s * B6; float d = f16(*(uint16_t *)(p + 208));
        for (int v = 0; v < 256; v++) {
            int h = v / 128, c = (v % 128) / 32, l = v % 32;
            int ql = p[64 * h + 32 * (c & 1) + l], qh = p[128 + 32 * h + l];
            int q = ((c >= 2 ? ql >> 4 : ql & 15) | (((qh >> (2 * c)) & 3) << 4)) - 32;
            int b = s * 8 + v / 32;
            y += (double)d * (int8_t)p[192 + v / 16] * a.d[b] * q * a.q[s * 256 + v];
        }
    }
    return y;
}
AVX512_TILE_ATTR static void tile6(const uint8_t *w, size_t rs, int cols, const act_t *a, float *y, size_t ys) {
    enum { T = TOKENS };
    const int nsb = cols / QK;
    __m512 acc[16];
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    const uint8_t *rowp[16];
    for (int r = 0; r < 16; r++) rowp[r] = w + r * rs;
    const __m512i m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
    for (int s = 0; s < nsb; s++) {
        float dsc[16][16] __attribute__((aligned(64)));  // [sub-block][row]
        int32_t st[16][16];                               // [token][sub-block]: -32 x sum of its inputs
        for (int r = 0; r < 16; r++) {
            const uint8_t *p = rowp[r] + s * B6; float d = f16(*(uint16_t *)(p + 208));
            for (int k = 0; k < 16; k++) dsc[k][r] = d * (int8_t)p[192 + k];
        }
        for (int t = 0; t < T; t++)
            for (int k = 0; k < 16; k++) { int sum = 0; for (int v = 0; v < 16; v++) sum += a[t].q[s * 256 + 16 * k + v]; st[t][k] = -32 * sum; }
        for (int h = 0; h < 2; h++) {
            __m512i L0[8], L1[8], QH[8];
            transpose16x8(rowp, s * B6 + 64 * h, L0);
            transpose16x8(rowp, s * B6 + 64 * h + 32, L1);
            transpose16x8(rowp, s * B6 + 128 + 32 * h, QH);
            for (int c = 0; c < 4; c++) {
                const int bi = 4 * h + c, b = s * 8 + bi;
                __m512i V[8];
                for (int k = 0; k < 8; k++) {
                    __m512i lo = (c & 1) ? L1[k] : L0[k];
                    lo = c >= 2 ? _mm512_and_si512(_mm512_srli_epi16(lo, 4), m4) : _mm512_and_si512(lo, m4);
                    __m512i hb = _mm512_and_si512(c ? _mm512_srli_epi16(QH[k], 2 * c) : QH[k], m3);
                    V[k] = _mm512_or_si512(lo, _mm512_slli_epi16(hb, 4));
                }
                const __m512 d0 = _mm512_load_ps(dsc[2 * bi]), d1 = _mm512_load_ps(dsc[2 * bi + 1]);
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                    const int32_t *aq = (const int32_t *)(a[t].q + b * 32);
                    __m512i s0 = _mm512_set1_epi32(st[t][2 * bi]), s1 = _mm512_set1_epi32(st[t][2 * bi + 1]);
                    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
                        s0 = _mm512_dpbusd_epi32(s0, V[k], _mm512_set1_epi32(aq[k]));
                        s1 = _mm512_dpbusd_epi32(s1, V[k + 4], _mm512_set1_epi32(aq[k + 4]));
                    }
                    const __m512 ad = _mm512_set1_ps(a[t].d[b]);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(d0, ad), acc[t]);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(d1, ad), acc[t]);
                }
            }
        }
    }
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "avx512";
    const int q6 = !strcmp(mode, "q6k"), use_avx2 = !strcmp(mode, "avx2");
    const int rows = 16384, cols = 2048, T = 64, nb = cols / 32;
    const size_t bb = q6 ? B6 : BB, rs = cols / QK * bb;
    uint8_t *w = aligned_alloc(64, rows * rs);
    srand(3); for (size_t i = 0; i < rows * rs; i++) w[i] = rand();
    for (int r = 0; r < rows; r++)
        for (int s = 0; s < cols / QK; s++) {
            uint16_t *p = (uint16_t *)(w + r * rs + s * bb + (q6 ? 208 : 0));  // small f16 scales
            p[0] = 0x2000 + (rand() & 0x3ff);
            if (!q6) p[1] = 0x1c00 + (rand() & 0x3ff);
        }
    act_t a[64];
    for (int t = 0; t < T; t++) { a[t].q = malloc(cols); a[t].d = malloc(nb * 4); a[t].sum = malloc(nb * 4);
        for (int i = 0; i < cols; i++) a[t].q[i] = (rand() % 255) - 127;
        for (int b = 0; b < nb; b++) { a[t].d[b] = 0.01f * (1 + rand() % 100); int s = 0; for (int v = 0; v < 32; v++) s += a[t].q[b*32+v]; a[t].sum[b] = s; } }
    float *y = aligned_alloc(64, sizeof(float) * rows * T);
    const int TT = use_avx2 ? 4 : TOKENS, RR = use_avx2 ? R2 : R;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int r = 0; r < rows; r += RR)
            for (int t = 0; t < T; t += TT) {
                float *yt = y + (size_t)t * rows + r;
                if (q6) tile6(w + r * rs, rs, cols, a + t, yt, rows);
                else if (use_avx2) tile_avx2(w + r * rs, rs, cols, a + t, yt, rows);
                else tile(w + r * rs, rs, cols, a + t, yt, rows);
            }
        double dt = now() - t0; if (dt < best) best = dt;
    }
    // Errors relative to the outputs' RMS (single values can cancel to near 0).
    double maxerr = 0, sq = 0;
    for (int k = 0; k < 200; k++) {
        int r = rand() % rows, t = rand() % T;
        double rf = q6 ? ref6(w + r * rs, cols, a[t]) : ref(w + r * rs, cols, a[t]);
        double e = fabs(rf - y[(size_t)t * rows + r]);
        if (e > maxerr) maxerr = e;
        sq += rf * rf;
    }
    const double maxrel = maxerr / sqrt(sq / 200);
    printf("%s %s, %d rows x %d tokens per tile: %.1f GFLOP/s, max error vs reference %.2e of the RMS\n", q6 ? "q6k" : "q4k",
           use_avx2 ? "avx2" : "avx512", RR, TT, 2.0 * rows * cols * T / best * 1e-9, maxrel);
}
