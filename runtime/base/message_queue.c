/* runtime/base/message_queue.c: allocation of a receive port's bounded queue. */
#include "runtime/base/message_queue.h"

#include <errno.h>
#include <stdlib.h>

int atoll_mq_init(atoll_message_queue *q, uint32_t capacity)
{
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    q->cells = calloc(cap, sizeof(*q->cells));
    if (!q->cells)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&q->cells[i].seq, i);
    q->mask = cap - 1;
    atomic_init(&q->enqueue_pos, 0);
    q->dequeue_pos = 0;
    return 0;
}

void atoll_mq_destroy(atoll_message_queue *q)
{
    free(q->cells);
    q->cells = NULL;
}
