/*
 * isolates/net_private.h: servers, connections and the receive-buffer ring
 * of one isolate. Everything here is touched only by the owning isolate's
 * thread. Internal.
 */
#ifndef ATOLL_ISOLATES_NET_PRIVATE_H
#define ATOLL_ISOLATES_NET_PRIVATE_H

#include <sys/socket.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "atoll/server.h"
#include "isolates/conn_queue.h"
#include "isolates/fixed_files.h"
#include "isolates/isolate_private.h"
#include "isolates/op.h"
#include "isolates/user_data.h"
#include "runtime/base/cidr.h"
#include "runtime/base/listen.h"

/* Output accepted from the application until writes go short. */
#define ATOLL_CONN_OUT_HIGH 65536u
/* Output ring capacities. Every connection starts with the small one: a
 * handshake flight, a response, a few records; it moves to the large one
 * (high water plus room for whole TLS records) only when a write needs more
 * than the small ring can hold. A burst of handshakes then costs 16 KiB a
 * connection, not 96 KiB, and idle connections hold neither. */
#define ATOLL_CONN_OUT_SMALL 16384u
#define ATOLL_CONN_OUT_CAP   (ATOLL_CONN_OUT_HIGH + 32768u)

typedef struct atoll_bufring {
    struct io_uring_buf_ring *br;
    uint8_t *base;
    size_t ring_bytes;
    uint32_t count, size, mask;
    uint16_t bgid;
    bool ready;
    uint32_t free;           /* buffers in the ring (not held by a connection) */
    uint32_t share;          /* most buffers one connection may hold */
    atoll_conn_queue parked; /* connections that met ENOBUFS */
} atoll_bufring;

/* One wolfSSL context per (security context, resumption) on this isolate. */
typedef struct atoll_tls_ctx_entry {
    atoll_security_context *sctx;
    bool tickets;
    WOLFSSL_CTX *ctx;
    uint32_t users;
} atoll_tls_ctx_entry;

/* Buffers released by idle connections, kept for the next busy one: idle
 * connections hold none, and a request/response costs no allocation. */
#define ATOLL_NET_POOL 64
typedef struct atoll_buf_pool {
    void *bufs[ATOLL_NET_POOL];
    uint32_t n;
} atoll_buf_pool;

typedef struct atoll_net {
    atoll_bufring bufs;
    atoll_fixed_files files;       /* direct descriptors of every connection */
    atoll_buf_pool out_pool;       /* ATOLL_CONN_OUT_CAP rings */
    atoll_buf_pool out_small_pool; /* ATOLL_CONN_OUT_SMALL rings */
    struct atoll_server *servers;  /* all servers of the isolate */
    struct atoll_conn *conns;      /* all connections */
    atoll_conn_queue ready;        /* connections with events to dispatch */
    atoll_conn_queue hs;           /* connections with handshake work */
    atoll_tls_ctx_entry *tls_ctxs;
    uint32_t ntls_ctxs;
    atoll_server_stats *client_stats;     /* counters of outgoing connections */
    struct atoll_client_ctx *client_ctxs; /* client wolfSSL contexts */
    struct atoll_connect_req *reqs;       /* connects in progress */
    /* Drain (net_drain.c): the runtime's deadline (0: not draining), and one
     * timer for the earliest deadline of the ndraining connections. */
    uint64_t drain_deadline_ns;
    atoll_timer *drain_timer;
    uint64_t drain_timer_due;
    uint32_t ndraining;
    /* Idle timeout (net_idle.c): one sweep timer while nidle connections
     * have a timeout, every idle_period_ms. */
    atoll_timer *idle_timer;
    uint32_t nidle, idle_period_ms;
} atoll_net;

/* Accepts a server keeps in flight, each into a direct descriptor chosen up
 * front and with room for the peer's address (a multishot accept cannot
 * return addresses, and a direct descriptor has no getpeername()). Also the
 * most connections one server accepts per turn. */
#define ATOLL_SERVER_ACCEPTS 32

/* Where PROXY headers are taken from when the options name no network: the
 * balancer on the same host (atoll_server_options.proxy_allow). */
#define ATOLL_PROXY_ALLOW_DEFAULT "127.0.0.0/8,::1/128"

typedef struct atoll_accept_slot {
    struct sockaddr_in6 addr; /* large enough for either family; the kernel writes it */
    socklen_t addr_len;
    uint32_t file; /* the direct descriptor slot it accepts into */
    bool armed;
} atoll_accept_slot;

