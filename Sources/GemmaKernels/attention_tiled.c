// Tiled prompt and decode attention with an online softmax (design: gemma_ops.h). This file is
// the ISA-independent driver plus the portable reference steps; attention_{avx2,avx512,neon}.c
// hold the SIMD versions of the three per-chunk steps (attention_internal.h).
#include "gemma_ops.h"
#include "gemma_kernels.h"
#include "attention_internal.h"

// ---- the portable steps (the reference every SIMD path is tested against) ----

static void scores_scalar(const float *const *q, size_t nr, const float *const *k, size_t nk, size_t d, float *s,
                          size_t lds) {
    for (size_t r = 0; r < nr; r++) {
        for (size_t j = 0; j < nk; j++) {
            const float *a = q[r], *b = k[j];
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            size_t i = 0;
            for (; i + 8 <= d; i += 8) {
                for (int t = 0; t < 8; t++) acc[t] += a[i + t] * b[i + t];
            }
            float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; i < d; i++) sum += a[i] * b[i];
            s[r * lds + j] = sum;
        }
    }
}

static float transform_max_scalar(float *s, size_t b, size_t e, float scale, float softcap) {
    float max = -INFINITY;
    for (size_t j = 0; j < GT_ATT_CHUNK; j++) {
        float x = -INFINITY;
        if (j >= b && j < e) {
            x = s[j] * scale;
            if (softcap > 0) x = tanhf(x / softcap) * softcap;
            if (x > max) max = x;
        }
        s[j] = x;
    }
    return max;
}

static float exp_sum_scalar(float *s, float m) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t j = 0; j < GT_ATT_CHUNK; j++) {
        const float p = gt_att_expf(s[j] - m);
        s[j] = p;
        acc[j % 8] += p;
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void accumulate_scalar(const float *p, size_t ldp, size_t nr, const float *const *v, size_t nk, size_t d,
                              float *o, size_t ldo) {
    for (size_t r = 0; r < nr; r++) {
        float *out = o + r * ldo;
        for (size_t j = 0; j < nk; j++) {
            const float w = p[r * ldp + j];
            if (w == 0.0f) continue;  // adds exactly nothing
            const float *x = v[j];
            for (size_t i = 0; i < d; i++) out[i] += w * x[i];
        }
    }
}

static void scores_f16_scalar(const float *const *q, size_t nr, const uint16_t *const *k, size_t nk, size_t d,
                              float *s, size_t lds) {
    for (size_t r = 0; r < nr; r++) {
        for (size_t j = 0; j < nk; j++) {
            const float *a = q[r];
            const uint16_t *b = k[j];
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            size_t i = 0;
            for (; i + 8 <= d; i += 8) {
                for (int t = 0; t < 8; t++) acc[t] += a[i + t] * gt_att_h2f(b[i + t]);
            }
            float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; i < d; i++) sum += a[i] * gt_att_h2f(b[i]);
            s[r * lds + j] = sum;
        }
    }
}

static void accumulate_f16_scalar(const float *p, size_t ldp, size_t nr, const uint16_t *const *v, size_t nk,
                                  size_t d, float *o, size_t ldo) {
    for (size_t r = 0; r < nr; r++) {
        float *out = o + r * ldo;
        for (size_t j = 0; j < nk; j++) {
            const float w = p[r * ldp + j];
            if (w == 0.0f) continue;  // adds exactly nothing
            const uint16_t *x = v[j];
            for (size_t i = 0; i < d; i++) out[i] += w * gt_att_h2f(x[i]);
        }
    }
}

const gt_attention_isa gt_attention_scalar = {scores_scalar, transform_max_scalar, exp_sum_scalar, accumulate_scalar,
                                              scores_f16_scalar, accumulate_f16_scalar};

// ---- the driver ----

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

// Scores S (a chunk per row), the segment's output sums O and the folded sums T.
size_t gt_attention_scratch_bytes(size_t head_dim) {
    return 64 + align64(GT_ATT_ROWS * GT_ATT_CHUNK * sizeof(float)) + 2 * align64(GT_ATT_ROWS * head_dim * sizeof(float));
}

