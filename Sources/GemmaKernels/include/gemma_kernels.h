// gemma_kernels: the C hot loops of gemma-tiny.
//
// Storage types and their block layouts (little-endian, see docs/FORMAT.md):
//   GT_F32   4 bytes per weight
//   GT_BF16  2 bytes per weight (upper half of an IEEE f32)
//   GT_Q8    blocks of 32: f16 scale d, then 32 int8 q;         x = d * q          (8.5 bits/weight)
//   GT_Q4    blocks of 32: f16 scale d, then 16 bytes of nibbles; x = d * (q - 8)  (4.5 bits/weight)
//            byte j holds element j in its low nibble and element j + 16 in its high nibble.
//   GT_Q5    blocks of 32: f16 scale d, a little-endian u32 qh whose bit i is bit 4 of element
//            i, then 16 bytes of nibbles laid out as in GT_Q4;    x = d * (q - 16)  (5.5 bits/weight)
//   GT_Q4K   super-blocks of 256 (ggml's block_q4_K, 144 bytes, 4.5 bits/weight):
//              f16 d, f16 dmin, u8 scales[12], u8 qs[128]
//            eight sub-blocks of 32, sub-block j with a six-bit scale sc_j and six-bit min m_j:
//              x = (d * sc_j) * q - (dmin * m_j),  q in 0..15
//            scales[12] packs them as ggml's get_scale_min_k4 reads them: for j < 4, sc_j is the
//            low 6 bits of byte j and m_j those of byte j + 4; for j >= 4, sc_j is the low nibble of
//            byte j + 4 plus (byte j - 4 >> 6) << 4, and m_j the high nibble of byte j + 4 plus
//            (byte j >> 6) << 4. qs: for each group g of 64 values (sub-blocks 2g, 2g + 1), 32 bytes
//            whose low nibbles are values 64g + 0..31 and high nibbles values 64g + 32..63.
//   GT_Q6K   super-blocks of 256 (ggml's block_q6_K, 210 bytes, 6.5625 bits/weight):
//              u8 ql[128], u8 qh[64], int8 scales[16], f16 d
//            sixteen sub-blocks of 16: x = (d * scales[v / 16]) * (q - 32), q in 0..63. For value
//            v = 128h + 32k + l (h < 2, k < 4, l < 32): the low 4 bits of q are the low (k < 2) or
//            high (k >= 2) nibble of ql[64h + 32(k & 1) + l], the high 2 bits are bits 2k and
//            2k + 1 of qh[32h + l].
// Rows of quantized tensors are whole blocks: the row length is a multiple of GT_BLOCK (32), and of
// GT_KBLOCK (256) for GT_Q4K / GT_Q6K.
#ifndef GEMMA_KERNELS_H
#define GEMMA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GT_F32 = 0,
    GT_BF16 = 1,
    GT_Q8 = 2,
    GT_Q4 = 3,
    GT_Q5 = 4,
    GT_Q4K = 5,
    GT_Q6K = 6,
    GT_TYPE_COUNT = 7,
};

#define GT_BLOCK 32
#define GT_Q8_BLOCK_BYTES 34
#define GT_Q4_BLOCK_BYTES 18
#define GT_Q5_BLOCK_BYTES 22
#define GT_KBLOCK 256               // values per K-quant super-block (GT_Q4K, GT_Q6K)
#define GT_Q4K_BLOCK_BYTES 144
#define GT_Q6K_BLOCK_BYTES 210

/// Bytes one row of `n` weights takes in `type`; 0 when `type` is unknown or `n` is not whole blocks.
size_t gt_row_bytes(int type, size_t n);

// ---- scalar conversions ----
float gt_f16_to_f32(uint16_t h);
uint16_t gt_f32_to_f16(float f);      // round to nearest even, saturates to +-inf like IEEE
float gt_bf16_to_f32(uint16_t h);
uint16_t gt_f32_to_bf16(float f);     // round to nearest even (as torch does); NaN stays NaN

// ---- dequantization: a stored row (n values, whole blocks) back to f32 (dequantize.c); the
// quantizers are the converter's (converter/QuantizeKernels/include/gemma_quantize.h) ----
void gt_dequantize_row(int type, const void *row, size_t n, float *out);

// ---- dot products and matrix-vector products (scalar reference implementations) ----
float gt_dot_scalar(int type, const void *row, const float *x, size_t n);
/// y[r] = dot(row r of w, x) for r in [row_begin, row_end); rows are `row_stride` bytes apart.
void gt_matvec_scalar(int type, const void *w, size_t row_stride, size_t cols,
                      const float *x, float *y, size_t row_begin, size_t row_end);