/* An accepted connection waiting for the next turn's budget. */
typedef struct atoll_pending_conn {
    uint32_t file;
    struct sockaddr_storage addr;
} atoll_pending_conn;

typedef enum atoll_server_state {
    ATOLL_SRV_RESOLVING = 0,
    ATOLL_SRV_BOUND,
    ATOLL_SRV_STARTED,
    ATOLL_SRV_CLOSING,
    ATOLL_SRV_FAILED,
} atoll_server_state;

struct atoll_server {
    atoll_obj obj; /* first: user_data payloads point here */
    struct atoll_isolate *iso;
    atoll_server_state state;
    bool paused;
    uint32_t accepts_armed; /* accept ops in flight */
    bool accept_cancel_wanted, accept_cancel_sent;
    atoll_accept_slot acc[ATOLL_SERVER_ACCEPTS];
    bool owner_dropped; /* closed or failed: the owner's reference is gone */
    bool lookup_pending;
    bool retired;      /* steered away, draining */
    bool capped;       /* the isolate's connection cap is reached: steered away until slots are back */
    bool steered_away; /* the registry has it PAUSED (paused or capped) */
    bool released;     /* member given back to the registry */
    bool closed_reported;
    int port_req;
    atoll_server_options opts;
    uint8_t *alpn_wire; /* ALPN list, wire format (length-prefixed) */
    size_t alpn_len;
    atoll_cidr *proxy_allow; /* with opts.proxy_protocol: where headers may come from
                                (ATOLL_PROXY_ALLOW_DEFAULT when none given) */
    size_t proxy_allow_n;
    atoll_server_callbacks cb;
    void *user;
    atoll_security_context *sctx;
    WOLFSSL_CTX *wctx;
    atoll_listen_member *member;
    int fd;
    uint16_t port;
    atoll_address address;
    atoll_server_stats *stats; /* shared with its connections (refcounted) */
    uint32_t accept_backoff_ms;
    atoll_timer *backoff_timer;
    atoll_timer *linger_timer;
    atoll_timer *audit_timer; /* server_audit.c: a look for foreign members */
    bool audit_failed;        /* the look failed once (logged once) */
    uint64_t accepted_at_linger;
    uint32_t accepted_this_turn;
    uint64_t accept_turn;     /* loop turn accepted_this_turn counts for */
    atoll_pending_conn *pend; /* accepted beyond the turn's budget, or parked */
    uint32_t npend, pend_cap;
    uint64_t turn_seen;
    uint32_t handshakes_this_turn;
    uint32_t conns;             /* connections not yet delivered (handshaking) */
    atoll_conn_queue held;      /* handshaked while paused, delivered at resume */
    uint64_t drain_deadline_ns; /* draining: its connections' deadline; 0 otherwise */
    struct atoll_server *next, *prev;
};

typedef enum atoll_conn_state {
    ATOLL_CONN_HANDSHAKE = 0,
    ATOLL_CONN_OPEN,
    ATOLL_CONN_CLOSING, /* flushing, then the close */
    ATOLL_CONN_DEAD,    /* fd closed; on_closed due, then the owner's ref goes */
} atoll_conn_state;

typedef struct atoll_conn_seg {
    uint16_t bid;
    uint32_t off, len;
} atoll_conn_seg;

struct atoll_connect_req;

struct atoll_conn {
    atoll_obj obj; /* first: user_data payloads point here */
    struct atoll_isolate *iso;
    struct atoll_server *server;      /* server side, until delivered */
    struct atoll_connect_req *client; /* client side, until delivered */
    atoll_server_stats *stats;        /* the server's counters (refcounted block) */
    int fd;                           /* direct descriptor: slot in the isolate's fixed-file
                                         table, emptied by close_direct or at destroy; -1 after */
    atoll_conn_state state;
    bool delivered;
    bool tls;
    bool proxy_wait; /* in HANDSHAKE until its PROXY header is read */
    WOLFSSL *ssl;
    atoll_certificate *peer_cert;
    char *alpn;
    bool resumed;

    atoll_conn_seg *segs; /* ring of received segments, grows if needed */
    uint32_t seg_head, seg_count, seg_cap;
    bool recv_armed, recv_cancel_sent, recv_eof, paused, shut_rd, shut_rd_pending;
    /* SHUTDOWN and SOCKOPT ops in flight. The kernel runs a SHUTDOWN on an
     * io-wq worker, later than the SQE was submitted: closing the slot (and
     * handing it to the next accept) while one is queued let a half-close
     * reach the next connection in the slot (seen under load). The close
     * waits for zero. */
    uint32_t side_ops;
    bool nodelay_pending;
    int nodelay_val; /* read by the kernel when the SQE is issued */
    bool read_closed_reported, closed_reported;

