/*
 * isolates/conn_queue.h: the FIFO queues a connection can sit on (dispatch,
 * handshake steps, parked on ENOBUFS, held by a paused server). Internal.
 *
 * One implementation for all of them, so the rule "a queue holds a
 * reference on each connection in it" is kept in one place: push takes the
 * reference (once, however often it is called), pop hands it to the caller,
 * which drops it with atoll__obj_unref when done. A connection has one link
 * per queue kind, so it can be on several queues at once.
 * Owning isolate's thread only.
 */
#ifndef ATOLL_ISOLATES_CONN_QUEUE_H
#define ATOLL_ISOLATES_CONN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "isolates/op.h"

struct atoll_conn;

typedef enum atoll_connq_kind {
    ATOLL_CONNQ_READY = 0, /* events to dispatch */
    ATOLL_CONNQ_HANDSHAKE, /* a handshake step to run under the budget */
    ATOLL_CONNQ_PARKED,    /* met ENOBUFS: re-armed when a buffer returns */
    ATOLL_CONNQ_HELD,      /* delivered while its server was paused */
    ATOLL_CONNQ_KINDS
} atoll_connq_kind;

typedef struct atoll_connq_link {
    struct atoll_conn *next;
    bool queued;
} atoll_connq_link;

typedef struct atoll_conn_queue {
    struct atoll_conn *head, *tail;
    atoll_connq_kind kind;
} atoll_conn_queue;

static inline void atoll__connq_init(atoll_conn_queue *q, atoll_connq_kind kind)
{
    q->head = q->tail = NULL;
    q->kind = kind;
}

static inline bool atoll__connq_empty(const atoll_conn_queue *q)
{
    return q->head == NULL;
}

/* Defined in conn.c: they need the connection's layout. */
bool atoll__connq_queued(const struct atoll_conn *c, atoll_connq_kind kind);
/* Appends `c` unless it is already on a queue of this kind; returns true
 * when it was appended (and a reference taken). */
bool atoll__connq_push(atoll_conn_queue *q, struct atoll_conn *c);
/* Removes the head; the caller owns the queue's reference and must drop it
 * (atoll__obj_unref) once done with the connection. NULL when empty. */
struct atoll_conn *atoll__connq_pop(atoll_conn_queue *q);
/* Empties the queue, dropping every reference it held (teardown). */
void atoll__connq_clear(atoll_conn_queue *q);

#endif /* ATOLL_ISOLATES_CONN_QUEUE_H */
