/**
 * @file
 * atoll/conn.h: a connection (Dart's RawSocket / RawSecureSocket), owned by
 * the isolate that accepted it.
 *
 * Events (all on the owning isolate):
 * - on_read: level-style; runs each turn while decrypted bytes are
 *   buffered, read events are enabled and the connection is not paused,
 *   however much the previous call read (Dart: re-emitted while data
 *   remains). A connection whose application does not read stops receiving
 *   once it holds its share of the isolate's receive buffers
 *   (atoll_runtime_options.recv_buffers_per_conn); its peer then waits on
 *   TCP flow control, and the isolate's other connections keep flowing.
 * - on_write: one-shot; runs when write events are enabled and the write
 *   buffer has room, then write events are disabled until re-enabled.
 * - on_read_closed: once, after the peer's end of stream was seen and every
 *   buffered byte was read.
 * - on_drain: once, when its server (atoll_server_drain()) or the runtime
 *   (atoll_runtime_drain()) drains: finish the exchange in progress and
 *   close. Connections still open at the drain's deadline are closed with
 *   status ATOLL_E_TIMEDOUT (counted: atoll_server_stats.drain_closed).
 *   A connection delivered during a drain hears it right after
 *   on_connection. Runs before the turn's on_read.
 * - on_closed: once, when the connection is fully closed and released
 *   (Dart's stream done); status 0 or the error that closed it. The handle
 *   is invalid after it returns.
 *
 * Lifecycle: delivered by on_connection -> read/write ... -> shutdown or
 * close -> on_closed.
 */
#ifndef ATOLL_CONN_H
#define ATOLL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net.h"
#include "runtime.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A connection. Opaque. */
typedef struct atoll_conn atoll_conn;

/** Callbacks of a connection; each may be NULL. All run on the owning
 *  isolate; `user` is the pointer given to atoll_conn_set_callbacks(). */
typedef struct atoll_conn_callbacks {
    /** Decrypted bytes are buffered (level-style, see above): read them
     *  with atoll_conn_read(). */
    void (*on_read)(atoll_conn *conn, void *user);
    /** The write buffer has room (one-shot, see above). */
    void (*on_write)(atoll_conn *conn, void *user);
    /** The peer ended its side and every buffered byte was read. */
    void (*on_read_closed)(atoll_conn *conn, void *user);
    /** The connection is closed and released: `status` is 0 or the error
     *  that closed it (ATOLL_E_TIMEDOUT at a drain's deadline or the idle
     *  timeout, ATOLL_E_STOPPED when the isolate exits, -EPROTO for a TLS
     *  error after the handshake, a negated errno from the socket such as
     *  -ECONNRESET).
     *  `conn` is invalid after this returns. */
    void (*on_closed)(atoll_conn *conn, int status, void *user);
    /** Its server or the runtime drains: finish and close. */
    void (*on_drain)(atoll_conn *conn, void *user);
} atoll_conn_callbacks;

/** Directions of atoll_conn_shutdown(). */
typedef enum atoll_shutdown_how {
    ATOLL_SHUT_SEND = 1,    /**< close_notify (TLS), then TCP FIN once flushed */
    ATOLL_SHUT_RECEIVE = 2, /**< stop reading; buffered bytes are discarded */
    ATOLL_SHUT_BOTH = 3,    /**< the same as atoll_conn_close() */
} atoll_shutdown_how;

/**
 * Installs callbacks (replacing earlier ones). Read and write events are
 * enabled by default, so a write event follows at the next turn.
 * Thread: the owning isolate.
 */
ATOLL_API void atoll_conn_set_callbacks(atoll_conn *conn, const atoll_conn_callbacks *cb, void *user);

/** Decrypted bytes ready to read. Thread: owning isolate. */
ATOLL_API size_t atoll_conn_available(const atoll_conn *conn);

/**
 * Copies up to `len` buffered bytes into `buf`. Returns the count, 0 when
 * nothing is buffered, ATOLL_E_CLOSED after the read side closed and was
 * drained, -EINVAL (buf NULL with len > 0).
 * Thread: the owning isolate.
 */
ATOLL_API ssize_t atoll_conn_read(atoll_conn *conn, void *buf, size_t len);

