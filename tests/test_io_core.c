/*
 * test_io_core: regressions of the I/O core (issue 7), against the public
 * API only, on real rings over loopback:
 * - a read-once application (one 1 KiB atoll_conn_read per on_read) gets all
 *   of 256 KiB sent at once, TLS and plain (defect 3: lost read event);
 * - connections whose application never reads do not starve the isolate's
 *   other connections, plain and TLS (defect 4: starved buffer ring);
 * - closing the last server from inside its own on_connection / on_error,
 *   also while accept backs off after EMFILE (defect 5: free under a
 *   callback);
 * - a tiny SQ (8 entries) under 2,000 churned TLS connections, and ~1,500
 *   connections closed in one turn with the default SQ (defect 1: half-built
 *   chains and dropped ops);
 * - stop with 500 open TLS connections with queued writes, and stops while a
 *   host thread opens and closes descriptors (defect 2: teardown order);
 * - 3 MiB written in odd-sized chunks through write events arrives whole and
 *   in order, TLS and plain (the output ring and the record fitting).
 *
 * Every wait is bounded; counts of descriptors are read from /proc/self/fd.
 */
#include "net_support.h"
#include "tls_client.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CERT(f) NS_CERT(f)

/* ---- loopback sockets ----------------------------------------------------- */

/* A loopback client socket connected to `port`; asserts. Timeouts 5 s. */
static int connect_plain(uint16_t port)
{
    int fd = ns_connect(AF_INET, "127.0.0.1", port);
    cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static uint8_t pattern_at(size_t i)
{
    return (uint8_t)((i * 131u + (i >> 8)) & 0xff);
}

static tc_options client_opts(uint16_t port)
{
    return tc_loopback(port, CERT("trusted_certs.pem"), 5000);
}

static atoll_security_context *server_ctx(void)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    return ctx;
}

/* ---- a raw wolfSSL client over a socket the test owns ------------------ */

/* For what tls_client.h cannot do: a handshake over a socket made before
 * the descriptor limit was lowered, and non-blocking writes that stop when
 * the peer pushes back. No verification: these tests are about I/O. */
static WOLFSSL_CTX *raw_ctx_new(void)
{
    wolfSSL_Init();
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    cr_assert_not_null(ctx);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    return ctx;
}

static WOLFSSL *raw_ssl_new(WOLFSSL_CTX *ctx, int fd)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    cr_assert_not_null(ssl);
    cr_assert_eq(wolfSSL_set_fd(ssl, fd), WOLFSSL_SUCCESS);
    return ssl;
}

/* ---- a server under test, with per-test hooks --------------------------- */

typedef struct srv srv;
typedef void (*srv_conn_fn)(srv *s, atoll_server *server, atoll_conn *c);
typedef void (*srv_err_fn)(srv *s, atoll_server *server, const atoll_server_error *e);

struct srv {
    atoll_runtime *rt;
    uint32_t iso;
    atoll_security_context *ctx;
    atoll_server_options opts;
    bool autostart;
    srv_conn_fn on_conn; /* NULL: the connection is closed at once */
    srv_err_fn on_err;
    void *app;
    atoll_server *server; /* isolate only */
    uint16_t port;
    int bound_status;
    sup_latch bound, closed, conns, errs;
    _Atomic long closed_calls, connections, errors;
    _Atomic int last_error;
};

static void srv_init(srv *s, atoll_runtime *rt, uint32_t iso, atoll_security_context *ctx)
{
    memset(s, 0, sizeof(*s));
    s->rt = rt;
    s->iso = iso;
    s->ctx = ctx;
    s->autostart = true;
    atoll_server_options_init(&s->opts);
    sup_latch_init(&s->bound);
    sup_latch_init(&s->closed);
    sup_latch_init(&s->conns);
    sup_latch_init(&s->errs);
}

static void srv_on_bound(atoll_server *server, int status, void *user)
{
    srv *s = user;
    s->bound_status = status;
    if (status == 0) {
        s->port = atoll_server_port(server);
        if (s->autostart) {
            int rc = atoll_server_start(server);
            SUP_CHECK(rc == 0, "start: %d", rc);
        }
    } else {
        s->server = NULL;
    }
    sup_latch_signal(&s->bound);
}

static void srv_on_connection(atoll_server *server, atoll_conn *c, void *user)
{
    srv *s = user;
    atomic_fetch_add(&s->connections, 1);
    if (s->on_conn)
        s->on_conn(s, server, c);
    else
        atoll_conn_close(c);
    sup_latch_signal(&s->conns);
}

static void srv_on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    srv *s = user;
    atomic_store(&s->last_error, e->code);
    atomic_fetch_add(&s->errors, 1);
    if (s->on_err)
        s->on_err(s, server, e);
    sup_latch_signal(&s->errs);
}

static void srv_on_closed(atoll_server *server, void *user)
{
    srv *s = user;
    (void)server;
    s->server = NULL;
    atomic_fetch_add(&s->closed_calls, 1);
    sup_latch_signal(&s->closed);
}

static void srv_bind_on(atoll_isolate *self, void *arg)
{
    srv *s = arg;
    static const atoll_server_callbacks cb = {.on_bound = srv_on_bound,
                                              .on_connection = srv_on_connection,
                                              .on_error = srv_on_error,
                                              .on_closed = srv_on_closed};
    int rc = atoll_server_bind(self, "127.0.0.1", 0, &s->opts, s->ctx, &cb, s, &s->server);
    if (rc < 0) {
        s->bound_status = rc;
        sup_latch_signal(&s->bound);
    }
}

/* Binds 127.0.0.1:0 on the server's isolate and waits for on_bound. */
static void srv_bind(srv *s)
{
    cr_assert_eq(sup_run_on(s->rt, s->iso, srv_bind_on, s), 0);
    cr_assert(sup_latch_wait(&s->bound, 1, SUP_WAIT_MS), "on_bound did not run");
    cr_assert_eq(s->bound_status, 0, "bind: %s", atoll_error_name(s->bound_status));
}

struct srv_op {
    srv *s;
    int which; /* 0 stats, 1 start, 2 close */
    int rc;
    atoll_server_stats st;
};

static void srv_op_on(atoll_isolate *self, void *arg)
{
    struct srv_op *o = arg;
    (void)self;
    if (!o->s->server) {
        o->rc = -ENOENT;
        return;
    }
    if (o->which == 0)
        atoll_server_stats_get(o->s->server, &o->st);
    else if (o->which == 1)
        o->rc = atoll_server_start(o->s->server);
    else
        o->rc = atoll_server_close(o->s->server);
}

static int srv_op(srv *s, int which, atoll_server_stats *st)
{
    struct srv_op o = {.s = s, .which = which};
    int rc = sup_run_on(s->rt, s->iso, srv_op_on, &o);
    if (st)
        *st = o.st;
    return rc < 0 ? rc : o.rc;
}

/* Waits until the isolate's received wire bytes stop growing (the pushers
 * have pushed all the server takes) or reach `enough`; bounded. */
static uint64_t wait_bytes_in_settled(atoll_runtime *rt, uint32_t iso, uint64_t enough, int timeout_ms)
{
    int64_t end = sup_now_ms() + timeout_ms;
    atoll_isolate_stats st;
    uint64_t last = UINT64_MAX;
    int stable = 0;
    while (sup_now_ms() < end) {
        cr_assert_eq(atoll_runtime_isolate_stats(rt, iso, &st), 0);
        if (st.net_bytes_in >= enough)
            return st.net_bytes_in;
        stable = st.net_bytes_in == last ? stable + 1 : 0;
        if (stable >= 20)
            return last;
        last = st.net_bytes_in;
        poll(NULL, 0, 10);
    }
    return last;
}

