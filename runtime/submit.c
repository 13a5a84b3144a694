/*
 * runtime/submit.c: atoll_submit (isolate to isolate, with a reply) and
 * atoll_runtime_submit (any thread to the pool).
 */
#include <errno.h>
#include <stdlib.h>

#include "isolates/isolate_private.h"
#include "isolates/task.h"
#include "runtime/runtime_private.h"

/* Resolves a target id or pool policy to an isolate. */
static int atoll_pick(atoll_runtime *rt, uint32_t target, struct atoll_isolate **out)
{
    /* The pool changes with live scaling: its members are the pool
     * isolates neither retired nor exited, among every id. */
    uint32_t n = atomic_load(&rt->isolate_count);
    if (target == ATOLL_POOL_ROUND_ROBIN) {
        for (uint32_t tries = 0;; tries++) {
            if (tries == n)
                return -ENOENT;
            uint32_t i = atomic_fetch_add_explicit(&rt->rr_next, 1, memory_order_relaxed) % n;
            if (atoll__pool_member(rt->isolates[i])) {
                target = i;
                break;
            }
        }
    } else if (target == ATOLL_POOL_LEAST_LOADED) {
        uint32_t best = UINT32_MAX, best_load = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++) {
            if (!atoll__pool_member(rt->isolates[i]))
                continue;
            uint32_t load = atomic_load_explicit(&rt->isolates[i]->tasks_queued, memory_order_relaxed);
            if (load < best_load) {
                best = i;
                best_load = load;
            }
        }
        if (best == UINT32_MAX)
            return -ENOENT;
        target = best;
    }
    if (target >= atomic_load(&rt->isolate_count))
        return -ENOENT;
    *out = rt->isolates[target];
    return 0;
}

/* Reserves a place in the target's task budget, builds and queues the task. */
static int atoll_enqueue(atoll_runtime *rt, uint32_t target, struct atoll_task *proto, uint32_t *chosen)
{
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return ATOLL_E_STOPPED;
    struct atoll_isolate *iso;
    int ret = atoll_pick(rt, target, &iso);
    if (ret < 0)
        return ret;
    if (atomic_fetch_add(&iso->tasks_queued, 1) >= rt->opts.task_capacity) {
        atomic_fetch_sub(&iso->tasks_queued, 1);
        atoll__flush_wakeups();
        return ATOLL_E_PORT_FULL;
    }
    struct atoll_task *t = malloc(sizeof(*t));
    if (!t) {
        atomic_fetch_sub(&iso->tasks_queued, 1);
        return -ENOMEM;
    }
    *t = *proto;
    t->kind = ATOLL_TASK_RUN;
    ret = atoll__inbox_push(iso, t);
    if (ret < 0) {
        atomic_fetch_sub(&iso->tasks_queued, 1);
        free(t);
        return ret;
    }
    if (chosen)
        *chosen = iso->id;
    return 0;
}

int atoll_submit(atoll_isolate *self, uint32_t target, atoll_task_fn fn, void *arg, atoll_reply_fn reply, void *user)
{
    if (!atoll__on_owner_thread(self))
        return ATOLL_E_WRONG_THREAD;
    if (!fn || !reply)
        return -EINVAL;
    if (self->exiting)
        return ATOLL_E_STOPPED;
    struct atoll_task proto = {.fn = fn, .arg = arg, .origin = self, .reply = reply, .user = user};
    int ret = atoll_enqueue(self->rt, target, &proto, NULL);
    if (ret == 0)
        self->refs++; /* the awaited reply keeps the caller alive */
    return ret;
}

int atoll_runtime_submit(atoll_runtime *rt, uint32_t target, atoll_task_fn fn, void *arg, atoll_done_fn done,
                         void *user, uint32_t *chosen)
{
    if (!rt || !fn)
        return -EINVAL;
    struct atoll_task proto = {.fn = fn, .arg = arg, .done = done, .user = user};
    return atoll_enqueue(rt, target, &proto, chosen);
}
