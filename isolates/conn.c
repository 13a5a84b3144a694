/*
 * isolates/conn.c: a connection's I/O on its isolate's ring: multishot recv
 * into the isolate's buffer ring, one send in flight, events, shutdown and
 * close (cancel, shut down, then close), and the public atoll_conn_* API.
 * The TLS layer (conn_tls.c) sits between the segments received here and
 * the plaintext the application reads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolates/net_private.h"
#include "isolates/user_data.h"

static void atoll_conn_close_start(struct atoll_conn *c);
static void atoll_conn_progress_close(struct atoll_conn *c);

static void atoll_sockaddr_to_address(const struct sockaddr_storage *ss, atoll_address *a, uint16_t *port)
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

size_t atoll__conn_seg_bytes(const struct atoll_conn *c)
{
    size_t n = 0;
    for (uint32_t i = 0; i < c->seg_count; i++)
        n += c->segs[(c->seg_head + i) % c->seg_cap].len;
    return n;
}

size_t atoll__conn_seg_take(struct atoll_conn *c, uint8_t *dst, size_t len)
{
    size_t done = 0;
    atoll_bufring *b = &c->iso->net->bufs;
    while (done < len && c->seg_count) {
        atoll_conn_seg *s = &c->segs[c->seg_head];
        size_t n = s->len < len - done ? s->len : len - done;
        memcpy(dst + done, atoll__bufring_addr(b, s->bid) + s->off, n);
        done += n;
        s->off += (uint32_t)n;
        s->len -= (uint32_t)n;
        if (s->len == 0) {
            uint16_t bid = s->bid;
            c->seg_head = (c->seg_head + 1) % c->seg_cap;
            c->seg_count--;
            atoll__bufring_recycle(c->iso, bid);
        }
    }
    if (c->seg_count < ATOLL_CONN_MAX_SEGS)
        atoll__conn_arm_recv(c); /* backpressure released */
    return done;
}

static int atoll_conn_seg_push(struct atoll_conn *c, uint16_t bid, uint32_t len)
{
    if (c->seg_count == c->seg_cap) {
        uint32_t ncap = c->seg_cap ? c->seg_cap * 2 : ATOLL_CONN_MAX_SEGS;
        atoll_conn_seg *n = malloc(ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (uint32_t i = 0; i < c->seg_count; i++)
            n[i] = c->segs[(c->seg_head + i) % c->seg_cap];
        free(c->segs);
        c->segs = n;
        c->seg_cap = ncap;
        c->seg_head = 0;
    }
    c->segs[(c->seg_head + c->seg_count) % c->seg_cap] = (atoll_conn_seg){.bid = bid, .off = 0, .len = len};
    c->seg_count++;
    return 0;
}

static void atoll_conn_segs_release(struct atoll_conn *c)
{
    while (c->seg_count) {
        uint16_t bid = c->segs[c->seg_head].bid;
        c->seg_head = (c->seg_head + 1) % c->seg_cap;
        c->seg_count--;
        atoll__bufring_recycle(c->iso, bid);
    }
}

void atoll__conn_schedule(struct atoll_conn *c)
{
    if (c->in_ready)
        return;
    atoll_net *net = c->iso->net;
    c->in_ready = true;
    c->next_ready = NULL;
    if (net->ready_tail)
        net->ready_tail->next_ready = c;
    else
        net->ready_head = c;
    net->ready_tail = c;
}

static void atoll_conn_free(struct atoll_conn *c)
{
    atoll_net *net = c->iso->net;
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->hs_timer)
        atoll_timer_cancel(c->hs_timer);
    atoll_conn_segs_release(c);
    free(c->segs);
    if (c->recv_parked) {
        struct atoll_conn **pp = &net->bufs.parked;
        while (*pp && *pp != c)
            pp = &(*pp)->next_parked;
        if (*pp)
            *pp = c->next_parked;
    }
    if (c->ssl)
        wolfSSL_free(c->ssl);
    atoll__certificate_free(c->peer_cert);
    free(c->alpn);
    atoll__pool_put(&c->iso->net->plain_pool, c->plain);
    free(c->wpend);
    atoll__pool_put(&c->iso->net->out_pool, c->out);
    atoll__stats_unref(c->stats);
    c->iso->refs--;
    free(c);
}

