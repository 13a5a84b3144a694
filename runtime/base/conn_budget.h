/*
 * runtime/base/conn_budget.h: the runtime-wide connection cap
 * (atoll_runtime_options.max_conns). Internal.
 *
 * One counter shared by every isolate of a runtime: a unit is taken with
 * each slot of an isolate's direct-descriptor table (isolates/fixed_files.c:
 * an armed accept, an accepted or connected socket) and given back with the
 * slot, so the budget is exactly the sum of the tables in use and cannot
 * leak apart from them. With max == 0 nothing is counted and nobody waits.
 *
 * An isolate that finds the budget spent registers as a waiter (an opaque
 * pointer: the isolate) and sleeps; whoever gives a unit back and so brings
 * the count down to `resume_at` takes the whole waiter list and wakes each
 * one (isolates/ posts to them). The waiter registers, then re-reads the
 * count; the giver decrements, then reads the waiter count; all four are
 * seq_cst, so one of the two sees the other (Dekker, as in gate.h): no
 * waiter sleeps while the budget has room.
 *
 * Thread: any; the waiter list is under a mutex taken only at the cap.
 */
#ifndef ATOLL_RUNTIME_CONN_BUDGET_H
#define ATOLL_RUNTIME_CONN_BUDGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct atoll_conn_budget {
    uint32_t max;       /* 0: no runtime-wide cap */
    uint32_t resume_at; /* waiters are woken when `used` comes down to this */
    _Atomic uint32_t used;
    _Atomic uint32_t nwaiters;
    pthread_mutex_t mu; /* waiters */
    void **waiters;     /* [cap_waiters] */
    uint32_t cap_waiters;
} atoll_conn_budget;

/* Sets up a budget of `max` units (0: unlimited) for at most `max_waiters`
 * isolates. Returns 0 or -ENOMEM. */
int atoll__budget_init(atoll_conn_budget *b, uint32_t max, uint32_t max_waiters);
/* Frees the waiter list. No isolate may use `b` any more. */
void atoll__budget_destroy(atoll_conn_budget *b);

/* Takes one unit: true, or false when `max` are in use. */
static inline bool atoll__budget_take(atoll_conn_budget *b)
{
    if (!b || !b->max)
        return true;
    if (atomic_fetch_add(&b->used, 1) < b->max)
        return true;
    atomic_fetch_sub(&b->used, 1);
    return false;
}

/* Gives `n` units back. Returns true when this brought the count down to
 * resume_at or below with waiters registered: the caller then calls
 * atoll__budget_take_waiters and wakes each one. */
static inline bool atoll__budget_give(atoll_conn_budget *b, uint32_t n)
{
    if (!b || !b->max || !n)
        return false;
    uint32_t was = atomic_fetch_sub(&b->used, n);
    return was - n <= b->resume_at && atomic_load(&b->nwaiters) > 0;
}

/* True when a unit is left (always true without a cap). */
static inline bool atoll__budget_has(atoll_conn_budget *b)
{
    return !b || !b->max || atomic_load(&b->used) < b->max;
}

/* True when a waiter may take units again: the count is at resume_at or
 * below (always true without a cap). */
static inline bool atoll__budget_room(atoll_conn_budget *b)
{
    return !b || !b->max || atomic_load(&b->used) <= b->resume_at;
}

/* Registers `who` (once, however often called) to be woken when units come
 * back. Returns true when there is room already, so the caller must not
 * sleep on it (it stays registered: a spare wakeup is harmless). */
bool atoll__budget_wait(atoll_conn_budget *b, void *who);
/* Removes `who` from the waiters (an isolate ending). */
void atoll__budget_unwait(atoll_conn_budget *b, void *who);
/* Moves up to `max` registered waiters into out[]; returns how many. */
uint32_t atoll__budget_take_waiters(atoll_conn_budget *b, void **out, uint32_t max);

#endif /* ATOLL_RUNTIME_CONN_BUDGET_H */
