/*
 * isolates/net_drain.c: draining an isolate's connections: on_drain once per
 * connection, and the deadline after which those still open are closed and
 * counted. One timer per isolate serves every deadline (the earliest).
 */
#include <stdint.h>

#include "isolates/net_private.h"

static void atoll_drain_timer_fire(atoll_timer *t, void *user);

/* (Re)arms the isolate's drain timer for `deadline_ns` unless it is armed
 * for an earlier one. */
static void atoll_drain_arm(struct atoll_isolate *iso, uint64_t deadline_ns)
{
    atoll_net *net = iso->net;
    if (net->drain_timer && net->drain_timer_due <= deadline_ns)
        return;
    if (net->drain_timer) {
        atoll_timer_cancel(net->drain_timer);
        net->drain_timer = NULL;
    }
    uint64_t ms = deadline_ns > iso->now_ns ? (deadline_ns - iso->now_ns + 999999u) / 1000000u : 0;
    if (atoll_timer_start(iso, ms, 0, atoll_drain_timer_fire, iso, &net->drain_timer) == 0) {
        net->drain_timer_due = deadline_ns;
        return;
    }
    /* No timer (out of memory): the deadline cannot be kept later, so it is
     * kept now; the connections are closed and counted as at the deadline. */
    for (struct atoll_conn *c = net->conns; c; c = c->next)
        if (c->drain_deadline_ns && c->state != ATOLL_CONN_DEAD)
            c->drain_deadline_ns = iso->now_ns;
    atoll_drain_timer_fire(NULL, iso);
}

/* The deadline: every draining connection whose time is up is closed now,
 * whatever it still had to send; the timer moves to the next deadline. */
static void atoll_drain_timer_fire(atoll_timer *t, void *user)
{
    struct atoll_isolate *iso = user;
    atoll_net *net = iso->net;
    if (t)
        net->drain_timer = NULL;
    uint64_t next = UINT64_MAX;
    for (struct atoll_conn *c = net->conns; c; c = c->next) {
        if (!c->drain_deadline_ns || c->state == ATOLL_CONN_DEAD || c->drain_closed)
            continue;
        if (c->drain_deadline_ns <= iso->now_ns) {
            c->drain_closed = true;
            c->stats->drain_closed++;
            atoll_stat_add(&iso->stats.net_drain_closed, 1);
            atoll__conn_abort(c, ATOLL_E_TIMEDOUT);
        } else if (c->drain_deadline_ns < next) {
            next = c->drain_deadline_ns;
        }
    }
    if (next != UINT64_MAX)
        atoll_drain_arm(iso, next);
}

void atoll__conn_drain(struct atoll_conn *c, uint64_t deadline_ns)
{
    if (c->state == ATOLL_CONN_DEAD)
        return;
    if (!c->drain_deadline_ns) {
        c->drain_deadline_ns = deadline_ns;
        c->iso->net->ndraining++;
    } else if (deadline_ns < c->drain_deadline_ns) {
        c->drain_deadline_ns = deadline_ns;
    }
    atoll_drain_arm(c->iso, c->drain_deadline_ns);
    atoll__conn_drain_notify(c);
}

void atoll__conn_drain_notify(struct atoll_conn *c)
{
    /* Only a delivered, open connection has an application to tell; one
     * still handshaking hears it once delivered (the delivery calls this
     * again). */
    if (!c->drain_deadline_ns || c->drain_reported || !c->delivered || c->state != ATOLL_CONN_OPEN)
        return;
    c->drain_due = true;
    atoll__conn_schedule(c);
}

void atoll__conn_drain_forget(struct atoll_conn *c)
{
    if (!c->drain_deadline_ns)
        return;
    c->drain_deadline_ns = 0;
    atoll_net *net = c->iso->net;
    /* The last draining connection is gone before the deadline: the timer
     * must not keep the isolate alive until then. */
    if (--net->ndraining == 0 && net->drain_timer) {
        atoll_timer_cancel(net->drain_timer);
        net->drain_timer = NULL;
    }
}

uint64_t atoll__drain_deadline(const struct atoll_isolate *iso, uint64_t timeout_ms)
{
    /* Saturates below UINT64_MAX, far beyond any real deadline. */
    if (timeout_ms > (UINT64_MAX - 1 - iso->now_ns) / 1000000u)
        return UINT64_MAX - 1;
    return iso->now_ns + timeout_ms * 1000000u;
}

void atoll__net_drain(struct atoll_isolate *iso, uint64_t timeout_ms)
{
    atoll_net *net = iso->net;
    if (!net)
        return;
    uint64_t deadline = atoll__drain_deadline(iso, timeout_ms);
    net->drain_deadline_ns = deadline;
    for (struct atoll_server *s = net->servers, *next; s; s = next) {
        next = s->next;
        if (s->state != ATOLL_SRV_CLOSING && s->state != ATOLL_SRV_FAILED)
            atoll__server_drain(s, deadline);
    }
    for (struct atoll_conn *c = net->conns; c; c = c->next)
        atoll__conn_drain(c, deadline);
}