/**
 * Queues up to `len` bytes for sending (encrypted for TLS). Returns the
 * number accepted, which may be short or 0 when the write buffer is full
 * (enable write events to learn when there is room again). ATOLL_E_CLOSED
 * after shutdown(SEND), close or a TLS error; -EINVAL (buf NULL with
 * len > 0); -ENOMEM (no memory for the output buffer).
 * Thread: the owning isolate.
 */
ATOLL_API ssize_t atoll_conn_write(atoll_conn *conn, const void *buf, size_t len);

/**
 * Enables or disables read events (Dart's readEventsEnabled). Enabling
 * schedules an on_read at the next turn if bytes are buffered.
 * Thread: the owning isolate.
 */
ATOLL_API void atoll_conn_set_read_events(atoll_conn *conn, bool enabled);
/**
 * Enables or disables the one-shot write event (writeEventsEnabled).
 * Enabling schedules an on_write for when the write buffer has room.
 * Thread: the owning isolate.
 */
ATOLL_API void atoll_conn_set_write_events(atoll_conn *conn, bool enabled);

/**
 * Pauses reading from the socket (backpressure: the kernel's receive window
 * fills); resume re-arms it and re-issues pending events.
 * Thread: the owning isolate.
 */
ATOLL_API void atoll_conn_pause(atoll_conn *conn);
/**
 * Resumes reading after atoll_conn_pause(); pending read and write events
 * are re-issued. Resuming a connection that is not paused does nothing.
 * Thread: the owning isolate.
 */
ATOLL_API void atoll_conn_resume(atoll_conn *conn);

/**
 * Shuts one or both directions (see atoll_shutdown_how). Returns 0, or
 * -EINVAL for another `how`.
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_conn_shutdown(atoll_conn *conn, atoll_shutdown_how how);

/**
 * Closes: pending output is flushed (with close_notify for TLS), then the
 * socket is shut down and closed; on_closed follows. Closing twice returns 0.
 * Errors: -EINVAL (NULL).
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_conn_close(atoll_conn *conn);

/**
 * The local address: for an accepted connection the server's bind address
 * (Dart J1: not getsockname). `port` (may be NULL) receives the local port.
 * The address is valid as long as the connection.
 * Thread: the owning isolate.
 */
ATOLL_API const atoll_address *atoll_conn_address(const atoll_conn *conn, uint16_t *port);
/**
 * The peer's address; `port` (may be NULL) receives its port. IPv4 clients
 * of a dual-stack server appear in IPv4-mapped form. Valid as long as the
 * connection.
 * Thread: the owning isolate.
 */
ATOLL_API const atoll_address *atoll_conn_remote_address(const atoll_conn *conn, uint16_t *port);

/**
 * Sets TCP_NODELAY, through the ring (the socket is a direct descriptor of
 * the isolate's ring, not a process descriptor). Returns 0 once queued (a
 * failure is counted in atoll_isolate_stats.sockopt_errors),
 * ATOLL_E_CLOSED after close, -EOPNOTSUPP on kernels before 6.7
 * (atoll_runtime_info.ring_sockopt), -EINVAL for NULL.
 * Thread: the owning isolate.
 */
ATOLL_API int atoll_conn_set_nodelay(atoll_conn *conn, bool enabled);

/** The ALPN protocol selected in the handshake, or NULL when none (and
 *  always NULL for plain TCP). Thread: owning isolate. */
ATOLL_API const char *atoll_conn_selected_protocol(const atoll_conn *conn);

/**
 * The peer's certificate, or NULL when none was sent (plain TCP: NULL).
 * Owned by the connection: valid until on_closed returns; do not free it.
 * Thread: the owning isolate.
 */
ATOLL_API const atoll_certificate *atoll_conn_peer_certificate(const atoll_conn *conn);

/** True when the TLS handshake resumed an earlier session (false for plain
 *  TCP). Thread: the owning isolate. */
ATOLL_API bool atoll_conn_resumed(const atoll_conn *conn);

/** The isolate the connection belongs to. Thread: the owning isolate. */
ATOLL_API atoll_isolate *atoll_conn_isolate(const atoll_conn *conn);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_CONN_H */
