/*
 * isolates/server.c: a server socket on one isolate: bind (after an
 * off-loop lookup), pause/resume through the runtime's steering, graceful
 * close, delivery of handshaked connections, teardown. Accepting is in
 * server_accept.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolates/net_private.h"
#include "isolates/op.h"
#include "isolates/user_data.h"
#include "isolates/resolver.h"

typedef struct atoll_stats_block {
    atoll_server_stats stats; /* first: the block is addressed by it */
    uint32_t refs;
    uint32_t live;               /* connections counting here, not yet finished */
    struct atoll_server *server; /* the server while it exists (NULL for clients) */
} atoll_stats_block;

static atoll_stats_block *atoll_block(atoll_server_stats *s)
{
    return (atoll_stats_block *)(void *)s;
}

void atoll__stats_conn_enter(atoll_server_stats *s)
{
    atoll_block(s)->live++;
}

void atoll__stats_conn_leave(atoll_server_stats *s)
{
    atoll_stats_block *b = atoll_block(s);
    /* A draining server ends with its last connection. */
    if (--b->live == 0 && b->server && b->server->drain_deadline_ns)
        atoll__server_maybe_finish(b->server);
}

atoll_server_stats *atoll__stats_ref(atoll_server_stats *s)
{
    ((atoll_stats_block *)(void *)s)->refs++;
    return s;
}

atoll_server_stats *atoll__stats_new(void)
{
    atoll_stats_block *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->refs = 1;
    return &b->stats;
}

void atoll__stats_unref(atoll_server_stats *s)
{
    atoll_stats_block *b = (atoll_stats_block *)(void *)s;
    if (--b->refs == 0)
        free(b);
}

void atoll_server_options_init(atoll_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->handshake_timeout_ms = 10000;
    opts->handshakes_per_turn = 64;
    opts->accepts_per_turn = 128;
}

/* Dart's _protocolsToLengthEncoding rules: each name 1..255 bytes, the
 * encoded list below 2^13. */
static int atoll_alpn_encode(const atoll_server_options *o, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!o->supported_protocols_count)
        return 0;
    if (!o->supported_protocols)
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < o->supported_protocols_count; i++) {
        const char *p = o->supported_protocols[i];
        size_t n = p ? strlen(p) : 0;
        if (n < 1 || n > 255)
            return -EINVAL;
        total += 1 + n;
    }
    if (total >= 8192)
        return -EINVAL;
    uint8_t *w = malloc(total);
    if (!w)
        return -ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < o->supported_protocols_count; i++) {
        size_t n = strlen(o->supported_protocols[i]);
        w[off++] = (uint8_t)n;
        memcpy(w + off, o->supported_protocols[i], n);
        off += n;
    }
    *out = w;
    *out_len = total;
    return 0;
}

