/* test_lifecycle: isolates start, run on their own threads, exit with a
 * status, drain, stop; every lifecycle misuse is refused. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

/* ---- pool isolates run their entry on their own thread ------------------ */

struct seen {
    atoll_runtime *rt; /* set before start */
    sup_latch ran;
    pthread_mutex_t mu;
    pthread_t thread[SUP_MAX_ISO];
    atoll_isolate *iso[SUP_MAX_ISO];
    int entries[SUP_MAX_ISO];
};

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof *s);
    sup_latch_init(&s->ran);
    pthread_mutex_init(&s->mu, NULL);
}

static int record_entry(atoll_isolate *self, void *arg)
{
    struct seen *s = arg;
    uint32_t id = atoll_isolate_id(self);
    SUP_CHECK(atoll_isolate_current() == self, "atoll_isolate_current() != self in entry of %u", id);
    SUP_CHECK(atoll_isolate_runtime(self) == s->rt, "atoll_isolate_runtime wrong in %u", id);
    SUP_CHECK(id < SUP_MAX_ISO, "id %u out of range", id);
    if (id < SUP_MAX_ISO) {
        pthread_mutex_lock(&s->mu);
        s->thread[id] = pthread_self();
        s->iso[id] = self;
        s->entries[id]++;
        pthread_mutex_unlock(&s->mu);
    }
    sup_latch_signal(&s->ran);
    return 0;
}

Test(lifecycle, pool_entries_run_on_distinct_threads, .timeout = 60)
{
    struct seen s;
    seen_init(&s);
    atoll_runtime_options o;
    sup_options(&o, 3);
    o.entry = record_entry;
    o.entry_arg = &s;
    atoll_runtime *rt = NULL;
    cr_assert_eq(atoll_runtime_create(&o, &rt), 0);
    s.rt = rt;
    cr_assert_eq(atoll_runtime_start(rt), 0);

    cr_assert(sup_latch_wait(&s.ran, 3, SUP_WAIT_MS), "only %ld of 3 pool entries ran", sup_latch_get(&s.ran));
    cr_assert_null(atoll_isolate_current(), "host thread must have no current isolate");
    cr_assert_eq(atoll_runtime_isolate_count(rt), 3);
    pthread_mutex_lock(&s.mu);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(s.entries[i], 1, "pool isolate %u entry ran %d times", i, s.entries[i]);
        cr_assert_eq(atoll_isolate_id(s.iso[i]), i);
        cr_assert(!pthread_equal(s.thread[i], pthread_self()), "isolate %u ran on the host thread", i);
        for (uint32_t j = i + 1; j < 3; j++)
            cr_assert(!pthread_equal(s.thread[i], s.thread[j]), "isolates %u and %u share a thread", i, j);
    }
    pthread_mutex_unlock(&s.mu);
    for (uint32_t i = 0; i < 3; i++) {
        atoll_isolate_state st = ATOLL_ISOLATE_EXITED;
        cr_assert_eq(atoll_runtime_isolate_status(rt, i, &st, NULL), 0);
        cr_assert_eq(st, ATOLL_ISOLATE_RUNNING, "pool isolate %u state %d", i, st);
    }
    sup_assert_no_failures();
    sup_shutdown(rt);
}

