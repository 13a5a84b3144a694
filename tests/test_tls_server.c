/*
 * test_tls_server: TLS server sockets on isolates, Dart's starred tests
 * re-expressed (simple connect, failures with bad server credentials, echo
 * and half-close, client certificates, ALPN, bad clients, concurrent
 * clients), handshake timeout, resumption across isolates, and real
 * clients (openssl s_client, curl). Certificates come from
 * tests/certs/make-certs.sh (ctest fixture).
 */
#include "net_support.h"
#include "tls_client.h"

#include <wolfssl/wolfcrypt/ecc.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CERT(f) NS_CERT(f)

static atoll_security_context *server_ctx(void)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    return ctx;
}

static tc_options client_opts(uint16_t port)
{
    return tc_loopback(port, CERT("trusted_certs.pem"), 10000);
}

static void wait_errors(ns_server *s, long n)
{
    cr_assert(sup_latch_wait(&s->errored, n, SUP_WAIT_MS), "server errors: %ld, want %ld", atomic_load(&s->errors), n);
    cr_assert_eq(atomic_load(&s->errors), n, "server errors: %ld, want %ld", atomic_load(&s->errors), n);
}

Test(tls, simple_connect_and_echo, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    tc_options o = client_opts(s.port);
    tc_conn *c;
    int rc = tc_connect(&c, &o);
    cr_assert_eq(rc, 0, "connect: %d %s", rc, tc_error_string(NULL));
    cr_assert_eq(tc_echo(c, 1000), 0);
    cr_assert_eq(tc_echo(c, 200000), 0, "larger than one record and one output buffer");
    cr_assert_eq(atomic_load(&s.connections), 1);
    cr_assert_str_eq(s.peer_subject, "", "no client certificate was sent");
    cr_assert_str_eq(s.alpn, "");
    /* Client close_notify: the server sees read-closed, shuts its side. */
    tc_close(c);
    cr_assert(sup_latch_wait(&app.conn_closed, 1, SUP_WAIT_MS));
    cr_assert_eq(atomic_load(&s.errors), 0);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

Test(tls, bad_server_credentials_fail_every_handshake, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    for (int k = 0; k < 3; k++) {
        ns_app app;
        ns_app_init(&app, rt);
        cr_assert_eq(atoll_security_context_new(&app.ctx), 0);
        const char *chain = k == 2 ? CERT("untrusted_chain.pem") : CERT("server_chain.pem");
        if (k >= 1)
            cr_assert_eq(atoll_security_context_use_certificate_chain_file(app.ctx, chain, ATOLL_ENCODING_PEM), 0);
        if (k == 2)
            cr_assert_eq(atoll_security_context_use_private_key_file(app.ctx, CERT("untrusted_key.pem"),
                                                                     ATOLL_ENCODING_PEM, NULL),
                         0);
        ns_server s;
        cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0, "a context is not checked at bind (Dart A4)");
        tc_options o = client_opts(s.port);
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        cr_assert_neq(rc, 0, "case %d: the client connected", k);
        wait_errors(&s, 1);
        cr_assert_eq(atomic_load(&s.connections), 0);
        cr_assert_neq(s.last_reason[0], '\0', "a reason is given");
        cr_assert_str_eq(s.last_error_peer.text, "127.0.0.1");
        ns_close(&s);
        atoll_security_context_release(app.ctx);
    }
    sup_shutdown(rt);
}

struct cc_case {
    bool request, require, send;
    bool ok;
};

