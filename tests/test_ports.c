/* test_ports: receive ports and send handles: ordering, back-pressure,
 * closed ports, ping-pong, and the release of undelivered payloads. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define TAG(sender, seq) (((uint64_t)(sender) << 32) | (uint64_t)(seq))
#define MAX_SENDERS      8

/* ---- released payloads ---------------------------------------------------- */

static atomic_long g_released;
static atoll_isolate *_Atomic g_release_iso; /* where releases must run (NULL: any isolate) */

static void release_payload(void *data, size_t size)
{
    atoll_isolate *want = atomic_load(&g_release_iso);
    atoll_isolate *cur = atoll_isolate_current();
    SUP_CHECK(cur != NULL, "release ran on a host thread");
    SUP_CHECK(want == NULL || cur == want, "release ran on the wrong isolate");
    SUP_CHECK(size == sizeof(int), "release got size %zu", size);
    free(data);
    atomic_fetch_add(&g_released, 1);
}

static atoll_message int_msg(uint64_t tag, int value)
{
    int *p = malloc(sizeof *p);
    cr_assert_not_null(p);
    *p = value;
    return (atoll_message){.tag = tag, .data = p, .size = sizeof *p, .release = release_payload};
}

/* ---- an ordered receiver on a spawned isolate ------------------------------- */

struct rx {
    atoll_isolate *iso;
    atoll_receive_port *port;
    atoll_send_port handle;
    uint32_t capacity;
    long expected;
    long total;
    uint32_t next_seq[MAX_SENDERS];
    sup_latch ready;
    sup_latch done;
};

static void rx_on_msg(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct rx *r = user;
    uint32_t sender = (uint32_t)(m->tag >> 32), seq = (uint32_t)m->tag;
    SUP_CHECK(atoll_isolate_current() == r->iso, "port callback off its isolate");
    SUP_CHECK(port == r->port, "callback got another port");
    if (sender >= MAX_SENDERS) {
        sup_fail(__FILE__, __LINE__, "bad sender %u", sender);
        return;
    }
    if (seq != r->next_seq[sender]) {
        sup_fail(__FILE__, __LINE__, "sender %u: got seq %u, want %u", sender, seq, r->next_seq[sender]);
    }
    r->next_seq[sender] = seq + 1;
    if (++r->total == r->expected) {
        int rc = atoll_port_close(port); /* inside its own callback */
        SUP_CHECK(rc == 0, "close in callback: %d %s", rc, atoll_error_name(rc));
        sup_latch_signal(&r->done);
    }
}

static int rx_entry(atoll_isolate *self, void *arg)
{
    struct rx *r = arg;
    r->iso = self;
    atoll_port_options po = {.capacity = r->capacity};
    int rc = atoll_port_open(self, &po, rx_on_msg, r, &r->port);
    SUP_CHECK(rc == 0, "rx port_open: %d %s", rc, atoll_error_name(rc));
    if (rc == 0)
        r->handle = atoll_port_send_handle(r->port);
    sup_latch_signal(&r->ready);
    return rc == 0 ? 0 : 1;
}

static uint32_t rx_spawn(atoll_runtime *rt, struct rx *r, uint32_t capacity, long expected)
{
    memset(r, 0, sizeof *r);
    r->capacity = capacity;
    r->expected = expected;
    sup_latch_init(&r->ready);
    sup_latch_init(&r->done);
    uint32_t id = sup_spawn(rt, rx_entry, r);
    cr_assert(sup_latch_wait(&r->ready, 1, SUP_WAIT_MS), "receiver never opened its port");
    sup_assert_no_failures();
    return id;
}

/* ---- senders --------------------------------------------------------------- */

struct pump {
    atoll_runtime *rt;
    atoll_send_port to;
    uint32_t sender, n, next;
    long full;
    bool spin; /* retry in a sched_yield loop instead of from a timer */
};

/* Sends until done (true) or the port is full (false). */
static bool pump_some(struct pump *p)
{
    while (p->next < p->n) {
        atoll_message m = {.tag = TAG(p->sender, p->next)};
        int rc = atoll_port_send(p->rt, p->to, &m);
        if (rc == 0) {
            p->next++;
        } else if (rc == ATOLL_E_PORT_FULL) {
            p->full++;
            return false;
        } else {
            sup_fail(__FILE__, __LINE__, "sender %u seq %u: %d %s", p->sender, p->next, rc, atoll_error_name(rc));
            p->next = p->n;
        }
    }
    return true;
}

