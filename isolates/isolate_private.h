/*
 * isolates/isolate_private.h: one isolate's state. Fields marked [owner] are
 * touched only by the isolate's own thread; [any] fields are atomics or are
 * written once before the isolate is published. Internal to the library.
 */
#ifndef ATOLL_ISOLATES_ISOLATE_PRIVATE_H
#define ATOLL_ISOLATES_ISOLATE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "atoll/atoll.h"
#include "isolates/op.h"
#include "runtime/base/gate.h"
#include "runtime/base/conn_budget.h"
#include "runtime/base/message_queue.h"
#include "runtime/base/port_table.h"
#include "runtime/base/task_queue.h"
#include "runtime/base/tls_context.h"
#include "runtime/base/uring_compat.h"

#define ATOLL_MAX_DRAIN_HOOKS 8

/* Control bits another thread sets in iso->control, then wakes the isolate. */
enum {
    ATOLL_CTL_DRAIN = 1u << 0,
    ATOLL_CTL_STOP = 1u << 1,
};

typedef struct atoll_stat {
    _Atomic uint64_t v;
} atoll_stat;

/* Single writer (the owner); relaxed readers elsewhere. */
static inline void atoll_stat_add(atoll_stat *s, uint64_t n)
{
    atomic_store_explicit(&s->v, atomic_load_explicit(&s->v, memory_order_relaxed) + n, memory_order_relaxed);
}

typedef struct atoll_isolate_counters {
    atoll_stat loop_turns, cqes, cq_overflows, wakeups_ring, wakeups_eventfd, messages_delivered, messages_dropped,
        tasks_run, timers_fired, wake_errors, recv_enobufs, net_accepted, net_handshakes, net_handshake_errors,
        net_bytes_in, net_bytes_out, sq_flushes, sq_deferred, submit_errors, cqe_errors, sockopt_errors,
        net_drain_closed, net_idle_closed, ring_release_deferred;
} atoll_isolate_counters;

struct atoll_timer;
struct atoll_net;

struct atoll_lookup_pool;

struct atoll_isolate {
    /* [any] fixed at creation. What the isolate shares with the rest of
     * its runtime is handed down as these pointers (the runtime object
     * itself is opaque here: runtime/ sits above isolates/). */
    atoll_runtime *rt;                 /* only compared and returned */
    const atoll_runtime_options *opts; /* the runtime's, final */
    const atoll_runtime_info *info;    /* the runtime's, final */
    atoll_ticket_keys *tickets;        /* session-ticket keys of the runtime */
    atoll_port_table *port_table;      /* slots behind send handles */
    struct atoll_lookup_pool *lookups; /* host lookups off the loop */
    atoll_conn_budget *conn_budget;    /* the runtime-wide connection cap */
    uint32_t id;
    bool pool;
    _Atomic bool retired; /* pool isolate leaving (atoll_runtime_retire): no new pool work */
    int cpu;              /* pinned to this CPU, or -1; set by the thread before its loop */
    atoll_entry_fn entry;
    void *entry_arg;
    pthread_t thread;
    bool thread_started; /* under rt->lock */

    /* [any] published once the ring is ready (state RUNNING) */
    struct io_uring ring;
    bool ring_ready;
    int ring_fd;
    int event_fd;
    _Atomic int state; /* atoll_isolate_state */
    int status;        /* final; read after state == EXITED (acquire) */

    /* [any] wakeups and control */
    _Atomic int wake_pending;
    /* Set before this isolate prepares a MSG_RING wakeup (naming another
     * isolate's ring descriptor), cleared once its SQ is submitted empty:
     * an exiting isolate waits for it to clear on every other isolate
     * before it closes its ring (runtime.c, atoll__isolate_exited). */
    _Atomic int wake_sqes;
    bool ran; /* under rt->lock: reached RUNNING (a later exit is not a setup error) */
    _Atomic unsigned control;
    _Atomic uint64_t drain_timeout_ms; /* written before ATOLL_CTL_DRAIN is set */
    atoll_gate inbox_gate;             /* generation 0, open while running */
    atoll_task_queue inbox;
    _Atomic uint32_t tasks_queued; /* tasks waiting to run here */
    atoll_isolate_counters stats;