Test(tls, client_certificates_request_and_require, .timeout = 90)
{
    struct cc_case cases[] = {
        {true, false, false, true}, {true, false, true, true}, {false, true, true, true}, {false, true, false, false}};
    atoll_runtime *rt = sup_start_n(1);
    for (int k = 0; k < 4; k++) {
        ns_app app;
        ns_app_init(&app, rt);
        app.ctx = server_ctx();
        app.opts.request_client_certificate = cases[k].request;
        app.opts.require_client_certificate = cases[k].require;
        ns_server s;
        cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
        tc_options o = client_opts(s.port);
        if (cases[k].send) {
            o.cert_file = CERT("client1.pem");
            o.key_file = CERT("client1_key.pem");
        }
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        if (rc == 0 && !cases[k].ok)
            rc = tc_echo(c, 10); /* TLS 1.3: the client learns on its first read (H4) */
        if (cases[k].ok) {
            cr_assert_eq(rc, 0, "case %d: %d %s", k, rc, tc_error_string(NULL));
            cr_assert_eq(tc_echo(c, 100), 0);
            if (cases[k].send) {
                cr_assert(strstr(s.peer_subject, "user1"), "subject %s", s.peer_subject);
                cr_assert(strstr(s.peer_issuer, "clientauthority"), "issuer %s", s.peer_issuer);
            } else {
                cr_assert_str_eq(s.peer_subject, "", "request without a certificate: NULL (H2)");
            }
        } else {
            cr_assert_neq(rc, 0, "case %d: require without a certificate succeeded", k);
            wait_errors(&s, 1);
            cr_assert_eq(atomic_load(&s.last_error), ATOLL_E_CERTIFICATE, "code %s (%s)",
                         atoll_error_name(atomic_load(&s.last_error)), s.last_reason);
        }
        if (c && rc == 0) {
            tc_close(c);
            cr_assert(sup_latch_wait(&app.conn_closed, 1, SUP_WAIT_MS), "case %d: server side closed", k);
        }
        ns_close(&s);
        atoll_security_context_release(app.ctx);
    }
    /* An untrusted client certificate fails the handshake even on request (H5). */
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    app.opts.request_client_certificate = true;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    tc_options o = client_opts(s.port);
    o.cert_file = CERT("untrusted_chain.pem");
    o.key_file = CERT("untrusted_key.pem");
    tc_conn *c;
    int rc = tc_connect(&c, &o);
    if (rc == 0) {
        rc = tc_echo(c, 10);
        tc_close(c);
    }
    cr_assert_neq(rc, 0);
    wait_errors(&s, 1);
    cr_assert_eq(atomic_load(&s.last_error), ATOLL_E_CERTIFICATE, "untrusted: %s (%s)",
                 atoll_error_name(atomic_load(&s.last_error)), s.last_reason);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

struct alpn_case {
    const char *server[3];
    int n;
    const char *client;
    const char *want;
};

Test(tls, alpn_server_preference_and_no_overlap, .timeout = 90)
{
    struct alpn_case cases[] = {
        /* Dart's matrix: (client, server, selected) = ([a,b,c], [c,b,a], c),
         * ([s1,b,e1], [s2,b,e2], b), ([a,b,c], [c], c): server preference. */
        {{"c", "b", "a"}, 3, "a,b,c", "c"}, {{"s2", "b", "e2"}, 3, "s1,b,e1", "b"},
        {{"c"}, 1, "a,b,c", "c"},           {{"a"}, 1, "b", NULL},
        {{NULL}, 0, "a,b", NULL},           {{"a", "b"}, 2, NULL, NULL},
    };
    atoll_runtime *rt = sup_start_n(1);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        ns_app app;
        ns_app_init(&app, rt);
        app.ctx = server_ctx();
        app.opts.supported_protocols = cases[k].n ? cases[k].server : NULL;
        app.opts.supported_protocols_count = (size_t)cases[k].n;
        ns_server s;
        cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
        tc_options o = client_opts(s.port);
        o.alpn = cases[k].client;
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        cr_assert_eq(rc, 0, "case %zu: %s", k, tc_error_string(NULL));
        cr_assert_eq(tc_echo(c, 10), 0);
        const char *got = tc_selected_alpn(c);
        if (cases[k].want) {
            cr_assert(got && !strcmp(got, cases[k].want), "case %zu: client sees %s", k, got ? got : "NULL");
            cr_assert_str_eq(s.alpn, cases[k].want);
        } else {
            cr_assert_null(got, "case %zu: client sees %s", k, got);
            cr_assert_str_eq(s.alpn, "", "case %zu: server sees %s", k, s.alpn);
        }
        tc_close(c);
        cr_assert(sup_latch_wait(&app.conn_closed, 1, SUP_WAIT_MS), "case %zu: server side closed", k);
        ns_close(&s);
        atoll_security_context_release(app.ctx);
    }
    /* Strict: no overlap fails with the RFC 7301 alert. */
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    const char *server[] = {"a"};
    app.opts.supported_protocols = server;
    app.opts.supported_protocols_count = 1;
    app.opts.alpn_strict = true;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    tc_options o = client_opts(s.port);
    o.alpn = "b";
    tc_conn *c;
    cr_assert_neq(tc_connect(&c, &o), 0);
    wait_errors(&s, 1);
    cr_assert_eq(atomic_load(&s.last_error), ATOLL_E_ALPN, "%s", atoll_error_name(atomic_load(&s.last_error)));
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

/* One bad client of each kind: exactly one server error each, with a reason,
 * and the server keeps serving good clients in between (Dart G1, G3). */
Test(tls, bad_clients_each_one_error_server_keeps_serving, .timeout = 90)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    app.opts.handshake_timeout_ms = 300;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    /* Not a TLS record: content type 0. */
    const char garbage_bytes[] = "\x00\x01\x02\x03\x04\x05\x06\x07garbage-garbage-garbage";
    const char *garbage = garbage_bytes;
    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int want[] = {ATOLL_E_PEER_CLOSED, ATOLL_E_HANDSHAKE, ATOLL_E_HANDSHAKE, ATOLL_E_HANDSHAKE_TIMEOUT};
    for (int k = 0; k < 4; k++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
        cr_assert_geq(fd, 0);
        if (k == 1)
            send(fd, garbage, sizeof(garbage_bytes) - 1, MSG_NOSIGNAL);
        if (k == 2)
            send(fd, http, strlen(http), MSG_NOSIGNAL);
        if (k != 3) {
            if (k == 0)
                close(fd);
            else {
                char b[256];
                while (ns_recv(fd, b, sizeof(b)) > 0) /* until the server closes */
                    ;
                close(fd);
            }
        }
        wait_errors(&s, k + 1);
        cr_assert_eq(atomic_load(&s.last_error), want[k], "case %d: %s (%s)", k,
                     atoll_error_name(atomic_load(&s.last_error)), s.last_reason);
        cr_assert_neq(s.last_reason[0], '\0');
        if (k == 3) {
            char b;
            cr_assert_eq(ns_recv(fd, &b, 1), 0, "the timed-out connection is closed");
            close(fd);
        }
        tc_options o = client_opts(s.port);
        tc_conn *c;
        cr_assert_eq(tc_connect(&c, &o), 0, "good client after bad case %d: %s", k, tc_error_string(NULL));
        cr_assert_eq(tc_echo(c, 100), 0);
        tc_close(c);
    }
    cr_assert_eq(atomic_load(&s.connections), 4);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

struct mc {
    uint16_t port;
    int index;
    int rc;
};

static void *one_client(void *arg)
{
    struct mc *m = arg;
    tc_options o = client_opts(m->port);
    tc_conn *c;
    m->rc = tc_connect(&c, &o);
    if (m->rc == 0) {
        char msg[64], back[64];
        int n = snprintf(msg, sizeof(msg), "Welcome, client %d", m->index);
        m->rc = tc_write_all(c, msg, (size_t)n);
        size_t got = 0;
        while (m->rc == 0 && got < (size_t)n) {
            ssize_t r = tc_read(c, back + got, (size_t)n - got);
            if (r <= 0)
                m->rc = -EPROTO;
            else
                got += (size_t)r;
        }
        if (m->rc == 0 && memcmp(msg, back, (size_t)n))
            m->rc = -EPROTO;
        tc_close(c);
    }
#ifdef FP_ECC
    wc_ecc_fp_free(); /* wolfSSL's per-thread ECC cache, before the thread ends */
#endif
    return NULL;
}

Test(tls, five_concurrent_clients, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    pthread_t th[5];
    struct mc m[5];
    for (int i = 0; i < 5; i++) {
        m[i] = (struct mc){.port = s.port, .index = i};
        pthread_create(&th[i], NULL, one_client, &m[i]);
    }
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(m[i].rc, 0, "client %d: %d", i, m[i].rc);
    }
    cr_assert_eq(atomic_load(&s.connections), 5);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

struct resume_ctx {
    _Atomic long n[4];
    _Atomic long resumed;
};

static void resume_conn(atoll_server *s, atoll_conn *c, void *user)
{
    struct resume_ctx *r = user;
    (void)s;
    atomic_fetch_add(&r->n[atoll_isolate_id(atoll_isolate_current())], 1);
    if (atoll_conn_resumed(c))
        atomic_fetch_add(&r->resumed, 1);
    atoll_conn_write(c, "x", 1); /* one byte so the client reads (and gets its ticket) */
    atoll_conn_close(c);
}

Test(tls, resumption_works_whichever_isolate_the_client_lands_on, .timeout = 120)
{
    atoll_runtime *rt = sup_start_n(4);
    atoll_security_context *ctx = server_ctx();
    struct resume_ctx r;
    memset(&r, 0, sizeof(r));
    atoll_server_callbacks cb = {.on_connection = resume_conn};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, ctx, &cb, &r, &l), 0);
    WOLFSSL_SESSION *sess = NULL;
    int resumed = 0;
    for (int i = 0; i <= 100; i++) {
        tc_options o = client_opts(atoll_listener_port(l));
        o.resume = sess;
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        cr_assert_eq(rc, 0, "connect %d: %s", i, tc_error_string(NULL));
        char b;
        cr_assert_eq(tc_read(c, &b, 1), 1);
        if (i > 0 && tc_resumed(c))
            resumed++;
        WOLFSSL_SESSION *next = tc_session(c);
        if (next) {
            if (sess)
                wolfSSL_SESSION_free(sess);
            sess = next;
        }
        tc_close(c);
    }
    if (sess)
        wolfSSL_SESSION_free(sess);
    int spread = 0;
    for (int i = 0; i < 4; i++)
        spread += atomic_load(&r.n[i]) > 0;
    cr_log_info("resumed %d of 100; isolates used %d; server counted %ld", resumed, spread, atomic_load(&r.resumed));
    cr_assert_geq(resumed, 95, "only %d of 100 reconnects resumed", resumed);
    cr_assert_geq(spread, 2, "the reconnects never changed isolate: the test proves nothing");
    cr_assert_eq(atoll_listener_close(l), 0);
    atoll_security_context_release(ctx);
    sup_shutdown(rt);
}

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