/* ======================================================================= */
/* Defect 3: a read-once application hears on_read until it read it all   */
/* ======================================================================= */

#define RO_TOTAL (256u * 1024u)

typedef struct ro_app {
    size_t got;   /* isolate only */
    bool replied; /* isolate only */
    _Atomic size_t seen;
    _Atomic long reads, bad;
    sup_latch done, closed;
} ro_app;

static void ro_on_read(atoll_conn *c, void *user)
{
    ro_app *a = user;
    uint8_t buf[1024];
    ssize_t n = atoll_conn_read(c, buf, sizeof(buf)); /* exactly one read per event */
    atomic_fetch_add(&a->reads, 1);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != pattern_at(a->got + (size_t)i))
            atomic_fetch_add(&a->bad, 1);
    a->got += (size_t)n;
    atomic_store(&a->seen, a->got);
    if (a->got == RO_TOTAL && !a->replied) {
        uint64_t v = a->got;
        ssize_t w = atoll_conn_write(c, &v, sizeof(v));
        SUP_CHECK(w == (ssize_t)sizeof(v), "reply write: %zd", w);
        a->replied = true;
        sup_latch_signal(&a->done);
    }
}

static void ro_on_read_closed(atoll_conn *c, void *user)
{
    (void)user;
    atoll_conn_close(c);
}

static void ro_on_closed(atoll_conn *c, int status, void *user)
{
    ro_app *a = user;
    (void)c;
    (void)status;
    sup_latch_signal(&a->closed);
}

static void ro_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    (void)server;
    static const atoll_conn_callbacks cb = {
        .on_read = ro_on_read, .on_read_closed = ro_on_read_closed, .on_closed = ro_on_closed};
    atoll_conn_set_callbacks(c, &cb, s->app);
}

static uint8_t *ro_payload(void)
{
    uint8_t *p = malloc(RO_TOTAL);
    cr_assert_not_null(p);
    for (size_t i = 0; i < RO_TOTAL; i++)
        p[i] = pattern_at(i);
    return p;
}

static void ro_assert_all_read(ro_app *a, const char *what)
{
    bool ok = sup_latch_wait(&a->done, 1, 15000);
    cr_assert(ok,
              "%s: the read-once application got %zu of %u bytes in %ld on_read calls, then was never called "
              "again while bytes stayed buffered (on_read is level-style)",
              what, atomic_load(&a->seen), RO_TOTAL, atomic_load(&a->reads));
    cr_assert_eq(atomic_load(&a->bad), 0, "%s: bytes out of order", what);
}

Test(io_core, read_once_tls, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ro_app a;
    memset(&a, 0, sizeof(a));
    sup_latch_init(&a.done);
    sup_latch_init(&a.closed);
    srv s;
    srv_init(&s, rt, 0, server_ctx());
    s.on_conn = ro_on_conn;
    s.app = &a;
    srv_bind(&s);
    tc_options o = client_opts(s.port);
    tc_conn *c;
    int rc = tc_connect(&c, &o);
    cr_assert_eq(rc, 0, "connect: %s", tc_error_string(NULL));
    uint8_t *p = ro_payload();
    rc = tc_write_all(c, p, RO_TOTAL); /* all at once; then the client waits */
    free(p);
    ro_assert_all_read(&a, "TLS");
    cr_assert_eq(rc, 0, "write: %s", tc_error_string(c));
    uint64_t v = 0;
    size_t got = 0;
    while (got < sizeof(v)) {
        ssize_t r = tc_read(c, (uint8_t *)&v + got, sizeof(v) - got);
        cr_assert_gt(r, 0, "reading the count: %s", tc_error_string(c));
        got += (size_t)r;
    }
    cr_assert_eq(v, RO_TOTAL);
    tc_close(c);
    cr_assert(sup_latch_wait(&a.closed, 1, SUP_WAIT_MS), "server side not closed");
    sup_assert_no_failures();
    atoll_security_context_release(s.ctx);
    sup_shutdown(rt);
    tc_thread_cleanup();
}

