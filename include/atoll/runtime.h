/**
 * @file
 * atoll/runtime.h: the runtime, its lifecycle and the isolates it runs.
 *
 * Lifecycle of an atoll_runtime (every step returns ATOLL_E_STATE when taken
 * out of order, never crashes):
 *
 * ~~~~
 *   atoll_runtime_create()   probes io_uring, allocates; no thread yet
 *   atoll_runtime_start()    starts the pool isolates, each on its own thread
 *                            with its own ring; returns once all are ready
 *   atoll_runtime_spawn()    adds an isolate running an entry function
 *                            (Dart's Isolate.spawn), any time after start
 *   atoll_runtime_drain()    asks every isolate to finish its work and exit,
 *                            waits up to a deadline
 *   atoll_runtime_stop()     makes every isolate exit at its next loop turn
 *                            (idempotent, mandatory before join)
 *   atoll_runtime_join()     waits for every isolate thread to end
 *   atoll_runtime_destroy()  frees everything
 * ~~~~
 *
 * An isolate is a thread with its own io_uring ring and event loop. Pool
 * isolates (started by atoll_runtime_start) stay alive until drain or stop.
 * A spawned isolate stays alive while it keeps something open (a receive
 * port, an active timer, a task awaiting its reply), like a Dart isolate,
 * or until it calls atoll_isolate_exit() or the runtime stops.
 *
 * Every isolate ends with a status: 0 (ran to completion), the non-zero value
 * its entry function returned or it passed to atoll_isolate_exit() (an error,
 * Dart's onError), ATOLL_E_STOPPED (ended by atoll_runtime_stop), or the
 * error that prevented its ring from being set up.
 */
#ifndef ATOLL_RUNTIME_H
#define ATOLL_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A runtime: a set of isolates and what they share. Opaque. */
typedef struct atoll_runtime atoll_runtime;
/** One isolate: a thread, its io_uring ring and its event loop. Opaque. */
typedef struct atoll_isolate atoll_isolate;

/**
 * Entry function of an isolate, run on the isolate's own thread once its
 * ring is ready. Returning non-zero ends the isolate at once with that value
 * as its error status; returning 0 keeps it running (see the keep-alive rule
 * above).
 */
typedef int (*atoll_entry_fn)(atoll_isolate *self, void *arg);

/** Severity of a line given to the runtime's log callback. */
typedef enum atoll_log_level {
    ATOLL_LOG_ERROR = 0,   /**< something failed that the host should act on */
    ATOLL_LOG_WARNING = 1, /**< a degraded mode or an outside interference, counted too */
    ATOLL_LOG_INFO = 2,    /**< a notable event */
} atoll_log_level;

/**
 * Log callback (atoll_runtime_options.log): one line of text, without a
 * trailing newline, valid only during the call. Everything logged is also
 * counted in a stats field; the line says what and where. Called on the
 * isolate thread that observed the event, so possibly on several threads
 * at once: it must be thread-safe, must not block for long and must not
 * call atoll functions that wait for an isolate. atoll never writes to
 * stdout or stderr itself.
 */
typedef void (*atoll_log_fn)(atoll_log_level level, const char *line, void *user);

/**
 * Exit notification: called once per isolate, on that isolate's thread, after
 * its loop ended and its ports and timers were released, with its final
 * status (0 or an error, see above). Must not block for long.
 */
typedef void (*atoll_exit_fn)(atoll_runtime *rt, uint32_t isolate_id, int status, void *user);

/** Steering of shared server groups (atoll_runtime_options.steering). */
typedef enum atoll_steering {
    ATOLL_STEERING_HASH = 0, /**< client address and port, hashed */
    ATOLL_STEERING_CPU = 1,  /**< the isolate pinned to the SYN's CPU first */
} atoll_steering;

