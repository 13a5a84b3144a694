/*
 * isolates/conn.c: a connection's life on its isolate: creation, the
 * dispatch and handshake queues, event dispatch (the one place connection
 * callbacks run from), teardown and destruction. The receive side is in
 * conn_recv.c, the send side in conn_send.c, the close sequence in
 * conn_close.c, the public calls in conn_api.c and TLS in conn_tls.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolates/net_private.h"

static void atoll_conn_issue(atoll_obj *o);
static void atoll_conn_destroy(atoll_obj *o);

static const atoll_obj_type atoll_conn_type = {
    .name = "connection", .issue = atoll_conn_issue, .destroy = atoll_conn_destroy};

void atoll__sockaddr_to_address(const struct sockaddr_storage *ss, atoll_address *a, uint16_t *port)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
        a->family = AF_INET;
        memcpy(a->bytes, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
        a->family = AF_INET6;
        memcpy(a->bytes, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
    }
    inet_ntop(a->family, a->bytes, a->text, sizeof(a->text));
    memcpy(a->host, a->text, sizeof(a->text));
}

bool atoll__connq_queued(const struct atoll_conn *c, atoll_connq_kind kind)
{
    return c->links[kind].queued;
}

bool atoll__connq_push(atoll_conn_queue *q, struct atoll_conn *c)
{
    atoll_connq_link *l = &c->links[q->kind];
    if (l->queued)
        return false;
    l->queued = true;
    l->next = NULL;
    atoll__obj_ref(&c->obj);
    if (q->tail)
        q->tail->links[q->kind].next = c;
    else
        q->head = c;
    q->tail = c;
    return true;
}

struct atoll_conn *atoll__connq_pop(atoll_conn_queue *q)
{
    struct atoll_conn *c = q->head;
    if (!c)
        return NULL;
    atoll_connq_link *l = &c->links[q->kind];
    q->head = l->next;
    if (!q->head)
        q->tail = NULL;
    l->next = NULL;
    l->queued = false;
    return c;
}

void atoll__connq_clear(atoll_conn_queue *q)
{
    struct atoll_conn *c;
    while ((c = atoll__connq_pop(q)))
        atoll__obj_unref(&c->obj);
}

void atoll__conn_schedule(struct atoll_conn *c)
{
    if (atoll__connq_push(&c->iso->net->ready, c))
        c->iso->more_work = true;
}

void atoll__conn_hs_queue(struct atoll_conn *c)
{
    if (atoll__connq_push(&c->iso->net->hs, c))
        c->iso->more_work = true;
}

/* Re-issues whatever the connection's state still wants from the ring:
 * after a deferral, and at every dispatch. Idempotent. */
static void atoll_conn_sync(struct atoll_conn *c)
{
    if (c->state == ATOLL_CONN_DEAD)
        return;
    if (c->state == ATOLL_CONN_CLOSING) {
        atoll__conn_cancel_recv(c);
        atoll__conn_kick_send(c);
        atoll__conn_progress_close(c);
        return;
    }
    atoll__conn_arm_recv(c);
    atoll__conn_kick_send(c);
    atoll__conn_progress_close(c);
    atoll__conn_issue_shut_rd(c);
    atoll__conn_issue_sockopt(c);
}

static void atoll_conn_issue(atoll_obj *o)
{
    atoll_conn_sync((struct atoll_conn *)o);
}

static void atoll_conn_destroy(atoll_obj *o)
{
    struct atoll_conn *c = (struct atoll_conn *)o;
    atoll_net *net = c->iso->net;
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->hs_timer)
        atoll_timer_cancel(c->hs_timer);
    atoll__conn_drain_forget(c);
    atoll__conn_idle_forget(c);
    atoll__conn_segs_release(c);
    free(c->segs);
    if (c->ssl)
        wolfSSL_free(c->ssl);
    atoll__certificate_free(c->peer_cert);
    free(c->alpn);
    free(c->wpend);
    atoll__conn_out_release(c);
    atoll__stats_unref(c->stats);
    /* Only teardown and never-started connections get here with the slot
     * in use: no op is live (the last reference is gone). */
    if (c->fd >= 0)
        atoll__files_remove(c->iso, &net->files, (uint32_t)c->fd);
    c->iso->refs--;
    free(c);
}

