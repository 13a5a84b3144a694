/*
 * test_resolver: host lookups run on the runtime's bounded lookup pool and
 * never outlive what they point into. A resolver that never answers is
 * injected with atoll__test_resolver_block (runtime/testing.h): lookups of
 * host names ("localhost" here) hold their worker until released.
 */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "runtime/base/lookup_pool.h"
#include "runtime/base/testing.h"

/* Leaks fail the test itself: LeakSanitizer's report at process exit comes
 * after Criterion has recorded the result. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RESOLVER_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(RESOLVER_TEST_ASAN)
#include <sanitizer/lsan_interface.h>
#define ASSERT_NO_LEAKS() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)")
#else
#define ASSERT_NO_LEAKS() ((void)0)
#endif

#define MAX_BINDS (ATOLL_LOOKUP_THREADS + ATOLL_LOOKUP_QUEUE + 8)

/* Servers bound to a host name on one isolate; results recorded. */
struct binds {
    const char *host;
    int n;              /* binds to start on the isolate */
    int rc[MAX_BINDS];  /* synchronous results */
    int accepted;       /* binds that returned 0 */
    int first_refusal;  /* index of the first non-zero return, or -1 */
    _Atomic int ok;     /* on_bound with status 0 */
    _Atomic int failed; /* on_bound with an error */
    sup_latch bound;    /* on_bound calls */
    sup_latch started;  /* bind_many_on returned: the fields above are set */
};

static void binds_init(struct binds *b, const char *host, int n)
{
    memset(b, 0, sizeof(*b));
    b->host = host;
    b->n = n;
    b->first_refusal = -1;
    sup_latch_init(&b->bound);
    sup_latch_init(&b->started);
}

static void noop_conn(atoll_server *s, atoll_conn *c, void *u)
{
    (void)s;
    (void)u;
    atoll_conn_close(c);
}

static void on_bound(atoll_server *s, int status, void *user)
{
    struct binds *b = user;
    (void)s;
    atomic_fetch_add(status == 0 ? &b->ok : &b->failed, 1);
    sup_latch_signal(&b->bound);
}

/* On the isolate: starts b->n binds (each a lookup), stopping at the first
 * refusal. Servers stay open until the isolate exits. */
static void bind_many_on(atoll_isolate *self, void *arg)
{
    struct binds *b = arg;
    atoll_server_callbacks cb = {.on_connection = noop_conn, .on_bound = on_bound};
    for (int i = b->accepted; i < b->n; i++) {
        atoll_server *s;
        b->rc[i] = atoll_server_bind(self, b->host, 0, NULL, NULL, &cb, b, &s);
        if (b->rc[i] != 0) {
            b->first_refusal = i;
            break;
        }
        b->accepted++;
    }
    sup_latch_signal(&b->started);
}

static void exit_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    SUP_CHECK(atoll_isolate_exit(self, 0) == 0, "atoll_isolate_exit");
}

static atoll_test_lookup_counts counts(void)
{
    atoll_test_lookup_counts c;
    atoll__test_lookup_counts(&c);
    return c;
}

/* Bounded poll of a counter that no callback reports (a worker stuck in the
 * injected resolver, or one finishing after destroy); false on timeout. */
static bool wait_for(bool (*pred)(uint32_t want), uint32_t want)
{
    for (int i = 0; i < SUP_WAIT_MS; i++) {
        if (pred(want))
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    return pred(want);
}

static bool blocked_is(uint32_t want)
{
    return counts().blocked == want;
}

static bool pool_settled(uint32_t threads)
{
    atoll_test_lookup_counts c = counts();
    return c.busy == 0 && c.threads == threads;
}

static void reset_hooks(void)
{
    atoll__test_resolver_block(false);
    atoll__test_lookup_peak_reset();
}

/* Destroying the runtime while a lookup is stuck in the resolver returns at
 * once; the worker, released later, sees the runtime gone and frees its
 * job without touching the freed isolate (ASan would report it). */
Test(resolver, destroy_while_lookup_blocked, .timeout = 60)
{
    reset_hooks();
    cr_assert(pool_settled(0), "lookup threads left from before");
    atoll__test_resolver_block(true);
    atoll_runtime *rt = sup_start_n(1);
    struct binds b;
    binds_init(&b, "localhost", 1);
    cr_assert_eq(sup_run_on(rt, 0, bind_many_on, &b), 0);
    cr_assert_eq(b.rc[0], 0, "bind: %d %s", b.rc[0], atoll_error_name(b.rc[0]));
    cr_assert(wait_for(blocked_is, 1), "the lookup never reached the resolver");

    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0); /* must not wait for the resolver */
    atoll_test_lookup_counts c = counts();
    cr_assert_eq(c.threads, 1, "the stuck worker outlives destroy (%u threads)", c.threads);
    cr_assert_eq(c.busy, 1);

    atoll__test_resolver_block(false); /* the resolver answers, too late */
    cr_assert(wait_for(pool_settled, 0), "the released worker did not finish and exit");
    cr_assert_eq(sup_latch_get(&b.bound), 0, "on_bound ran for an isolate that is gone");
    sup_assert_no_failures();
    reset_hooks();
    ASSERT_NO_LEAKS();
}

/* Two isolates start more lookups than the pool has threads: the pool
 * grows to its cap and no further, the rest queue, all complete. Then the
 * queue's bound: a full queue refuses with -EAGAIN, synchronously. */
