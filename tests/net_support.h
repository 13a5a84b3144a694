/*
 * tests/net_support.h: a small echo server application run on isolates, and
 * blocking loopback clients on host threads, for the server tests.
 */
#ifndef ATOLL_TESTS_NET_SUPPORT_H
#define ATOLL_TESTS_NET_SUPPORT_H

#include "support.h"

#include <stdint.h>
#include <sys/types.h>

#define NS_MAX 8

/* One server under test, owned by isolate `iso_id`. */
typedef struct ns_server {
    struct ns_app *app;
    uint32_t iso_id;
    atoll_server *server;
    int bind_rc;      /* synchronous return of atoll_server_bind */
    int bound_status; /* on_bound status */
    uint16_t port;
    atoll_address address;
    sup_latch bound, closed, errored;
    _Atomic long connections, errors;
    _Atomic int last_error;
    _Atomic long wrong_isolate; /* connections seen on another isolate */
    _Atomic long resumed;
    /* Of the last connection delivered (TLS): */
    char alpn[64];          /* "" when none */
    char peer_subject[256]; /* "" when no peer certificate */
    char peer_issuer[256];
    char last_reason[128];
    char last_peer[64]; /* remote address of the last connection delivered */
    _Atomic int last_peer_port;
    atoll_address last_error_peer;
} ns_server;

typedef struct ns_app {
    atoll_runtime *rt;
    bool echo;      /* echo what is read; shutdown(send) after read-closed */
    bool autostart; /* start accepting as soon as bound */
    bool http;      /* answer each read with a fixed HTTP response, then close */
    /* echo: read nothing until the isolate's receive-buffer ring has run
     * dry once (recv_enobufs > 0), so connections hold their share */
    bool hold_until_enobufs;
    atoll_server_options opts;
    atoll_security_context *ctx;
    _Atomic long conns_closed;
    sup_latch conn_closed;
} ns_app;

void ns_app_init(ns_app *app, atoll_runtime *rt);
/* Binds `address:port` on isolate `iso`; waits for on_bound; returns its status. */
int ns_bind(ns_app *app, ns_server *s, uint32_t iso, const char *address, int port);
/* Runs atoll_server_start / pause / resume / close on the server's isolate. */
int ns_start(ns_server *s);
int ns_pause(ns_server *s);
int ns_resume(ns_server *s);
int ns_close(ns_server *s); /* waits for on_closed */

/* Binds servers on isolates 0..n-1 of one shared group (app->opts.shared is
 * set): the first on port 0, the others on the port it got. 0 or the first
 * failing on_bound status. */
int ns_bind_group(ns_app *app, ns_server *s, uint32_t n, const char *address);

/* The test certificates (tests/certs/make-certs.sh, a ctest fixture). */
#define NS_CERT(f) ATOLL_TEST_CERTS_DIR "/" f

/* The server context of the Dart tests: the localhost chain and key,
 * trusting and advertising the client authority. NULL on failure. */
atoll_security_context *ns_server_ctx(void);

/* An IPv4 loopback socket bound to an ephemeral port, not listening (so a
 * connect to it is refused): the fd, *port set; or -errno. */
int ns_bound_socket(uint16_t *port);

/* Blocking client: connect to host:port (family AF_INET / AF_INET6), 10 s timeouts. Returns fd or -errno. */
int ns_connect(int family, const char *host, uint16_t port);
/* recv() retried on EINTR. */
ssize_t ns_recv(int fd, void *buf, size_t n);
/* Writes `n` bytes of a pattern, reads them back; 0 or -errno / -EPROTO. */
int ns_echo_roundtrip(int fd, size_t n);

#endif