struct atoll_conn *atoll__conn_alloc(struct atoll_isolate *iso, int fd, atoll_server_stats *stats)
{
    struct atoll_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    atoll__obj_init(&c->obj, &atoll_conn_type, iso);
    c->iso = iso;
    c->stats = atoll__stats_ref(stats);
    atoll__stats_conn_enter(stats);
    c->fd = fd;
    c->read_events = c->write_events = true;
    c->write_event_due = true;
    atoll_net *net = iso->net;
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    iso->refs++;
    if (net->drain_deadline_ns)
        atoll__conn_drain(c, net->drain_deadline_ns); /* the runtime drains */
    return c;
}

int atoll__conn_new(struct atoll_server *s, int slot, const struct sockaddr_storage *peer, struct atoll_conn **out)
{
    struct atoll_conn *c = atoll__conn_alloc(s->iso, slot, s->stats);
    if (!c) {
        atoll__files_remove(s->iso, &s->iso->net->files, (uint32_t)slot);
        s->stats->accept_errors++;
        return -ENOMEM;
    }
    atoll__sockaddr_to_address(peer, &c->remote, &c->remote_port);
    c->server = s;
    atoll__obj_ref(&s->obj); /* until the handshake's outcome is reported */
    c->local = s->address;   /* Dart J1: the server's bind address and port */
    c->local_port = s->port;
    s->conns++;
    *out = c;
    if (s->drain_deadline_ns)
        atoll__conn_drain(c, s->drain_deadline_ns); /* accepted while its server drains */
    if (s->opts.proxy_protocol && !atoll__conn_proxy_admit(c, peer))
        return ATOLL_E_PROXY_DENIED;

    if (!s->wctx && c->proxy_wait) {
        /* Plain TCP: handshaking only until the header is read. */
        atoll__conn_start_hs_timer(c, s->opts.handshake_timeout_ms);
        atoll__conn_arm_recv(c);
        return 0;
    }
    if (!s->wctx) {
        c->state = ATOLL_CONN_OPEN;
        atoll__conn_arm_recv(c);
        c->server = NULL;
        atoll__server_conn_done(s, c, 0, NULL);
        return 0;
    }
    c->tls = true;
    c->state = ATOLL_CONN_HANDSHAKE;
    int ret = atoll__tls_conn_init(c, s->wctx);
    if (ret < 0) {
        atoll__conn_fail(c, ret);
        return ret;
    }
    atoll__conn_arm_recv(c);
    return 0;
}

static void atoll_conn_hs_timeout(atoll_timer *t, void *user)
{
    struct atoll_conn *c = user;
    (void)t;
    c->hs_timer = NULL;
    if (c->state == ATOLL_CONN_HANDSHAKE)
        atoll__conn_fail_reason(c, ATOLL_E_HANDSHAKE_TIMEOUT,
                                c->proxy_wait ? "PROXY protocol: no complete header within the handshake timeout"
                                              : NULL);
}

void atoll__conn_handshake_step(struct atoll_conn *c)
{
    if (c->proxy_wait && atoll__conn_proxy_read(c) <= 0)
        return;
    if (c->tls) {
        atoll__tls_handshake_step(c);
        return;
    }
    if (c->state != ATOLL_CONN_HANDSHAKE || !c->server)
        return;
    /* Plain TCP behind a PROXY header: delivered now, with what followed
     * the header (and a FIN) for its first read. */
    if (c->hs_timer) {
        atoll_timer_cancel(c->hs_timer);
        c->hs_timer = NULL;
    }
    c->state = ATOLL_CONN_OPEN;
    struct atoll_server *s = c->server;
    c->server = NULL;
    atoll__server_conn_done(s, c, 0, NULL);
    if (c->seg_count || c->recv_eof)
        atoll__conn_schedule(c);
}

