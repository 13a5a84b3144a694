/*
 * isolates/conn_close.c: how a connection ends: flush (close_notify first
 * for TLS), cancel the recv, then one reserved chain of SHUTDOWN + CLOSE on
 * the ring. A send shutdown is a single SHUTDOWN once the output drained.
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
        struct io_uring_sqe *sqe[2];
        if (atoll__op_reserve(c->iso, sqe, 2) < 0) {
            atoll__obj_defer(&c->obj); /* both or neither: retried next turn */
            return;
        }
        /* A hard link: the close runs even when the shutdown fails (a peer
         * that reset gives ENOTCONN), so the descriptor is never left. */
        io_uring_prep_shutdown(sqe[0], c->fd, SHUT_WR);
        sqe[0]->flags |= IOSQE_IO_HARDLINK | IOSQE_FIXED_FILE;
        atoll__op_start(c->iso, sqe[0], ATOLL_UD_SHUTDOWN, &c->obj);
        io_uring_prep_close_direct(sqe[1], (unsigned)c->fd);
        atoll__op_start(c->iso, sqe[1], ATOLL_UD_CLOSE, &c->obj);
        c->closing_started = true;
        return;
    }
    if (c->shut_wr && !c->fin_sent && c->state == ATOLL_CONN_OPEN) {
        struct io_uring_sqe *sqe;
        if (atoll__op_reserve(c->iso, &sqe, 1) < 0) {
            atoll__obj_defer(&c->obj);
            return;
        }
        io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
        sqe->flags |= IOSQE_FIXED_FILE;
        atoll__op_start(c->iso, sqe, ATOLL_UD_SHUTDOWN, &c->obj);
        c->fin_sent = true;
    }
}

void atoll__conn_issue_shut_rd(struct atoll_conn *c)
{
    if (!c->shut_rd_pending || c->fd < 0)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__op_reserve(c->iso, &sqe, 1) < 0) {
        atoll__obj_defer(&c->obj);
        return;
    }
    /* Tells the kernel the application reads no more. Its CQE is a
     * SHUTDOWN like the FIN's; a failure (peer gone) changes nothing. */
    io_uring_prep_shutdown(sqe, c->fd, SHUT_RD);
    sqe->flags |= IOSQE_FIXED_FILE;
    atoll__op_start(c->iso, sqe, ATOLL_UD_SHUTDOWN, &c->obj);
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
    } else if (c->state == ATOLL_CONN_OPEN && c->shut_wr && (c->recv_eof || c->tls_eof || c->shut_rd)) {
        atoll__conn_close_start(c); /* both directions closed: fully closed */
    }
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
