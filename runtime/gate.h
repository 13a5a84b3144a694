/*
 * runtime/gate.h: a gate that many threads pass through and one owner closes.
 *
 * Senders (any thread) enter, check the gate is open, do their short work
 * (enqueue, wake) and leave. The owner closes the gate and may reclaim what
 * it protects once no sender is inside. Entering and closing are
 * sequentially consistent, so either the sender sees the gate closed, or the
 * owner sees the sender inside (Dekker's pattern): nothing is enqueued into a
 * queue its owner already drained. Never blocks either side.
 */
#ifndef ATOLL_RUNTIME_GATE_H
#define ATOLL_RUNTIME_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct atoll_gate {
    _Atomic uint64_t key;      /* (generation << 1) | open */
    _Atomic uint32_t inflight; /* senders inside */
} atoll_gate;

static inline uint64_t atoll_gate_key(uint32_t generation, bool open)
{
    return ((uint64_t)generation << 1) | (open ? 1u : 0u);
}

/* Sender: returns true when inside an open gate with this generation; then
 * atoll_gate_leave() must follow. */
static inline bool atoll_gate_enter(atoll_gate *g, uint32_t generation)
{
    atomic_fetch_add(&g->inflight, 1);
    if (atomic_load(&g->key) == atoll_gate_key(generation, true))
        return true;
    atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_release);
    return false;
}

static inline void atoll_gate_leave(atoll_gate *g)
{
    atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_release);
}

/* Owner: opens the gate for a generation. */
static inline void atoll_gate_open(atoll_gate *g, uint32_t generation)
{
    atomic_store(&g->key, atoll_gate_key(generation, true));
}

/* Owner: closes; senders entering from now on are refused. */
static inline void atoll_gate_close(atoll_gate *g, uint32_t generation)
{
    atomic_store(&g->key, atoll_gate_key(generation, false));
}

/* Owner, after close: true once no sender is inside any more, so the
 * protected queue can be drained for the last time. */
static inline bool atoll_gate_quiet(atoll_gate *g)
{
    return atomic_load_explicit(&g->inflight, memory_order_acquire) == 0;
}

#endif /* ATOLL_RUNTIME_GATE_H */
