/* test_timers: one-shot and periodic timers, ordering, cancel, keep-alive.
 *
 * Most tests run their timers on a spawned isolate: once its timers are done
 * it has nothing open and exits by itself, so the exit notification is the
 * point where everything it recorded is final. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define MAX_EV 64

struct tctx {
    atoll_isolate *iso;
    sup_exits ex;
    /* Written only on the isolate's thread, read after its exit notification. */
    int order[MAX_EV];
    int n_order;
    int fired[MAX_EV];
    int fired_at_exit;
    atoll_timer *timers[MAX_EV];
    uint64_t start_ns;
    int k;
    int rc_misc[8];
    sup_latch ready;
};

static struct tctx *g_ctx; /* for the exit hook */

static void at_exit_hook(atoll_runtime *rt, uint32_t id, int status, void *user)
{
    struct tctx *c = user;
    /* Only the spawned isolate's own exit; pool isolates end together at
     * shutdown (status ATOLL_E_STOPPED) on several threads at once. */
    if (status != ATOLL_E_STOPPED)
        c->fired_at_exit = c->n_order;
}

static void tctx_init(struct tctx *c)
{
    memset(c, 0, sizeof *c);
    sup_exits_init(&c->ex);
    sup_latch_init(&c->ready);
    c->ex.hook = at_exit_hook;
    c->ex.hook_user = c;
    g_ctx = c;
}

static atoll_runtime *start_rt(struct tctx *c)
{
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &c->ex;
    return sup_start(&o);
}

/* Runs `entry` on a new isolate and waits for it to exit; returns its status. */
static int run_isolate(atoll_runtime *rt, struct tctx *c, atoll_entry_fn entry, uint32_t *id_out)
{
    uint32_t id = sup_spawn(rt, entry, c);
    int status = 12345;
    cr_assert(sup_exits_wait(&c->ex, id, SUP_WAIT_MS, &status), "isolate %u never exited (timers stuck?)", id);
    if (id_out)
        *id_out = id;
    return status;
}

static void record(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    int v = (int)(intptr_t)user;
    SUP_CHECK(atoll_isolate_current() == c->iso, "timer %d fired off its isolate", v);
    if (v >= 0 && v < MAX_EV)
        c->fired[v]++;
    if (c->n_order < MAX_EV)
        c->order[c->n_order++] = v;
}

static int start_one(struct tctx *c, uint64_t ms, uint64_t repeat, atoll_timer_fn fn, int v)
{
    atoll_timer *t = NULL;
    int rc = atoll_timer_start(c->iso, ms, repeat, fn, (void *)(intptr_t)v, &t);
    SUP_CHECK(rc == 0, "timer_start(%d ms): %d %s", (int)ms, rc, atoll_error_name(rc));
    SUP_CHECK(rc != 0 || t != NULL, "timer_start gave no handle");
    if (v >= 0 && v < MAX_EV)
        c->timers[v] = t;
    return rc;
}

/* ---- one-shot ----------------------------------------------------------- */

static int entry_one_shot(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    start_one(c, 10, 0, record, 0);
    return 0;
}

Test(timers, one_shot_fires_once_and_keeps_spawned_isolate_alive, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    uint32_t id;
    int status = run_isolate(rt, &c, entry_one_shot, &id);
    cr_assert_eq(status, 0, "isolate status %d %s", status, atoll_error_name(status));
    sup_assert_no_failures();
    cr_assert_eq(c.fired[0], 1, "one-shot fired %d times", c.fired[0]);
    cr_assert_eq(c.fired_at_exit, 1, "isolate exited before its timer fired");
    atoll_isolate_stats st;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, id, &st), 0);
    cr_assert_eq(st.timers_fired, 1, "timers_fired = %llu", (unsigned long long)st.timers_fired);
    sup_shutdown(rt);
}

/* ---- ordering ----------------------------------------------------------- */

static int entry_same_timeout(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    for (int i = 0; i < 16; i++)
        start_one(c, 15, 0, record, i);
    return 0;
}