/* Frees a dead connection once the kernel and the loop's lists let go. */
static void atoll_conn_maybe_free(struct atoll_conn *c)
{
    if (c->state == ATOLL_CONN_DEAD && c->ops == 0 && !c->in_ready && !c->in_hs)
        atoll_conn_free(c);
}

struct atoll_conn *atoll__conn_alloc(struct atoll_isolate *iso, int fd, atoll_server_stats *stats)
{
    struct atoll_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->iso = iso;
    c->stats = atoll__stats_ref(stats);
    c->fd = fd;
    c->read_events = c->write_events = true;
    c->write_event_due = true;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        atoll_sockaddr_to_address(&ss, &c->remote, &c->remote_port);
    atoll_net *net = iso->net;
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    iso->refs++;
    return c;
}

int atoll__conn_new(struct atoll_server *s, int fd, struct atoll_conn **out)
{
    struct atoll_conn *c = atoll__conn_alloc(s->iso, fd, s->stats);
    if (!c) {
        close(fd);
        s->stats->accept_errors++;
        return -ENOMEM;
    }
    c->server = s;
    c->local = s->address; /* Dart J1: the server's bind address and port */
    c->local_port = s->port;
    s->conns++;
    *out = c;

    if (!s->wctx) {
        c->state = ATOLL_CONN_OPEN;
        atoll__conn_arm_recv(c);
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
        atoll__conn_fail(c, ATOLL_E_HANDSHAKE_TIMEOUT);
}

/* Handshake timer, started by conn_tls.c once the SSL object exists. */
void atoll__conn_start_hs_timer(struct atoll_conn *c, uint32_t ms)
{
    if (ms)
        atoll_timer_start(c->iso, ms, 0, atoll_conn_hs_timeout, c, &c->hs_timer);
}

void atoll__conn_arm_recv(struct atoll_conn *c)
{
    if (c->recv_armed || c->recv_eof || c->recv_parked || c->paused || c->shut_rd || c->fd < 0 ||
        c->seg_count >= ATOLL_CONN_MAX_SEGS || c->recv_cancelling ||
        (c->state != ATOLL_CONN_HANDSHAKE && c->state != ATOLL_CONN_OPEN))
        return;
    struct io_uring_sqe *sqe = atoll__sqe(c->iso);
    if (!sqe)
        return;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->iso->net->bufs.bgid;
    io_uring_sqe_set_data64(sqe, atoll_ud_make(ATOLL_UD_RECV, (uintptr_t)c));
    c->recv_armed = true;
    c->ops++;
    c->iso->net->inflight++;
}

static void atoll_conn_cancel_recv(struct atoll_conn *c)
{
    if (!c->recv_armed || c->recv_cancelling)
        return;
    struct io_uring_sqe *sqe = atoll__sqe(c->iso);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, atoll_ud_make(ATOLL_UD_RECV, (uintptr_t)c), 0);
    io_uring_sqe_set_data64(sqe, atoll_ud_make(ATOLL_UD_CANCEL, (uintptr_t)c));
    c->recv_cancelling = true;
    c->iso->net->inflight++;
}

static void atoll_conn_input(struct atoll_conn *c)
{
    if (c->tls) {
        if (c->state == ATOLL_CONN_HANDSHAKE) {
            atoll_net *net = c->iso->net;
            if (!c->in_hs) { /* budgeted: run by atoll__net_turn */
                c->in_hs = true;
                c->next_hs = NULL;
                if (net->hs_tail)
                    net->hs_tail->next_hs = c;
                else
                    net->hs_head = c;
                net->hs_tail = c;
            }
            return;
        }
        atoll__tls_pump_input(c);
    }
    c->read_event_due = true;
    atoll__conn_schedule(c);
}