Test(lifecycle, spawned_isolates_run_on_own_threads_and_exit_zero, .timeout = 60)
{
    struct seen s;
    seen_init(&s);
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    s.rt = rt;

    uint32_t ids[3];
    for (int i = 0; i < 3; i++) {
        ids[i] = sup_spawn(rt, record_entry, &s);
        cr_assert_geq(ids[i], 2, "spawned id %u collides with the pool", ids[i]);
        if (i > 0)
            cr_assert_gt(ids[i], ids[i - 1], "ids must be new: %u after %u", ids[i], ids[i - 1]);
        int st = -1;
        /* Entry returned 0 with nothing open: the isolate exits by itself. */
        cr_assert(sup_exits_wait(&ex, ids[i], SUP_WAIT_MS, &st), "spawned isolate %u never exited", ids[i]);
        cr_assert_eq(st, 0, "spawned isolate %u status %d %s", ids[i], st, atoll_error_name(st));
        atoll_isolate_state state;
        int status = -1;
        cr_assert_eq(atoll_runtime_isolate_status(rt, ids[i], &state, &status), 0);
        cr_assert_eq(state, ATOLL_ISOLATE_EXITED, "isolate %u: state %d after its on_exit notification", ids[i], state);
        cr_assert_eq(status, 0);
    }
    cr_assert_eq(atoll_runtime_isolate_count(rt), 5);
    pthread_mutex_lock(&s.mu);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s.entries[ids[i]], 1);
        cr_assert(!pthread_equal(s.thread[ids[i]], pthread_self()));
        for (int j = i + 1; j < 3; j++)
            cr_assert_neq(s.iso[ids[i]], s.iso[ids[j]]);
    }
    pthread_mutex_unlock(&s.mu);
    sup_assert_no_failures();
    sup_shutdown(rt);
    cr_assert_eq(ex.wrong_thread, 0, "%d exit callbacks ran off the isolate's thread", ex.wrong_thread);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(sup_exits_calls(&ex, i), 1, "isolate %u notified %d times", i, sup_exits_calls(&ex, i));
}

static int spawn_child_from_isolate(atoll_isolate *self, void *arg)
{
    struct seen *s = arg;
    uint32_t id = UINT32_MAX;
    int rc = atoll_runtime_spawn(atoll_isolate_runtime(self), record_entry, s, &id);
    SUP_CHECK(rc == 0, "spawn from isolate: %d %s", rc, atoll_error_name(rc));
    SUP_CHECK(atoll_runtime_spawn(atoll_isolate_runtime(self), NULL, NULL, NULL) == -EINVAL,
              "spawn(NULL entry) from isolate");
    if (rc != 0)
        sup_latch_signal(&s->ran); /* do not leave the test waiting */
    return 0;
}

Test(lifecycle, spawn_from_an_isolate, .timeout = 60)
{
    struct seen s;
    seen_init(&s);
    atoll_runtime *rt = sup_start_n(2);
    s.rt = rt;
    cr_assert_eq(atoll_runtime_spawn(rt, NULL, NULL, NULL), -EINVAL, "spawn(NULL entry)");
    sup_spawn(rt, spawn_child_from_isolate, &s);
    cr_assert(sup_latch_wait(&s.ran, 1, SUP_WAIT_MS), "grandchild never ran");
    sup_assert_no_failures();
    cr_assert_eq(atoll_runtime_isolate_count(rt), 4);
    sup_shutdown(rt);
}

/* ---- exit statuses ----------------------------------------------------- */

static int entry_return_42(atoll_isolate *self, void *arg)
{
    return 42;
}

static int entry_return_minus_5(atoll_isolate *self, void *arg)
{
    return -5;
}

static int entry_exit_7(atoll_isolate *self, void *arg)
{
    int rc = atoll_isolate_exit(self, 7);
    SUP_CHECK(rc == 0, "atoll_isolate_exit: %d", rc);
    rc = atoll_isolate_exit(self, 8); /* the first status wins */
    SUP_CHECK(rc == 0, "second atoll_isolate_exit: %d", rc);
    return 0;
}

static void ignore_msg(atoll_receive_port *p, atoll_message *m, void *u)
{
}

/* An open port would keep it alive; atoll_isolate_exit ends it anyway. */
static int entry_port_then_exit_9(atoll_isolate *self, void *arg)
{
    atoll_receive_port *p = NULL;
    int rc = atoll_port_open(self, NULL, ignore_msg, NULL, &p);
    SUP_CHECK(rc == 0, "port_open: %d %s", rc, atoll_error_name(rc));
    atoll_isolate_exit(self, 9);
    return 0;
}

