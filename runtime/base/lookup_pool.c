/*
 * runtime/base/lookup_pool.c: a bounded pool of detached worker threads whose
 * state outlives the runtime that owns it (see lookup_pool.h for the rules).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "atoll/error.h"
#include "runtime/base/lookup_pool.h"
#include "runtime/base/testing.h"

struct atoll_lookup_pool {
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t work;  /* a job was queued, or the runtime went */
    bool alive;           /* the runtime exists: cleared by shutdown */
    uint32_t refs;        /* the runtime's (while alive) + one per worker */
    uint32_t workers;     /* started and not exited */
    uint32_t idle;        /* workers waiting for a job */
    uint32_t queued;
    atoll_lookup_job *head, *tail;
};

#ifdef ATOLL_TESTING
/* Process-wide, for tests that outlive the runtime they watch. */
static _Atomic uint32_t test_threads; /* workers alive, every pool */
static _Atomic uint32_t test_busy;    /* jobs taken and not finished */
static _Atomic uint32_t test_peak;    /* most workers one pool had at once */

void atoll__test_lookup_counts(atoll_test_lookup_counts *out)
{
    out->threads = atomic_load(&test_threads);
    out->busy = atomic_load(&test_busy);
    out->peak = atomic_load(&test_peak);
    out->blocked = atoll__test_resolver_blocked();
}

void atoll__test_lookup_peak_reset(void)
{
    atomic_store(&test_peak, 0);
}

#define TEST_INC(c) atomic_fetch_add(&(c), 1)
#define TEST_DEC(c) atomic_fetch_sub(&(c), 1)
#else
#define TEST_INC(c) ((void)0)
#define TEST_DEC(c) ((void)0)
#endif

int atoll__lookup_pool_new(atoll_lookup_pool **out)
{
    atoll_lookup_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return -ENOMEM;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -ENOMEM;
    }
    p->alive = true;
    p->refs = 1;
    *out = p;
    return 0;
}

/* Frees the block. Only by whoever dropped the last reference, after
 * unlocking. Thread: any. */
static void atoll_pool_free(atoll_lookup_pool *p)
{
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The worker thread: takes jobs until the runtime is gone, then drops its
 * reference and exits. Holds no lock while a job works, so a stuck resolver
 * blocks only its own thread. Thread: a pool worker (detached). */
static void *atoll_pool_worker(void *arg)
{
    atoll_lookup_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->alive && !p->head) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        if (!p->alive)
            break; /* shutdown already finished what was queued */
        atoll_lookup_job *job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        TEST_INC(test_busy);
        pthread_mutex_unlock(&p->lock);
        job->work(job);
        pthread_mutex_lock(&p->lock);
        /* Under the lock: shutdown cannot clear alive (and the runtime
         * cannot free its isolates) while finish posts. */
        job->finish(job, p->alive);
        TEST_DEC(test_busy);
    }
    p->workers--;
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        atoll_pool_free(p);
    TEST_DEC(test_threads);
    return NULL;
}

/* Under p->lock: starts one more detached worker. Signals are blocked in it
 * (it inherits the mask set around pthread_create) so the host's handlers
 * never run on a library thread. Returns 0 or a negated pthread error.
 * Thread: the submitting isolate. */
static int atoll_pool_start_worker(atoll_lookup_pool *p)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    p->refs++; /* before the thread can run, and drop it */
    p->workers++;
    TEST_INC(test_threads);
    int err = pthread_create(&th, &attr, atoll_pool_worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        p->refs--;
        p->workers--;
        TEST_DEC(test_threads);
        return -err;
    }
#ifdef ATOLL_TESTING
    uint32_t peak = atomic_load(&test_peak);
    while (p->workers > peak && !atomic_compare_exchange_weak(&test_peak, &peak, p->workers))
        ;
#endif
    return 0;
}

int atoll__lookup_pool_submit(atoll_lookup_pool *p, atoll_lookup_job *job)
{
    pthread_mutex_lock(&p->lock);
    int ret = 0;
    if (!p->alive)
        ret = ATOLL_E_STOPPED;
    else if (p->queued >= ATOLL_LOOKUP_QUEUE)
        ret = -EAGAIN;
    /* Every idle worker is already promised to a queued job: add a thread
     * while under the cap. Failing that, the queue still drains if some
     * worker exists. */
    if (ret == 0 && p->idle <= p->queued && p->workers < ATOLL_LOOKUP_THREADS) {
        int err = atoll_pool_start_worker(p);
        if (err < 0 && p->workers == 0)
            ret = err;
    }
    if (ret == 0) {
        job->next = NULL;
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
    return ret;
}

void atoll__lookup_pool_shutdown(atoll_lookup_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->alive = false;
    /* Queued jobs never start: their isolates exited long ago (destroy
     * follows join), so there is nobody to tell. */
    while (p->head) {
        atoll_lookup_job *job = p->head;
        p->head = job->next;
        job->finish(job, false);
    }
    p->tail = NULL;
    p->queued = 0;
    pthread_cond_broadcast(&p->work); /* idle workers exit */
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        atoll_pool_free(p);
}
