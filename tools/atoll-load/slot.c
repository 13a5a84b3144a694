/*
 * tools/atoll-load/slot.c: a connection slot's life, on its isolate: taking
 * op tickets, connecting (with a session to resume), starting an exchange
 * (at once, or with --rate when pace.c's schedule says), what the scenario
 * does next once one ends, failures, and the in-flight count. Reading the
 * response is response.c's.
 */
#include <stdatomic.h>

#include "load.h"

static void slot_start_exchange(slot *s);

bool stopping(const iso_state *is)
{
    return is->closing || atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_RUN;
}

/* Takes one op ticket (with --requests); false when the run is over. */
static bool take_ticket(iso_state *is)
{
    if (stopping(is))
        return false;
    if (!cfg.requests)
        return true;
    return atomic_fetch_sub_explicit(&g_tickets, 1, memory_order_relaxed) > 0;
}

static bool reuses_connection(void)
{
    return cfg.scenario == SC_RR || cfg.scenario == SC_BULK;
}

static void set_inflight(slot *s, bool busy)
{
    bool was = s->state == SL_CONNECTING || s->state == SL_BUSY;
    if (busy && !was)
        bump(&s->is->c.inflight, 1);
    else if (!busy && was)
        drop(&s->is->c.inflight);
}

void set_state(slot *s, enum slot_state st)
{
    set_inflight(s, st == SL_CONNECTING || st == SL_BUSY);
    s->state = st;
}

static void detached_closed(atoll_conn *c, int status, void *user)
{
    iso_state *is = user;
    (void)c;
    (void)status;
    drop(&is->c.open);
}

static const atoll_conn_callbacks detached_cb = {.on_closed = detached_closed};

/* Closes the slot's connection; its on_closed only updates the open count. */
void slot_drop_conn(slot *s)
{
    if (!s->conn)
        return;
    atoll_conn *c = s->conn;
    s->conn = NULL;
    atoll_conn_set_callbacks(c, &detached_cb, s->is);
    atoll_conn_close(c);
}

/* What a slot does next, once it has no exchange in flight. */
void slot_next(slot *s)
{
    s->in_op = false;
    s->rs = RS_NONE;
    switch (cfg.scenario) {
    case SC_HANDSHAKE:
    case SC_CHURN:
        slot_drop_conn(s);
        slot_connect(s);
        return;
    case SC_RR:
    case SC_BULK:
        if (!s->conn) {
            slot_connect(s);
            return;
        }
        slot_start_exchange(s);
        return;
    case SC_IDLE:
        if (s->conn) {
            set_state(s, SL_HELD);
            return;
        }
        slot_connect(s);
        return;
    }
}

/* An operation (or the connection under it) failed. */
void slot_fail(slot *s, enum err_kind k, int code)
{
    count_error(s->is, k, code);
    slot_drop_conn(s);
    slot_next(s);
}

void slot_op_done(slot *s)
{
    iso_state *is = s->is;
    uint64_t us = (now_ns() - s->op_start) / 1000;
    hist_record(&is->lat, us);
    bump(&is->c.ops, 1);
    if (cfg.resume && s->conn) {
        atoll_session *sess = atoll_conn_session(s->conn);
        if (sess) {
            atoll_session_free(s->session);
            s->session = sess;
        }
    }
    if (s->rs == RS_BODY_EOF || (!s->keepalive && cfg.http))
        slot_drop_conn(s); /* the server ends the connection: open another */
    slot_next(s);
}

void slot_flush(slot *s)
{
    while (s->woff < s->wlen) {
        ssize_t n = atoll_conn_write(s->conn, s->wbuf + s->woff, s->wlen - s->woff);
        if (n < 0) {
            slot_fail(s, classify((int)n), (int)n);
            return;
        }
        if (n == 0) {
            atoll_conn_set_write_events(s->conn, true);
            return;
        }
        s->woff += (size_t)n;
    }
}

/* Writes the request on the slot's connection and reads the response. */
static void slot_begin_exchange(slot *s)
{
    set_state(s, SL_BUSY);
    s->in_op = true;
    s->got = 0;
    if (cfg.http) {
        s->wbuf = (const uint8_t *)cfg.http_req;
        s->wlen = cfg.http_req_len;
        s->rs = RS_HDR;
        s->hlen = 0;
        s->expect = 0;
        s->keepalive = true;
    } else {
        s->wbuf = cfg.payload;
        s->wlen = cfg.payload_len;
        s->rs = RS_ECHO;
        s->expect = cfg.payload_len;
    }
    s->woff = 0;
    slot_flush(s);
}

static void slot_start_exchange(slot *s)
{
    if (cfg.scenario == SC_RR || cfg.scenario == SC_BULK) {
        if (stopping(s->is) || (!cfg.rate && !take_ticket(s->is))) {
            /* The run is over: close now rather than hold it (a server that
             * serves one connection at a time would wait on it). */
            slot_drop_conn(s);
            set_state(s, SL_IDLE);
            return;
        }
        if (cfg.rate) {
            /* Open loop: the pacer starts the next due request on it. */
            pace_slot_free(s);
            return;
        }
        s->op_start = now_ns();
        s->op_sent = s->op_start;
    }
    slot_begin_exchange(s);
}

void slot_issue(slot *s, uint64_t intended_ns)
{
    s->op_start = intended_ns;
    s->op_sent = now_ns();
    slot_begin_exchange(s);
}

static void on_connect(atoll_conn *c, int status, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    if (c)
        bump(&is->c.open, 1);
    if (is->closing || status == ATOLL_E_STOPPED) {
        if (c) {
            atoll_conn_set_callbacks(c, &detached_cb, is);
            atoll_conn_close(c);
        }
        set_state(s, SL_IDLE);
        return;
    }
    if (!c) {
        /* A failed connect waits for the next tick (100 ms): a dead or
         * refusing server must not turn the generator into a busy loop. */
        count_error(is, classify(status), status);
        s->in_op = false;
        set_state(s, SL_RETRY);
        return;
    }
    bump(&is->c.connects, 1);
    if (atoll_conn_resumed(c))
        bump(&is->c.resumed, 1);
    s->conn = c;
    atoll_conn_set_callbacks(c, &slot_cb, s);
    atoll_conn_set_nodelay(c, true);
    if (reuses_connection()) {
        set_state(s, SL_HELD);
        slot_start_exchange(s);
    } else {
        slot_start_exchange(s); /* the op began at connect */
    }
}

void slot_connect(slot *s)
{
    iso_state *is = s->is;
    if (reuses_connection() ? stopping(is) : !take_ticket(is)) {
        set_state(s, SL_IDLE);
        return;
    }
    s->op_start = now_ns();
    s->op_sent = s->op_start;
    s->in_op = false;
    set_state(s, SL_CONNECTING);
    atoll_connect_options o = g_copts;
    if (cfg.resume && s->session)
        o.resume = s->session;
    int rc = atoll_connect(is->self, cfg.addr_text, cfg.port, &o, on_connect, s);
    if (rc < 0) {
        count_error(is, classify(rc), rc);
        set_state(s, SL_RETRY); /* the tick tries again: never loop synchronously */
    }
}