Test(lifecycle, exit_statuses_reach_on_exit_and_status, .timeout = 60)
{
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);

    struct {
        atoll_entry_fn fn;
        int want;
    } cases[] = {
        {entry_return_42, 42},
        {entry_return_minus_5, -5},
        {entry_exit_7, 7},
        {entry_port_then_exit_9, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t id = sup_spawn(rt, cases[i].fn, NULL);
        int st = 12345;
        cr_assert(sup_exits_wait(&ex, id, SUP_WAIT_MS, &st), "case %zu: isolate %u never exited", i, id);
        cr_assert_eq(st, cases[i].want, "case %zu: on_exit status %d, want %d", i, st, cases[i].want);
        atoll_isolate_state state = ATOLL_ISOLATE_RUNNING;
        int status = 12345;
        cr_assert_eq(atoll_runtime_isolate_status(rt, id, &state, &status), 0);
        cr_assert_eq(state, ATOLL_ISOLATE_EXITED, "case %zu: state %d after on_exit", i, state);
        cr_assert_eq(status, cases[i].want, "case %zu: isolate_status %d, want %d", i, status, cases[i].want);
        cr_assert_eq(atoll_runtime_isolate_status(rt, id, NULL, NULL), 0, "NULL outs allowed");
    }
    sup_assert_no_failures();

    /* Pool isolates end with ATOLL_E_STOPPED. */
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    for (uint32_t id = 0; id < 2; id++) {
        int st = 0;
        cr_assert(sup_exits_wait(&ex, id, SUP_WAIT_MS, &st));
        cr_assert_eq(st, ATOLL_E_STOPPED, "pool isolate %u status %d %s", id, st, atoll_error_name(st));
        int status = 0;
        atoll_isolate_state state;
        cr_assert_eq(atoll_runtime_isolate_status(rt, id, &state, &status), 0);
        cr_assert_eq(state, ATOLL_ISOLATE_EXITED);
        cr_assert_eq(status, ATOLL_E_STOPPED);
    }
    for (uint32_t id = 0; id < 6; id++)
        cr_assert_eq(sup_exits_calls(&ex, id), 1, "isolate %u notified %d times", id, sup_exits_calls(&ex, id));
    cr_assert_eq(ex.wrong_thread, 0, "exit callback off the isolate's thread");
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, unknown_id_is_enoent, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    atoll_isolate_state st;
    int status;
    atoll_isolate_stats stats;
    cr_assert_eq(atoll_runtime_isolate_status(rt, 2, &st, &status), -ENOENT);
    cr_assert_eq(atoll_runtime_isolate_status(rt, 999, &st, &status), -ENOENT);
    cr_assert_eq(atoll_runtime_isolate_status(rt, UINT32_MAX, NULL, NULL), -ENOENT);
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 999, &stats), -ENOENT);
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 0, &stats), 0);
    sup_shutdown(rt);
}

/* ---- misuse ------------------------------------------------------------- */

static int entry_noop(atoll_isolate *self, void *arg)
{
    return 0;
}

Test(lifecycle, start_twice_is_state, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    cr_assert_eq(atoll_runtime_start(rt), ATOLL_E_STATE);
    sup_shutdown(rt);
}