// ---- fast matrix products: matrix-vector (decoding) and matrix-matrix (prompt processing) ----
//
// Usage, per product Y = X W^T of `count` input vectors (tokens):
//   1. gt_prepare_activations(type, x, cols, count, x_stride, act): converts the inputs ONCE into
//      a caller-owned buffer of count * gt_activation_bytes(type, cols) bytes (64-byte aligned
//      is best; any alignment works). For quantized weights (q8, q4, q5, q4k, q6k) each vector
//      is quantized to int8 blocks of 32 with one f32 scale per block (scale = max|x| / 127,
//      round to nearest even); for f32/bf16 weights the floats are copied unchanged. The layout
//      is private but identical for every ISA path.
//   2. gt_matmul(type, w, row_stride, cols, act, count, y, y_stride, row_begin, row_end), from
//      any number of threads on disjoint row ranges: y[t * y_stride + r] = dot(row r, x_t) for
//      t < count, r in [row_begin, row_end). Each weight row is read once for the whole batch.
// Every row is computed by the same sequence of operations whatever its range and the batch
// size, so results do not depend on how the rows are split or the tokens batched.
//
// Accuracy: f32/bf16 weights use the f32 inputs (error ~1e-6 relative to sum |w x|: only the
// order of the sums differs from gt_dot_scalar). Quantized weights multiply int8 by int8 exactly,
// so the only extra error is the input rounding: |error| <= sum over blocks of
// (max|x| in block / 254) * sum |w| in block, plus f32 rounding.
//
// ISA paths: "avx512+vnni" (x86-64 AVX-512 F/BW/VL + VNNI: 512-bit batch tiles for prompts,
// otherwise the AVX2 kernels; Ice Lake, Sapphire Rapids, Zen 4/5), "avx2+vnni" (x86-64 AVX2 with
// AVX-VNNI's vpdpbusd: Alder Lake and later, N100, Zen 5), "avx2" (x86-64 with AVX2, FMA and F16C), "neon+dotprod" (AArch64 with SDOT),
// "neon" (any AArch64), "scalar" (portable C). Every path gives the scalar path's results bit for bit, except
// the x86 paths on K-quant weights (Q4_K, Q6_K), which follow their own scalar arithmetic
// (gt_matmul_reference) and differ from the others by rounding only. The best one the CPU supports is chosen on first
// use with cpuid / getauxval(AT_HWCAP); the environment variable GEMMA_TINY_KERNELS=<name>
// (e.g. "scalar") forces a path if the CPU supports it.
enum {
    GT_ISA_AUTO = -1,
    GT_ISA_SCALAR = 0,
    GT_ISA_AVX2 = 1,
    GT_ISA_NEON = 2,
    GT_ISA_NEON_DOTPROD = 3,
    GT_ISA_AVX2_VNNI = 4,
    GT_ISA_AVX512_VNNI = 5,
    GT_ISA_COUNT = 6,
};

/// Name of an ISA path ("scalar", "avx2", "neon", "neon+dotprod", "avx2+vnni", "avx512+vnni"), or NULL for an unknown id.
const char *gt_isa_name(int isa);
/// The id of the path called `name`, or -1.
int gt_isa_from_name(const char *name);
/// 1 when the path is compiled in and this CPU can run it.
int gt_isa_supported(int isa);
/// The path gt_matmul uses (detected on first use).
int gt_kernel_isa_id(void);
/// Its name, e.g. "avx2".
const char *gt_kernel_isa(void);
/// Selects the path gt_matmul uses: a supported id, or GT_ISA_AUTO for the best one (honouring
/// GEMMA_TINY_KERNELS). Returns the path now selected, or -1 (selection unchanged) when `isa`
/// is not supported here. Not synchronised with concurrent gt_matmul calls: set it up front.
int gt_set_kernel_isa(int isa);

/// Bytes of one prepared input vector of `cols` values for weights of `type` (a multiple of
/// 64); 0 for an unknown type or a quantized type whose `cols` is not whole blocks.
size_t gt_activation_bytes(int type, size_t cols);
/// Prepares `count` vectors; vector t is read at x + t * x_stride (floats) and written at
/// (uint8_t *)out + t * gt_activation_bytes(type, cols).
void gt_prepare_activations(int type, const float *x, size_t cols, size_t count, size_t x_stride, void *out);
/// Vectors t0..t1-1 of such a batch (same addresses) with path `isa` (unsupported: scalar).
/// Every path writes the same bytes, so disjoint ranges can be prepared on different threads.
void gt_prepare_activations_isa(int isa, int type, const float *x, size_t cols, size_t t0, size_t t1,
                                size_t x_stride, void *out);
/// For a quantized type, the rounding error of vectors t0..t1-1 prepared in `act` (as above, from
/// the same x): r[t * r_stride + i] = x[t * x_stride + i] - (the prepared value). Nothing for
/// f32/bf16. Preparing r too and adding the two products gives inputs of about 15 bits.
void gt_activation_residuals(int type, const float *x, size_t cols, size_t t0, size_t t1, size_t x_stride,
                             const void *act, float *r, size_t r_stride);