void atoll__conn_recv_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->recv_cancelling = false;
        c->ops--;
    }
    int res = cqe->res;
    if (res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        c->stats->bytes_in += (uint64_t)res;
        atoll_stat_add(&c->iso->stats.net_bytes_in, (uint64_t)res);
        if (c->state == ATOLL_CONN_DEAD || c->state == ATOLL_CONN_CLOSING || c->shut_rd ||
            atoll_conn_seg_push(c, bid, (uint32_t)res) < 0) {
            atoll__bufring_recycle(c->iso, bid); /* nobody will read it */
        } else {
            if (c->seg_count >= ATOLL_CONN_MAX_SEGS)
                atoll_conn_cancel_recv(c); /* the application is behind */
            atoll_conn_input(c);
        }
    } else if (res == 0) {
        c->recv_eof = true;
        if (c->state == ATOLL_CONN_HANDSHAKE)
            atoll__conn_fail(c, ATOLL_E_PEER_CLOSED);
        else if (c->state == ATOLL_CONN_OPEN) {
            if (c->tls)
                atoll__tls_pump_input(c);
            atoll__conn_schedule(c);
        }
    } else if (res == -ENOBUFS) {
        /* Flow control, not an error: wait for buffers to come back. */
        atoll_bufring *b = &c->iso->net->bufs;
        atoll_stat_add(&c->iso->stats.recv_enobufs, 1);
        if (!c->recv_parked && !c->recv_armed) {
            c->recv_parked = true;
            c->next_parked = b->parked;
            b->parked = c;
        }
    } else if (res != -ECANCELED) {
        if (c->state == ATOLL_CONN_HANDSHAKE || c->state == ATOLL_CONN_OPEN)
            atoll__conn_fail(c, res);
    }
    if (!c->recv_armed) {
        if (c->state == ATOLL_CONN_CLOSING)
            atoll_conn_progress_close(c); /* the close waited for the recv to end */
        else
            atoll__conn_arm_recv(c);
    }
    atoll_conn_maybe_free(c);
}

size_t atoll__conn_out_append(struct atoll_conn *c, const uint8_t *src, size_t len)
{
    if (!c->out) {
        c->out = atoll__pool_get(&c->iso->net->out_pool, ATOLL_CONN_OUT_CAP);
        if (!c->out)
            return 0;
        c->out_len = c->out_sent = 0;
    }
    if (!c->send_inflight && c->out_sent) {
        /* Nothing in the kernel's hands: compact. */
        memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
        c->out_len -= c->out_sent;
        c->out_sent = 0;
    }
    size_t room = ATOLL_CONN_OUT_CAP - c->out_len;
    size_t n = len < room ? len : room;
    memcpy(c->out + c->out_len, src, n);
    c->out_len += (uint32_t)n;
    return n;
}

void atoll__conn_kick_send(struct atoll_conn *c)
{
    if (c->send_inflight || !c->out || c->out_sent == c->out_len || c->fd < 0 || c->state == ATOLL_CONN_DEAD)
        return;
    struct io_uring_sqe *sqe = atoll__sqe(c->iso);
    if (!sqe)
        return;
    c->send_len = c->out_len - c->out_sent;
    io_uring_prep_send(sqe, c->fd, c->out + c->out_sent, c->send_len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, atoll_ud_make(ATOLL_UD_SEND, (uintptr_t)c));
    c->send_inflight = true;
    c->ops++;
    c->iso->net->inflight++;
}

static size_t atoll_conn_out_pending(const struct atoll_conn *c)
{
    return (c->out ? c->out_len - c->out_sent : 0) + c->wpend_len;
}

void atoll__conn_send_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe)
{
    c->send_inflight = false;
    c->ops--;
    if (c->state == ATOLL_CONN_DEAD) {
        atoll_conn_maybe_free(c);
        return;
    }
    if (cqe->res < 0) {
        c->out_len = c->out_sent = 0; /* the peer is gone: nothing more goes out */
        c->wpend_len = 0;
        if (c->state == ATOLL_CONN_CLOSING)
            atoll_conn_progress_close(c);
        else
            atoll__conn_fail(c, cqe->res);
        atoll_conn_maybe_free(c);
        return;
    }
    c->out_sent += (uint32_t)cqe->res;
    c->stats->bytes_out += (uint64_t)cqe->res;
    atoll_stat_add(&c->iso->stats.net_bytes_out, (uint64_t)cqe->res);
    if (c->out_sent == c->out_len) {
        c->out_len = c->out_sent = 0;
        if (c->state == ATOLL_CONN_OPEN && !c->wpend_len) {
            atoll__pool_put(&c->iso->net->out_pool, c->out); /* idle: no output buffer */
            c->out = NULL;
        }
    }
    if (c->tls && c->wpend_len)
        atoll__tls_flush_pending(c);
    if (c->state == ATOLL_CONN_HANDSHAKE && c->tls) {
        /* wolfSSL may be waiting for room to write its flight. */
        atoll__tls_handshake_step(c);
    }
    atoll__conn_kick_send(c);
    if (c->state == ATOLL_CONN_OPEN && c->write_events && atoll_conn_out_pending(c) < ATOLL_CONN_OUT_HIGH) {
        c->write_event_due = true;
        atoll__conn_schedule(c);
    }
    if (c->state == ATOLL_CONN_CLOSING || (c->shut_wr && !c->fin_sent))
        atoll_conn_progress_close(c);
}

