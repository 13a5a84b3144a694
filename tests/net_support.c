/* tests/net_support.c: see net_support.h. */
#include "net_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void ns_app_init(ns_app *app, atoll_runtime *rt)
{
    memset(app, 0, sizeof(*app));
    app->rt = rt;
    app->echo = true;
    app->autostart = true;
    atoll_server_options_init(&app->opts);
    sup_latch_init(&app->conn_closed);
}

/* Echo with backpressure: what the connection cannot take now waits in
 * `pend` with reading paused, and goes out on the next write event. */
typedef struct ns_conn {
    ns_app *app;
    uint8_t pend[4096];
    size_t pend_len, pend_off;
} ns_conn;

static bool ns_flush(atoll_conn *c, ns_conn *nc)
{
    while (nc->pend_off < nc->pend_len) {
        ssize_t w = atoll_conn_write(c, nc->pend + nc->pend_off, nc->pend_len - nc->pend_off);
        if (w <= 0) {
            atoll_conn_set_write_events(c, true);
            return false;
        }
        nc->pend_off += (size_t)w;
    }
    nc->pend_len = nc->pend_off = 0;
    return true;
}

/* True once the isolate of `c` has met an empty receive-buffer ring. */
static bool ns_ring_ran_dry(ns_app *app, atoll_conn *c)
{
    atoll_isolate_stats st;
    if (atoll_runtime_isolate_stats(app->rt, atoll_isolate_id(atoll_conn_isolate(c)), &st) != 0)
        return true;
    return st.recv_enobufs > 0;
}

static void ns_on_read(atoll_conn *c, void *user)
{
    ns_conn *nc = user;
    if (nc->app->hold_until_enobufs && !ns_ring_ran_dry(nc->app, c))
        return; /* level-style: on_read comes again next turn */
    if (!ns_flush(c, nc))
        return;
    for (;;) {
        ssize_t n = atoll_conn_read(c, nc->pend, sizeof(nc->pend));
        if (n <= 0)
            break;
        nc->pend_len = (size_t)n;
        nc->pend_off = 0;
        if (!ns_flush(c, nc)) {
            atoll_conn_pause(c);
            return;
        }
    }
}

static void ns_on_write(atoll_conn *c, void *user)
{
    ns_conn *nc = user;
    if (ns_flush(c, nc)) {
        atoll_conn_resume(c);
        ns_on_read(c, user);
    }
}

static void ns_on_read_http(atoll_conn *c, void *user)
{
    (void)user;
    char buf[4096];
    while (atoll_conn_read(c, buf, sizeof(buf)) > 0)
        ;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
    atoll_conn_write(c, resp, sizeof(resp) - 1);
    atoll_conn_close(c);
}

static void ns_on_read_closed(atoll_conn *c, void *user)
{
    ns_conn *nc = user;
    if (nc->pend_len == 0)
        atoll_conn_shutdown(c, ATOLL_SHUT_SEND);
    else
        atoll_conn_close(c); /* close flushes what is pending */
}

static void ns_on_closed(atoll_conn *c, int status, void *user)
{
    ns_conn *nc = user;
    ns_app *app = nc->app;
    free(nc);
    (void)c;
    (void)status;
    atomic_fetch_add(&app->conns_closed, 1);
    sup_latch_signal(&app->conn_closed);
}

static void ns_on_bound(atoll_server *server, int status, void *user)
{
    ns_server *s = user;
    s->bound_status = status;
    if (status == 0) {
        s->port = atoll_server_port(server);
        s->address = *atoll_server_address(server);
        if (s->app->autostart) {
            int rc = atoll_server_start(server);
            SUP_CHECK(rc == 0, "start: %d", rc);
        }
    } else {
        s->server = NULL;
    }
    sup_latch_signal(&s->bound);
}

