/*
 * isolates/client.c: outgoing connections (atoll_connect): lookup off the
 * loop, connect on the ring, TLS client handshake over the same connection
 * machinery as the server side, and session export for resumption.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolates/net_private.h"
#include "isolates/op.h"
#include "isolates/resolver.h"

struct atoll_connect_req {
    atoll_obj obj; /* first: user_data payloads point here */
    struct atoll_isolate *iso;
    atoll_connect_fn cb;
    void *user;
    bool secure, insecure;
    atoll_security_context *sctx;
    char *ca_file;
    char *server_name;
    char *alpn_csv;
    WOLFSSL_SESSION *resume;
    uint32_t timeout_ms;
    char host[256];
    int port;
    int fd;
    bool lookup_pending, connecting, done;
    bool connect_wanted, cancel_wanted, owner_dropped;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    atoll_address remote;
    atoll_timer *timer;
    struct atoll_conn *conn; /* while handshaking */
    struct atoll_connect_req *next, *prev;
};

/* One client wolfSSL context per (security context, CA file, insecure) per
 * isolate, built on first use. */
struct atoll_client_ctx {
    atoll_security_context *sctx;
    char *ca_file;
    bool insecure;
    WOLFSSL_CTX *ctx;
    struct atoll_client_ctx *next;
};

void atoll_connect_options_init(atoll_connect_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->timeout_ms = 10000;
}

static void atoll_req_unlink(struct atoll_connect_req *req)
{
    atoll_net *net = req->iso->net;
    if (req->prev)
        req->prev->next = req->next;
    else
        net->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
}

static void atoll_req_destroy(atoll_obj *o)
{
    struct atoll_connect_req *req = (struct atoll_connect_req *)o;
    atoll_req_unlink(req);
    if (req->timer)
        atoll_timer_cancel(req->timer);
    if (req->fd >= 0)
        close(req->fd); /* no op is live: the last reference is gone */
    if (req->sctx)
        atoll_security_context_release(req->sctx);
    if (req->resume)
        wolfSSL_SESSION_free(req->resume);
    free(req->ca_file);
    free(req->server_name);
    free(req->alpn_csv);
    req->iso->refs--;
    free(req);
}

static void atoll_req_issue(atoll_obj *o);

static const atoll_obj_type atoll_req_type = {
    .name = "connect request", .issue = atoll_req_issue, .destroy = atoll_req_destroy};

/* Reported: the owner's reference goes; the lookup, the connect op or the
 * handshaking connection may still hold theirs. */
static void atoll_req_release(struct atoll_connect_req *req)
{
    if (req->done && !req->owner_dropped) {
        req->owner_dropped = true;
        atoll__obj_unref(&req->obj);
    }
}

static void atoll_req_cancel_connect(struct atoll_connect_req *req)
{
    req->cancel_wanted = true;
    if (!req->connecting)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&req->obj, &sqe, 1) < 0)
        return;
    io_uring_prep_cancel64(sqe, atoll_ud_make(ATOLL_UD_CONNECT, (uintptr_t)&req->obj), 0);
    atoll__op_start(req->iso, sqe, ATOLL_UD_CANCEL, NULL);
    req->cancel_wanted = false;
}

static void atoll_req_start_connect(struct atoll_connect_req *req)
{
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&req->obj, &sqe, 1) < 0) {
        req->connect_wanted = true;
        return;
    }
    req->connect_wanted = false;
    io_uring_prep_connect(sqe, req->fd, (struct sockaddr *)&req->addr, req->addr_len);
    atoll__op_start(req->iso, sqe, ATOLL_UD_CONNECT, &req->obj);
    req->connecting = true;
}

static void atoll_req_issue(atoll_obj *o)
{
    struct atoll_connect_req *req = (struct atoll_connect_req *)o;
    if (req->connect_wanted && !req->done)
        atoll_req_start_connect(req);
    else if (req->connect_wanted)
        req->connect_wanted = false; /* timed out meanwhile: destroy closes the socket */
    if (req->cancel_wanted)
        atoll_req_cancel_connect(req);
}

