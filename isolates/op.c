/*
 * isolates/op.c: SQE reservation, op accounting, object references, the
 * deferred queue and the free phase (see op.h for the rules).
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "isolates/isolate_private.h"
#include "isolates/op.h"

void atoll__obj_init(atoll_obj *o, const atoll_obj_type *type, struct atoll_isolate *iso)
{
    o->type = type;
    o->iso = iso;
    o->refs = 1;
    o->deferred = false;
    o->next_link = NULL;
}

void atoll__obj_ref(atoll_obj *o)
{
    o->refs++;
}

void atoll__obj_unref(atoll_obj *o)
{
    if (--o->refs)
        return;
    /* Not freed here: a caller up the stack may still hold the pointer.
     * The loop's free phase runs after every callback of the turn. */
    atoll_ops *ops = &o->iso->ops;
    o->next_link = ops->dead;
    ops->dead = o;
}

void atoll__obj_defer(atoll_obj *o)
{
    atoll_ops *ops = &o->iso->ops;
    if (o->deferred || ops->closed)
        return;
    o->deferred = true;
    o->next_link = NULL;
    atoll__obj_ref(o);
    if (ops->defer_tail)
        ops->defer_tail->next_link = o;
    else
        ops->defer_head = o;
    ops->defer_tail = o;
    atoll_stat_add(&o->iso->stats.sq_deferred, 1);
    o->iso->more_work = true;
}

int atoll__op_submit(struct atoll_isolate *iso)
{
    int ret;
    do
        ret = io_uring_submit(&iso->ring);
    while (ret == -EINTR);
    atoll__wake_sqes_done(iso);
    if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
        atoll_stat_add(&iso->stats.submit_errors, 1);
    return ret;
}

int atoll__op_reserve(struct atoll_isolate *iso, struct io_uring_sqe **sqes, unsigned n)
{
    if (iso->ops.closed)
        return -ECANCELED;
    if (io_uring_sq_space_left(&iso->ring) < n) {
        /* Flush before taking any SQE of the chain: a submit between two
         * io_uring_get_sqe calls would hand the kernel a slot not yet
         * prepared. */
        atoll_stat_add(&iso->stats.sq_flushes, 1);
        atoll__op_submit(iso);
        if (io_uring_sq_space_left(&iso->ring) < n)
            return -EBUSY;
    }
    for (unsigned i = 0; i < n; i++)
        sqes[i] = io_uring_get_sqe(&iso->ring); /* cannot fail: space checked */
    return 0;
}

int atoll__obj_reserve(atoll_obj *o, struct io_uring_sqe **sqes, unsigned n)
{
    int ret = atoll__op_reserve(o->iso, sqes, n);
    if (ret < 0)
        atoll__obj_defer(o);
    return ret;
}

void atoll__op_start_tagged(struct atoll_isolate *iso, struct io_uring_sqe *sqe, enum atoll_ud_kind kind, atoll_obj *o,
                            uint8_t tag)
{
    io_uring_sqe_set_data64(sqe, atoll_ud_make_tagged(kind, (uintptr_t)o, tag));
    iso->ops.live++;
    if (o)
        atoll__obj_ref(o);
}

void atoll__op_start(struct atoll_isolate *iso, struct io_uring_sqe *sqe, enum atoll_ud_kind kind, atoll_obj *o)
{
    atoll__op_start_tagged(iso, sqe, kind, o, 0);
}

bool atoll__op_kind_counted(enum atoll_ud_kind kind)
{
    switch (kind) {
    case ATOLL_UD_EVENTFD_READ:
    case ATOLL_UD_ACCEPT:
    case ATOLL_UD_RECV:
    case ATOLL_UD_SEND:
    case ATOLL_UD_SHUTDOWN:
    case ATOLL_UD_CLOSE:
    case ATOLL_UD_CANCEL:
    case ATOLL_UD_CONNECT:
    case ATOLL_UD_SOCKOPT:
        return true;
    default:
        return false; /* WAKE lands from another ring; WAKE_SENT posts only on failure */
    }
}

void atoll__op_cqe_done(struct atoll_isolate *iso, const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_MORE)
        return;
    atoll_obj *o = atoll_ud_ptr(io_uring_cqe_get_data64(cqe));
    iso->ops.live--;
    if (o)
        atoll__obj_unref(o);
}

void atoll__ops_run_deferred(struct atoll_isolate *iso)
{
    atoll_ops *ops = &iso->ops;
    /* Only what was deferred before this pass: an object that defers again
     * waits for the next turn instead of spinning here. */
    atoll_obj *o = ops->defer_head;
    ops->defer_head = ops->defer_tail = NULL;
    while (o) {
        atoll_obj *next = o->next_link;
        o->next_link = NULL;
        o->deferred = false;
        o->type->issue(o);
        atoll__obj_unref(o);
        o = next;
    }
}

void atoll__ops_free_dead(struct atoll_isolate *iso)
{
    atoll_ops *ops = &iso->ops;
    /* A destroy may drop references on other objects (a connection on its
     * server): keep going until nothing new died. */
    while (ops->dead) {
        atoll_obj *o = ops->dead;
        ops->dead = o->next_link;
        o->type->destroy(o);
    }
}

unsigned atoll__ops_reap(struct atoll_isolate *iso, void (*handle)(struct atoll_isolate *, const struct io_uring_cqe *))
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&iso->ring, head, cqe)
    {
        handle(iso, cqe);
        n++;
    }
    io_uring_cq_advance(&iso->ring, n);
    atoll_stat_add(&iso->stats.cqes, n);
    return n;
}

/* Teardown's handler: no object handler runs, the op only ends. */
static void atoll_op_account_only(struct atoll_isolate *iso, const struct io_uring_cqe *cqe)
{
    if (atoll__op_kind_counted(atoll_ud_kind(io_uring_cqe_get_data64(cqe))))
        atoll__op_cqe_done(iso, cqe);
}

static uint64_t atoll_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int atoll__ops_shutdown(struct atoll_isolate *iso, uint32_t timeout_ms)
{
    atoll_ops *ops = &iso->ops;
    while (ops->defer_head) {
        atoll_obj *o = ops->defer_head;
        ops->defer_head = o->next_link;
        o->next_link = NULL;
        o->deferred = false;
        atoll__obj_unref(o);
    }
    ops->defer_tail = NULL;
    if (ops->live) {
        /* One cancel for everything; the SQEs still queued go with it, so
         * nothing prepared earlier reaches the kernel after a descriptor
         * closes. */
        struct io_uring_sqe *sqe;
        if (atoll__op_reserve(iso, &sqe, 1) == 0) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
            atoll__op_start(iso, sqe, ATOLL_UD_CANCEL, NULL);
        }
    }
    ops->closed = true;
    uint64_t deadline = atoll_ms_now() + timeout_ms;
    while (ops->live) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 10 * 1000000};
        int ret = io_uring_submit_and_wait_timeout(&iso->ring, &cqe, 1, &ts, NULL);
        atoll__wake_sqes_done(iso);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
            atoll_stat_add(&iso->stats.submit_errors, 1);
        atoll__ops_reap(iso, atoll_op_account_only);
        if (ops->live && atoll_ms_now() >= deadline)
            return -ETIMEDOUT;
    }
    return 0;
}