static void ns_on_connection(atoll_server *server, atoll_conn *c, void *user)
{
    ns_server *s = user;
    if (atoll_conn_isolate(c) != atoll_server_isolate(server) || atoll_isolate_id(atoll_isolate_current()) != s->iso_id)
        atomic_fetch_add(&s->wrong_isolate, 1);
    const char *alpn = atoll_conn_selected_protocol(c);
    snprintf(s->alpn, sizeof(s->alpn), "%s", alpn ? alpn : "");
    const atoll_certificate *cert = atoll_conn_peer_certificate(c);
    snprintf(s->peer_subject, sizeof(s->peer_subject), "%s", cert ? atoll_certificate_subject(cert) : "");
    snprintf(s->peer_issuer, sizeof(s->peer_issuer), "%s", cert ? atoll_certificate_issuer(cert) : "");
    uint16_t peer_port = 0;
    const atoll_address *peer = atoll_conn_remote_address(c, &peer_port);
    snprintf(s->last_peer, sizeof(s->last_peer), "%s", peer ? peer->text : "");
    atomic_store(&s->last_peer_port, peer_port);
    if (atoll_conn_resumed(c))
        atomic_fetch_add(&s->resumed, 1);
    atomic_fetch_add(&s->connections, 1);
    static const atoll_conn_callbacks cb = {
        .on_read = ns_on_read, .on_write = ns_on_write, .on_read_closed = ns_on_read_closed, .on_closed = ns_on_closed};
    static const atoll_conn_callbacks http_cb = {.on_read = ns_on_read_http, .on_closed = ns_on_closed};
    ns_conn *nc = calloc(1, sizeof(*nc));
    SUP_CHECK(nc != NULL, "calloc");
    nc->app = s->app;
    atoll_conn_set_callbacks(c, s->app->http ? &http_cb : &cb, nc);
    if (!s->app->echo && !s->app->http)
        atoll_conn_close(c);
}

static void ns_on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    ns_server *s = user;
    (void)server;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", e->reason ? e->reason : "");
    s->last_error_peer = e->peer;
    atomic_store(&s->last_error, e->code);
    atomic_fetch_add(&s->errors, 1);
    sup_latch_signal(&s->errored);
}

static void ns_on_closed_server(atoll_server *server, void *user)
{
    ns_server *s = user;
    (void)server;
    s->server = NULL;
    sup_latch_signal(&s->closed);
}

struct ns_bind_args {
    ns_server *s;
    const char *address;
    int port;
};

static void ns_bind_on(atoll_isolate *self, void *arg)
{
    struct ns_bind_args *a = arg;
    static const atoll_server_callbacks cb = {.on_bound = ns_on_bound,
                                              .on_connection = ns_on_connection,
                                              .on_error = ns_on_error,
                                              .on_closed = ns_on_closed_server};
    ns_server *s = a->s;
    s->bind_rc = atoll_server_bind(self, a->address, a->port, &s->app->opts, s->app->ctx, &cb, s, &s->server);
    if (s->bind_rc < 0) {
        s->bound_status = s->bind_rc;
        sup_latch_signal(&s->bound);
    }
}

int ns_bind(ns_app *app, ns_server *s, uint32_t iso, const char *address, int port)
{
    memset(s, 0, sizeof(*s));
    s->app = app;
    s->iso_id = iso;
    sup_latch_init(&s->bound);
    sup_latch_init(&s->closed);
    sup_latch_init(&s->errored);
    struct ns_bind_args a = {s, address, port};
    int rc = sup_run_on(app->rt, iso, ns_bind_on, &a);
    if (rc < 0)
        return rc;
    if (!sup_latch_wait(&s->bound, 1, SUP_WAIT_MS))
        return -ETIMEDOUT;
    return s->bound_status;
}

struct ns_op {
    ns_server *s;
    int which, rc;
};