static void pump_tick(atoll_timer *t, void *user)
{
    if (pump_some(user))
        atoll_timer_cancel(t);
}

static int pump_entry(atoll_isolate *self, void *arg)
{
    struct pump *p = arg;
    if (p->spin) {
        while (!pump_some(p))
            sched_yield();
        return 0;
    }
    if (!pump_some(p)) {
        atoll_timer *t;
        int rc = atoll_timer_start(self, 1, 1, pump_tick, p, &t);
        SUP_CHECK(rc == 0, "pump timer: %d %s", rc, atoll_error_name(rc));
    }
    return 0; /* exits once the timer is cancelled */
}

static void host_pump(int index, void *arg)
{
    struct pump *p = &((struct pump *)arg)[index];
    while (!pump_some(p))
        sched_yield();
}

static void check_rx_complete(struct rx *r, uint32_t senders, uint32_t per_sender)
{
    cr_assert(sup_latch_wait(&r->done, 1, 30000), "receiver got %ld of %ld messages", r->total, r->expected);
    sup_assert_no_failures();
    cr_assert_eq(r->total, r->expected);
    for (uint32_t s = 0; s < senders; s++)
        cr_assert_eq(r->next_seq[s], per_sender, "sender %u: last seq %u", s, r->next_seq[s]);
}

#define ISO_SENDERS    4
#define ISO_PER_SENDER 100000

Test(ports, four_isolate_senders_keep_per_sender_order, .timeout = 60)
{
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    static struct rx r;
    uint32_t rx_id = rx_spawn(rt, &r, 0, (long)ISO_SENDERS * ISO_PER_SENDER);

    static struct pump p[ISO_SENDERS];
    uint32_t ids[ISO_SENDERS];
    for (uint32_t i = 0; i < ISO_SENDERS; i++) {
        p[i] = (struct pump){.rt = rt, .to = r.handle, .sender = i, .n = ISO_PER_SENDER};
        ids[i] = sup_spawn(rt, pump_entry, &p[i]);
    }
    check_rx_complete(&r, ISO_SENDERS, ISO_PER_SENDER);
    int st = 1;
    cr_assert(sup_exits_wait(&ex, rx_id, SUP_WAIT_MS, &st), "receiver did not exit after closing its port");
    cr_assert_eq(st, 0);
    for (uint32_t i = 0; i < ISO_SENDERS; i++) {
        cr_assert(sup_exits_wait(&ex, ids[i], SUP_WAIT_MS, &st), "sender %u did not exit", i);
        cr_assert_eq(st, 0, "sender %u status %d", i, st);
    }
    atoll_isolate_stats stats;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, rx_id, &stats), 0);
    cr_assert_eq(stats.messages_delivered, (uint64_t)ISO_SENDERS * ISO_PER_SENDER, "messages_delivered %llu",
                 (unsigned long long)stats.messages_delivered);
    cr_assert_eq(stats.messages_dropped, 0);
    cr_log_info("isolate senders: %ld+%ld+%ld+%ld full retries", p[0].full, p[1].full, p[2].full, p[3].full);
    sup_shutdown(rt);
}

/* A sender that spins on PORT_FULL inside one callback must still make
 * progress: its earlier sends already woke the receiver. */
Test(ports, isolate_sender_spinning_on_full_makes_progress, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    static struct rx r;
    rx_spawn(rt, &r, 64, 100000);
    static struct pump p;
    p = (struct pump){.rt = rt, .to = r.handle, .sender = 0, .n = 100000, .spin = true};
    sup_spawn(rt, pump_entry, &p);
    cr_assert(sup_latch_wait(&r.done, 1, 15000),
              "receiver got %ld of 100000 messages: the sender spins on PORT_FULL inside one callback and its "
              "MSG_RING wakeup is never submitted",
              r.total);
    check_rx_complete(&r, 1, 100000);
    cr_assert_gt(p.full, 0, "capacity 64 never filled up?");
    sup_shutdown(rt);
}

#define HOST_SENDERS    2
#define HOST_PER_SENDER 50000

