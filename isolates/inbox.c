/*
 * isolates/inbox.c: an isolate's inbox on the receiving side: run the tasks
 * submitted to it, deliver the replies to tasks it submitted.
 */
#include <sched.h>
#include <stdlib.h>

#include "isolates/isolate_private.h"
#include "runtime/task.h"

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
