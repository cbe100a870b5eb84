/*
 * pool.h - a POSIX-threads worker pool behind the pp_workers interface of
 * pprt.h.
 */
#ifndef PP_POOL_H
#define PP_POOL_H

#include <stddef.h>

#include "pprt.h"

typedef struct pp_pool pp_pool;

/*
 * Starts n_threads - 1 worker threads; the thread that calls pp_pool_run()
 * is the n_threads-th. Returns 0 and sets *pool, or an errno value: EINVAL
 * for n_threads < 1, ENOMEM, or the error of pthread_create().
 */
int pp_pool_create(pp_pool **pool, int n_threads);

/* Stops and joins the workers and frees the pool. NULL is ignored. Must not
 * run while pp_pool_run() is running on the pool. */
void pp_pool_destroy(pp_pool *pool);

/*
 * Calls task(arg, i) once for every i in [0, n_tasks) and returns when all
 * calls have returned. The caller runs tasks too. Workers take indices from
 * a shared counter, so which thread runs which index varies between calls.
 * A call made while the pool is busy (from inside a task, or from a second
 * thread) runs all its tasks on the calling thread. `pool` is a pp_pool*,
 * typed void* to match pp_workers.run; NULL runs everything on the caller.
 */
void pp_pool_run(void *pool, size_t n_tasks,
                 void (*task)(void *arg, size_t index), void *arg);

/* Returns the pp_workers for pp_options.workers; with NULL, a single-thread
 * value that runs tasks on the caller. */
pp_workers pp_pool_workers(pp_pool *pool);

#endif /* PP_POOL_H */
