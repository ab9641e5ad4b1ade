// Converter throughput of the row quantizers: bf16 rows widened, checked and quantized with
// gt_convert_row (what gemma-quantize does per row), on N threads, for each storage type and
// quantizer path. Reports MB/s of bf16 input (2 bytes per weight) and rows/s.
//
//   bench_quantize [--threads N] [--cols N] [--rows N] [--types q4,q4k,q6k] [--isa NAME|all] [--reps N]
//
// Rows are Gaussian-like bf16 values (as checkpoint weights), `rows` x `cols` (default 2048 x 2048,
// the 2B model's attention / MLP input width), split across the threads in contiguous chunks.
// The best of `reps` passes is reported. On a shared machine wall time mostly measures the other
// load, so the last column also gives the throughput per CPU-second of the converting threads
// times the thread count: what the threads would reach with a core each.
#define _GNU_SOURCE
#include "gemma_kernels.h"
#include "gemma_quantize.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    const uint16_t *src;
    uint8_t *dst;
    size_t cols, r0, r1, row_bytes;
    int type;
    double cpu;  // thread CPU seconds
} part_t;

static void *run(void *arg) {
    part_t *p = arg;
    struct timespec t0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    p->cpu = t0.tv_sec + t0.tv_nsec * 1e-9;
    float *scratch = malloc(p->cols * sizeof(float));
    for (size_t r = p->r0; r < p->r1; r++)
        gt_convert_row(GT_SRC_BF16, p->src + r * p->cols, p->cols, p->type, p->dst + r * p->row_bytes, scratch);
    free(scratch);
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    p->cpu = t.tv_sec + t.tv_nsec * 1e-9 - p->cpu;
    return NULL;
}

static int type_from_name(const char *s) {
    static const char *names[] = { "f32", "bf16", "q8", "q4", "q5", "q4k", "q6k" };
    for (int i = 0; i < 7; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 3;
    size_t cols = 2048, rows = 2048;
    const char *types = "q4,q4k,q6k", *isa_arg = "auto";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cols")) cols = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) rows = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--types")) types = argv[i + 1];
        else if (!strcmp(argv[i], "--isa")) isa_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    uint16_t *src = malloc(rows * cols * 2);
    uint64_t s = 42;
    for (size_t i = 0; i < rows * cols; i++) {
        float g = 0;
        for (int k = 0; k < 3; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            g += (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;
        }
        src[i] = gt_f32_to_bf16(g * 0.03f);
    }
    uint8_t *dst = malloc(rows * gt_row_bytes(GT_F32, cols));
    for (int isa = 0; isa < GT_ISA_COUNT; isa++) {
        if (!gt_isa_supported(isa)) continue;
        if (strcmp(isa_arg, "all") != 0) {
            int want = strcmp(isa_arg, "auto") == 0 ? gt_kernel_isa_id() : gt_isa_from_name(isa_arg);
            if (isa != want) continue;
        }
        gt_set_kernel_isa(isa);
        char list[256];
        snprintf(list, sizeof(list), "%s", types);
        for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
            int type = type_from_name(t);
            if (type < 0 || gt_row_bytes(type, cols) == 0) { fprintf(stderr, "skipping %s for %zu cols\n", t, cols); continue; }
            double best = 1e30, best_cpu = 1e30;
            for (int rep = 0; rep < reps; rep++) {
                pthread_t th[64];
                part_t parts[64];
                double t0 = now();
                for (int k = 0; k < threads; k++) {
                    parts[k] = (part_t){ src, dst, cols, rows * k / threads, rows * (k + 1) / threads, gt_row_bytes(type, cols), type, 0 };
                    pthread_create(&th[k], NULL, run, &parts[k]);
                }
                for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
                double dt = now() - t0, cpu = 0;
                for (int k = 0; k < threads; k++) cpu += parts[k].cpu;
                if (dt < best) best = dt;
                if (cpu < best_cpu) best_cpu = cpu;
            }
            printf("%-12s %-4s %zux%zu, %d threads: %8.1f MB/s bf16 in, %9.0f rows/s; per CPU-second x %d: %8.1f MB/s\n",
                   gt_isa_name(isa), t, rows, cols, threads, rows * cols * 2 / best / 1e6, rows / best, threads,
                   rows * cols * 2 / best_cpu * threads / 1e6);
        }
    }
    free(src);
    free(dst);
    return 0;
}