/// The product with the selected path (see above). `w` holds rows `row_stride` bytes apart.
/// Does nothing for an unknown type or quantized rows that are not whole blocks; cols = 0 gives 0.
void gt_matmul(int type, const void *w, size_t row_stride, size_t cols, const void *act, size_t count,
               float *y, size_t y_stride, size_t row_begin, size_t row_end);
/// The same with an explicit path; an unsupported `isa` runs the scalar path.
void gt_matmul_isa(int isa, int type, const void *w, size_t row_stride, size_t cols, const void *act,
                   size_t count, float *y, size_t y_stride, size_t row_begin, size_t row_end);

/// The portable scalar arithmetic that path `isa` reproduces bit for bit: the scalar path, except
/// for K-quant weights (GT_Q4K, GT_Q6K) on the x86 paths (avx2, avx2+vnni, avx512+vnni), whose
/// "row lane" arithmetic (matmul_kquant_rowlanes.c) differs from the other paths' by rounding only.
void gt_matmul_reference(int isa, int type, const void *w, size_t row_stride, size_t cols, const void *act,
                         size_t count, float *y, size_t y_stride, size_t row_begin, size_t row_end);

/// Memory read bandwidth in GB/s (1e9 bytes/s): the best of `repetitions` passes of `threads`
/// threads summing a fresh `bytes`-byte buffer (make it much larger than the caches). 0 on error.
double gt_read_bandwidth(size_t bytes, int threads, int repetitions);

/// A spin-wait hint (x86 PAUSE, ARM YIELD) for busy-waiting threads.
void gt_cpu_relax(void);

// ---- the worker pool's start / finish hand-off (pool_sync.c; threads and jobs: WorkerPool.swift) ----
// One caller starts jobs and waits for them; `workers` threads each take every job. Both sides
// spin for up to `spin_ns` nanoseconds, then sleep on a condition variable.
typedef struct gt_pool_sync gt_pool_sync;
/// NULL if out of memory.
gt_pool_sync *gt_pool_sync_create(void);
/// After gt_pool_sync_shut_down, once no thread uses it any more.
void gt_pool_sync_destroy(gt_pool_sync *s);
/// Caller: publishes the next job (write the job first) to `workers` threads.
void gt_pool_sync_start(gt_pool_sync *s, size_t workers);
/// Caller: returns when every worker has called gt_pool_sync_job_done for the current job.
void gt_pool_sync_wait_workers(gt_pool_sync *s, uint64_t spin_ns);
/// Worker: waits for a job newer than `seen` (0 at first) and returns its number, or 0 once
/// gt_pool_sync_shut_down was called.
size_t gt_pool_sync_next_job(gt_pool_sync *s, size_t seen, uint64_t spin_ns);
/// Worker: its part of the current job is done (everything it wrote is visible to the caller).
void gt_pool_sync_job_done(gt_pool_sync *s);
/// Makes every worker's gt_pool_sync_next_job return 0.
void gt_pool_sync_shut_down(gt_pool_sync *s);

// ---- atomics for the dynamic chunk counters (sequentially consistent; `p` must be size_t-aligned) ----
static inline void gt_atomic_store(size_t *p, size_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/// Adds `v` and returns the previous value.
static inline size_t gt_atomic_fetch_add(size_t *p, size_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

// ---- checksums: XXH64 (xxhash.com spec), one-shot and streaming ----
uint64_t gt_xxh64(const void *data, size_t len, uint64_t seed);

typedef struct {
    uint64_t total_len;
    uint64_t v[4];
    uint64_t mem[4];
    uint32_t memsize;
    uint64_t seed;
} gt_xxh64_state;

void gt_xxh64_reset(gt_xxh64_state *s, uint64_t seed);
void gt_xxh64_update(gt_xxh64_state *s, const void *data, size_t len);
uint64_t gt_xxh64_digest(const gt_xxh64_state *s);

// ---- output files ----
/// Starts writeback of bytes [offset, offset + length) of `fd` without waiting (Linux
/// sync_file_range; a no-op elsewhere). Returns 0 or -1 (errno set).
int gt_file_start_writeback(int fd, int64_t offset, int64_t length);
/// Waits until those bytes are on disk, then drops them from the page cache (they are not
/// going to be read back soon). Returns 0, or an error (-1 with errno, or posix_fadvise's code).
int gt_file_finish_and_drop(int fd, int64_t offset, int64_t length);

// ---- mapped files ----
/// Reads one byte of every `page`-sized step of [p, p + len) (and its last byte), in order: the
/// pages of a file mapping not yet in memory are read in from storage.
void gt_touch_pages(const void *p, size_t len, size_t page);
/// How many bytes of [p, p + len) are in memory (mincore; p page-aligned), or -1.
int64_t gt_resident_bytes(const void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
