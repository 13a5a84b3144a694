/*
 * hello-https: a TLS server on one shared port served by every isolate.
 *
 * atoll_runtime_listen() binds the same (address, port) on every pool
 * isolate (SO_REUSEPORT, steered by the runtime), so each connection is
 * accepted, handshaked and served by one isolate from start to end. Every
 * request gets a fixed "200 OK" naming the isolate that served it, then the
 * connection closes (Connection: close: no keep-alive, to stay short).
 * SIGINT or SIGTERM drains: the listeners stop taking connections, those in
 * progress finish, and the program exits 0.
 *
 * Run:  ./hello-https --cert cert.pem --key key.pem [ADDRESS [PORT]]
 *       (default 127.0.0.1, port 0: an ephemeral port) and then
 *       curl --cacert cert.pem https://localhost:PORT/
 * A certificate for a try:  openssl req -x509 -newkey ec -pkeyopt
 *   ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost
 *   -addext subjectAltName=DNS:localhost,IP:127.0.0.1
 *   -keyout key.pem -out cert.pem
 * First line on stdout once every isolate listens: "listening on ADDR:PORT".
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atoll/atoll.h>

#define REQ_MAX 8192 /* a request head larger than this gets no answer */

/* One per connection, owned by the connection's isolate: no locks. */
typedef struct client {
    atoll_conn *conn;
    size_t got; /* bytes of the request head read so far */
    char req[REQ_MAX];
    char resp[256];
    size_t resp_len, sent; /* sent > 0 or resp_len > 0: answering */
} client;

/* Writes what is left of the response; closes once it is all queued (close
 * flushes it, with TLS close_notify, before the socket goes). */
static void flush_response(client *c)
{
    while (c->sent < c->resp_len) {
        ssize_t n = atoll_conn_write(c->conn, c->resp + c->sent, c->resp_len - c->sent);
        if (n < 0) { /* the peer went away: nothing left to do */
            atoll_conn_close(c->conn);
            return;
        }
        if (n == 0) { /* write buffer full: on_write tells when there is room */
            atoll_conn_set_write_events(c->conn, true);
            return;
        }
        c->sent += (size_t)n;
    }
    atoll_conn_close(c->conn);
}

static void on_read(atoll_conn *conn, void *user)
{
    client *c = user;
    if (c->resp_len > 0) { /* answering already: ignore anything more */
        char sink[512];
        while (atoll_conn_read(conn, sink, sizeof(sink)) > 0)
            ;
        return;
    }
    ssize_t n = atoll_conn_read(conn, c->req + c->got, sizeof(c->req) - 1 - c->got);
    if (n < 0) {
        atoll_conn_close(conn);
        return;
    }
    c->got += (size_t)n;
    c->req[c->got] = '\0';
    if (!strstr(c->req, "\r\n\r\n")) { /* the head is not complete yet */
        if (c->got == sizeof(c->req) - 1)
            atoll_conn_close(conn); /* too large: refuse without an answer */
        return;
    }
    char body[64];
    int blen = snprintf(body, sizeof(body), "hello from isolate %u\n", atoll_isolate_id(atoll_conn_isolate(conn)));
    c->resp_len = (size_t)snprintf(c->resp, sizeof(c->resp),
                                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                                   "Connection: close\r\n\r\n%s",
                                   blen, body);
    flush_response(c);
}

/* Write events are on by default, so one comes right after the connection
 * is delivered: only a response in progress has anything to flush. */
static void on_write(atoll_conn *conn, void *user)
{
    client *c = user;
    (void)conn;
    if (c->resp_len > 0)
        flush_response(c);
}

/* The peer closed before sending a whole request: close our side too. */
static void on_read_closed(atoll_conn *conn, void *user)
{
    client *c = user;
    if (c->resp_len == 0)
        atoll_conn_close(conn);
}

static void on_closed(atoll_conn *conn, int status, void *user)
{
    (void)conn;
    (void)status;
    free(user); /* the handle is invalid after this callback */
}

