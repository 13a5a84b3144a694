/*
 * tests/fuzz/standin.c: the stand-in isolate of the TLS fuzz targets (see
 * standin.h): no ring, no socket; this file plays the kernel's part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base/tls_context.h"
#include "standin.h"

struct atoll_isolate standin_iso;
bool standin_debug;

static atoll_net net;
static atoll_ticket_keys tickets;
static uint16_t kernel_head; /* next buffer the "kernel" takes from the ring */

/* Servers live as long as the process: this reference is never dropped,
 * so the type needs no functions. */
static const atoll_obj_type standin_server_type = {.name = "fuzz server"};

__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t outcomes[4096];

void standin_outcome(const char *text, uint32_t a, uint32_t b)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = text; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = ((h ^ a) * 16777619u ^ b) * 16777619u;
    outcomes[h % sizeof(outcomes)]++;
}

static void fail(const char *what)
{
    fprintf(stderr, "standin: setup: %s\n", what);
    abort();
}

/* What atoll__net_get would build, without a ring; fields left zero mean
 * "off" (no idle timeout, no drain, no timers). Follow atoll__net_get when
 * it gains state that needs initialising. */
void standin_setup(void)
{
    standin_debug = getenv("ATOLL_FUZZ_DEBUG") != NULL;
    struct atoll_isolate *iso = &standin_iso;
    iso->ops.closed = true; /* no SQE is ever taken */
    iso->ring.ring_fd = iso->ring.enter_ring_fd = -1;
    iso->tickets = &tickets;
    iso->net = &net;
    atoll__set_current(iso);
    atoll__connq_init(&net.ready, ATOLL_CONNQ_READY);
    atoll__connq_init(&net.hs, ATOLL_CONNQ_HANDSHAKE);
    atoll__connq_init(&net.bufs.parked, ATOLL_CONNQ_PARKED);

    atoll_bufring *b = &net.bufs;
    b->count = STANDIN_RECV_BUFFERS;
    b->size = STANDIN_RECV_BUFFER_SIZE;
    b->mask = (uint32_t)io_uring_buf_ring_mask(STANDIN_RECV_BUFFERS);
    b->ring_bytes = STANDIN_RECV_BUFFERS * sizeof(struct io_uring_buf);
    b->br = aligned_alloc(4096, 4096);
    b->base = malloc((size_t)STANDIN_RECV_BUFFERS * STANDIN_RECV_BUFFER_SIZE);
    if (!b->br || !b->base)
        fail("buffer ring");
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < STANDIN_RECV_BUFFERS; i++)
        io_uring_buf_ring_add(b->br, b->base + (size_t)i * b->size, b->size, (unsigned short)i, (int)b->mask, (int)i);
    io_uring_buf_ring_advance(b->br, (int)STANDIN_RECV_BUFFERS);
    b->free = STANDIN_RECV_BUFFERS;
    b->share = STANDIN_RECV_SHARE;
    b->ready = true;
    if (atoll__ticket_keys_init(&tickets, 3600) != 0)
        fail("ticket keys");
}

static void load(atoll_security_context *ctx, const char *name, int which)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/certs/%s", ATOLL_FUZZ_DIR, name);
    int rc;
    if (which == 0)
        rc = atoll_security_context_use_certificate_chain_file(ctx, path, ATOLL_ENCODING_PEM);
    else if (which == 1)
        rc = atoll_security_context_use_private_key_file(ctx, path, ATOLL_ENCODING_PEM, NULL);
    else
        rc = atoll_security_context_set_trusted_certificates_file(ctx, path, ATOLL_ENCODING_PEM);
    if (rc != 0) {
        fprintf(stderr, "standin: %s: %s\n", path, atoll_security_context_last_error(ctx));
        abort();
    }
}

atoll_security_context *standin_security_context(void)
{
    atoll_security_context *sctx;
    if (atoll_security_context_new(&sctx) != 0)
        fail("security context");
    load(sctx, "server_chain.pem", 0);
    load(sctx, "server_key.pem", 1);
    load(sctx, "client_authority.pem", 2);
    return sctx;
}

static void on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    (void)server, (void)user;
    standin_outcome(e->reason ? e->reason : "", (uint32_t)e->code, 0);
    if (standin_debug)
        fprintf(stderr, "standin: handshake failed: %s: %s\n", atoll_error_name(e->code), e->reason);
}

void standin_server_init(struct atoll_server *s, atoll_security_context *sctx, const atoll_server_options *opts,
                         const uint8_t *alpn_wire, size_t alpn_len, const atoll_server_callbacks *cb, void *user)
{
    atoll__obj_init(&s->obj, &standin_server_type, &standin_iso);
    s->iso = &standin_iso;
    s->state = ATOLL_SRV_STARTED;
    s->sctx = sctx;
    s->stats = atoll__stats_new();
    s->opts = *opts;
    s->opts.handshake_timeout_ms = 0; /* no timer: time is not an input */
    s->alpn_wire = (uint8_t *)(uintptr_t)alpn_wire;
    s->alpn_len = alpn_len;
    s->cb = *cb;
    if (!s->cb.on_error)
        s->cb.on_error = on_error;
    s->user = user;
    atoll__connq_init(&s->held, ATOLL_CONNQ_HELD);
    if (!s->stats || atoll__tls_ctx_for_server(s) != 0)
        fail("server context");
}

