// x86-64 AVX2 + FMA + F16C quantizers for the converter. Compiled with per-function target
// attributes (no global -march) and used only when cpuid reports the features
// (gt_cpu_has_avx2, through gt_quantize_row's ISA selection).
//
// Both are bit-identical to the reference in quantize.c (gt_quantize_row_reference) for inputs
// without NaN: every value goes through the same IEEE operations in the same order.
//   - clampf(v, lo, hi) = v < lo ? lo : (v > hi ? hi : v) is max(lo, min(hi, v)) with the x86
//     operand rule (minps/maxps return the second operand when the comparison is false or
//     unordered), NaN and signed zeros included.
//   - round_even is the same add and subtract of 1.5 * 2^23.
//   - The q4 search keeps the reference's eight partial sums as the eight lanes of one ymm
//     register (lane l sums elements l, l + 8, l + 16, l + 24, one fused multiply-add each),
//     then adds the lanes in order 0..7, as the reference does.
//   - f32 <-> f16 uses F16C (vcvtps2ph with round-to-nearest-even, vcvtph2ps), which equals
//     gt_f32_to_f16 / gt_f16_to_f32 on every non-NaN value; the scales converted here are
//     never NaN.
// The block of 32 stays in four ymm registers through the whole search: one pass over the
// registers per candidate scale instead of a pass over memory.
#if defined(__x86_64__) || defined(_M_X64)

#include "quantize_internal.h"
#include "simd_x86.h"  // the runtime's AVX2 target macros and hmax8 (Sources/GemmaKernels)
#include <math.h>
#include <string.h>


// The lanes of v added in order 0..7 from 0.0f: the reference's `for (l) e += err[l]`.
AVX2_INLINE float lane_sum(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    float s = 0.0f;
    for (int l = 0; l < 8; l++) s += t[l];
    return s;
}

// round_even(clampf(x * id, lo, hi)), eight lanes.
AVX2_INLINE __m256 level(__m256 x, __m256 id, __m256 lo, __m256 hi) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 s = _mm256_max_ps(lo, _mm256_min_ps(hi, _mm256_mul_ps(x, id)));
    return _mm256_sub_ps(_mm256_add_ps(s, magic), magic);
}

AVX2_INLINE uint16_t to_f16(float v) { return (uint16_t)_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT); }
AVX2_INLINE float from_f16(uint16_t h) { return _cvtsh_ss(h); }

// The largest magnitude of the block held in v[0..3].
AVX2_INLINE float block_amax(const __m256 v[4], __m256 a[4]) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int k = 0; k < 4; k++) a[k] = _mm256_and_ps(v[k], absmask);
    return hmax8(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
}

// ---- q8 ----

AVX2_FN void gt_quantize_row_q8_avx2(const float *x, size_t n, uint8_t *o) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < n / GT_BLOCK; b++, x += GT_BLOCK, o += GT_Q8_BLOCK_BYTES) {
        __m256 v[4], a[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        float amax = block_amax(v, a);
        uint16_t dh = to_f16(amax / 127.0f);
        float d = from_f16(dh);
        __m256 id = _mm256_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(level(v[k], id, lo, hi));
        // packs work within 128-bit lanes: the dwords come out as 0-3 of q0, q1, q2, q3, then
        // 4-7 of each; the permutation puts them back in element order.
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, order);
        memcpy(o, &dh, 2);
        _mm256_storeu_si256((__m256i *)(o + 2), p);
    }
}

// ---- q4 ----
//
// Eight blocks at a time, one block per lane ("structure of arrays"): X[i] holds element i of
// the eight blocks. Every step of the reference's per-block search is then a plain vertical
// operation on eight independent blocks, with no horizontal sums, no scalar selection, and the
// long dependency chains of one block overlapping those of the seven others. The reference's
// eight partial sums of a block (lane l: elements l, l + 8, l + 16, l + 24) become eight
// accumulators added in order l = 0..7, and its `if (err < best_err)` a compare and blend.

