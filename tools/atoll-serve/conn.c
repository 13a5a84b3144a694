/*
 * tools/atoll-serve/conn.c: atoll-serve's connections, on their isolate:
 * the per-isolate cache of 16 KiB blocks (held only while a request is read
 * or a response written), accepting a connection into the isolate's list,
 * closing and freeing it, input backpressure, and the connection callbacks
 * that hand reads and writes to the HTTP or the echo driver.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "serve.h"

static void *block_get(iso_state *is)
{
    if (is->ncache > 0)
        return is->cache[--is->ncache];
    return malloc(BLOCK_SIZE);
}

static void block_put(iso_state *is, void *b)
{
    if (!b)
        return;
    if (is->ncache < BLOCK_CACHE)
        is->cache[is->ncache++] = b;
    else
        free(b);
}

static void sc_unlink(sconn *s)
{
    iso_state *is = s->is;
    if (s->prev)
        s->prev->next = s->next;
    else
        is->conns = s->next;
    if (s->next)
        s->next->prev = s->prev;
    atomic_fetch_sub(&is->open_conns, 1);
}

void sc_close(sconn *s)
{
    if (s->closing)
        return;
    s->closing = true;
    atoll_conn_close(s->c);
}

static void sc_on_closed(atoll_conn *c, int status, void *user)
{
    sconn *s = user;
    if (debug_log && status != 0) {
        uint16_t port = 0;
        const atoll_address *peer = atoll_conn_remote_address(c, &port);
        fprintf(stderr, PROG ": isolate %" PRIu32 ": connection with %s port %u ended: %s: %s\n", s->is->id,
                peer ? peer->text : "?", (unsigned)port, atoll_error_name(status), atoll_strerror(status));
    }
    sc_unlink(s);
    block_put(s->is, s->buf);
    free(s);
}

bool sc_ensure_block(sconn *s)
{
    if (!s->buf)
        s->buf = block_get(s->is);
    return s->buf != NULL;
}

void sc_release_block_if_idle(sconn *s)
{
    if (s->buf && s->len == 0 && !s->responding) {
        block_put(s->is, s->buf);
        s->buf = NULL;
    }
}

/* Backpressure on the input side: stop the socket reads while output is
 * blocked and the peer keeps sending (lazily, when a read event shows it). */
void sc_pause(sconn *s)
{
    if (!s->paused) {
        s->paused = true;
        atoll_conn_pause(s->c);
    }
}

void sc_resume(sconn *s)
{
    if (s->paused) {
        s->paused = false;
        atoll_conn_resume(s->c);
    }
}

static void sc_on_read(atoll_conn *c, void *user)
{
    sconn *s = user;
    (void)c;
    if (g.cfg.mode == MODE_HTTP)
        http_drive(s);
    else
        echo_drive(s);
}

static void sc_on_read_closed(atoll_conn *c, void *user)
{
    sconn *s = user;
    s->peer_eof = true;
    sc_on_read(c, user);
}

/* A second into the drain, a connection still quiet between requests is
 * closed: closing it at once could lose a request a client that has just
 * had a response is sending. Every response of the drain says "Connection:
 * close", so no connection that sends again is ever idle here. */
#define DRAIN_IDLE_NS 1000000000ull

bool sc_drain_idle(const sconn *s)
{
    return s->is->draining && !s->responding && s->len == 0 && s->skip == 0 && s->served > 0 &&
           mono_ns() - s->is->drain_ns >= DRAIN_IDLE_NS;
}

/* The runtime drains: responses say "Connection: close" from now on, so a
 * connection closes after its next response (http; echo after its next
 * echo); one quiet between requests closes a second into the drain (the
 * header sweep). The runtime closes what is left at --drain-timeout. */
static void sc_on_drain(atoll_conn *c, void *user)
{
    sconn *s = user;
    (void)c;
    if (!s->is->draining) {
        s->is->draining = true;
        s->is->drain_ns = mono_ns();
    }
    if (g.cfg.mode != MODE_HTTP)
        s->close_after = true;
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = sc_on_read,
    .on_write = sc_on_read, /* the same driver: flush, then read on */
    .on_read_closed = sc_on_read_closed,
    .on_closed = sc_on_closed,
    .on_drain = sc_on_drain,
};

