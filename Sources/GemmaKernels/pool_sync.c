// The hand-off between the worker pool's caller and its threads (WorkerPool.swift keeps the
// threads and the job; this file only says when a job starts and when every part is done).
//
// Both sides spin first and sleep on a condition variable only after `spin_ns`, so each side that
// goes to sleep must make sure the other will see it asleep. In both hand-offs, each side writes
// its counter with a read-modify-write, never a plain store, before it reads the other's:
//   - the caller bumps `generation`, then reads `sleepers`; a worker bumps `sleepers`, then reads
//     `generation` (under the mutex, before waiting);
//   - the caller swaps `waiter_asleep` to 1, then reads `pending`; the last worker decrements
//     `pending`, then reads `waiter_asleep`.
// C11 orders a sequentially consistent store before a later load as well, and so does a real
// ARMv8 core (STLR then LDAR). But qemu-user's emulation of STLR/LDAR on an x86-64 host lets the
// load pass the store (no store-load fence between them), and the plain-store version of the
// second hand-off lost the last worker's wake-up there: the caller slept for ever (seen once in
// CI, under -cpu cortex-a72). Read-modify-writes become locked instructions on the host, which
// are full fences. kernels-test/pool_sync_test.c checks the hand-offs under qemu.
#define _GNU_SOURCE
#include "gemma_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

struct gt_pool_sync {
    // Each counter on its own cache line: the caller and the workers write them from different cores.
    _Alignas(64) size_t generation;  // jobs started; jobs are numbered from 1
    _Alignas(64) size_t pending;     // workers still on the current job
    _Alignas(64) size_t sleepers;    // workers asleep on work_ready
    _Alignas(64) size_t waiter_asleep;  // the caller asleep on work_done
    _Alignas(64) size_t stopping;
    _Alignas(64) pthread_mutex_t mutex;
    pthread_cond_t work_ready, work_done;
};

gt_pool_sync *gt_pool_sync_create(void) {
    gt_pool_sync *s = NULL;
    if (posix_memalign((void **)&s, 64, sizeof(*s)) != 0) return NULL;
    s->generation = s->pending = s->sleepers = s->waiter_asleep = s->stopping = 0;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->work_ready, NULL);
    pthread_cond_init(&s->work_done, NULL);
    return s;
}

void gt_pool_sync_destroy(gt_pool_sync *s) {
    if (!s) return;
    pthread_cond_destroy(&s->work_done);
    pthread_cond_destroy(&s->work_ready);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t load(const size_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

static int job_published(const gt_pool_sync *s, size_t seen) {
    return load(&s->generation) != seen || load(&s->stopping) != 0;
}
static int workers_done(const gt_pool_sync *s, size_t unused) {
    (void)unused;
    return load(&s->pending) == 0;
}

// Spins until done(s, arg) or `spin_ns` has passed; 1 if done. After the first eighth of the time
// it yields the core between checks, in case the thread it waits for (on an oversubscribed
// machine) needs it.
static inline int spin_until(int (*done)(const gt_pool_sync *, size_t), const gt_pool_sync *s, size_t arg,
                             uint64_t spin_ns) {
    if (done(s, arg)) return 1;
    if (spin_ns == 0) return 0;
    uint64_t start = now_ns();
    int yielding = 0;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(s, arg)) return 1;
            gt_cpu_relax();
        }
        uint64_t elapsed = now_ns() - start;
        if (elapsed > spin_ns) return 0;
        if (yielding) sched_yield();
        else if (elapsed > spin_ns / 8) yielding = 1;
    }
}

void gt_pool_sync_start(gt_pool_sync *s, size_t workers) {
    __atomic_store_n(&s->pending, workers, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&s->generation, 1, __ATOMIC_SEQ_CST);
    // A worker going to sleep bumped `sleepers` before re-checking `generation` under the mutex:
    // either it sees this job, or we see it here and wake it.
    if (load(&s->sleepers) > 0) {
        pthread_mutex_lock(&s->mutex);
        pthread_cond_broadcast(&s->work_ready);
        pthread_mutex_unlock(&s->mutex);
    }
}

void gt_pool_sync_wait_workers(gt_pool_sync *s, uint64_t spin_ns) {
    if (spin_until(workers_done, s, 0, spin_ns)) return;
    pthread_mutex_lock(&s->mutex);
    __atomic_exchange_n(&s->waiter_asleep, 1, __ATOMIC_SEQ_CST);  // an RMW: see the top of the file
    while (load(&s->pending) > 0) pthread_cond_wait(&s->work_done, &s->mutex);
    __atomic_store_n(&s->waiter_asleep, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mutex);
}

size_t gt_pool_sync_next_job(gt_pool_sync *s, size_t seen, uint64_t spin_ns) {
    if (!spin_until(job_published, s, seen, spin_ns)) {
        pthread_mutex_lock(&s->mutex);
        __atomic_fetch_add(&s->sleepers, 1, __ATOMIC_SEQ_CST);
        while (load(&s->generation) == seen && load(&s->stopping) == 0)
            pthread_cond_wait(&s->work_ready, &s->mutex);
        __atomic_fetch_sub(&s->sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&s->mutex);
    }
    return load(&s->stopping) ? 0 : load(&s->generation);
}

void gt_pool_sync_job_done(gt_pool_sync *s) {
    if (__atomic_fetch_sub(&s->pending, 1, __ATOMIC_SEQ_CST) == 1 && load(&s->waiter_asleep) != 0) {
        pthread_mutex_lock(&s->mutex);
        pthread_cond_signal(&s->work_done);
        pthread_mutex_unlock(&s->mutex);
    }
}

void gt_pool_sync_shut_down(gt_pool_sync *s) {
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&s->mutex);
    pthread_cond_broadcast(&s->work_ready);
    pthread_mutex_unlock(&s->mutex);
}
