/*
 * runtime/runtime_private.h: the runtime object and what crosses isolates.
 * Internal to the library.
 */
#ifndef ATOLL_RUNTIME_RUNTIME_PRIVATE_H
#define ATOLL_RUNTIME_RUNTIME_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "atoll/atoll.h"
#include "runtime/base/gate.h"
#include "runtime/base/message_queue.h"
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

/* One slot of the runtime-wide port table. A send handle names a slot and
 * the generation it was opened with; the gate refuses stale generations. */
typedef struct atoll_port_slot {
    atoll_gate gate;
    struct atoll_receive_port *port; /* valid while the gate is open */
    uint32_t generation;             /* under ports_lock */
    uint32_t next_free;              /* free list, under ports_lock */
} atoll_port_slot;

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
    uint32_t pool_count; /* pool isolates: ids 0 .. pool_count-1 */
    bool pool_ready;     /* every pool isolate set up: entries may run */
    _Atomic uint32_t rr_next;

    atoll_ticket_keys tickets; /* session-ticket keys shared by all isolates */

    /* Host lookups (runtime/lookup_pool.h); its state outlives destroy. */
    struct atoll_lookup_pool *lookups;

    pthread_mutex_t ports_lock; /* slot allocation only: not on the send path */
    atoll_port_slot *ports;     /* [opts.max_ports] */
    uint32_t ports_free;        /* head of free list, UINT32_MAX = none */
};

/* isolate_thread.c */
int atoll__isolate_launch(atoll_runtime *rt, struct atoll_isolate *iso);
void atoll__set_current(struct atoll_isolate *iso);

/* wake.c: makes `target` run its inbox and ports at its next turn; coalesced. */
void atoll__wake(struct atoll_isolate *target);
/* wake.c: the eventfd wakeup, the fallback after a failed MSG_RING. */
void atoll__wake_eventfd(struct atoll_isolate *target);
/* wake.c: submits the calling isolate's pending wakeups now (see there). */
void atoll__flush_wakeups(void);

/* port_table.c */
int atoll__port_slot_alloc(atoll_runtime *rt, struct atoll_receive_port *port, uint32_t *slot, uint32_t *gen);
void atoll__port_slot_free(atoll_runtime *rt, uint32_t slot);

/* runtime.c: an isolate reports its end. */
void atoll__isolate_exited(atoll_runtime *rt, struct atoll_isolate *iso);
/* runtime.c: publishes the ring; pool isolates then wait for the whole pool
 * so their entries can address every pool isolate. */
void atoll__isolate_ready(atoll_runtime *rt, struct atoll_isolate *iso);

#endif /* ATOLL_RUNTIME_RUNTIME_PRIVATE_H */