Test(lifecycle, spawn_before_start_is_state, .timeout = 30)
{
    atoll_runtime_options o;
    sup_options(&o, 2);
    atoll_runtime *rt = NULL;
    cr_assert_eq(atoll_runtime_create(&o, &rt), 0);
    uint32_t id = 77;
    cr_assert_eq(atoll_runtime_spawn(rt, entry_noop, NULL, &id), ATOLL_E_STATE);
    cr_assert_eq(atoll_runtime_drain(rt, 100), ATOLL_E_STATE, "drain before start");
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, spawn_after_stop_is_stopped, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_spawn(rt, entry_noop, NULL, NULL), ATOLL_E_STOPPED);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert_eq(atoll_runtime_spawn(rt, entry_noop, NULL, NULL), ATOLL_E_STOPPED, "after join");
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, stop_is_idempotent, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert_eq(atoll_runtime_stop(rt), 0, "stop after join");
    cr_assert_eq(atoll_runtime_join(rt), 0, "join twice");
    cr_assert_eq(atoll_runtime_drain(rt, 100), ATOLL_E_STATE, "drain after stop");
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, stop_on_never_started_runtime, .timeout = 30)
{
    atoll_runtime_options o;
    sup_options(&o, 2);
    atoll_runtime *rt = NULL;
    cr_assert_eq(atoll_runtime_create(&o, &rt), 0);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, join_before_stop_is_state, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    cr_assert_eq(atoll_runtime_join(rt), ATOLL_E_STATE);
    sup_shutdown(rt);
}

Test(lifecycle, destroy_while_running_is_state, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    cr_assert_eq(atoll_runtime_destroy(rt), ATOLL_E_STATE, "destroy while running");
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), ATOLL_E_STATE, "destroy stopped but not joined");
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(lifecycle, destroy_never_started_and_null, .timeout = 30)
{
    atoll_runtime_options o;
    sup_options(&o, 2);
    atoll_runtime *rt = NULL;
    cr_assert_eq(atoll_runtime_create(&o, &rt), 0);
    cr_assert_not_null(rt);
    cr_assert_eq(atoll_runtime_isolate_count(rt), 0, "no isolate before start");
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(NULL), 0);
}

static int entry_keep_port(atoll_isolate *self, void *arg)
{
    atoll_receive_port *p = NULL;
    int rc = atoll_port_open(self, NULL, ignore_msg, NULL, &p);
    SUP_CHECK(rc == 0, "port_open: %d %s", rc, atoll_error_name(rc));
    sup_latch_signal(arg);
    return 0;
}

Test(lifecycle, max_isolates_is_limit, .timeout = 30)
{
    sup_latch up;
    sup_latch_init(&up);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.max_isolates = 3;
    atoll_runtime *rt = sup_start(&o);
    sup_spawn(rt, entry_keep_port, &up);
    cr_assert(sup_latch_wait(&up, 1, SUP_WAIT_MS));
    cr_assert_eq(atoll_runtime_spawn(rt, entry_keep_port, &up, NULL), ATOLL_E_LIMIT);
    sup_assert_no_failures();
    sup_shutdown(rt);
}

/* max_isolates bounds the isolates alive at once, not the ids ever used. */
/* max_isolates caps the isolates created over the runtime's life (ids are
 * never reused), not those alive: an exited isolate still counts. */
Test(lifecycle, max_isolates_counts_created_isolates, .timeout = 30)
{
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.max_isolates = 3;
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    uint32_t id = UINT32_MAX;
    int rc = atoll_runtime_spawn(rt, entry_noop, NULL, &id);
    cr_assert_eq(rc, 0, "spawn of isolate 3 of 3: %d %s", rc, atoll_error_name(rc));
    int st = 1;
    cr_assert(sup_exits_wait(&ex, id, SUP_WAIT_MS, &st));
    cr_assert_eq(st, 0);
    rc = atoll_runtime_spawn(rt, entry_noop, NULL, &id);
    cr_assert_eq(rc, ATOLL_E_LIMIT, "spawn of a 4th isolate: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(atoll_runtime_isolate_count(rt), 3);
    sup_shutdown(rt);
}

/* ---- drain --------------------------------------------------------------- */

Test(lifecycle, drain_idle_pool_returns_zero, .timeout = 60)
{
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 3);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    int rc = atoll_runtime_drain(rt, SUP_WAIT_MS);
    cr_assert_eq(rc, 0, "drain: %d %s", rc, atoll_error_name(rc));
    for (uint32_t i = 0; i < 3; i++) {
        atoll_isolate_state st;
        int status = 12345;
        cr_assert_eq(atoll_runtime_isolate_status(rt, i, &st, &status), 0);
        cr_assert_eq(st, ATOLL_ISOLATE_EXITED, "isolate %u not exited after drain", i);
        cr_assert_eq(status, 0, "drained pool isolate %u status %d %s", i, status, atoll_error_name(status));
        cr_assert_eq(sup_exits_calls(&ex, i), 1);
    }
    cr_assert_eq(atoll_runtime_spawn(rt, entry_noop, NULL, NULL), ATOLL_E_STOPPED, "spawn after drain");
    sup_shutdown(rt);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert_eq(sup_exits_calls(&ex, i), 1, "exit notified again by stop");
}