Test(ports, host_thread_senders_keep_per_sender_order, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    static struct rx r;
    uint32_t rx_id = rx_spawn(rt, &r, 256, (long)HOST_SENDERS * HOST_PER_SENDER);
    static struct pump p[HOST_SENDERS];
    for (uint32_t i = 0; i < HOST_SENDERS; i++)
        p[i] = (struct pump){.rt = rt, .to = r.handle, .sender = i, .n = HOST_PER_SENDER};
    sup_host_threads(HOST_SENDERS, host_pump, p);
    check_rx_complete(&r, HOST_SENDERS, HOST_PER_SENDER);
    sup_shutdown(rt);
    (void)rx_id;
}

/* ---- a receiver the test can block ------------------------------------------- */

struct blk {
    atoll_isolate *iso;
    atoll_receive_port *ctl, *ports[4];
    atoll_send_port ctl_h, h[4];
    uint32_t caps[4];
    int n_ports;
    sup_latch ready, entered, go, got;
    /* what reached each port's callback */
    uint64_t tags[4][64];
    int n[4];
    int seen[64]; /* by payload value: delivered or released */
    bool close_ports_on_go;
    bool close_ctl_on_go;
    bool ctl_last; /* open the ctl port after the others */
};

static struct blk *g_blk;

static void blk_on_msg(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct blk *b = g_blk;
    int k = (int)(intptr_t)user;
    if (b->n[k] < 64)
        b->tags[k][b->n[k]] = m->tag;
    b->n[k]++;
    if (m->data) {
        int v = *(int *)m->data;
        if (v >= 0 && v < 64)
            __atomic_fetch_add(&b->seen[v], 1, __ATOMIC_RELAXED);
        free(m->data); /* the callback owns the payload */
    }
    sup_latch_signal(&b->got);
}

static void blk_on_ctl(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct blk *b = g_blk;
    sup_latch_signal(&b->entered);
    SUP_CHECK(sup_latch_wait(&b->go, 1, SUP_WAIT_MS), "ctl callback: go never came");
    if (b->close_ports_on_go)
        for (int k = 0; k < b->n_ports; k++) {
            int rc = atoll_port_close(b->ports[k]);
            SUP_CHECK(rc == 0, "close port %d: %d %s", k, rc, atoll_error_name(rc));
        }
    if (b->close_ctl_on_go) {
        int rc = atoll_port_close(port);
        SUP_CHECK(rc == 0, "close ctl: %d %s", rc, atoll_error_name(rc));
    }
}

static int blk_entry(atoll_isolate *self, void *arg)
{
    struct blk *b = arg;
    b->iso = self;
    atomic_store(&g_release_iso, self);
    int rc;
    if (!b->ctl_last) {
        rc = atoll_port_open(self, NULL, blk_on_ctl, NULL, &b->ctl);
        SUP_CHECK(rc == 0, "ctl open: %d %s", rc, atoll_error_name(rc));
        b->ctl_h = atoll_port_send_handle(b->ctl);
    }
    for (int k = 0; k < b->n_ports; k++) {
        atoll_port_options po = {.capacity = b->caps[k]};
        rc = atoll_port_open(self, &po, blk_on_msg, (void *)(intptr_t)k, &b->ports[k]);
        SUP_CHECK(rc == 0, "port %d open: %d %s", k, rc, atoll_error_name(rc));
        b->h[k] = atoll_port_send_handle(b->ports[k]);
    }
    if (b->ctl_last) {
        rc = atoll_port_open(self, NULL, blk_on_ctl, NULL, &b->ctl);
        SUP_CHECK(rc == 0, "ctl open: %d %s", rc, atoll_error_name(rc));
        b->ctl_h = atoll_port_send_handle(b->ctl);
    }
    sup_latch_signal(&b->ready);
    return 0;
}

static struct blk *blk_spawn_opt(atoll_runtime *rt, uint32_t *id, const uint32_t *caps, int n_ports, bool ctl_last)
{
    static struct blk b;
    memset(&b, 0, sizeof b);
    g_blk = &b;
    sup_latch_init(&b.ready);
    sup_latch_init(&b.entered);
    sup_latch_init(&b.go);
    sup_latch_init(&b.got);
    b.n_ports = n_ports;
    b.ctl_last = ctl_last;
    for (int k = 0; k < n_ports; k++)
        b.caps[k] = caps[k];
    *id = sup_spawn(rt, blk_entry, &b);
    cr_assert(sup_latch_wait(&b.ready, 1, SUP_WAIT_MS));
    sup_assert_no_failures();
    return &b;
}