    /* Record sizes once the handshake is done (0: not asked yet): the
     * largest plaintext of a record, and what sealing adds to one. */
    uint32_t tls_frag, tls_overhead;
    bool tls_eof;                    /* close_notify received */
    bool tls_dead;                   /* the peer is gone or wolfSSL failed: no more wolfSSL I/O */
    bool notify_wanted, notify_sent; /* close_notify: asked for, queued */

    uint8_t *wpend; /* TLS plaintext to retry after WANT_WRITE */
    uint32_t wpend_len;
    /* Output: a ring of ATOLL_CONN_OUT_CAP bytes (from the isolate's pool
     * while data is pending). out_len bytes wait from out_head on; the
     * send in flight covers the first send_len of them (contiguous). */
    uint8_t *out;
    uint32_t out_cap; /* ATOLL_CONN_OUT_SMALL or ATOLL_CONN_OUT_CAP; 0: no ring */
    uint32_t out_head, out_len, send_len;
    bool send_inflight;

    bool shut_wr, fin_sent, closing_started;
    bool read_events, write_events, write_event_due;
    atoll_connq_link links[ATOLL_CONNQ_KINDS]; /* its place on each kind of queue */
    bool released;                             /* the owner's reference is gone */
    int close_status;

    atoll_conn_callbacks cb;
    void *user;
    atoll_timer *hs_timer;
    /* Drain: closed (and counted) at drain_deadline_ns unless gone first;
     * on_drain due at the next dispatch, and told once. */
    uint64_t drain_deadline_ns;
    bool drain_due, drain_reported, drain_closed;
    /* Idle timeout: closed when nothing was received or sent since
     * last_active_ns for idle_timeout_ms (0: none). */
    uint32_t idle_timeout_ms;
    uint64_t last_active_ns;

    atoll_address remote, local;
    uint16_t remote_port, local_port;

    struct atoll_conn *next, *prev;
};

/* net.c */
void *atoll__pool_get(atoll_buf_pool *p, size_t size);
void atoll__pool_put(atoll_buf_pool *p, void *buf);
int atoll__net_get(struct atoll_isolate *iso, atoll_net **out);
/* The net phase of a turn: deferred accepts, budgeted handshakes, then
 * connection dispatch (the one place connection callbacks run from). */
void atoll__net_turn(struct atoll_isolate *iso);
void atoll__net_cqe(struct atoll_isolate *iso, const struct io_uring_cqe *cqe);
/* Isolate exit, after the op layer reaped every op. */
void atoll__net_teardown(struct atoll_isolate *iso);
uint8_t *atoll__bufring_addr(atoll_bufring *b, uint16_t bid);
/* Gives a buffer back to the ring; connections parked on ENOBUFS are
 * scheduled to re-arm at their next dispatch. */
void atoll__bufring_recycle(struct atoll_isolate *iso, uint16_t bid);

/* server.c: the counters block outlives its server while connections
 * count into it. */
atoll_server_stats *atoll__stats_ref(atoll_server_stats *s);
atoll_server_stats *atoll__stats_new(void);
void atoll__stats_unref(atoll_server_stats *s);
/* A connection starts / finishes (reported on_closed) counting into the
 * block; a draining server finishes with its last connection. */
void atoll__stats_conn_enter(atoll_server_stats *s);
void atoll__stats_conn_leave(atoll_server_stats *s);

/* server.c */
void atoll__server_accept_cqe(struct atoll_server *s, const struct io_uring_cqe *cqe);
/* A connection's handshake ended (status 0: delivered or held while
 * paused; else reported to on_error). The caller cleared c->server; this
 * drops the reference the connection held on the server. */
void atoll__server_conn_done(struct atoll_server *s, struct atoll_conn *c, int status, const char *reason);
/* Isolate exit: a handshaking connection goes without an outcome; drops
 * the reference it held on the server. */
void atoll__server_conn_abandon(struct atoll_server *s);
void atoll__server_teardown(struct atoll_server *s);
/* server.c, for server_accept.c: ends a closing server once nothing refers
 * to it; gives the listening socket back to the registry. */
void atoll__server_maybe_finish(struct atoll_server *s);
void atoll__server_release_member(struct atoll_server *s);

