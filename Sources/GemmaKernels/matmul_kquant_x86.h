// Helpers shared by the x86-64 K-quant kernels (matmul_kquant_avx2.c, matmul_kquant_avx512.c,
// matmul_kquant_single_x86.h): 8-row transposes, scale decoding and Q6_K value unpacking, AVX2 +
// F16C (inlined into the AVX-512 functions too).
// Every value they produce is exact (products of an f16 and a small integer, or of a power of 2)
// or rounded once, as matmul_kquant.c defines.
#ifndef GEMMA_MATMUL_KQUANT_X86_H
#define GEMMA_MATMUL_KQUANT_X86_H

#include "matmul_internal.h"
#include "simd_x86.h"

// The unroll hints of the x86 K-quant kernels (small fixed loops over rows, blocks, dwords).
#define KQ_UNROLL8 _Pragma("GCC unroll 8")
#define KQ_UNROLL16 _Pragma("GCC unroll 16")
#define KQ_NO_UNROLL _Pragma("GCC unroll 1")

AVX2_INLINE float kq_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// The min term's input side for blocks b0..b0+7: am[j] = ad[b] * (float)c[b].
AVX2_INLINE void q4k_min_inputs_x86(const uint8_t *a, size_t nb, size_t b0, float *am) {
    __m256 ad = _mm256_loadu_ps(gt_act_d(a, nb) + b0);
    __m256 c = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(gt_act_c(a, nb) + b0)));
    _mm256_storeu_ps(am, _mm256_mul_ps(ad, c));
}

// The 32 six-bit values (0..63) of block c of a half from its ql[0..31], ql[32..63] and qh[0..31]:
// block c takes the low (c < 2) or high nibbles of ql[32 * (c & 1)...] and bits 2c, 2c+1 of qh.
// 16-bit shifts are fine: the masks keep only bits that came from the same byte.
AVX2_INLINE __m256i q6k_values_x86(__m256i ql0, __m256i ql1, __m256i qh, const int c) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    __m256i lo = c & 1 ? ql1 : ql0;
    lo = _mm256_and_si256(c >= 2 ? _mm256_srli_epi16(lo, 4) : lo, m4);
    __m256i hi = c == 0 ? _mm256_slli_epi16(qh, 4) : c == 1 ? _mm256_slli_epi16(qh, 2) : c == 2 ? qh : _mm256_srli_epi16(qh, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(hi, m2));
}

// H[k] lane i = dword k (k = 0..3) of the 16 bytes at rowp[i] + off, i = 0..7.
AVX2_INLINE void transpose8x4(const uint8_t *const *rowp, size_t off, __m256i *H) {
    __m256i z[4];  // [row q | row q + 4]
    KQ_UNROLL8 for (int q = 0; q < 4; q++)
        z[q] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rowp[q] + off))),
                                       _mm_loadu_si128((const __m128i *)(rowp[q + 4] + off)), 1);
    const __m256i lo01 = _mm256_unpacklo_epi32(z[0], z[1]), hi01 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i lo23 = _mm256_unpacklo_epi32(z[2], z[3]), hi23 = _mm256_unpackhi_epi32(z[2], z[3]);
    H[0] = _mm256_unpacklo_epi64(lo01, lo23);
    H[1] = _mm256_unpackhi_epi64(lo01, lo23);
    H[2] = _mm256_unpacklo_epi64(hi01, hi23);
    H[3] = _mm256_unpackhi_epi64(hi01, hi23);
}

// Q4_K scales of 8 rows: dsc[j] = d * sc_j, mq[j] = dmin * m_j / 2 (exact), lane i = row i.
// Bytes 0..15 of a super-block: d, dmin (f16), then 12 packed bytes s0..s11 (dwords H[1..3]):
// sc_0..3 / m_0..3 are the low 6 bits of s0..3 / s4..7, sc_4..7 / m_4..7 the low / high nibbles
// of s8..11 plus the top 2 bits of s0..3 / s4..7 (llama.cpp's get_scale_min_k4, 32 bits at a time).
AVX2_INLINE void q4k_scales8(const uint8_t *const *rowp, size_t off, __m256 *dsc, __m256 *mq) {
    __m256i H[4];
    transpose8x4(rowp, off, H);
    // The f16 pairs (d, dmin) of the 8 rows to [d 0..7 | dmin 0..7].
    const __m256i halves = _mm256_permute4x64_epi64(
        _mm256_packus_epi32(_mm256_and_si256(H[0], _mm256_set1_epi32(0xffff)), _mm256_srli_epi32(H[0], 16)), 0xd8);
    const __m256 d = _mm256_cvtph_ps(_mm256_castsi256_si128(halves));
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1)), _mm256_set1_ps(0.5f));
    const __m256i m63 = _mm256_set1_epi32(63), m15 = _mm256_set1_epi32(15), m3 = _mm256_set1_epi32(3);
    KQ_UNROLL8 for (int j = 0; j < 4; j++) {
        const __m256i sc = _mm256_and_si256(_mm256_srli_epi32(H[1], 8 * j), m63);
        const __m256i m = _mm256_and_si256(_mm256_srli_epi32(H[2], 8 * j), m63);
        const __m256i sc4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(H[3], 8 * j), m15),
                                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(H[1], 8 * j + 6), m3), 4));
        const __m256i m4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(H[3], 8 * j + 4), m15),
                                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(H[2], 8 * j + 6), m3), 4));
        dsc[j] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
        mq[j] = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(m));
        dsc[j + 4] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc4));
        mq[j + 4] = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(m4));
    }
}

// Q6_K scales of 8 rows: dsc[k] = d * sc_k (exact), k = 0..15, lane i = row i.
AVX2_INLINE void q6k_scales8(const uint8_t *const *rowp, size_t off, __m256 *dsc) {
    __m256i H[4];
    transpose8x4(rowp, off + 192, H);
    uint16_t dh[8];
    KQ_UNROLL8 for (int i = 0; i < 8; i++) memcpy(&dh[i], rowp[i] + off + 208, 2);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
    KQ_UNROLL16 for (int k = 0; k < 16; k++) {
        const __m256i sc = _mm256_srai_epi32(_mm256_slli_epi32(H[k / 4], 24 - 8 * (k % 4)), 24);
        dsc[k] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
    }
}

#endif
