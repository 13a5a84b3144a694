/* test_submit: atoll_submit (isolate -> isolate with a reply) and
 * atoll_runtime_submit (any thread -> pool), targets, errors, stop. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static sup_exits g_ex;

static atoll_runtime *start_rt(uint32_t n)
{
    sup_exits_init(&g_ex);
    atoll_runtime_options o;
    sup_options(&o, n);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &g_ex;
    return sup_start(&o);
}

static int wait_exit(uint32_t id)
{
    int st = 12345;
    cr_assert(sup_exits_wait(&g_ex, id, SUP_WAIT_MS, &st), "isolate %u never exited", id);
    return st;
}

/* ---- atoll_submit with a reply -------------------------------------------- */

struct one {
    atoll_isolate *caller;
    uint32_t target;
    uint32_t ran_on;
    int task_ok, reply_ok, status;
    void *result;
};

static void *one_task(atoll_isolate *self, void *arg)
{
    struct one *o = arg;
    o->ran_on = atoll_isolate_id(self);
    o->task_ok = atoll_isolate_current() == self && self != o->caller;
    return (void *)(intptr_t)42;
}

static void one_reply(atoll_isolate *self, int status, void *result, void *user)
{
    struct one *o = user;
    o->reply_ok = self == o->caller && atoll_isolate_current() == o->caller;
    o->status = status;
    o->result = result;
}

static int one_entry(atoll_isolate *self, void *arg)
{
    struct one *o = arg;
    o->caller = self;
    int rc = atoll_submit(self, o->target, one_task, o, one_reply, o);
    SUP_CHECK(rc == 0, "atoll_submit: %d %s", rc, atoll_error_name(rc));
    return 0; /* the pending reply keeps this isolate alive */
}

Test(submit, task_runs_on_target_reply_on_caller, .timeout = 30)
{
    atoll_runtime *rt = start_rt(3);
    struct one o = {.target = 1, .status = 12345};
    uint32_t id = sup_spawn(rt, one_entry, &o);
    cr_assert_eq(wait_exit(id), 0, "caller exit status");
    sup_assert_no_failures();
    cr_assert_eq(o.ran_on, 1, "task ran on %u, want 1", o.ran_on);
    cr_assert(o.task_ok, "task: current() wrong");
    cr_assert(o.reply_ok, "reply not on the calling isolate");
    cr_assert_eq(o.status, 0);
    cr_assert_eq((intptr_t)o.result, 42, "result delivered");
    sup_shutdown(rt);
}

