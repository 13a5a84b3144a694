/*
 * isolates/wake.c: waking an isolate so it runs its inbox and ports.
 *
 * One flag per isolate coalesces a burst of sends into one wakeup: only the
 * sender that flips it from 0 to 1 pays for a wakeup; the isolate clears it
 * before draining, so a send landing after the drain starts wakes it again.
 * From an isolate of the same runtime the wakeup is a MSG_RING SQE on the
 * sender's own ring (batched with the sender's other submissions, no
 * syscall of its own); from any other thread it is an eventfd write that the
 * destination's ring has a read armed on.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "isolates/isolate_private.h"
#include "isolates/user_data.h"

static void atoll_wake_eventfd(struct atoll_isolate *target)
{
    uint64_t one = 1;
    /* The eventfd is non-blocking and only fails (EAGAIN) if its counter
     * nears 2^64, which a coalesced wake cannot reach. */
    while (write(target->event_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void atoll__wake(struct atoll_isolate *target)
{
    if (atomic_exchange(&target->wake_pending, 1))
        return;
    struct atoll_isolate *self = atoll_isolate_current();
    if (self == target)
        return; /* the loop checks wake_pending before it sleeps */
    bool by_ring = self && self->rt == target->rt && self->ring_ready;
    /* Announce the SQE before looking at the target's state (both seq_cst):
     * a target that stops RUNNING either is seen so here, or sees the flag
     * and waits for our submit before closing the descriptor we name. */
    if (by_ring)
        atomic_store(&self->wake_sqes, 1);
    /* Before its ring is ready the target has not waited yet: it checks
     * wake_pending before its first wait, and its descriptors may not exist.
     * After its loop it needs no wakeup, and its descriptors may be gone. */
    if (atomic_load(&target->state) != ATOLL_ISOLATE_RUNNING)
        return;
    if (by_ring) {
        struct io_uring_sqe *sqe;
        if (atoll__op_reserve(self, &sqe, 1) == 0) {
            io_uring_prep_msg_ring(sqe, target->ring_fd, 0, atoll_ud_make(ATOLL_UD_WAKE, self->id), 0);
            io_uring_sqe_set_data64(sqe, atoll_ud_make_tagged(ATOLL_UD_WAKE_SENT, (uint64_t)(uintptr_t)target, 0));
            /* Success needs no CQE here; a failure comes back and falls back
             * to the eventfd (see loop.c). */
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            return;
        }
    }
    atoll_wake_eventfd(target);
}

/* Fallback after a failed MSG_RING, from the loop (counted there), long
 * after the gate that let the wakeup's sender in: go through the target's
 * inbox gate again, which closes before the target's eventfd does. */
void atoll__wake_eventfd(struct atoll_isolate *target)
{
    if (!atoll_gate_enter(&target->inbox_gate, 0))
        return; /* exiting: nothing left to wake */
    atoll_wake_eventfd(target);
    atoll_gate_leave(&target->inbox_gate);
}

/* A sender that finds its destination full is about to wait for it: push
 * out the wakeups still sitting in its own SQ, or a sender that retries
 * without returning to its loop would wait for a receiver it never woke. */
void atoll__flush_wakeups(void)
{
    struct atoll_isolate *self = atoll_isolate_current();
    if (self && self->ring_ready && io_uring_sq_ready(&self->ring))
        atoll__op_submit(self);
}