static void atoll_req_report(struct atoll_connect_req *req, struct atoll_conn *c, int status)
{
    if (req->done) {
        /* Timed out earlier: the caller already heard; drop the connection. */
        if (c)
            atoll_conn_close(c);
        return;
    }
    req->done = true;
    if (req->timer) {
        atoll_timer_cancel(req->timer);
        req->timer = NULL;
    }
    if (c) {
        c->delivered = true;
        c->client = NULL;
    }
    req->cb(c, status, req->user);
    if (c) {
        atoll__conn_drain_notify(c); /* delivered while draining: on_drain next */
        atoll__conn_schedule(c);     /* first write event, data that came early */
    }
}

void atoll__client_done(struct atoll_connect_req *req, struct atoll_conn *c, int status)
{
    /* The handshaking connection's link held a reference on the request. */
    bool linked = req->conn != NULL;
    if (req->conn) {
        req->conn->client = NULL;
        req->conn = NULL;
    }
    atoll_req_report(req, c, status);
    atoll_req_release(req);
    if (linked)
        atoll__obj_unref(&req->obj);
}

static void atoll_req_timeout(atoll_timer *t, void *user)
{
    struct atoll_connect_req *req = user;
    (void)t;
    req->timer = NULL;
    if (req->conn) {
        atoll__conn_fail(req->conn, ATOLL_E_TIMEDOUT); /* reports through client_done */
        return;
    }
    if (req->connecting)
        atoll_req_cancel_connect(req);
    atoll__client_done(req, NULL, ATOLL_E_TIMEDOUT);
}

static struct atoll_client_ctx *atoll_client_ctx_get(struct atoll_connect_req *req, int *err)
{
    atoll_net *net = req->iso->net;
    for (struct atoll_client_ctx *e = net->client_ctxs; e; e = e->next)
        if (e->sctx == req->sctx && e->insecure == req->insecure &&
            ((!e->ca_file && !req->ca_file) || (e->ca_file && req->ca_file && !strcmp(e->ca_file, req->ca_file))))
            return e;
    struct atoll_client_ctx *e = calloc(1, sizeof(*e));
    if (!e) {
        *err = -ENOMEM;
        return NULL;
    }
    *err = atoll__tls_client_ctx_new(req->sctx, req->ca_file, &e->ctx);
    if (*err < 0) {
        free(e);
        return NULL;
    }
    atoll__tls_set_io(e->ctx);
    if (req->sctx) {
        atoll__security_context_acquire(req->sctx);
        e->sctx = req->sctx;
    }
    e->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
    e->insecure = req->insecure;
    e->next = net->client_ctxs;
    net->client_ctxs = e;
    return e;
}

static void atoll_client_ctxs_free(atoll_net *net)
{
    while (net->client_ctxs) {
        struct atoll_client_ctx *e = net->client_ctxs;
        net->client_ctxs = e->next;
        wolfSSL_CTX_free(e->ctx);
        if (e->sctx)
            atoll_security_context_release(e->sctx);
        free(e->ca_file);
        free(e);
    }
}

static int atoll_tls_client_init(struct atoll_conn *c)
{
    struct atoll_connect_req *req = c->client;
    int err = 0;
    struct atoll_client_ctx *e = atoll_client_ctx_get(req, &err);
    if (!e)
        return err;
    c->ssl = wolfSSL_new(e->ctx);
    if (!c->ssl)
        return -ENOMEM;
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    const char *name = req->server_name;
    if (name && *name)
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name));
    if (req->insecure) {
        wolfSSL_set_verify(c->ssl, WOLFSSL_VERIFY_NONE, NULL);
    } else {
        wolfSSL_set_verify(c->ssl, WOLFSSL_VERIFY_PEER, NULL);
        if (name && *name)
            wolfSSL_check_domain_name(c->ssl, name);
    }
    if (req->alpn_csv)
        wolfSSL_UseALPN(c->ssl, req->alpn_csv, (unsigned)strlen(req->alpn_csv), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    if (req->resume)
        wolfSSL_set_session(c->ssl, req->resume);
    return 0;
}

