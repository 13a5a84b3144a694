/*
 * runtime/base/task_queue.h: the unbounded intrusive queue of an isolate's inbox
 * (tasks to run, replies to deliver).
 *
 * Many producers, one consumer, no allocation: the task is the node.
 * Producers swap the head and then link (Vyukov's MPSC node queue), so a
 * push never blocks; the consumer may briefly see a producer between its two
 * steps and report "nothing ready": that producer wakes the consumer after
 * linking, so the task is picked up on the next turn. Bounding is done by the
 * submitter (task_capacity), not here, so replies can never be refused.
 */
#ifndef ATOLL_RUNTIME_TASK_QUEUE_H
#define ATOLL_RUNTIME_TASK_QUEUE_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct atoll_tq_node {
    struct atoll_tq_node *_Atomic next;
} atoll_tq_node;

typedef struct atoll_task_queue {
    _Alignas(64) atoll_tq_node *_Atomic head; /* producers */
    _Alignas(64) atoll_tq_node *tail;         /* consumer */
    atoll_tq_node stub;
} atoll_task_queue;

static inline void atoll_tq_init(atoll_task_queue *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
}

static inline void atoll_tq_push(atoll_task_queue *q, atoll_tq_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    atoll_tq_node *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Consumer only: the oldest node, or NULL when none is ready. */
static inline atoll_tq_node *atoll_tq_pop(atoll_task_queue *q)
{
    atoll_tq_node *tail = q->tail;
    atoll_tq_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL; /* a producer is between its swap and its link */
    atoll_tq_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

#endif /* ATOLL_RUNTIME_TASK_QUEUE_H */
