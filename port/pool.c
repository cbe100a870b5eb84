/*
 * Worker pool: threads start once in pp_pool_create() and wait between runs,
 * first spinning for a short while (runs come several times per layer per
 * token, so the next one is usually close), then sleeping on a condition
 * variable. A run hands task indices out through an atomic counter.
 *
 * Every worker checks in once per run, even when there are fewer tasks than
 * threads. The caller waits for all of them, so it never rewrites the
 * fields of a run while a worker may still read them.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Nanoseconds a waiting thread polls before it sleeps. Measured in time,
 * not iterations, because a pause or yield hint takes from about 1 to over
 * 100 cycles depending on the core. */
#define POOL_SPIN_NS 100000

/* Polls between two reads of the clock. */
#define POOL_SPIN_CHECK 64

struct pp_pool {
    int n_threads;       /* workers + the calling thread */
    pthread_t *workers;  /* n_threads - 1 of them */

    pthread_mutex_t mutex;
    pthread_cond_t wake;      /* signaled when generation changes */
    pthread_cond_t finished;  /* signaled when pending reaches 0 */

    atomic_uint generation;    /* incremented once per run and at stop */
    atomic_int sleepers;       /* workers blocked (or about to block) on wake */
    atomic_int pending;        /* workers not yet done with this run */
    atomic_int caller_waiting; /* the caller blocks on finished */
    atomic_size_t next;        /* next task index to hand out */
    atomic_flag busy;          /* a run is in progress */

    /* The current run, written by the caller before it publishes a new
     * generation and read by workers after they see it. */
    size_t n_tasks;
    void (*task)(void *arg, size_t index);
    void *arg;
    int stop;  /* set by pp_pool_destroy() */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ volatile("yield");
#endif
}

static int64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* Returns 0 once about POOL_SPIN_NS have passed since the first clock read
 * of this wait, which sets *deadline (0 before it). */
static int keep_spinning(unsigned spin, int64_t *deadline) {
    if (spin % POOL_SPIN_CHECK != POOL_SPIN_CHECK - 1)
        return 1;
    const int64_t now = monotonic_ns();
    if (*deadline == 0)
        *deadline = now + POOL_SPIN_NS;
    return now < *deadline;
}

static void run_tasks(pp_pool *pool) {
    const size_t n_tasks = pool->n_tasks;
    void (*task)(void *, size_t) = pool->task;
    void *arg = pool->arg;

    for (;;) {
        const size_t index =
            atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (index >= n_tasks)
            break;
        task(arg, index);
    }
}

/* Waits until the generation differs from `seen` and returns it. */
static unsigned wait_for_run(pp_pool *pool, unsigned seen) {
    int64_t deadline = 0;
    for (unsigned spin = 0; keep_spinning(spin, &deadline); spin++) {
        const unsigned now =
            atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (now != seen)
            return now;
        cpu_relax();
    }

    /* This thread raises sleepers before it reads generation again, and
     * the caller stores generation before it reads sleepers, all
     * sequentially consistent. So either this thread reads the new
     * generation, or the caller reads a sleeper and broadcasts under the
     * mutex. */
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->sleepers, 1);
    unsigned now;
    while ((now = atomic_load(&pool->generation)) == seen)
        pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mutex);
    return now;
}

static void *worker_main(void *opaque) {
    pp_pool *pool = opaque;
    unsigned seen = 0;

    for (;;) {
        seen = wait_for_run(pool, seen);
        if (pool->stop)
            break;

        run_tasks(pool);

        /* Same pairing as in wait_for_run, with caller_waiting. */
        if (atomic_fetch_sub(&pool->pending, 1) == 1 &&
            atomic_load(&pool->caller_waiting)) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_broadcast(&pool->finished);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
    return NULL;
}

/* Makes the fields of a run (or stop) visible and wakes the workers. */
static void publish_generation(pp_pool *pool) {
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void wait_for_workers(pp_pool *pool) {
    int64_t deadline = 0;
    for (unsigned spin = 0; keep_spinning(spin, &deadline); spin++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }

    /* The pairing of worker_main: caller_waiting is raised before pending
     * is read, and each worker lowers pending before it reads
     * caller_waiting. A read-modify-write (exchange) raises it, because
     * QEMU 7 user-mode emulation of AArch64 on x86-64 let a plain
     * sequentially consistent store pass the following load, and this
     * wait then missed its wakeup. */
    pthread_mutex_lock(&pool->mutex);
    atomic_exchange(&pool->caller_waiting, 1);
    while (atomic_load(&pool->pending) != 0)
        pthread_cond_wait(&pool->finished, &pool->mutex);
    atomic_store(&pool->caller_waiting, 0);
    pthread_mutex_unlock(&pool->mutex);
}

static void run_inline(size_t n_tasks, void (*task)(void *, size_t),
                       void *arg) {
    for (size_t i = 0; i < n_tasks; i++)
        task(arg, i);
}

void pp_pool_run(void *opaque, size_t n_tasks,
                 void (*task)(void *arg, size_t index), void *arg) {
    pp_pool *pool = opaque;

    if (!pool || pool->n_threads == 1 || n_tasks <= 1 ||
        atomic_flag_test_and_set(&pool->busy)) {
        run_inline(n_tasks, task, arg);
        return;
    }

    pool->n_tasks = n_tasks;
    pool->task = task;
    pool->arg = arg;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->pending, pool->n_threads - 1,
                          memory_order_relaxed);
    publish_generation(pool);

    run_tasks(pool);
    wait_for_workers(pool);
    atomic_flag_clear(&pool->busy);
}

pp_workers pp_pool_workers(pp_pool *pool) {
    pp_workers workers;
    workers.run = pp_pool_run;
    workers.pool = pool;
    workers.n_threads = pool ? pool->n_threads : 1;
    return workers;
}

static void stop_workers(pp_pool *pool, int started) {
    pool->stop = 1;
    publish_generation(pool);
    for (int i = 0; i < started; i++)
        pthread_join(pool->workers[i], NULL);
}

static void free_pool(pp_pool *pool) {
    pthread_cond_destroy(&pool->finished);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

int pp_pool_create(pp_pool **out, int n_threads) {
    *out = NULL;
    if (n_threads < 1)
        return EINVAL;

    pp_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return ENOMEM;
    pool->n_threads = n_threads;
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return ENOMEM;
    }

    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->finished, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->caller_waiting, 0);
    atomic_init(&pool->next, 0);
    atomic_flag_clear(&pool->busy);

    for (int i = 0; i < n_threads - 1; i++) {
        const int error =
            pthread_create(&pool->workers[i], NULL, worker_main, pool);
        if (error) {
            stop_workers(pool, i);
            free_pool(pool);
            return error;
        }
    }

    *out = pool;
    return 0;
}

void pp_pool_destroy(pp_pool *pool) {
    if (!pool)
        return;
    stop_workers(pool, pool->n_threads - 1);
    free_pool(pool);
}
