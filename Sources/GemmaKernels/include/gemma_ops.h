// gemma_ops: the forward pass's vector math besides the matrix products (those are in
// gemma_kernels.h): attention of one head over the KV cache (with optional soft-capping), soft-capping,
// and the GeGLU activation.
//
// Written as plain loops that clang vectorizes with the baseline ISA (SSE2 on x86-64, NEON on
// arm64). Reductions use 8 independent partial sums in a fixed order, so a result does not
// depend on how (or whether) the loop was vectorized.
#ifndef GEMMA_OPS_H
#define GEMMA_OPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// sum a[i] * b[i], i < n (8 partial sums, combined pairwise).
float gt_dot_f32(const float *a, const float *b, size_t n);

/// Attention of one query head over `n` cached positions:
///   scores[t] = dot(q, k_t) * scale,  p = softmax(scores),  out = sum_t p[t] * v_t
/// where k_t = keys + t * stride and v_t = values + t * stride, each `head_dim` floats.
/// `scores` is scratch space for `n` floats; `out` (head_dim floats) is overwritten.
void gt_attention_head(const float *q, const float *keys, const float *values, size_t stride,
                       size_t n, size_t head_dim, float scale, float *scores, float *out);

/// A run of `count` consecutive cache positions: the t-th key at keys + t * stride, its value at
/// values + t * stride.
typedef struct {
    const float *keys;
    const float *values;
    size_t count;
} gt_kv_span;

/// Attention of one query head over the positions of `span_count` spans, taken in order (a ring
/// buffer's two halves and the keys of the current batch, say):
///   scores[t] = dot(q, k_t) * scale, then, when softcap > 0, softcap * tanh(scores[t] / softcap);
///   p = softmax(scores);  out = sum_t p[t] * v_t.
/// `scores` is scratch space for the total count; `out` (head_dim floats) is overwritten. With
/// one span and softcap 0 this is exactly gt_attention_head.
void gt_attention_head_spans(const float *q, const gt_kv_span *spans, size_t span_count, size_t stride,
                             size_t head_dim, float scale, float softcap, float *scores, float *out);

/// Soft-capping: x[i] = cap * tanh(x[i] / cap).
void gt_softcap(float *x, size_t n, float cap);

/// GeGLU: gate[i] = gelu_tanh(gate[i]) * up[i], with
///   gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))),
/// computed as g / (1 + exp(-2 sqrt(2/pi) (g + 0.044715 g^3))) with a vectorizable exp (within
/// a few ulp of the exact function, in f32).
void gt_gelu_tanh_mul(float *gate, const float *up, size_t n);

#ifdef __cplusplus
}
#endif
#endif