void atoll__connect_cqe(struct atoll_connect_req *req, const struct io_uring_cqe *cqe)
{
    req->connecting = false;
    int fd = req->fd;
    req->fd = -1;
    if (req->done || cqe->res < 0) {
        close(fd); /* the connect op has ended: nothing refers to it any more */
        if (!req->done)
            atoll__client_done(req, NULL, cqe->res == -ECANCELED ? ATOLL_E_TIMEDOUT : cqe->res);
        return;
    }
    /* Connected: read the local address while it is a process descriptor,
     * then move the socket into the isolate's direct-descriptor table. */
    atoll_net *net = req->iso->net;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    bool have_local = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0;
    uint32_t file;
    int ret = atoll__files_get(&net->files, &file);
    if (ret == 0 && !atoll__files_charge(&net->files, file)) {
        atoll__files_put(&net->files, file);
        ret = ATOLL_E_CONN_CAP; /* the runtime-wide cap, reached since the get */
    }
    if (ret < 0) {
        close(fd);
        atoll__client_done(req, NULL, ret);
        return;
    }
    ret = atoll__files_install(req->iso, &net->files, file, fd); /* closes fd */
    if (ret < 0) {
        atoll__client_done(req, NULL, ret);
        return;
    }
    struct atoll_conn *c = atoll__conn_alloc(req->iso, (int)file, net->client_stats);
    if (!c) {
        atoll__files_remove(req->iso, &net->files, file);
        atoll__client_done(req, NULL, -ENOMEM);
        return;
    }
    c->client = req;
    req->conn = c;
    atoll__obj_ref(&req->obj); /* the link's; client_done drops it */
    c->remote = req->remote;
    c->remote_port = (uint16_t)req->port;
    memset(&c->local, 0, sizeof(c->local));
    if (have_local)
        atoll__sockaddr_to_address(&ss, &c->local, &c->local_port);
    if (!req->secure) {
        c->state = ATOLL_CONN_OPEN;
        atoll__conn_arm_recv(c);
        atoll__client_done(req, c, 0);
        return;
    }
    c->tls = true;
    c->state = ATOLL_CONN_HANDSHAKE;
    ret = atoll_tls_client_init(c);
    if (ret < 0) {
        atoll__conn_fail(c, ret);
        return;
    }
    atoll__conn_arm_recv(c);
    atoll__tls_handshake_step(c); /* sends the ClientHello */
}

static void atoll_req_on_resolved(struct atoll_connect_req *req, int status, const atoll_address *addr);

/* The lookup held a reference on the request: dropped after the outcome
 * (dropped: the isolate is exiting, and its teardown reports). */
static void atoll_req_resolved(struct atoll_isolate *self, int status, const atoll_address *addr, void *user,
                               bool dropped)
{
    struct atoll_connect_req *req = user;
    req->lookup_pending = false;
    if (!dropped && !req->done)
        atoll_req_on_resolved(req, status, addr);
    atoll__obj_unref(&req->obj); /* the lookup's */
}

static void atoll_req_on_resolved(struct atoll_connect_req *req, int status, const atoll_address *addr)
{
    if (status < 0) {
        atoll__client_done(req, NULL, status);
        return;
    }
    req->remote = *addr;
    memset(&req->addr, 0, sizeof(req->addr));
    if (addr->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&req->addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)req->port);
        memcpy(&in->sin_addr, addr->bytes, 4);
        req->addr_len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&req->addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)req->port);
        memcpy(&in6->sin6_addr, addr->bytes, 16);
        req->addr_len = sizeof(*in6);
    }
    req->fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (req->fd < 0) {
        atoll__client_done(req, NULL, -errno);
        return;
    }
    atoll_req_start_connect(req);
}

static int atoll_alpn_csv(const atoll_connect_options *o, char **out)
{
    *out = NULL;
    if (!o->alpn_count)
        return 0;
    if (!o->alpn)
        return -EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < o->alpn_count; i++) {
        size_t n = o->alpn[i] ? strlen(o->alpn[i]) : 0;
        if (n < 1 || n > 255 || strchr(o->alpn[i], ','))
            return -EINVAL;
        total += n + 1;
    }
    if (total > 8192)
        return -EINVAL;
    char *csv = malloc(total);
    if (!csv)
        return -ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < o->alpn_count; i++) {
        size_t n = strlen(o->alpn[i]);
        if (off)
            csv[off++] = ',';
        memcpy(csv + off, o->alpn[i], n);
        off += n;
    }
    csv[off] = '\0';
    *out = csv;
    return 0;
}

