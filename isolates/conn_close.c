/*
 * isolates/conn_close.c: how a connection ends: flush (close_notify first
 * for TLS), cancel the recv, then one close of the direct descriptor on the
 * ring. A send shutdown is a single SHUTDOWN once the output drained.
 */
#include <errno.h>
#include <sys/socket.h>

#include "isolates/net_private.h"

void atoll__conn_progress_close(struct atoll_conn *c)
{
    if (c->send_inflight || atoll__conn_out_pending(c) || c->fd < 0)
        return;
    if (c->state == ATOLL_CONN_CLOSING) {
        if (c->closing_started)
            return;
        if (c->recv_armed) {
            atoll__conn_cancel_recv(c);
            return; /* continue when the recv has ended */
        }
        if (c->side_ops)
            return; /* continue when the last shutdown or socket option has ended */
        struct io_uring_sqe *sqe;
        if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
            return; /* retried next turn */
        /* No op of ours holds the file any more (the recv has ended; no
         * send, shutdown or socket option is in flight), so closing the
         * slot drops the socket's last reference and the kernel sends the
         * FIN (an RST if unread data remains, as close(2) does). No SHUTDOWN first: the kernel runs
         * every IORING_OP_SHUTDOWN on an io-wq worker thread, which cost a
         * quarter of the server's CPU under cleartext connection churn. */
        io_uring_prep_close_direct(sqe, (unsigned)c->fd);
        atoll__op_start(c->iso, sqe, ATOLL_UD_CLOSE, &c->obj);
        c->closing_started = true;
        return;
    }
    if (c->shut_wr && !c->fin_sent && c->state == ATOLL_CONN_OPEN) {
        struct io_uring_sqe *sqe;
        if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
            return;
        io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
        sqe->flags |= IOSQE_FIXED_FILE;
        atoll__op_start(c->iso, sqe, ATOLL_UD_SHUTDOWN, &c->obj);
        c->side_ops++;
        c->fin_sent = true;
    }
}

void atoll__conn_issue_shut_rd(struct atoll_conn *c)
{
    if (!c->shut_rd_pending || c->fd < 0)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
        return;
    /* Tells the kernel the application reads no more. Its CQE is a
     * SHUTDOWN like the FIN's; a failure (peer gone) changes nothing. */
    io_uring_prep_shutdown(sqe, c->fd, SHUT_RD);
    sqe->flags |= IOSQE_FIXED_FILE;
    atoll__op_start(c->iso, sqe, ATOLL_UD_SHUTDOWN, &c->obj);
    c->side_ops++;
    c->shut_rd_pending = false;
}

void atoll__conn_close_cqe(struct atoll_conn *c, enum atoll_ud_kind kind, const struct io_uring_cqe *cqe)
{
    if (kind == ATOLL_UD_CLOSE) {
        /* Cancelled before it ran (teardown): the slot still holds the
         * socket and destroy empties it once no op is live. */
        if (cqe->res != -ECANCELED) {
            if (cqe->res < 0)
                atoll_stat_add(&c->iso->stats.cqe_errors, 1); /* the slot is empty all the same */
            atoll__files_put(&c->iso->net->files, (uint32_t)c->fd);
            c->fd = -1;
        }
        if (c->state != ATOLL_CONN_DEAD) {
            c->state = ATOLL_CONN_DEAD;
            atoll__conn_schedule(c); /* on_closed comes from dispatch */
        }
        return;
    }
    c->side_ops--; /* a SHUTDOWN */
    if (c->state == ATOLL_CONN_OPEN && c->shut_wr && (c->recv_eof || c->tls_eof || c->shut_rd))
        atoll__conn_close_start(c); /* both directions closed: fully closed */
    else if (c->state == ATOLL_CONN_CLOSING)
        atoll__conn_progress_close(c); /* the close may have waited for it */
}

void atoll__conn_abort(struct atoll_conn *c, int status)
{
    if (c->state == ATOLL_CONN_DEAD)
        return;
    if (!c->close_status)
        c->close_status = status;
    /* Nothing more is written: no close_notify, no pending plaintext; only
     * what a send in flight covers stays until its completion. */
    c->tls_dead = c->tls;
    c->wpend_len = 0;
    c->notify_wanted = false;
    if (c->send_inflight) {
        c->out_len = c->send_len;
        struct io_uring_sqe *sqe;
        /* A send blocked on a peer that does not read would hold the close
         * forever; cancelled, its completion continues the close. */
        if (atoll__obj_reserve(&c->obj, &sqe, 1) == 0) {
            io_uring_prep_cancel64(sqe, atoll_ud_make(ATOLL_UD_SEND, (uintptr_t)&c->obj), 0);
            atoll__op_start(c->iso, sqe, ATOLL_UD_CANCEL, NULL);
        }
    } else {
        c->out_head = c->out_len = 0;
    }
    atoll__conn_fail(c, status); /* a handshake hears its outcome; CLOSING */
    atoll__conn_progress_close(c);
}

void atoll__conn_close_start(struct atoll_conn *c)
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
    atoll__conn_segs_release(c);
    atoll__conn_cancel_recv(c);
    atoll__conn_kick_send(c);
    atoll__conn_progress_close(c);
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
    atoll__conn_close_start(c);
}
