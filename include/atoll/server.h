/**
 * @file
 * atoll/server.h: server sockets (Dart's RawServerSocket.bind and
 * RawSecureServerSocket.bind), per isolate and runtime-wide.
 *
 * Lifecycle of an atoll_server (owned by the isolate that bound it):
 *
 * ~~~~
 *   atoll_server_bind()    argument errors now; the bind itself (host lookup,
 *                          registry, socket, listen) completes later through
 *                          on_bound (Dart's Future)
 *   on_bound(status)       0: bound and listen()ing; the kernel queues
 *                          connections but nothing is accepted yet (Dart F1)
 *   atoll_server_start()   starts accepting (Dart's stream listen)
 *   atoll_server_pause() / atoll_server_resume()
 *                          a paused server gets no new connections; the
 *                          group's other servers take them (Dart F4)
 *   atoll_server_close()   no new connections are steered here; those
 *                          already queued are accepted and served; on_closed
 *                          runs once everything is released
 * ~~~~
 *
 * Connections reach on_connection only after their TLS handshake completed
 * (Dart F3). A failed handshake goes to on_error with the peer address and a
 * reason; the server keeps serving (Dart G1).
 *
 * With `shared`, every isolate may bind the same (address, port, v6_only):
 * each gets its own socket in one SO_REUSEPORT group, and a classic BPF
 * program owned by the runtime steers new connections only to started,
 * unpaused, open servers of the group (docs/dart-mapping.md).
 */
#ifndef ATOLL_SERVER_H
#define ATOLL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "net.h"
#include "runtime.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A server socket on one isolate. Opaque. */
typedef struct atoll_server atoll_server;

/** Options of atoll_server_bind(). Fill with atoll_server_options_init(). */
typedef struct atoll_server_options {
    /** listen() backlog; 0 means SOMAXCONN; negative or above 65535 is an
     *  argument error. With `shared` each member of the group has its own
     *  queue of this size. Default 0. */
    int backlog;
    /** IPV6_V6ONLY for IPv6 addresses (false: dual stack). Default false. */
    bool v6_only;
    /** Allow other binds of the same (address, port) in this process
     *  (SO_REUSEPORT); false never sets SO_REUSEPORT. Default false. */
    bool shared;
    /** Ask clients for a certificate (verified against the context's
     *  trusted certificates when sent). Default false. */
    bool request_client_certificate;
    /** Require one; implies request. Default false. */
    bool require_client_certificate;
    /** ALPN protocols in decreasing order of preference (server preference);
     *  each 1..255 bytes, encoded list below 8192 bytes. NULL: none. */
    const char *const *supported_protocols;
    /** Number of entries in supported_protocols. */
    size_t supported_protocols_count;
    /** Strict ALPN: no overlap fails the handshake with the RFC 7301 alert
     *  instead of succeeding with no protocol (Dart). Default false. */
    bool alpn_strict;
    /** Handshake timeout in milliseconds; 0 disables. Default 10000. */
    uint32_t handshake_timeout_ms;
    /** Idle timeout of delivered connections in milliseconds: one with
     *  nothing received and nothing sent for this long (a send blocked on a
     *  peer that does not read counts as nothing sent) is closed, on_closed
     *  with ATOLL_E_TIMEDOUT, counted in idle_closed; checked every quarter
     *  of it (10 ms to 1 s), so it closes within 1.25 times the timeout.
     *  0 disables. Default 0 (the application decides; atoll-serve sets
     *  one). */
    uint32_t idle_timeout_ms;
    /** Most handshakes started per loop turn (the rest wait a turn), so a
     *  handshake storm cannot starve established connections. Default 64. */
    uint32_t handshakes_per_turn;
    /** Most connections accepted per loop turn. Default 128. */
    uint32_t accepts_per_turn;
    /** Turn session resumption off (no tickets, no session cache), so every
     *  handshake is a full one (load tests of full handshakes). Default
     *  false: tickets sealed with the runtime's keys. */
    bool disable_resumption;
    /** PROXY protocol, versions 1 and 2: every connection must begin with
     *  a PROXY header (HAProxy's proxy-protocol.txt), read before the TLS
     *  handshake. The connection's remote address and port are then the
     *  ones the header carries (a v2 LOCAL or v1 UNKNOWN header keeps the
     *  real ones: a balancer's health check). A header missing, malformed
     *  or oversized (v1 over 107 bytes, v2 over 16 + 2048) fails the
     *  connection with ATOLL_E_PROXY_HEADER; one not complete within
     *  handshake_timeout_ms (which covers header and handshake together)
     *  with ATOLL_E_HANDSHAKE_TIMEOUT; both reach on_error. Works for plain
     *  TCP servers too. Default false. */
    bool proxy_protocol;
    /** With proxy_protocol: the only sources a header is taken from,
     *  "CIDR[,CIDR...]" of numeric IPv4/IPv6 networks ("10.0.0.0/8", an
     *  address alone is one host; host bits below the prefix are ignored;
     *  an IPv4-mapped peer matches IPv4 networks). A connection from any
     *  other source is closed unread, on_error with ATOLL_E_PROXY_DENIED.
     *  NULL: "127.0.0.0/8,::1/128". Copied at bind (not kept). */
    const char *proxy_allow;
} atoll_server_options;