Test(io_core, read_once_plain, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ro_app a;
    memset(&a, 0, sizeof(a));
    sup_latch_init(&a.done);
    sup_latch_init(&a.closed);
    srv s;
    srv_init(&s, rt, 0, NULL);
    s.on_conn = ro_on_conn;
    s.app = &a;
    srv_bind(&s);
    int fd = connect_plain(s.port);
    uint8_t *p = ro_payload();
    size_t sent = 0;
    while (sent < RO_TOTAL) {
        ssize_t w = send(fd, p + sent, RO_TOTAL - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    free(p);
    ro_assert_all_read(&a, "plain");
    cr_assert_eq(sent, RO_TOTAL);
    uint64_t v = 0;
    size_t got = 0;
    while (got < sizeof(v)) {
        ssize_t r = ns_recv(fd, (uint8_t *)&v + got, sizeof(v) - got);
        cr_assert_gt(r, 0, "reading the count: %s", strerror(errno));
        got += (size_t)r;
    }
    cr_assert_eq(v, RO_TOTAL);
    close(fd);
    cr_assert(sup_latch_wait(&a.closed, 1, SUP_WAIT_MS), "server side not closed");
    sup_assert_no_failures();
    sup_shutdown(rt);
}

/* ======================================================================= */
/* Defect 4: non-reading connections do not starve the isolate            */
/* ======================================================================= */

typedef struct sink_app {
    _Atomic long closed;
    sup_latch closed_latch;
} sink_app;

static void sink_on_closed(atoll_conn *c, int status, void *user)
{
    sink_app *a = user;
    (void)c;
    (void)status;
    atomic_fetch_add(&a->closed, 1);
    sup_latch_signal(&a->closed_latch);
}

/* The application never reads: no on_read at all. */
static void sink_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    (void)server;
    static const atoll_conn_callbacks cb = {.on_closed = sink_on_closed};
    atoll_conn_set_callbacks(c, &cb, s->app);
}

#define SINK_CONNS 200
#define SINK_BYTES (256u * 1024u)

Test(io_core, nonreading_conns_do_not_starve, .timeout = 90)
{
    signal(SIGPIPE, SIG_IGN);
    atoll_runtime *rt = sup_start_n(1); /* defaults: 512 receive buffers of 16 KiB */
    sink_app sa;
    memset(&sa, 0, sizeof(sa));
    sup_latch_init(&sa.closed_latch);
    srv sink;
    srv_init(&sink, rt, 0, NULL);
    sink.on_conn = sink_on_conn;
    sink.app = &sa;
    srv_bind(&sink);
    ns_app echo;
    ns_app_init(&echo, rt);
    ns_server es;
    cr_assert_eq(ns_bind(&echo, &es, 0, "127.0.0.1", 0), 0, "the echo server on the same isolate");

    int fds[SINK_CONNS];
    size_t sent[SINK_CONNS];
    for (int i = 0; i < SINK_CONNS; i++) {
        fds[i] = connect_plain(sink.port);
        set_nonblock(fds[i]);
        sent[i] = 0;
    }
    cr_assert(sup_latch_wait(&sink.conns, SINK_CONNS, SUP_WAIT_MS), "sink connections delivered: %ld",
              sup_latch_get(&sink.conns));
    static uint8_t chunk[65536];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = pattern_at(i);
    /* Push until every connection sent its share or the kernel pushes back
     * everywhere (nothing writable for 200 ms); bounded. */
    int64_t end = sup_now_ms() + 15000;
    uint64_t total = 0;
    for (;;) {
        struct pollfd pf[SINK_CONNS];
        int n = 0;
        for (int i = 0; i < SINK_CONNS; i++)
            if (sent[i] < SINK_BYTES)
                pf[n++] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
        if (n == 0 || sup_now_ms() > end)
            break;
        int r = poll(pf, (nfds_t)n, 200);
        if (r <= 0)
            break;
        for (int k = 0; k < n; k++) {
            if (!(pf[k].revents & POLLOUT))
                continue;
            int i = 0;
            while (fds[i] != pf[k].fd)
                i++;
            size_t want = SINK_BYTES - sent[i] < sizeof(chunk) ? SINK_BYTES - sent[i] : sizeof(chunk);
            ssize_t w = send(fds[i], chunk, want, MSG_NOSIGNAL);
            if (w > 0) {
                sent[i] += (size_t)w;
                total += (uint64_t)w;
            }
        }
    }
    uint64_t in = wait_bytes_in_settled(rt, 0, total, 10000);
    cr_log_info("non-reading plain connections pushed %llu bytes, the isolate received %llu", (unsigned long long)total,
                (unsigned long long)in);

    /* The normal client on the same isolate is served. */
    int fd = connect_plain(es.port);
    int erc = ns_echo_roundtrip(fd, 4096);
    atoll_isolate_stats st;
    atoll_runtime_isolate_stats(rt, 0, &st);
    cr_assert_eq(erc, 0,
                 "the normal client was not served (%s) while %d connections did not read: "
                 "recv_enobufs=%llu bytes_in=%llu",
                 strerror(-erc), SINK_CONNS, (unsigned long long)st.recv_enobufs, (unsigned long long)st.net_bytes_in);
    close(fd);
    for (int i = 0; i < SINK_CONNS; i++)
        close(fds[i]);
    /* The application never reads, so it never hears read-closed and never
     * closes: the stop closes them, each with one on_closed. */
    sup_assert_no_failures();
    sup_shutdown(rt);
    cr_assert_eq(atomic_load(&sa.closed), SINK_CONNS, "sink connections closed at stop: %ld", atomic_load(&sa.closed));
}

/* Each non-reading TLS connection holds about 13 buffers today (its 16 KiB
 * of plaintext consumed some): 64 of them more than fill 512. */
#define TLS_SINK_CONNS 64
#define TLS_SINK_BYTES (1024u * 1024u)

Test(io_core, nonreading_tls_conns_do_not_starve_handshakes, .timeout = 90)
{
    signal(SIGPIPE, SIG_IGN);
    atoll_runtime *rt = sup_start_n(1);
    atoll_security_context *ctx = server_ctx();
    sink_app sa;
    memset(&sa, 0, sizeof(sa));
    sup_latch_init(&sa.closed_latch);
    srv sink;
    srv_init(&sink, rt, 0, ctx);
    sink.on_conn = sink_on_conn;
    sink.app = &sa;
    srv_bind(&sink);
    ns_app echo;
    ns_app_init(&echo, rt);
    echo.ctx = ctx;
    ns_server es;
    cr_assert_eq(ns_bind(&echo, &es, 0, "127.0.0.1", 0), 0, "the TLS echo server on the same isolate");

    WOLFSSL_CTX *wctx = raw_ctx_new();
    int fds[TLS_SINK_CONNS];
    WOLFSSL *ssl[TLS_SINK_CONNS];
    size_t sent[TLS_SINK_CONNS];
    for (int i = 0; i < TLS_SINK_CONNS; i++) {
        fds[i] = connect_plain(sink.port);
        ssl[i] = raw_ssl_new(wctx, fds[i]);
        int r = wolfSSL_connect(ssl[i]);
        cr_assert_eq(r, WOLFSSL_SUCCESS, "sink handshake %d: %d", i, wolfSSL_get_error(ssl[i], r));
        set_nonblock(fds[i]);
        sent[i] = 0;
    }
    cr_assert(sup_latch_wait(&sink.conns, TLS_SINK_CONNS, SUP_WAIT_MS));
    static uint8_t chunk[16384];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = pattern_at(i);
    int64_t end = sup_now_ms() + 15000;
    uint64_t total = 0;
    for (;;) {
        bool progress = false, pending = false;
        for (int i = 0; i < TLS_SINK_CONNS; i++) {
            while (sent[i] < TLS_SINK_BYTES) {
                int w = wolfSSL_write(ssl[i], chunk, (int)sizeof(chunk)); /* retried with the same args */
                if (w <= 0)
                    break;
                sent[i] += (size_t)w;
                total += (uint64_t)w;
                progress = true;
            }
            pending |= sent[i] < TLS_SINK_BYTES;
        }
        if (!pending || sup_now_ms() > end)
            break;
        if (!progress) {
            struct pollfd pf[TLS_SINK_CONNS];
            for (int i = 0; i < TLS_SINK_CONNS; i++)
                pf[i] = (struct pollfd){.fd = fds[i], .events = sent[i] < TLS_SINK_BYTES ? POLLOUT : 0};
            if (poll(pf, TLS_SINK_CONNS, 200) <= 0)
                break; /* pushed back everywhere */
        }
    }
    uint64_t in = wait_bytes_in_settled(rt, 0, total, 10000);
    cr_log_info("non-reading TLS connections pushed %llu bytes, the isolate received %llu", (unsigned long long)total,
                (unsigned long long)in);

    tc_options o = client_opts(es.port);
    tc_conn *c = NULL;
    int rc = tc_connect(&c, &o);
    char why[256];
    snprintf(why, sizeof(why), "%s", tc_error_string(NULL));
    if (rc == 0)
        rc = tc_echo(c, 4096);
    atoll_isolate_stats st;
    atoll_runtime_isolate_stats(rt, 0, &st);
    cr_assert_eq(rc, 0,
                 "a new TLS client was not served (%s: %s) while %d TLS connections did not read: "
                 "recv_enobufs=%llu",
                 atoll_error_name(rc), why, TLS_SINK_CONNS, (unsigned long long)st.recv_enobufs);
    tc_close(c);
    for (int i = 0; i < TLS_SINK_CONNS; i++) {
        wolfSSL_free(ssl[i]);
        close(fds[i]);
    }
    wolfSSL_CTX_free(wctx);
    sup_assert_no_failures();
    atoll_security_context_release(ctx);
    sup_shutdown(rt);
    cr_assert_eq(atomic_load(&sa.closed), TLS_SINK_CONNS, "sink connections closed at stop: %ld",
                 atomic_load(&sa.closed));
    tc_thread_cleanup();
}

/* ======================================================================= */
/* Defect 5: closing the last server from inside its own callbacks        */
/* ======================================================================= */

typedef struct cs_app {
    _Atomic long closes;    /* atoll_server_close calls made from the callback */
    _Atomic int close_rc;   /* what it returned */
    _Atomic long conn_done; /* on_closed of delivered connections */
    sup_latch called;
} cs_app;

static void cs_conn_closed(atoll_conn *c, int status, void *user)
{
    cs_app *a = user;
    (void)c;
    (void)status;
    atomic_fetch_add(&a->conn_done, 1);
}

static void cs_close_in_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    cs_app *a = s->app;
    static const atoll_conn_callbacks cb = {.on_closed = cs_conn_closed};
    atoll_conn_set_callbacks(c, &cb, a);
    int rc = atoll_server_close(server);
    if (atomic_fetch_add(&a->closes, 1) == 0)
        atomic_store(&a->close_rc, rc);
    atoll_conn_close(c);
    sup_latch_signal(&a->called);
}

