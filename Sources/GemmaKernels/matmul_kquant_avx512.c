// x86-64 AVX-512 + VNNI kernels for K-quant weights: 512-bit batch tiles for prompts (8 rows x
// 8 tokens of Q4_K, 4 x 8 of Q6_K in 16 zmm accumulators); single tokens take the AVX2 kernels.
//
// Each row keeps exactly the int32 and f32 lanes of the AVX2 tile (matmul_kquant_avx2.c) and
// the arithmetic of matmul_kquant.c: a Q4_K row in one 128-bit quarter (bytes 0..15 and 16..31
// of a nibble group in two registers, inputs broadcast to every quarter), a Q6_K row in one
// 256-bit half. Same block products, same scale products, same fused multiply-adds in the same
// order, same final sums: bit-identical results.
#if defined(__x86_64__) || defined(_M_X64)

#include "matmul_internal.h"
#include "matmul_kquant_x86.h"
#include "matmul_tiles.h"
#include "simd_x86.h"

// The tiles' token loops run up to 8 times: unrolled whole, so that every accumulator is a
// register (matmul_tiles.h unrolls by 4, enough for the other tiles; a half-unrolled token loop
// indexes the accumulators at run time and keeps them on the stack). Measured with
// kernels-test/bench.c: Q4_K batches 1-5% faster (docs/BENCHMARKS.md, session 13).
#undef GT_UNROLL
#define GT_UNROLL _Pragma("GCC unroll 8")

// AVX512_FN / AVX512_INLINE and hsum4 (the AVX2 tiles' order): simd_x86.h. (F, BW, VL, VNNI as
// the CPU check requires: no DQ, so 256-bit halves move as f64x4.)

static const gt_kernel_table *single_token_table(void) {
    return gt_cpu_has_avxvnni() ? &gt_kernels_avxvnni : &gt_kernels_avx512_single;
}

// 16 bytes at p[i] + offset in quarter i.
AVX512_INLINE __m512i load_quarters(const uint8_t *const *p, size_t offset) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[0] + offset)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[1] + offset)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[2] + offset)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[3] + offset)), 3);
}

AVX512_INLINE __m512 load_quarters_ps(const float *a, const float *b, const float *c, const float *d) {
    __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(a));
    v = _mm512_insertf32x4(v, _mm_loadu_ps(b), 1);
    v = _mm512_insertf32x4(v, _mm_loadu_ps(c), 2);
    return _mm512_insertf32x4(v, _mm_loadu_ps(d), 3);
}

