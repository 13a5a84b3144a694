/**
 * @file
 * atoll/submit.h: running a function on another isolate (seastar's
 * submit_to) and offloading work to the pool.
 */
#ifndef ATOLL_SUBMIT_H
#define ATOLL_SUBMIT_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Target meaning "a pool isolate, in turn". */
#define ATOLL_POOL_ROUND_ROBIN UINT32_MAX
/** Target meaning "the pool isolate with the fewest queued tasks". */
#define ATOLL_POOL_LEAST_LOADED (UINT32_MAX - 1u)

/** A task: runs on the target isolate's thread; returns a result pointer. */
typedef void *(*atoll_task_fn)(atoll_isolate *self, void *arg);

/**
 * Reply of atoll_submit(), run on the submitting isolate's thread. `status`
 * is 0 when the task ran (`result` is what it returned) or ATOLL_E_CANCELED
 * when the target exited before running it (the task did not run; `arg`
 * is still the caller's).
 */
typedef void (*atoll_reply_fn)(atoll_isolate *self, int status, void *result, void *user);

/**
 * Runs `fn(target, arg)` on isolate `target` (an id, ATOLL_POOL_ROUND_ROBIN
 * or ATOLL_POOL_LEAST_LOADED), then `reply` on the calling isolate. A task
 * awaiting its reply keeps the caller alive. If the caller exits before the
 * reply arrives, the reply is discarded.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (fn or reply NULL), -ENOENT (no
 * such isolate), ATOLL_E_PORT_CLOSED (target exited), ATOLL_E_PORT_FULL
 * (target has task_capacity tasks queued), ATOLL_E_STOPPED, -ENOMEM.
 * Thread: the calling isolate's own thread (`self`).
 */
ATOLL_API int atoll_submit(atoll_isolate *self, uint32_t target, atoll_task_fn fn, void *arg, atoll_reply_fn reply,
                           void *user);

/**
 * Completion of atoll_runtime_submit(). Runs on the isolate that ran the task,
 * right after it (status 0, its result), or with ATOLL_E_CANCELED on the
 * isolate that dropped it unrun at stop. Host threads have no loop to return
 * to, so the host synchronises from here as it likes.
 */
typedef void (*atoll_done_fn)(int status, void *result, void *user);

/**
 * Offloads `fn(isolate, arg)` from any thread to isolate `target` (an id,
 * ATOLL_POOL_ROUND_ROBIN or ATOLL_POOL_LEAST_LOADED over the pool isolates).
 * `done` may be NULL. `chosen` (may be NULL) receives the isolate id used.
 * Errors as atoll_submit() except ATOLL_E_WRONG_THREAD.
 * Thread: any thread.
 */
ATOLL_API int atoll_runtime_submit(atoll_runtime *rt, uint32_t target, atoll_task_fn fn, void *arg, atoll_done_fn done,
                                   void *user, uint32_t *chosen);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_SUBMIT_H */