static struct blk *blk_spawn(atoll_runtime *rt, uint32_t *id, const uint32_t *caps, int n_ports)
{
    return blk_spawn_opt(rt, id, caps, n_ports, false);
}

/* Parks the receiver inside its ctl callback: its queues cannot drain. */
static void blk_park(atoll_runtime *rt, struct blk *b)
{
    atoll_message m = {.tag = 1};
    cr_assert_eq(atoll_port_send(rt, b->ctl_h, &m), 0);
    cr_assert(sup_latch_wait(&b->entered, 1, SUP_WAIT_MS), "receiver never entered its ctl callback");
}

Test(ports, full_queue_accepts_exactly_capacity, .timeout = 60)
{
    atomic_store(&g_released, 0);
    atoll_runtime *rt = sup_start_n(2);
    uint32_t id;
    const uint32_t caps[3] = {4, 3, 1}; /* 3 rounds up to 4; 1 to the minimum 2 */
    const int want_cap[3] = {4, 4, 2};
    struct blk *b = blk_spawn(rt, &id, caps, 3);
    blk_park(rt, b);

    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < want_cap[k]; i++) {
            atoll_message m = int_msg((uint64_t)i, 0);
            int rc = atoll_port_send(rt, b->h[k], &m);
            cr_assert_eq(rc, 0, "port %d (capacity %u): send #%d: %d %s", k, caps[k], i, rc, atoll_error_name(rc));
        }
        for (int extra = 0; extra < 2; extra++) {
            atoll_message m = int_msg(99, 0);
            int rc = atoll_port_send(rt, b->h[k], &m);
            cr_assert_eq(rc, ATOLL_E_PORT_FULL, "port %d (capacity %u): send past capacity: %d %s", k, caps[k], rc,
                         atoll_error_name(rc));
            free(m.data); /* still ours */
        }
    }
    cr_assert_eq(atomic_load(&g_released), 0, "a refused message was released");

    sup_latch_signal(&b->go);
    cr_assert(sup_latch_wait(&b->got, 10, SUP_WAIT_MS), "only %ld of 10 messages delivered", sup_latch_get(&b->got));
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(b->n[k], want_cap[k]);
        for (int i = 0; i < want_cap[k]; i++)
            cr_assert_eq(b->tags[k][i], (uint64_t)i, "port %d: message %d has tag %llu", k, i,
                         (unsigned long long)b->tags[k][i]);
    }
    /* Drained: the port takes messages again. */
    atoll_message m = int_msg(4, 0);
    cr_assert_eq(atoll_port_send(rt, b->h[0], &m), 0);
    cr_assert(sup_latch_wait(&b->got, 11, SUP_WAIT_MS));
    cr_assert_eq(atomic_load(&g_released), 0);
    sup_assert_no_failures();
    sup_shutdown(rt);
}

Test(ports, queued_messages_released_once_when_port_closes, .timeout = 60)
{
    enum { N = 20 };
    atomic_store(&g_released, 0);
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    uint32_t id;
    const uint32_t caps[1] = {64};
    struct blk *b = blk_spawn(rt, &id, caps, 1);
    b->close_ports_on_go = true;
    b->close_ctl_on_go = true;
    blk_park(rt, b);
    for (int i = 0; i < N; i++) {
        atoll_message m = int_msg((uint64_t)i, i);
        cr_assert_eq(atoll_port_send(rt, b->h[0], &m), 0, "send #%d", i);
    }
    sup_latch_signal(&b->go);
    int st = 1;
    cr_assert(sup_exits_wait(&ex, id, SUP_WAIT_MS, &st), "receiver did not exit after closing its ports");
    cr_assert_eq(st, 0, "status %d %s", st, atoll_error_name(st));
    sup_assert_no_failures();
    cr_assert_eq(b->n[0], 0, "%d messages delivered to a closed port", b->n[0]);
    cr_assert_eq(atomic_load(&g_released), N, "released %ld of %d", atomic_load(&g_released), (int)N);
    atoll_isolate_stats stats;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, id, &stats), 0);
    cr_assert_eq(stats.messages_dropped, N, "messages_dropped %llu", (unsigned long long)stats.messages_dropped);
    cr_assert_eq(stats.messages_delivered, 1, "only the ctl message was delivered");
    sup_shutdown(rt);
}

static void record_seen_release(void *data, size_t size)
{
    int v = *(int *)data;
    if (v >= 0 && v < 64 && g_blk)
        __atomic_fetch_add(&g_blk->seen[v], 1, __ATOMIC_RELAXED);
    release_payload(data, size);
}

