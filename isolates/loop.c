/*
 * isolates/loop.c: an isolate's event loop.
 *
 * One turn: submit what the turn queued and wait for a completion (or the
 * next timer, or nothing if work is left over), reap every CQE, run due
 * timers, drain the inbox and the ports if woken, act on drain/stop
 * requests. The only blocking call is the wait inside io_uring_enter.
 */
#include <errno.h>
#include <time.h>

#include "isolates/net_private.h"
#include "isolates/user_data.h"

/* How long teardown waits for the kernel to return cancelled ops. */
#define ATOLL_TEARDOWN_REAP_MS 5000

static uint64_t atoll_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool atoll__on_owner_thread(const struct atoll_isolate *iso)
{
    return iso && atoll_isolate_current() == iso;
}

static void atoll_cqe_dispatch(struct atoll_isolate *iso, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (atoll_ud_kind(ud)) {
    case ATOLL_UD_WAKE:
        atoll_stat_add(&iso->stats.wakeups_ring, 1);
        break;
    case ATOLL_UD_EVENTFD_READ:
        iso->eventfd_armed = false;
        if (cqe->res >= 0)
            atoll_stat_add(&iso->stats.wakeups_eventfd, 1);
        else if (cqe->res != -EAGAIN && cqe->res != -EINTR && cqe->res != -ECANCELED)
            atoll_stat_add(&iso->stats.wake_errors, 1); /* a bug short of that: counted, re-armed */
        atoll__arm_eventfd(iso);
        break;
    case ATOLL_UD_WAKE_SENT: {
        /* Only failures produce this CQE (CQE_SKIP_SUCCESS). */
        atoll_stat_add(&iso->stats.wake_errors, 1);
        /* The target isolate object lives until the runtime is destroyed,
         * after every isolate thread has been joined. */
        atoll__wake_eventfd(atoll_ud_ptr(ud));
        break;
    }
    default:
        /* Every other op kind belongs to a socket object (op.c's list). */
        if (!atoll__op_kind_counted(atoll_ud_kind(ud)))
            atoll_stat_add(&iso->stats.cqe_errors, 1); /* unknown kind: a bug */
        else if (iso->net)
            atoll__net_cqe(iso, cqe);
        break;
    }
    if (atoll__op_kind_counted(atoll_ud_kind(ud)))
        atoll__op_cqe_done(iso, cqe);
}

static void atoll_run_drain_hooks(struct atoll_isolate *iso)
{
    iso->drained = true;
    iso->resident = false;
    for (uint32_t i = 0; i < iso->ndrain_hooks; i++)
        iso->drain_hooks[i].fn(iso, iso->drain_hooks[i].user);
    /* Servers still open drain (queued connections are served, none is
     * reset); every connection hears on_drain and has until the runtime's
     * deadline to finish. */
    atoll__net_drain(iso, atomic_load_explicit(&iso->drain_timeout_ms, memory_order_acquire));
}

static void atoll_check_control(struct atoll_isolate *iso)
{
    unsigned ctl = atomic_load(&iso->control);
    if ((ctl & ATOLL_CTL_STOP) && !iso->exiting) {
        iso->exiting = true;
        iso->exit_status = ATOLL_E_STOPPED;
    }
    if ((ctl & ATOLL_CTL_DRAIN) && !iso->drained && !iso->exiting)
        atoll_run_drain_hooks(iso);
}

static void atoll_turn(struct atoll_isolate *iso)
{
    /* CQ overflow: NODROP keeps the completions in the kernel; flush them
     * and count the turn, since it means cq_entries is too small. */
    if (atoll_uring_sq_flags(&iso->ring) & IORING_SQ_CQ_OVERFLOW) {
        atoll_stat_add(&iso->stats.cq_overflows, 1);
        io_uring_get_events(&iso->ring);
    }

    /* Ops that found the SQ short last turn go first, in order. */
    atoll__ops_run_deferred(iso);
    atoll__arm_eventfd(iso);

    bool busy = iso->more_work || iso->closing || atomic_load(&iso->wake_pending) || iso->exiting;
    uint64_t due = atoll__timers_next_due(iso);
    struct __kernel_timespec ts = {0, 0}, *tsp = NULL;
    if (busy) {
        tsp = &ts;
    } else if (due != UINT64_MAX) {
        uint64_t wait = due > iso->now_ns ? due - iso->now_ns : 0;
        ts.tv_sec = (long long)(wait / 1000000000u);
        ts.tv_nsec = (long long)(wait % 1000000000u);
        tsp = &ts;
    }
    /* A zero timeout polls: task work runs and completions are posted
     * (DEFER_TASKRUN needs an enter with GETEVENTS), nothing sleeps. */
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait_timeout(&iso->ring, &cqe, 1, tsp, NULL);
    atoll__wake_sqes_done(iso);
    /* -ETIME and -EINTR are ordinary wake reasons; -EBUSY/-EAGAIN leave the
     * SQEs queued for the next turn (CQ pressure); anything else is counted. */
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
        atoll_stat_add(&iso->stats.submit_errors, 1);
    iso->now_ns = atoll_clock_ns();
    atoll_stat_add(&iso->stats.loop_turns, 1);

    atoll__ops_reap(iso, atoll_cqe_dispatch);
    atoll__timers_run(iso);
    iso->more_work = false;
    atoll__net_turn(iso);
    if (atomic_exchange(&iso->wake_pending, 0)) {
        atoll__inbox_run(iso);
        atoll__ports_deliver(iso);
    }
    if (iso->closing)
        atoll__ports_reclaim(iso);
    atoll_check_control(iso);
    /* The free phase: every callback of the turn has returned. */
    atoll__ops_free_dead(iso);
}

static bool atoll_should_exit(const struct atoll_isolate *iso)
{
    return iso->exiting || (!iso->resident && iso->refs == 0);
}

int atoll__loop_setup(struct atoll_isolate *iso)
{
    int ret = atoll__ring_setup(iso);
    if (ret < 0)
        atoll__ring_release(iso);
    return ret;
}

int atoll__loop_run(struct atoll_isolate *iso)
{
    iso->now_ns = atoll_clock_ns();

    atoll_check_control(iso);
    if (iso->entry && !iso->exiting) {
        int st = iso->entry(iso, iso->entry_arg);
        if (st != 0 && !iso->exiting) {
            iso->exiting = true;
            iso->exit_status = st;
        }
    }
    while (!atoll_should_exit(iso))
        atoll_turn(iso);

    /* Teardown: nothing the isolate owned may outlive it. Order: refuse
     * new inbox traffic, drop ports (releasing their messages), then close
     * the op layer: cancel every op and reap until none is live, so no SQE
     * of the last turn can reach the kernel after a descriptor closes. Only
     * then servers and connections go (on_closed callbacks, descriptors),
     * then timers, then the dead objects. */
    atoll__inbox_teardown(iso);
    atoll__ports_teardown(iso);
    if (atoll__ops_shutdown(iso, ATOLL_TEARDOWN_REAP_MS) < 0)
        atoll_stat_add(&iso->stats.cqe_errors, 1); /* ops left: their objects are kept, not freed */
    atoll__net_teardown(iso);
    atoll__timers_teardown(iso);
    atoll__ops_free_dead(iso);
    atoll__tls_thread_exit();
    io_uring_unregister_ring_fd(&iso->ring); /* registered by this thread */
    return iso->exiting ? iso->exit_status : 0;
}
