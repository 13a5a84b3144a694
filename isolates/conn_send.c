/*
 * isolates/conn_send.c: the send side of a connection: an output ring
 * (from the isolate's pool while data is pending) and one send in flight,
 * which keeps bytes (and TLS records) in order.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "isolates/net_private.h"

size_t atoll__conn_out_pending(const struct atoll_conn *c)
{
    return c->out_len + c->wpend_len;
}

static atoll_buf_pool *atoll_out_pool(struct atoll_conn *c, uint32_t cap)
{
    return cap == ATOLL_CONN_OUT_CAP ? &c->iso->net->out_pool : &c->iso->net->out_small_pool;
}

void atoll__conn_out_release(struct atoll_conn *c)
{
    if (!c->out)
        return;
    atoll__pool_put(atoll_out_pool(c, c->out_cap), c->out);
    c->out = NULL;
    c->out_cap = c->out_head = c->out_len = 0;
}

/* Moves the pending bytes into a large ring (nothing in flight: the kernel
 * reads neither). */
static int atoll_out_grow(struct atoll_conn *c)
{
    uint8_t *big = atoll__pool_get(&c->iso->net->out_pool, ATOLL_CONN_OUT_CAP);
    if (!big)
        return -ENOMEM;
    uint32_t first = c->out_cap - c->out_head < c->out_len ? c->out_cap - c->out_head : c->out_len;
    memcpy(big, c->out + c->out_head, first);
    memcpy(big + first, c->out, c->out_len - first);
    atoll__pool_put(&c->iso->net->out_small_pool, c->out);
    c->out = big;
    c->out_cap = ATOLL_CONN_OUT_CAP;
    c->out_head = 0;
    return 0;
}

ssize_t atoll__conn_out_room(struct atoll_conn *c, size_t want)
{
    if (!c->out) {
        c->out = atoll__pool_get(&c->iso->net->out_small_pool, ATOLL_CONN_OUT_SMALL);
        if (!c->out)
            return -ENOMEM;
        c->out_cap = ATOLL_CONN_OUT_SMALL;
        c->out_head = c->out_len = 0;
    }
    if (c->out_cap == ATOLL_CONN_OUT_SMALL && c->out_len + want > ATOLL_CONN_OUT_SMALL && !c->send_inflight) {
        int ret = atoll_out_grow(c);
        /* Without a large ring the small one's room still serves (the
         * write goes short); only a full one with no way to grow fails. */
        if (ret < 0 && c->out_len == c->out_cap)
            return ret;
    }
    return (ssize_t)(c->out_cap - c->out_len);
}

size_t atoll__conn_out_append(struct atoll_conn *c, const uint8_t *src, size_t len)
{
    ssize_t room = atoll__conn_out_room(c, len);
    if (room <= 0)
        return 0;
    size_t n = len < (size_t)room ? len : (size_t)room;
    /* A ring: the room is all that is not pending, whatever is in flight,
     * so writes never wait for a send to finish to reuse the front. */
    size_t tail = (c->out_head + c->out_len) % c->out_cap;
    size_t first = c->out_cap - tail < n ? c->out_cap - tail : n;
    memcpy(c->out + tail, src, first);
    memcpy(c->out, src + first, n - first);
    c->out_len += (uint32_t)n;
    return n;
}

void atoll__conn_kick_send(struct atoll_conn *c)
{
    if (c->send_inflight || !c->out || !c->out_len || c->fd < 0 || c->state == ATOLL_CONN_DEAD)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
        return;
    /* The contiguous part up to the ring's end; the rest goes next. */
    uint32_t to_end = c->out_cap - c->out_head;
    c->send_len = c->out_len < to_end ? c->out_len : to_end;
    io_uring_prep_send(sqe, c->fd, c->out + c->out_head, c->send_len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    atoll__op_start(c->iso, sqe, ATOLL_UD_SEND, &c->obj);
    c->send_inflight = true;
}

void atoll__conn_send_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe)
{
    c->send_inflight = false;
    if (c->state == ATOLL_CONN_DEAD)
        return;
    if (cqe->res < 0) {
        /* The peer is gone: nothing more goes out, and wolfSSL (which may
         * hold a record half handed over) is not driven again. */
        c->out_head = c->out_len = 0;
        c->wpend_len = 0;
        c->tls_dead = c->tls;
        if (c->state == ATOLL_CONN_CLOSING)
            atoll__conn_progress_close(c);
        else
            atoll__conn_fail(c, cqe->res);
        return;
    }
    c->out_head = (c->out_head + (uint32_t)cqe->res) % c->out_cap;
    c->out_len -= (uint32_t)cqe->res;
    c->last_active_ns = c->iso->now_ns;
    c->stats->bytes_out += (uint64_t)cqe->res;
    atoll_stat_add(&c->iso->stats.net_bytes_out, (uint64_t)cqe->res);
    if (c->out_len == 0) {
        c->out_head = 0;
        if (!c->wpend_len)
            atoll__conn_out_release(c); /* idle (or between flights): no output ring */
    }
    if (c->tls && c->wpend_len)
        atoll__tls_flush_pending(c);
    if (c->notify_wanted && !c->wpend_len)
        atoll__tls_shutdown_send(c); /* after the record it had to wait for */
    if (c->state == ATOLL_CONN_HANDSHAKE && c->tls)
        atoll__conn_hs_queue(c); /* wolfSSL may be waiting for room to write its flight */
    atoll__conn_kick_send(c);
    if (c->state == ATOLL_CONN_OPEN && c->write_events && atoll__conn_out_pending(c) < ATOLL_CONN_OUT_HIGH) {
        c->write_event_due = true;
        atoll__conn_schedule(c);
    }
    if (c->state == ATOLL_CONN_CLOSING || (c->shut_wr && !c->fin_sent))
        atoll__conn_progress_close(c);
}