/** Options for atoll_runtime_create(). Fill with atoll_runtime_options_init(). */
typedef struct atoll_runtime_options {
    /** Pool isolates started by atoll_runtime_start(). Default: online CPUs. */
    uint32_t isolates;
    /** Most isolates created over the runtime's life, pool and spawned (ids
     *  are never reused). Default: 0, meaning isolates + 64. */
    uint32_t max_isolates;
    /** Pin pool isolate i to the i-th CPU of the process's affinity mask
     *  (modulo its size). Default: false. */
    bool pin_cpus;
    /** How each shared server group spreads new connections over its
     *  started members. ATOLL_STEERING_HASH: by a hash of the client's
     *  address and port. ATOLL_STEERING_CPU: a connection whose SYN the
     *  kernel processes on CPU c goes to the member whose isolate is pinned
     *  to c (when exactly one started member is), the rest by the hash;
     *  needs pin_cpus. Spawned isolates are not pinned: they take the hash.
     *  Default: ATOLL_STEERING_HASH (docs/listening.md, "CPU-local
     *  steering", says what was measured). */
    atoll_steering steering;
    /** Submission queue entries per ring. Default: 256. */
    uint32_t sq_entries;
    /** Completion queue entries per ring, sized generously so bursts of
     *  completions never overflow. Default: 8192. */
    uint32_t cq_entries;
    /** Most receive ports open at once, runtime-wide. Default: 65536. */
    uint32_t max_ports;
    /** Default queue capacity of a receive port (rounded up to a power of
     *  two). Default: 4096. */
    uint32_t port_capacity;
    /** Most tasks queued on one isolate at once (atoll_submit,
     *  atoll_runtime_submit). Default: 65536. */
    uint32_t task_capacity;
    /** Receive buffers per isolate (a provided-buffer ring shared by all of
     *  the isolate's connections, allocated at its first bind). Power of
     *  two, 8..32768. Default: 512. */
    uint32_t recv_buffers;
    /** Size of one receive buffer in bytes, 1024..1048576. Default: 16384
     *  (one TLS record). */
    uint32_t recv_buffer_size;
    /** Most receive buffers one connection may hold before its reads stop
     *  (its share of the isolate's ring), 1..recv_buffers. A connection
     *  whose application does not read stops receiving at its share and TCP
     *  flow control pushes back on the peer, so the isolate's other
     *  connections keep flowing. Default: 2. */
    uint32_t recv_buffers_per_conn;
    /** Most connections (accepted and connected, handshaking included) one
     *  isolate holds at once, 1..1048576: the size of its ring's table of
     *  direct descriptors. Capped at the process's RLIMIT_NOFILE soft limit
     *  when the runtime is created (the kernel refuses a larger table;
     *  atoll_runtime_info.conns_per_isolate tells the value in force). At
     *  the cap an isolate stops accepting until a connection closes, and
     *  atoll_connect reports ATOLL_E_CONN_CAP. Default: 16384. */
    uint32_t conns_per_isolate;
    /** Most connections the whole runtime holds at once, every isolate
     *  together, counted as conns_per_isolate is (each accept a server keeps armed
     *  holds one too: up to 32 per server, so keep max_conns well above
     *  32 x servers x isolates). At the cap every isolate
     *  stops accepting, its servers leave their groups' steering (counted in
     *  atoll_server_stats.cap_pauses), new connections wait in the kernel's
     *  queues, and accepting resumes once a sixteenth of the cap (1 to 32)
     *  is free again; atoll_connect reports ATOLL_E_CONN_CAP meanwhile.
     *  Default: 0, no runtime-wide cap. */
    uint32_t max_conns;
    /** Session-ticket key rotation period in seconds (tickets of the
     *  current and previous period are accepted). Default: 3600. */
    uint32_t ticket_rotation_s;
    /** Optional entry function run on every pool isolate at start. */
    atoll_entry_fn entry;
    /** Argument passed to `entry`. */
    void *entry_arg;
    /** Optional exit notification for every isolate (pool and spawned). */
    atoll_exit_fn on_exit;
    /** Passed to `on_exit`. */
    void *on_exit_user;
    /** Optional log callback (see atoll_log_fn). Default NULL: nothing is
     *  logged (the counters still are). Lines logged today: a socket that
     *  is not the runtime's joined a server's SO_REUSEPORT group
     *  (WARNING, once per socket; atoll_server_stats.foreign_members). */
    atoll_log_fn log;
    /** Passed to `log`. */
    void *log_user;
} atoll_runtime_options;

/** What an isolate is doing, as seen by atoll_runtime_isolate_status(). */
typedef enum atoll_isolate_state {
    ATOLL_ISOLATE_STARTING = 0, /**< thread created, ring being set up */
    ATOLL_ISOLATE_RUNNING = 1,  /**< loop running */
    ATOLL_ISOLATE_EXITED = 2,   /**< loop ended; status is final */
} atoll_isolate_state;

