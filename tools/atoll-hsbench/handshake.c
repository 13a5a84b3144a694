/*
 * tools/atoll-hsbench/handshake.c: one measured handshake: a new client and
 * server object, the handshake stepped on both sides until both finish, a
 * 64-byte echo (client -> server -> client) proving the keys work, and both
 * objects freed. Every run of consecutive server-side wolfSSL calls is
 * timed with the thread's CPU clock; the client's calls are not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsbench.h"

/* A full TLS 1.3 handshake takes two steps a side (ClientHello; server
 * flight; client Finished; server done). A third would mean a
 * HelloRetryRequest (the server wanted another key share) or a fault:
 * either way not the handshake being measured. */
#define MAX_ROUNDS 2
#define ECHO_LEN   64

uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        perror(PROG ": clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Describes a failed wolfSSL call by its error code. */
static int ssl_fail(char *err, size_t errlen, const char *what, int e)
{
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)e, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s (%d)", what, reason, e);
    return -1;
}

static bool would_block(int e)
{
    return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

/* Steps both sides until both have finished the handshake. */
static int run_handshake(bench *b, WOLFSSL *c, WOLFSSL *s, char *err, size_t errlen)
{
    bool c_done = false, s_done = false;
    for (int round = 0; !(c_done && s_done); round++) {
        if (round == MAX_ROUNDS) {
            snprintf(err, errlen,
                     "handshake not finished after %d steps a side (client %s, server %s): "
                     "a HelloRetryRequest?",
                     MAX_ROUNDS, c_done ? "done" : "waiting", s_done ? "done" : "waiting");
            return -1;
        }
        if (!c_done) {
            int r = wolfSSL_connect(c);
            int e = r == WOLFSSL_SUCCESS ? 0 : wolfSSL_get_error(c, r);
            if (r == WOLFSSL_SUCCESS)
                c_done = true;
            else if (!would_block(e))
                return ssl_fail(err, errlen, "client wolfSSL_connect", e);
        }
        if (!s_done) {
            uint64_t t0 = thread_cpu_ns();
            int r = wolfSSL_accept(s);
            int e = r == WOLFSSL_SUCCESS ? 0 : wolfSSL_get_error(s, r);
            b->server_ns += thread_cpu_ns() - t0;
            if (r == WOLFSSL_SUCCESS)
                s_done = true;
            else if (!would_block(e))
                return ssl_fail(err, errlen, "server wolfSSL_accept", e);
        }
    }
    return 0;
}

/* What was negotiated must be what atoll negotiates: TLS 1.3, X25519, the
 * server's first TLS 1.3 suite. Checks, not serving: outside the server's
 * time. The first handshake's answers are kept for the report. */
static int check_negotiated(bench *b, WOLFSSL *s, char *err, size_t errlen)
{
    const char *version = wolfSSL_get_version(s);
    const char *cipher = wolfSSL_get_cipher_name(s);
    const char *group = wolfSSL_get_curve_name(s);
    if (wolfSSL_GetVersion(s) != WOLFSSL_TLSV1_3) {
        snprintf(err, errlen, "negotiated %s, not TLS 1.3", version ? version : "an unknown version");
        return -1;
    }
    if (group == NULL || strcmp(group, "X25519") != 0) {
        snprintf(err, errlen, "negotiated group %s, not X25519", group ? group : "(none)");
        return -1;
    }
    if (cipher == NULL || strcmp(cipher, b->expect_cipher) != 0) {
        snprintf(err, errlen, "negotiated %s, not atoll's preferred %s", cipher ? cipher : "no cipher",
                 b->expect_cipher);
        return -1;
    }
    if (b->cipher[0] == '\0') {
        snprintf(b->cipher, sizeof(b->cipher), "%s", cipher);
        snprintf(b->group, sizeof(b->group), "%s", group);
    }
    return 0;
}

/* The client sends ECHO_LEN bytes, the server reads and returns them, the
 * client checks it got them back. */
static int run_echo(bench *b, WOLFSSL *c, WOLFSSL *s, char *err, size_t errlen)
{
    uint8_t out[ECHO_LEN], mid[ECHO_LEN], back[ECHO_LEN];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(b->handshakes + i);
    int r = wolfSSL_write(c, out, ECHO_LEN);
    if (r != ECHO_LEN)
        return ssl_fail(err, errlen, "client wolfSSL_write", wolfSSL_get_error(c, r));

    uint64_t t0 = thread_cpu_ns();
    int n = wolfSSL_read(s, mid, ECHO_LEN);
    int e = n == ECHO_LEN ? 0 : wolfSSL_get_error(s, n);
    int w = n == ECHO_LEN ? wolfSSL_write(s, mid, ECHO_LEN) : 0;
    int we = n != ECHO_LEN || w == ECHO_LEN ? 0 : wolfSSL_get_error(s, w);
    b->server_ns += thread_cpu_ns() - t0;
    if (n != ECHO_LEN) {
        if (n > 0) {
            snprintf(err, errlen, "server wolfSSL_read: %d bytes of %d", n, ECHO_LEN);
            return -1;
        }
        return ssl_fail(err, errlen, "server wolfSSL_read", e);
    }
    if (w != ECHO_LEN)
        return ssl_fail(err, errlen, "server wolfSSL_write", we);

    n = wolfSSL_read(c, back, ECHO_LEN);
    if (n != ECHO_LEN) {
        if (n > 0) {
            snprintf(err, errlen, "client wolfSSL_read: %d bytes of %d", n, ECHO_LEN);
            return -1;
        }
        return ssl_fail(err, errlen, "client wolfSSL_read", wolfSSL_get_error(c, n));
    }
    if (memcmp(out, back, ECHO_LEN) != 0) {
        snprintf(err, errlen, "the echo came back different");
        return -1;
    }
    return 0;
}

int handshake_once(bench *b, char *err, size_t errlen)
{
    mem_link *l = b->link;
    link_reset(l);
    WOLFSSL *c = NULL;
    int rc = -1;

    uint64_t t0 = thread_cpu_ns();
    WOLFSSL *s = wolfSSL_new(b->server_ctx);
    if (s != NULL) {
        wolfSSL_SetIOReadCtx(s, &l->server);
        wolfSSL_SetIOWriteCtx(s, &l->server);
    }
    b->server_ns += thread_cpu_ns() - t0;
    if (s == NULL) {
        snprintf(err, errlen, "wolfSSL_new(server) failed");
        goto out;
    }

    c = wolfSSL_new(b->client_ctx);
    if (c == NULL) {
        snprintf(err, errlen, "wolfSSL_new(client) failed");
        goto out;
    }
    wolfSSL_SetIOReadCtx(c, &l->client);
    wolfSSL_SetIOWriteCtx(c, &l->client);
    /* The one key share of the ClientHello: X25519, as browsers and atoll's
     * own client send, so the server never asks for another
     * (HelloRetryRequest). */
    int r = wolfSSL_UseKeyShare(c, WOLFSSL_ECC_X25519);
    if (r != WOLFSSL_SUCCESS) {
        ssl_fail(err, errlen, "wolfSSL_UseKeyShare(X25519)", r);
        goto out;
    }

    if (run_handshake(b, c, s, err, errlen) < 0 || check_negotiated(b, s, err, errlen) < 0)
        goto out;
    /* Both sides done and nothing in flight: in particular no
     * NewSessionTicket, which would mean resumption is on. */
    if (l->to_client.tail != l->to_client.head || l->to_server.tail != l->to_server.head) {
        snprintf(err, errlen, "%zu bytes to the client, %zu to the server left after the handshake",
                 l->to_client.tail - l->to_client.head, l->to_server.tail - l->to_server.head);
        goto out;
    }
    if (run_echo(b, c, s, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    if (s != NULL) {
        t0 = thread_cpu_ns();
        wolfSSL_free(s);
        b->server_ns += thread_cpu_ns() - t0;
    }
    if (c != NULL)
        wolfSSL_free(c);
    return rc;
}
