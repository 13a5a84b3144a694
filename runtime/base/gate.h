/*
 * runtime/base/gate.h: a gate that many threads pass through and one owner closes.
 *
 * Senders (any thread) enter, check the gate is open, do their short work
 * (enqueue, wake) and leave. The owner closes the gate and may reclaim what
 * it protects once no sender is inside. Never blocks either side.
 *
 * Why it holds (Dekker's pattern, C11 terms). Sender: A = fetch_add(inflight)
 * then B = load(key); owner: C = store(key, closed) then D = load(inflight).
 * All four are seq_cst, so they sit in the single total order S in program
 * order (A before B, C before D). If B precedes C in S, then A precedes D,
 * and D reads A's increment or a later value of `inflight`: it sees the
 * sender inside, or reads a value from a later decrement. Every decrement is
 * a release RMW, and D (seq_cst, hence acquire) reads from the release
 * sequence headed by that sender's leave, so the sender's enqueue happens
 * before the owner's drain. If C precedes B in S, B reads the closed key (or
 * a later one, never this generation's open key) and the sender backs out
 * without touching the queue. With an acquire-only D the store C could be
 * ordered after D (store-buffering), and "not inside" would prove nothing.
 * Opening is a seq_cst (so release) store read by B (acquire): a sender that
 * gets in sees everything the owner set up before opening.
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
    atomic_fetch_add_explicit(&g->inflight, 1, memory_order_seq_cst);                            /* A */
    if (atomic_load_explicit(&g->key, memory_order_seq_cst) == atoll_gate_key(generation, true)) /* B */
        return true;
    atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_release);
    return false;
}

/* Sender: leaves; release, so the owner's quiet check sees its work. */
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
    atomic_store_explicit(&g->key, atoll_gate_key(generation, false), memory_order_seq_cst); /* C */
}

/* Owner, after close: true once no sender is inside any more, so the
 * protected queue can be drained for the last time. seq_cst, not acquire:
 * this is D in the argument above (it must not be ordered before close). */
static inline bool atoll_gate_quiet(atoll_gate *g)
{
    return atomic_load_explicit(&g->inflight, memory_order_seq_cst) == 0;
}

#endif /* ATOLL_RUNTIME_GATE_H */
