/*
 * isolates/conn_api.c: the public atoll_conn_* calls. None of them runs a
 * callback or waits: they change the connection's state and queue ops or a
 * dispatch, so each is safe from inside any callback.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "isolates/net_private.h"

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
    return c->tls ? atoll__tls_available(c) : atoll__conn_seg_bytes(c);
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
        ssize_t r = atoll__tls_read(c, buf, len); /* decrypted straight into buf */
        if (r < 0)
            return r;
        n = (size_t)r;
    } else {
        n = atoll__conn_seg_take(c, buf, len); /* schedules a re-arm itself */
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
    size_t pending = atoll__conn_out_pending(c);
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
    if (enabled)
        atoll__conn_schedule(c);
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
    /* A recv already armed completes into at most one buffer and is not
     * re-armed until resume. */
    c->paused = true;
}

void atoll_conn_resume(atoll_conn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
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
        atoll__conn_cancel_recv(c);
        atoll__conn_segs_release(c);
        c->shut_rd_pending = true;
        atoll__conn_issue_shut_rd(c);
        if (c->shut_wr)
            atoll__conn_close_start(c);
        return 0;
    }
    if (c->shut_wr)
        return 0;
    if (c->tls)
        atoll__tls_shutdown_send(c);
    c->shut_wr = true;
    atoll__conn_kick_send(c);
    atoll__conn_progress_close(c);
    if (c->shut_rd || (c->read_closed_reported && c->fin_sent))
        atoll__conn_close_start(c);
    return 0;
}

int atoll_conn_close(atoll_conn *c)
{
    if (!c)
        return -EINVAL;
    atoll__conn_close_start(c);
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

void atoll__conn_issue_sockopt(struct atoll_conn *c)
{
    if (!c->nodelay_pending || c->fd < 0)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
        return;
    atoll_prep_setsockopt(sqe, c->fd, IPPROTO_TCP, TCP_NODELAY, &c->nodelay_val, sizeof(c->nodelay_val));
    sqe->flags |= IOSQE_FIXED_FILE;
    atoll__op_start(c->iso, sqe, ATOLL_UD_SOCKOPT, &c->obj);
    c->side_ops++;
    c->nodelay_pending = false;
}

void atoll__conn_sockopt_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe)
{
    /* A socket option that did not take is counted; the connection goes on
     * (ECONNRESET and the like show up on its data path anyway). */
    if (cqe->res < 0)
        atoll_stat_add(&c->iso->stats.sockopt_errors, 1);
    c->side_ops--;
    if (c->state == ATOLL_CONN_CLOSING)
        atoll__conn_progress_close(c); /* the close may have waited for it */
}

int atoll_conn_set_nodelay(atoll_conn *c, bool enabled)
{
    if (!c)
        return -EINVAL;
    if (c->fd < 0 || c->state == ATOLL_CONN_CLOSING || c->state == ATOLL_CONN_DEAD)
        return ATOLL_E_CLOSED;
    if (!c->iso->info->ring_sockopt)
        return -EOPNOTSUPP; /* a direct descriptor has no setsockopt() before Linux 6.7 */
    c->nodelay_val = enabled ? 1 : 0;
    c->nodelay_pending = true;
    atoll__conn_issue_sockopt(c);
    return 0;
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
