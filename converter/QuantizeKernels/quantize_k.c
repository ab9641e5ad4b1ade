// K-quant quantizers (converter side): ggml's reference quantizers for Q4_K and Q6_K without an
// importance matrix (quantize_row_q4_K_ref / quantize_row_q6_K_ref in ggml-quants.c, which
// llama.cpp's Q4_K_M / Q6_K use when no imatrix is given), reimplemented here.
//
// Q4_K, per sub-block of 32 (make_qkx2_quants with nmax 15, rmin -1, rdelta 0.1, 20 steps):
//   weights w_i = sqrt(mean x^2) + |x_i|; min = min(0, min x), max = max x;
//   start from iscale = 15 / (max - min): levels l_i = clamp(round(iscale (x_i - min)), 0, 15),
//   weighted squared error of x ~ (1 / iscale) l + min;
//   then for k = 0..20, iscale = (14 + 0.1 k) / (max - min): levels as above, the weighted least-
//   squares scale and offset for them (offset forced to 0 and the scale refitted if the fit wants
//   it positive), and keep them if their weighted error is smaller. A win replaces `min`, which the
//   later steps then use (for their levels and their max - min), as ggml does.
// Q6_K, per sub-block of 16 (make_qx_quants with nmax 32, rmse_type 1: weights x_i^2):
//   max = the element of largest magnitude (the first on a tie); for iscale = -32 / max, then
//   -(32 + 0.1 is) / max for is = -9..9 (not 0): levels l_i = clamp(round(iscale x_i), -32, 31),
//   scale = sum w x l / sum w l^2; keep the candidate with the largest (sum w x l)^2 / sum w l^2
//   (the smallest weighted error for its least-squares scale).
// Then per super-block (gt_q4k_scales / gt_q6k_scales): the sub-block scales (and mins) to six bits
// against d = max / 63 (Q4_K), or to int8 against d = max / -128 (Q6_K), and every value
// re-quantized with its rounded scale.
//
// Every operation is ggml's, in ggml's order, and nothing is fused: with no importance matrix
// the output is byte for byte that of ggml built without FMA contraction (x86-64 without
// -march=native), for finite inputs below ~1e7 in magnitude. Larger ones overflow ggml's f16
// scales; here the scales saturate at 65504 instead, and ggml's nearest_int (undefined beyond
// 2^22, and for NaN) is a clamp first. quantize_k_simd.h (AVX2, AVX-512) performs the same
// operations on 8 or 16 sub-blocks at once and writes the same bytes.
#include "kquant_quantize.h"
#include <math.h>
#include <string.h>

// No fused multiply-adds anywhere in this file (AArch64 compilers would contract `s += a * b`).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static inline float sat_f16(float v) { return v > 65504.0f ? 65504.0f : (v < -65504.0f ? -65504.0f : v); }

// ---- Q4_K ----