/* Output drained: FIN for a send shutdown; shutdown + close for a close
 * (linked SQEs so the close follows the shutdown in order). */
static void atoll_conn_progress_close(struct atoll_conn *c)
{
    if (c->send_inflight || atoll_conn_out_pending(c) || c->fd < 0)
        return;
    if (c->state == ATOLL_CONN_CLOSING) {
        if (c->closing_started)
            return;
        if (c->recv_armed) {
            atoll_conn_cancel_recv(c);
            return; /* continue when the recv has ended */
        }
        c->closing_started = true;
        struct io_uring_sqe *sh = atoll__sqe(c->iso);
        struct io_uring_sqe *cl = sh ? atoll__sqe(c->iso) : NULL;
        if (!sh || !cl) {
            close(c->fd); /* SQ exhausted even after a submit: close directly */
            c->fd = -1;
            c->state = ATOLL_CONN_DEAD;
            return;
        }
        io_uring_prep_shutdown(sh, c->fd, SHUT_WR);
        io_uring_sqe_set_data64(sh, atoll_ud_make(ATOLL_UD_SHUTDOWN, (uintptr_t)c));
        sh->flags |= IOSQE_IO_LINK;
        io_uring_prep_close(cl, c->fd);
        io_uring_sqe_set_data64(cl, atoll_ud_make(ATOLL_UD_CLOSE, (uintptr_t)c));
        c->ops += 2;
        c->iso->net->inflight += 2;
        return;
    }
    if (c->shut_wr && !c->fin_sent) {
        struct io_uring_sqe *sh = atoll__sqe(c->iso);
        if (!sh)
            return;
        io_uring_prep_shutdown(sh, c->fd, SHUT_WR);
        io_uring_sqe_set_data64(sh, atoll_ud_make(ATOLL_UD_SHUTDOWN, (uintptr_t)c));
        c->fin_sent = true;
        c->ops++;
        c->iso->net->inflight++;
    }
}

static void atoll_conn_report_closed(struct atoll_conn *c)
{
    if (c->delivered && c->cb.on_closed && !c->closed_reported) {
        c->closed_reported = true;
        c->cb.on_closed(c, c->close_status, c->user);
    }
}

void atoll__conn_close_cqe(struct atoll_conn *c, enum atoll_ud_kind kind, const struct io_uring_cqe *cqe)
{
    c->ops--;
    (void)cqe; /* a failed shutdown (peer gone: ENOTCONN) changes nothing; close always releases the fd */
    if (kind == ATOLL_UD_CLOSE) {
        c->fd = -1;
        c->state = ATOLL_CONN_DEAD;
        atoll_conn_report_closed(c);
    } else if (c->state == ATOLL_CONN_OPEN && c->shut_wr && (c->recv_eof || c->tls_eof || c->shut_rd)) {
        atoll_conn_close_start(c); /* both directions closed: fully closed */
    }
    atoll_conn_maybe_free(c);
}

static void atoll_conn_close_start(struct atoll_conn *c)
{
    if (c->state == ATOLL_CONN_CLOSING || c->state == ATOLL_CONN_DEAD)
        return;
    if (c->tls && c->state == ATOLL_CONN_OPEN && !c->shut_wr)
        atoll__tls_shutdown_send(c); /* close_notify before the FIN */
    c->state = ATOLL_CONN_CLOSING;
    if (c->hs_timer) {
        atoll_timer_cancel(c->hs_timer);
        c->hs_timer = NULL;
    }
    atoll_conn_segs_release(c);
    atoll_conn_cancel_recv(c);
    atoll__conn_kick_send(c);
    atoll_conn_progress_close(c);
}

void atoll__conn_fail(struct atoll_conn *c, int status)
{
    atoll__conn_fail_reason(c, status, NULL);
}

