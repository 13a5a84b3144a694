/*
 * isolates/net.c: an isolate's networking state: the provided-buffer ring
 * shared by its connections, CQE dispatch for sockets, the per-turn
 * handshake budget and event dispatch, and teardown.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "isolates/net_private.h"
#include "isolates/user_data.h"

/* Group id of the isolate's receive buffers. */
#define ATOLL_BGID 0

static int atoll_bufring_init(struct atoll_isolate *iso, atoll_bufring *b)
{
    b->count = iso->opts->recv_buffers;
    b->size = iso->opts->recv_buffer_size;
    b->mask = (uint32_t)io_uring_buf_ring_mask(b->count);
    b->bgid = ATOLL_BGID;
    b->ring_bytes = b->count * sizeof(struct io_uring_buf);
    void *ring = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED)
        return -ENOMEM;
    b->br = ring;
    b->base = malloc((size_t)b->count * b->size);
    if (!b->base) {
        munmap(ring, b->ring_bytes);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uintptr_t)ring;
    reg.ring_entries = b->count;
    reg.bgid = b->bgid;
    int ret = io_uring_register_buf_ring(&iso->ring, &reg, 0);
    if (ret < 0) {
        free(b->base);
        munmap(ring, b->ring_bytes);
        return ret;
    }
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < b->count; i++)
        io_uring_buf_ring_add(b->br, b->base + (size_t)i * b->size, b->size, (unsigned short)i, (int)b->mask, (int)i);
    io_uring_buf_ring_advance(b->br, (int)b->count);
    b->free = b->count;
    b->share = iso->opts->recv_buffers_per_conn;
    b->ready = true;
    return 0;
}

int atoll__net_get(struct atoll_isolate *iso, atoll_net **out)
{
    if (!iso->net) {
        atoll_net *net = calloc(1, sizeof(*net));
        if (!net)
            return -ENOMEM;
        atoll__connq_init(&net->ready, ATOLL_CONNQ_READY);
        atoll__connq_init(&net->hs, ATOLL_CONNQ_HANDSHAKE);
        atoll__connq_init(&net->bufs.parked, ATOLL_CONNQ_PARKED);
        net->client_stats = atoll__stats_new();
        int ret = net->client_stats ? atoll__files_init(iso, &net->files, iso->opts->conns_per_isolate) : -ENOMEM;
        if (ret == 0) {
            ret = atoll_bufring_init(iso, &net->bufs);
            if (ret < 0) {
                io_uring_unregister_files(&iso->ring);
                atoll__files_free(&net->files);
            }
        }
        if (ret < 0) {
            if (net->client_stats)
                atoll__stats_unref(net->client_stats);
            free(net);
            return ret;
        }
        iso->net = net;
    }
    *out = iso->net;
    return 0;
}

void *atoll__pool_get(atoll_buf_pool *p, size_t size)
{
    return p->n ? p->bufs[--p->n] : malloc(size);
}

void atoll__pool_put(atoll_buf_pool *p, void *buf)
{
    if (!buf)
        return;
    if (p->n < ATOLL_NET_POOL)
        p->bufs[p->n++] = buf;
    else
        free(buf);
}

static void atoll_pool_drain(atoll_buf_pool *p)
{
    while (p->n)
        free(p->bufs[--p->n]);
}

uint8_t *atoll__bufring_addr(atoll_bufring *b, uint16_t bid)
{
    return b->base + (size_t)bid * b->size;
}

void atoll__bufring_recycle(struct atoll_isolate *iso, uint16_t bid)
{
    atoll_bufring *b = &iso->net->bufs;
    io_uring_buf_ring_add(b->br, atoll__bufring_addr(b, bid), b->size, bid, (int)b->mask, 0);
    io_uring_buf_ring_advance(b->br, 1);
    b->free++;
    /* Buffers are back: connections parked on ENOBUFS may read again. */
    atoll__conn_unpark_all(b);
}

void atoll__net_cqe(struct atoll_isolate *iso, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    void *obj = atoll_ud_ptr(ud);
    enum atoll_ud_kind kind = atoll_ud_kind(ud);
    switch (kind) {
    case ATOLL_UD_ACCEPT:
        atoll__server_accept_cqe(obj, cqe);
        break;
    case ATOLL_UD_RECV:
        atoll__conn_recv_cqe(obj, cqe);
        break;
    case ATOLL_UD_SEND:
        atoll__conn_send_cqe(obj, cqe);
        break;
    case ATOLL_UD_SHUTDOWN:
    case ATOLL_UD_CLOSE:
        atoll__conn_close_cqe(obj, kind, cqe);
        break;
    case ATOLL_UD_CONNECT:
        atoll__connect_cqe(obj, cqe);
        break;
    case ATOLL_UD_SOCKOPT:
        atoll__conn_sockopt_cqe(obj, cqe);
        break;
    case ATOLL_UD_CANCEL:
        /* The cancelled op reports on its own CQE. Not found (it had just
         * completed) and already running are normal outcomes. */
        if (cqe->res < 0 && cqe->res != -ENOENT && cqe->res != -EALREADY)
            atoll_stat_add(&iso->stats.cqe_errors, 1);
        break;
    default:
        break;
    }
}