static void cs_close_in_on_err(srv *s, atoll_server *server, const atoll_server_error *e)
{
    cs_app *a = s->app;
    (void)e;
    int rc = atoll_server_close(server);
    if (atomic_fetch_add(&a->closes, 1) == 0)
        atomic_store(&a->close_rc, rc);
    sup_latch_signal(&a->called);
}

typedef struct cs_round {
    bool at_cap; /* accept not armed: the isolate is at its connection cap */
    bool on_error;
} cs_round;

/* One round: a TLS server whose callback closes it, reached by client A
 * sending garbage (on_error) or completing its handshake (on_connection).
 * With `at_cap`, the isolate's connection cap is 1: A holds it, client B
 * waits in the listen queue, and the server has no accept armed when A's
 * callback closes it (the state in which the old code freed the server
 * inside the callback; it got there through EMFILE back-off, which direct
 * descriptors no longer meet). */
static void cs_run(const cs_round *r)
{
    signal(SIGPIPE, SIG_IGN);
    atoll_runtime_options o;
    sup_options(&o, 1);
    if (r->at_cap)
        o.conns_per_isolate = 1;
    atoll_runtime *rt = sup_start(&o);
    atoll_security_context *ctx = server_ctx();
    cs_app a;
    memset(&a, 0, sizeof(a));
    sup_latch_init(&a.called);
    srv s;
    srv_init(&s, rt, 0, ctx);
    s.opts.disable_resumption = true;
    s.opts.handshake_timeout_ms = 30000;
    s.app = &a;
    if (r->on_error)
        s.on_err = cs_close_in_on_err;
    else
        s.on_conn = cs_close_in_on_conn;
    srv_bind(&s);

    WOLFSSL_CTX *wctx = raw_ctx_new();
    int fa = connect_plain(s.port); /* queued until the server accepts */
    WOLFSSL *ssl = raw_ssl_new(wctx, fa);
    int64_t end = sup_now_ms() + SUP_WAIT_MS;
    atoll_server_stats st;
    memset(&st, 0, sizeof(st));
    while (srv_op(&s, 0, &st) == 0 && st.accepted < 1 && sup_now_ms() < end)
        poll(NULL, 0, 2);
    cr_assert_eq(st.accepted, 1, "client A was not accepted");
    int fb = -1;
    if (r->at_cap) {
        fb = connect_plain(s.port); /* queued: no slot for it */
        cr_assert_geq(fb, 0);
    }
    if (r->on_error) {
        static const char garbage[] = "\x00\x01\x02\x03\x04\x05\x06\x07garbage-garbage-garbage";
        send(fa, garbage, sizeof(garbage) - 1, MSG_NOSIGNAL);
    } else {
        int hr = wolfSSL_connect(ssl);
        if (hr != WOLFSSL_SUCCESS)
            cr_log_info("client A handshake: %d", wolfSSL_get_error(ssl, hr));
    }
    bool called = sup_latch_wait(&a.called, 1, SUP_WAIT_MS);
    bool closed = called && sup_latch_wait(&s.closed, 1, SUP_WAIT_MS);
    cr_assert(called, "the %s callback did not run", r->on_error ? "on_error" : "on_connection");
    cr_assert_eq(atomic_load(&a.close_rc), 0, "atoll_server_close from the callback: %s",
                 atoll_error_name(atomic_load(&a.close_rc)));
    cr_assert(closed, "the server's on_closed did not run after closing it from its callback");
    wolfSSL_free(ssl);
    close(fa);
    if (fb >= 0)
        close(fb);
    wolfSSL_CTX_free(wctx);
    atoll_security_context_release(ctx);
    int stop = atoll_runtime_stop(rt);
    int join = atoll_runtime_join(rt);
    /* Nothing more comes from a closed server: on_closed exactly once. */
    cr_assert_eq(atomic_load(&s.closed_calls), 1, "server on_closed ran %ld times", atomic_load(&s.closed_calls));
    cr_assert_geq(atomic_load(&a.closes), 1);
    cr_assert_eq(stop, 0);
    cr_assert_eq(join, 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
    if (!r->on_error)
        cr_assert_eq(atomic_load(&a.conn_done), 1, "the delivered connection's on_closed");
    sup_assert_no_failures();
    tc_thread_cleanup();
}

Test(io_core, close_server_from_on_error, .timeout = 60)
{
    cs_round r = {.at_cap = false, .on_error = true};
    cs_run(&r);
}

Test(io_core, close_server_from_on_error_at_conn_cap, .timeout = 60)
{
    cs_round r = {.at_cap = true, .on_error = true};
    cs_run(&r);
}

Test(io_core, close_server_from_on_connection, .timeout = 60)
{
    cs_round r = {.at_cap = false, .on_error = false};
    cs_run(&r);
}

Test(io_core, close_server_from_on_connection_at_conn_cap, .timeout = 60)
{
    cs_round r = {.at_cap = true, .on_error = false};
    cs_run(&r);
}

/* ======================================================================= */
/* Defect 1: a tiny SQ under churn; many closes in one turn               */
/* ======================================================================= */

/* Server connections that echo what they read and count their closes. */
typedef struct ch_app {
    _Atomic long delivered, closed, double_closed, short_echo;
    sup_latch closed_latch;
} ch_app;

typedef struct ch_conn {
    ch_app *app;
    int closed;
} ch_conn;

static void ch_on_read(atoll_conn *c, void *user)
{
    ch_conn *cc = user;
    uint8_t buf[4096];
    ssize_t n;
    while ((n = atoll_conn_read(c, buf, sizeof(buf))) > 0) {
        ssize_t w = atoll_conn_write(c, buf, (size_t)n);
        if (w != n) {
            atomic_fetch_add(&cc->app->short_echo, 1);
            atoll_conn_close(c);
            return;
        }
    }
}

static void ch_on_read_closed(atoll_conn *c, void *user)
{
    (void)user;
    atoll_conn_close(c);
}

static void ch_on_closed(atoll_conn *c, int status, void *user)
{
    ch_conn *cc = user;
    ch_app *a = cc->app;
    (void)c;
    (void)status;
    if (cc->closed++)
        atomic_fetch_add(&a->double_closed, 1);
    else
        free(cc); /* a second call would be a use after free: ASan says so */
    atomic_fetch_add(&a->closed, 1);
    sup_latch_signal(&a->closed_latch);
}

static void ch_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    ch_app *a = s->app;
    (void)server;
    ch_conn *cc = calloc(1, sizeof(*cc));
    SUP_CHECK(cc != NULL, "calloc");
    cc->app = a;
    atomic_fetch_add(&a->delivered, 1);
    static const atoll_conn_callbacks cb = {
        .on_read = ch_on_read, .on_read_closed = ch_on_read_closed, .on_closed = ch_on_closed};
    atoll_conn_set_callbacks(c, &cb, cc);
}

#define CHURN_TOTAL       2000
#define CHURN_CONCURRENCY 64