void atoll__conn_fail_reason(struct atoll_conn *c, int status, const char *reason)
{
    if (c->state == ATOLL_CONN_CLOSING || c->state == ATOLL_CONN_DEAD)
        return;
    if (!c->close_status)
        c->close_status = status;
    if (c->state == ATOLL_CONN_HANDSHAKE && c->server) {
        struct atoll_server *s = c->server;
        c->server = NULL;
        atoll__server_conn_done(s, c, status, reason);
    } else if (c->state == ATOLL_CONN_HANDSHAKE && c->client) {
        struct atoll_connect_req *req = c->client;
        c->client = NULL;
        atoll__client_done(req, NULL, status);
    }
    atoll_conn_close_start(c);
    atoll_conn_maybe_free(c);
}

void atoll__conn_dispatch(struct atoll_conn *c)
{
    if (c->state != ATOLL_CONN_OPEN || !c->delivered) {
        atoll_conn_maybe_free(c);
        return;
    }
    size_t avail = atoll_conn_available(c);
    if (c->read_event_due && c->read_events && !c->paused && avail > 0) {
        c->read_event_due = false;
        if (c->cb.on_read)
            c->cb.on_read(c, c->user);
        if (c->state != ATOLL_CONN_OPEN) {
            atoll_conn_maybe_free(c);
            return;
        }
        /* Level-style: data left after a callback that read some -> again. */
        size_t now = atoll_conn_available(c);
        if (now > 0 && now < avail) {
            c->read_event_due = true;
            atoll__conn_schedule(c);
        }
        avail = now;
    }
    if ((c->recv_eof || c->tls_eof) && avail == 0 && !c->read_closed_reported) {
        c->read_closed_reported = true;
        if (c->cb.on_read_closed)
            c->cb.on_read_closed(c, c->user);
        if (c->state != ATOLL_CONN_OPEN) {
            atoll_conn_maybe_free(c);
            return;
        }
        if (c->shut_wr && c->fin_sent)
            atoll_conn_close_start(c);
    }
    if (c->write_event_due && c->write_events && !c->shut_wr && atoll_conn_out_pending(c) < ATOLL_CONN_OUT_HIGH) {
        c->write_event_due = false;
        c->write_events = false; /* one-shot */
        if (c->cb.on_write)
            c->cb.on_write(c, c->user);
    }
}

void atoll__conn_teardown(struct atoll_conn *c)
{
    /* Isolate exit: the application hears on_closed(ATOLL_E_STOPPED) so it
     * can release what it attached; the kernel's ops are cancelled by the
     * caller and their CQEs reaped without touching this object. */
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ATOLL_CONN_DEAD;
    if (!c->close_status)
        c->close_status = ATOLL_E_STOPPED;
    /* Held across the callback: whatever it calls, only we free. */
    c->ops++;
    atoll_conn_report_closed(c);
    c->ops = 0;
    c->in_ready = c->in_hs = false;
    c->recv_parked = false;
    atoll_conn_free(c);
}

/* ---------------------------------------------------------------------- */
/* Public API                                                             */
/* ---------------------------------------------------------------------- */

void atoll_conn_set_callbacks(atoll_conn *c, const atoll_conn_callbacks *cb, void *user)
{
    if (cb)
        c->cb = *cb;
    else
        memset(&c->cb, 0, sizeof(c->cb));
    c->user = user;
    atoll__conn_schedule(c);
}

size_t atoll_conn_available(const atoll_conn *c)
{
    if (c->state != ATOLL_CONN_OPEN)
        return 0;
    return c->tls ? c->plain_len : atoll__conn_seg_bytes(c);
}

ssize_t atoll_conn_read(atoll_conn *c, void *buf, size_t len)
{
    if (!buf && len)
        return -EINVAL;
    size_t avail = atoll_conn_available(c);
    if (avail == 0) {
        if (c->state != ATOLL_CONN_OPEN || c->shut_rd || c->recv_eof || c->tls_eof)
            return ATOLL_E_CLOSED;
        return 0;
    }
    size_t n;
    if (c->tls) {
        n = len < c->plain_len ? len : c->plain_len;
        memcpy(buf, c->plain + c->plain_off, n);
        c->plain_off += (uint32_t)n;
        c->plain_len -= (uint32_t)n;
        if (c->plain_len == 0) {
            c->plain_off = 0;
            atoll__tls_pump_input(c); /* decrypt what is waiting */
        }
    } else {
        n = atoll__conn_seg_take(c, buf, len);
    }
    if (atoll_conn_available(c) == 0 && (c->recv_eof || c->tls_eof))
        atoll__conn_schedule(c); /* read-closed is due */
    return (ssize_t)n;
}