static void *double_task(atoll_isolate *self, void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

struct many {
    atoll_isolate *self;
    int n, submitted, replies, bad;
    int submit_rc;
    uint32_t target_mode; /* 0: alternate 0/1, else a pool target */
};

static int g_hist[8];

static void many_reply(atoll_isolate *self, int status, void *result, void *user)
{
    struct many *m = user;
    SUP_CHECK(self == m->self && atoll_isolate_current() == self, "reply off the caller");
    if (status != 0 || ((intptr_t)result & 1))
        m->bad++;
    m->replies++;
}

static void *counting_task(atoll_isolate *self, void *arg)
{
    uint32_t id = atoll_isolate_id(self);
    if (id < 8)
        __atomic_fetch_add(&g_hist[id], 1, __ATOMIC_RELAXED);
    return (void *)((intptr_t)arg * 2);
}

static int many_entry(atoll_isolate *self, void *arg)
{
    struct many *m = arg;
    m->self = self;
    for (int i = 0; i < m->n; i++) {
        uint32_t target = m->target_mode ? m->target_mode : (uint32_t)(i & 1);
        int rc = atoll_submit(self, target, counting_task, (void *)(intptr_t)i, many_reply, m);
        if (rc != 0) {
            m->submit_rc = rc;
            break;
        }
        m->submitted++;
    }
    return 0;
}

Test(submit, thousand_submits_all_replied, .timeout = 60)
{
    memset(g_hist, 0, sizeof g_hist);
    atoll_runtime *rt = start_rt(2);
    struct many m = {.n = 1000};
    uint32_t id = sup_spawn(rt, many_entry, &m);
    cr_assert_eq(wait_exit(id), 0);
    sup_assert_no_failures();
    cr_assert_eq(m.submit_rc, 0, "submit failed: %d %s", m.submit_rc, atoll_error_name(m.submit_rc));
    cr_assert_eq(m.submitted, 1000);
    cr_assert_eq(m.replies, 1000, "replies %d", m.replies);
    cr_assert_eq(m.bad, 0, "%d bad replies", m.bad);
    cr_assert_eq(g_hist[0], 500);
    cr_assert_eq(g_hist[1], 500);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    atoll_isolate_stats s0, s1;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 0, &s0), 0);
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 1, &s1), 0);
    cr_assert_eq(s0.tasks_run + s1.tasks_run, 1000, "tasks_run %llu + %llu", (unsigned long long)s0.tasks_run,
                 (unsigned long long)s1.tasks_run);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(submit, round_robin_spreads_over_the_pool, .timeout = 60)
{
    memset(g_hist, 0, sizeof g_hist);
    atoll_runtime *rt = start_rt(4);
    struct many m = {.n = 100, .target_mode = ATOLL_POOL_ROUND_ROBIN};
    uint32_t id = sup_spawn(rt, many_entry, &m);
    cr_assert_eq(wait_exit(id), 0);
    sup_assert_no_failures();
    cr_assert_eq(m.replies, 100);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(g_hist[i], 25, "pool isolate %d ran %d of 100 round-robin tasks", i, g_hist[i]);
    cr_assert_eq(g_hist[4], 0, "round robin picked the spawned caller");

    /* From the host: `chosen` cycles through the whole pool. */
    int seen[4] = {0};
    for (int i = 0; i < 8; i++) {
        uint32_t chosen = UINT32_MAX;
        cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_ROUND_ROBIN, double_task, NULL, NULL, NULL, &chosen), 0);
        cr_assert_lt(chosen, 4, "chosen %u outside the pool", chosen);
        seen[chosen]++;
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(seen[i], 2, "host round robin: isolate %d chosen %d of 8 times", i, seen[i]);
    sup_shutdown(rt);
}

/* ---- blocking a pool isolate --------------------------------------------- */

static sup_latch g_entered, g_go;

static void *blocking_task(atoll_isolate *self, void *arg)
{
    sup_latch_signal(&g_entered);
    SUP_CHECK(sup_latch_wait(&g_go, 1, SUP_WAIT_MS), "blocking task: go never came");
    return arg;
}

struct rec {
    sup_latch done;
    pthread_mutex_t mu;
    int ran[64];
    int done_calls[64];
    int done_status[64];
    uint32_t ran_on[64];
    int done_on_ok[64];
};

static struct rec g_rec;

static void rec_init(void)
{
    memset(&g_rec, 0, sizeof g_rec);
    sup_latch_init(&g_rec.done);
    pthread_mutex_init(&g_rec.mu, NULL);
}

static void *rec_task(atoll_isolate *self, void *arg)
{
    int i = (int)(intptr_t)arg;
    pthread_mutex_lock(&g_rec.mu);
    g_rec.ran[i]++;
    g_rec.ran_on[i] = atoll_isolate_id(self);
    pthread_mutex_unlock(&g_rec.mu);
    return arg;
}

static void rec_done(int status, void *result, void *user)
{
    int i = (int)(intptr_t)user;
    atoll_isolate *cur = atoll_isolate_current();
    pthread_mutex_lock(&g_rec.mu);
    g_rec.done_calls[i]++;
    g_rec.done_status[i] = status;
    g_rec.done_on_ok[i] = cur != NULL && (status != 0 || atoll_isolate_id(cur) == g_rec.ran_on[i]);
    if (status == 0 && result != (void *)(intptr_t)i)
        g_rec.done_on_ok[i] = 0;
    pthread_mutex_unlock(&g_rec.mu);
    sup_latch_signal(&g_rec.done);
}