_Static_assert(GT_ATTENTION_SEGMENT % GT_ATT_CHUNK == 0, "segments are whole chunks");

// Folds one segment's state (m, l, o) of a row into its running one (*M, *L, t). The one
// definition both gt_attention_rows and gt_attention_merge use, so their results are the same.
static void fold_segment(float *M, float *L, float *t, float m, float l, const float *o, size_t d) {
    if (l == 0) return;  // the row has no position in this segment
    if (*L == 0) {       // its first segment: taken as it is
        *M = m;
        *L = l;
        memcpy(t, o, d * sizeof(float));
        return;
    }
    const float mn = m > *M ? m : *M;
    const float ct = gt_att_expf(*M - mn), cs = gt_att_expf(m - mn);
    *L = *L * ct + l * cs;
    for (size_t i = 0; i < d; i++) {
        const float old = t[i] * ct;
        t[i] = old + o[i] * cs;
    }
    *M = mn;
}

static const gt_attention_isa *table_for(int *isa) {
    if (*isa != GT_ISA_SCALAR && gt_isa_supported(*isa)) {
        switch (*isa) {
#if defined(__x86_64__) || defined(_M_X64)
        case GT_ISA_AVX2:
        case GT_ISA_AVX2_VNNI: return &gt_attention_avx2;
        case GT_ISA_AVX512_VNNI: return &gt_attention_avx512;
#endif
#if defined(__aarch64__)
        case GT_ISA_NEON:
        case GT_ISA_NEON_DOTPROD: return &gt_attention_neon;
#endif
        default: break;
        }
    }
    *isa = GT_ISA_SCALAR;
    return &gt_attention_scalar;
}

// Run i of an array of gt_kv_run (f32) or gt_kv_run_f16, its pointers as untyped.
typedef struct {
    const void *keys, *values;
    size_t first, count;
} any_run;

static inline any_run run_at(const void *runs, int f16, size_t i) {
    if (f16) {
        const gt_kv_run_f16 *r = (const gt_kv_run_f16 *)runs + i;
        return (any_run){r->keys, r->values, r->first, r->count};
    }
    const gt_kv_run *r = (const gt_kv_run *)runs + i;
    return (any_run){r->keys, r->values, r->first, r->count};
}

// The key and value pointers of chunk a's positions within [lo, hi) (entries a - position).
static void chunk_pointers(const void *runs, size_t run_count, int f16, size_t row_stride_bytes, size_t a, size_t lo,
                           size_t hi, size_t *run, any_run *cur, const void **kp, const void **vp) {
    const size_t c0 = a > lo ? a : lo, c1 = a + GT_ATT_CHUNK < hi ? a + GT_ATT_CHUNK : hi;
    for (size_t pos = c0; pos < c1; pos++) {
        while (*run + 1 < run_count && pos >= cur->first + cur->count) *cur = run_at(runs, f16, ++*run);
        const size_t t = pos - cur->first;
        kp[pos - a] = (const char *)cur->keys + t * row_stride_bytes;
        vp[pos - a] = (const char *)cur->values + t * row_stride_bytes;
    }
}

// Keys per prefetch step. A chunk's rows are asked for a step at a time, each step just before
// the work of the one before it: asked for all at once (64 rows, about 600 cache lines), the
// requests filled the core's miss queues and stalled it until memory had answered most of them,
// and the 2B's decode attention at depth 2048 ran 20-40% slower (docs/BENCHMARKS.md, session 19).
#define GT_ATT_STEP 8
_Static_assert(GT_ATT_CHUNK % GT_ATT_STEP == 0, "steps are whole parts of a chunk");

// Asks for every cache line of a chunk's rows p[b..e-1] ahead of their use.
static void prefetch_rows(const void *const *p, size_t b, size_t e, size_t row_bytes) {
    for (size_t j = b; j < e; j++) {
        const char *row = (const char *)p[j];
        for (size_t x = 0; x < row_bytes; x += 64) __builtin_prefetch(row + x, 0, 2);
        __builtin_prefetch(row + row_bytes - 1, 0, 2);  // a row that does not start on a line
    }
}