#define N_HOOKS 8

struct drain_ctx {
    sup_latch registered;
    sup_latch hooks_ran;
    pthread_mutex_t mu;
    pthread_t entry_thread[4];
    atoll_isolate *iso[4];
    int order[4][N_HOOKS + 1];
    int n_order[4];
    int extra_rc[4];
    int null_rc[4];
};

struct hook_arg {
    struct drain_ctx *c;
    int index;
};
static struct hook_arg hook_args[N_HOOKS];

static void drain_hook(atoll_isolate *self, void *user)
{
    struct hook_arg *h = user;
    struct drain_ctx *c = h->c;
    uint32_t id = atoll_isolate_id(self);
    SUP_CHECK(atoll_isolate_current() == self, "drain hook: current() != self on %u", id);
    if (id >= 4)
        return;
    pthread_mutex_lock(&c->mu);
    SUP_CHECK(pthread_equal(pthread_self(), c->entry_thread[id]), "drain hook of %u off its thread", id);
    if (c->n_order[id] <= N_HOOKS)
        c->order[id][c->n_order[id]++] = h->index;
    pthread_mutex_unlock(&c->mu);
    sup_latch_signal(&c->hooks_ran);
}

static int entry_register_hooks(atoll_isolate *self, void *arg)
{
    struct drain_ctx *c = arg;
    uint32_t id = atoll_isolate_id(self);
    if (id >= 4)
        return 1;
    pthread_mutex_lock(&c->mu);
    c->entry_thread[id] = pthread_self();
    c->iso[id] = self;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < N_HOOKS; i++) {
        int rc = atoll_isolate_on_drain(self, drain_hook, &hook_args[i]);
        SUP_CHECK(rc == 0, "on_drain #%d on %u: %d %s", i, id, rc, atoll_error_name(rc));
    }
    c->extra_rc[id] = atoll_isolate_on_drain(self, drain_hook, &hook_args[0]);
    c->null_rc[id] = atoll_isolate_on_drain(self, NULL, NULL);
    sup_latch_signal(&c->registered);
    return 0;
}

Test(lifecycle, drain_hooks_run_in_order_on_isolate_thread, .timeout = 60)
{
    static struct drain_ctx c;
    memset(&c, 0, sizeof c);
    sup_latch_init(&c.registered);
    sup_latch_init(&c.hooks_ran);
    pthread_mutex_init(&c.mu, NULL);
    for (int i = 0; i < N_HOOKS; i++)
        hook_args[i] = (struct hook_arg){&c, i};
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.entry = entry_register_hooks;
    o.entry_arg = &c;
    atoll_runtime *rt = sup_start(&o);
    cr_assert(sup_latch_wait(&c.registered, 2, SUP_WAIT_MS));
    sup_assert_no_failures();
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(c.extra_rc[i], ATOLL_E_LIMIT, "9th drain hook: %d %s", c.extra_rc[i],
                     atoll_error_name(c.extra_rc[i]));
        cr_assert_eq(c.null_rc[i], -EINVAL, "NULL drain hook: %d", c.null_rc[i]);
    }
    cr_assert_eq(atoll_isolate_on_drain(c.iso[0], drain_hook, &hook_args[0]), ATOLL_E_WRONG_THREAD,
                 "on_drain from the host thread");
    cr_assert_eq(sup_latch_get(&c.hooks_ran), 0, "hooks ran before drain");

    int rc = atoll_runtime_drain(rt, SUP_WAIT_MS);
    cr_assert_eq(rc, 0, "drain: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(sup_latch_get(&c.hooks_ran), 2 * N_HOOKS, "hooks ran %ld times", sup_latch_get(&c.hooks_ran));
    sup_assert_no_failures();
    for (int id = 0; id < 2; id++) {
        cr_assert_eq(c.n_order[id], N_HOOKS);
        for (int i = 0; i < N_HOOKS; i++)
            cr_assert_eq(c.order[id][i], i, "isolate %d: hook #%d ran as %d", id, i, c.order[id][i]);
    }
    sup_shutdown(rt);
}