// The search for one sub-block of 32: returns the scale, stores -min (the offset as stored: the
// value of level 0 is -the_min) and the levels L of the winner.
static float q4k_search(const float *x, uint8_t *L, float *the_min) {
    float sum_x2 = 0.0f;
    for (int i = 0; i < GT_Q4K_SUB; i++) sum_x2 += x[i] * x[i];
    float av_x = sqrtf(sum_x2 / 32.0f);
    float w[GT_Q4K_SUB];
    for (int i = 0; i < GT_Q4K_SUB; i++) w[i] = av_x + fabsf(x[i]);

    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < GT_Q4K_SUB; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        memset(L, 0, GT_Q4K_SUB);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = 15.0f / (max - min);
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < GT_Q4K_SUB; i++) {
        float l = gt_kq_level(iscale * (x[i] - min), 0.0f, 15.0f);
        L[i] = (uint8_t)l;
        float diff = scale * l + min - x[i];
        best += w[i] * (diff * diff);
    }
    for (int k = 0; k < GT_Q4K_STEPS; k++) {
        iscale = gt_q4k_step(k) / (max - min);
        float la[GT_Q4K_SUB];
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            float l = gt_kq_level(iscale * (x[i] - min), 0.0f, 15.0f);
            la[i] = l;
            float wl = w[i] * l;
            sum_l += wl;
            sum_l2 += wl * l;
            sum_xl += wl * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < GT_Q4K_SUB; i++) {
                float diff = this_scale * la[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                for (int i = 0; i < GT_Q4K_SUB; i++) L[i] = (uint8_t)la[i];
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void gt_q4k_scales(const float *scales, const float *mins, uint8_t *out, float *d, float *dm) {
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t *s = out + 4;
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = (int)gt_kq_level(inv_scale * scales[j], 0.0f, 63.0f);
        int lm = (int)gt_kq_level(inv_min * mins[j], 0.0f, 63.0f);
        if (j < 4) {
            s[j] = (uint8_t)ls;
            s[j + 4] = (uint8_t)lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0x0F) | ((lm & 0x0F) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    uint16_t dh = gt_f32_to_f16(sat_f16(max_scale / 63.0f));
    uint16_t mh = gt_f32_to_f16(sat_f16(max_min / 63.0f));
    memcpy(out, &dh, 2);
    memcpy(out + 2, &mh, 2);
    float d_all = gt_f16_to_f32(dh), m_all = gt_f16_to_f32(mh);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        gt_q4k_scale_min(j, s, &sc, &m);
        d[j] = d_all * (float)sc;
        dm[j] = m_all * (float)m;
    }
}

void gt_q4k_pack_levels(const uint8_t *L, uint8_t *out) {
    uint8_t *q = out + 16;
    for (int g = 0; g < GT_KBLOCK; g += 64, q += 32) {
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[g + l] | (L[g + l + 32] << 4));
    }
}

void gt_quantize_row_q4k_ref(const float *x, size_t n, uint8_t *out) {
    for (size_t b = 0; b < n / GT_KBLOCK; b++, x += GT_KBLOCK, out += GT_Q4K_BLOCK_BYTES) {
        float scales[8], mins[8], d[8], dm[8];
        uint8_t L[GT_KBLOCK];
        for (int j = 0; j < 8; j++) scales[j] = q4k_search(x + GT_Q4K_SUB * j, L + GT_Q4K_SUB * j, &mins[j]);
        gt_q4k_scales(scales, mins, out, d, dm);
        // The values again with the rounded scales; a sub-block whose scale rounds to 0 keeps
        // the search's levels, as ggml does.
        for (int j = 0; j < 8; j++) {
            if (d[j] == 0.0f) continue;
            for (int i = 0; i < GT_Q4K_SUB; i++) {
                L[GT_Q4K_SUB * j + i] = (uint8_t)gt_kq_level((x[GT_Q4K_SUB * j + i] + dm[j]) / d[j], 0.0f, 15.0f);
            }
        }
        gt_q4k_pack_levels(L, out);
    }
}
// ---- Q6_K ----

// The search for one sub-block of 16: returns the (signed) scale and stores the winner's levels
// plus 32 in L (all 0 for a sub-block below 1e-15, as ggml).
static float q6k_search(const float *x, uint8_t *L) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < GT_Q6K_SUB; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < 1e-15f) {
        memset(L, 0, GT_Q6K_SUB);
        return 0.0f;
    }
    float iscale = -32.0f / max, best_iscale = iscale;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < GT_Q6K_SUB; i++) {
        float l = gt_kq_level(iscale * x[i], -32.0f, 31.0f);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = gt_q6k_step(is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            float l = gt_kq_level(iscale * x[i], -32.0f, 31.0f);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            best_iscale = iscale;
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    for (int i = 0; i < GT_Q6K_SUB; i++) L[i] = (uint8_t)(gt_kq_level(best_iscale * x[i], -32.0f, 31.0f) + 32.0f);
    return scale;
}

int gt_q6k_scales(const float *scales, uint8_t *out, float *d) {
    float max_scale = 0.0f, max_abs = 0.0f;
    for (int j = 0; j < 16; j++) {
        float a = fabsf(scales[j]);
        if (a > max_abs) { max_abs = a; max_scale = scales[j]; }
    }
    if (max_abs < 1e-15f) {
        memset(out, 0, GT_Q6K_BLOCK_BYTES);  // also d = +0
        return 0;
    }
    float iscale = -128.0f / max_scale;
    uint16_t dh = gt_f32_to_f16(sat_f16(1.0f / iscale));
    memcpy(out + 208, &dh, 2);
    int8_t *sc = (int8_t *)(out + 192);
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)gt_kq_level(iscale * scales[j], -128.0f, 127.0f);
    float d_all = gt_f16_to_f32(dh);
    for (int j = 0; j < 16; j++) d[j] = d_all * (float)sc[j];
    return 1;
}

void gt_q6k_pack_levels(const uint8_t *L, uint8_t *out) {
    uint8_t *ql = out, *qh = out + 128;
    for (int h = 0; h < GT_KBLOCK; h += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + h + l;
            ql[l] = (uint8_t)((v[0] & 0x0F) | ((v[64] & 0x0F) << 4));
            ql[l + 32] = (uint8_t)((v[32] & 0x0F) | ((v[96] & 0x0F) << 4));
            qh[l] = (uint8_t)((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) | ((v[96] >> 4) << 6));
        }
    }
}

void gt_quantize_row_q6k_ref(const float *x, size_t n, uint8_t *out) {
    for (size_t b = 0; b < n / GT_KBLOCK; b++, x += GT_KBLOCK, out += GT_Q6K_BLOCK_BYTES) {
        float scales[16], d[16];
        uint8_t L[GT_KBLOCK];
        for (int j = 0; j < 16; j++) scales[j] = q6k_search(x + GT_Q6K_SUB * j, L + GT_Q6K_SUB * j);
        if (!gt_q6k_scales(scales, out, d)) continue;
        for (int j = 0; j < 16; j++) {
            if (d[j] == 0.0f) continue;  // keeps the search's levels, as ggml does
            for (int i = 0; i < GT_Q6K_SUB; i++) {
                L[GT_Q6K_SUB * j + i] = (uint8_t)(gt_kq_level(x[GT_Q6K_SUB * j + i] / d[j], -32.0f, 31.0f) + 32.0f);
            }
        }
        gt_q6k_pack_levels(L, out);
    }
}
