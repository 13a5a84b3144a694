/*
 * isolates/conn_recv.c: the receive side of a connection: one single-shot
 * recv at a time, selecting a buffer from the isolate's shared ring, kept
 * as a segment until consumed.
 *
 * Why single-shot: a multishot recv keeps taking buffers for as long as
 * the socket has data, before any cancel can land, so a connection whose
 * application does not read could drain the whole ring. An armed
 * single-shot recv takes at most one buffer, and a connection arms one only
 * while it holds fewer than its share (bufring.share): what it holds is
 * bounded by construction, and the TCP window pushes back on its peer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "isolates/net_private.h"

size_t atoll__conn_seg_bytes(const struct atoll_conn *c)
{
    size_t n = 0;
    for (uint32_t i = 0; i < c->seg_count; i++)
        n += c->segs[(c->seg_head + i) % c->seg_cap].len;
    return n;
}

size_t atoll__conn_seg_peek(const struct atoll_conn *c, uint8_t *dst, size_t len)
{
    size_t done = 0;
    atoll_bufring *b = &c->iso->net->bufs;
    for (uint32_t i = 0; i < c->seg_count && done < len; i++) {
        const atoll_conn_seg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
        size_t n = s->len < len - done ? s->len : len - done;
        memcpy(dst + done, atoll__bufring_addr(b, s->bid) + s->off, n);
        done += n;
    }
    return done;
}

size_t atoll__conn_seg_take(struct atoll_conn *c, uint8_t *dst, size_t len)
{
    size_t done = 0;
    bool freed = false;
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
            freed = true;
        }
    }
    /* Below its share again: the next dispatch re-arms (never inside the
     * caller, which may be the application's read). */
    if (freed && !c->recv_armed)
        atoll__conn_schedule(c);
    return done;
}

static int atoll_conn_seg_push(struct atoll_conn *c, uint16_t bid, uint32_t len)
{
    if (c->seg_count == c->seg_cap) {
        uint32_t ncap = c->seg_cap ? c->seg_cap * 2 : 4;
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

void atoll__conn_segs_release(struct atoll_conn *c)
{
    while (c->seg_count) {
        uint16_t bid = c->segs[c->seg_head].bid;
        c->seg_head = (c->seg_head + 1) % c->seg_cap;
        c->seg_count--;
        atoll__bufring_recycle(c->iso, bid);
    }
}

void atoll__conn_arm_recv(struct atoll_conn *c)
{
    if (c->recv_armed || c->recv_eof || atoll__connq_queued(c, ATOLL_CONNQ_PARKED) || c->paused || c->shut_rd ||
        c->fd < 0 || c->seg_count >= c->iso->net->bufs.share ||
        (c->state != ATOLL_CONN_HANDSHAKE && c->state != ATOLL_CONN_OPEN))
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
        return;
    io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT | IOSQE_FIXED_FILE;
    sqe->buf_group = c->iso->net->bufs.bgid;
    atoll__op_start(c->iso, sqe, ATOLL_UD_RECV, &c->obj);
    c->recv_armed = true;
}

void atoll__conn_cancel_recv(struct atoll_conn *c)
{
    if (!c->recv_armed || c->recv_cancel_sent)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&c->obj, &sqe, 1) < 0)
        return;
    io_uring_prep_cancel64(sqe, atoll_ud_make(ATOLL_UD_RECV, (uintptr_t)&c->obj), 0);
    atoll__op_start(c->iso, sqe, ATOLL_UD_CANCEL, NULL);
    c->recv_cancel_sent = true;
}

/* ENOBUFS: wait, in arrival order, for a buffer to come back. */
static void atoll_conn_park(struct atoll_conn *c)
{
    atoll__connq_push(&c->iso->net->bufs.parked, c);
}

void atoll__conn_unpark_all(atoll_bufring *b)
{
    struct atoll_conn *c;
    while ((c = atoll__connq_pop(&b->parked))) {
        atoll__conn_schedule(c); /* its dispatch re-arms */
        atoll__obj_unref(&c->obj);
    }
}

/* New bytes: a PROXY header or TLS records still in the handshake go to
 * the handshake queue; records after it are decrypted; either way the
 * application hears at the next dispatch. */
static void atoll_conn_input(struct atoll_conn *c)
{
    if (c->state == ATOLL_CONN_HANDSHAKE) {
        atoll__conn_hs_queue(c);
        return;
    }
    if (c->tls)
        atoll__tls_pump_input(c);
    atoll__conn_schedule(c);
}

void atoll__conn_recv_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe)
{
    c->recv_armed = false; /* single-shot: every recv CQE is final */
    c->recv_cancel_sent = false;
    int res = cqe->res;
    bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (has_buf)
        c->iso->net->bufs.free--;
    if (res > 0 && has_buf) {
        c->last_active_ns = c->iso->now_ns;
        c->stats->bytes_in += (uint64_t)res;
        atoll_stat_add(&c->iso->stats.net_bytes_in, (uint64_t)res);
        if (c->state == ATOLL_CONN_DEAD || c->state == ATOLL_CONN_CLOSING || c->shut_rd ||
            atoll_conn_seg_push(c, bid, (uint32_t)res) < 0)
            atoll__bufring_recycle(c->iso, bid); /* nobody will read it */
        else
            atoll_conn_input(c);
    } else {
        if (has_buf)
            atoll__bufring_recycle(c->iso, bid);
        if (res == 0) {
            c->recv_eof = true;
            if (c->state == ATOLL_CONN_HANDSHAKE) {
                /* The step decides: what came before the FIN (a PROXY
                 * header and a request, a last TLS flight) is read first,
                 * and a handshake left wanting more fails as closed. */
                atoll__conn_hs_queue(c);
            } else if (c->state == ATOLL_CONN_OPEN) {
                if (c->tls)
                    atoll__tls_pump_input(c);
                atoll__conn_schedule(c);
            }
        } else if (res == -ENOBUFS) {
            /* Flow control, not an error: wait for buffers to come back. */
            atoll_stat_add(&c->iso->stats.recv_enobufs, 1);
            if (c->state == ATOLL_CONN_HANDSHAKE || c->state == ATOLL_CONN_OPEN)
                atoll_conn_park(c);
        } else if (res < 0 && res != -ECANCELED) {
            if (c->state == ATOLL_CONN_HANDSHAKE || c->state == ATOLL_CONN_OPEN)
                atoll__conn_fail(c, res);
        }
    }
    if (c->state == ATOLL_CONN_CLOSING)
        atoll__conn_progress_close(c); /* the close waited for the recv to end */
    else
        atoll__conn_arm_recv(c);
}
