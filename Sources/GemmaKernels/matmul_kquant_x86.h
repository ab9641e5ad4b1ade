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

// The same tables for two rows at once, in registers (no stack round trip), row a in the low
// 128-bit half and row b in the high one, in the lane order the pair tiles use:
//   dsc[0] = [d*sc_0..3 of a | of b], dsc[1] = [d*sc_4..7 of a | of b],
//   mq[0] = [dmin*m_0..3/2 of a | of b], mq[1] = [dmin*m_4..7/2 of a | of b].
// Each half holds bytes 0..15 of its super-block: d, dmin and the 12 packed bytes s[0..11] at
// 4..15. One shuffle gathers the bytes that hold the low 6 bits (or the top 2) of each output,
// A = [s0..3, s0..3, s4..7, s4..7], another the nibble bytes B = s8..11 in every quarter; then
//   sc_0..3 = A & 63,  sc_4..7 = (B & 15) | (A >> 6) << 4,
//   m_0..3  = A & 63,  m_4..7  = (B >> 4) | (A >> 6) << 4,
// the same values as q4k_scales_x86, and the same products (exact: f16 x 6-bit integer).
AVX2_INLINE void q4k_pair_scales_x86(const uint8_t *pa, const uint8_t *pb, __m256 *dsc, __m256 *mq) {
    const __m256i raw = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)pa), _mm_loadu_si128((const __m128i *)pb));
    const __m256i ia = _mm256_setr_epi8(4, 5, 6, 7, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11,
                                        4, 5, 6, 7, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11);
    const __m256i ib = _mm256_setr_epi8(12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15,
                                        12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15);
    const __m256i a = _mm256_shuffle_epi8(raw, ia), b = _mm256_shuffle_epi8(raw, ib);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    // Top 2 bits of each A byte to bits 4..5 (16-bit shift: the mask drops the neighbour's bits).
    const __m256i top = _mm256_and_si256(_mm256_srli_epi16(a, 2), _mm256_set1_epi8(0x30));
    // Dwords 1 and 3 of each half (sc_4..7, m_4..7) take the low / high nibbles of B.
    const __m256i nib = _mm256_blend_epi32(_mm256_and_si256(b, m4), _mm256_and_si256(_mm256_srli_epi16(b, 4), m4), 0x88);
    const __m256i v = _mm256_blend_epi32(_mm256_and_si256(a, _mm256_set1_epi8(63)), _mm256_or_si256(nib, top), 0xaa);
    // Bytes 4q..4q+3 of each half to int32 lanes: q = 0 sc_0..3, 1 sc_4..7, 2 m_0..3, 3 m_4..7.
#define KQ_WIDEN(q) _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, _mm256_setr_epi8(                          \
        4 * q, -1, -1, -1, 4 * q + 1, -1, -1, -1, 4 * q + 2, -1, -1, -1, 4 * q + 3, -1, -1, -1,        \
        4 * q, -1, -1, -1, 4 * q + 1, -1, -1, -1, 4 * q + 2, -1, -1, -1, 4 * q + 3, -1, -1, -1)))
    uint32_t ha, hb;  // d and dmin (f16) of each row
    memcpy(&ha, pa, 4);
    memcpy(&hb, pb, 4);
    const __m256 f = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_setr_epi32((int)ha, (int)hb, 0, 0)));  // dA dminA dB dminB
    const __m256 d = _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
    const __m256 dmin = _mm256_mul_ps(_mm256_permutevar8x32_ps(f, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3)), _mm256_set1_ps(0.5f));
    dsc[0] = _mm256_mul_ps(KQ_WIDEN(0), d);
    dsc[1] = _mm256_mul_ps(KQ_WIDEN(1), d);
    mq[0] = _mm256_mul_ps(KQ_WIDEN(2), dmin);
    mq[1] = _mm256_mul_ps(KQ_WIDEN(3), dmin);
#undef KQ_WIDEN
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

// A Q6_K row pair's scales in the pair tiles' lane order: rows a, b of block i's sub-blocks 2i
// (low 128 bits) and 2i + 1 (high). g[m] serves blocks 2m and 2m + 1:
//   g[m] = d * [a.sc[4m], a.sc[4m+2], b.sc[4m], b.sc[4m+2] | a.sc[4m+1], a.sc[4m+3], b.sc[4m+1], b.sc[4m+3]]
// (d of each row), so block 2m takes elements 0, 0, 2, 2 of each half and block 2m + 1 elements
// 1, 1, 3, 3 (q6k_block_lanes). The products are exact (11-bit x 8-bit).
AVX2_INLINE void q6k_pair_scales_x86(const uint8_t *pa, const uint8_t *pb, __m256 *g) {
    const __m128i sa = _mm_loadu_si128((const __m128i *)(pa + 192)), sb = _mm_loadu_si128((const __m128i *)(pb + 192));
    const __m128i idx = _mm_setr_epi8(0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15);
    const __m128i lo = _mm_shuffle_epi8(_mm_unpacklo_epi64(sa, sb), idx);  // g[0], g[1] bytes
    const __m128i hi = _mm_shuffle_epi8(_mm_unpackhi_epi64(sa, sb), idx);  // g[2], g[3] bytes
    const float da = kq_f16(pa + 208), db = kq_f16(pb + 208);
    const __m256 d = _mm256_setr_ps(da, da, db, db, da, da, db, db);
    g[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d);
    g[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d);
    g[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d);
    g[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d);
}

// Block i's lane scales from the table g[i / 2] (q6k_pair_scales_x86 times the input scales).
AVX2_INLINE __m256 q6k_block_lanes(__m256 t, const int i) {
    return (i & 1) ? _mm256_permute_ps(t, 0xf5) : _mm256_permute_ps(t, 0xa0);
}

// Element c of each 128-bit half of t, in all four lanes of that half (immediates spelled out:
// clang wants constants).
AVX2_INLINE __m256 kq_lane_broadcast(__m256 t, const int c) {
    switch (c & 3) {
    case 0: return _mm256_permute_ps(t, 0x00);
    case 1: return _mm256_permute_ps(t, 0x55);
    case 2: return _mm256_permute_ps(t, 0xaa);
    default: return _mm256_permute_ps(t, 0xff);
    }
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
