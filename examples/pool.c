/*
 * pool: a host program offloading CPU work to the isolate pool.
 *
 * The host thread cuts [0, LIMIT) into TASKS ranges and hands each to the
 * pool with atoll_runtime_submit(ATOLL_POOL_LEAST_LOADED): the runtime
 * queues it on the pool isolate with the fewest tasks waiting, and the task
 * counts the primes of its range there by trial division (deliberately CPU
 * bound). Each task's reply (the done callback, run on the isolate right
 * after the task) records the count and wakes the host, which then adds the
 * counts up, checks the total against a sieve of its own, and prints how
 * many tasks each isolate ran.
 *
 * Every task owns its own `job` record: the isolate writes the result into
 * it, the host reads it only after the reply said it is done (the mutex
 * orders the two). Nothing else is shared.
 *
 * Run:  ./pool [LIMIT [TASKS]]      (default 2000000 64)
 * Last line: "total N primes below LIMIT: ok" and exit 0 when right.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atoll/atoll.h>

typedef struct job {
    uint64_t from, to; /* the range [from, to) */
    uint64_t primes;   /* the task's result */
    uint32_t isolate;  /* the isolate that ran it */
    int status;        /* 0, or ATOLL_E_CANCELED when it never ran */
} job;

/* How the replies reach the host thread. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static uint32_t replies;

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* The task, on a pool isolate's thread. Its result travels back as the
 * returned pointer; here it is the job itself, filled in. */
static void *count_primes(atoll_isolate *self, void *arg)
{
    job *j = arg;
    j->isolate = atoll_isolate_id(self);
    for (uint64_t n = j->from; n < j->to; n++)
        j->primes += is_prime(n);
    return j;
}

/* The reply, on the same isolate, right after the task (or with
 * ATOLL_E_CANCELED if the runtime stopped before it ran). */
static void on_done(int status, void *result, void *user)
{
    job *j = user;
    (void)result; /* == j when status is 0 */
    pthread_mutex_lock(&lock);
    j->status = status;
    replies++;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

/* The same count the slow way round: a sieve on the host, to check. */
static uint64_t sieve_count(uint64_t limit)
{
    unsigned char *composite = calloc(limit + 1, 1);
    uint64_t count = 0;
    if (!composite)
        return 0;
    for (uint64_t n = 2; n < limit; n++) {
        if (composite[n])
            continue;
        count++;
        for (uint64_t m = n * n; m < limit; m += n)
            composite[m] = 1;
    }
    free(composite);
    return count;
}

int main(int argc, char **argv)
{
    uint64_t limit = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    uint32_t ntasks = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 64;
    if (limit < 2 || ntasks == 0 || ntasks > limit) {
        fprintf(stderr, "usage: pool [LIMIT [TASKS]] with 0 < TASKS <= LIMIT\n");
        return 2;
    }
    job *jobs = calloc(ntasks, sizeof(*jobs));
    if (!jobs) {
        fprintf(stderr, "pool: out of memory\n");
        return 1;
    }

    atoll_runtime *rt;
    int rc = atoll_runtime_create(NULL, &rt); /* one pool isolate per CPU */
    if (rc < 0) {
        fprintf(stderr, "pool: creating the runtime: %s\n", atoll_strerror(rc));
        free(jobs);
        return 1;
    }
    if ((rc = atoll_runtime_start(rt)) < 0) {
        fprintf(stderr, "pool: starting the runtime: %s\n", atoll_strerror(rc));
        goto out;
    }
    atoll_runtime_info info;
    atoll_runtime_info_get(rt, &info);
    printf("counting primes below %llu in %u tasks on %u isolates\n", (unsigned long long)limit, ntasks, info.isolates);
    fflush(stdout);

    uint32_t submitted = 0;
    for (uint32_t i = 0; i < ntasks; i++) {
        jobs[i].from = limit * i / ntasks;
        jobs[i].to = limit * (i + 1) / ntasks;
        rc = atoll_runtime_submit(rt, ATOLL_POOL_LEAST_LOADED, count_primes, &jobs[i], on_done, &jobs[i], NULL);
        if (rc < 0) { /* e.g. ATOLL_E_PORT_FULL: more tasks than task_capacity */
            fprintf(stderr, "pool: submitting task %u: %s\n", i, atoll_strerror(rc));
            break;
        }
        submitted++;
    }

    pthread_mutex_lock(&lock);
    while (replies < submitted)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    /* Every reply is in: the jobs are the host's again. */
    uint64_t total = 0;
    uint32_t failed = ntasks - submitted;
    uint32_t *per_isolate = calloc(info.isolates, sizeof(*per_isolate));
    for (uint32_t i = 0; i < submitted; i++) {
        if (jobs[i].status != 0) {
            fprintf(stderr, "pool: task %u: %s\n", i, atoll_strerror(jobs[i].status));
            failed++;
            continue;
        }
        total += jobs[i].primes;
        if (per_isolate && jobs[i].isolate < info.isolates)
            per_isolate[jobs[i].isolate]++;
    }
    for (uint32_t id = 0; per_isolate && id < info.isolates; id++)
        printf("isolate %u ran %u tasks\n", id, per_isolate[id]);
    free(per_isolate);

    uint64_t expected = sieve_count(limit);
    bool ok = failed == 0 && total == expected;
    printf("total %llu primes below %llu: %s\n", (unsigned long long)total, (unsigned long long)limit,
           ok ? "ok" : "WRONG");
    if (!ok)
        fprintf(stderr, "pool: expected %llu, %u tasks failed\n", (unsigned long long)expected, failed);

    /* Pool isolates hold nothing open: the drain ends them at once. */
    if ((rc = atoll_runtime_drain(rt, 1000)) < 0)
        fprintf(stderr, "pool: draining: %s\n", atoll_strerror(rc));
    rc = ok ? 0 : -1;
out:
    atoll_runtime_stop(rt);
    atoll_runtime_join(rt);
    atoll_runtime_destroy(rt);
    free(jobs);
    return rc == 0 ? 0 : 1;
}
