// A per-thread scratch buffer for the x86 K-quant drivers (the AVX-512 path's token groups, the
// AVX2 path's column slices and per-token terms): grown on first use to the largest request,
// kept for the thread's next calls, freed when the thread ends. One driver runs at a time on a
// thread, so they share it.
#include "matmul_internal.h"
#include <pthread.h>
#include <stdlib.h>

static pthread_key_t scratch_key;
static pthread_once_t scratch_key_once = PTHREAD_ONCE_INIT;
static _Thread_local uint8_t *scratch;
static _Thread_local size_t scratch_cap;
static void make_scratch_key(void) { (void)pthread_key_create(&scratch_key, free); }

uint8_t *gt_kquant_scratch(size_t bytes) {
    if (bytes <= scratch_cap) return scratch;
    pthread_once(&scratch_key_once, make_scratch_key);
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) p = NULL;
    (void)pthread_setspecific(scratch_key, p);
    if (!p) return NULL;
    scratch = p;
    scratch_cap = bytes;
    return scratch;
}
