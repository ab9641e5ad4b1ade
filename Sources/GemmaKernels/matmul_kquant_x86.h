// Helpers shared by the x86-64 K-quant kernels (matmul_kquant_avx2.c, matmul_kquant_avx512.c):
// scale decoding and Q6_K value unpacking, AVX2 + F16C (inlined into the AVX-512 functions too).
// Every value they produce is exact (products of an f16 and a small integer, or of a power of 2)
// or rounded once, as matmul_kquant.c defines.
#ifndef GEMMA_MATMUL_KQUANT_X86_H
#define GEMMA_MATMUL_KQUANT_X86_H

#include "matmul_internal.h"
#include "simd_x86.h"

AVX2_INLINE float kq_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// Q4_K super-block at p: dsc[j] = d * sc_j and mq[j] = dmin * m_j / 2 for the 8 sub-blocks.
// The 12 packed bytes are unpacked four at a time (llama.cpp's get_scale_min_k4 on 32-bit words):
// sc 0..3 and m 0..3 are the low 6 bits of bytes 0..3 and 4..7; sc / m 4..7 take the low / high
// nibble of bytes 8..11 plus the top 2 bits of bytes 0..3 / 4..7.
AVX2_INLINE void q4k_scales_x86(const uint8_t *p, float *dsc, float *mq) {
    uint32_t u[3], sc[2], m[2];
    memcpy(u, p + 4, 12);
    sc[0] = u[0] & 0x3f3f3f3fu;
    m[0] = u[1] & 0x3f3f3f3fu;
    sc[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    m[1] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    __m128i s8 = _mm_loadl_epi64((const __m128i *)sc), m8 = _mm_loadl_epi64((const __m128i *)m);
    _mm256_storeu_ps(dsc, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(s8)), _mm256_set1_ps(kq_f16(p))));
    _mm256_storeu_ps(mq, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m8)),
                                       _mm256_set1_ps(kq_f16(p + 2) * 0.5f)));
}

// The min term's input side for blocks b0..b0+7: am[j] = ad[b] * (float)c[b].
AVX2_INLINE void q4k_min_inputs_x86(const uint8_t *a, size_t nb, size_t b0, float *am) {
    __m256 ad = _mm256_loadu_ps(gt_act_d(a, nb) + b0);
    __m256 c = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(gt_act_c(a, nb) + b0)));
    _mm256_storeu_ps(am, _mm256_mul_ps(ad, c));
}

// Q6_K super-block at p: out[0] = d * sc[0..7], out[1] = d * sc[8..15].
AVX2_INLINE void q6k_scales_x86(const uint8_t *p, __m256 *out) {
    __m128i v = _mm_loadu_si128((const __m128i *)(p + 192));
    __m256 d = _mm256_set1_ps(kq_f16(p + 208));
    out[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d);
    out[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))), d);
}

// The scales of block c (0..3) of a half from that half's 8 sub-block scales: [s[2c] x 4, s[2c+1] x 4].
AVX2_INLINE __m256 q6k_block_scales_x86(__m256 s, const int c) {
    return _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1));
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

#endif
