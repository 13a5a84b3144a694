/*
 * tests/tls_client.h: a small blocking TLS client (wolfSSL, plain sockets)
 * for the suites. It runs on a host thread and never touches atoll, so it
 * can talk to a server running on isolates.
 *
 * Every call blocks, bounded by tc_options.timeout_ms. Not thread-safe per
 * connection; separate connections may be used from separate threads.
 */
#ifndef ATOLL_TESTS_TLS_CLIENT_H
#define ATOLL_TESTS_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

typedef struct tc_conn tc_conn;

typedef struct tc_options {
    /** Numeric address or host name; NULL: "127.0.0.1". */
    const char *host;
    uint16_t port;
    /** AF_INET, AF_INET6, or 0 (AF_UNSPEC: whatever `host` resolves to). */
    int family;
    /** PEM file of trusted CAs: the server is verified (and, for a host
     *  name, its name checked). NULL: no verification. */
    const char *ca_file;
    /** Client certificate chain and key (PEM files), or NULL. */
    const char *cert_file;
    const char *key_file;
    /** ALPN protocols offered, comma-separated ("h2,http/1.1"), or NULL. */
    const char *alpn;
    /** A session from tc_session() to resume, or NULL (not taken over).
     *  One wolfSSL refuses (no ticket, expired) means a full handshake. */
    WOLFSSL_SESSION *resume;
    /** Bound for connect and every read/write (SO_RCVTIMEO/SO_SNDTIMEO);
     *  0: 10 s. */
    int timeout_ms;
    /** Offer TLS 1.3 only (default: TLS 1.2 and 1.3). */
    bool tls13_only;
    /** Offer TLS 1.2 only (ignored with tls13_only). */
    bool tls12_only;
    /** wolfSSL cipher list to offer instead of the defaults, or NULL. */
    const char *ciphers;
    /** TLS 1.3 key shares to send, in order: named groups (WOLFSSL_ECC_X25519,
     *  WOLFSSL_ECC_SECP256R1, ...) ending with 0; NULL: wolfSSL's default
     *  (one P-256 share). */
    const int *key_shares;
} tc_options;

/**
 * Connects and completes the handshake. Returns 0 with *out set, or a
 * negative code with *out = NULL: -errno (socket, name lookup: -EHOSTUNREACH),
 * ATOLL_E_TIMEDOUT, ATOLL_E_PEER_CLOSED (closed during the handshake),
 * ATOLL_E_CERTIFICATE (server certificate refused), ATOLL_E_HANDSHAKE
 * (anything else). tc_error_string(NULL) then tells why, on this thread.
 */
int tc_connect(tc_conn **out, const tc_options *o);

/** Options for a TLS 1.2/1.3 client to 127.0.0.1:port trusting ca_file. */
tc_options tc_loopback(uint16_t port, const char *ca_file, int timeout_ms);

/** Writes all of buf. Returns 0 or a negative code (see tc_connect). */
int tc_write_all(tc_conn *c, const void *buf, size_t len);

/** Reads up to len bytes: the count, 0 on close_notify or EOF, <0 error. */
ssize_t tc_read(tc_conn *c, void *buf, size_t len);

/** Writes n pattern bytes and reads them back from an echo server.
 *  0, a negative code, or -EPROTO (early close or different bytes). */
int tc_echo(tc_conn *c, size_t n);

/** The ALPN protocol the server selected, or NULL. Valid until tc_close. */
const char *tc_selected_alpn(tc_conn *c);

/**
 * The session, for tc_options.resume (free with wolfSSL_SESSION_free).
 * TLS 1.3 tickets arrive after the handshake: call it after a tc_read that
 * returned data. NULL if none.
 */
WOLFSSL_SESSION *tc_session(tc_conn *c);

/** Whether the handshake resumed a session. */
bool tc_resumed(tc_conn *c);

/** The underlying wolfSSL object, for checks the helpers do not cover. */
WOLFSSL *tc_ssl(tc_conn *c);

/** Sends close_notify (best effort), frees everything. NULL is accepted. */
void tc_close(tc_conn *c);

/**
 * Frees this thread's wolfSSL fixed-point ECC cache (FP_ECC builds, e.g.
 * Debian's), which wolfSSL keeps per thread and never frees by itself: call
 * it at the end of every thread that ran handshakes, or LeakSanitizer
 * reports the cache.
 */
void tc_thread_cleanup(void);

/** Why the last call on `c` failed; c == NULL: the last failed
 *  tc_connect on this thread. Never NULL. */
const char *tc_error_string(const tc_conn *c);

#endif
