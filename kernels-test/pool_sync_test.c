// Tests of the worker pool's hand-off (pool_sync.c): a caller starts many short jobs and waits for
// them, with 1 and 3 worker threads, and spin times of 0 (both sides go to sleep every time: the
// sleep / wake-up paths), 1 us (sometimes) and 200 us (WorkerPool's, mostly spinning):
//   - every worker takes every job exactly once, and the caller's wait returns only after every
//     worker's part is done and visible;
//   - shut-down ends every worker;
//   - nothing hangs: a watchdog thread fails the run if the jobs stop advancing for 20 s (a lost
//     wake-up leaves the caller or a worker asleep for ever). Under qemu-aarch64 on an x86-64 host
//     the earlier hand-off (a plain store, then a load) hung within 300k jobs every time.
#define _GNU_SOURCE
#include "gemma_kernels.h"
#include "test_support.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { max_workers = 3 };

typedef struct {
    gt_pool_sync *sync;
    uint64_t worker_spin_ns;
    unsigned work_mask;          // a job's busy loop runs 0...work_mask steps
    size_t counts[max_workers];  // jobs each worker ran; written by the worker only
    size_t current_job;          // the caller's job number, written before gt_pool_sync_start
    size_t wrong_job;            // a worker saw a job number other than the caller's
} pool_test;

typedef struct {
    pool_test *test;
    int part;
} worker_arg;

static size_t progress;  // jobs finished, all configurations; read by the watchdog
static const char *volatile phase = "start";

static void *worker(void *p) {
    worker_arg *arg = p;
    pool_test *t = arg->test;
    uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(arg->part + 1);
    size_t seen = 0;
    while ((seen = gt_pool_sync_next_job(t->sync, seen, t->worker_spin_ns)) != 0) {
        if (seen != t->current_job) __atomic_store_n(&t->wrong_job, seen, __ATOMIC_RELAXED);
        // A little work of varying length, so the workers finish in every order.
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        for (volatile unsigned i = 0; i < (r & t->work_mask); i++) {}
        t->counts[arg->part]++;
        gt_pool_sync_job_done(t->sync);
    }
    return NULL;
}

static int watching;  // the watchdog runs while this is 1

static void *watchdog(void *unused) {
    (void)unused;
    size_t last = __atomic_load_n(&progress, __ATOMIC_SEQ_CST);
    int still = 0;  // 100 ms steps without a finished job
    while (__atomic_load_n(&watching, __ATOMIC_SEQ_CST)) {
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
        size_t now = __atomic_load_n(&progress, __ATOMIC_SEQ_CST);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still == 200) {
            printf("FAIL  pool hand-off: no job finished for 20 s (%s): a lost wake-up\n", phase);
            printf("0 passed, 1 failed\n");
            fflush(stdout);
            _exit(1);
        }
    }
    return NULL;
}

static void run_jobs(int workers, uint64_t spin_ns, uint64_t worker_spin_ns, unsigned work_mask, size_t jobs) {
    pool_test t = { .worker_spin_ns = worker_spin_ns, .work_mask = work_mask };
    t.sync = gt_pool_sync_create();
    check(t.sync != NULL, "pool hand-off: create");
    if (!t.sync) return;
    pthread_t threads[max_workers];
    worker_arg args[max_workers];
    for (int w = 0; w < workers; w++) {
        args[w] = (worker_arg){ &t, w };
        pthread_create(&threads[w], NULL, worker, &args[w]);
    }
    size_t incomplete = 0, first_incomplete = 0;
    for (size_t j = 1; j <= jobs; j++) {
        t.current_job = j;
        gt_pool_sync_start(t.sync, (size_t)workers);
        gt_pool_sync_wait_workers(t.sync, spin_ns);
        for (int w = 0; w < workers; w++)
            if (t.counts[w] != j && incomplete++ == 0) first_incomplete = j;
        __atomic_fetch_add(&progress, 1, __ATOMIC_SEQ_CST);
    }
    check(incomplete == 0, "pool hand-off (%s): the wait returned before every part was done "
          "%zu times (first at job %zu)", phase, incomplete, first_incomplete);
    check(t.wrong_job == 0, "pool hand-off (%s): a worker ran job %zu while the caller was on another",
          phase, t.wrong_job);
    gt_pool_sync_shut_down(t.sync);
    for (int w = 0; w < workers; w++) pthread_join(threads[w], NULL);
    for (int w = 0; w < workers; w++)
        check(t.counts[w] == jobs, "pool hand-off (%s): worker %d ran %zu of %zu jobs", phase, w,
              t.counts[w], jobs);
    gt_pool_sync_destroy(t.sync);
}

void check_pool_sync(int quick) {
    pthread_t dog;
    __atomic_store_n(&watching, 1, __ATOMIC_SEQ_CST);
    const int watched = pthread_create(&dog, NULL, watchdog, NULL) == 0;
    const size_t jobs = quick ? 10000 : 50000;
    char label[100];
    // A sleeping caller and spinning workers: the workers finish a job just as the caller goes
    // to sleep, the wake-up the plain-store hand-off lost. Whether a run meets that moment
    // depends on how the two threads' timing falls, so several pools with jobs of several lengths.
    const unsigned masks[] = { 0, 7, 63, 511 };
    for (int m = 0; m < 4; m++) {
        snprintf(label, sizeof(label), "1 worker, caller spin 0, worker spin 200 us, job length mask %u", masks[m]);
        phase = label;
        run_jobs(1, 0, 200000, masks[m], jobs);
    }
    // Both sides asleep every time; both spinning briefly; WorkerPool's spin time. 3 workers
    // (more threads than this machine's cores, likely) as well. Sleeping workers are slow to wake:
    // fewer jobs there.
    const uint64_t spins[][2] = { { 0, 0 }, { 1000, 1000 }, { 200000, 200000 } };
    const int worker_counts[] = { 1, 3 };
    for (int i = 0; i < 2; i++)
        for (int s = 0; s < 3; s++) {
            snprintf(label, sizeof(label), "%d workers, caller spin %llu ns, worker spin %llu ns", worker_counts[i],
                     (unsigned long long)spins[s][0], (unsigned long long)spins[s][1]);
            phase = label;
            run_jobs(worker_counts[i], spins[s][0], spins[s][1], 63, jobs / 5);
        }
    __atomic_store_n(&watching, 0, __ATOMIC_SEQ_CST);
    if (watched) pthread_join(dog, NULL);
    phase = "done";
}
