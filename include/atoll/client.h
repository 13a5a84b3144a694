/**
 * @file
 * atoll/client.h: connecting from inside an isolate (Dart's RawSocket.connect
 * and RawSecureSocket.connect). The connection delivered is the same
 * atoll_conn as on the server side (atoll/conn.h).
 *
 * Lifecycle: atoll_connect() -> host lookup off the loop -> TCP connect on
 * the ring -> TLS handshake (secure) -> on_connect(conn, 0) -> read/write
 * ... -> atoll_conn_close() -> on_closed. On any failure on_connect(NULL,
 * status) runs instead, once.
 */
#ifndef ATOLL_CLIENT_H
#define ATOLL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "runtime.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A TLS session saved for resumption. Opaque; may be used on any isolate. */
typedef struct atoll_session atoll_session;

/** Options of atoll_connect(). Fill with atoll_connect_options_init(). */
typedef struct atoll_connect_options {
    /** Use TLS. Default false (plain TCP). */
    bool secure;
    /** Trusted roots and the optional client certificate and key, as a
     *  security context (atoll/tls.h). NULL with `secure`: no roots, so
     *  verification fails unless `insecure`. */
    atoll_security_context *context;
    /** Trusted roots from a PEM file, added to `context`'s. NULL: none. */
    const char *ca_file;
    /** Name sent as SNI and checked against the server's certificate.
     *  NULL: the host given to atoll_connect() when it is a name (not for a
     *  numeric address: then only the chain is verified). */
    const char *server_name;
    /** Skip certificate and name verification (tests only). Default false. */
    bool insecure;
    /** ALPN protocols offered, in preference order. */
    const char *const *alpn;
    /** Entries in alpn. */
    size_t alpn_count;
    /** A session from atoll_conn_session() to resume, or NULL. Not taken
     *  over: the caller still frees it. */
    const atoll_session *resume;
    /** Bound on lookup + connect + handshake, in milliseconds; 0 disables.
     *  Default 10000. Expiry reports ATOLL_E_TIMEDOUT. */
    uint32_t timeout_ms;
} atoll_connect_options;

/** Result of atoll_connect(), on the connecting isolate: `conn` is the
 *  connected (and, if secure, handshaked) connection with status 0, or
 *  NULL with an error: ATOLL_E_LOOKUP, -ECONNREFUSED, ATOLL_E_TIMEDOUT,
 *  ATOLL_E_CERTIFICATE (verification or name mismatch),
 *  ATOLL_E_TLS_MATERIAL (ca_file unreadable or not PEM certificates),
 *  ATOLL_E_HANDSHAKE, ATOLL_E_PEER_CLOSED, ATOLL_E_CONN_CAP (the isolate
 *  holds conns_per_isolate connections already), ... */
typedef void (*atoll_connect_fn)(atoll_conn *conn, int status, void *user);

/**
 * Fills `opts` with the defaults documented on each field.
 * Thread: any thread.
 */
ATOLL_API void atoll_connect_options_init(atoll_connect_options *opts);

/**
 * Connects to host:port (numeric address or host name) from the calling
 * isolate. The result arrives through `cb`, always at a later turn.
 * Errors returned now (cb will not run): ATOLL_E_WRONG_THREAD, -EINVAL (host
 * NULL or empty, port outside 1..65535, cb NULL, an ALPN name empty or longer
 * than 255 bytes), -ENOMEM, ATOLL_E_STOPPED, -EAGAIN (a host name while
 * the runtime's lookup queue is full: 256 lookups already wait for its 4
 * lookup threads; or no lookup thread could be started).
 * Thread: the calling isolate (`self`).
 */
ATOLL_API int atoll_connect(atoll_isolate *self, const char *host, int port, const atoll_connect_options *opts,
                            atoll_connect_fn cb, void *user);

/**
 * The connection's TLS session, to resume a later connection; NULL for plain
 * TCP or when the server sent none yet (TLS 1.3 tickets arrive after the
 * handshake: ask after the first read). Free with atoll_session_free().
 * Thread: the owning isolate.
 */
ATOLL_API atoll_session *atoll_conn_session(atoll_conn *conn);

/** Frees a session. NULL is accepted. Thread: any thread. */
ATOLL_API void atoll_session_free(atoll_session *session);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_CLIENT_H */