Test(resolver, lookups_beyond_the_thread_cap_queue_and_complete, .timeout = 120)
{
    reset_hooks();
    cr_assert(pool_settled(0), "lookup threads left from before");
    atoll__test_resolver_block(true);
    atoll_runtime *rt = sup_start_n(2);
    struct binds b[2];
    for (uint32_t i = 0; i < 2; i++) {
        binds_init(&b[i], "localhost", 6);
        cr_assert_eq(sup_run_on(rt, i, bind_many_on, &b[i]), 0);
        cr_assert_eq(b[i].accepted, 6, "isolate %u: bind %d returned %d", i, b[i].first_refusal,
                     b[i].first_refusal >= 0 ? b[i].rc[b[i].first_refusal] : 0);
    }
    cr_assert(wait_for(blocked_is, ATOLL_LOOKUP_THREADS), "%u lookups blocked, want the cap %u", counts().blocked,
              ATOLL_LOOKUP_THREADS);
    atoll_test_lookup_counts c = counts();
    cr_assert_eq(c.threads, ATOLL_LOOKUP_THREADS, "%u lookup threads for 12 lookups", c.threads);
    cr_assert_eq(sup_latch_get(&b[0].bound) + sup_latch_get(&b[1].bound), 0);

    atoll__test_resolver_block(false);
    for (int i = 0; i < 2; i++) {
        cr_assert(sup_latch_wait(&b[i].bound, 6, SUP_WAIT_MS), "isolate %d: %ld of 6 lookups answered", i,
                  sup_latch_get(&b[i].bound));
        cr_assert_eq(atomic_load(&b[i].ok), 6, "isolate %d: %d binds failed", i, atomic_load(&b[i].failed));
    }
    cr_assert_eq(counts().peak, ATOLL_LOOKUP_THREADS, "peak %u threads", counts().peak);

    /* Fill the pool: every thread stuck, then the whole queue. */
    atoll__test_resolver_block(true);
    struct binds q;
    binds_init(&q, "localhost", ATOLL_LOOKUP_THREADS);
    cr_assert_eq(sup_run_on(rt, 0, bind_many_on, &q), 0);
    cr_assert_eq(q.accepted, ATOLL_LOOKUP_THREADS);
    cr_assert(wait_for(blocked_is, ATOLL_LOOKUP_THREADS), "%u lookups blocked", counts().blocked);
    q.n = MAX_BINDS;
    cr_assert_eq(sup_run_on(rt, 0, bind_many_on, &q), 0);
    int want = (int)(ATOLL_LOOKUP_THREADS + ATOLL_LOOKUP_QUEUE);
    cr_assert_eq(q.first_refusal, want, "first refusal at %d, want %d", q.first_refusal, want);
    cr_assert_eq(q.rc[want], -EAGAIN, "a full queue returned %d %s", q.rc[want], atoll_error_name(q.rc[want]));
    atoll__test_resolver_block(false);
    cr_assert(sup_latch_wait(&q.bound, want, SUP_WAIT_MS), "%ld of %d queued lookups answered", sup_latch_get(&q.bound),
              want);
    cr_assert_eq(atomic_load(&q.ok), want);
    cr_assert_eq(counts().peak, ATOLL_LOOKUP_THREADS, "peak %u threads", counts().peak);

    sup_shutdown(rt);
    cr_assert(wait_for(pool_settled, 0), "idle lookup threads did not exit at destroy");
    sup_assert_no_failures();
    reset_hooks();
    ASSERT_NO_LEAKS();
}

static int bind_entry(atoll_isolate *self, void *arg)
{
    bind_many_on(self, arg);
    return 0; /* stays: its server keeps it alive until told to exit */
}

static bool isolate_exited(atoll_runtime *rt, uint32_t id)
{
    for (int i = 0; i < SUP_WAIT_MS; i++) {
        atoll_isolate_state st;
        if (atoll_runtime_isolate_status(rt, id, &st, NULL) == 0 && st == ATOLL_ISOLATE_EXITED)
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    return false;
}

/* The requesting isolate exits while its lookup is in the resolver: the
 * late answer is refused by the exited isolate and freed (LSan would report
 * it), on_bound never runs, and the runtime's pool keeps serving others. */
Test(resolver, isolate_exits_before_the_answer, .timeout = 60)
{
    reset_hooks();
    cr_assert(pool_settled(0), "lookup threads left from before");
    atoll__test_resolver_block(true);
    atoll_runtime *rt = sup_start_n(1);
    struct binds b;
    binds_init(&b, "localhost", 1);
    uint32_t id = sup_spawn(rt, bind_entry, &b);
    cr_assert(sup_latch_wait(&b.started, 1, SUP_WAIT_MS), "the entry never ran");
    cr_assert(wait_for(blocked_is, 1), "the lookup never reached the resolver");
    cr_assert_eq(b.accepted, 1, "bind returned %d", b.rc[0]);
    cr_assert_eq(sup_run_on(rt, id, exit_on, NULL), 0);
    cr_assert(isolate_exited(rt, id), "isolate %u did not exit", id);

    atoll__test_resolver_block(false);
    cr_assert(wait_for(pool_settled, 1), "the released lookup did not finish");
    cr_assert_eq(sup_latch_get(&b.bound), 0, "on_bound ran on an isolate that exited");

    struct binds live;
    binds_init(&live, "localhost", 1);
    cr_assert_eq(sup_run_on(rt, 0, bind_many_on, &live), 0);
    cr_assert(sup_latch_wait(&live.bound, 1, SUP_WAIT_MS), "a lookup after the exit was never answered");
    cr_assert_eq(atomic_load(&live.ok), 1);

    sup_shutdown(rt);
    cr_assert(wait_for(pool_settled, 0), "idle lookup threads did not exit at destroy");
    sup_assert_no_failures();
    reset_hooks();
    ASSERT_NO_LEAKS();
}