// Transposes the 8 x 8 floats in r (r[i] lane j becomes r[j] lane i).
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        s[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(s[k], s[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(s[k], s[k + 4], 0x31);
    }
}

// d != 0 ? 1 / d : 0, per lane (the != is true for NaN, as in C).
AVX2_INLINE __m256 inverse(__m256 d) {
    return _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d), _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

// The reference's q4_error for eight blocks: the error sums (sxq / sqq too when asked).
AVX2_INLINE __m256 q4_error8(const __m256 X[GT_BLOCK], __m256 d, __m256 id, int want_err, __m256 *sxq, __m256 *sqq) {
    const __m256 lo = _mm256_set1_ps(-8.0f), hi = _mm256_set1_ps(7.0f);
    __m256 e_sum = _mm256_setzero_ps(), a_sum = _mm256_setzero_ps(), b_sum = _mm256_setzero_ps();
    for (int l = 0; l < 8; l++) {
        __m256 err = _mm256_setzero_ps(), a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (int i = l; i < GT_BLOCK; i += 8) {
            __m256 q = level(X[i], id, lo, hi);
            if (want_err) {
                __m256 e = _mm256_fnmadd_ps(d, q, X[i]);  // v - d*q, rounded once: fmaf(-d, q, v)
                err = _mm256_fmadd_ps(e, e, err);
            } else {
                a = _mm256_fmadd_ps(X[i], q, a);
                b = _mm256_fmadd_ps(q, q, b);
            }
        }
        if (want_err) {
            e_sum = _mm256_add_ps(e_sum, err);
        } else {
            a_sum = _mm256_add_ps(a_sum, a);
            b_sum = _mm256_add_ps(b_sum, b);
        }
    }
    if (!want_err) {
        *sxq = a_sum;
        *sqq = b_sum;
    }
    return e_sum;
}

// Quantizes 8 whole blocks at x (32 floats each, back to back) into o (8 x 18 bytes).
AVX2_INLINE void q4_group(const float *x, uint8_t *o) {
    const __m256 zero = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 X[GT_BLOCK];
    for (int k = 0; k < 4; k++) {
        __m256 r[8];
        for (int b = 0; b < 8; b++) r[b] = _mm256_loadu_ps(x + GT_BLOCK * b + 8 * k);
        transpose8(r);
        for (int t = 0; t < 8; t++) X[8 * k + t] = r[t];
    }
    // amax, and vmax: the first element whose magnitude is amax (a later tie does not replace it).
    __m256 amax = zero, vmax = zero;
    for (int i = 0; i < GT_BLOCK; i++) {
        __m256 a = _mm256_and_ps(X[i], absmask);
        vmax = _mm256_blendv_ps(vmax, X[i], _mm256_cmp_ps(a, amax, _CMP_GT_OQ));
        amax = _mm256_max_ps(amax, a);
    }
    // The candidates, in the reference's order; a later one wins only with a strictly smaller error.
    __m256 best_err = _mm256_set1_ps(INFINITY), best_d = zero, unused_a, unused_b;
    for (int c = 0; c < GT_Q4_CANDIDATES; c++) {
        __m256 d = _mm256_div_ps(vmax, _mm256_set1_ps(gt_q4_divisors[c]));
        __m256 err = q4_error8(X, d, inverse(d), 1, &unused_a, &unused_b);
        __m256 better = _mm256_cmp_ps(err, best_err, _CMP_LT_OQ);
        best_err = _mm256_blendv_ps(best_err, err, better);
        best_d = _mm256_blendv_ps(best_d, d, better);
    }
    // The least-squares scale of the winner's levels (b > 0 ? a / b : d). Where no candidate
    // won (every error NaN), best_d is 0 and so is this, as the reference's best_ls.
    __m256 sa, sb;
    q4_error8(X, best_d, inverse(best_d), 0, &sa, &sb);
    __m256 ls = _mm256_blendv_ps(best_d, _mm256_div_ps(sa, sb), _mm256_cmp_ps(sb, zero, _CMP_GT_OQ));
    __m256 ls_err = q4_error8(X, ls, inverse(ls), 1, &unused_a, &unused_b);
    best_d = _mm256_blendv_ps(best_d, ls, _mm256_cmp_ps(ls_err, best_err, _CMP_LT_OQ));
    best_d = _mm256_and_ps(best_d, _mm256_cmp_ps(amax, zero, _CMP_GT_OQ));  // all-zero blocks: d = 0

    // The scales as stored (f16), and the levels against them.
    __m128i dh = _mm256_cvtps_ph(best_d, _MM_FROUND_TO_NEAREST_INT);
    __m256 id = inverse(_mm256_cvtph_ps(dh));
    const __m256 lo = _mm256_set1_ps(-8.0f), hi = _mm256_set1_ps(7.0f);
    const __m256i eight = _mm256_set1_epi32(8);
    __m256i P[GT_BLOCK / 2];  // P[j] lane b: byte j of block b (element j low, j + 16 high)
    for (int j = 0; j < GT_BLOCK / 2; j++) {
        __m256i ql = _mm256_add_epi32(_mm256_cvtps_epi32(level(X[j], id, lo, hi)), eight);
        __m256i qh = _mm256_add_epi32(_mm256_cvtps_epi32(level(X[j + 16], id, lo, hi)), eight);
        P[j] = _mm256_or_si256(ql, _mm256_slli_epi32(qh, 4));
    }
    // Bytes j = 4m..4m+3 of the eight blocks into one register: after the packs, 128-bit lane h
    // holds byte-major [j][block 4h..4h+3]; the shuffle makes it block-major (a dword per block).
    const __m256i to_block_major = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                                    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m256i t[4];
    for (int m = 0; m < 4; m++) {
        __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(P[4 * m], P[4 * m + 1]),
                                        _mm256_packus_epi32(P[4 * m + 2], P[4 * m + 3]));
        t[m] = _mm256_shuffle_epi8(w, to_block_major);
    }
    // A 4 x 4 dword transpose per lane: r[k] lane h = the 16 bytes of block 4h + k.
    __m256i u0 = _mm256_unpacklo_epi32(t[0], t[1]), u1 = _mm256_unpackhi_epi32(t[0], t[1]);
    __m256i u2 = _mm256_unpacklo_epi32(t[2], t[3]), u3 = _mm256_unpackhi_epi32(t[2], t[3]);
    __m256i r[4] = { _mm256_unpacklo_epi64(u0, u2), _mm256_unpackhi_epi64(u0, u2),
                     _mm256_unpacklo_epi64(u1, u3), _mm256_unpackhi_epi64(u1, u3) };
    uint16_t scales[8];
    _mm_storeu_si128((__m128i *)scales, dh);
    for (int k = 0; k < 4; k++) {
        memcpy(o + GT_Q4_BLOCK_BYTES * k, &scales[k], 2);
        _mm_storeu_si128((__m128i *)(o + GT_Q4_BLOCK_BYTES * k + 2), _mm256_castsi256_si128(r[k]));
        memcpy(o + GT_Q4_BLOCK_BYTES * (k + 4), &scales[k + 4], 2);
        _mm_storeu_si128((__m128i *)(o + GT_Q4_BLOCK_BYTES * (k + 4) + 2), _mm256_extracti128_si256(r[k], 1));
    }
}