    /* [owner] loop state */
    uint64_t now_ns;
    uint64_t eventfd_buf;
    bool eventfd_armed;  /* the eventfd read is in the ring */
    atoll_ops ops;       /* op accounting, deferred queue, dead objects */
    bool exiting;        /* leave the loop at the end of this turn */
    int exit_status;     /* status when exiting by request */
    bool exit_requested; /* atoll_isolate_exit() or entry error */
    bool resident;       /* pool isolate before drain: alive with no refs */
    bool drained;        /* drain hooks have run */
    bool more_work;      /* don't sleep: deliveries left over by budgets */
    uint32_t refs;       /* open ports + active timers + awaited replies */
    unsigned control_seen;

    struct atoll_receive_port **ports; /* open ports */
    uint32_t nports, ports_cap;
    struct atoll_receive_port *closing; /* closed, waiting for senders to leave */

    struct atoll_timer **heap; /* min-heap by (due, seq) */
    uint32_t nheap, heap_cap;
    uint64_t timer_seq;
    struct atoll_timer *timer_free; /* recycled timer objects */

    struct atoll_net *net;      /* servers and connections; NULL until a bind */
    struct atoll_net *net_keep; /* after teardown: what ring_release frees with the ring */

    struct {
        atoll_drain_fn fn;
        void *user;
    } drain_hooks[ATOLL_MAX_DRAIN_HOOKS];
    uint32_t ndrain_hooks;
};

/* log.c: formats a line (printf-style; cut at 511 bytes) for the
 * runtime's log callback, if there is one. Thread: the isolate's own. */
void atoll__log(struct atoll_isolate *iso, atoll_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ring.c */
int atoll__ring_setup(struct atoll_isolate *iso);
void atoll__ring_release(struct atoll_isolate *iso);
/* Arms the eventfd read (host-thread wakeups) unless it is armed; when
 * the SQ is short it stays unarmed and the next turn retries. */
void atoll__arm_eventfd(struct atoll_isolate *iso);

/* loop.c: sets the ring up; on failure releases what was made and returns
 * the error (the isolate then never runs). Thread: the isolate's. */
int atoll__loop_setup(struct atoll_isolate *iso);
/* loop.c: runs entry and the loop until the isolate exits, then tears it
 * down; returns the final status. Thread: the isolate's, after setup. */
int atoll__loop_run(struct atoll_isolate *iso);
bool atoll__on_owner_thread(const struct atoll_isolate *iso);

/* isolate.c: makes `iso` the calling thread's isolate (NULL: none), the
 * one atoll_isolate_current() returns. Thread: the isolate's own. */
void atoll__set_current(struct atoll_isolate *iso);

/* wake.c: makes `target` run its inbox and ports at its next turn; a burst
 * of wakeups coalesces into one. Thread: any. */
void atoll__wake(struct atoll_isolate *target);
/* After a submit: with the SQ empty, no MSG_RING wakeup of ours is left
 * unsubmitted (the kernel took its reference to the target's ring). */
static inline void atoll__wake_sqes_done(struct atoll_isolate *iso)
{
    if (atomic_load_explicit(&iso->wake_sqes, memory_order_relaxed) && !io_uring_sq_ready(&iso->ring))
        atomic_store_explicit(&iso->wake_sqes, 0, memory_order_release);
}
/* wake.c: the eventfd wakeup, the fallback after a failed MSG_RING.
 * Thread: any. */
void atoll__wake_eventfd(struct atoll_isolate *target);
/* wake.c: submits the calling isolate's pending wakeups now (see there).
 * Thread: any (a no-op off an isolate). */
void atoll__flush_wakeups(void);

/* timer.c */
uint64_t atoll__timers_next_due(struct atoll_isolate *iso); /* UINT64_MAX: none */
void atoll__timers_run(struct atoll_isolate *iso);
void atoll__timers_teardown(struct atoll_isolate *iso);

/* receive_port.c */
/* The queue and the owning isolate of an open port (senders, under its gate). */
atoll_message_queue *atoll__port_queue(struct atoll_receive_port *port);
struct atoll_isolate *atoll__port_isolate(struct atoll_receive_port *port);
void atoll__ports_deliver(struct atoll_isolate *iso);
bool atoll__ports_reclaim(struct atoll_isolate *iso); /* true: all reclaimed */
void atoll__ports_teardown(struct atoll_isolate *iso);

/* inbox.c */
void atoll__inbox_run(struct atoll_isolate *iso);
void atoll__inbox_teardown(struct atoll_isolate *iso);

#endif /* ATOLL_ISOLATES_ISOLATE_PRIVATE_H */
