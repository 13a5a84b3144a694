/*
 * test_client: atoll_connect from an isolate, against atoll's own servers
 * and against openssl s_server (an independent server): plain and TLS,
 * verification by CA file and host name, insecure mode, ALPN, resumption,
 * refused / unknown host / timeout errors.
 */
#include "net_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#define CERT(f) NS_CERT(f)

typedef struct cl {
    const char *host;
    int port;
    atoll_connect_options opts;
    const char *send; /* written once connected */
    size_t expect;    /* bytes to read before closing; 0: read until EOF */
    int status;       /* on_connect status */
    char alpn[32];
    bool resumed;
    char got[65536];
    size_t got_len;
    atoll_session *session; /* exported after the reads */
    sup_latch done;
} cl;

static void cl_finish(atoll_conn *c, cl *x)
{
    if (!x->session)
        x->session = atoll_conn_session(c);
    atoll_conn_close(c);
}

static void cl_on_read(atoll_conn *c, void *user)
{
    cl *x = user;
    ssize_t n;
    while ((n = atoll_conn_read(c, x->got + x->got_len, sizeof(x->got) - 1 - x->got_len)) > 0)
        x->got_len += (size_t)n;
    if (x->expect && x->got_len >= x->expect)
        cl_finish(c, x);
}

static void cl_on_read_closed(atoll_conn *c, void *user)
{
    cl_finish(c, user);
}

static void cl_on_closed(atoll_conn *c, int status, void *user)
{
    cl *x = user;
    (void)c;
    (void)status;
    sup_latch_signal(&x->done);
}

static void cl_on_connect(atoll_conn *c, int status, void *user)
{
    cl *x = user;
    x->status = status;
    if (!c) {
        sup_latch_signal(&x->done);
        return;
    }
    const char *p = atoll_conn_selected_protocol(c);
    snprintf(x->alpn, sizeof(x->alpn), "%s", p ? p : "");
    x->resumed = atoll_conn_resumed(c);
    static const atoll_conn_callbacks cb = {
        .on_read = cl_on_read, .on_read_closed = cl_on_read_closed, .on_closed = cl_on_closed};
    atoll_conn_set_callbacks(c, &cb, x);
    if (x->send) {
        ssize_t w = atoll_conn_write(c, x->send, strlen(x->send));
        SUP_CHECK(w == (ssize_t)strlen(x->send), "write %zd", w);
    }
}

static void cl_start_on(atoll_isolate *self, void *arg)
{
    cl *x = arg;
    int rc = atoll_connect(self, x->host, x->port, &x->opts, cl_on_connect, x);
    if (rc < 0) {
        x->status = rc;
        sup_latch_signal(&x->done);
    }
}

/* Runs one client on isolate `iso` and waits for it to finish. */
static void cl_run(atoll_runtime *rt, uint32_t iso, cl *x)
{
    sup_latch_init(&x->done);
    x->got_len = 0;
    cr_assert_eq(sup_run_on(rt, iso, cl_start_on, x), 0);
    cr_assert(sup_latch_wait(&x->done, 1, SUP_WAIT_MS), "client did not finish");
}

static cl *cl_new(const char *host, int port)
{
    cl *x = calloc(1, sizeof(*x));
    x->host = host;
    x->port = port;
    atoll_connect_options_init(&x->opts);
    return x;
}

static atoll_security_context *server_ctx(void)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    return ctx;
}

Test(client, plain_connect_echo_against_atoll_server, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    cl *x = cl_new("127.0.0.1", s.port);
    x->send = "hello over plain tcp";
    x->expect = strlen(x->send);
    cl_run(rt, 1, x);
    cr_assert_eq(x->status, 0, "%s", atoll_strerror(x->status));
    cr_assert_eq(x->got_len, x->expect);
    cr_assert_eq(memcmp(x->got, x->send, x->expect), 0);
    cr_assert_null(x->session, "plain TCP has no session");
    free(x);
    sup_shutdown(rt);
}