Test(tls, openssl_s_client_alpn_and_client_certificates, .timeout = 120)
{
    atoll_runtime *rt = sup_start_n(1);
    struct {
        bool request, require, send, ok;
    } cases[] = {{false, false, false, true},
                 {true, false, false, true},
                 {true, false, true, true},
                 {false, true, true, true},
                 {false, true, false, false}};
    for (int k = 0; k < 5; k++) {
        ns_app app;
        ns_app_init(&app, rt);
        app.ctx = server_ctx();
        app.http = true; /* answers and closes: s_client ends without waiting */
        const char *protos[] = {"h2", "http/1.1"};
        app.opts.supported_protocols = protos;
        app.opts.supported_protocols_count = 2;
        app.opts.request_client_certificate = cases[k].request;
        app.opts.require_client_certificate = cases[k].require;
        ns_server s;
        cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
        char cmd[1024], out[16384];
        snprintf(cmd, sizeof(cmd),
                 "echo hello-from-s_client | timeout 20 openssl s_client -connect 127.0.0.1:%u -servername localhost "
                 "-CAfile %s -alpn http/1.1,h2 %s %s -ign_eof 2>&1",
                 s.port, CERT("trusted_certs.pem"), cases[k].send ? "-cert " CERT("client1.pem") : "",
                 cases[k].send ? "-key " CERT("client1_key.pem") : "");
        run(cmd, out, sizeof(out));
        if (cases[k].ok) {
            cr_assert(strstr(out, "ALPN protocol: h2"), "case %d: server preference h2 expected:\n%s", k, out);
            cr_assert(strstr(out, "Verify return code: 0"), "case %d:\n%s", k, out);
            cr_assert(strstr(out, "HTTP/1.1 200 OK"), "case %d: no answer:\n%s", k, out);
            cr_assert_eq(atomic_load(&s.connections), 1);
            if (cases[k].send)
                cr_assert(strstr(s.peer_subject, "user1"));
            else
                cr_assert_str_eq(s.peer_subject, "");
            cr_assert(sup_latch_wait(&app.conn_closed, 1, SUP_WAIT_MS), "case %d: server side closed", k);
        } else {
            wait_errors(&s, 1);
            cr_assert_eq(atomic_load(&s.connections), 0);
        }
        ns_close(&s);
        atoll_security_context_release(app.ctx);
    }
    sup_shutdown(rt);
}