int atoll_connect(atoll_isolate *self, const char *host, int port, const atoll_connect_options *opts_in,
                  atoll_connect_fn cb, void *user)
{
    if (!atoll__on_owner_thread(self))
        return ATOLL_E_WRONG_THREAD;
    atoll_connect_options opts;
    if (opts_in)
        opts = *opts_in;
    else
        atoll_connect_options_init(&opts);
    if (!host || !*host || strlen(host) >= 256 || port < 1 || port > 65535 || !cb)
        return -EINVAL;
    if (self->exiting)
        return ATOLL_E_STOPPED;
    char *csv = NULL;
    int ret = atoll_alpn_csv(&opts, &csv);
    if (ret < 0)
        return ret;
    atoll_net *net;
    ret = atoll__net_get(self, &net);
    struct atoll_connect_req *req = ret == 0 ? calloc(1, sizeof(*req)) : NULL;
    if (!req) {
        free(csv);
        return ret < 0 ? ret : -ENOMEM;
    }
    atoll__obj_init(&req->obj, &atoll_req_type, self);
    req->iso = self;
    req->cb = cb;
    req->user = user;
    req->secure = opts.secure;
    req->insecure = opts.insecure;
    req->alpn_csv = csv;
    req->fd = -1;
    req->port = port;
    req->timeout_ms = opts.timeout_ms;
    snprintf(req->host, sizeof(req->host), "%s", host);
    atoll_address probe;
    if (opts.server_name)
        req->server_name = strdup(opts.server_name);
    else if (atoll_address_parse(host, &probe) != 0)
        req->server_name = strdup(host); /* a name: SNI and name check */
    if (opts.ca_file)
        req->ca_file = strdup(opts.ca_file);
    if (opts.context) {
        atoll__security_context_acquire(opts.context);
        req->sctx = opts.context;
    }
    if (opts.resume)
        req->resume = wolfSSL_SESSION_dup((WOLFSSL_SESSION *)(uintptr_t)opts.resume);
    req->next = net->reqs;
    if (net->reqs)
        net->reqs->prev = req;
    net->reqs = req;
    self->refs++;
    if (opts.timeout_ms)
        atoll_timer_start(self, opts.timeout_ms, 0, atoll_req_timeout, req, &req->timer);
    req->lookup_pending = true;
    atoll__obj_ref(&req->obj); /* the lookup's */
    ret = atoll__resolve(self, host, atoll_req_resolved, req);
    if (ret < 0) {
        req->lookup_pending = false;
        req->done = true; /* the caller hears through the return value */
        atoll__obj_unref(&req->obj);
        atoll_req_release(req);
        return ret;
    }
    return 0;
}

/* Isolate exit, after the op layer reaped every op: requests still
 * pending hear ATOLL_E_STOPPED. */
void atoll__client_teardown(atoll_net *net)
{
    for (struct atoll_connect_req *req = net->reqs; req; req = req->next) {
        if (req->lookup_pending) { /* it will never answer: the inbox is closed */
            req->lookup_pending = false;
            atoll__obj_unref(&req->obj);
        }
        if (req->conn)
            atoll__client_done(req, NULL, ATOLL_E_STOPPED); /* unlinks the connection */
        else
            atoll_req_report(req, NULL, ATOLL_E_STOPPED);
        req->done = true;
        atoll_req_release(req);
    }
    atoll_client_ctxs_free(net);
}

atoll_session *atoll_conn_session(atoll_conn *c)
{
    if (!c || !c->ssl || !c->tls)
        return NULL;
    return (atoll_session *)wolfSSL_get1_session(c->ssl);
}

void atoll_session_free(atoll_session *s)
{
    if (s)
        wolfSSL_SESSION_free((WOLFSSL_SESSION *)s);
}