typedef struct churn {
    uint16_t port;
    _Atomic int next, ok, failed, timed_out, unstarted;
    int64_t deadline;
    char last[160];
    pthread_mutex_t mu;
} churn;

static void churn_client(int index, void *arg)
{
    churn *t = arg;
    (void)index;
    for (;;) {
        int i = atomic_fetch_add(&t->next, 1);
        if (i >= CHURN_TOTAL)
            break;
        if (sup_now_ms() > t->deadline) {
            atomic_fetch_add(&t->unstarted, 1);
            continue;
        }
        tc_options o = client_opts(t->port);
        o.timeout_ms = 10000;
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        if (rc == 0) {
            rc = tc_echo(c, 64);
            if (rc != 0) {
                pthread_mutex_lock(&t->mu);
                snprintf(t->last, sizeof(t->last), "echo: %s (%s)", atoll_error_name(rc), tc_error_string(c));
                pthread_mutex_unlock(&t->mu);
            }
            tc_close(c);
        } else {
            pthread_mutex_lock(&t->mu);
            snprintf(t->last, sizeof(t->last), "connect: %s (%s)", atoll_error_name(rc), tc_error_string(NULL));
            pthread_mutex_unlock(&t->mu);
        }
        if (rc == 0)
            atomic_fetch_add(&t->ok, 1);
        else {
            atomic_fetch_add(&t->failed, 1);
            if (rc == ATOLL_E_TIMEDOUT)
                atomic_fetch_add(&t->timed_out, 1);
        }
    }
    tc_thread_cleanup();
}

Test(io_core, tiny_sq_churn_tls, .timeout = 240)
{
    signal(SIGPIPE, SIG_IGN);
    atoll_runtime_options opts;
    sup_options(&opts, 1);
    opts.sq_entries = 8; /* accepted by atoll_runtime_create (nonzero, <= cq_entries) */
    atoll_runtime *rt = sup_start(&opts);
    ch_app a;
    memset(&a, 0, sizeof(a));
    sup_latch_init(&a.closed_latch);
    srv s;
    srv_init(&s, rt, 0, server_ctx());
    s.on_conn = ch_on_conn;
    s.app = &a;
    srv_bind(&s);
    int baseline = sup_fd_count();

    churn t;
    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.mu, NULL);
    t.port = s.port;
    t.deadline = sup_now_ms() + 150000;
    sup_host_threads(CHURN_CONCURRENCY, churn_client, &t);
    cr_log_info("tiny SQ churn: %d ok, %d failed (%d timed out), last failure: %s", atomic_load(&t.ok),
                atomic_load(&t.failed), atomic_load(&t.timed_out), t.last);

    /* Every delivered connection gets on_closed once; every accepted one was
     * delivered or reported to on_error. */
    long delivered = atomic_load(&a.delivered);
    bool all_closed = sup_latch_wait(&a.closed_latch, delivered, SUP_WAIT_MS);
    atoll_server_stats st;
    memset(&st, 0, sizeof(st));
    int64_t end = sup_now_ms() + SUP_WAIT_MS;
    while (srv_op(&s, 0, &st) == 0 && st.accepted != st.handshakes + st.handshake_errors && sup_now_ms() < end)
        poll(NULL, 0, 5);
    int fds = sup_wait_fd_count(baseline, SUP_WAIT_MS);

    cr_assert_eq(atomic_load(&t.unstarted), 0, "%d connections not started before the deadline (the server hangs)",
                 atomic_load(&t.unstarted));
    cr_assert_eq(atomic_load(&t.timed_out), 0, "%d connections timed out (lost by the server); last: %s",
                 atomic_load(&t.timed_out), t.last);
    cr_assert_eq(atomic_load(&t.ok) + atomic_load(&t.failed), CHURN_TOTAL);
    cr_assert(all_closed, "on_closed ran for %ld of %ld delivered connections", atomic_load(&a.closed), delivered);
    cr_assert_eq(atomic_load(&a.double_closed), 0, "on_closed ran twice for %ld connections",
                 atomic_load(&a.double_closed));
    cr_assert_eq(st.accepted, st.handshakes + st.handshake_errors,
                 "accepted %llu, delivered %llu, reported %llu: connections lost without a report",
                 (unsigned long long)st.accepted, (unsigned long long)st.handshakes,
                 (unsigned long long)st.handshake_errors);
    cr_assert_eq((long)st.handshakes, delivered);
    cr_assert_eq(atomic_load(&s.errors), (long)st.handshake_errors);
    cr_assert_leq(atomic_load(&t.failed), (int)st.handshake_errors,
                  "%d client connections failed, the server reported %llu to on_error; last: %s",
                  atomic_load(&t.failed), (unsigned long long)st.handshake_errors, t.last);
    cr_assert_eq(atomic_load(&a.short_echo), 0);
    cr_assert_leq(fds, baseline, "open descriptors: %d, baseline %d", fds, baseline);
    sup_assert_no_failures();
    /* Drain: the isolate exits once nothing is open, so a connection whose
     * operations never all completed shows up as a drain timeout. */
    int drc = atoll_runtime_drain(rt, 10000);
    cr_assert_eq(drc, 0, "drain: %s (an operation of a closed connection never completed)", atoll_error_name(drc));
    cr_assert_eq(atomic_load(&s.closed_calls), 1, "the server's on_closed at drain");
    atoll_security_context_release(s.ctx);
    sup_shutdown(rt);
    pthread_mutex_destroy(&t.mu);
    tc_thread_cleanup();
}

/* ~1,500 connections held by the application, closed from one callback. */
#define MASS_CONNS 1500

typedef struct mass_app {
    atoll_conn *conns[MASS_CONNS]; /* isolate only */
    int n;                         /* isolate only */
    _Atomic long closed, double_closed;
    int closed_flag[MASS_CONNS]; /* isolate only */
    sup_latch closed_latch;
} mass_app;

/* Each connection's user pointer: the application and its index. */
typedef struct mass_ref {
    mass_app *app;
    int index;
} mass_ref;

static mass_ref mass_refs[MASS_CONNS];

static void mass_on_closed_ref(atoll_conn *c, int status, void *user)
{
    mass_ref *r = user;
    (void)c;
    (void)status;
    if (r->app->closed_flag[r->index]++)
        atomic_fetch_add(&r->app->double_closed, 1);
    atomic_fetch_add(&r->app->closed, 1);
    sup_latch_signal(&r->app->closed_latch);
}

static void mass_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    mass_app *a = s->app;
    (void)server;
    SUP_CHECK(a->n < MASS_CONNS, "too many connections");
    if (a->n >= MASS_CONNS) {
        atoll_conn_close(c);
        return;
    }
    int i = a->n++;
    mass_refs[i] = (mass_ref){.app = a, .index = i};
    a->conns[i] = c;
    static const atoll_conn_callbacks cb = {.on_closed = mass_on_closed_ref};
    atoll_conn_set_callbacks(c, &cb, &mass_refs[i]);
    /* An irregular third of them stop receiving, so the closes below mix
     * one-SQE cancels with two-SQE shutdown+close chains at every offset of
     * the SQ (a regular pattern could keep every chain aligned). */
    uint32_t h = (uint32_t)i * 2654435761u;
    if ((h >> 16) % 3 == 0)
        atoll_conn_pause(c);
}

static void mass_close_all(atoll_isolate *self, void *arg)
{
    mass_app *a = arg;
    (void)self;
    for (int i = 0; i < a->n; i++)
        atoll_conn_close(a->conns[i]);
}