/* Handshake timer, started by conn_tls.c once the SSL object exists. */
void atoll__conn_start_hs_timer(struct atoll_conn *c, uint32_t ms)
{
    if (ms)
        atoll_timer_start(c->iso, ms, 0, atoll_conn_hs_timeout, c, &c->hs_timer);
}

/* The connection is dead: the application hears once, then the owner's
 * reference goes (the object is freed in the turn's free phase). */
static void atoll_conn_finish(struct atoll_conn *c)
{
    if (c->delivered && c->cb.on_closed && !c->closed_reported) {
        c->closed_reported = true;
        c->cb.on_closed(c, c->close_status, c->user);
    }
    c->closed_reported = true;
    if (!c->released) {
        c->released = true;
        atoll__stats_conn_leave(c->stats);
        atoll__obj_unref(&c->obj);
    }
}

static bool atoll_conn_wants_read_event(const struct atoll_conn *c)
{
    return c->state == ATOLL_CONN_OPEN && c->read_events && !c->paused && c->cb.on_read && atoll_conn_available(c) > 0;
}

void atoll__conn_dispatch(struct atoll_conn *c)
{
    if (c->state == ATOLL_CONN_DEAD) {
        atoll_conn_finish(c);
        return;
    }
    atoll_conn_sync(c);
    if (c->state != ATOLL_CONN_OPEN || !c->delivered)
        return;
    if (c->drain_due) {
        c->drain_due = false;
        c->drain_reported = true;
        if (c->cb.on_drain) {
            c->cb.on_drain(c, c->user);
            if (c->state != ATOLL_CONN_OPEN)
                return;
        }
    }
    if (c->tls)
        atoll__tls_pump_input(c); /* room freed by reads since the last pass */
    /* on_read is level-style (Dart): it runs at every dispatch while bytes
     * are buffered, and the connection is dispatched again next turn for
     * as long as they are, whatever the callback read. */
    if (atoll_conn_wants_read_event(c)) {
        c->cb.on_read(c, c->user);
        if (c->state != ATOLL_CONN_OPEN)
            return;
        if (c->tls)
            atoll__tls_pump_input(c);
        if (atoll_conn_wants_read_event(c))
            atoll__conn_schedule(c);
    }
    if ((c->recv_eof || c->tls_eof) && atoll_conn_available(c) == 0 && !c->read_closed_reported) {
        c->read_closed_reported = true;
        if (c->cb.on_read_closed)
            c->cb.on_read_closed(c, c->user);
        if (c->state != ATOLL_CONN_OPEN)
            return;
        if (c->shut_wr && c->fin_sent)
            atoll__conn_close_start(c);
    }
    if (c->write_event_due && c->write_events && !c->shut_wr && atoll__conn_out_pending(c) < ATOLL_CONN_OUT_HIGH) {
        c->write_event_due = false;
        c->write_events = false; /* one-shot */
        if (c->cb.on_write)
            c->cb.on_write(c, c->user);
    }
}

void atoll__conn_teardown(struct atoll_conn *c)
{
    /* Isolate exit, after the op layer reaped every op: the application
     * hears on_closed(ATOLL_E_STOPPED) so it can release what it attached.
     * The descriptor is closed at destroy. */
    if (c->state == ATOLL_CONN_DEAD && c->closed_reported && c->released)
        return;
    c->state = ATOLL_CONN_DEAD;
    if (!c->close_status)
        c->close_status = ATOLL_E_STOPPED;
    if (c->server) { /* still handshaking: its outcome will never be reported */
        struct atoll_server *s = c->server;
        c->server = NULL;
        atoll__server_conn_abandon(s);
    }
    atoll_conn_finish(c);
}
