/*
 * isolates/task.h: a task in flight between isolates (atoll_submit,
 * atoll_runtime_submit), and the isolate's inbox that carries it. The task object travels: submitter -> target's
 * inbox (kind TASK) -> for atoll_submit, back to the origin's inbox (kind
 * REPLY). Whoever holds it last frees it.
 */
#ifndef ATOLL_ISOLATES_TASK_H
#define ATOLL_ISOLATES_TASK_H

#include "isolates/isolate_private.h"

/* Internal closures run on an isolate (resolver results, ...). */
typedef void (*atoll_post_fn)(struct atoll_isolate *self, void *arg, bool dropped);

typedef enum atoll_task_kind {
    ATOLL_TASK_RUN = 1, /* run fn on the target */
    ATOLL_TASK_REPLY,   /* deliver the reply on the origin */
    ATOLL_TASK_POST,    /* internal: run fn on the target, nothing returns */
} atoll_task_kind;

struct atoll_task {
    atoll_tq_node node; /* first: the queue node is the task */
    atoll_task_kind kind;
    atoll_task_fn fn;
    void *arg;
    void *result;
    int status;
    struct atoll_isolate *origin; /* NULL: submitted by a host thread */
    atoll_reply_fn reply;         /* origin != NULL */
    atoll_done_fn done;           /* origin == NULL; may be NULL */
    atoll_post_fn post;           /* kind POST */
    void *user;
};

/* Pushes `t` into `target`'s inbox through its gate and wakes it.
 * Returns 0, or ATOLL_E_PORT_CLOSED when the target is exiting. */
int atoll__inbox_push(struct atoll_isolate *target, struct atoll_task *t);

/* Runs fn(target, arg, false) on `target` at its next turn. If the target
 * exits first, fn(target, arg, true) runs on its thread during teardown so
 * `arg` can be released. Returns 0, ATOLL_E_PORT_CLOSED (target exiting:
 * fn will not run, the caller keeps arg) or -ENOMEM. Thread: any thread. */
int atoll__post(struct atoll_isolate *target, atoll_post_fn fn, void *arg);

/* The target ran the task, or dropped it (status ATOLL_E_CANCELED): sends
 * the outcome to its origin (reply) or runs `done`. Thread: the target's. */
void atoll__task_finish(struct atoll_task *t, int status, void *result);

#endif /* ATOLL_ISOLATES_TASK_H */
