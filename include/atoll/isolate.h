/**
 * @file
 * atoll/isolate.h: what code running inside an isolate can ask of it.
 *
 * Everything here is called on the isolate's own thread (from its entry
 * function or from a callback its loop runs), except where a function says
 * otherwise. Calls from another thread return ATOLL_E_WRONG_THREAD.
 */
#ifndef ATOLL_ISOLATE_H
#define ATOLL_ISOLATE_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The isolate whose thread is calling, or NULL on a thread that is not an
 * isolate (a host thread).
 * Thread: any thread.
 */
ATOLL_API atoll_isolate *atoll_isolate_current(void);

/**
 * The isolate's id within its runtime.
 * Thread: any thread (the value never changes).
 */
ATOLL_API uint32_t atoll_isolate_id(const atoll_isolate *iso);

/**
 * The runtime the isolate belongs to.
 * Thread: any thread.
 */
ATOLL_API atoll_runtime *atoll_isolate_runtime(const atoll_isolate *iso);

/**
 * Ends the isolate at the end of the current loop turn with `status`
 * (0 = normal exit, non-zero = error), after closing its ports and
 * cancelling its timers. A second call keeps the first status.
 * Errors: ATOLL_E_WRONG_THREAD.
 * Thread: the isolate's own thread.
 */
ATOLL_API int atoll_isolate_exit(atoll_isolate *iso, int status);

/** Drain hook: called on the isolate's thread when the runtime drains. */
typedef void (*atoll_drain_fn)(atoll_isolate *self, void *user);

/**
 * Registers a hook run once on this isolate when atoll_runtime_drain()
 * begins: the place to close servers and ports so the isolate can exit.
 * Hooks run in registration order. At most 8 per isolate.
 * Errors: ATOLL_E_WRONG_THREAD, ATOLL_E_LIMIT, -EINVAL (fn NULL).
 * Thread: the isolate's own thread.
 */
ATOLL_API int atoll_isolate_on_drain(atoll_isolate *iso, atoll_drain_fn fn, void *user);

/**
 * The loop's cached monotonic clock in nanoseconds, updated once per turn
 * (cheap; what timers are measured against).
 * Thread: the isolate's own thread.
 */
ATOLL_API uint64_t atoll_isolate_now_ns(const atoll_isolate *iso);

/* ---------------------------------------------------------------------- */
/* Timers                                                                 */
/* ---------------------------------------------------------------------- */

/**
 * A timer on an isolate's loop. Opaque. Lifecycle: atoll_timer_start() ->
 * (callback runs) -> a one-shot timer is released after its callback
 * returns; a periodic one runs until atoll_timer_cancel(). After cancel, or
 * after a one-shot's callback returned, the handle must not be used.
 */
typedef struct atoll_timer atoll_timer;

/** Timer callback, run on the owning isolate's thread. */
typedef void (*atoll_timer_fn)(atoll_timer *timer, void *user);

/**
 * Starts a timer that fires `timeout_ms` from now, then every `repeat_ms`
 * if repeat_ms > 0 (periods are measured from the previous due time, so a
 * late turn does not shift later firings; missed periods are not replayed).
 * Timers due at the same time fire in the order they were started. An active
 * timer keeps a spawned isolate alive.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (fn or out NULL, or a timeout or
 * period above UINT64_MAX / 2000000 ms, about 290 years), -ENOMEM,
 * ATOLL_E_STOPPED (the isolate is exiting).
 * Thread: the isolate's own thread.
 */
ATOLL_API int atoll_timer_start(atoll_isolate *iso, uint64_t timeout_ms, uint64_t repeat_ms, atoll_timer_fn fn,
                                void *user, atoll_timer **out);

/**
 * Cancels a timer: its callback will not run again, including when the
 * timer is already due in this turn. Allowed inside the timer's own
 * callback. The handle is released.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (NULL).
 * Thread: the owning isolate's thread.
 */
ATOLL_API int atoll_timer_cancel(atoll_timer *timer);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_ISOLATE_H */