/* Nothing to do on drain: every connection closes after its one response,
 * and the runtime closes any still silent at the drain's deadline. */
static const atoll_conn_callbacks conn_cb = {
    .on_read = on_read,
    .on_write = on_write,
    .on_read_closed = on_read_closed,
    .on_closed = on_closed,
};

static void on_connection(atoll_server *server, atoll_conn *conn, void *user)
{
    (void)server;
    (void)user;
    client *c = calloc(1, sizeof(*c));
    if (!c) {
        atoll_conn_close(conn);
        return;
    }
    c->conn = conn;
    atoll_conn_set_callbacks(conn, &conn_cb, c);
}

/* A failed handshake (a client that does not trust the certificate, a port
 * scanner): reported, and the server keeps serving. */
static void on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    (void)user;
    fprintf(stderr, "hello-https: isolate %u: handshake with %s failed: %s (%s)\n",
            atoll_isolate_id(atoll_server_isolate(server)), e->peer.text, atoll_strerror(e->code),
            e->reason ? e->reason : "");
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "hello-https: %s: %s (%s)\n", what, atoll_strerror(rc), atoll_error_name(rc));
    return 1;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *address = "127.0.0.1";
    int port = 0, pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (pos++ == 0)
            address = argv[i];
        else
            port = atoi(argv[i]);
    }
    if (!cert || !key) {
        fprintf(stderr, "usage: hello-https --cert FILE --key FILE [ADDRESS [PORT]]\n");
        return 2;
    }

    /* Signals are blocked before any isolate thread exists, so every thread
     * inherits the mask and only sigwait() below takes them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* The context is filled once here and shared read-only by the isolates. */
    atoll_security_context *ctx;
    int rc = atoll_security_context_new(&ctx);
    if (rc < 0)
        return fail("security context", rc);
    if ((rc = atoll_security_context_use_certificate_chain_file(ctx, cert, ATOLL_ENCODING_PEM)) < 0 ||
        (rc = atoll_security_context_use_private_key_file(ctx, key, ATOLL_ENCODING_PEM, NULL)) < 0) {
        fprintf(stderr, "hello-https: %s\n", atoll_security_context_last_error(ctx));
        atoll_security_context_release(ctx);
        return fail("certificate or key", rc);
    }

    atoll_runtime *rt;
    if ((rc = atoll_runtime_create(NULL, &rt)) < 0) { /* defaults: one isolate per CPU */
        atoll_security_context_release(ctx);
        return fail("creating the runtime", rc);
    }
    int status = 1;
    atoll_listener *listener = NULL;
    if ((rc = atoll_runtime_start(rt)) < 0) {
        fail("starting the runtime", rc);
        goto out;
    }
    atoll_server_options so;
    atoll_server_options_init(&so);
    static const char *const alpn[] = {"http/1.1"};
    so.supported_protocols = alpn;
    so.supported_protocols_count = 1;
    static const atoll_server_callbacks scb = {.on_connection = on_connection, .on_error = on_error};
    if ((rc = atoll_runtime_listen(rt, address, port, &so, ctx, &scb, NULL, &listener)) < 0) {
        fail("listening", rc);
        goto out;
    }
    atoll_security_context_release(ctx); /* the servers hold their own references */
    ctx = NULL;
    printf("listening on %s:%u\n", address, (unsigned)atoll_listener_port(listener));
    fflush(stdout); /* a test (or a supervisor) waits for this line */

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    /* Drain: no new connections, those open get up to 5 s to finish. */
    rc = atoll_runtime_drain(rt, 5000);
    printf("signal %d: drained%s\n", sig, rc == 0 ? "" : " (deadline passed)");
    if ((rc = atoll_listener_close(listener)) < 0)
        fail("closing the listener", rc);
    status = 0;
out:
    atoll_runtime_stop(rt);
    atoll_runtime_join(rt);
    atoll_runtime_destroy(rt);
    atoll_security_context_release(ctx);
    return status;
}