// Q4_K: Q row quads (R rows, the last quad padded by repeating the last row) x T tokens.
AVX512_INLINE void q4k_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, const int R, const int T) {
    const int Q = (R + 3) / 4;
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m512i m4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
    __m512 acc[2][8];
    GT_UNROLL for (int q = 0; q < Q; q++)
        GT_UNROLL for (int t = 0; t < T; t++) acc[q][t] = _mm512_setzero_ps();
    const uint8_t *wr[8];
    GT_UNROLL for (int i = 0; i < 4 * Q; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q4K_BLOCK_BYTES;
        float dsc[8][8], mq[8][8], am[8][8];
        GT_UNROLL for (int i = 0; i < 4 * Q; i++) q4k_scales_x86(wr[i] + off, dsc[i], mq[i]);
        GT_UNROLL for (int t = 0; t < T; t++) q4k_min_inputs_x86(act + t * as, nb, 8 * s, am[t]);
        // Rows 4q..4q+1 and 4q+2..4q+3 of the d * sc tables, for one permute per quad and block.
        __m512 tlo[2], thi[2];
        GT_UNROLL for (int q = 0; q < Q; q++) {
            tlo[q] = _mm512_loadu_ps(dsc[4 * q]);  // dsc rows are contiguous: [4q], [4q + 1]
            thi[q] = _mm512_loadu_ps(dsc[4 * q + 2]);
        }
        GT_UNROLL for (int g = 0; g < 4; g++) {
            __m512i v0[2], v1[2];
            GT_UNROLL for (int q = 0; q < Q; q++) {
                v0[q] = load_quarters(wr + 4 * q, off + 16 + 32 * g);
                v1[q] = load_quarters(wr + 4 * q, off + 32 + 32 * g);
            }
            GT_UNROLL for (int h = 0; h < 2; h++) {
                const int j = 2 * g + h;
                const size_t b = 8 * s + j;
                const __m512i idx = _mm512_setr_epi32(j, j, j, j, 8 + j, 8 + j, 8 + j, 8 + j, 16 + j, 16 + j, 16 + j,
                                                      16 + j, 24 + j, 24 + j, 24 + j, 24 + j);
                __m512i w0[2], w1[2];
                __m512 ds[2];
                GT_UNROLL for (int q = 0; q < Q; q++) {
                    w0[q] = _mm512_and_si512(h ? _mm512_srli_epi16(v0[q], 4) : v0[q], m4);
                    w1[q] = _mm512_and_si512(h ? _mm512_srli_epi16(v1[q], 4) : v1[q], m4);
                    ds[q] = _mm512_permutex2var_ps(tlo[q], idx, thi[q]);
                }
                GT_UNROLL for (int t = 0; t < T; t++) {
                    const uint8_t *a = act + t * as;
                    const int8_t *aq = gt_act_q(a) + b * GT_BLOCK;
                    __m512i a0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)aq));
                    __m512i a1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(aq + 16)));
                    __m512 ad = _mm512_set1_ps(gt_act_d(a, nb)[b]);
                    GT_UNROLL for (int q = 0; q < Q; q++) {
                        __m512i L = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, w0[q], a0), w1[q], a1);
                        acc[q][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_mul_ps(ds[q], ad), acc[q][t]);
                    }
                }
            }
        }
        // The mins: sub-blocks k and k + 4 into lane k of each row.
        GT_UNROLL for (int q = 0; q < Q; q++) {
            const int i = 4 * q;
            __m512 m0 = load_quarters_ps(mq[i], mq[i + 1], mq[i + 2], mq[i + 3]);
            __m512 m1 = load_quarters_ps(mq[i] + 4, mq[i + 1] + 4, mq[i + 2] + 4, mq[i + 3] + 4);
            GT_UNROLL for (int t = 0; t < T; t++) {
                acc[q][t] = _mm512_fmadd_ps(m0, _mm512_broadcast_f32x4(_mm_loadu_ps(am[t])), acc[q][t]);
                acc[q][t] = _mm512_fmadd_ps(m1, _mm512_broadcast_f32x4(_mm_loadu_ps(am[t] + 4)), acc[q][t]);
            }
        }
    }
    GT_UNROLL for (int q = 0; q < Q; q++)
        GT_UNROLL for (int t = 0; t < T; t++) {
            GT_UNROLL for (int i = 0; i < 4; i++) {
                if (4 * q + i >= R) break;
                __m128 quarter = _mm512_extractf32x4_ps(acc[q][t], 0);
                if (i == 1) quarter = _mm512_extractf32x4_ps(acc[q][t], 1);
                if (i == 2) quarter = _mm512_extractf32x4_ps(acc[q][t], 2);
                if (i == 3) quarter = _mm512_extractf32x4_ps(acc[q][t], 3);
                y[t * ys + r + 4 * q + i] = hsum4(quarter);
            }
        }
}

// Two rows' 32-byte vectors at p[0] + offset and p[1] + offset, one per 256-bit half.
AVX512_INLINE __m512i load_halves(const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

// q6k_values_x86 on two rows at once.
AVX512_INLINE __m512i q6k_values512(__m512i ql0, __m512i ql1, __m512i qh, const int c) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
    __m512i lo = c & 1 ? ql1 : ql0;
    lo = _mm512_and_si512(c >= 2 ? _mm512_srli_epi16(lo, 4) : lo, m4);
    __m512i hi = c == 0 ? _mm512_slli_epi16(qh, 4) : c == 1 ? _mm512_slli_epi16(qh, 2) : c == 2 ? qh : _mm512_srli_epi16(qh, 2);
    return _mm512_or_si512(lo, _mm512_and_si512(hi, m2));
}

