/*
 * runtime/runtime_private.h: the runtime object and what crosses isolates.
 * Internal to the library.
 */
#ifndef ATOLL_RUNTIME_RUNTIME_PRIVATE_H
#define ATOLL_RUNTIME_RUNTIME_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "atoll/atoll.h"
#include "runtime/base/conn_budget.h"
#include "runtime/base/gate.h"
#include "runtime/base/message_queue.h"
#include "runtime/base/port_table.h"
#include "runtime/base/task_queue.h"
#include "runtime/base/tls_context.h"

/* Lifecycle of the runtime object (under rt->lock; mirrored in
 * rt->accepting for lock-free checks by senders). */
typedef enum atoll_rt_state {
    ATOLL_RT_CREATED = 0,
    ATOLL_RT_STARTED,
    ATOLL_RT_DRAINING,
    ATOLL_RT_STOPPED, /* stop requested; threads may still run until join */
    ATOLL_RT_JOINED,
} atoll_rt_state;

struct atoll_runtime {
    atoll_runtime_options opts;
    atoll_runtime_info info;

    pthread_mutex_t lock; /* state, isolates table, alive */
    pthread_cond_t cond;  /* isolate ready / exited */
    atoll_rt_state state;
    _Atomic int stopping; /* stop requested: refuse sends and work */
    uint32_t alive;       /* isolates not yet exited */

    struct atoll_isolate **isolates; /* [opts.max_isolates], index = id */
    _Atomic uint32_t isolate_count;
    uint32_t pool_count; /* pool isolates started by atoll_runtime_start: ids 0 .. pool_count-1 */

    /* Live scaling (atoll_runtime_add_isolate, atoll_runtime_retire) and the
     * runtime-wide listeners an added isolate joins; taken before `lock`. */
    pthread_mutex_t scale_mu;
    struct atoll_listener *listeners;
    bool pool_ready; /* every pool isolate set up: entries may run */
    _Atomic uint32_t rr_next;

    atoll_ticket_keys tickets;     /* session-ticket keys shared by all isolates */
    atoll_conn_budget conn_budget; /* the runtime-wide connection cap (max_conns) */

    /* Host lookups (runtime/lookup_pool.h); its state outlives destroy. */
    struct atoll_lookup_pool *lookups;

    atoll_port_table ports; /* behind every send handle: [opts.max_ports] */
};

/* How long atoll_runtime_drain() and atoll_runtime_retire() wait past their
 * timeout for isolates to exit after closing their last connections. */
#define ATOLL_DRAIN_EXIT_GRACE_MS 1000u

/* scaling.c: true for a pool isolate that takes pool work and listener
 * members: not retired, not exited. Thread: any. */
bool atoll__pool_member(const struct atoll_isolate *iso);

/* runtime.c, for scaling.c */
/* True on an isolate of `rt` (which must not block on the runtime). */
bool atoll__on_runtime_thread(const atoll_runtime *rt);
/* Under rt->lock. Creates isolate `id` and its thread. */
int atoll__isolate_create(atoll_runtime *rt, bool pool, atoll_entry_fn entry, void *arg, struct atoll_isolate **out);
/* Under rt->lock: waits until `iso` left STARTING; returns its setup error. */
int atoll__wait_ready(atoll_runtime *rt, struct atoll_isolate *iso);
/* Under rt->lock: sets control bits on one isolate and wakes it. */
void atoll__signal_one(atoll_runtime *rt, struct atoll_isolate *iso, unsigned bits);
/* CLOCK_MONOTONIC (the condition variable's clock) `ms` from now,
 * saturating far in the future. */
struct timespec atoll__deadline_after(uint64_t ms);

/* listener.c, under scale_mu: binds and starts listener `l`'s member on the
 * new pool isolate `id` and waits for it; 0 or the bind's error. */
int atoll__listener_join(struct atoll_listener *l, uint32_t id);
/* listener.c: the next listener of the runtime's list (under scale_mu). */
struct atoll_listener *atoll__listener_next(const struct atoll_listener *l);

/* isolate_thread.c */
int atoll__isolate_launch(atoll_runtime *rt, struct atoll_isolate *iso);

/* runtime.c: an isolate reports its end. */
void atoll__isolate_exited(atoll_runtime *rt, struct atoll_isolate *iso);
/* runtime.c: publishes the ring; pool isolates then wait for the whole pool
 * so their entries can address every pool isolate. Called by the isolate's
 * thread between atoll__loop_setup and atoll__loop_run. */
void atoll__isolate_ready(atoll_runtime *rt, struct atoll_isolate *iso);

#endif /* ATOLL_RUNTIME_RUNTIME_PRIVATE_H */