ssize_t atoll_conn_write(atoll_conn *c, const void *buf, size_t len)
{
    if (!buf && len)
        return -EINVAL;
    if (c->state == ATOLL_CONN_CLOSING || c->state == ATOLL_CONN_DEAD || c->shut_wr)
        return ATOLL_E_CLOSED;
    if (c->state != ATOLL_CONN_OPEN)
        return 0;
    size_t pending = atoll_conn_out_pending(c);
    size_t room = pending < ATOLL_CONN_OUT_HIGH ? ATOLL_CONN_OUT_HIGH - pending : 0;
    size_t n = len < room ? len : room;
    if (n == 0)
        return 0;
    ssize_t done = c->tls ? atoll__tls_write(c, buf, n) : (ssize_t)atoll__conn_out_append(c, buf, n);
    atoll__conn_kick_send(c);
    return done;
}

void atoll_conn_set_read_events(atoll_conn *c, bool enabled)
{
    c->read_events = enabled;
    if (enabled) {
        c->read_event_due = true;
        atoll__conn_schedule(c);
    }
}

void atoll_conn_set_write_events(atoll_conn *c, bool enabled)
{
    c->write_events = enabled;
    if (enabled) {
        c->write_event_due = true;
        atoll__conn_schedule(c);
    }
}

void atoll_conn_pause(atoll_conn *c)
{
    if (c->paused)
        return;
    c->paused = true;
    atoll_conn_cancel_recv(c);
}

void atoll_conn_resume(atoll_conn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    atoll__conn_arm_recv(c);
    c->read_event_due = true;
    if (c->write_events)
        c->write_event_due = true;
    atoll__conn_schedule(c);
}

int atoll_conn_shutdown(atoll_conn *c, atoll_shutdown_how how)
{
    if (how == ATOLL_SHUT_BOTH)
        return atoll_conn_close(c);
    if (how != ATOLL_SHUT_SEND && how != ATOLL_SHUT_RECEIVE)
        return -EINVAL;
    if (c->state != ATOLL_CONN_OPEN)
        return 0;
    if (how == ATOLL_SHUT_RECEIVE) {
        if (c->shut_rd)
            return 0;
        c->shut_rd = true;
        atoll_conn_cancel_recv(c);
        atoll_conn_segs_release(c);
        c->plain_len = c->plain_off = 0;
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RD); /* non-blocking; tells the kernel to drop further data */
        if (c->shut_wr)
            atoll_conn_close_start(c);
        return 0;
    }
    if (c->shut_wr)
        return 0;
    if (c->tls)
        atoll__tls_shutdown_send(c);
    c->shut_wr = true;
    atoll__conn_kick_send(c);
    atoll_conn_progress_close(c);
    if (c->shut_rd || (c->read_closed_reported && c->fin_sent))
        atoll_conn_close_start(c);
    return 0;
}

int atoll_conn_close(atoll_conn *c)
{
    if (!c)
        return -EINVAL;
    atoll_conn_close_start(c);
    atoll_conn_maybe_free(c);
    return 0;
}

const atoll_address *atoll_conn_address(const atoll_conn *c, uint16_t *port)
{
    if (port)
        *port = c->local_port;
    return &c->local;
}

const atoll_address *atoll_conn_remote_address(const atoll_conn *c, uint16_t *port)
{
    if (port)
        *port = c->remote_port;
    return &c->remote;
}

int atoll_conn_set_nodelay(atoll_conn *c, bool enabled)
{
    int v = enabled ? 1 : 0;
    if (c->fd < 0)
        return ATOLL_E_CLOSED;
    return setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0 ? 0 : -errno;
}

const char *atoll_conn_selected_protocol(const atoll_conn *c)
{
    return c->alpn;
}

const atoll_certificate *atoll_conn_peer_certificate(const atoll_conn *c)
{
    return c->peer_cert;
}

bool atoll_conn_resumed(const atoll_conn *c)
{
    return c->resumed;
}

atoll_isolate *atoll_conn_isolate(const atoll_conn *c)
{
    return c->iso;
}
