/*
 * isolates/inbox.c: an isolate's inbox. Any thread pushes tasks into it
 * (through its gate, then wakes it); the isolate runs the tasks submitted to
 * it and delivers the replies to tasks it submitted.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "isolates/isolate_private.h"
#include "isolates/task.h"

int atoll__inbox_push(struct atoll_isolate *target, struct atoll_task *t)
{
    if (!atoll_gate_enter(&target->inbox_gate, 0))
        return ATOLL_E_PORT_CLOSED;
    atoll_tq_push(&target->inbox, &t->node);
    atoll__wake(target);
    atoll_gate_leave(&target->inbox_gate);
    return 0;
}

/* The target ran the task, or dropped it (status ATOLL_E_CANCELED): send the
 * outcome where it belongs. Runs on the target's thread. */
void atoll__task_finish(struct atoll_task *t, int status, void *result)
{
    t->status = status;
    t->result = result;
    if (!t->origin) {
        if (t->done)
            t->done(status, result, t->user);
        free(t);
        return;
    }
    t->kind = ATOLL_TASK_REPLY;
    if (atoll__inbox_push(t->origin, t) < 0)
        free(t); /* the origin exited: its reply is discarded, as documented */
}

int atoll__post(struct atoll_isolate *target, atoll_post_fn fn, void *arg)
{
    struct atoll_task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->kind = ATOLL_TASK_POST;
    t->post = fn;
    t->arg = arg;
    int ret = atoll__inbox_push(target, t);
    if (ret < 0)
        free(t);
    return ret;
}

/* Most inbox items handled per turn; the rest wait for the next turn. */
#define ATOLL_INBOX_TURN_BUDGET 4096u

static void atoll_inbox_handle(struct atoll_isolate *iso, struct atoll_task *t, bool dropping)
{
    if (t->kind == ATOLL_TASK_POST) {
        t->post(iso, t->arg, dropping);
        free(t);
        return;
    }
    if (t->kind == ATOLL_TASK_RUN) {
        atomic_fetch_sub(&iso->tasks_queued, 1);
        if (dropping) {
            atoll__task_finish(t, ATOLL_E_CANCELED, NULL);
            return;
        }
        void *result = t->fn(iso, t->arg);
        atoll_stat_add(&iso->stats.tasks_run, 1);
        atoll__task_finish(t, 0, result);
        return;
    }
    /* A reply to one of our tasks. */
    iso->refs--;
    if (!dropping)
        t->reply(iso, t->status, t->result, t->user);
    free(t);
}

void atoll__inbox_run(struct atoll_isolate *iso)
{
    for (uint32_t n = 0; n < ATOLL_INBOX_TURN_BUDGET && !iso->exiting; n++) {
        atoll_tq_node *node = atoll_tq_pop(&iso->inbox);
        if (!node)
            return;
        atoll_inbox_handle(iso, (struct atoll_task *)node, false);
    }
    /* Budget spent or exiting: whatever remains runs next turn or at teardown. */
    iso->more_work = true;
    atomic_store(&iso->wake_pending, 1);
}

void atoll__inbox_teardown(struct atoll_isolate *iso)
{
    atoll_gate_close(&iso->inbox_gate, 0);
    while (!atoll_gate_quiet(&iso->inbox_gate))
        sched_yield(); /* a submitter is between its check and its push */
    /* Every push finished before its sender left the gate: all reachable. */
    atoll_tq_node *node;
    while ((node = atoll_tq_pop(&iso->inbox)))
        atoll_inbox_handle(iso, (struct atoll_task *)node, true);
}