Test(timers, same_timeout_fires_in_start_order, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    cr_assert_eq(run_isolate(rt, &c, entry_same_timeout, NULL), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.n_order, 16);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(c.order[i], i, "position %d fired timer %d", i, c.order[i]);
    sup_shutdown(rt);
}

static int entry_deadline_order(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    const int ms[] = {30, 10, 50, 20, 40, 0};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        start_one(c, (uint64_t)ms[i], 0, record, ms[i]);
    return 0;
}

Test(timers, different_timeouts_fire_in_deadline_order, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    cr_assert_eq(run_isolate(rt, &c, entry_deadline_order, NULL), 0);
    sup_assert_no_failures();
    const int want[] = {0, 10, 20, 30, 40, 50};
    cr_assert_eq(c.n_order, 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(c.order[i], want[i], "position %d: timer %d ms, want %d ms", i, c.order[i], want[i]);
    sup_shutdown(rt);
}

/* Never early: a 25 ms timer sees the loop clock 25 ms past its start. */
static void check_not_early(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    uint64_t now = atoll_isolate_now_ns(c->iso);
    SUP_CHECK(now >= c->start_ns + 25 * 1000000ull, "timer fired %llu ns after start, before 25 ms",
              (unsigned long long)(now - c->start_ns));
    record(t, user);
}

static int entry_not_early(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    c->start_ns = atoll_isolate_now_ns(self);
    start_one(c, 25, 0, check_not_early, 0);
    return 0;
}

Test(timers, timer_never_fires_early, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    cr_assert_eq(run_isolate(rt, &c, entry_not_early, NULL), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.fired[0], 1);
    sup_shutdown(rt);
}

/* ---- cancel ------------------------------------------------------------- */

/* Timer 1 (30 ms) is cancelled at once; timer 2 (40 ms) is cancelled by
 * timer 3 (5 ms); sentinel 4 (80 ms) fires after both were due. */
static void cancel_victim_2(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    int rc = atoll_timer_cancel(c->timers[2]);
    SUP_CHECK(rc == 0, "cancel from another callback: %d %s", rc, atoll_error_name(rc));
    record(t, user);
}

static void sentinel(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    SUP_CHECK(c->fired[1] == 0 && c->fired[2] == 0, "cancelled timers fired (%d, %d)", c->fired[1], c->fired[2]);
    record(t, user);
}

static int entry_cancel_before_due(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    start_one(c, 30, 0, record, 1);
    start_one(c, 40, 0, record, 2);
    start_one(c, 5, 0, cancel_victim_2, 3);
    start_one(c, 80, 0, sentinel, 4);
    int rc = atoll_timer_cancel(c->timers[1]);
    SUP_CHECK(rc == 0, "cancel: %d %s", rc, atoll_error_name(rc));
    c->rc_misc[0] = atoll_timer_cancel(NULL);
    return 0;
}

Test(timers, cancel_before_due_never_fires, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    cr_assert_eq(run_isolate(rt, &c, entry_cancel_before_due, NULL), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.fired[1], 0, "timer cancelled at start fired");
    cr_assert_eq(c.fired[2], 0, "timer cancelled by another timer fired");
    cr_assert_eq(c.fired[3], 1);
    cr_assert_eq(c.fired[4], 1, "sentinel did not fire");
    cr_assert_eq(c.rc_misc[0], -EINVAL, "cancel(NULL) = %d", c.rc_misc[0]);
    sup_shutdown(rt);
}

#define K_PERIODIC 5

static void periodic_cancel_at_k(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    record(t, user);
    if (c->fired[0] == K_PERIODIC) {
        int rc = atoll_timer_cancel(t);
        SUP_CHECK(rc == 0, "cancel in own callback: %d %s", rc, atoll_error_name(rc));
    }
}

static int entry_periodic(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    start_one(c, 1, 2, periodic_cancel_at_k, 0);
    return 0;
}

Test(timers, periodic_cancelled_in_callback_fires_exactly_k_times, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    uint32_t id;
    cr_assert_eq(run_isolate(rt, &c, entry_periodic, &id), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.fired[0], K_PERIODIC, "periodic fired %d times, cancelled at %d", c.fired[0], K_PERIODIC);
    atoll_isolate_stats st;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, id, &st), 0);
    cr_assert_eq(st.timers_fired, K_PERIODIC, "timers_fired %llu", (unsigned long long)st.timers_fired);
    sup_shutdown(rt);
}