void srv_on_connection(atoll_server *server, atoll_conn *c, void *user)
{
    (void)user;
    iso_state *is = &g.iso[atoll_isolate_id(atoll_server_isolate(server))];
    sconn *s = calloc(1, sizeof(*s));
    if (!s) {
        atoll_conn_close(c);
        return;
    }
    s->c = c;
    s->is = is;
    s->close_after = is->draining;
    s->next = is->conns;
    if (is->conns)
        is->conns->prev = s;
    is->conns = s;
    atomic_fetch_add(&is->open_conns, 1);
    if (atoll_conn_resumed(c))
        atomic_fetch_add(&is->resumed, 1);
    atoll_conn_set_nodelay(c, true);
    atoll_conn_set_callbacks(c, &conn_cb, s);
}

/* Every quarter of --header-timeout: a request head that has not completed
 * in time gets 408 and the connection closes (slowloris over HTTP: the
 * idle timeout alone never fires while a byte trickles in now and then);
 * while draining, a connection quiet between requests closes. */
static void sweep_heads(atoll_timer *t, void *user)
{
    iso_state *is = user;
    (void)t;
    uint64_t now = mono_ns(), limit = (uint64_t)g.cfg.header_timeout_ms * 1000000u;
    for (sconn *s = is->conns, *next; s; s = next) {
        next = s->next; /* the 408 may close it */
        if (s->closing)
            continue;
        if (s->head_start_ns && !s->responding && now - s->head_start_ns >= limit) {
            atomic_fetch_add(&is->header_timeouts, 1);
            http_request_timeout(s);
        } else if (sc_drain_idle(s)) {
            sc_close(s);
        }
    }
}

/* The sweep's periodic timer would keep a draining isolate alive. */
static void stop_sweep(atoll_isolate *self, void *user)
{
    iso_state *is = user;
    (void)self;
    if (is->sweep) {
        atoll_timer_cancel(is->sweep);
        is->sweep = NULL;
    }
}

void srv_on_bound(atoll_server *server, int status, void *user)
{
    (void)user;
    if (status < 0 || g.cfg.mode != MODE_HTTP || g.cfg.header_timeout_ms == 0)
        return;
    atoll_isolate *self = atoll_server_isolate(server);
    iso_state *is = &g.iso[atoll_isolate_id(self)];
    uint32_t period = g.cfg.header_timeout_ms / 4;
    period = period < 10 ? 10 : period > 1000 ? 1000 : period;
    if (atoll_timer_start(self, period, period, sweep_heads, is, &is->sweep) < 0 ||
        atoll_isolate_on_drain(self, stop_sweep, is) < 0) {
        /* Without it a slow head is only bounded by the idle timeout. */
        fprintf(stderr, PROG ": isolate %" PRIu32 ": no header-timeout sweep\n", atoll_isolate_id(self));
        stop_sweep(self, is);
    }
}

/* Failed handshakes are counted by the server (handshake_errors); with
 * ATOLL_SERVE_DEBUG set in the environment each one is also logged. */
bool debug_log;

void srv_on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    (void)user;
    uint32_t id = atoll_isolate_id(atoll_server_isolate(server));
    int kind = e->code == ATOLL_E_HANDSHAKE           ? ERR_HANDSHAKE
               : e->code == ATOLL_E_HANDSHAKE_TIMEOUT ? ERR_TIMEOUT
               : e->code == ATOLL_E_PEER_CLOSED       ? ERR_PEER_CLOSED
               : e->code == ATOLL_E_CERTIFICATE       ? ERR_CERTIFICATE
               : e->code == ATOLL_E_ALPN              ? ERR_ALPN
               : e->code == ATOLL_E_PROXY_HEADER      ? ERR_PROXY
               : e->code == ATOLL_E_PROXY_DENIED      ? ERR_PROXY_DENIED
                                                      : ERR_OTHER;
    if (id < g.cap)
        atomic_fetch_add(&g.iso[id].errors[kind], 1);
    if (debug_log)
        fprintf(stderr, PROG ": isolate %" PRIu32 ": handshake with %s port %u failed: %s: %s\n",
                atoll_isolate_id(atoll_server_isolate(server)), e->peer.text, (unsigned)e->peer_port,
                atoll_error_name(e->code), e->reason ? e->reason : "");
}
