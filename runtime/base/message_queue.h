/*
 * runtime/base/message_queue.h: the bounded queue behind a receive port.
 *
 * Many producers (any thread), one consumer (the port's isolate). A fixed
 * array of cells, each with a sequence number (Vyukov's bounded queue):
 * producers claim a position with one CAS, so a full queue is detected
 * without blocking and a producer's messages keep their order. No
 * allocation after creation.
 */
#ifndef ATOLL_RUNTIME_MESSAGE_QUEUE_H
#define ATOLL_RUNTIME_MESSAGE_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atoll/port.h"

typedef struct atoll_mq_cell {
    _Atomic size_t seq;
    atoll_message msg;
} atoll_mq_cell;

typedef struct atoll_message_queue {
    atoll_mq_cell *cells;
    size_t mask;
    _Alignas(64) _Atomic size_t enqueue_pos;
    _Alignas(64) size_t dequeue_pos; /* consumer only */
} atoll_message_queue;

/* capacity: rounded up to a power of two >= 2. Returns 0 or -ENOMEM. */
int atoll_mq_init(atoll_message_queue *q, uint32_t capacity);
void atoll_mq_destroy(atoll_message_queue *q);

/* Any thread. Returns false when full (nothing queued). */
static inline bool atoll_mq_push(atoll_message_queue *q, const atoll_message *m)
{
    size_t pos = atomic_load_explicit(&q->enqueue_pos, memory_order_relaxed);
    for (;;) {
        atoll_mq_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enqueue_pos, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->msg = *m;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false;
        } else {
            pos = atomic_load_explicit(&q->enqueue_pos, memory_order_relaxed);
        }
    }
}

/* Consumer only. Returns false when nothing is ready (empty, or the next
 * producer has claimed its cell but not yet filled it: it wakes us after). */
static inline bool atoll_mq_pop(atoll_message_queue *q, atoll_message *out)
{
    size_t pos = q->dequeue_pos;
    atoll_mq_cell *c = &q->cells[pos & q->mask];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1)
        return false;
    *out = c->msg;
    atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
    q->dequeue_pos = pos + 1;
    return true;
}

#endif /* ATOLL_RUNTIME_MESSAGE_QUEUE_H */