Test(client, tls_verify_name_alpn_and_resume_against_atoll_server, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    const char *protos[] = {"h2", "http/1.1"};
    app.opts.supported_protocols = protos;
    app.opts.supported_protocols_count = 2;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);

    const char *offer[] = {"http/1.1"};
    cl *x = cl_new("127.0.0.1", s.port);
    x->opts.secure = true;
    x->opts.ca_file = CERT("trusted_certs.pem");
    x->opts.server_name = "localhost";
    x->opts.alpn = offer;
    x->opts.alpn_count = 1;
    x->send = "hello over tls";
    x->expect = strlen(x->send);
    cl_run(rt, 1, x);
    cr_assert_eq(x->status, 0, "%s", atoll_strerror(x->status));
    cr_assert_eq(x->got_len, x->expect);
    cr_assert_str_eq(x->alpn, "http/1.1");
    cr_assert_not(x->resumed);
    cr_assert_not_null(x->session, "a session to resume");

    /* Resume with it, from another isolate than the one that made it. */
    cl *y = cl_new("127.0.0.1", s.port);
    y->opts = x->opts;
    y->opts.resume = x->session;
    y->send = "again";
    y->expect = 5;
    cl_run(rt, 0, y);
    cr_assert_eq(y->status, 0, "%s", atoll_strerror(y->status));
    cr_assert(y->resumed, "the session was not resumed");
    cr_assert_geq(atomic_load(&s.resumed), 1);
    atoll_session_free(x->session);
    atoll_session_free(y->session);

    /* Name verification failure is an error. */
    cl *z = cl_new("127.0.0.1", s.port);
    z->opts = x->opts;
    z->opts.resume = NULL;
    z->opts.server_name = "not-localhost.example";
    cl_run(rt, 1, z);
    cr_assert_eq(z->status, ATOLL_E_CERTIFICATE, "wrong name: %s", atoll_error_name(z->status));
    /* No trusted roots: verification fails; insecure skips it. */
    z->opts.server_name = NULL;
    z->opts.ca_file = NULL;
    cl_run(rt, 1, z);
    cr_assert_eq(z->status, ATOLL_E_CERTIFICATE, "no roots: %s", atoll_error_name(z->status));
    z->opts.insecure = true;
    z->send = "x";
    z->expect = 1;
    cl_run(rt, 1, z);
    cr_assert_eq(z->status, 0, "insecure: %s", atoll_strerror(z->status));
    atoll_session_free(z->session);
    free(x);
    free(y);
    free(z);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

/* Out of process descriptors (a low RLIMIT_NOFILE): accepted connections
 * take none (direct descriptors), so the server keeps serving; what needs
 * one (atoll_connect's socket, a new listener) fails with -EMFILE, and
 * works again once descriptors are back. */
Test(client, emfile_fails_connect_and_bind_clearly_while_serving, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.echo = true;
    ns_server s, t;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    int held[3];
    for (int i = 0; i < 3; i++)
        cr_assert_geq(held[i] = ns_connect(AF_INET, "127.0.0.1", s.port), 0);
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0); /* the lowest free descriptor: the limit makes it the last */
    cr_assert_geq(lowest, 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    cr_assert_lt(dup(0), 0, "the limit does not bite");
    cr_assert_eq(errno, EMFILE);

    for (int i = 0; i < 3; i++)
        cr_assert_eq(ns_echo_roundtrip(held[i], 10), 0, "connection %d not served at EMFILE", i);
    cl *x = cl_new("127.0.0.1", s.port);
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, -EMFILE, "%s", atoll_error_name(x->status));
    int rc = ns_bind(&app, &t, 0, "127.0.0.1", 0);
    cr_assert_eq(rc, -EMFILE, "%s", atoll_error_name(rc));

    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    x->send = "descriptors are back";
    x->expect = strlen(x->send);
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, 0, "%s", atoll_error_name(x->status));
    cr_assert_eq(x->got_len, x->expect);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    free(x);
    sup_shutdown(rt);
}

