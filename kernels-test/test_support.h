// Shared by the kernels-test driver's files (main.c holds the definitions).
#ifndef KERNELS_TEST_SUPPORT_H
#define KERNELS_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// Counts a passed check, or prints the message (printf format) and counts a failure.
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t rng_next(void);
/// Uniform in [-1, 1).
float rng_float(void);
/// 64-byte aligned; exits on failure.
void *xmalloc(size_t n);

/// Random inputs with a spread of magnitudes per block of 32, a zero block now and then, outliers.
void fill_inputs(float *x, size_t n);

/// The K-quant tests (kquant.c): quantizers, dequantizer, scalar dot; `goldens` is the directory
/// of the kquant-* goldens.
void check_kquant(int quick, const char *goldens);
/// Writes the quantized K goldens (see fixtures/kquant_golden.py); returns the exit status.
int write_kquant_goldens(const char *dir);
/// The K-quant matmul kernels (kquant_test.c).
void check_kquant_matmul(int quick);
/// The tiled attention (attention_test.c).
void check_attention(int quick);
/// The f16 KV cache's rounding (f16_test.c).
void check_f16_store(int quick);
/// The worker pool's start / finish hand-off (pool_sync_test.c).
void check_pool_sync(int quick);

#endif