struct atoll_conn *standin_accept(struct atoll_server *s)
{
    struct sockaddr_storage peer = {.ss_family = AF_INET};
    struct atoll_conn *c;
    /* Slot 0 of a table that does not exist: standin_close empties the
     * descriptor before destroy would hand it back. */
    if (atoll__conn_new(s, 0, &peer, &c) != 0)
        abort();
    atoll__obj_ref(&c->obj); /* the caller's, so `c` outlives its close within the input */
    return c;
}

bool standin_recv_armed(const struct atoll_conn *c)
{
    return (c->state == ATOLL_CONN_HANDSHAKE || c->state == ATOLL_CONN_OPEN) && !c->recv_eof && !c->paused &&
           !c->shut_rd && c->seg_count < net.bufs.share;
}

static bool ring_empty(void)
{
    return kernel_head == io_uring_smp_load_acquire(&net.bufs.br->tail);
}

/* The kernel completes the connection's receive: `len` bytes in the next
 * buffer of the ring (len 0: EOF), or -ENOBUFS when the ring is empty. */
static void complete_recv(struct atoll_conn *c, const uint8_t *data, size_t len)
{
    struct io_uring_cqe cqe = {.user_data = atoll_ud_make(ATOLL_UD_RECV, (uintptr_t)&c->obj)};
    if (len > 0 && ring_empty()) {
        cqe.res = -ENOBUFS;
    } else if (len > 0) {
        struct io_uring_buf *buf = &net.bufs.br->bufs[kernel_head & net.bufs.mask];
        kernel_head++;
        if (len > buf->len)
            abort(); /* callers cut at the buffer size */
        memcpy((void *)(uintptr_t)buf->addr, data, len);
        cqe.res = (int)len;
        cqe.flags = IORING_CQE_F_BUFFER | ((uint32_t)buf->bid << IORING_CQE_BUFFER_SHIFT);
    }
    atoll__net_cqe(&standin_iso, &cqe);
}

size_t standin_feed(struct atoll_conn *c, const uint8_t *data, size_t len, size_t seg)
{
    if (seg == 0 || seg > STANDIN_RECV_BUFFER_SIZE)
        seg = STANDIN_RECV_BUFFER_SIZE;
    size_t off = 0;
    while (off < len && standin_recv_armed(c)) {
        size_t n = len - off < seg ? len - off : seg;
        bool empty = ring_empty();
        complete_recv(c, data + off, n);
        if (!empty)
            off += n;
        standin_turn();
        if (empty && ring_empty())
            break; /* parked and nothing came back: the peer waits, as TCP would make it */
    }
    return off;
}

void standin_eof(struct atoll_conn *c)
{
    if (standin_recv_armed(c)) {
        complete_recv(c, NULL, 0);
        standin_turn();
    }
}

size_t standin_send(struct atoll_conn *c, uint8_t *dst, size_t cap)
{
    size_t done = 0;
    /* What atoll__conn_kick_send would hand the ring, were it open. */
    while (!c->send_inflight && c->out && c->out_len && c->state != ATOLL_CONN_DEAD && done < cap) {
        uint32_t to_end = c->out_cap - c->out_head;
        uint32_t n = c->out_len < to_end ? c->out_len : to_end;
        if (n > cap - done)
            n = (uint32_t)(cap - done);
        c->send_len = n;
        c->send_inflight = true;
        memcpy(dst + done, c->out + c->out_head, n);
        done += n;
        struct io_uring_cqe cqe = {.user_data = atoll_ud_make(ATOLL_UD_SEND, (uintptr_t)&c->obj), .res = (int)n};
        atoll__net_cqe(&standin_iso, &cqe);
    }
    return done;
}

uint64_t standin_turns;

void standin_turn(void)
{
    standin_turns++;
    standin_iso.more_work = false;
    atoll_stat_add(&standin_iso.stats.loop_turns, 1);
    atoll__net_turn(&standin_iso);
    atoll__ops_free_dead(&standin_iso);
}

void standin_settle(void)
{
    unsigned i;
    for (i = 0; i < STANDIN_MAX_TURNS && standin_iso.more_work; i++)
        standin_turn();
    if (standin_debug && i == STANDIN_MAX_TURNS) { /* a connection that keeps itself scheduled */
        struct atoll_conn *c = net.ready.head;
        fprintf(stderr, "standin: settle hit the limit; ready head %p state %d avail %zu segs %u\n", (void *)c,
                c ? (int)c->state : -1, c ? atoll_conn_available(c) : 0, c ? c->seg_count : 0);
    }
}

void standin_close(struct atoll_conn *c, struct atoll_server *s)
{
    c->fd = -1; /* the slot was never installed: destroy must not empty it */
    atoll__conn_teardown(c);
    atoll__connq_clear(&net.ready);
    atoll__connq_clear(&net.hs);
    atoll__connq_clear(&net.bufs.parked);
    atoll__obj_unref(&c->obj);
    atoll__ops_free_dead(&standin_iso);
    if (net.conns || net.bufs.free != STANDIN_RECV_BUFFERS || s->conns != 0 || s->obj.refs != 1) {
        fprintf(stderr, "standin: state left behind: conns %p, buffers %u/%u, server conns %u refs %u\n",
                (void *)net.conns, net.bufs.free, STANDIN_RECV_BUFFERS, s->conns, s->obj.refs);
        abort();
    }
}