static void atoll_net_run_handshakes(struct atoll_isolate *iso)
{
    atoll_net *net = iso->net;
    /* Only the connections queued before this pass: work they queue again
     * waits for the next turn. The budget is the head server's: a storm on
     * one server stops this turn's handshakes, established connections
     * still get their events below. */
    struct atoll_conn *end = net->hs.tail;
    uint64_t turn = atomic_load_explicit(&iso->stats.loop_turns.v, memory_order_relaxed);
    while (!atoll__connq_empty(&net->hs)) {
        struct atoll_server *s = net->hs.head->server;
        if (s && s->turn_seen != turn) {
            s->turn_seen = turn;
            s->handshakes_this_turn = 0;
        }
        if (s && s->handshakes_this_turn >= s->opts.handshakes_per_turn) {
            iso->more_work = true;
            return;
        }
        struct atoll_conn *c = atoll__connq_pop(&net->hs);
        if (s)
            s->handshakes_this_turn++;
        atoll__conn_handshake_step(c);
        atoll__obj_unref(&c->obj); /* the queue's */
        if (c == end)
            return;
    }
}

void atoll__net_turn(struct atoll_isolate *iso)
{
    atoll_net *net = iso->net;
    if (!net)
        return;
    /* Objects are freed only in the free phase, so walking the list while
     * callbacks close servers is safe. */
    bool slots_back = net->files.starved && atoll__files_room(&net->files);
    if (slots_back)
        net->files.starved = false; /* below the caps again: accept again */
    for (struct atoll_server *s = net->servers; s; s = s->next) {
        if (s->npend)
            atoll__server_run_pending(s);
        if (slots_back)
            atoll__server_rearm(s);
    }
    if (!atoll__connq_empty(&net->hs))
        atoll_net_run_handshakes(iso);
    /* Events are dispatched after the I/O of the turn, as Dart emits them
     * asynchronously; what callbacks schedule goes to the next turn. */
    atoll_conn_queue batch = net->ready;
    atoll__connq_init(&net->ready, ATOLL_CONNQ_READY);
    struct atoll_conn *c;
    while ((c = atoll__connq_pop(&batch))) {
        atoll__conn_dispatch(c);
        atoll__obj_unref(&c->obj); /* the queue's */
    }
    if (!atoll__connq_empty(&net->ready) || !atoll__connq_empty(&net->hs))
        iso->more_work = true;
}

void atoll__net_teardown(struct atoll_isolate *iso)
{
    atoll_net *net = iso->net;
    if (!net)
        return;
    /* The op layer has reaped every op: nothing in the kernel refers to a
     * descriptor or buffer any more. Report, drop the owners' references,
     * free (destroy closes what is still open), then the shared state. */
    for (struct atoll_server *s = net->servers; s; s = s->next)
        atoll__server_teardown(s);
    atoll__client_teardown(net);
    for (struct atoll_conn *c = net->conns; c; c = c->next)
        atoll__conn_teardown(c);
    atoll__connq_clear(&net->ready);
    atoll__connq_clear(&net->hs);
    atoll__connq_clear(&net->bufs.parked);
    atoll__ops_free_dead(iso);
    atoll__stats_unref(net->client_stats);
    net->client_stats = NULL;
    for (uint32_t i = 0; i < net->ntls_ctxs; i++) {
        wolfSSL_CTX_free(net->tls_ctxs[i].ctx);
        atoll_security_context_release(net->tls_ctxs[i].sctx);
    }
    free(net->tls_ctxs);
    atoll_pool_drain(&net->out_pool);
    atoll_pool_drain(&net->out_small_pool);
    /* What the ring holds for the network goes now: no op is live any
     * more, so the buffer ring and the file table are unregistered and
     * freed here; the ring itself closes right after the loop, once no
     * other isolate can still name it (runtime.c, atoll_release_early).
     * Should the kernel refuse an unregister, the memory stays until the
     * ring goes (ring_release frees it then). */
    if (net->bufs.ready && io_uring_unregister_buf_ring(&iso->ring, net->bufs.bgid) == 0) {
        free(net->bufs.base);
        munmap(net->bufs.br, net->bufs.ring_bytes);
        net->bufs.ready = false;
    }
    if (net->files.ready && io_uring_unregister_files(&iso->ring) == 0)
        atoll__files_free(&net->files);
    iso->net_keep = net;
    iso->net = NULL;
}