/* server_accept.c */
/* Arms the server's accepts if it wants them (after a connection-cap pause
 * or a deferral). */
void atoll__server_rearm(struct atoll_server *s);
/* Cancels every accept of the server (one cancel on its listening socket). */
void atoll__server_cancel_accept(struct atoll_server *s);
/* The op layer's `issue` for servers: whatever accepting still wants. */
void atoll__server_issue(atoll_obj *o);
/* Closing with live siblings: keep accepting what is queued here, linger,
 * then drain the queue and give the socket back. No client is reset. */
void atoll__server_retire(struct atoll_server *s);
/* server.c: tells the registry PAUSED (paused by the application, or at
 * the connection cap) or ACTIVE, when that changed. 0 or its error. */
int atoll__server_steer(struct atoll_server *s);
/* server.c: atoll_server_drain() with an absolute deadline (the runtime's
 * drain gives every server the same one). */
int atoll__server_drain(struct atoll_server *s, uint64_t deadline_ns);
/* Starts connections accepted beyond last turn's budget. */
void atoll__server_run_pending(struct atoll_server *s);

/* conn.c */
void atoll__sockaddr_to_address(const struct sockaddr_storage *ss, atoll_address *a, uint16_t *port);
struct atoll_conn *atoll__conn_alloc(struct atoll_isolate *iso, int fd, atoll_server_stats *stats);
/* A connection on direct descriptor `slot`, accepted by `s` from `peer`;
 * on failure the slot is emptied and returned. */
int atoll__conn_new(struct atoll_server *s, int slot, const struct sockaddr_storage *peer, struct atoll_conn **out);
/* Queues the connection for dispatch (holds a ref while queued). */
void atoll__conn_schedule(struct atoll_conn *c);
/* Queues a handshake step under the per-turn budget (holds a ref). */
void atoll__conn_hs_queue(struct atoll_conn *c);
void atoll__conn_dispatch(struct atoll_conn *c);
void atoll__conn_start_hs_timer(struct atoll_conn *c, uint32_t ms);
/* One step of a handshaking connection, from the handshake queue: its
 * PROXY header first (when its server wants one), then TLS, or delivery
 * for plain TCP. */
void atoll__conn_handshake_step(struct atoll_conn *c);

/* conn_proxy.c */
/* With the server's proxy_protocol: refuses a source outside the
 * allow-list (false: the connection failed), or marks the connection as
 * waiting for its header (true). */
bool atoll__conn_proxy_admit(struct atoll_conn *c, const struct sockaddr_storage *peer);
/* Reads the PROXY header from what was received: 1 done (the remote
 * address is the header's, its bytes consumed), 0 more bytes needed, -1
 * the connection failed. */
int atoll__conn_proxy_read(struct atoll_conn *c);
void atoll__conn_teardown(struct atoll_conn *c);

/* conn_recv.c */
void atoll__conn_recv_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe);
void atoll__conn_arm_recv(struct atoll_conn *c);
void atoll__conn_cancel_recv(struct atoll_conn *c);
void atoll__conn_unpark_all(atoll_bufring *b);
/* Bytes received and not yet consumed (plain TCP: what read returns). */
size_t atoll__conn_seg_bytes(const struct atoll_conn *c);
/* Copies up to len received bytes out, leaving them received. */
size_t atoll__conn_seg_peek(const struct atoll_conn *c, uint8_t *dst, size_t len);
/* Copies up to len received bytes out, recycling emptied buffers. */
size_t atoll__conn_seg_take(struct atoll_conn *c, uint8_t *dst, size_t len);
void atoll__conn_segs_release(struct atoll_conn *c);

/* conn_send.c */
void atoll__conn_send_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe);
void atoll__conn_kick_send(struct atoll_conn *c);
/* Appends to the output buffer; returns bytes taken. */
/* conn_send.c: the bytes the output ring can take now, for a write of
 * `want` bytes: takes a ring from the pools (small first), and moves to a
 * large one when `want` does not fit the small one and nothing is in
 * flight. -ENOMEM when no ring can be had. */
ssize_t atoll__conn_out_room(struct atoll_conn *c, size_t want);
/* conn_send.c: gives the output ring back to its pool (nothing pending). */
void atoll__conn_out_release(struct atoll_conn *c);
/* conn_send.c: copies up to `len` bytes into the output buffer; returns
 * the count (0: full, or no buffer). */
size_t atoll__conn_out_append(struct atoll_conn *c, const uint8_t *src, size_t len);
size_t atoll__conn_out_pending(const struct atoll_conn *c);