Test(tls, curl_over_https, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    app.http = true;
    const char *protos[] = {"http/1.1"};
    app.opts.supported_protocols = protos;
    app.opts.supported_protocols_count = 1;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof(cmd),
             "timeout 20 curl -sS --max-time 15 --cacert %s --resolve localhost:%u:127.0.0.1 https://localhost:%u/ "
             "2>&1",
             CERT("trusted_certs.pem"), s.port, s.port);
    int rc = run(cmd, out, sizeof(out));
    cr_assert_eq(rc, 0, "curl failed:\n%s", out);
    cr_assert_str_eq(out, "hello\n");
    cr_assert_str_eq(s.alpn, "http/1.1");
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

struct tls_churn {
    uint16_t port;
    int target;
    _Atomic int done, failures;
    char last[128];
};

static void *tls_churn_client(void *arg)
{
    struct tls_churn *t = arg;
    for (int i = 0; i < t->target; i++) {
        tc_options o = client_opts(t->port);
        tc_conn *c;
        int rc = tc_connect(&c, &o);
        if (rc == 0) {
            rc = tc_echo(c, 64);
            tc_close(c);
        }
        if (rc != 0) {
            atomic_fetch_add(&t->failures, 1);
            snprintf(t->last, sizeof(t->last), "%d %s", rc, tc_error_string(NULL));
        }
        atomic_fetch_add(&t->done, 1);
    }
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
    return NULL;
}