/** Facts about the machine and the runtime, from atoll_runtime_info(). */
typedef struct atoll_runtime_info {
    /** uname release, e.g. "6.1.0-18-amd64". */
    char kernel_release[65];
    /** Kernel major version parsed from kernel_release (6 for "6.1.0"). */
    unsigned kernel_major, kernel_minor; /**< Kernel minor version (1 for "6.1.0"). */
    /** IORING_SETUP_* flags the isolates' rings are created with. */
    uint32_t ring_setup_flags;
    /** IORING_FEAT_* flags the kernel reported. */
    uint32_t ring_features;
    /** True when rings use DEFER_TASKRUN; false when the kernel refused it
     *  and rings fell back to COOP_TASKRUN (a degraded mode). */
    bool defer_taskrun;
    /** The ring flags as text, e.g. "SINGLE_ISSUER|DEFER_TASKRUN". */
    char ring_mode[64];
    /** After ATOLL_E_URING_FEATURE: the feature that is missing; else "". */
    char missing_feature[64];
    /** wolfSSL's version string, e.g. "5.5.4". */
    const char *wolfssl_version;
    /** "optimized" (atoll's asm build of wolfSSL) or "system". */
    const char *wolfssl_build;
    /** wolfSSL was built with AES-NI. */
    bool wolfssl_aesni;
    /** wolfSSL was built with assembly for its public-key maths (SP asm). */
    bool wolfssl_asm;
    /** TLS cipher preference chosen for the crypto present: "AES-GCM first
     *  (AES-NI)" or "ChaCha20-Poly1305 first (no AES-NI)". */
    const char *tls_cipher_preference;
    /** The per-isolate connection cap in force (conns_per_isolate after the
     *  RLIMIT_NOFILE cap). */
    uint32_t conns_per_isolate;
    /** The runtime-wide connection cap in force (max_conns; 0: none). */
    uint32_t max_conns;
    /** The kernel takes socket options through the ring (Linux 6.7:
     *  SOCKET_URING_OP_SETSOCKOPT); without it atoll_conn_set_nodelay()
     *  returns -EOPNOTSUPP. */
    bool ring_sockopt;
    /** CPUs online when the runtime was created. */
    uint32_t online_cpus, isolates; /**< Pool isolates configured (atoll_runtime_options.isolates). */
} atoll_runtime_info;

/** Per-isolate counters, from atoll_runtime_isolate_stats(). */
typedef struct atoll_isolate_stats {
    uint64_t loop_turns;            /**< event loop iterations */
    uint64_t cqes;                  /**< completions reaped */
    uint64_t cq_overflows;          /**< turns that found the CQ overflowed */
    uint64_t wakeups_ring;          /**< wakeups received through MSG_RING */
    uint64_t wakeups_eventfd;       /**< wakeups received from host threads */
    uint64_t messages_delivered;    /**< port messages handed to callbacks */
    uint64_t messages_dropped;      /**< messages released unread (port closed, stop) */
    uint64_t tasks_run;             /**< submitted tasks executed here */
    uint64_t timers_fired;          /**< timer callbacks run */
    uint64_t wake_errors;           /**< MSG_RING or eventfd wakeups that failed */
    uint64_t recv_enobufs;          /**< receives that found the buffer ring empty
                                         (flow control: parked, re-armed later) */
    uint64_t net_accepted;          /**< connections accepted by this isolate's servers */
    uint64_t net_handshakes;        /**< connections delivered by its servers */
    uint64_t net_handshake_errors;  /**< connections its servers reported to on_error */
    uint64_t net_bytes_in;          /**< wire bytes received, all its connections */
    uint64_t net_bytes_out;         /**< wire bytes sent, all its connections */
    uint64_t sq_flushes;            /**< submissions forced by a short SQ mid-turn */
    uint64_t sq_deferred;           /**< operations deferred to the next turn (SQ
                                         still short after a flush); none is dropped */
    uint64_t submit_errors;         /**< io_uring submissions that failed (other than
                                         EINTR/EBUSY/EAGAIN, which are retried) */
    uint64_t cqe_errors;            /**< completions of an unknown kind or with an
                                         unexpected error (a failed cancel or close),
                                         and teardowns that timed out waiting for
                                         cancelled ops */
    uint64_t sockopt_errors;        /**< socket options set through the ring that failed */
    uint64_t net_drain_closed;      /**< connections closed at a drain's deadline */
    uint64_t net_idle_closed;       /**< connections closed by an idle timeout */
    uint64_t ring_release_deferred; /**< 1 when, at its exit, another isolate kept a
                                         wakeup naming this ring unsubmitted for 1 s:
                                         the ring and eventfd were closed at
                                         atoll_runtime_join instead (else at exit) */
} atoll_isolate_stats;

/**
 * Fills `opts` with the defaults documented on each field.
 * Thread: any thread.
 */
ATOLL_API void atoll_runtime_options_init(atoll_runtime_options *opts);