Test(io_core, mass_close_in_one_turn_plain, .timeout = 120)
{
    signal(SIGPIPE, SIG_IGN);
    atoll_runtime *rt = sup_start_n(1); /* default SQ: 256 entries */
    mass_app *a = calloc(1, sizeof(*a));
    cr_assert_not_null(a);
    sup_latch_init(&a->closed_latch);
    srv s;
    srv_init(&s, rt, 0, NULL);
    s.on_conn = mass_on_conn;
    s.app = a;
    srv_bind(&s);
    int baseline = sup_fd_count();
    static int fds[MASS_CONNS];
    for (int i = 0; i < MASS_CONNS; i++)
        fds[i] = connect_plain(s.port);
    cr_assert(sup_latch_wait(&s.conns, MASS_CONNS, SUP_WAIT_MS), "delivered %ld of %d", sup_latch_get(&s.conns),
              MASS_CONNS);
    /* The close storm: one callback (a task on the isolate) closes all. */
    cr_assert_eq(sup_run_on(rt, 0, mass_close_all, a), 0);
    bool all = sup_latch_wait(&a->closed_latch, MASS_CONNS, SUP_WAIT_MS);
    cr_assert(all, "on_closed ran for %ld of %d connections closed in one turn", atomic_load(&a->closed), MASS_CONNS);
    cr_assert_eq(atomic_load(&a->double_closed), 0);
    /* Every client sees its connection end. */
    int64_t end = sup_now_ms() + SUP_WAIT_MS;
    int ended = 0;
    for (int i = 0; i < MASS_CONNS; i++) {
        struct pollfd pf = {.fd = fds[i], .events = POLLIN};
        int left = (int)(end - sup_now_ms());
        if (poll(&pf, 1, left > 0 ? left : 0) == 1) {
            char b;
            ssize_t r = recv(fds[i], &b, 1, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno == ECONNRESET))
                ended++;
        }
        close(fds[i]);
    }
    cr_assert_eq(ended, MASS_CONNS, "%d of %d clients saw their connection end", ended, MASS_CONNS);
    /* Drain: the isolate exits once nothing is open, so a connection that
     * never got all its completions shows up as a drain timeout. */
    int drc = atoll_runtime_drain(rt, 10000);
    int fdn = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_eq(drc, 0, "drain: %s (an operation of a closed connection never completed)", atoll_error_name(drc));
    cr_assert_leq(fdn, baseline, "open descriptors: %d, baseline %d", fdn, baseline);
    sup_assert_no_failures();
    sup_shutdown(rt);
    free(a);
}

/* ======================================================================= */
/* Defect 2: stop and teardown                                            */
/* ======================================================================= */

/* The send path: an application writing odd-sized chunks through write
 * events (records and output ring boundaries fall anywhere) delivers every
 * byte once and in order, TLS and plain. */
#define SW_TOTAL (3u << 20)

typedef struct sw_app {
    size_t written;
    unsigned step;
    _Atomic long closed;
} sw_app;

static size_t sw_chunk(unsigned step)
{
    return 1 + (step * 7919u) % 40000u; /* 1 .. 40,000 bytes, no alignment */
}

static void sw_fill(atoll_conn *c, sw_app *a)
{
    static uint8_t buf[40000];
    while (a->written < SW_TOTAL) {
        size_t n = sw_chunk(a->step);
        if (n > SW_TOTAL - a->written)
            n = SW_TOTAL - a->written;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_at(a->written + i);
        ssize_t w = atoll_conn_write(c, buf, n);
        SUP_CHECK(w >= 0, "write: %zd", w);
        if (w <= 0) {
            atoll_conn_set_write_events(c, true); /* one-shot: ask for the next */
            return;
        }
        a->written += (size_t)w;
        a->step++;
    }
    SUP_CHECK(atoll_conn_shutdown(c, ATOLL_SHUT_SEND) == 0, "shutdown(SEND)");
}

static void sw_on_write(atoll_conn *c, void *user)
{
    sw_fill(c, user);
}

static void sw_on_read_closed(atoll_conn *c, void *user)
{
    (void)user;
    atoll_conn_close(c);
}

static void sw_on_closed(atoll_conn *c, int status, void *user)
{
    sw_app *a = user;
    (void)c;
    (void)status;
    atomic_fetch_add(&a->closed, 1);
}

static void sw_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    (void)server;
    static const atoll_conn_callbacks cb = {
        .on_write = sw_on_write, .on_read_closed = sw_on_read_closed, .on_closed = sw_on_closed};
    atoll_conn_set_callbacks(c, &cb, s->app); /* write events on: filling starts next turn */
}

/* Reads through `rd` until end of stream in small reads (so the server's
 * output backs up); returns the count, and the first offset whose byte is
 * wrong in *bad (SIZE_MAX: none). */
static size_t sw_read_all(ssize_t (*rd)(void *ctx, uint8_t *buf, size_t len), void *ctx, size_t *bad)
{
    uint8_t buf[1500];
    size_t got = 0;
    *bad = SIZE_MAX;
    for (;;) {
        ssize_t n = rd(ctx, buf, sizeof(buf));
        if (n <= 0)
            return got;
        for (ssize_t i = 0; i < n; i++)
            if (*bad == SIZE_MAX && buf[i] != pattern_at(got + (size_t)i))
                *bad = got + (size_t)i;
        got += (size_t)n;
    }
}

static ssize_t sw_rd_tls(void *ctx, uint8_t *buf, size_t len)
{
    return tc_read(ctx, buf, len);
}