/* Closing isolates' servers one after the other while clients keep
 * connecting: no client sees a reset or a failed handshake. */
Test(tls, closing_shared_servers_under_continuous_connects, .timeout = 120)
{
    atoll_runtime *rt = sup_start_n(3);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    ns_server s[3];
    cr_assert_eq(ns_bind_group(&app, s, 3, "127.0.0.1"), 0);
    struct tls_churn t = {.port = s[0].port, .target = 150};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, tls_churn_client, &t);
    while (atomic_load(&t.done) < 100)
        sched_yield();
    cr_assert_eq(ns_close(&s[0]), 0);
    while (atomic_load(&t.done) < 200)
        sched_yield();
    cr_assert_eq(ns_close(&s[1]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&t.failures), 0, "%d clients failed (last: %s)", atomic_load(&t.failures), t.last);
    long total = 0, errors = 0;
    for (int i = 0; i < 3; i++) {
        total += atomic_load(&s[i].connections);
        errors += atomic_load(&s[i].errors);
    }
    cr_assert_eq(total, 300, "every connection served exactly once: %ld", total);
    cr_assert_eq(errors, 0, "failed handshakes on the servers: %ld", errors);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}

/* A foreign SO_REUSEPORT socket of the same user joining the group gets no
 * connection: the runtime's steering only picks its own members. It is
 * counted (foreign_members) and logged once through the log callback: a
 * second one joining later is logged alone, after looks that saw the first
 * again without a word. */
typedef struct foreign_log {
    sup_latch lines;
    _Atomic long count;
    char last[512];
    pthread_mutex_t mu;
} foreign_log;

static void foreign_log_fn(atoll_log_level level, const char *line, void *user)
{
    foreign_log *l = user;
    if (level != ATOLL_LOG_WARNING || !strstr(line, "not opened by this runtime"))
        return;
    pthread_mutex_lock(&l->mu);
    snprintf(l->last, sizeof(l->last), "%s", line);
    pthread_mutex_unlock(&l->mu);
    atomic_fetch_add(&l->count, 1);
    sup_latch_signal(&l->lines);
}