/**
 * Probes io_uring the way the runtime will use it and fills `info` (which
 * may be NULL). Returns 0 when everything atoll needs works, else
 * ATOLL_E_URING_DISABLED, ATOLL_E_URING_NOSYS, ATOLL_E_URING_MEMLOCK or
 * ATOLL_E_URING_FEATURE (info->missing_feature names it), or another
 * negated errno. atoll_runtime_create() calls it once.
 * Thread: any thread.
 */
ATOLL_API int atoll_runtime_probe(atoll_runtime_info *info);

/**
 * Creates a runtime after probing io_uring (see atoll_runtime_probe()).
 * `opts` may be NULL for the defaults. No thread is started.
 * Errors: -EINVAL (opts out of range: zero sizes, isolates > max_isolates),
 * -ENOMEM, the probe's errors.
 * Thread: any thread.
 */
ATOLL_API int atoll_runtime_create(const atoll_runtime_options *opts, atoll_runtime **out);

/**
 * Starts the pool isolates (ids 0 .. isolates-1), each creating its own ring
 * on its own thread and then running opts->entry if set. Returns once every
 * pool isolate's ring is ready (or failed).
 * Errors: ATOLL_E_STATE (not freshly created), a ring setup error of the
 * first isolate that failed (the runtime is then stopped: join and destroy
 * it), -EAGAIN (thread creation), -EINVAL (rt NULL), ATOLL_E_DEADLOCK
 * (called from an isolate of this runtime).
 * Thread: any thread that is not one of this runtime's isolates.
 */
ATOLL_API int atoll_runtime_start(atoll_runtime *rt);

/**
 * Spawns a new isolate running `entry(self, arg)` on its own thread (Dart's
 * Isolate.spawn). From a host thread it returns once the new ring is ready,
 * so a ring setup error is returned here; from an isolate it returns at
 * once (its loop must not block) and a setup error becomes the new
 * isolate's exit status (on_exit). `id_out` (may be NULL) receives its id.
 * Ids are never reused within a runtime. `arg` is passed as is, not copied.
 * Errors: ATOLL_E_STATE (runtime not started), ATOLL_E_STOPPED (drain or
 * stop has begun), ATOLL_E_LIMIT (max_isolates created), -EINVAL (entry
 * NULL), a ring setup error, -EAGAIN (thread creation).
 * Thread: any thread, including an isolate of this runtime.
 */
ATOLL_API int atoll_runtime_spawn(atoll_runtime *rt, atoll_entry_fn entry, void *arg, uint32_t *id_out);

/**
 * Adds a pool isolate while serving (live scaling): it takes pool work
 * (atoll_runtime_submit's pool policies), runs the options' entry like the
 * pool isolates, and joins every runtime-wide listener (atoll_runtime_listen):
 * a member of each group is bound on the listener's port and started.
 * Returns once it serves every listener; `id_out` (may be NULL) gets its
 * id. Errors: ATOLL_E_STATE (not started), ATOLL_E_STOPPED (draining or
 * stopped), ATOLL_E_LIMIT (max_isolates created), a ring setup error,
 * -EAGAIN (thread), or the first listener bind error (the new isolate then
 * leaves again, as after atoll_runtime_retire() with a zero timeout).
 * Thread: any thread that is not one of this runtime's isolates
 * (ATOLL_E_DEADLOCK).
 */
ATOLL_API int atoll_runtime_add_isolate(atoll_runtime *rt, uint32_t *id_out);

/**
 * Retires pool isolate `id` while the others serve: it takes no new pool
 * work, its servers drain as atoll_server_drain() does (new connections go
 * to the group's other members; none queued on it is lost), its drain
 * hooks run and its connections hear on_drain and are closed `timeout_ms`
 * later if still open, then it exits (status 0). Waits until it exited, at
 * most `timeout_ms` plus one second. Errors: -ENOENT (no such isolate),
 * ATOLL_E_STATE (not a serving pool isolate: spawned, already retired or
 * exited; the last pool isolate, which atoll_runtime_drain() ends instead;
 * the runtime not started, draining or stopped), ATOLL_E_TIMEDOUT (it
 * still holds application ports, timers or tasks: it keeps running).
 * Thread: any thread that is not one of this runtime's isolates
 * (ATOLL_E_DEADLOCK).
 */
ATOLL_API int atoll_runtime_retire(atoll_runtime *rt, uint32_t id, uint64_t timeout_ms);

/**
 * Reads an isolate's state and, once exited, its status (either out pointer
 * may be NULL). Errors: -ENOENT (no isolate with that id).
 * Thread: any thread.
 */
ATOLL_API int atoll_runtime_isolate_status(atoll_runtime *rt, uint32_t id, atoll_isolate_state *state, int *status);

/**
 * Number of isolates ever created in this runtime (ids are 0 .. count-1).
 * Thread: any thread.
 */
