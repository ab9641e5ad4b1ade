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
#include <stdint.h>

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
/// buffer's two halves and the keys of the current batch, say), with an exact softmax over a full
/// score row. The forward pass uses gt_attention_rows (below); this is kept as a reference:
///   scores[t] = dot(q, k_t) * scale, then, when softcap > 0, softcap * tanh(scores[t] / softcap);
///   p = softmax(scores);  out = sum_t p[t] * v_t.
/// `scores` is scratch space for the total count; `out` (head_dim floats) is overwritten. With
/// one span and softcap 0 this is exactly gt_attention_head.
void gt_attention_head_spans(const float *q, const gt_kv_span *spans, size_t span_count, size_t stride,
                             size_t head_dim, float scale, float softcap, float *scores, float *out);

// ---- tiled attention (attention_tiled.c): what the forward pass uses ----
//
// Blocks of query rows that share one KV head (the query heads of a GQA group, for several
// tokens) go over the keys in chunks of 64 positions with an online softmax: per row a running
// max m and sum l, and an output accumulator rescaled by exp(m_old - m_new) when m grows. No
// score row longer than a chunk is ever formed, and each chunk's keys and values are read once
// for the whole block. Dot products, the value accumulation and exp run in SIMD (AVX-512, AVX2,
// NEON, chosen with the matrix kernels' path: gt_kernel_isa_id, so GEMMA_TINY_KERNELS applies).
//
// Determinism: chunks are aligned to absolute positions and a row's arithmetic never depends on
// the other rows of its block, so on one path a row's result is bit-identical whether it is
// computed alone (decoding), in a batch, in any block, on any thread, and however its positions
// are split into runs (a ring buffer's two halves, the batch). Paths differ from each other and
// from the exact softmax only by f32 rounding (the sums run in another order, exp is a
// polynomial): kernels-test checks every path against an f64 softmax, within 5e-6 * max|v| per
// output (1e-5 soft-capped) for scores spread over -10..10; measured up to 1e-6.

//
// Segments: a row's softmax state (max, sum, output sums) restarts at every multiple of
// GT_ATTENTION_SEGMENT positions, and the segments' states are folded in position order
// (out = sum / total, the older state rescaled by exp of the max difference). A long row can
// therefore be split over threads, each computing some segments' states
// (gt_attention_partials), then folded (gt_attention_merge), with exactly the result of one
// gt_attention_rows call: decoding a long context reads each key once, not once per thread.

/// A run of `count` consecutive positions from `first` on: position first + t has its key at
/// keys + t * stride and its value at values + t * stride.
typedef struct {
    const float *keys;
    const float *values;
    size_t first;
    size_t count;
} gt_kv_run;

/// One query row: `q` (head_dim floats) attends to positions lo..<hi (lo < hi), result to `out`.
typedef struct {
    const float *q;
    float *out;
    size_t lo;
    size_t hi;
} gt_attention_row;

/// Rows gt_attention_rows processes together (it takes any number, this many at a time).
#define GT_ATTENTION_BLOCK_ROWS 16

/// Positions per segment (a multiple of the kernel's chunk of 64; see "Segments" above).
#define GT_ATTENTION_SEGMENT 256

/// Floats per row and segment in a partials buffer: the state's max, its sum, then head_dim
/// output sums.
#define GT_ATTENTION_PARTIAL_FLOATS(head_dim) ((head_dim) + 2)

/// Bytes of scratch space gt_attention_rows needs for `head_dim` (one buffer per thread).
size_t gt_attention_scratch_bytes(size_t head_dim);

/// Attention of `row_count` query rows over the runs (sorted by position, covering every
/// position some row needs; the rows' ranges must form one interval, as consecutive tokens'
/// do): out = sum_t softmax_t(s_t) v_t over t in lo..<hi, s_t = dot(q, k_t) * scale, soft-capped
/// (softcap * tanh(s_t / softcap)) when softcap > 0. Rows are processed 16 at a time.
void gt_attention_rows(const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs, size_t run_count,
                       size_t stride, size_t head_dim, float scale, float softcap, void *scratch);

/// The same on an explicit path: a GT_ISA_* id (gemma_kernels.h); 0 (scalar) is the portable
/// reference; an id this CPU cannot run falls back to it. Returns the id used.
int gt_attention_rows_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs,
                          size_t run_count, size_t stride, size_t head_dim, float scale, float softcap, void *scratch);