// Q6_K: P row pairs (R rows, the last pair padded by repeating the last row) x T tokens.
AVX512_INLINE void q6k_tile(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as,
                            float *y, size_t ys, size_t r, const int R, const int T) {
    const int P = (R + 1) / 2;
    const size_t nb = cols / GT_BLOCK, nsb = cols / GT_KBLOCK;
    const __m512i zero = _mm512_setzero_si512(), k32 = _mm512_set1_epi8(32);
    __m512 acc[2][8];
    GT_UNROLL for (int p = 0; p < P; p++)
        GT_UNROLL for (int t = 0; t < T; t++) acc[p][t] = _mm512_setzero_ps();
    const uint8_t *wr[4];
    GT_UNROLL for (int i = 0; i < 2 * P; i++) wr[i] = w + (r + (i < R ? i : R - 1)) * rs;
    for (size_t s = 0; s < nsb; s++) {
        const size_t off = s * GT_Q6K_BLOCK_BYTES;
        __m512 sc[4];  // d * sc[0..15] of each row
        GT_UNROLL for (int i = 0; i < 2 * P; i++) {
            __m256 h[2];
            q6k_scales_x86(wr[i] + off, h);
            sc[i] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(h[0])), _mm256_castps_pd(h[1]), 1));
        }
        GT_UNROLL for (int hf = 0; hf < 2; hf++) {
            __m512i ql0[2], ql1[2], qh[2];
            GT_UNROLL for (int p = 0; p < P; p++) {
                const uint8_t *pa = wr[2 * p] + off, *pb = wr[2 * p + 1] + off;
                ql0[p] = load_halves(pa + 64 * hf, pb + 64 * hf);
                ql1[p] = load_halves(pa + 64 * hf + 32, pb + 64 * hf + 32);
                qh[p] = load_halves(pa + 128 + 32 * hf, pb + 128 + 32 * hf);
            }
            GT_UNROLL for (int c = 0; c < 4; c++) {
                const int bi = 4 * hf + c;
                const size_t b = 8 * s + bi;
                const int e = 2 * bi, o = 2 * bi + 1;
                const __m512i idx = _mm512_setr_epi32(e, e, e, e, o, o, o, o, 16 + e, 16 + e, 16 + e, 16 + e, 16 + o,
                                                      16 + o, 16 + o, 16 + o);
                __m512i q[2];
                __m512 ds[2];
                GT_UNROLL for (int p = 0; p < P; p++) {
                    q[p] = q6k_values512(ql0[p], ql1[p], qh[p], c);
                    ds[p] = _mm512_permutex2var_ps(sc[2 * p], idx, sc[2 * p + 1]);
                }
                GT_UNROLL for (int t = 0; t < T; t++) {
                    const uint8_t *a = act + t * as;
                    __m512i av = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(gt_act_q(a) + b * GT_BLOCK)));
                    __m512i start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k32, av));
                    __m512 ad = _mm512_set1_ps(gt_act_d(a, nb)[b]);
                    GT_UNROLL for (int p = 0; p < P; p++) {
                        __m512i L = _mm512_dpbusd_epi32(start, q[p], av);
                        acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_mul_ps(ds[p], ad), acc[p][t]);
                    }
                }
            }
        }
    }
    GT_UNROLL for (int p = 0; p < P; p++)
        GT_UNROLL for (int t = 0; t < T; t++) {
            __m256 lo = _mm512_castps512_ps256(acc[p][t]), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][t]), 1));
            y[t * ys + r + 2 * p] = hsum4(_mm_add_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps(lo, 1)));
            if (2 * p + 1 < R)
                y[t * ys + r + 2 * p + 1] = hsum4(_mm_add_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1)));
        }
}

#define Q4K_CALL(R, T) q4k_tile(w, rs, cols, a, as, yt, ys, r, R, T)
#define Q6K_CALL(R, T) q6k_tile(w, rs, cols, a, as, yt, ys, r, R, T)

DEFINE_BATCH_DRIVER(avx512_q4k, GT_Q4K, Q4K_CALL, 8)
DEFINE_BATCH_DRIVER(avx512_q6k, GT_Q6K, Q6K_CALL, 4)

void gt_q4k_avx512vnni(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    avx512_q4k(w, rs, cols, act, as, count, y, ys, r0, r1);
}

void gt_q6k_avx512vnni(const uint8_t *w, size_t rs, size_t cols, const uint8_t *act, size_t as, size_t count,
                       float *y, size_t ys, size_t r0, size_t r1) {
    avx512_q6k(w, rs, cols, act, as, count, y, ys, r0, r1);
}

#endif