ATOLL_API uint32_t atoll_runtime_isolate_count(const atoll_runtime *rt);

/**
 * Reads an isolate's counters (relaxed: each counter is exact, the set is not
 * a snapshot). Errors: -ENOENT.
 * Thread: any thread.
 */
ATOLL_API int atoll_runtime_isolate_stats(atoll_runtime *rt, uint32_t id, atoll_isolate_stats *out);

/**
 * Drains: refuses new spawns and work, runs every isolate's drain hooks
 * (atoll_isolate_on_drain()), then drains every server still open as
 * atoll_server_drain() does (no queued connection is reset; new ones are
 * refused once the last member's socket closes) and tells every
 * connection once (on_drain). Connections still open `timeout_ms` after
 * the first drain call are closed (ATOLL_E_TIMEDOUT, counted in
 * net_drain_closed). Pool isolates exit once they have nothing open.
 * Waits until every isolate has exited, at most `timeout_ms` plus one
 * second (for the closes at the deadline). Returns 0 when all exited,
 * ATOLL_E_TIMEDOUT otherwise (an isolate still holds ports, timers or
 * tasks of the application: they keep running, call atoll_runtime_stop()).
 * A second call while draining waits again with the first deadlines.
 * ATOLL_E_STATE before start or after stop.
 * Thread: any thread that is not one of this runtime's isolates
 * (ATOLL_E_DEADLOCK otherwise).
 */
ATOLL_API int atoll_runtime_drain(atoll_runtime *rt, uint64_t timeout_ms);

/**
 * Stops: every isolate closes its ports (queued messages are released with
 * their release callbacks), cancels its timers and exits at its next loop
 * turn with status ATOLL_E_STOPPED (unless it already exited). Does not wait:
 * call atoll_runtime_join(). Idempotent: returns 0 on every call, also on a
 * runtime never started (-EINVAL only for rt NULL).
 * Thread: any thread, including an isolate of this runtime.
 */
ATOLL_API int atoll_runtime_stop(atoll_runtime *rt);

/**
 * Waits until every isolate thread has ended and releases their rings.
 * Errors: ATOLL_E_STATE (stop was not called), ATOLL_E_DEADLOCK (called from
 * an isolate of this runtime), -EINVAL (rt NULL). Joining twice returns 0.
 * Thread: any thread that is not one of this runtime's isolates.
 */
ATOLL_API int atoll_runtime_join(atoll_runtime *rt);

/**
 * Frees the runtime. Allowed on a runtime never started, or stopped and
 * joined; ATOLL_E_STATE otherwise (nothing is freed), ATOLL_E_DEADLOCK
 * from an isolate of this runtime. NULL is accepted (returns 0).
 * Thread: any thread that is not one of this runtime's isolates.
 */
ATOLL_API int atoll_runtime_destroy(atoll_runtime *rt);

/**
 * Sets the session-ticket keys shared with other processes or hosts, so
 * that a session begun on one resumes on another. `keys` is `len` bytes of
 * one or more 80-byte keys back to back, nginx's ssl_session_ticket_key
 * file format (as `openssl rand 80` writes): per key a 16-byte name, a
 * 32-byte HMAC secret and a 32-byte AES key. The first key seals new
 * tickets; every key opens tickets named after it, and a ticket opened with
 * a key other than the first is re-issued under the first (as is one
 * sealed with the runtime's own keys before). Only the format is nginx's:
 * the tickets are atoll's own (AEAD keys derived from the 64 secret bytes),
 * shared between atoll servers. `len` 0 (`keys` may be NULL) goes back to
 * the runtime's own keys (a random secret per runtime, rotated every
 * ticket_rotation_s). The bytes are copied (the caller may wipe its buffer
 * at once); the previous copy is wiped, as is the last at destroy; keys are
 * never logged. It takes effect for the next ticket sealed or opened on
 * every isolate, listeners already open included. Servers with
 * disable_resumption issue and accept no ticket either way.
 * Errors: -EINVAL (rt NULL, `len` not a multiple of 80, more than 64 keys,
 * `keys` NULL with `len` > 0), -ENOMEM. The previous keys stay on error.
 * Thread: any thread, at any time between create and destroy, including an
 * isolate of this runtime.
 */
ATOLL_API int atoll_runtime_set_ticket_keys(atoll_runtime *rt, const void *keys, size_t len);

/**
 * Fills `out` with the kernel, ring and wolfSSL facts of this runtime.
 * Thread: any thread.
 */
ATOLL_API void atoll_runtime_info_get(const atoll_runtime *rt, atoll_runtime_info *out);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_RUNTIME_H */