Test(submit, least_loaded_avoids_a_busy_isolate, .timeout = 30)
{
    sup_latch_init(&g_entered);
    sup_latch_init(&g_go);
    rec_init();
    atoll_runtime *rt = start_rt(2);
    cr_assert_eq(atoll_runtime_submit(rt, 0, blocking_task, NULL, NULL, NULL, NULL), 0);
    cr_assert(sup_latch_wait(&g_entered, 1, SUP_WAIT_MS));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atoll_runtime_submit(rt, 0, rec_task, (void *)(intptr_t)i, rec_done, (void *)(intptr_t)i, NULL),
                     0);
    uint32_t chosen = UINT32_MAX;
    cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_LEAST_LOADED, rec_task, (void *)(intptr_t)3, rec_done,
                                      (void *)(intptr_t)3, &chosen),
                 0);
    cr_assert_eq(chosen, 1, "least loaded chose %u although isolate 0 has 3 queued tasks", chosen);
    cr_assert(sup_latch_wait(&g_rec.done, 1, SUP_WAIT_MS), "least-loaded task did not run");
    pthread_mutex_lock(&g_rec.mu);
    cr_assert_eq(g_rec.ran_on[3], 1);
    pthread_mutex_unlock(&g_rec.mu);
    sup_latch_signal(&g_go);
    cr_assert(sup_latch_wait(&g_rec.done, 4, SUP_WAIT_MS));
    sup_assert_no_failures();
    sup_shutdown(rt);
}

static void least_reply(atoll_isolate *self, int status, void *result, void *user)
{
    struct one *o = user;
    o->status = status;
    o->reply_ok = self == o->caller;
}

static void *id_task(atoll_isolate *self, void *arg)
{
    struct one *o = arg;
    o->ran_on = atoll_isolate_id(self);
    return NULL;
}

static int least_entry(atoll_isolate *self, void *arg)
{
    struct one *o = arg;
    o->caller = self;
    int rc = atoll_submit(self, ATOLL_POOL_LEAST_LOADED, id_task, o, least_reply, o);
    SUP_CHECK(rc == 0, "submit least loaded: %d %s", rc, atoll_error_name(rc));
    return 0;
}

Test(submit, least_loaded_from_isolate_picks_a_pool_isolate, .timeout = 30)
{
    atoll_runtime *rt = start_rt(3);
    struct one o = {.ran_on = UINT32_MAX, .status = 1};
    uint32_t id = sup_spawn(rt, least_entry, &o);
    cr_assert_eq(wait_exit(id), 0);
    sup_assert_no_failures();
    cr_assert_lt(o.ran_on, 3, "least loaded ran on %u", o.ran_on);
    cr_assert_eq(o.status, 0);
    cr_assert(o.reply_ok);
    sup_shutdown(rt);
}

/* ---- atoll_runtime_submit from host threads ------------------------------- */

#define HOST_THREADS 2
#define PER_THREAD   500

struct host_task {
    uint32_t chosen, ran_on;
    int done_ok;
    int status;
};

static struct host_task g_ht[HOST_THREADS * PER_THREAD];
static sup_latch g_host_done;
static atoll_runtime *g_rt;

static void *host_task_fn(atoll_isolate *self, void *arg)
{
    struct host_task *t = arg;
    t->ran_on = atoll_isolate_id(self);
    SUP_CHECK(atoll_isolate_current() == self, "task off its isolate");
    return t;
}

static void host_task_done(int status, void *result, void *user)
{
    struct host_task *t = user;
    atoll_isolate *cur = atoll_isolate_current();
    t->status = status;
    t->done_ok = cur != NULL && atoll_isolate_id(cur) == t->ran_on && result == t;
    sup_latch_signal(&g_host_done);
}

static void host_submitter(int index, void *arg)
{
    for (int i = 0; i < PER_THREAD; i++) {
        struct host_task *t = &g_ht[index * PER_THREAD + i];
        uint32_t chosen = UINT32_MAX;
        int rc = atoll_runtime_submit(g_rt, ATOLL_POOL_ROUND_ROBIN, host_task_fn, t, host_task_done, t, &chosen);
        SUP_CHECK(rc == 0, "runtime_submit: %d %s", rc, atoll_error_name(rc));
        if (rc != 0) {
            sup_latch_signal(&g_host_done);
            continue;
        }
        t->chosen = chosen;
    }
}