Test(client, errors_refused_lookup_timeout, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    /* A port nobody listens on. */
    uint16_t dead;
    int fd = ns_bound_socket(&dead);
    cr_assert_geq(fd, 0);
    cl *x = cl_new("127.0.0.1", dead);
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, -ECONNREFUSED, "%s", atoll_error_name(x->status));
    /* Listening but never answering the TLS handshake: timeout. */
    listen(fd, 4);
    x->opts.secure = true;
    x->opts.insecure = true;
    x->opts.timeout_ms = 300;
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, ATOLL_E_TIMEDOUT, "%s", atoll_error_name(x->status));
    /* An unreadable CA file fails the connect through on_connect. */
    cl *w = cl_new("127.0.0.1", dead);
    w->opts.secure = true;
    w->opts.ca_file = "/nonexistent/ca.pem";
    cl_run(rt, 0, w);
    cr_assert_eq(w->status, ATOLL_E_TLS_MATERIAL, "%s", atoll_error_name(w->status));
    free(w);
    close(fd);
    cl *y = cl_new("no-such-host.invalid", 443);
    cl_run(rt, 0, y);
    cr_assert_eq(y->status, ATOLL_E_LOOKUP, "%s", atoll_error_name(y->status));
    /* Argument errors are synchronous. */
    cl *z = cl_new("127.0.0.1", 0);
    cl_run(rt, 0, z);
    cr_assert_eq(z->status, -EINVAL);
    free(x);
    free(y);
    free(z);
    sup_shutdown(rt);
}

Test(client, tls_against_openssl_s_server, .timeout = 60)
{
    /* An ephemeral port for s_server. */
    uint16_t port;
    int fd = ns_bound_socket(&port);
    cr_assert_geq(fd, 0);
    close(fd);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        char portarg[16];
        snprintf(portarg, sizeof(portarg), "%u", port);
        execlp("timeout", "timeout", "30", "openssl", "s_server", "-accept", portarg, "-4", "-cert",
               CERT("server_cert.pem"), "-cert_chain", CERT("intermediate_cert.pem"), "-key", CERT("server_key.pem"),
               "-www", "-alpn", "http/1.1", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    /* s_server prints ACCEPT once it listens. */
    FILE *out = fdopen(pipefd[0], "r");
    char line[256];
    bool ready = false;
    while (!ready && fgets(line, sizeof(line), out))
        ready = strstr(line, "ACCEPT") != NULL;
    cr_assert(ready, "openssl s_server did not start");

    atoll_runtime *rt = sup_start_n(1);
    const char *offer[] = {"http/1.1"};
    cl *x = cl_new("127.0.0.1", port);
    x->opts.secure = true;
    x->opts.ca_file = CERT("trusted_certs.pem");
    x->opts.server_name = "localhost";
    x->opts.alpn = offer;
    x->opts.alpn_count = 1;
    x->send = "GET / HTTP/1.0\r\n\r\n";
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, 0, "%s", atoll_strerror(x->status));
    x->got[x->got_len] = '\0';
    cr_assert(strstr(x->got, "HTTP/1.0 200 ok"), "s_server answered:\n%.200s", x->got);
    cr_assert_str_eq(x->alpn, "http/1.1");
    atoll_session_free(x->session);
    free(x);
    sup_shutdown(rt);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    fclose(out);
}

/* ---- tickets and data in one flight -------------------------------------- */

/* A raw wolfSSL TLS 1.3 server on a socket the test owns. After the
 * handshake it seals two NewSessionTickets and then the application data
 * into memory, and sends all of it with one send(): the client's ring then
 * delivers tickets and data in one segment. */