/** Why a connection failed before reaching the application. */
typedef struct atoll_server_error {
    /** ATOLL_E_HANDSHAKE, ATOLL_E_HANDSHAKE_TIMEOUT, ATOLL_E_PEER_CLOSED,
     *  ATOLL_E_CERTIFICATE, ATOLL_E_ALPN, ATOLL_E_PROXY_HEADER,
     *  ATOLL_E_PROXY_DENIED, or a negated errno (-ENOMEM: out of memory
     *  inside wolfSSL). */
    int code;
    /** Human-readable reason (wolfSSL's error text where there is one). */
    const char *reason;
    /** The peer's address (with proxy_protocol: the header's source once
     *  the header was read, else the balancer's). */
    atoll_address peer;
    /** The peer's port. */
    uint16_t peer_port;
} atoll_server_error;

/** Callbacks of a server, all run on its isolate. Any may be NULL except
 *  on_connection. */
typedef struct atoll_server_callbacks {
    /** The bind completed: status 0, or an error (-EADDRINUSE,
     *  -EADDRNOTAVAIL, ATOLL_E_SHARED_MISMATCH, ATOLL_E_V6ONLY_MISMATCH,
     *  ATOLL_E_LOOKUP, ...). After an error the server is released right
     *  after this callback returns. */
    void (*on_bound)(atoll_server *server, int status, void *user);
    /** A connection completed its handshake; the application owns it now
     *  (atoll_conn_set_callbacks, then read/write; atoll_conn_close). */
    void (*on_connection)(atoll_server *server, atoll_conn *conn, void *user);
    /** A connection failed before reaching the application. */
    void (*on_error)(atoll_server *server, const atoll_server_error *err, void *user);
    /** The server is closed and released (Dart's onDone); the handle is
     *  invalid after this returns. */
    void (*on_closed)(atoll_server *server, void *user);
} atoll_server_callbacks;

/**
 * Fills `opts` with the defaults documented on each field.
 * Thread: any thread.
 */
ATOLL_API void atoll_server_options_init(atoll_server_options *opts);

/**
 * Binds a server on the calling isolate. `address` is a numeric IPv4/IPv6
 * address or a host name (looked up off the loop; the first result is
 * used). `ctx` NULL binds a plain TCP server; otherwise TLS with that
 * context (a reference is taken). The result arrives through on_bound.
 * Errors returned now (nothing was started): ATOLL_E_WRONG_THREAD, -EINVAL
 * (address NULL or empty, port outside 0..65535, backlog negative or above
 * 65535, an ALPN name empty or longer than 255 bytes, the encoded ALPN list
 * 8192 bytes or more, proxy_allow not a list of networks, callbacks
 * NULL), -ENOMEM, ATOLL_E_STOPPED, -EAGAIN (a
 * host name while the runtime's lookup queue is full: 256 lookups already
 * wait for its 4 lookup threads; or no lookup thread could be started).
 * Thread: the calling isolate (`self`).
 */
ATOLL_API int atoll_server_bind(atoll_isolate *self, const char *address, int port, const atoll_server_options *opts,
                                atoll_security_context *ctx, const atoll_server_callbacks *cb, void *user,
                                atoll_server **out);

/**
 * Starts accepting (Dart's listen on the server stream). Errors:
 * ATOLL_E_STATE (not bound, already started, closing),
 * ATOLL_E_WRONG_THREAD, -EINVAL (NULL).
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_server_start(atoll_server *server);

/**
 * Pauses: no new connections are steered to this server (the group's other
 * members take them); handshakes in flight continue and their connections
 * are delivered on resume. Resume takes the server's share again.
 * Pausing a paused server returns 0.
 * Errors: ATOLL_E_STATE (not started or closing), ATOLL_E_WRONG_THREAD,
 * -EINVAL (NULL).
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_server_pause(atoll_server *server);
/**
 * Resumes a paused server: it takes its share of new connections again
 * (unless its isolate is at its connection cap) and the connections held
 * during the pause are delivered. Resuming a server that is not paused
 * returns 0.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (NULL), ATOLL_E_STATE (not started
 * or closing).
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_server_resume(atoll_server *server);

/**
 * Closes: stops steering connections here, accepts what is already queued
 * (those connections are still handshaked and delivered, so none is reset),
 * then releases the socket's place in the group; on_closed follows. Closing
 * twice returns 0. Connections already delivered are unaffected.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (NULL).
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_server_close(atoll_server *server);

/**
 * Drains: stops taking new connections without resetting any, lets the
 * handshakes in flight finish and delivers them, tells each of the
 * server's connections once (on_drain) so the application can finish its
 * exchange and close, and closes those still open `timeout_ms` later
 * (on_closed with ATOLL_E_TIMEDOUT; counted in drain_closed). Connections
 * already queued in the kernel are accepted and served. With live
 * siblings in its group, new connections go to them; as the group's last
 * live member, the socket drops new SYNs (clients retransmit and then
 * find the port closed: connection refused) while what is queued or
 * completing its TCP handshake is still accepted, then the socket closes.
 * on_closed of the server comes once the socket is released and its last
 * connection has finished: the drain is complete (read the final
 * counters there). Errors:
 * ATOLL_E_WRONG_THREAD, ATOLL_E_STATE (already closing or failed), -EINVAL.
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_server_drain(atoll_server *server, uint64_t timeout_ms);

/** The bound port (the real one after port 0). Thread: owning isolate. */
ATOLL_API uint16_t atoll_server_port(const atoll_server *server);
/** The bound address (Dart's server.address: numeric + the host given),
 *  valid as long as the server. Thread: owning isolate. */
