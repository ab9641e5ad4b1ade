// The forward pass's vector math besides the matrix products: see gemma_ops.h.
#include "gemma_ops.h"
#include "cpu_features.h"
#include "gemma_kernels.h"
#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#include <string.h>

static inline __attribute__((always_inline)) float dot_body(const float *restrict a, const float *restrict b, size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    }
    float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void gt_attention_head(const float *restrict q, const float *restrict keys, const float *restrict values,
                       size_t stride, size_t n, size_t head_dim, float scale, float *restrict scores,
                       float *restrict out) {
    const gt_kv_span span = {keys, values, n};
    gt_attention_head_spans(q, &span, 1, stride, head_dim, scale, 0.0f, scores, out);
}

static inline __attribute__((always_inline)) void attention_body(const float *restrict q, const gt_kv_span *spans, size_t span_count,
                                                                size_t stride, size_t head_dim, float scale, float softcap,
                                                                float *restrict scores, float *restrict out) {
    // scores = q . k_t * scale, soft-capped if asked: cap * tanh(score / cap)
    float max = -INFINITY;
    size_t n = 0;
    for (size_t s = 0; s < span_count; s++) {
        const float *restrict keys = spans[s].keys;
        for (size_t t = 0; t < spans[s].count; t++, n++) {
            float v = dot_body(q, keys + t * stride, head_dim) * scale;
            if (softcap > 0) v = tanhf(v / softcap) * softcap;
            scores[n] = v;
            if (v > max) max = v;
        }
    }
    // p = softmax(scores)
    float sum = 0;
    for (size_t t = 0; t < n; t++) {
        float e = expf(scores[t] - max);
        scores[t] = e;
        sum += e;
    }
    // out = sum_t p[t] v_t
    memset(out, 0, head_dim * sizeof(float));
    n = 0;
    for (size_t s = 0; s < span_count; s++) {
        const float *restrict values = spans[s].values;
        for (size_t t = 0; t < spans[s].count; t++, n++) {
            const float p = scores[n] / sum;
            const float *restrict v = values + t * stride;
            for (size_t i = 0; i < head_dim; i++) out[i] += p * v[i];
        }
    }
}

void gt_softcap(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}

int gt_all_finite(const float *x, size_t n) {
    uint32_t special = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        special |= (bits & 0x7F800000u) == 0x7F800000u;
    }
    return !special;
}

/// exp(x) for x in [-87, 88] (clamped outside), within 2 ulp: exp(x) = 2^n exp(r) with
/// n = round(x / ln 2), |r| <= ln(2) / 2, exp(r) by Cephes' degree-7 polynomial. Branch-free,
/// so loops calling it vectorize.
static inline float gt_expf(float x) {
    x = fminf(fmaxf(x, -87.0f), 88.0f);
    const float shift = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
    const float n = (x * 1.44269504088896341f + shift) - shift;
    float r = x - n * 0.693359375f;   // ln 2 in two parts, so that r is exact
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;  // 2^n
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline __attribute__((always_inline)) void gelu_body(float *restrict gate, const float *restrict up, size_t n) {
    // 0.5 g (1 + tanh(u)) = g sigmoid(2u) = g / (1 + exp(-2u)): the same function, without
    // the cancellation of 1 + tanh(u) for negative u, and vectorizable (no libm call).
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float u = c * (g + 0.044715f * g * g * g);
        gate[i] = g / (1.0f + gt_expf(-2.0f * u)) * up[i];
    }
}

// ---- entry points: the bodies above compiled twice, for the baseline ISA and for AVX2 ----
// AVX2 without FMA: twice the vector width, and no multiply-add contraction, so both copies
// round every operation alike and give bit-identical results.
#if defined(__x86_64__) || defined(_M_X64)
#define OPS_AVX2 __attribute__((target("avx2")))
OPS_AVX2 static float dot_avx2(const float *a, const float *b, size_t n) { return dot_body(a, b, n); }
OPS_AVX2 static void attention_avx2(const float *q, const gt_kv_span *spans, size_t span_count, size_t stride,
                                    size_t head_dim, float scale, float softcap, float *scores, float *out) {
    attention_body(q, spans, span_count, stride, head_dim, scale, softcap, scores, out);
}
OPS_AVX2 static void gelu_avx2(float *gate, const float *up, size_t n) { gelu_body(gate, up, n); }
// Every x86 path but the portable one ("scalar", e.g. GEMMA_TINY_KERNELS=scalar) has AVX2; the
// check follows the selected path, so that forcing "scalar" really runs the portable copies.
#define USE_AVX2 (gt_kernel_isa_id() != GT_ISA_SCALAR && gt_cpu_has_avx2())

// gelu_body 16 lanes at a time, written out operation by operation (no fused multiply-adds, the
// clamps' NaN handling as fmaxf / fminf's for the clamped argument), so that it rounds exactly as
// the AVX2 and scalar copies do; the tail goes to gelu_body.
__attribute__((target("avx512f"))) static void gelu_avx512(float *gate, const float *up, size_t n) {
    const __m512 c = _mm512_set1_ps(0.7978845608028654f), k = _mm512_set1_ps(0.044715f);
    const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f), shift = _mm512_set1_ps(12582912.0f);
    const __m512 one = _mm512_set1_ps(1.0f), m2 = _mm512_set1_ps(-2.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 u = _mm512_mul_ps(c, _mm512_add_ps(g, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(k, g), g), g)));
        // gt_expf(-2u): max(x, -87) keeps -87 for a NaN x, as fmaxf does; min(., 88) then sees no NaN.
        const __m512 x = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(m2, u), lo), hi);
        const __m512 nf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), shift), shift);
        __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(nf, _mm512_set1_ps(0.693359375f)));
        r = _mm512_sub_ps(r, _mm512_mul_ps(nf, _mm512_set1_ps(-2.12194440e-4f)));
        __m512 p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
        p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), one);
        const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(nf), _mm512_set1_epi32(127)), 23);
        const __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    gelu_body(gate + i, up + i, n - i);
}
#define USE_AVX512 (gt_kernel_isa_id() == GT_ISA_AVX512_VNNI)
#else
#define USE_AVX2 0
#define USE_AVX512 0
#define gelu_avx512 gelu_body
#define dot_avx2 dot_body
#define attention_avx2 attention_body
#define gelu_avx2 gelu_body
#endif

float gt_dot_f32(const float *restrict a, const float *restrict b, size_t n) {
    return USE_AVX2 ? dot_avx2(a, b, n) : dot_body(a, b, n);
}

void gt_attention_head_spans(const float *restrict q, const gt_kv_span *spans, size_t span_count,
                             size_t stride, size_t head_dim, float scale, float softcap,
                             float *restrict scores, float *restrict out) {
    if (USE_AVX2) attention_avx2(q, spans, span_count, stride, head_dim, scale, softcap, scores, out);
    else attention_body(q, spans, span_count, stride, head_dim, scale, softcap, scores, out);
}

void gt_gelu_tanh_mul(float *restrict gate, const float *restrict up, size_t n) {
    if (USE_AVX512) gelu_avx512(gate, up, n);
    else if (USE_AVX2) gelu_avx2(gate, up, n);
    else gelu_body(gate, up, n);
}