static void ns_op_on(atoll_isolate *self, void *arg)
{
    struct ns_op *o = arg;
    (void)self;
    switch (o->which) {
    case 0:
        o->rc = atoll_server_start(o->s->server);
        break;
    case 1:
        o->rc = atoll_server_pause(o->s->server);
        break;
    case 2:
        o->rc = atoll_server_resume(o->s->server);
        break;
    default:
        o->rc = atoll_server_close(o->s->server);
        break;
    }
}

static int ns_op(ns_server *s, int which)
{
    struct ns_op o = {s, which, 0};
    int rc = sup_run_on(s->app->rt, s->iso_id, ns_op_on, &o);
    return rc < 0 ? rc : o.rc;
}

int ns_start(ns_server *s)
{
    return ns_op(s, 0);
}
int ns_pause(ns_server *s)
{
    return ns_op(s, 1);
}
int ns_resume(ns_server *s)
{
    return ns_op(s, 2);
}
int ns_close(ns_server *s)
{
    int rc = ns_op(s, 3);
    if (rc == 0 && !sup_latch_wait(&s->closed, 1, SUP_WAIT_MS))
        return -ETIMEDOUT;
    return rc;
}

int ns_connect(int family, const char *host, uint16_t port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        inet_pton(AF_INET, host, &in->sin_addr);
        len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &in6->sin6_addr);
        len = sizeof(*in6);
    }
    int crc;
    while ((crc = connect(fd, (struct sockaddr *)&ss, len)) < 0 && errno == EINTR)
        ; /* a signal interrupted it: the connect goes on in the kernel */
    if (crc < 0 && errno == EALREADY)
        crc = 0;
    if (crc < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

ssize_t ns_recv(int fd, void *buf, size_t n)
{
    ssize_t r;
    while ((r = recv(fd, buf, n, 0)) < 0 && errno == EINTR)
        ;
    return r;
}

int ns_echo_roundtrip(int fd, size_t n)
{
    uint8_t *out = malloc(n), *in = malloc(n);
    if (!out || !in) {
        free(out);
        free(in);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i & 0xff);
    int rc = 0;
    size_t sent = 0, got = 0;
    while (sent < n) {
        ssize_t w = send(fd, out + sent, n - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EPIPE;
            break;
        }
        sent += (size_t)w;
    }
    while (rc == 0 && got < n) {
        ssize_t r = recv(fd, in + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EPROTO;
            break;
        }
        got += (size_t)r;
    }
    if (rc == 0 && memcmp(in, out, n) != 0)
        rc = -EPROTO;
    free(out);
    free(in);
    return rc;
}

int ns_bind_group(ns_app *app, ns_server *s, uint32_t n, const char *address)
{
    app->opts.shared = true;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = ns_bind(app, &s[i], i, address, i ? s[0].port : 0);
    return rc;
}

atoll_security_context *ns_server_ctx(void)
{
    atoll_security_context *ctx;
    if (atoll_security_context_new(&ctx) < 0)
        return NULL;
    if (atoll_security_context_use_certificate_chain_file(ctx, NS_CERT("server_chain.pem"), ATOLL_ENCODING_PEM) < 0 ||
        atoll_security_context_use_private_key_file(ctx, NS_CERT("server_key.pem"), ATOLL_ENCODING_PEM, NULL) < 0 ||
        atoll_security_context_set_trusted_certificates_file(ctx, NS_CERT("client_authority.pem"), ATOLL_ENCODING_PEM) <
            0 ||
        atoll_security_context_set_client_authorities_file(ctx, NS_CERT("client_authority.pem"), ATOLL_ENCODING_PEM) <
            0) {
        sup_fail(__FILE__, __LINE__, "server context: %s", atoll_security_context_last_error(ctx));
        atoll_security_context_release(ctx);
        return NULL;
    }
    return ctx;
}

int ns_bound_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(in);
    if (bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0 || getsockname(fd, (struct sockaddr *)&in, &l) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *port = ntohs(in.sin_port);
    return fd;
}