Test(submit, runtime_submit_from_host_threads, .timeout = 60)
{
    memset(g_ht, 0, sizeof g_ht);
    sup_latch_init(&g_host_done);
    atoll_runtime *rt = start_rt(3);
    g_rt = rt;
    sup_host_threads(HOST_THREADS, host_submitter, NULL);
    cr_assert(sup_latch_wait(&g_host_done, HOST_THREADS * PER_THREAD, 30000), "%ld of %d done",
              sup_latch_get(&g_host_done), HOST_THREADS * PER_THREAD);
    sup_assert_no_failures();
    int per[3] = {0};
    for (int i = 0; i < HOST_THREADS * PER_THREAD; i++) {
        cr_assert_eq(g_ht[i].status, 0, "task %d status %d", i, g_ht[i].status);
        cr_assert(g_ht[i].done_ok, "task %d: done not on the isolate that ran it", i);
        cr_assert_eq(g_ht[i].chosen, g_ht[i].ran_on, "task %d: chosen %u, ran on %u", i, g_ht[i].chosen,
                     g_ht[i].ran_on);
        cr_assert_lt(g_ht[i].ran_on, 3);
        per[g_ht[i].ran_on]++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert_gt(per[i], 0, "isolate %d got no round-robin task", i);
    sup_shutdown(rt);
}

static void *set_latch_task(atoll_isolate *self, void *arg)
{
    sup_latch_signal(arg);
    return NULL;
}

Test(submit, runtime_submit_done_may_be_null, .timeout = 30)
{
    sup_latch l;
    sup_latch_init(&l);
    atoll_runtime *rt = start_rt(2);
    cr_assert_eq(atoll_runtime_submit(rt, 1, set_latch_task, &l, NULL, NULL, NULL), 0);
    cr_assert(sup_latch_wait(&l, 1, SUP_WAIT_MS), "task with NULL done never ran");
    sup_shutdown(rt);
}

/* ---- errors ----------------------------------------------------------------- */

struct errs {
    uint32_t target;
    int rc_target, rc_fn_null, rc_reply_null;
    sup_latch done;
};

static void noop_reply(atoll_isolate *self, int status, void *result, void *user)
{
}

static void submit_errors_on(atoll_isolate *self, void *arg)
{
    struct errs *e = arg;
    e->rc_target = atoll_submit(self, e->target, double_task, NULL, noop_reply, NULL);
    e->rc_fn_null = atoll_submit(self, 0, NULL, NULL, noop_reply, NULL);
    e->rc_reply_null = atoll_submit(self, 0, double_task, NULL, NULL, NULL);
}

static atoll_isolate *g_iso1;
static void capture_iso(atoll_isolate *self, void *arg)
{
    g_iso1 = self;
}

Test(submit, unknown_target_and_bad_arguments, .timeout = 30)
{
    atoll_runtime *rt = start_rt(2);
    cr_assert_eq(atoll_runtime_submit(rt, 999, double_task, NULL, NULL, NULL, NULL), -ENOENT);
    cr_assert_eq(atoll_runtime_submit(rt, 2, double_task, NULL, NULL, NULL, NULL), -ENOENT);
    cr_assert_eq(atoll_runtime_submit(rt, 0, NULL, NULL, NULL, NULL, NULL), -EINVAL);
    struct errs e = {.target = 999, .rc_target = 1};
    cr_assert_eq(sup_run_on(rt, 1, submit_errors_on, &e), 0);
    cr_assert_eq(e.rc_target, -ENOENT, "atoll_submit to 999: %d %s", e.rc_target, atoll_error_name(e.rc_target));
    cr_assert_eq(e.rc_fn_null, -EINVAL);
    cr_assert_eq(e.rc_reply_null, -EINVAL);
    cr_assert_eq(sup_run_on(rt, 1, capture_iso, NULL), 0);
    cr_assert_eq(atoll_submit(g_iso1, 0, double_task, NULL, noop_reply, NULL), ATOLL_E_WRONG_THREAD,
                 "atoll_submit from the host thread");
    sup_shutdown(rt);
}

static int exit_at_once(atoll_isolate *self, void *arg)
{
    return 0;
}

Test(submit, exited_spawned_target_is_port_closed, .timeout = 30)
{
    atoll_runtime *rt = start_rt(2);
    uint32_t gone = sup_spawn(rt, exit_at_once, NULL);
    cr_assert_eq(wait_exit(gone), 0);
    int rc = atoll_runtime_submit(rt, gone, double_task, NULL, NULL, NULL, NULL);
    cr_assert_eq(rc, ATOLL_E_PORT_CLOSED, "runtime_submit to exited isolate: %d %s", rc, atoll_error_name(rc));
    struct errs e = {.target = gone, .rc_target = 1};
    cr_assert_eq(sup_run_on(rt, 0, submit_errors_on, &e), 0);
    cr_assert_eq(e.rc_target, ATOLL_E_PORT_CLOSED, "atoll_submit to exited isolate: %d %s", e.rc_target,
                 atoll_error_name(e.rc_target));
    sup_shutdown(rt);
}

Test(submit, after_stop_is_stopped, .timeout = 30)
{
    atoll_runtime *rt = start_rt(2);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    int rc = atoll_runtime_submit(rt, 0, double_task, NULL, NULL, NULL, NULL);
    cr_assert_eq(rc, ATOLL_E_STOPPED, "after stop: %d %s", rc, atoll_error_name(rc));
    rc = atoll_runtime_submit(rt, ATOLL_POOL_ROUND_ROBIN, double_task, NULL, NULL, NULL, NULL);
    cr_assert_eq(rc, ATOLL_E_STOPPED, "round robin after stop: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(atoll_runtime_join(rt), 0);
    rc = atoll_runtime_submit(rt, 0, double_task, NULL, NULL, NULL, NULL);
    cr_assert_eq(rc, ATOLL_E_STOPPED, "after join: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

/* ---- stop with queued tasks; capacity -------------------------------------- */

Test(submit, tasks_queued_at_stop_complete_exactly_once, .timeout = 30)
{
    enum { N = 6 };
    sup_latch_init(&g_entered);
    sup_latch_init(&g_go);
    rec_init();
    atoll_runtime *rt = start_rt(2);
    cr_assert_eq(atoll_runtime_submit(rt, 1, blocking_task, NULL, NULL, NULL, NULL), 0);
    cr_assert(sup_latch_wait(&g_entered, 1, SUP_WAIT_MS));
    for (int i = 0; i < N; i++)
        cr_assert_eq(atoll_runtime_submit(rt, 1, rec_task, (void *)(intptr_t)i, rec_done, (void *)(intptr_t)i, NULL), 0,
                     "queue task %d", i);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    sup_latch_signal(&g_go);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    sup_assert_no_failures();
    int canceled = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(g_rec.done_calls[i], 1, "task %d: done called %d times", i, g_rec.done_calls[i]);
        int st = g_rec.done_status[i];
        cr_assert(st == 0 || st == ATOLL_E_CANCELED, "task %d: status %d %s", i, st, atoll_error_name(st));
        if (st == ATOLL_E_CANCELED) {
            cr_assert_eq(g_rec.ran[i], 0, "task %d canceled but it ran", i);
            canceled++;
        } else {
            cr_assert_eq(g_rec.ran[i], 1, "task %d: status 0 but it did not run", i);
        }
        cr_assert(g_rec.done_on_ok[i], "task %d: done not on an isolate / wrong result", i);
    }
    atoll_isolate_stats st;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 1, &st), 0);
    cr_assert_eq(st.tasks_run, (uint64_t)(1 + N - canceled), "tasks_run %llu", (unsigned long long)st.tasks_run);
    cr_log_info("stop with %d queued tasks: %d canceled, %d ran", (int)N, canceled, (int)N - canceled);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

Test(submit, task_capacity_is_port_full, .timeout = 30)
{
    sup_latch_init(&g_entered);
    sup_latch_init(&g_go);
    rec_init();
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.task_capacity = 4;
    atoll_runtime *rt = sup_start(&o);
    cr_assert_eq(atoll_runtime_submit(rt, 1, blocking_task, NULL, NULL, NULL, NULL), 0);
    cr_assert(sup_latch_wait(&g_entered, 1, SUP_WAIT_MS));
    int accepted = 0, rc = 0;
    for (int i = 0; i < 16; i++) {
        rc = atoll_runtime_submit(rt, 1, rec_task, (void *)(intptr_t)i, rec_done, (void *)(intptr_t)i, NULL);
        if (rc != 0)
            break;
        accepted++;
    }
    cr_assert_eq(rc, ATOLL_E_PORT_FULL, "after %d queued: %d %s", accepted, rc, atoll_error_name(rc));
    cr_assert(accepted >= 3 && accepted <= 4, "task_capacity 4 accepted %d queued tasks", accepted);
    sup_latch_signal(&g_go);
    cr_assert(sup_latch_wait(&g_rec.done, accepted, SUP_WAIT_MS), "queued tasks did not all run");
    for (int i = 0; i < accepted; i++)
        cr_assert_eq(g_rec.done_status[i], 0);
    cr_log_info("task_capacity 4: %d accepted behind a running task", accepted);
    sup_assert_no_failures();
    sup_shutdown(rt);
}

/* Deterministic cancel: the target is parked inside a port callback (after
 * this turn's task phase); tasks queued then, stop requested before the
 * callback returns: the isolate exits without running them. */
static sup_latch g_cb_entered, g_cb_go;

static void park_cb(atoll_receive_port *port, atoll_message *m, void *user)
{
    sup_latch_signal(&g_cb_entered);
    SUP_CHECK(sup_latch_wait(&g_cb_go, 1, SUP_WAIT_MS), "park: go never came");
}

struct park_ctx {
    atoll_send_port h;
    sup_latch ready;
};

static int park_entry(atoll_isolate *self, void *arg)
{
    struct park_ctx *p = arg;
    atoll_receive_port *port;
    int rc = atoll_port_open(self, NULL, park_cb, NULL, &port);
    SUP_CHECK(rc == 0, "open: %d", rc);
    p->h = atoll_port_send_handle(port);
    sup_latch_signal(&p->ready);
    return 0;
}

Test(submit, tasks_dropped_at_stop_are_canceled, .timeout = 30)
{
    enum { N = 5 };
    rec_init();
    sup_latch_init(&g_cb_entered);
    sup_latch_init(&g_cb_go);
    atoll_runtime *rt = start_rt(2);
    struct park_ctx p;
    sup_latch_init(&p.ready);
    uint32_t id = sup_spawn(rt, park_entry, &p);
    cr_assert(sup_latch_wait(&p.ready, 1, SUP_WAIT_MS));
    atoll_message m = {.tag = 1};
    cr_assert_eq(atoll_port_send(rt, p.h, &m), 0);
    cr_assert(sup_latch_wait(&g_cb_entered, 1, SUP_WAIT_MS));
    for (int i = 0; i < N; i++)
        cr_assert_eq(atoll_runtime_submit(rt, id, rec_task, (void *)(intptr_t)i, rec_done, (void *)(intptr_t)i, NULL),
                     0, "queue task %d", i);
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    sup_latch_signal(&g_cb_go);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    sup_assert_no_failures();
    for (int i = 0; i < N; i++) {
        cr_assert_eq(g_rec.done_calls[i], 1, "task %d: done called %d times", i, g_rec.done_calls[i]);
        cr_assert_eq(g_rec.done_status[i], ATOLL_E_CANCELED, "task %d: status %d %s", i, g_rec.done_status[i],
                     atoll_error_name(g_rec.done_status[i]));
        cr_assert_eq(g_rec.ran[i], 0, "task %d ran after stop", i);
        cr_assert(g_rec.done_on_ok[i], "task %d: done(CANCELED) not on an isolate", i);
    }
    cr_assert_eq(wait_exit(id), ATOLL_E_STOPPED);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}