static ssize_t sw_rd_plain(void *ctx, uint8_t *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(*(int *)ctx, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static void sw_run(bool tls)
{
    atoll_runtime *rt = sup_start_n(1);
    sw_app a;
    memset(&a, 0, sizeof(a));
    srv s;
    srv_init(&s, rt, 0, tls ? server_ctx() : NULL);
    s.on_conn = sw_on_conn;
    s.app = &a;
    srv_bind(&s);
    size_t got, bad;
    if (tls) {
        tc_conn *c;
        tc_options o = client_opts(s.port);
        cr_assert_eq(tc_connect(&c, &o), 0, "connect: %s", tc_error_string(NULL));
        got = sw_read_all(sw_rd_tls, c, &bad);
        tc_close(c);
    } else {
        int fd = connect_plain(s.port);
        got = sw_read_all(sw_rd_plain, &fd, &bad);
        close(fd);
    }
    cr_assert_eq(got, SW_TOTAL, "%s: the client read %zu of %u bytes", tls ? "TLS" : "plain", got, SW_TOTAL);
    cr_assert_eq(bad, SIZE_MAX, "%s: byte %zu is wrong", tls ? "TLS" : "plain", bad);
    sup_assert_no_failures();
    if (s.ctx)
        atoll_security_context_release(s.ctx);
    sup_shutdown(rt);
    if (tls)
        tc_thread_cleanup();
}

Test(io_core, writes_arrive_whole_and_in_order_tls, .timeout = 60)
{
    sw_run(true);
}

Test(io_core, writes_arrive_whole_and_in_order_plain, .timeout = 60)
{
    sw_run(false);
}

/* ======================================================================= */

#define STOP_CONNS 500

typedef struct wr_app {
    _Atomic long delivered, closed, double_closed, short_conns;
    sup_latch short_latch;
} wr_app;

typedef struct wr_conn {
    wr_app *app;
    bool went_short;
    int closed;
} wr_conn;

static void wr_fill(atoll_conn *c, wr_conn *w)
{
    static uint8_t chunk[16384];
    for (;;) {
        ssize_t n = atoll_conn_write(c, chunk, sizeof(chunk));
        if (n < (ssize_t)sizeof(chunk)) {
            if (!w->went_short) {
                w->went_short = true;
                atomic_fetch_add(&w->app->short_conns, 1);
                sup_latch_signal(&w->app->short_latch);
            }
            atoll_conn_set_write_events(c, true);
            return;
        }
    }
}

static void wr_on_write(atoll_conn *c, void *user)
{
    wr_fill(c, user);
}

static void wr_on_read(atoll_conn *c, void *user)
{
    (void)user;
    uint8_t buf[4096];
    while (atoll_conn_read(c, buf, sizeof(buf)) > 0)
        ;
}

static void wr_on_closed(atoll_conn *c, int status, void *user)
{
    wr_conn *w = user;
    wr_app *a = w->app;
    (void)c;
    (void)status;
    if (w->closed++)
        atomic_fetch_add(&a->double_closed, 1);
    else
        free(w);
    atomic_fetch_add(&a->closed, 1);
}

static void wr_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    wr_app *a = s->app;
    (void)server;
    wr_conn *w = calloc(1, sizeof(*w));
    SUP_CHECK(w != NULL, "calloc");
    w->app = a;
    atomic_fetch_add(&a->delivered, 1);
    static const atoll_conn_callbacks cb = {.on_read = wr_on_read, .on_write = wr_on_write, .on_closed = wr_on_closed};
    atoll_conn_set_callbacks(c, &cb, w);
    wr_fill(c, w); /* writes until write returns short: queued output */
}

Test(io_core, stop_with_open_tls_conns, .timeout = 180)
{
    signal(SIGPIPE, SIG_IGN);
    int baseline = sup_fd_count();
    atoll_runtime *rt = sup_start_n(1);
    wr_app a;
    memset(&a, 0, sizeof(a));
    sup_latch_init(&a.short_latch);
    srv s;
    srv_init(&s, rt, 0, server_ctx());
    s.on_conn = wr_on_conn;
    s.app = &a;
    srv_bind(&s);
    static tc_conn *c[STOP_CONNS];
    static const char hello[] = "mid-transfer";
    for (int i = 0; i < STOP_CONNS; i++) {
        tc_options o = client_opts(s.port);
        int rc = tc_connect(&c[i], &o);
        cr_assert_eq(rc, 0, "client %d: %s", i, tc_error_string(NULL));
        /* A few bytes towards the server; the client never reads. */
        cr_assert_eq(tc_write_all(c[i], hello, sizeof(hello)), 0);
    }
    cr_assert(sup_latch_wait(&a.short_latch, STOP_CONNS, SUP_WAIT_MS), "%ld of %d connections have writes queued",
              atomic_load(&a.short_conns), STOP_CONNS);
    int stop = atoll_runtime_stop(rt);
    int join = atoll_runtime_join(rt);
    int destroy = atoll_runtime_destroy(rt);
    cr_assert_eq(stop, 0);
    cr_assert_eq(join, 0);
    cr_assert_eq(destroy, 0);
    cr_assert_eq(atomic_load(&a.closed), atomic_load(&a.delivered), "on_closed ran for %ld of %ld connections",
                 atomic_load(&a.closed), atomic_load(&a.delivered));
    cr_assert_eq(atomic_load(&a.double_closed), 0);
    cr_assert_eq(atomic_load(&s.closed_calls), 1, "the server's on_closed at stop");
    int after_destroy = sup_fd_count();
    for (int i = 0; i < STOP_CONNS; i++)
        tc_close(c[i]);
    atoll_security_context_release(s.ctx);
    int after = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(after, baseline,
                  "open descriptors after destroy and closing the clients: %d, baseline %d "
                  "(after destroy, clients open: %d)",
                  after, baseline, after_destroy);
    cr_assert_leq(after_destroy, baseline + STOP_CONNS, "after destroy: %d descriptors, want at most %d", after_destroy,
                  baseline + STOP_CONNS);
    sup_assert_no_failures();
    tc_thread_cleanup();
}

/* A host thread that keeps opening and closing pipes, and checks that none
 * of the pipes it holds is ever closed or replaced behind its back. */
#define GUARD_HELD 48

typedef struct guard {
    _Atomic bool stop;
    _Atomic long checks, violations;
    char first[160];
} guard;

typedef struct held_pipe {
    int r, w;
    ino_t ino;
} held_pipe;

static bool pipe_intact(const held_pipe *p, char *why, size_t cap)
{
    struct stat sr, sw;
    if (fstat(p->r, &sr) < 0 || fstat(p->w, &sw) < 0) {
        snprintf(why, cap, "pipe (%d,%d): fstat: %s", p->r, p->w, strerror(errno));
        return false;
    }
    if (sr.st_ino != p->ino || sw.st_ino != p->ino) {
        snprintf(why, cap, "pipe (%d,%d): descriptor now refers to another file", p->r, p->w);
        return false;
    }
    char b = 'x';
    if (write(p->w, &b, 1) != 1 || read(p->r, &b, 1) != 1) {
        snprintf(why, cap, "pipe (%d,%d): write/read: %s", p->r, p->w, strerror(errno));
        return false;
    }
    return true;
}

static void *guard_main(void *arg)
{
    guard *g = arg;
    held_pipe held[GUARD_HELD];
    int n = 0;
    unsigned k = 0;
    while (!atomic_load(&g->stop)) {
        unsigned slot = k++ % GUARD_HELD;
        if ((int)slot < n) {
            close(held[slot].r);
            close(held[slot].w);
        }
        int p[2];
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
            struct stat st;
            fstat(p[0], &st);
            held[slot] = (held_pipe){.r = p[0], .w = p[1], .ino = st.st_ino};
        } else {
            held[slot] = (held_pipe){.r = -1, .w = -1};
        }
        if ((int)slot >= n)
            n = (int)slot + 1;
        for (int i = 0; i < n; i++) {
            if (held[i].r < 0)
                continue;
            char why[160];
            if (!pipe_intact(&held[i], why, sizeof(why))) {
                if (atomic_fetch_add(&g->violations, 1) == 0)
                    snprintf(g->first, sizeof(g->first), "%s", why);
                held[i].r = held[i].w = -1; /* not ours any more: never close it */
            }
        }
        atomic_fetch_add(&g->checks, 1);
    }
    for (int i = 0; i < n; i++)
        if (held[i].r >= 0) {
            close(held[i].r);
            close(held[i].w);
        }
    return NULL;
}

/* Clients that connect, send, and close without end; EBADF on their own
 * socket means it was closed behind their back. */
typedef struct churner {
    uint16_t port;
    _Atomic bool stop;
    _Atomic long rounds, ebadf;
} churner;

static void *churner_main(void *arg)
{
    churner *ch = arg;
    static const char msg[1024];
    while (!atomic_load(&ch->stop)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_in in = {
            .sin_family = AF_INET, .sin_port = htons(ch->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0 && errno == EBADF)
            atomic_fetch_add(&ch->ebadf, 1);
        else if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EBADF)
            atomic_fetch_add(&ch->ebadf, 1);
        if (close(fd) < 0 && errno == EBADF)
            atomic_fetch_add(&ch->ebadf, 1);
        atomic_fetch_add(&ch->rounds, 1);
    }
    return NULL;
}