/* The messages wait on a port that the loop already passed in this turn
 * (opened before the ctl port, empty when visited); stop is requested
 * before the ctl callback returns, so the isolate exits without another
 * turn and must release all of them. */
Test(ports, queued_messages_released_at_stop, .timeout = 60)
{
    enum { N = 30 };
    atomic_store(&g_released, 0);
    atoll_runtime *rt = sup_start_n(2);
    uint32_t id;
    const uint32_t caps[1] = {64};
    struct blk *b = blk_spawn_opt(rt, &id, caps, 1, true);
    blk_park(rt, b);
    for (int i = 0; i < N; i++) {
        atoll_message m = int_msg((uint64_t)i, i);
        m.release = record_seen_release;
        cr_assert_eq(atoll_port_send(rt, b->h[0], &m), 0, "send #%d", i);
    }
    cr_assert_eq(atoll_runtime_stop(rt), 0);
    sup_latch_signal(&b->go);
    cr_assert_eq(atoll_runtime_join(rt), 0);
    sup_assert_no_failures();
    long released = atomic_load(&g_released);
    cr_assert_eq(released + b->n[0], N, "released %ld + delivered %d != %d", released, b->n[0], (int)N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(b->seen[i], 1, "message %d delivered/released %d times", i, b->seen[i]);
    cr_assert_eq(released, N, "stop: %ld of %d queued messages released, %d delivered after stop", released, (int)N,
                 b->n[0]);
    atoll_isolate_stats stats;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, id, &stats), 0);
    cr_assert_eq(stats.messages_dropped, (uint64_t)released);
    cr_log_info("at stop: %ld released, %d delivered", released, b->n[0]);
    /* After stop, sends are refused and the sender keeps the payload. */
    atoll_message m = int_msg(0, 0);
    int rc = atoll_port_send(rt, b->h[0], &m);
    cr_assert(rc == ATOLL_E_STOPPED || rc == ATOLL_E_PORT_CLOSED, "send after stop: %d %s", rc, atoll_error_name(rc));
    free(m.data);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

/* ---- closed ports and bad arguments -------------------------------------- */

struct closed_ctx {
    atoll_send_port closed_h, live_h;
    int rc_fn_null, rc_out_null, rc_close_null;
    sup_latch ready, got;
};

static void closed_live_msg(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct closed_ctx *c = user;
    free(m->data);
    sup_latch_signal(&c->got);
}

static int closed_entry(atoll_isolate *self, void *arg)
{
    struct closed_ctx *c = arg;
    atoll_receive_port *a = NULL, *live = NULL;
    int rc = atoll_port_open(self, NULL, closed_live_msg, c, &a);
    SUP_CHECK(rc == 0, "open: %d", rc);
    c->closed_h = atoll_port_send_handle(a);
    rc = atoll_port_close(a);
    SUP_CHECK(rc == 0, "close: %d %s", rc, atoll_error_name(rc));
    /* Likely reuses the slot: the old handle must stay dead. */
    rc = atoll_port_open(self, NULL, closed_live_msg, c, &live);
    SUP_CHECK(rc == 0, "open: %d", rc);
    c->live_h = atoll_port_send_handle(live);
    atoll_receive_port *tmp = NULL;
    c->rc_fn_null = atoll_port_open(self, NULL, NULL, NULL, &tmp);
    c->rc_out_null = atoll_port_open(self, NULL, closed_live_msg, c, NULL);
    c->rc_close_null = atoll_port_close(NULL);
    atomic_store(&g_release_iso, self);
    sup_latch_signal(&c->ready);
    return 0;
}