typedef struct tk_server {
    int lfd;
    uint16_t port;
    const char *data;
    int result; /* 0, or the step that failed (negative) */
    uint8_t flight[8192];
    size_t flight_len;
} tk_server;

static int tk_capture(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    tk_server *t = ctx;
    (void)ssl;
    if (t->flight_len + (size_t)sz > sizeof(t->flight))
        return WOLFSSL_CBIO_ERR_GENERAL;
    memcpy(t->flight + t->flight_len, buf, (size_t)sz);
    t->flight_len += (size_t)sz;
    return sz;
}

static void *tk_serve(void *arg)
{
    tk_server *t = arg;
    t->result = -1;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    if (!ctx)
        return NULL;
    int fd = -1;
    WOLFSSL *ssl = NULL;
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, CERT("server_chain.pem")) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, CERT("server_key.pem"), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        t->result = -2;
        goto out;
    }
    fd = accept(t->lfd, NULL, NULL);
    ssl = fd >= 0 ? wolfSSL_new(ctx) : NULL;
    if (!ssl || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS || wolfSSL_accept(ssl) != WOLFSSL_SUCCESS) {
        t->result = -3;
        goto out;
    }
    /* From here on, every record goes into t->flight. */
    wolfSSL_SSLSetIOSend(ssl, tk_capture);
    wolfSSL_SetIOWriteCtx(ssl, t);
    if (wolfSSL_send_SessionTicket(ssl) != WOLFSSL_SUCCESS || wolfSSL_send_SessionTicket(ssl) != WOLFSSL_SUCCESS) {
        t->result = -4;
        goto out;
    }
    int n = (int)strlen(t->data);
    if (wolfSSL_write(ssl, t->data, n) != n) {
        t->result = -5;
        goto out;
    }
    if (send(fd, t->flight, t->flight_len, MSG_NOSIGNAL) != (ssize_t)t->flight_len) {
        t->result = -6;
        goto out;
    }
    /* Wait for the client to close (its close_notify or FIN). */
    char sink[256];
    while (recv(fd, sink, sizeof(sink), 0) > 0)
        ;
    t->result = 0;
out:
    wolfSSL_free(ssl);
    if (fd >= 0)
        close(fd);
    wolfSSL_CTX_free(ctx);
#ifdef FP_ECC
    wc_ecc_fp_free(); /* this thread's fixed-point cache */
#endif
    return NULL;
}

/* Regression: after a post-handshake message wolfSSL_peek returns
 * WANT_READ once its own input buffer is empty, although more records sit
 * in the connection's segments; the client then waited for bytes that had
 * already arrived (seen against nginx, which sends two tickets with its
 * first response, with the wolfSSL build made for atoll). */
Test(client, tls_tickets_and_data_in_one_flight, .timeout = 60)
{
    tk_server t = {.data = "data after two tickets"};
    t.lfd = ns_bound_socket(&t.port);
    cr_assert_geq(t.lfd, 0);
    cr_assert_eq(listen(t.lfd, 4), 0);
    /* The runtime first: its creation initialises wolfSSL, which must not
     * run concurrently with the server thread's first wolfSSL call. */
    atoll_runtime *rt = sup_start_n(1);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, tk_serve, &t), 0);
    cl *x = cl_new("127.0.0.1", t.port);
    x->opts.secure = true;
    x->opts.ca_file = CERT("trusted_certs.pem");
    x->opts.server_name = "localhost";
    x->expect = strlen(t.data);
    cl_run(rt, 0, x);
    cr_assert_eq(x->status, 0, "%s", atoll_strerror(x->status));
    x->got[x->got_len] = '\0';
    cr_assert_str_eq(x->got, t.data, "the client read %zu bytes", x->got_len);
    atoll_session_free(x->session);
    free(x);
    sup_shutdown(rt);
    pthread_join(th, NULL);
    close(t.lfd);
    cr_assert_eq(t.result, 0, "the test server failed at step %d", t.result);
}