#define STOP_ROUNDS      20
#define STOP_ROUND_CONNS 100

Test(io_core, stop_never_closes_host_descriptors, .timeout = 180)
{
    signal(SIGPIPE, SIG_IGN);
    int baseline = sup_fd_count();
    guard g;
    memset(&g, 0, sizeof(g));
    pthread_t gt;
    cr_assert_eq(pthread_create(&gt, NULL, guard_main, &g), 0);
    long ebadf = 0;
    int rounds = 0;
    static uint8_t big[65536];
    for (int round = 0; round < STOP_ROUNDS && atomic_load(&g.violations) == 0 && ebadf == 0; round++) {
        rounds++;
        atoll_runtime *rt = sup_start_n(1);
        ns_app app;
        ns_app_init(&app, rt);
        ns_server s;
        cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
        /* Connections mid-transfer: the client sends and never reads, the
         * echo server's writes go short and queue. */
        int fds[STOP_ROUND_CONNS];
        for (int i = 0; i < STOP_ROUND_CONNS; i++) {
            fds[i] = connect_plain(s.port);
            set_nonblock(fds[i]);
            (void)send(fds[i], big, sizeof(big), MSG_NOSIGNAL);
        }
        churner ch = {.port = s.port};
        pthread_t ct[2];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_create(&ct[i], NULL, churner_main, &ch), 0);
        /* Stop while connections come and go. */
        cr_assert(sup_latch_wait(&app.conn_closed, 20, SUP_WAIT_MS), "round %d: churned connections", round);
        int stop = atoll_runtime_stop(rt);
        int join = atoll_runtime_join(rt);
        int destroy = atoll_runtime_destroy(rt);
        atomic_store(&ch.stop, true);
        for (int i = 0; i < 2; i++)
            pthread_join(ct[i], NULL);
        for (int i = 0; i < STOP_ROUND_CONNS; i++)
            close(fds[i]);
        ebadf += atomic_load(&ch.ebadf);
        cr_assert_eq(stop, 0);
        cr_assert_eq(join, 0);
        cr_assert_eq(destroy, 0);
    }
    atomic_store(&g.stop, true);
    pthread_join(gt, NULL);
    cr_assert_eq(atomic_load(&g.violations), 0,
                 "a host thread's descriptor was closed behind its back during stop (%ld times in %ld checks, "
                 "stop %d of %d); first: %s",
                 atomic_load(&g.violations), atomic_load(&g.checks), rounds, STOP_ROUNDS, g.first);
    cr_assert_eq(ebadf, 0, "a client socket of the host was closed behind its back (%ld EBADF, stop %d of %d)", ebadf,
                 rounds, STOP_ROUNDS);
    cr_assert_gt(atomic_load(&g.checks), 0);
    int after = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(after, baseline, "open descriptors: %d, baseline %d", after, baseline);
    sup_assert_no_failures();
}

/* ======================================================================= */
/* The connection cap: accepting pauses at it and resumes below it         */
/* ======================================================================= */

#define CAP_CONNS 2

typedef struct cap_app {
    atoll_conn *held[CAP_CONNS + 1]; /* isolate only */
    int nheld;
    _Atomic int connect_status;
    sup_latch connected;
} cap_app;

static cap_app g_cap;

static void cap_on_conn(srv *s, atoll_server *server, atoll_conn *c)
{
    (void)s;
    (void)server;
    atoll_conn_set_callbacks(c, NULL, NULL);
    if (g_cap.nheld <= CAP_CONNS)
        g_cap.held[g_cap.nheld++] = c;
}

static void cap_close_first(atoll_isolate *self, void *arg)
{
    (void)self;
    (void)arg;
    atoll_conn_close(g_cap.held[0]);
}

static void cap_connected(atoll_conn *c, int status, void *user)
{
    (void)user;
    if (c)
        atoll_conn_close(c);
    atomic_store(&g_cap.connect_status, status);
    sup_latch_signal(&g_cap.connected);
}

static void cap_connect(atoll_isolate *self, void *arg)
{
    const srv *s = arg;
    int rc = atoll_connect(self, "127.0.0.1", s->port, NULL, cap_connected, NULL);
    if (rc < 0) {
        atomic_store(&g_cap.connect_status, rc);
        sup_latch_signal(&g_cap.connected);
    }
}

static int64_t cap_accepted(srv *s)
{
    atoll_server_stats st;
    memset(&st, 0, sizeof(st));
    cr_assert_eq(srv_op(s, 0, &st), 0);
    return (int64_t)st.accepted;
}

/* conns_per_isolate = 2: a third client waits in the listen queue (not
 * accepted, not reset) while two connections are open, is accepted once one
 * closes, and an outgoing connection at the cap fails with ATOLL_E_CONN_CAP. */
Test(io_core, conn_cap_pauses_and_resumes_accepting, .timeout = 60)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&g_cap, 0, sizeof(g_cap));
    sup_latch_init(&g_cap.connected);
    atoll_runtime_options o;
    sup_options(&o, 1);
    o.conns_per_isolate = CAP_CONNS;
    atoll_runtime *rt = sup_start(&o);
    atoll_runtime_info info;
    atoll_runtime_info_get(rt, &info);
    cr_assert_eq(info.conns_per_isolate, CAP_CONNS);
    srv s;
    srv_init(&s, rt, 0, NULL);
    s.on_conn = cap_on_conn;
    srv_bind(&s);

    int fds[CAP_CONNS + 1];
    for (int i = 0; i < CAP_CONNS + 1; i++)
        fds[i] = connect_plain(s.port); /* all complete in the kernel's queue */
    int64_t end = sup_now_ms() + SUP_WAIT_MS;
    while (cap_accepted(&s) < CAP_CONNS && sup_now_ms() < end)
        poll(NULL, 0, 2);
    cr_assert_eq(cap_accepted(&s), CAP_CONNS);
    /* Several loop turns later (each srv_op is a task round trip through
     * the isolate), the third is still not accepted: accepting is paused. */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(cap_accepted(&s), CAP_CONNS, "accepted beyond the cap");

    /* At the cap an outgoing connection is refused with its own code. */
    cr_assert_eq(sup_run_on(rt, 0, cap_connect, &s), 0);
    cr_assert(sup_latch_wait(&g_cap.connected, 1, SUP_WAIT_MS), "connect callback");
    cr_assert_eq(atomic_load(&g_cap.connect_status), ATOLL_E_CONN_CAP, "connect at the cap: %s",
                 atoll_error_name(atomic_load(&g_cap.connect_status)));

    /* One closes: the waiting client is accepted, nothing was reset. */
    cr_assert_eq(sup_run_on(rt, 0, cap_close_first, NULL), 0);
    end = sup_now_ms() + SUP_WAIT_MS;
    while (cap_accepted(&s) < CAP_CONNS + 1 && sup_now_ms() < end)
        poll(NULL, 0, 2);
    cr_assert_eq(cap_accepted(&s), CAP_CONNS + 1, "the waiting client was not accepted below the cap");
    static const char ping[] = "ping";
    cr_assert_eq(send(fds[CAP_CONNS], ping, sizeof(ping), MSG_NOSIGNAL), (ssize_t)sizeof(ping),
                 "the waiting client was reset");
    for (int i = 0; i < CAP_CONNS + 1; i++)
        close(fds[i]);
    sup_shutdown(rt);
    sup_assert_no_failures();
}