AVX2_FN void gt_quantize_row_q4_avx2(const float *x, size_t n, uint8_t *o) {
    size_t nb = n / GT_BLOCK, b = 0;
    for (; b + 8 <= nb; b += 8) q4_group(x + b * GT_BLOCK, o + b * GT_Q4_BLOCK_BYTES);
    if (b < nb) {
        // The last 1..7 blocks, padded with zero blocks (which do not affect the others).
        float tail[8 * GT_BLOCK];
        uint8_t out[8 * GT_Q4_BLOCK_BYTES];
        memset(tail, 0, sizeof(tail));
        memcpy(tail, x + b * GT_BLOCK, (nb - b) * GT_BLOCK * sizeof(float));
        q4_group(tail, out);
        memcpy(o + b * GT_Q4_BLOCK_BYTES, out, (nb - b) * GT_Q4_BLOCK_BYTES);
    }
}

// ---- bf16 widening ----

AVX2_FN size_t gt_widen_bf16_avx2(const void *src, size_t n, float *dst) {
    const uint8_t *p = (const uint8_t *)src;  // any alignment
    const __m256i expmask = _mm256_set1_epi16(0x7f80);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(p + 2 * i));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h, expmask), expmask));
        __m256i w0 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16);
        __m256i w1 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16);
        _mm256_storeu_si256((__m256i *)(dst + i), w0);
        _mm256_storeu_si256((__m256i *)(dst + i + 8), w1);
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        if ((h & 0x7f80) == 0x7f80) bad = _mm256_set1_epi32(-1);
        uint32_t w = (uint32_t)h << 16;
        memcpy(dst + i, &w, 4);
    }
    if (_mm256_testz_si256(bad, bad)) return n;
    for (i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        if ((h & 0x7f80) == 0x7f80) return i;
    }
    return n;
}

#endif