// Step q's keys of a chunk whose positions are entries j0..j1-1: [*b, *e), empty when the step
// lies outside. Steps sit at fixed entries (absolute positions), however j0 and j1 fall.
static inline void step_keys(size_t q, size_t j0, size_t j1, size_t *b, size_t *e) {
    const size_t s0 = q * GT_ATT_STEP, s1 = s0 + GT_ATT_STEP;
    *b = s0 > j0 ? s0 : j0;
    *e = s1 < j1 ? s1 : j1;
    if (*e < *b) *e = *b;
}

// Up to GT_ATT_ROWS rows: one pass over the chunks their ranges cover within [from, to). The
// state restarts at every segment; at its end it is folded into the running one (partials NULL:
// then the rows' outputs are written) or stored as segment (s - seg_begin) of partials.
static void attend_block(const gt_attention_isa *f, const gt_attention_row *rows, size_t nr, const void *runs,
                         size_t run_count, int f16, size_t stride, size_t d, float scale, float softcap, size_t from,
                         size_t to, size_t seg_begin, float *partials, float *S, float *O, float *T) {
    const float *qp[GT_ATT_ROWS];
    const void *kp[GT_ATT_CHUNK], *vp[GT_ATT_CHUNK], *kn[GT_ATT_CHUNK], *vn[GT_ATT_CHUNK];
    const size_t es = f16 ? sizeof(uint16_t) : sizeof(float);
    float m[GT_ATT_ROWS], l[GT_ATT_ROWS], M[GT_ATT_ROWS], L[GT_ATT_ROWS];
    size_t lo = rows[0].lo, hi = rows[0].hi;
    for (size_t r = 0; r < nr; r++) {
        qp[r] = rows[r].q;
        m[r] = M[r] = -INFINITY;
        l[r] = L[r] = 0;
        memset(O + r * d, 0, d * sizeof(float));
        if (rows[r].lo < lo) lo = rows[r].lo;
        if (rows[r].hi > hi) hi = rows[r].hi;
    }
    if (lo < from) lo = from;
    if (hi > to) hi = to;
    size_t run = 0;
    any_run cur = run_at(runs, f16, 0);
    const size_t row_bytes = d * es;
    size_t a = lo / GT_ATT_CHUNK * GT_ATT_CHUNK;
    if (a < hi) {
        chunk_pointers(runs, run_count, f16, stride * es, a, lo, hi, &run, &cur, kp, vp);
        const size_t c0 = a > lo ? a : lo, c1 = a + GT_ATT_CHUNK < hi ? a + GT_ATT_CHUNK : hi;
        prefetch_rows(kp, c0 - a, c1 - a, row_bytes);
    }
    for (; a < hi; a += GT_ATT_CHUNK) {
        const size_t c0 = a > lo ? a : lo, c1 = a + GT_ATT_CHUNK < hi ? a + GT_ATT_CHUNK : hi;
        const size_t j0 = c0 - a, j1 = c1 - a;
        // Memory is the cost of a long context: the values are fetched while the scores are
        // computed, the next chunk's keys while these values are summed, a step at a time.
        for (size_t q = 0; q < GT_ATT_CHUNK / GT_ATT_STEP; q++) {
            size_t b, e;
            step_keys(q, j0, j1, &b, &e);
            if (b == e) continue;
            prefetch_rows(vp, b, e, row_bytes);
            if (f16)
                f->scores_f16(qp, nr, (const uint16_t *const *)(kp + b), e - b, d, S + b, GT_ATT_CHUNK);
            else
                f->scores(qp, nr, (const float *const *)(kp + b), e - b, d, S + b, GT_ATT_CHUNK);
        }
        for (size_t r = 0; r < nr; r++) {
            float *s = S + r * GT_ATT_CHUNK;
            const size_t b = rows[r].lo > a ? rows[r].lo - a : 0;
            const size_t e = rows[r].hi < a + GT_ATT_CHUNK ? (rows[r].hi > a ? rows[r].hi - a : 0) : GT_ATT_CHUNK;
            if (b >= e) {  // the row sees nothing here: it stays as it is
                memset(s, 0, GT_ATT_CHUNK * sizeof(float));
                continue;
            }
            const float cmax = f->transform_max(s, b, e, scale, softcap);
            const float mn = cmax > m[r] ? cmax : m[r];
            const float corr = gt_att_expf(m[r] - mn);  // 0 on the row's first chunk (m = -inf)
            l[r] = l[r] * corr + f->exp_sum(s, mn);
            m[r] = mn;
            if (corr != 1.0f) {
                float *o = O + r * d;
                for (size_t i = 0; i < d; i++) o[i] *= corr;
            }
        }
        const size_t next = a + GT_ATT_CHUNK;  // >= lo: its entries start at 0
        const size_t next_keys = next < hi ? (next + GT_ATT_CHUNK < hi ? GT_ATT_CHUNK : hi - next) : 0;
        if (next_keys) chunk_pointers(runs, run_count, f16, stride * es, next, lo, hi, &run, &cur, kn, vn);
        for (size_t q = 0; q < GT_ATT_CHUNK / GT_ATT_STEP; q++) {
            size_t b, e, nb, ne;
            step_keys(q, 0, next_keys, &nb, &ne);
            prefetch_rows(kn, nb, ne, row_bytes);
            step_keys(q, j0, j1, &b, &e);
            if (b == e) continue;
            if (f16)
                f->accumulate_f16(S + b, GT_ATT_CHUNK, nr, (const uint16_t *const *)(vp + b), e - b, d, O, d);
            else
                f->accumulate(S + b, GT_ATT_CHUNK, nr, (const float *const *)(vp + b), e - b, d, O, d);
        }
        if (next < hi) {
            memcpy(kp, kn, sizeof kp);
            memcpy(vp, vn, sizeof vp);
        }
        if (next % GT_ATTENTION_SEGMENT == 0 || next >= hi) {  // the segment of a ends
            const size_t pf = GT_ATTENTION_PARTIAL_FLOATS(d);
            for (size_t r = 0; r < nr; r++) {
                float *o = O + r * d;
                if (partials) {
                    float *p = partials + ((a / GT_ATTENTION_SEGMENT - seg_begin) * nr + r) * pf;
                    p[0] = m[r];
                    p[1] = l[r];
                    memcpy(p + 2, o, d * sizeof(float));
                } else {
                    fold_segment(&M[r], &L[r], T + r * d, m[r], l[r], o, d);
                }
                m[r] = -INFINITY;
                l[r] = 0;
                memset(o, 0, d * sizeof(float));
            }
        }
    }
    if (partials) return;
    for (size_t r = 0; r < nr; r++) {
        const float *t = T + r * d;
        float *out = rows[r].out;
        for (size_t i = 0; i < d; i++) out[i] = t[i] / L[r];
    }
}

