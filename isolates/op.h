/*
 * isolates/op.h: the operation layer of an isolate's ring. Internal.
 *
 * Every SQE atoll submits is an *operation*: it is reserved whole (a chain
 * gets all its SQEs or none, so no half-built chain can ever reach the
 * kernel), tagged with a kind and its object, and counted until its final
 * CQE. The rules this layer enforces by construction:
 *
 * - SQEs come only from atoll__op_reserve(): it flushes the SQ when short
 *   and fails whole when the SQ still has no room; the caller then defers
 *   its object (atoll__obj_defer), whose `issue` function runs again at the
 *   start of the next turn. Nothing is dropped.
 * - An op on an object holds a reference on it until its final CQE (no
 *   IORING_CQE_F_MORE). So does every queue the object sits on (deferred,
 *   dispatch, handshake, parked). An object whose last reference goes is
 *   not freed there: it joins the isolate's dead list, which the loop frees
 *   after every callback of the turn has returned (the free phase). Any
 *   pointer a callback or its caller holds stays valid for the whole turn.
 * - Teardown refuses new ops, cancels everything in flight and reaps until
 *   the live-op count is zero before any descriptor or buffer goes.
 *
 * Everything here runs on the owning isolate's thread.
 */
#ifndef ATOLL_ISOLATES_OP_H
#define ATOLL_ISOLATES_OP_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/base/uring_compat.h"
#include "isolates/user_data.h"

struct atoll_isolate;
struct atoll_obj;

/* What an object type provides to the op layer. */
typedef struct atoll_obj_type {
    const char *name;
    /* Re-issues whatever ops the object still wants (after a deferral).
     * Must be idempotent: it runs on the object's current state. */
    void (*issue)(struct atoll_obj *o);
    /* Frees the object; runs in the free phase, never under a callback,
     * only once no op and no queue refers to it. */
    void (*destroy)(struct atoll_obj *o);
} atoll_obj_type;

/* The header every refcounted isolate object (connection, server, connect
 * request) starts with. */
typedef struct atoll_obj {
    const atoll_obj_type *type;
    struct atoll_isolate *iso;
    uint32_t refs;
    bool deferred;               /* on the isolate's deferred queue */
    struct atoll_obj *next_link; /* deferred queue or dead list */
} atoll_obj;

/* Per-isolate state of the op layer (inside struct atoll_isolate). */
typedef struct atoll_ops {
    uint64_t live; /* ops submitted or prepared, final CQE not yet seen */
    bool closed;   /* teardown: no new op may start */
    atoll_obj *defer_head, *defer_tail;
    atoll_obj *dead; /* refs reached zero this turn */
} atoll_ops;

/* Starts an object's life with one reference (the owner's). */
void atoll__obj_init(atoll_obj *o, const atoll_obj_type *type, struct atoll_isolate *iso);
void atoll__obj_ref(atoll_obj *o);
/* Drops a reference; at zero the object joins the dead list. */
void atoll__obj_unref(atoll_obj *o);
/* Queues the object so its type's `issue` runs next turn (holds a ref);
 * idempotent. Counted in stats.sq_deferred. No-op once ops are closed. */
void atoll__obj_defer(atoll_obj *o);

/*
 * Reserves `n` SQEs (1..4) for one operation or linked chain: all of them,
 * or none. When the SQ has less room it is submitted once first (counted
 * in stats.sq_flushes). Returns 0 and fills sqes[0..n-1] (zeroed by the
 * prep helpers the caller then uses); -EBUSY when the SQ is still short
 * (the caller defers its object), -ECANCELED once teardown closed the layer.
 */
int atoll__op_reserve(struct atoll_isolate *iso, struct io_uring_sqe **sqes, unsigned n);

/* atoll__op_reserve on the object's isolate; when it fails the object is
 * deferred (its `issue` runs again next turn), so a caller that gets < 0
 * only returns: nothing it wanted to submit is dropped. */
int atoll__obj_reserve(atoll_obj *o, struct io_uring_sqe **sqes, unsigned n);

/* Tags a reserved, prepared SQE as an op of `kind` on `o` (NULL for an op
 * without object, e.g. a cancel): counts it live and takes a ref on `o`. */
void atoll__op_start(struct atoll_isolate *iso, struct io_uring_sqe *sqe, enum atoll_ud_kind kind, atoll_obj *o);
/* The same, for one of an object's parallel ops, told apart by `tag`. */
void atoll__op_start_tagged(struct atoll_isolate *iso, struct io_uring_sqe *sqe, enum atoll_ud_kind kind, atoll_obj *o,
                            uint8_t tag);

/* The loop saw a CQE of a counted kind: after its handler ran, a final CQE
 * ends the op (uncounts it, drops its ref on the object). */
void atoll__op_cqe_done(struct atoll_isolate *iso, const struct io_uring_cqe *cqe);

/* True for the kinds whose SQEs are ops counted by this layer. */
bool atoll__op_kind_counted(enum atoll_ud_kind kind);

/* Submits the SQ, checking the result: -EINTR is retried, -EBUSY/-EAGAIN
 * leave the SQEs for the next turn, other errors are counted
 * (stats.submit_errors). Returns io_uring_submit's result. */
int atoll__op_submit(struct atoll_isolate *iso);

/* Hands every CQE in the ring to `handle`, then advances the CQ (counted
 * in stats.cqes). Returns how many. */
unsigned atoll__ops_reap(struct atoll_isolate *iso,
                         void (*handle)(struct atoll_isolate *, const struct io_uring_cqe *));

/* Start of a turn: runs the `issue` of every object deferred so far. */
void atoll__ops_run_deferred(struct atoll_isolate *iso);
/* End of a turn: frees every object whose last reference went. */
void atoll__ops_free_dead(struct atoll_isolate *iso);

/*
 * Teardown: refuses new ops, drops the deferred queue, cancels every op
 * still in the kernel and reaps (without running handlers) until none is
 * live, or until `timeout_ms` passed (then returns -ETIMEDOUT and the
 * caller must not free what the kernel may still touch). Returns 0 when
 * nothing is live any more.
 */
int atoll__ops_shutdown(struct atoll_isolate *iso, uint32_t timeout_ms);

#endif /* ATOLL_ISOLATES_OP_H */