/* Two timers with the same deadline: the first cancels the second, which
 * is already due in the same turn. */
static void cancel_sibling(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    record(t, user);
    int rc = atoll_timer_cancel(c->timers[1]);
    SUP_CHECK(rc == 0, "cancel of due sibling: %d %s", rc, atoll_error_name(rc));
}

static int entry_same_turn(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    start_one(c, 10, 0, cancel_sibling, 0);
    start_one(c, 10, 0, record, 1);
    start_one(c, 10, 0, record, 2); /* not cancelled: still runs */
    return 0;
}

Test(timers, cancel_of_timer_due_in_same_turn, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    cr_assert_eq(run_isolate(rt, &c, entry_same_turn, NULL), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.fired[0], 1);
    cr_assert_eq(c.fired[1], 0, "timer cancelled while due in the same turn still ran");
    cr_assert_eq(c.fired[2], 1);
    sup_shutdown(rt);
}

/* ---- stats, errors, stop ----------------------------------------------- */

static void periodic_cancel_at_3(atoll_timer *t, void *user)
{
    struct tctx *c = g_ctx;
    record(t, user);
    if (c->fired[10] == 3)
        atoll_timer_cancel(t);
}

static int entry_many(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    for (int i = 0; i < 5; i++)
        start_one(c, (uint64_t)i, 0, record, i);
    start_one(c, 1, 1, periodic_cancel_at_3, 10);
    return 0;
}

Test(timers, stats_count_timers_fired, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    uint32_t id;
    cr_assert_eq(run_isolate(rt, &c, entry_many, &id), 0);
    sup_assert_no_failures();
    cr_assert_eq(c.n_order, 8);
    atoll_isolate_stats st;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, id, &st), 0);
    cr_assert_eq(st.timers_fired, 8, "timers_fired %llu, want 8", (unsigned long long)st.timers_fired);
    cr_assert_geq(st.loop_turns, 1);
    sup_shutdown(rt);
}

static void never(atoll_timer *t, void *user)
{
    sup_fail(__FILE__, __LINE__, "timer fired after stop");
}

static int entry_long_timer(atoll_isolate *self, void *arg)
{
    struct tctx *c = arg;
    c->iso = self;
    c->rc_misc[1] = atoll_timer_start(self, 1, 0, NULL, NULL, &c->timers[20]);
    c->rc_misc[2] = atoll_timer_start(self, 1, 0, record, NULL, NULL);
    start_one(c, 60000, 60000, never, 0);
    sup_latch_signal(&c->ready);
    return 0;
}

Test(timers, errors_and_stop_cancels_pending_timers, .timeout = 30)
{
    struct tctx c;
    tctx_init(&c);
    atoll_runtime *rt = start_rt(&c);
    uint32_t id = sup_spawn(rt, entry_long_timer, &c);
    cr_assert(sup_latch_wait(&c.ready, 1, SUP_WAIT_MS), "entry never ran");
    cr_assert_eq(c.rc_misc[1], -EINVAL, "timer_start(fn NULL): %d", c.rc_misc[1]);
    cr_assert_eq(c.rc_misc[2], -EINVAL, "timer_start(out NULL): %d", c.rc_misc[2]);
    cr_assert_not_null(c.timers[0]);
    cr_assert_eq(atoll_timer_cancel(c.timers[0]), ATOLL_E_WRONG_THREAD, "cancel from the host thread");
    atoll_timer *t = NULL;
    cr_assert_eq(atoll_timer_start(c.iso, 1, 0, record, NULL, &t), ATOLL_E_WRONG_THREAD);

    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0, "join with a pending 60 s timer");
    int status = 0;
    cr_assert(sup_exits_wait(&c.ex, id, SUP_WAIT_MS, &status));
    cr_assert_eq(status, ATOLL_E_STOPPED, "status %d %s", status, atoll_error_name(status));
    sup_assert_no_failures();
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}
