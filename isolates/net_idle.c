/*
 * isolates/net_idle.c: the idle timeout of established connections
 * (atoll_server_options.idle_timeout_ms): one sweep timer per isolate,
 * running while some connection has a timeout, closes those with nothing
 * received or sent for that long. Activity is a timestamp written on every
 * receive and send completion, so a busy connection costs no timer work.
 */
#include <stdint.h>

#include "isolates/net_private.h"

/* The sweep runs at a quarter of the shortest timeout, within these bounds:
 * a connection is closed between its timeout and 1.25 times it. */
#define ATOLL_IDLE_SWEEP_MIN_MS 10u
#define ATOLL_IDLE_SWEEP_MAX_MS 1000u

static void atoll_idle_sweep(atoll_timer *t, void *user);

static void atoll_idle_arm(struct atoll_isolate *iso)
{
    atoll_net *net = iso->net;
    if (net->idle_timer || net->nidle == 0)
        return;
    /* Without a timer (out of memory) nothing is closed for idleness until
     * the next connection with a timeout arms it again; counted. */
    if (atoll_timer_start(iso, net->idle_period_ms, 0, atoll_idle_sweep, iso, &net->idle_timer) < 0)
        atoll_stat_add(&iso->stats.cqe_errors, 1);
}

static void atoll_idle_sweep(atoll_timer *t, void *user)
{
    struct atoll_isolate *iso = user;
    atoll_net *net = iso->net;
    (void)t;
    net->idle_timer = NULL;
    for (struct atoll_conn *c = net->conns; c; c = c->next) {
        if (!c->idle_timeout_ms || c->state != ATOLL_CONN_OPEN)
            continue;
        if (iso->now_ns - c->last_active_ns < (uint64_t)c->idle_timeout_ms * 1000000u)
            continue;
        c->stats->idle_closed++;
        atoll_stat_add(&iso->stats.net_idle_closed, 1);
        if (c->send_inflight || atoll__conn_out_pending(c)) {
            atoll__conn_abort(c, ATOLL_E_TIMEDOUT); /* a send stalled that long: the peer does not read */
        } else {
            if (!c->close_status)
                c->close_status = ATOLL_E_TIMEDOUT;
            atoll__conn_close_start(c); /* nothing pending: close_notify and FIN */
        }
    }
    atoll_idle_arm(iso);
}

void atoll__conn_idle_start(struct atoll_conn *c, uint32_t timeout_ms)
{
    if (!timeout_ms || c->idle_timeout_ms)
        return;
    atoll_net *net = c->iso->net;
    c->idle_timeout_ms = timeout_ms;
    c->last_active_ns = c->iso->now_ns;
    uint32_t period = timeout_ms / 4;
    if (period < ATOLL_IDLE_SWEEP_MIN_MS)
        period = ATOLL_IDLE_SWEEP_MIN_MS;
    if (period > ATOLL_IDLE_SWEEP_MAX_MS)
        period = ATOLL_IDLE_SWEEP_MAX_MS;
    if (net->nidle++ == 0 || period < net->idle_period_ms)
        net->idle_period_ms = period;
    atoll_idle_arm(c->iso);
}

void atoll__conn_idle_forget(struct atoll_conn *c)
{
    if (!c->idle_timeout_ms)
        return;
    c->idle_timeout_ms = 0;
    atoll_net *net = c->iso->net;
    /* The last one gone: the sweep must not keep the isolate alive. */
    if (--net->nidle == 0 && net->idle_timer) {
        atoll_timer_cancel(net->idle_timer);
        net->idle_timer = NULL;
    }
}