Test(ports, closed_and_zero_handles_are_port_closed, .timeout = 30)
{
    atomic_store(&g_released, 0);
    atoll_runtime *rt = sup_start_n(2);
    struct closed_ctx c = {0};
    sup_latch_init(&c.ready);
    sup_latch_init(&c.got);
    sup_spawn(rt, closed_entry, &c);
    cr_assert(sup_latch_wait(&c.ready, 1, SUP_WAIT_MS));
    sup_assert_no_failures();
    cr_assert_eq(c.rc_fn_null, -EINVAL, "port_open(fn NULL): %d", c.rc_fn_null);
    cr_assert_eq(c.rc_out_null, -EINVAL, "port_open(out NULL): %d", c.rc_out_null);
    cr_assert_eq(c.rc_close_null, -EINVAL, "port_close(NULL): %d", c.rc_close_null);
    cr_assert_neq(c.closed_h.id_private, c.live_h.id_private, "a new port reused a closed port's handle");

    atoll_message m = int_msg(1, 1);
    int rc = atoll_port_send(rt, c.closed_h, &m);
    cr_assert_eq(rc, ATOLL_E_PORT_CLOSED, "send to closed port: %d %s", rc, atoll_error_name(rc));
    atoll_send_port zero = {0};
    rc = atoll_port_send(rt, zero, &m);
    cr_assert_eq(rc, ATOLL_E_PORT_CLOSED, "send to zero handle: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(atoll_port_send(NULL, c.live_h, &m), -EINVAL, "rt NULL");
    cr_assert_eq(atoll_port_send(rt, c.live_h, NULL), -EINVAL, "msg NULL");
    cr_assert_eq(atomic_load(&g_released), 0, "a refused payload was released");
    /* The payload is still ours: it can be sent elsewhere. */
    cr_assert_eq(atoll_port_send(rt, c.live_h, &m), 0);
    cr_assert(sup_latch_wait(&c.got, 1, SUP_WAIT_MS));
    sup_shutdown(rt);
}

static void ignore_cb_placeholder(atoll_receive_port *p, atoll_message *m, void *u)
{
}

struct limit_ctx {
    int opened, err, same_turn_rc, reopen_rc, tries;
    atoll_receive_port *ps[16];
    sup_latch ready;
};

/* Later turns: the closed port's slot is reclaimed at the end of a turn;
 * retry (bounded) from a periodic timer until it is. */
static void limit_reopen(atoll_timer *t, void *user)
{
    struct limit_ctx *c = user;
    atoll_receive_port *again = NULL;
    c->reopen_rc = atoll_port_open(atoll_isolate_current(), NULL, ignore_cb_placeholder, NULL, &again);
    if (c->reopen_rc != 0 && ++c->tries < 1000)
        return;
    atoll_timer_cancel(t);
    if (c->reopen_rc == 0)
        atoll_port_close(again);
    for (int i = 0; i < c->opened - 1; i++)
        atoll_port_close(c->ps[i]);
    sup_latch_signal(&c->ready);
}

static int limit_entry(atoll_isolate *self, void *arg)
{
    struct limit_ctx *c = arg;
    c->err = 0;
    for (c->opened = 0; c->opened < 16; c->opened++) {
        int rc = atoll_port_open(self, NULL, ignore_cb_placeholder, NULL, &c->ps[c->opened]);
        if (rc != 0) {
            c->err = rc;
            break;
        }
    }
    c->reopen_rc = 1;
    if (c->opened > 0) {
        atoll_port_close(c->ps[c->opened - 1]);
        atoll_receive_port *again = NULL;
        c->same_turn_rc = atoll_port_open(self, NULL, ignore_cb_placeholder, NULL, &again);
        if (c->same_turn_rc == 0)
            atoll_port_close(again);
        atoll_timer *t;
        int rc = atoll_timer_start(self, 1, 1, limit_reopen, c, &t);
        SUP_CHECK(rc == 0, "timer: %d", rc);
        if (rc == 0)
            return 0;
    }
    sup_latch_signal(&c->ready);
    return 0;
}

Test(ports, max_ports_is_limit, .timeout = 30)
{
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.max_ports = 8;
    atoll_runtime *rt = sup_start(&o);
    struct limit_ctx c = {0};
    sup_latch_init(&c.ready);
    sup_spawn(rt, limit_entry, &c);
    cr_assert(sup_latch_wait(&c.ready, 1, SUP_WAIT_MS));
    cr_assert_eq(c.err, ATOLL_E_LIMIT, "open #%d: %d %s", c.opened + 1, c.err, atoll_error_name(c.err));
    cr_assert(c.opened >= 1 && c.opened <= 8, "opened %d ports with max_ports 8", c.opened);
    cr_assert_eq(c.reopen_rc, 0, "open a turn after a close: %d %s", c.reopen_rc, atoll_error_name(c.reopen_rc));
    cr_log_info("max_ports 8: %d user ports opened; reopen in the closing turn: %d %s; later: after %d retries",
                c.opened, c.same_turn_rc, atoll_error_name(c.same_turn_rc), c.tries);
    sup_shutdown(rt);
}

/* ---- ping-pong ------------------------------------------------------------- */

#define ROUNDS 10000
#define BYE    UINT64_MAX

struct pp {
    atoll_runtime *rt;
    atoll_isolate *a_iso, *b_iso;
    atoll_send_port a_h, b_h;
    uint64_t a_got, b_got;
    sup_latch b_ready;
};

static void pp_b_msg(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct pp *p = user;
    SUP_CHECK(atoll_isolate_current() == p->b_iso, "B callback off B");
    if (m->tag == BYE) {
        atoll_port_close(port);
        return;
    }
    SUP_CHECK(m->tag == p->b_got, "B got %llu, want %llu", (unsigned long long)m->tag, (unsigned long long)p->b_got);
    p->b_got++;
    atoll_message r = {.tag = m->tag};
    int rc = atoll_port_send(p->rt, p->a_h, &r);
    SUP_CHECK(rc == 0, "B reply: %d %s", rc, atoll_error_name(rc));
}

static void pp_a_msg(atoll_receive_port *port, atoll_message *m, void *user)
{
    struct pp *p = user;
    SUP_CHECK(atoll_isolate_current() == p->a_iso, "A callback off A");
    SUP_CHECK(m->tag == p->a_got, "A got %llu, want %llu", (unsigned long long)m->tag, (unsigned long long)p->a_got);
    p->a_got++;
    atoll_message next = {.tag = p->a_got < ROUNDS ? p->a_got : BYE};
    int rc = atoll_port_send(p->rt, p->b_h, &next);
    SUP_CHECK(rc == 0, "A send: %d %s", rc, atoll_error_name(rc));
    if (next.tag == BYE)
        atoll_port_close(port);
}

static int pp_b_entry(atoll_isolate *self, void *arg)
{
    struct pp *p = arg;
    p->b_iso = self;
    atoll_receive_port *port;
    int rc = atoll_port_open(self, NULL, pp_b_msg, p, &port);
    SUP_CHECK(rc == 0, "B open: %d", rc);
    p->b_h = atoll_port_send_handle(port);
    sup_latch_signal(&p->b_ready);
    return 0;
}

static int pp_a_entry(atoll_isolate *self, void *arg)
{
    struct pp *p = arg;
    p->a_iso = self;
    atoll_receive_port *port;
    int rc = atoll_port_open(self, NULL, pp_a_msg, p, &port);
    SUP_CHECK(rc == 0, "A open: %d", rc);
    p->a_h = atoll_port_send_handle(port); /* written before the first send */
    atoll_message first = {.tag = 0};
    rc = atoll_port_send(p->rt, p->b_h, &first);
    SUP_CHECK(rc == 0, "A first send: %d %s", rc, atoll_error_name(rc));
    return 0;
}

Test(ports, ping_pong_10000_round_trips, .timeout = 60)
{
    sup_exits ex;
    sup_exits_init(&ex);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.on_exit = sup_exits_cb;
    o.on_exit_user = &ex;
    atoll_runtime *rt = sup_start(&o);
    static struct pp p;
    memset(&p, 0, sizeof p);
    p.rt = rt;
    sup_latch_init(&p.b_ready);
    uint32_t b = sup_spawn(rt, pp_b_entry, &p);
    cr_assert(sup_latch_wait(&p.b_ready, 1, SUP_WAIT_MS));
    uint32_t a = sup_spawn(rt, pp_a_entry, &p);
    int st_a = 1, st_b = 1;
    cr_assert(sup_exits_wait(&ex, a, 30000, &st_a), "A did not finish: %llu round trips", (unsigned long long)p.a_got);
    cr_assert(sup_exits_wait(&ex, b, 30000, &st_b), "B did not finish");
    sup_assert_no_failures();
    cr_assert_eq(st_a, 0);
    cr_assert_eq(st_b, 0);
    cr_assert_eq(p.a_got, ROUNDS);
    cr_assert_eq(p.b_got, ROUNDS);
    atoll_isolate_stats sa, sb;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, a, &sa), 0);
    cr_assert_eq(atoll_runtime_isolate_stats(rt, b, &sb), 0);
    cr_assert_eq(sa.messages_delivered, ROUNDS);
    cr_assert_eq(sb.messages_delivered, ROUNDS + 1, "B delivered %llu", (unsigned long long)sb.messages_delivered);
    sup_shutdown(rt);
}
