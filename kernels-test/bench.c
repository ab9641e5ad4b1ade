// Benchmark of the matrix-product kernels at Gemma 2B shapes.
//
//   bench [--isa NAME|all] [--threads N[,N...]] [--reps N] [--count N] [--types q4,q8,bf16,q4k,q6k] [--quick] [--cached] [--min]
//
// For each shape, type, path and thread count: the median time of `reps` products (the input
// preparation included, as the runtime does it once per product), the weight bytes read per
// second and GFLOP/s (2 * rows * cols * count). Weights are cycled through enough copies (>= 1 GiB
// in total) that every product reads them from memory, as decoding a whole model does.
// The machine this runs on may be shared and noisy: compare ratios between lines of one run.
// --cached keeps one copy of the weights (cache-resident for the small shapes) and reports the
// fastest repetition instead of the median: the kernels' compute ceiling, for comparing variants.
// --min reports the fastest repetition with weights from memory (least disturbed by other load).
#define _GNU_SOURCE
#include "gemma_kernels.h"
#include "gemma_quantize.h"
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// ---- a small spinning thread pool (the runtime's WorkerPool does the same in Swift) ----
typedef struct {
    int isa, type;
    const uint8_t *w;
    size_t row_stride, rows, cols, count;
    const void *act;
    float *y;
    size_t next_row;  // atomic: rows are handed out in chunks
    size_t chunk;
} job_t;

static job_t job;
static int nthreads = 1;
static unsigned long generation;  // atomic
static int pending;               // atomic
static int stopping;

// Spins with the pause hint, then yields the core on every check: on a busy machine the thread
// we wait for may be queued behind us on the same core.
static void relax(unsigned *spins) {
    if (++*spins < 2000) gt_cpu_relax();
    else sched_yield();
}

static void run_part(void) {
    for (;;) {
        size_t r = __atomic_fetch_add(&job.next_row, job.chunk, __ATOMIC_RELAXED);
        if (r >= job.rows) break;
        size_t e = r + job.chunk < job.rows ? r + job.chunk : job.rows;
        gt_matmul_isa(job.isa, job.type, job.w, job.row_stride, job.cols, job.act, job.count, job.y, job.rows, r, e);
    }
}

static void *worker(void *arg) {
    unsigned long seen = (unsigned long)arg;  // the generation when the pool started
    for (;;) {
        unsigned long g;
        unsigned spins = 0;
        while ((g = __atomic_load_n(&generation, __ATOMIC_ACQUIRE)) == seen) relax(&spins);
        seen = g;
        if (__atomic_load_n(&stopping, __ATOMIC_RELAXED)) return NULL;
        run_part();
        __atomic_fetch_sub(&pending, 1, __ATOMIC_RELEASE);
    }
}

static void run_job(void) {
    __atomic_store_n(&job.next_row, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pending, nthreads - 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&generation, 1, __ATOMIC_RELEASE);
    run_part();
    unsigned spins = 0;
    while (__atomic_load_n(&pending, __ATOMIC_ACQUIRE) > 0) relax(&spins);
}

static pthread_t threads[64];

static void start_pool(int n) {
    nthreads = n < 64 ? n : 64;
    unsigned long g = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
    for (int i = 1; i < nthreads; i++) pthread_create(&threads[i], NULL, worker, (void *)g);
}

static void stop_pool(void) {
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&generation, 1, __ATOMIC_RELEASE);
    for (int i = 1; i < nthreads; i++) pthread_join(threads[i], NULL);
    stopping = 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *type_names[] = { "f32", "bf16", "q8", "q4", "q5", "q4k", "q6k" };

// 1 when the comma-separated `list` names `name` exactly ("q4" is not "q4k").
static int list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *s = list; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, name, n) == 0) return 1;
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

static int is_kquant(int type) { return type == GT_Q4K || type == GT_Q6K; }

static size_t row_bytes(int type, size_t cols) {
    if (type == GT_Q4K) return cols / GT_KBLOCK * GT_Q4K_BLOCK_BYTES;
    if (type == GT_Q6K) return cols / GT_KBLOCK * GT_Q6K_BLOCK_BYTES;
    return gt_row_bytes(type, cols);
}

// K-quant rows: pseudo-random bytes with small finite f16 scales (any such bytes are valid
// Q4_K / Q6_K blocks; the kernels' speed does not depend on the values).
static void fill_kquant_row(int type, uint8_t *p, size_t cols, size_t seed) {
    size_t bb = type == GT_Q4K ? GT_Q4K_BLOCK_BYTES : GT_Q6K_BLOCK_BYTES;
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < cols / GT_KBLOCK * bb; i++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        p[i] = (uint8_t)z;
    }
    for (size_t b = 0; b < cols / GT_KBLOCK; b++) {
        uint16_t d = gt_f32_to_f16(0.01f), dmin = gt_f32_to_f16(0.002f);
        if (type == GT_Q4K) {
            memcpy(p + b * bb, &d, 2);
            memcpy(p + b * bb + 2, &dmin, 2);
        } else {
            memcpy(p + b * bb + 208, &d, 2);
        }
    }
}

