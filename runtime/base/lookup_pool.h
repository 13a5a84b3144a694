/*
 * runtime/base/lookup_pool.h: the runtime's small pool of threads for blocking
 * work that must stay off the loops (host lookups). Internal.
 *
 * Bounds: at most ATOLL_LOOKUP_THREADS worker threads per runtime, started
 * lazily (the first when the first job arrives, another whenever every
 * started one is busy), kept until the runtime is destroyed; at most
 * ATOLL_LOOKUP_QUEUE jobs waiting for a thread (a full queue refuses with
 * -EAGAIN). A slow resolver therefore ties up a few threads, never more.
 *
 * Lifetime: the pool's state lives in a refcounted block shared by the
 * runtime and its workers, not in the runtime, because a worker may be stuck
 * in getaddrinfo() for as long as the resolver likes. Workers are detached;
 * atoll__lookup_pool_shutdown (runtime destroy) never waits for them: under
 * the pool's lock it marks the runtime gone and frees the queued jobs; a
 * worker that comes back finishes its job with runtime_alive = false (so it
 * touches nothing of the runtime), then exits; whoever drops the last
 * reference frees the block.
 */
#ifndef ATOLL_RUNTIME_LOOKUP_POOL_H
#define ATOLL_RUNTIME_LOOKUP_POOL_H

#include <stdbool.h>

/* Worker threads per runtime, at most. */
#define ATOLL_LOOKUP_THREADS 4u
/* Jobs waiting for a worker, at most (beyond: -EAGAIN). */
#define ATOLL_LOOKUP_QUEUE 256u

typedef struct atoll_lookup_pool atoll_lookup_pool;
typedef struct atoll_lookup_job atoll_lookup_job;

/* One unit of work; embed it first in the job's own struct. */
struct atoll_lookup_job {
    atoll_lookup_job *next; /* the pool's queue link */
    /* Runs on a worker with no lock held; may block; must touch only the
     * job (the runtime may be destroyed meanwhile). */
    void (*work)(atoll_lookup_job *job);
    /* Runs under the pool's lock, on a worker after work(), or at shutdown
     * for a job that never started. runtime_alive: the runtime, and so
     * its isolate objects, still exist and cannot be freed before this
     * returns (destroy takes the same lock), so the job may post to an
     * isolate; false: touch nothing but the job. Must free the job or hand
     * it off. Must not call back into the pool. */
    void (*finish)(atoll_lookup_job *job, bool runtime_alive);
};

/* Creates an empty pool (no thread yet). Returns 0 or -ENOMEM.
 * Thread: runtime creation. */
int atoll__lookup_pool_new(atoll_lookup_pool **out);

/* Queues `job`, starting a worker if none is idle and the cap allows.
 * Returns 0 (finish will run exactly once), or -EAGAIN (queue full),
 * ATOLL_E_STOPPED (pool shut down) or the negated pthread_create error when
 * no worker exists to run it; then the job is untouched and the caller
 * keeps it. Thread: any (isolates). */
int atoll__lookup_pool_submit(atoll_lookup_pool *pool, atoll_lookup_job *job);

/* Runtime destroy: marks the runtime gone, finishes every queued job with
 * runtime_alive = false, wakes idle workers so they exit, and drops the
 * runtime's reference. Never waits for a job in work(). NULL is a no-op.
 * Thread: the host thread destroying the runtime. */
void atoll__lookup_pool_shutdown(atoll_lookup_pool *pool);

#endif /* ATOLL_RUNTIME_LOOKUP_POOL_H */