ATOLL_API const atoll_address *atoll_server_address(const atoll_server *server);
/** The isolate the server belongs to. Thread: owning isolate. */
ATOLL_API atoll_isolate *atoll_server_isolate(const atoll_server *server);

/** Per-server counters (relaxed). */
typedef struct atoll_server_stats {
    uint64_t accepted;         /**< connections accepted */
    uint64_t handshakes;       /**< handshakes completed (delivered) */
    uint64_t handshake_errors; /**< connections reported to on_error */
    uint64_t accept_errors;    /**< accept failures (EMFILE, ...), re-armed after a back-off */
    uint64_t bytes_in;         /**< bytes received on the wire */
    uint64_t bytes_out;        /**< bytes sent on the wire */
    uint64_t resumed;          /**< handshakes that resumed a session */
    uint64_t drain_closed;     /**< connections still open at a drain's deadline, closed then */
    uint64_t idle_closed;      /**< connections closed by the idle timeout */
    uint64_t cap_pauses;       /**< times the isolate's connection cap steered new
                                    connections away from this server */
    uint64_t foreign_members;  /**< sockets not opened by this runtime found in the
                                    server's SO_REUSEPORT group at the last look
                                    (about once a second while it listens; each
                                    new one logged once, atoll_log_fn); steering
                                    gives them no connection */
} atoll_server_stats;

/** Reads a server's counters. Thread: the owning isolate. */
ATOLL_API void atoll_server_stats_get(const atoll_server *server, atoll_server_stats *out);

/* ---------------------------------------------------------------------- */
/* Runtime-wide listen                                                    */
/* ---------------------------------------------------------------------- */

/** A server on every pool isolate, one tuple. Opaque. */
typedef struct atoll_listener atoll_listener;

/**
 * Binds (address, port, v6_only) with shared = true on every pool isolate
 * (and on each one added later by atoll_runtime_add_isolate()) and starts
 * them all; returns once every isolate is listening. With port 0
 * the first isolate's bind takes the ephemeral port and the others bind
 * that port. `cb` runs on each isolate for that isolate's server (on_bound
 * too). On any failure the servers already bound are closed and the error
 * of the first failure is returned (as on_bound would give it). The
 * strings `opts` points to (ALPN names, proxy_allow) are copied: isolates
 * added later bind with the copies.
 * Errors: those of atoll_server_bind() and of on_bound, ATOLL_E_STATE
 * (runtime not started), ATOLL_E_DEADLOCK (called from an isolate).
 * Thread: any thread that is not an isolate of this runtime.
 */
ATOLL_API int atoll_runtime_listen(atoll_runtime *rt, const char *address, int port, const atoll_server_options *opts,
                                   atoll_security_context *ctx, const atoll_server_callbacks *cb, void *user,
                                   atoll_listener **out);

/** The port every member listens on. Thread: any thread. */
ATOLL_API uint16_t atoll_listener_port(const atoll_listener *l);

/** Number of members serving now: one per pool isolate, with those added
 *  by atoll_runtime_add_isolate() and without retired ones. Thread: any
 *  thread. */
ATOLL_API uint32_t atoll_listener_count(const atoll_listener *l);

/** The member's server on isolate `i` (its id), to be used only there.
 *  NULL when that isolate has no member or it closed. Thread: that
 *  isolate. */
ATOLL_API atoll_server *atoll_listener_server(const atoll_listener *l, uint32_t i);

/**
 * Closes every member (each on its own isolate, gracefully: queued
 * connections are served), waits until all reported on_closed, and frees
 * the listener. Errors: ATOLL_E_DEADLOCK (from an isolate), -EINVAL
 * (NULL); members whose isolate already exited count as closed.
 * Thread: any thread that is not an isolate of this runtime.
 */
ATOLL_API int atoll_listener_close(atoll_listener *l);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_SERVER_H */
