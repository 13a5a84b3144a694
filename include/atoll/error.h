/**
 * @file
 * atoll/error.h: error codes shared by every atoll function.
 *
 * Every function that can fail returns 0 on success or a negative code:
 * either a negated errno value (-EINVAL, -ENOMEM, -EADDRINUSE, ...) passed
 * through from the kernel or libc, or one of atoll's own codes below, which
 * sit in a range no errno uses. atoll_strerror() names all of them.
 */
#ifndef ATOLL_ERROR_H
#define ATOLL_ERROR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** atoll's own error codes (all negative, below -4000: no errno collides). */
enum atoll_error {
    /** io_uring is disabled: kernel.io_uring_disabled sysctl or a seccomp
     *  filter (container runtimes' default profiles) refused io_uring_setup. */
    ATOLL_E_URING_DISABLED = -4001,
    /** The kernel has no io_uring (ENOSYS): kernel too old or built without. */
    ATOLL_E_URING_NOSYS = -4002,
    /** Ring memory could not be locked (ENOMEM): RLIMIT_MEMLOCK too low. */
    ATOLL_E_URING_MEMLOCK = -4003,
    /** io_uring works but lacks a feature atoll needs (see
     *  atoll_runtime_info.missing_feature for which). */
    ATOLL_E_URING_FEATURE = -4004,
    /** The call is not allowed in the object's current lifecycle state
     *  (e.g. start twice, destroy while running, join before stop). */
    ATOLL_E_STATE = -4005,
    /** The runtime is stopping or stopped: no new isolates, messages or work. */
    ATOLL_E_STOPPED = -4006,
    /** The destination port's queue is full. The message was not queued and
     *  its ownership stays with the sender. Retry later or drop it. */
    ATOLL_E_PORT_FULL = -4007,
    /** The destination port is closed (or never existed). The message was not
     *  queued and its ownership stays with the sender. */
    ATOLL_E_PORT_CLOSED = -4008,
    /** The call must be made on the owning isolate's thread and was not. */
    ATOLL_E_WRONG_THREAD = -4009,
    /** Waiting here would deadlock (e.g. join from an isolate thread). */
    ATOLL_E_DEADLOCK = -4010,
    /** A table has no free slot (isolates or ports at their configured cap). */
    ATOLL_E_LIMIT = -4011,
    /** A queued task was dropped without running (its isolate stopped). */
    ATOLL_E_CANCELED = -4012,
    /** A deadline passed before the operation completed. */
    ATOLL_E_TIMEDOUT = -4013,
    /** Certificate or key material is not valid (wrong encoding, wrong
     *  password, key not matching the certificate). */
    ATOLL_E_TLS_MATERIAL = -4014,
    /** Dart's "The shared flag to bind() needs to be `true` if binding
     *  multiple times on the same (address, port) combination." */
    ATOLL_E_SHARED_MISMATCH = -4015,
    /** Dart's "The v6Only flag to bind() needs to be the same if binding
     *  multiple times on the same (address, port) combination." */
    ATOLL_E_V6ONLY_MISMATCH = -4016,
    /** A host name could not be looked up (Dart's "Failed host lookup"). */
    ATOLL_E_LOOKUP = -4017,
    /** The TLS handshake failed (protocol error, no shared cipher, ...). */
    ATOLL_E_HANDSHAKE = -4018,
    /** The TLS handshake did not complete within the handshake timeout. */
    ATOLL_E_HANDSHAKE_TIMEOUT = -4019,
    /** The peer closed the connection during the handshake (Dart's
     *  "Connection terminated during handshake"). */
    ATOLL_E_PEER_CLOSED = -4020,
    /** The peer's certificate was missing while required, or failed
     *  verification. */
    ATOLL_E_CERTIFICATE = -4021,
    /** Reading from or writing to a closed socket (or closed direction). */
    ATOLL_E_CLOSED = -4022,
    /** Strict ALPN: the client's protocols and the server's do not overlap
     *  (RFC 7301 no_application_protocol alert). */
    ATOLL_E_ALPN = -4023,
    /** The isolate holds as many connections as its cap
     *  (atoll_runtime_options.conns_per_isolate): accepting pauses until one
     *  closes; a connect fails with this code. */
    ATOLL_E_CONN_CAP = -4024,
    /** PROXY protocol: the connection did not begin with a valid PROXY
     *  header (missing, malformed, or oversized); the reason says which. */
    ATOLL_E_PROXY_HEADER = -4025,
    /** PROXY protocol: the connection came from a source outside the
     *  server's proxy_allow networks; it was closed unread. */
    ATOLL_E_PROXY_DENIED = -4026,
};

/**
 * Returns a static, human-readable description of `code`: one of atoll's
 * codes, a negated errno, or 0 ("success"). io_uring errors carry the action
 * that fixes them. Never returns NULL.
 * Thread: any thread.
 */
ATOLL_API const char *atoll_strerror(int code);

/**
 * Returns the symbolic name of `code` ("ATOLL_E_PORT_FULL", "EINVAL", ...),
 * or "UNKNOWN" for a code atoll does not know. Never returns NULL.
 * Thread: any thread.
 */
ATOLL_API const char *atoll_error_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_ERROR_H */