int main(int argc, char **argv) {
    const char *isa_arg = "all", *types_arg = "q4,q8,bf16", *threads_arg = "1,2";
    int reps = 15;
    size_t count = 1;
    int quick = 0, cached = 0, use_min = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa_arg = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads_arg = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types_arg = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--cached")) cached = use_min = 1;
        else if (!strcmp(argv[i], "--min")) use_min = 1;
        else {
            fprintf(stderr, "usage: %s [--isa NAME|all] [--threads 1,2] [--reps N] [--count N] [--types q4,q8,bf16] [--quick] [--cached] [--min]\n", argv[0]);
            return 2;
        }
    }
    int isas[GT_ISA_COUNT], nisa = 0;
    for (int i = 0; i < GT_ISA_COUNT; i++) {
        if (!gt_isa_supported(i)) continue;
        if (strcmp(isa_arg, "all") == 0 || strcmp(isa_arg, gt_isa_name(i)) == 0) isas[nisa++] = i;
    }
    int thread_counts[8], nthr = 0;
    for (char *s = (char *)threads_arg; *s && nthr < 8;) {
        thread_counts[nthr++] = atoi(s);
        while (*s && *s != ',') s++;
        if (*s == ',') s++;
    }
    struct { const char *name; size_t rows, cols; int lm_head; } shapes[] = {
        { "q/o 2048x2048", 2048, 2048, 0 },
        { "k/v 256x2048", 256, 2048, 0 },
        { "gate/up 16384x2048", 16384, 2048, 0 },
        { "down 2048x16384", 2048, 16384, 0 },
        { "lm-head 256000x2048", 256000, 2048, 1 },
    };
    int nshapes = quick ? 4 : 5;
    printf("%-20s %-5s %-13s %3s %10s %9s %9s\n", "shape", "type", "path", "thr", use_min ? "min us" : "median us", "GB/s", "GFLOP/s");
    for (int s = 0; s < nshapes; s++) {
        for (int type = 0; type < GT_TYPE_COUNT; type++) {
            if (!list_has(types_arg, type_names[type])) continue;
            if (shapes[s].lm_head && type != GT_Q8) continue;  // the LM head is stored q8
            size_t rows = shapes[s].rows, cols = shapes[s].cols;
            size_t rb = row_bytes(type, cols), bytes = rows * rb;
            size_t copies = (size_t)ceil((double)(1u << 30) / (double)bytes);
            if (copies < 1) copies = 1;
            if (quick && copies > 4) copies = 4;
            if (cached) copies = 1;
            uint8_t *w = NULL;
            if (posix_memalign((void **)&w, 64, copies * bytes)) return 2;
            float *row = malloc(cols * sizeof(float));
            for (size_t r = 0; r < rows; r++) {
                if (is_kquant(type)) {
                    fill_kquant_row(type, w + r * rb, cols, r);
                    continue;
                }
                for (size_t c = 0; c < cols; c++) row[c] = (float)((r * 7 + c * 13) % 101) / 50.0f - 1.0f;
                gt_quantize_row(type, row, cols, w + r * rb);
            }
            for (size_t k = 1; k < copies; k++) memcpy(w + k * bytes, w, bytes);
            float *x = malloc(count * cols * sizeof(float));
            for (size_t i = 0; i < count * cols; i++) x[i] = (float)(i % 37) / 18.0f - 1.0f;
            void *act = NULL;
            if (posix_memalign(&act, 64, count * gt_activation_bytes(type, cols))) return 2;
            float *y = malloc(count * rows * sizeof(float));
            for (int ii = 0; ii < nisa; ii++) {
                for (int ti = 0; ti < nthr; ti++) {
                    start_pool(thread_counts[ti]);
                    job = (job_t){ isas[ii], type, w, rb, rows, cols, count, act, y, 0, 0 };
                    // ~64 KiB of weights per chunk, a multiple of 16 rows.
                    size_t chunk = ((65536 / rb) + 15) & ~(size_t)15;
                    job.chunk = chunk < 16 ? 16 : chunk;
                    double *times = malloc(reps * sizeof(double));
                    for (int r = -2; r < reps; r++) {
                        job.w = w + (size_t)((r + 2) % (int)copies) * bytes;
                        double t0 = now();
                        gt_prepare_activations(type, x, cols, count, cols, act);
                        run_job();
                        double t = now() - t0;
                        if (r >= 0) times[r] = t;
                    }
                    stop_pool();
                    qsort(times, reps, sizeof(double), cmp_double);
                    double med = use_min ? times[0] : times[reps / 2];
                    printf("%-20s %-5s %-13s %3d %10.1f %9.2f %9.2f\n", shapes[s].name, type_names[type],
                           gt_isa_name(isas[ii]), thread_counts[ti], med * 1e6, bytes / med / 1e9,
                           2.0 * rows * cols * count / med / 1e9);
                    fflush(stdout);
                    free(times);
                }
            }
            free(w);
            free(row);
            free(x);
            free(act);
            free(y);
        }
    }
    return 0;
}