/* conn_api.c: issues a pending TCP_NODELAY change through the ring. */
void atoll__conn_issue_sockopt(struct atoll_conn *c);
void atoll__conn_sockopt_cqe(struct atoll_conn *c, const struct io_uring_cqe *cqe);

/* conn_close.c */
void atoll__conn_close_cqe(struct atoll_conn *c, enum atoll_ud_kind kind, const struct io_uring_cqe *cqe);
void atoll__conn_close_start(struct atoll_conn *c);
void atoll__conn_progress_close(struct atoll_conn *c);
/* Issues a pending receive shutdown (SHUT_RD through the ring). */
void atoll__conn_issue_shut_rd(struct atoll_conn *c);
void atoll__conn_fail(struct atoll_conn *c, int status);
/* Ends the connection now, whatever it still had to send: a handshake
 * fails with `status`; an open or closing connection drops its unsent
 * output, cancels its send and closes (on_closed gets `status` unless it
 * already had one). */
void atoll__conn_abort(struct atoll_conn *c, int status);
void atoll__conn_fail_reason(struct atoll_conn *c, int status, const char *reason);

/* net_drain.c */
/* Drains the connection: closed at `deadline_ns` (the earlier of two
 * deadlines counts) unless gone first; on_drain once it is delivered. */
void atoll__conn_drain(struct atoll_conn *c, uint64_t deadline_ns);
/* At delivery: a draining connection's on_drain becomes due. */
void atoll__conn_drain_notify(struct atoll_conn *c);
/* server_audit.c: while a shared server listens, a look about once a second
 * for sockets in its group that the runtime did not open (counted in
 * foreign_members, each new one logged once per group). */
void atoll__server_audit_start(struct atoll_server *s);
void atoll__server_audit_stop(struct atoll_server *s);

/* The connection is going away: it no longer counts for the drain timer. */
void atoll__conn_drain_forget(struct atoll_conn *c);
/* The loop time `timeout_ms` from now, saturated (a drain's deadline). */
uint64_t atoll__drain_deadline(const struct atoll_isolate *iso, uint64_t timeout_ms);
/* The runtime drains: every server drains, every connection is told, all
 * with one deadline `timeout_ms` from now. */
void atoll__net_drain(struct atoll_isolate *iso, uint64_t timeout_ms);

/* net_idle.c */
/* The connection (delivered) is closed after `timeout_ms` without traffic. */
void atoll__conn_idle_start(struct atoll_conn *c, uint32_t timeout_ms);
/* The connection is going away: no longer swept. */
void atoll__conn_idle_forget(struct atoll_conn *c);

/* client.c */
void atoll__connect_cqe(struct atoll_connect_req *req, const struct io_uring_cqe *cqe);
/* The client handshake finished (status 0) or failed: report and let go. */
void atoll__client_done(struct atoll_connect_req *req, struct atoll_conn *c, int status);
/* Isolate exit: pending requests hear ATOLL_E_STOPPED; contexts freed. */
void atoll__client_teardown(atoll_net *net);

/* conn_tls.c */
int atoll__tls_conn_init(struct atoll_conn *c, WOLFSSL_CTX *ctx);
void atoll__tls_handshake_step(struct atoll_conn *c);
/* Decrypts the next record inside wolfSSL (peek) so that its plaintext is
 * available, or notes close_notify; no-op while plaintext is pending. */
void atoll__tls_pump_input(struct atoll_conn *c);
/* Plaintext ready to read: what the last decrypted record has left. */
size_t atoll__tls_available(const struct atoll_conn *c);
/* Copies up to len bytes of pending plaintext into buf. */
ssize_t atoll__tls_read(struct atoll_conn *c, void *buf, size_t len);
ssize_t atoll__tls_write(struct atoll_conn *c, const void *buf, size_t len);
void atoll__tls_flush_pending(struct atoll_conn *c);
void atoll__tls_shutdown_send(struct atoll_conn *c);
int atoll__tls_ctx_for_server(struct atoll_server *s);
/* Installs the custom I/O callbacks (no socket I/O inside wolfSSL). */
void atoll__tls_set_io(WOLFSSL_CTX *ctx);
/* Frees wolfSSL's per-thread caches; called as an isolate's thread ends. */
void atoll__tls_thread_exit(void);
void atoll__tls_ctx_put(struct atoll_isolate *iso, WOLFSSL_CTX *ctx);

#endif /* ATOLL_ISOLATES_NET_PRIVATE_H */
