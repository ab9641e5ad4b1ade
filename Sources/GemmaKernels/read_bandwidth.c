// The machine's memory read bandwidth, as a simple multithreaded read loop measures it: the
// yardstick `gemma-tiny bench` divides decoding's weight traffic by. Each thread sums its own
// slice of a buffer much larger than the caches (plain C, vectorised by the compiler at -O2 with
// the baseline ISA: enough to saturate memory with a few threads).
#define _GNU_SOURCE
#include "gemma_kernels.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#include "cpu_features.h"

// 256-bit loads, four independent accumulators: the loads, not the adds, set the pace.
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    uint64_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) total += p[i];
    return total;
}
#endif

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} slice_t;

static void *sum_slice(void *arg) {
    slice_t *s = arg;
#if defined(__x86_64__)
    if (gt_cpu_has_avx2()) {
        s->sum = sum_avx2(s->p, s->n);
        return NULL;
    }
#endif
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    for (; i < s->n; i++) a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double gt_read_bandwidth(size_t bytes, int threads, int repetitions) {
    if (threads < 1 || threads > 256 || repetitions < 1 || bytes < (size_t)threads * 4096) return 0;
    size_t words = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(words * sizeof(uint64_t));
    if (!buf) return 0;
    for (size_t i = 0; i < words; i++) buf[i] = i;  // touch every page (no zero-page sharing)
    slice_t slices[256];
    pthread_t ids[256];
    size_t per = words / (size_t)threads;
    double best = 0;
    uint64_t sink = 0;
    for (int r = 0; r < repetitions; r++) {
        double start = seconds_now();
        for (int t = 0; t < threads; t++) {
            slices[t] = (slice_t){buf + (size_t)t * per, per, 0};
            if (t > 0 && pthread_create(&ids[t], NULL, sum_slice, &slices[t]) != 0) {
                free(buf);
                return 0;
            }
        }
        sum_slice(&slices[0]);
        for (int t = 1; t < threads; t++) pthread_join(ids[t], NULL);
        double gbps = (double)(per * (size_t)threads * sizeof(uint64_t)) / (seconds_now() - start) / 1e9;
        if (gbps > best) best = gbps;
        for (int t = 0; t < threads; t++) sink += slices[t].sum;
    }
    free(buf);
    return sink == 1 ? best + 0.0 : best;  // `sink` keeps the sums alive
}