// ---- the f16 KV cache (attention_tiled.c, f16_store.c) ----
//
// A cache of IEEE halves (uint16_t bits) is read by the same kernel: every path widens each half
// to f32 exactly as it loads it (scalar: in software; AVX2 / AVX-512: vcvtph2ps, F16C, which
// gt_isa_supported checks with AVX2; NEON: vcvt_f32_f16), then runs the f32 steps unchanged. So
// the guarantees above hold as stated, against an f64 softmax of the same f16-rounded keys and
// values, and a row is bit-identical batched, alone, threaded, however its runs are split.

/// gt_kv_run over an f16 cache: keys and values are halves, `stride` apart (in halves).
typedef struct {
    const uint16_t *keys;
    const uint16_t *values;
    size_t first;
    size_t count;
} gt_kv_run_f16;

/// gt_attention_rows over an f16 cache (every run f16; `stride` in halves).
void gt_attention_rows_f16(const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                           size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                           void *scratch);

/// The same on an explicit path (as gt_attention_rows_isa). Returns the id used.
int gt_attention_rows_f16_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                              size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                              void *scratch);

/// The states of segments seg_begin..<seg_end (segment s: positions s * GT_ATTENTION_SEGMENT
/// up to the next multiple) of at most GT_ATTENTION_BLOCK_ROWS rows, each row over its own
/// lo..<hi: segment s, row r at partials + ((s - seg_begin) * row_count + r) *
/// GT_ATTENTION_PARTIAL_FLOATS(head_dim); a segment a row does not reach holds max -inf and
/// sum 0 (its output sums are unspecified: a fold skips it). The runs must cover the positions
/// those segments and rows need. `out` is not used.
void gt_attention_partials(const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs, size_t run_count,
                           size_t stride, size_t head_dim, float scale, float softcap, size_t seg_begin,
                           size_t seg_end, float *partials, void *scratch);
void gt_attention_partials_f16(const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                               size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                               size_t seg_begin, size_t seg_end, float *partials, void *scratch);

/// The same on an explicit path (as gt_attention_rows_isa). Returns the id used.
int gt_attention_partials_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs,
                              size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                              size_t seg_begin, size_t seg_end, float *partials, void *scratch);
int gt_attention_partials_f16_isa(int isa, const gt_attention_row *rows, size_t row_count,
                                  const gt_kv_run_f16 *runs, size_t run_count, size_t stride, size_t head_dim,
                                  float scale, float softcap, size_t seg_begin, size_t seg_end, float *partials,
                                  void *scratch);

/// Folds `seg_count` consecutive segments' states of `partials` (laid out as
/// gt_attention_partials writes them, for the same rows) in order and writes each row's `out`:
/// with every segment a row reaches included, bit-identical to gt_attention_rows on that path.
void gt_attention_merge(const gt_attention_row *rows, size_t row_count, const float *partials, size_t seg_count,
                        size_t head_dim);

/// dst[i] = src[i] as an IEEE half, rounded to nearest even, for the f16 KV cache. Beyond the
/// half range it saturates: |x| > 65504 (inf included) is stored as +-65504, the largest half,
/// so one huge key cannot turn a whole softmax row into NaN; NaN stays NaN (quiet, the top bits
/// of its payload kept, as the hardware conversions do). Every path (scalar; F16C vcvtps2ph on
/// the AVX2 / AVX-512 paths; NEON vcvt_f16_f32) gives the same bits.
void gt_f16_store(uint16_t *dst, const float *src, size_t n);

/// The same on an explicit path (a GT_ISA_* id, falling back to scalar). Returns the id used:
/// GT_ISA_AVX2 for both x86 SIMD paths (F16C), GT_ISA_NEON for both AArch64 ones.
int gt_f16_store_isa(int isa, uint16_t *dst, const float *src, size_t n);

/// Soft-capping: x[i] = cap * tanh(x[i] / cap).
void gt_softcap(float *x, size_t n, float cap);

/// 1 if every x[i] is finite, 0 if one is a NaN or an infinity (their exponent bits all set).
/// Integer operations only, so the loop vectorizes: cheap enough to run on every token's logits.
int gt_all_finite(const float *x, size_t n);

/// GeGLU: gate[i] = gelu_tanh(gate[i]) * up[i], with
///   gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))),
/// computed as g / (1 + exp(-2 sqrt(2/pi) (g + 0.044715 g^3))) with a vectorizable exp (within
/// a few ulp of the exact function, in f32).
void gt_gelu_tanh_mul(float *gate, const float *up, size_t n);

#ifdef __cplusplus
}
#endif
#endif