struct holder {
    sup_latch up;
    sup_latch drain_seen;
};

static void holder_drain_hook(atoll_isolate *self, void *user)
{
    struct holder *h = user;
    sup_latch_signal(&h->drain_seen); /* ...and keep the port open */
}

static int entry_hold_port_on_0(atoll_isolate *self, void *arg)
{
    struct holder *h = arg;
    if (atoll_isolate_id(self) != 0)
        return 0;
    atoll_receive_port *p = NULL;
    int rc = atoll_port_open(self, NULL, ignore_msg, NULL, &p);
    SUP_CHECK(rc == 0, "port_open: %d %s", rc, atoll_error_name(rc));
    rc = atoll_isolate_on_drain(self, holder_drain_hook, h);
    SUP_CHECK(rc == 0, "on_drain: %d %s", rc, atoll_error_name(rc));
    sup_latch_signal(&h->up);
    return 0;
}

Test(lifecycle, drain_times_out_when_a_port_stays_open, .timeout = 60)
{
    struct holder h;
    sup_latch_init(&h.up);
    sup_latch_init(&h.drain_seen);
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.entry = entry_hold_port_on_0;
    o.entry_arg = &h;
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    cr_assert(sup_latch_wait(&h.up, 1, SUP_WAIT_MS));

    int rc = atoll_runtime_drain(rt, 300);
    cr_assert_eq(rc, ATOLL_E_TIMEDOUT, "drain: %d %s", rc, atoll_error_name(rc));
    cr_assert(sup_latch_wait(&h.drain_seen, 1, SUP_WAIT_MS), "drain hook never ran");
    atoll_isolate_state st;
    int status;
    cr_assert_eq(atoll_runtime_isolate_status(rt, 0, &st, &status), 0);
    cr_assert_neq(st, ATOLL_ISOLATE_EXITED, "isolate holding a port exited during drain");
    /* Isolate 1 had nothing open: it exits during the drain with status 0. */
    cr_assert(sup_exits_wait(&ex, 1, SUP_WAIT_MS, &status), "idle isolate 1 did not exit on drain");
    cr_assert_eq(status, 0);

    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert(sup_exits_wait(&ex, 0, SUP_WAIT_MS, &status));
    cr_assert_eq(status, ATOLL_E_STOPPED, "holder status %d %s", status, atoll_error_name(status));
    sup_assert_no_failures();
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

/* ---- thread rules ------------------------------------------------------- */

static void timer_noop(atoll_timer *t, void *u)
{
}

static void drain_noop(atoll_isolate *self, void *u)
{
}

struct wrong_ctx {
    sup_latch up;
    atoll_isolate *iso0;
    int cross_rc; /* isolate 1 opening a port on isolate 0 */
};

static int entry_capture_0(atoll_isolate *self, void *arg)
{
    struct wrong_ctx *w = arg;
    if (atoll_isolate_id(self) == 0) {
        w->iso0 = self;
        sup_latch_signal(&w->up);
    }
    return 0;
}

static void cross_open(atoll_isolate *self, void *arg)
{
    struct wrong_ctx *w = arg;
    atoll_receive_port *p = NULL;
    w->cross_rc = atoll_port_open(w->iso0, NULL, ignore_msg, NULL, &p);
}

Test(lifecycle, isolate_only_calls_from_host_are_wrong_thread, .timeout = 30)
{
    struct wrong_ctx w = {0};
    sup_latch_init(&w.up);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.entry = entry_capture_0;
    o.entry_arg = &w;
    atoll_runtime *rt = sup_start(&o);
    cr_assert(sup_latch_wait(&w.up, 1, SUP_WAIT_MS));

    atoll_timer *t = NULL;
    cr_assert_eq(atoll_timer_start(w.iso0, 10, 0, timer_noop, NULL, &t), ATOLL_E_WRONG_THREAD);
    cr_assert_null(t);
    atoll_receive_port *p = NULL;
    cr_assert_eq(atoll_port_open(w.iso0, NULL, ignore_msg, NULL, &p), ATOLL_E_WRONG_THREAD);
    cr_assert_null(p);
    cr_assert_eq(atoll_isolate_exit(w.iso0, 3), ATOLL_E_WRONG_THREAD);
    cr_assert_eq(atoll_isolate_on_drain(w.iso0, drain_noop, NULL), ATOLL_E_WRONG_THREAD);
    cr_assert_eq(atoll_isolate_id(w.iso0), 0, "atoll_isolate_id is any-thread");
    cr_assert_eq(atoll_isolate_runtime(w.iso0), rt, "atoll_isolate_runtime is any-thread");

    /* From another isolate's thread too. */
    w.cross_rc = 1;
    cr_assert_eq(sup_run_on(rt, 1, cross_open, &w), 0);
    cr_assert_eq(w.cross_rc, ATOLL_E_WRONG_THREAD, "port_open on isolate 0 from isolate 1: %d", w.cross_rc);

    atoll_isolate_state st;
    cr_assert_eq(atoll_runtime_isolate_status(rt, 0, &st, NULL), 0);
    cr_assert_eq(st, ATOLL_ISOLATE_RUNNING, "host-thread atoll_isolate_exit must not end the isolate");
    sup_shutdown(rt);
}

struct deadlock_ctx {
    sup_latch done;
    int drain_rc, stop_rc, join_rc;
};

static int entry_join_self(atoll_isolate *self, void *arg)
{
    struct deadlock_ctx *d = arg;
    atoll_runtime *rt = atoll_isolate_runtime(self);
    d->drain_rc = atoll_runtime_drain(rt, 10);
    d->stop_rc = atoll_runtime_stop(rt);
    d->join_rc = atoll_runtime_join(rt);
    sup_latch_signal(&d->done);
    return 0;
}

Test(lifecycle, join_and_drain_from_isolate_are_deadlock, .timeout = 30)
{
    struct deadlock_ctx d = {.drain_rc = 1, .stop_rc = 1, .join_rc = 1};
    sup_latch_init(&d.done);
    atoll_runtime *rt = sup_start_n(2);
    sup_spawn(rt, entry_join_self, &d);
    cr_assert(sup_latch_wait(&d.done, 1, SUP_WAIT_MS), "isolate blocked in drain/stop/join");
    cr_assert_eq(d.drain_rc, ATOLL_E_DEADLOCK, "drain from isolate: %d %s", d.drain_rc, atoll_error_name(d.drain_rc));
    cr_assert_eq(d.stop_rc, 0, "stop from isolate: %d %s", d.stop_rc, atoll_error_name(d.stop_rc));
    cr_assert_eq(d.join_rc, ATOLL_E_DEADLOCK, "join from isolate: %d %s", d.join_rc, atoll_error_name(d.join_rc));
    /* The isolate stopped the runtime: the host joins it. */
    cr_assert_eq(atoll_runtime_join(rt), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}