// The scratch space's three buffers (gt_attention_scratch_bytes).
static void scratch_buffers(void *scratch, size_t d, float **S, float **O, float **T) {
    *S = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    *O = *S + align64(GT_ATT_ROWS * GT_ATT_CHUNK * sizeof(float)) / sizeof(float);
    *T = *O + align64(GT_ATT_ROWS * d * sizeof(float)) / sizeof(float);
}

static int attend(int isa, const gt_attention_row *rows, size_t row_count, const void *runs, size_t run_count, int f16,
                  size_t stride, size_t head_dim, float scale, float softcap, void *scratch) {
    const gt_attention_isa *f = table_for(&isa);
    float *S, *O, *T;
    scratch_buffers(scratch, head_dim, &S, &O, &T);
    for (size_t r = 0; r < row_count; r += GT_ATT_ROWS) {
        const size_t nr = row_count - r < GT_ATT_ROWS ? row_count - r : GT_ATT_ROWS;
        attend_block(f, rows + r, nr, runs, run_count, f16, stride, head_dim, scale, softcap, 0, SIZE_MAX, 0, NULL,
                     S, O, T);
    }
    return isa;
}

static int partials_of(int isa, const gt_attention_row *rows, size_t row_count, const void *runs, size_t run_count,
                       int f16, size_t stride, size_t d, float scale, float softcap, size_t seg_begin, size_t seg_end,
                       float *partials, void *scratch) {
    const gt_attention_isa *f = table_for(&isa);
    if (row_count > GT_ATT_ROWS || seg_end <= seg_begin) return isa;
    // Segments no chunk of the block reaches are marked empty (a fold skips a sum of 0, so their
    // output sums are never read); every other segment is written whole by attend_block.
    const size_t pf = GT_ATTENTION_PARTIAL_FLOATS(d);
    for (size_t i = 0; i < (seg_end - seg_begin) * row_count; i++) {
        partials[i * pf] = -INFINITY;
        partials[i * pf + 1] = 0;
    }
    float *S, *O, *T;
    scratch_buffers(scratch, d, &S, &O, &T);
    attend_block(f, rows, row_count, runs, run_count, f16, stride, d, scale, softcap, seg_begin * GT_ATTENTION_SEGMENT,
                 seg_end * GT_ATTENTION_SEGMENT, seg_begin, partials, S, O, T);
    return isa;
}