static void atoll_server_unlink(struct atoll_server *s)
{
    atoll_net *net = s->iso->net;
    if (s->prev)
        s->prev->next = s->next;
    else
        net->servers = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static void atoll_server_destroy(atoll_obj *o)
{
    struct atoll_server *s = (struct atoll_server *)o;
    atoll_server_unlink(s);
    if (s->backoff_timer)
        atoll_timer_cancel(s->backoff_timer);
    if (s->linger_timer)
        atoll_timer_cancel(s->linger_timer);
    atoll__server_audit_stop(s);
    if (s->wctx)
        atoll__tls_ctx_put(s->iso, s->wctx);
    if (s->sctx)
        atoll_security_context_release(s->sctx);
    atoll_block(s->stats)->server = NULL;
    atoll__stats_unref(s->stats);
    for (uint32_t i = 0; i < s->npend; i++)
        atoll__files_remove(s->iso, &s->iso->net->files, s->pend[i].file);
    free(s->pend);
    free(s->alpn_wire);
    free(s->proxy_allow);
    s->iso->refs--;
    free(s);
}

static const atoll_obj_type atoll_server_type = {
    .name = "server", .issue = atoll__server_issue, .destroy = atoll_server_destroy};

/* Drops the owner's reference once: the server is freed in the free phase,
 * after every callback of the turn returned. */
static void atoll_server_drop_owner(struct atoll_server *s)
{
    if (s->owner_dropped)
        return;
    s->owner_dropped = true;
    atoll__obj_unref(&s->obj);
}

void atoll__server_release_member(struct atoll_server *s)
{
    if (s->member && !s->released) {
        /* SQEs prepared this turn may name the listening descriptor: they
         * reach the kernel before the descriptor can close and be reused. */
        if (io_uring_sq_ready(&s->iso->ring))
            atoll__op_submit(s->iso);
        atoll__server_audit_stop(s);
        atoll__listen_set_state(s->member, ATOLL_MEMBER_RETIRED);
        atoll__listen_release(s->member);
        s->released = true;
        s->member = NULL;
        s->fd = -1;
    }
}

/* Ends a closing server once nothing refers to it any more. */
void atoll__server_maybe_finish(struct atoll_server *s)
{
    if (s->state != ATOLL_SRV_CLOSING || !s->released || s->accepts_armed || s->conns || s->npend ||
        s->lookup_pending || !atoll__connq_empty(&s->held) || s->closed_reported)
        return;
    if (s->drain_deadline_ns && atoll_block(s->stats)->live > 0)
        return; /* drained when its last connection is gone */
    s->closed_reported = true;
    if (s->cb.on_closed)
        s->cb.on_closed(s, s->user);
    atoll_server_drop_owner(s);
}

static void atoll_server_deliver(struct atoll_server *s, struct atoll_conn *c)
{
    c->delivered = true;
    c->server = NULL;
    s->stats->handshakes++;
    atoll_stat_add(&s->iso->stats.net_handshakes, 1);
    if (c->resumed)
        s->stats->resumed++;
    atoll__conn_idle_start(c, s->opts.idle_timeout_ms);
    s->cb.on_connection(s, c, s->user);
    atoll__conn_drain_notify(c); /* delivered while draining: on_drain next */
    /* Write events are on by default: the first one fires next turn. */
    atoll__conn_schedule(c);
}

void atoll__server_conn_done(struct atoll_server *s, struct atoll_conn *c, int status, const char *reason)
{
    s->conns--;
    if (status == 0) {
        if (s->paused && s->state == ATOLL_SRV_STARTED) {
            /* Dart F4: handshakes finishing while paused wait for resume. */
            atoll__connq_push(&s->held, c);
            s->conns++; /* still ours until delivered */
        } else {
            atoll_server_deliver(s, c);
        }
    } else {
        s->stats->handshake_errors++;
        atoll_stat_add(&s->iso->stats.net_handshake_errors, 1);
        if (s->cb.on_error) {
            atoll_server_error e = {.code = status,
                                    .reason = reason ? reason : atoll_strerror(status),
                                    .peer = c->remote,
                                    .peer_port = c->remote_port};
            s->cb.on_error(s, &e, s->user);
        }
    }
    atoll__server_maybe_finish(s);
    atoll__obj_unref(&s->obj); /* the connection's reference */
}

void atoll__server_conn_abandon(struct atoll_server *s)
{
    s->conns--;
    atoll__obj_unref(&s->obj);
}

static void atoll_server_deliver_held(struct atoll_server *s)
{
    struct atoll_conn *c;
    while ((c = atoll__connq_pop(&s->held))) {
        s->conns--;
        if (c->state == ATOLL_CONN_OPEN) /* it may have failed while held */
            atoll_server_deliver(s, c);
        atoll__obj_unref(&c->obj);
    }
}

/* The bind itself, once the address is known. */
static int atoll_server_do_bind(struct atoll_server *s, const atoll_address *addr)
{
    if (s->sctx) {
        int ret = atoll__tls_ctx_for_server(s);
        if (ret < 0)
            return ret;
    }
    atoll_listen_request req = {.address = *addr,
                                .port = s->port_req,
                                .backlog = s->opts.backlog,
                                .v6_only = s->opts.v6_only,
                                .shared = s->opts.shared,
                                .cpu_local = s->iso->opts->steering == ATOLL_STEERING_CPU && s->iso->cpu >= 0,
                                .cpu = s->iso->cpu >= 0 ? (uint32_t)s->iso->cpu : 0};
    int ret = atoll__listen_bind(&req, &s->member, &s->fd, &s->port);
    if (ret < 0)
        return ret;
    s->address = *addr;
    return 0;
}

static void atoll_server_on_resolved(struct atoll_server *s, int status, const atoll_address *addr, bool dropped)
{
    s->lookup_pending = false;
    if (dropped)
        return; /* the isolate is exiting: its teardown reports and releases */
    if (s->state == ATOLL_SRV_CLOSING) {
        s->released = true; /* closed before it was bound: nothing to release */
        atoll__server_maybe_finish(s);
        return;
    }
    if (status == 0)
        status = atoll_server_do_bind(s, addr);
    if (status < 0) {
        s->state = ATOLL_SRV_FAILED;
        if (s->cb.on_bound)
            s->cb.on_bound(s, status, s->user);
        atoll_server_drop_owner(s);
        return;
    }
    s->state = ATOLL_SRV_BOUND;
    if (s->cb.on_bound)
        s->cb.on_bound(s, 0, s->user);
}

/* The lookup held a reference on the server: dropped after the outcome. */
static void atoll_server_resolved(struct atoll_isolate *self, int status, const atoll_address *addr, void *user,
                                  bool dropped)
{
    struct atoll_server *s = user;
    (void)self;
    atoll_server_on_resolved(s, status, addr, dropped);
    atoll__obj_unref(&s->obj);
}

int atoll_server_bind(atoll_isolate *self, const char *address, int port, const atoll_server_options *opts_in,
                      atoll_security_context *ctx, const atoll_server_callbacks *cb, void *user, atoll_server **out)
{
    if (!atoll__on_owner_thread(self))
        return ATOLL_E_WRONG_THREAD;
    atoll_server_options opts;
    if (opts_in)
        opts = *opts_in;
    else
        atoll_server_options_init(&opts);
    /* Argument errors first, before any I/O (Dart A1). */
    if (!address || !*address || port < 0 || port > 65535 || opts.backlog < 0 || opts.backlog > 65535 || !cb ||
        !cb->on_connection || !out)
        return -EINVAL;
    if (self->exiting)
        return ATOLL_E_STOPPED;
    if (opts.require_client_certificate)
        opts.request_client_certificate = true; /* require implies request (Dart H1) */
    if (opts.handshakes_per_turn == 0)
        opts.handshakes_per_turn = 64;
    if (opts.accepts_per_turn == 0)
        opts.accepts_per_turn = 128;
    uint8_t *alpn = NULL;
    size_t alpn_len = 0;
    int ret = atoll_alpn_encode(&opts, &alpn, &alpn_len);
    if (ret < 0)
        return ret;
    opts.supported_protocols = NULL; /* the caller's array is not kept */
    atoll_cidr *allow = NULL;
    size_t allow_n = 0;
    if (opts.proxy_protocol &&
        (ret = atoll__cidr_list_parse(opts.proxy_allow ? opts.proxy_allow : ATOLL_PROXY_ALLOW_DEFAULT, &allow,
                                      &allow_n)) < 0) {
        free(alpn);
        return ret;
    }
    opts.proxy_allow = NULL; /* nor the caller's string */
    atoll_net *net;
    ret = atoll__net_get(self, &net);
    struct atoll_server *s = ret == 0 ? calloc(1, sizeof(*s)) : NULL;
    atoll_stats_block *sb = s ? calloc(1, sizeof(*sb)) : NULL;
    if (!sb) {
        free(s);
        free(alpn);
        free(allow);
        return ret < 0 ? ret : -ENOMEM;
    }
    sb->refs = 1;
    sb->server = s;
    s->stats = &sb->stats;
    atoll__obj_init(&s->obj, &atoll_server_type, self);
    atoll__connq_init(&s->held, ATOLL_CONNQ_HELD);
    s->iso = self;
    s->opts = opts;
    s->alpn_wire = alpn;
    s->alpn_len = alpn_len;
    s->proxy_allow = allow;
    s->proxy_allow_n = allow_n;
    s->cb = *cb;
    s->user = user;
    s->fd = -1;
    s->port_req = port;
    if (ctx) {
        atoll__security_context_acquire(ctx);
        s->sctx = ctx;
    }
    s->next = net->servers;
    if (net->servers)
        net->servers->prev = s;
    net->servers = s;
    self->refs++;
    s->lookup_pending = true;
    atoll__obj_ref(&s->obj); /* the lookup's */
    ret = atoll__resolve(self, address, atoll_server_resolved, s);
    if (ret < 0) {
        s->lookup_pending = false;
        atoll__obj_unref(&s->obj);
        atoll_server_drop_owner(s);
        return ret;
    }
    *out = s;
    return 0;
}

int atoll_server_start(atoll_server *s)
{
    if (!s || !atoll__on_owner_thread(s->iso))
        return s ? ATOLL_E_WRONG_THREAD : -EINVAL;
    if (s->state != ATOLL_SRV_BOUND)
        return ATOLL_E_STATE;
    int ret = atoll__listen_set_state(s->member, ATOLL_MEMBER_ACTIVE);
    if (ret < 0)
        return ret;
    s->state = ATOLL_SRV_STARTED;
    atoll__server_rearm(s);
    atoll__server_audit_start(s);
    return 0;
}

int atoll__server_steer(struct atoll_server *s)
{
    if (s->state != ATOLL_SRV_STARTED)
        return 0;
    bool away = s->paused || s->capped;
    if (away == s->steered_away)
        return 0;
    int ret = atoll__listen_set_state(s->member, away ? ATOLL_MEMBER_PAUSED : ATOLL_MEMBER_ACTIVE);
    if (ret == 0)
        s->steered_away = away;
    return ret;
}

int atoll_server_pause(atoll_server *s)
{
    if (!s || !atoll__on_owner_thread(s->iso))
        return s ? ATOLL_E_WRONG_THREAD : -EINVAL;
    if (s->state != ATOLL_SRV_STARTED)
        return ATOLL_E_STATE;
    if (s->paused)
        return 0;
    /* Accept stays armed: it takes only what was queued before the pause,
     * and those connections are handshaked and held until resume. */
    s->paused = true;
    int ret = atoll__server_steer(s);
    if (ret < 0)
        s->paused = false;
    return ret;
}

int atoll_server_resume(atoll_server *s)
{
    if (!s || !atoll__on_owner_thread(s->iso))
        return s ? ATOLL_E_WRONG_THREAD : -EINVAL;
    if (s->state != ATOLL_SRV_STARTED)
        return ATOLL_E_STATE;
    if (!s->paused)
        return 0;
    s->paused = false;
    int ret = atoll__server_steer(s); /* still away while at the connection cap */
    if (ret < 0) {
        s->paused = true;
        return ret;
    }
    atoll_server_deliver_held(s);
    return 0;
}

/* Close and drain begin alike: CLOSING, and what a pause held is delivered.
 * False when the bind had not resolved yet (the lookup's return finishes). */
static bool atoll_server_begin_close(struct atoll_server *s)
{
    atoll_server_state was = s->state;
    s->state = ATOLL_SRV_CLOSING;
    if (was == ATOLL_SRV_RESOLVING)
        return false;
    s->paused = false;
    atoll_server_deliver_held(s);
    return true;
}

int atoll_server_close(atoll_server *s)
{
    if (!s || !atoll__on_owner_thread(s->iso))
        return s ? ATOLL_E_WRONG_THREAD : -EINVAL;
    if (s->state == ATOLL_SRV_CLOSING || s->state == ATOLL_SRV_FAILED)
        return 0;
    if (!atoll_server_begin_close(s))
        return 0;
    if (atoll__listen_live_siblings(s->member) > 0) {
        /* Others serve the tuple: steer away now, keep accepting what is
         * already queued here (and what completes its handshake into our
         * queue shortly), then give the socket back. No client is reset. */
        atoll__listen_set_state(s->member, ATOLL_MEMBER_RETIRED);
        atoll__server_retire(s);
    } else {
        /* The last one: like Dart's last close, the socket goes now and the
         * registry forgets the tuple synchronously (Dart C10, stricter). The
         * cancel is submitted first so the kernel drops its reference. */
        atoll__server_cancel_accept(s);
        atoll__server_release_member(s); /* submits the cancel first */
    }
    atoll__server_maybe_finish(s);
    return 0;
}

int atoll__server_drain(struct atoll_server *s, uint64_t deadline_ns)
{
    if (s->state == ATOLL_SRV_CLOSING || s->state == ATOLL_SRV_FAILED)
        return ATOLL_E_STATE;
    s->drain_deadline_ns = deadline_ns;
    /* Its connections, delivered, held or handshaking, share its counters. */
    for (struct atoll_conn *c = s->iso->net->conns; c; c = c->next)
        if (c->stats == s->stats)
            atoll__conn_drain(c, deadline_ns);
    if (!atoll_server_begin_close(s))
        return 0;
    /* Unlike close, also as the group's last live member: the registry
     * then has every member drop new SYNs, and this one keeps accepting
     * what is queued or completing until it goes quiet (the linger), so
     * no client that reached the queue is reset. */
    atoll__listen_set_state(s->member, ATOLL_MEMBER_RETIRED);
    atoll__server_retire(s);
    atoll__server_maybe_finish(s);
    return 0;
}

int atoll_server_drain(atoll_server *s, uint64_t timeout_ms)
{
    if (!s)
        return -EINVAL;
    if (!atoll__on_owner_thread(s->iso))
        return ATOLL_E_WRONG_THREAD;
    return atoll__server_drain(s, atoll__drain_deadline(s->iso, timeout_ms));
}

uint16_t atoll_server_port(const atoll_server *s)
{
    return s->port;
}

const atoll_address *atoll_server_address(const atoll_server *s)
{
    return &s->address;
}

atoll_isolate *atoll_server_isolate(const atoll_server *s)
{
    return s->iso;
}

void atoll_server_stats_get(const atoll_server *s, atoll_server_stats *out)
{
    *out = *s->stats;
}

void atoll__server_teardown(struct atoll_server *s)
{
    /* A lookup still out will never answer (the inbox is closed): its
     * reference goes here. */
    if (s->lookup_pending) {
        s->lookup_pending = false;
        atoll__obj_unref(&s->obj);
    }
    atoll__connq_clear(&s->held);
    atoll__server_release_member(s);
    /* Isolate exit: the application hears on_closed once, to release; a
     * close from inside it finds the server closing and does nothing. */
    bool report = !s->closed_reported && s->state != ATOLL_SRV_FAILED;
    s->state = ATOLL_SRV_CLOSING;
    if (report && s->cb.on_closed) {
        s->closed_reported = true;
        s->cb.on_closed(s, s->user);
    }
    s->closed_reported = true;
    atoll_server_drop_owner(s);
}
