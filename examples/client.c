/*
 * client: a TLS client on a spawned isolate.
 *
 * The host spawns one isolate (Dart's Isolate.spawn) whose entry calls
 * atoll_connect(): host lookup, TCP connect and the TLS handshake with ALPN
 * all happen on that isolate's ring. Once connected it prints the protocol
 * ALPN selected and the server certificate's subject and issuer, sends an
 * HTTP/1.1 request, and prints the response until the server closes. The
 * isolate then holds nothing open and ends by itself (the keep-alive rule);
 * its exit status, reported to the host through on_exit, is the program's.
 *
 * Run:  ./client [--ca FILE | --insecure] [--name SNI] [--alpn P1,P2] HOST PORT
 *       e.g. ./client --ca cert.pem --name localhost 127.0.0.1 8443
 * The certificate is verified against the roots in --ca (and the name
 * against --name, or HOST when it is a name); --insecure skips that.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atoll/atoll.h>

#define MAX_ALPN 8

typedef struct client {
    const char *host;
    int port;
    atoll_connect_options opts;
    const char *alpn[MAX_ALPN];
    char request[512];
    size_t request_len, sent;
} client;

/* The spawned isolate's exit, told to the host thread. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int exited, exit_status;

static void send_request(atoll_conn *conn, client *c)
{
    while (c->sent < c->request_len) {
        ssize_t n = atoll_conn_write(conn, c->request + c->sent, c->request_len - c->sent);
        if (n < 0) {
            atoll_conn_close(conn);
            return;
        }
        if (n == 0) { /* full: on_write resumes once there is room */
            atoll_conn_set_write_events(conn, true);
            return;
        }
        c->sent += (size_t)n;
    }
}

static void on_write(atoll_conn *conn, void *user)
{
    send_request(conn, user);
}

static void on_read(atoll_conn *conn, void *user)
{
    (void)user;
    char buf[4096];
    ssize_t n;
    while ((n = atoll_conn_read(conn, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
}

/* The server closed after its response (Connection: close): close ours. */
static void on_read_closed(atoll_conn *conn, void *user)
{
    (void)user;
    atoll_conn_close(conn);
}

static void on_closed(atoll_conn *conn, int status, void *user)
{
    (void)conn;
    (void)user;
    fflush(stdout);
    if (status < 0) { /* an error: end the isolate with it */
        fprintf(stderr, "client: connection: %s\n", atoll_strerror(status));
        atoll_isolate_exit(atoll_isolate_current(), status);
    }
    /* Otherwise nothing is open any more: the isolate ends with status 0. */
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = on_read,
    .on_write = on_write,
    .on_read_closed = on_read_closed,
    .on_closed = on_closed,
};

static void on_connect(atoll_conn *conn, int status, void *user)
{
    client *c = user;
    if (status < 0) {
        fprintf(stderr, "client: connecting to %s:%d: %s (%s)\n", c->host, c->port, atoll_strerror(status),
                atoll_error_name(status));
        atoll_isolate_exit(atoll_isolate_current(), status);
        return;
    }
    const char *proto = atoll_conn_selected_protocol(conn);
    const atoll_certificate *cert = atoll_conn_peer_certificate(conn);
    printf("connected to %s:%d\n", c->host, c->port);
    printf("alpn: %s\n", proto ? proto : "(none)");
    if (cert) {
        printf("subject: %s\n", atoll_certificate_subject(cert));
        printf("issuer: %s\n", atoll_certificate_issuer(cert));
    }
    fflush(stdout);
    c->request_len =
        (size_t)snprintf(c->request, sizeof(c->request), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                         c->opts.server_name ? c->opts.server_name : c->host);
    atoll_conn_set_callbacks(conn, &conn_cb, c);
    send_request(conn, c);
}

/* The spawned isolate's entry: start the connect and return 0; the pending
 * connect, then the connection, keep the isolate alive. */
static int client_main(atoll_isolate *self, void *arg)
{
    client *c = arg;
    int rc = atoll_connect(self, c->host, c->port, &c->opts, on_connect, c);
    if (rc < 0)
        fprintf(stderr, "client: atoll_connect: %s\n", atoll_strerror(rc));
    return rc; /* non-zero ends the isolate with that status */
}

static void on_exit_cb(atoll_runtime *rt, uint32_t id, int status, void *user)
{
    (void)rt;
    if (id == 0) /* the pool isolate, ending at the drain */
        return;
    pthread_mutex_lock(&lock);
    exited = 1;
    exit_status = status;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    (void)user;
}

int main(int argc, char **argv)
{
    static client c;
    atoll_connect_options_init(&c.opts);
    c.opts.secure = true;
    char *alpn_list = strdup("http/1.1");
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            c.opts.ca_file = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            c.opts.server_name = argv[++i];
        else if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc) {
            free(alpn_list);
            alpn_list = strdup(argv[++i]);
        } else if (strcmp(argv[i], "--insecure") == 0)
            c.opts.insecure = true;
        else if (pos++ == 0)
            c.host = argv[i];
        else
            c.port = atoi(argv[i]);
    }
    if (!c.host || c.port <= 0 || !alpn_list || (!c.opts.ca_file && !c.opts.insecure)) {
        fprintf(stderr, "usage: client (--ca FILE | --insecure) [--name SNI] [--alpn P1,P2] HOST PORT\n");
        free(alpn_list);
        return 2;
    }
    for (char *save = NULL, *p = strtok_r(alpn_list, ",", &save); p && c.opts.alpn_count < MAX_ALPN;
         p = strtok_r(NULL, ",", &save))
        c.alpn[c.opts.alpn_count++] = p;
    c.opts.alpn = c.alpn;

    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = 1; /* the pool is not used; the runtime needs one */
    ro.on_exit = on_exit_cb;
    atoll_runtime *rt;
    int rc = atoll_runtime_create(&ro, &rt);
    if (rc < 0) {
        fprintf(stderr, "client: creating the runtime: %s\n", atoll_strerror(rc));
        free(alpn_list);
        return 1;
    }
    if ((rc = atoll_runtime_start(rt)) < 0)
        fprintf(stderr, "client: starting the runtime: %s\n", atoll_strerror(rc));
    else if ((rc = atoll_runtime_spawn(rt, client_main, &c, NULL)) < 0)
        fprintf(stderr, "client: spawning: %s\n", atoll_strerror(rc));
    if (rc == 0) {
        pthread_mutex_lock(&lock);
        while (!exited)
            pthread_cond_wait(&cond, &lock);
        rc = exit_status;
        pthread_mutex_unlock(&lock);
        atoll_runtime_drain(rt, 1000); /* ends the idle pool isolate */
    }
    atoll_runtime_stop(rt);
    atoll_runtime_join(rt);
    atoll_runtime_destroy(rt);
    free(alpn_list);
    return rc == 0 ? 0 : 1;
}