void gt_attention_merge(const gt_attention_row *rows, size_t row_count, const float *partials, size_t seg_count,
                        size_t head_dim) {
    const size_t pf = GT_ATTENTION_PARTIAL_FLOATS(head_dim);
    for (size_t r = 0; r < row_count; r++) {
        float M = -INFINITY, L = 0, *t = rows[r].out;  // the output holds the running sums
        for (size_t s = 0; s < seg_count; s++) {
            const float *p = partials + (s * row_count + r) * pf;
            fold_segment(&M, &L, t, p[0], p[1], p + 2, head_dim);
        }
        for (size_t i = 0; i < head_dim; i++) t[i] = t[i] / L;
    }
}

int gt_attention_partials_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs,
                              size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                              size_t seg_begin, size_t seg_end, float *partials, void *scratch) {
    return partials_of(isa, rows, row_count, runs, run_count, 0, stride, head_dim, scale, softcap, seg_begin, seg_end,
                       partials, scratch);
}

int gt_attention_partials_f16_isa(int isa, const gt_attention_row *rows, size_t row_count,
                                  const gt_kv_run_f16 *runs, size_t run_count, size_t stride, size_t head_dim,
                                  float scale, float softcap, size_t seg_begin, size_t seg_end, float *partials,
                                  void *scratch) {
    return partials_of(isa, rows, row_count, runs, run_count, 1, stride, head_dim, scale, softcap, seg_begin, seg_end,
                       partials, scratch);
}

void gt_attention_partials(const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs, size_t run_count,
                           size_t stride, size_t head_dim, float scale, float softcap, size_t seg_begin,
                           size_t seg_end, float *partials, void *scratch) {
    partials_of(gt_kernel_isa_id(), rows, row_count, runs, run_count, 0, stride, head_dim, scale, softcap, seg_begin,
                seg_end, partials, scratch);
}

void gt_attention_partials_f16(const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                               size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                               size_t seg_begin, size_t seg_end, float *partials, void *scratch) {
    partials_of(gt_kernel_isa_id(), rows, row_count, runs, run_count, 1, stride, head_dim, scale, softcap, seg_begin,
                seg_end, partials, scratch);
}

int gt_attention_rows_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs,
                          size_t run_count, size_t stride, size_t head_dim, float scale, float softcap, void *scratch) {
    return attend(isa, rows, row_count, runs, run_count, 0, stride, head_dim, scale, softcap, scratch);
}

void gt_attention_rows(const gt_attention_row *rows, size_t row_count, const gt_kv_run *runs, size_t run_count,
                       size_t stride, size_t head_dim, float scale, float softcap, void *scratch) {
    attend(gt_kernel_isa_id(), rows, row_count, runs, run_count, 0, stride, head_dim, scale, softcap, scratch);
}

int gt_attention_rows_f16_isa(int isa, const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                              size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                              void *scratch) {
    return attend(isa, rows, row_count, runs, run_count, 1, stride, head_dim, scale, softcap, scratch);
}

void gt_attention_rows_f16(const gt_attention_row *rows, size_t row_count, const gt_kv_run_f16 *runs,
                           size_t run_count, size_t stride, size_t head_dim, float scale, float softcap,
                           void *scratch) {
    attend(gt_kernel_isa_id(), rows, row_count, runs, run_count, 1, stride, head_dim, scale, softcap, scratch);
}