static int foreign_join(uint16_t port, uint64_t *inode)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0, "the kernel lets a same-user socket join");
    cr_assert_eq(listen(fd, 64), 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    *inode = (uint64_t)st.st_ino;
    return fd;
}

typedef struct foreign_stats {
    ns_server *s;
    uint64_t foreign;
} foreign_stats;

static void foreign_stats_on(atoll_isolate *self, void *arg)
{
    foreign_stats *f = arg;
    atoll_server_stats st;
    (void)self;
    atoll_server_stats_get(f->s->server, &st);
    f->foreign = st.foreign_members;
}

Test(tls, foreign_reuseport_socket_gets_nothing_and_is_reported_once, .timeout = 60)
{
    static foreign_log log;
    sup_latch_init(&log.lines);
    pthread_mutex_init(&log.mu, NULL);
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.log = foreign_log_fn;
    o.log_user = &log;
    atoll_runtime *rt = sup_start(&o);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s[2];
    cr_assert_eq(ns_bind_group(&app, s, 2, "127.0.0.1"), 0);
    ns_server *a = &s[0], *b = &s[1];
    uint64_t ino1, ino2;
    int foreign = foreign_join(a->port, &ino1);
    cr_assert(sup_latch_wait(&log.lines, 1, SUP_WAIT_MS), "the foreign socket was never reported");
    char want[64];
    snprintf(want, sizeof(want), "inode %llu", (unsigned long long)ino1);
    cr_assert_not_null(strstr(log.last, want), "%s", log.last);
    for (int i = 0; i < 60; i++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", a->port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ns_echo_roundtrip(fd, 10), 0, "connection %d not served by atoll", i);
        close(fd);
    }
    cr_assert_lt(accept(foreign, NULL, NULL), 0, "the foreign socket received a connection");
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(atomic_load(&a->connections) + atomic_load(&b->connections), 60);
    int second = foreign_join(a->port, &ino2);
    cr_assert(sup_latch_wait(&log.lines, 2, SUP_WAIT_MS), "the second foreign socket was never reported");
    cr_assert_eq(atomic_load(&log.count), 2, "%ld lines: the first socket was reported again", atomic_load(&log.count));
    snprintf(want, sizeof(want), "inode %llu", (unsigned long long)ino2);
    cr_assert_not_null(strstr(log.last, want), "%s", log.last);
    /* The server whose look found the second one counts both (the other
     * catches up at its next look). */
    foreign_stats fa = {.s = a}, fb = {.s = b};
    cr_assert_eq(sup_run_on(rt, a->iso_id, foreign_stats_on, &fa), 0);
    cr_assert_eq(sup_run_on(rt, b->iso_id, foreign_stats_on, &fb), 0);
    uint64_t seen = fa.foreign > fb.foreign ? fa.foreign : fb.foreign;
    cr_assert_eq(seen, 2, "foreign_members %llu and %llu", (unsigned long long)fa.foreign,
                 (unsigned long long)fb.foreign);
    close(second);
    close(foreign);
    sup_shutdown(rt);
}

/* Dart testCloseServer: connections delivered before the server closes keep
 * working after it closed; then everything closes cleanly. */
Test(tls, close_server_keeps_delivered_connections, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.ctx = server_ctx();
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    tc_conn *c[3];
    for (int i = 0; i < 3; i++) {
        tc_options o = client_opts(s.port);
        cr_assert_eq(tc_connect(&c[i], &o), 0);
        cr_assert_eq(tc_echo(c[i], 10), 0);
    }
    cr_assert_eq(ns_close(&s), 0, "the server closes while its connections live");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tc_echo(c[i], 1000), 0, "connection %d after the server closed", i);
        tc_close(c[i]);
    }
    cr_assert(sup_latch_wait(&app.conn_closed, 3, SUP_WAIT_MS));
    cr_assert_eq(atomic_load(&s.errors), 0);
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
}
