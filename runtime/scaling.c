/*
 * runtime/scaling.c: isolates that come and go while the runtime runs:
 * spawned ones (Dart's Isolate.spawn), pool isolates added (each joins every
 * runtime-wide listener) and pool isolates retired (drained alone, then
 * joined).
 */
#include <errno.h>
#include <stdint.h>

#include "isolates/isolate_private.h"
#include "runtime/runtime_private.h"

/* Under rt->lock: an isolate created while the runtime runs (spawn, live
 * scaling), its ring waited for when `wait`. */
static int atoll_isolate_add(atoll_runtime *rt, bool pool, atoll_entry_fn entry, void *arg, bool wait,
                             struct atoll_isolate **out)
{
    *out = NULL;
    if (rt->state == ATOLL_RT_CREATED)
        return ATOLL_E_STATE;
    if (rt->state != ATOLL_RT_STARTED)
        return ATOLL_E_STOPPED;
    int ret = atoll__isolate_create(rt, pool, entry, arg, out);
    if (ret == 0 && wait)
        ret = atoll__wait_ready(rt, *out);
    return ret;
}

int atoll_runtime_spawn(atoll_runtime *rt, atoll_entry_fn entry, void *arg, uint32_t *id_out)
{
    if (!rt || !entry)
        return -EINVAL;
    pthread_mutex_lock(&rt->lock);
    struct atoll_isolate *iso;
    /* A host thread waits for the ring so it gets setup errors directly; an
     * isolate does not block its loop: it learns them from the exit status. */
    int ret = atoll_isolate_add(rt, false, entry, arg, !atoll__on_runtime_thread(rt), &iso);
    if (iso && id_out)
        *id_out = iso->id;
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

bool atoll__pool_member(const struct atoll_isolate *iso)
{
    return iso->pool && !atomic_load_explicit(&iso->retired, memory_order_relaxed) &&
           atomic_load_explicit(&iso->state, memory_order_relaxed) != ATOLL_ISOLATE_EXITED;
}

int atoll_runtime_add_isolate(atoll_runtime *rt, uint32_t *id_out)
{
    if (!rt)
        return -EINVAL;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    pthread_mutex_lock(&rt->scale_mu);
    pthread_mutex_lock(&rt->lock);
    struct atoll_isolate *iso;
    int ret = atoll_isolate_add(rt, true, rt->opts.entry, rt->opts.entry_arg, true, &iso);
    pthread_mutex_unlock(&rt->lock);
    /* It serves every runtime-wide listener like the pool isolates. */
    for (struct atoll_listener *l = rt->listeners; ret == 0 && l; l = atoll__listener_next(l))
        ret = atoll__listener_join(l, iso->id);
    if (ret < 0 && iso && atomic_load(&iso->state) != ATOLL_ISOLATE_EXITED) {
        /* Half joined: it leaves again (its members drain; nothing reached it
         * that is lost) and the caller hears the error. */
        pthread_mutex_lock(&rt->lock);
        atomic_store(&iso->retired, true);
        atomic_store_explicit(&iso->drain_timeout_ms, 0, memory_order_release);
        atoll__signal_one(rt, iso, ATOLL_CTL_DRAIN);
        pthread_mutex_unlock(&rt->lock);
    }
    if (ret == 0 && id_out)
        *id_out = iso->id;
    pthread_mutex_unlock(&rt->scale_mu);
    return ret;
}

int atoll_runtime_retire(atoll_runtime *rt, uint32_t id, uint64_t timeout_ms)
{
    if (!rt)
        return -EINVAL;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    struct timespec deadline =
        atoll__deadline_after(timeout_ms > UINT64_MAX / 2 ? UINT64_MAX / 2 : timeout_ms + ATOLL_DRAIN_EXIT_GRACE_MS);
    pthread_mutex_lock(&rt->scale_mu);
    pthread_mutex_lock(&rt->lock);
    int ret = 0;
    struct atoll_isolate *iso = id < atomic_load(&rt->isolate_count) ? rt->isolates[id] : NULL;
    if (!iso) {
        ret = -ENOENT;
    } else if (rt->state != ATOLL_RT_STARTED || !atoll__pool_member(iso)) {
        ret = ATOLL_E_STATE; /* not a serving pool isolate, or the runtime drains or stopped */
    } else {
        uint32_t members = 0, n = atomic_load(&rt->isolate_count);
        for (uint32_t i = 0; i < n; i++)
            members += atoll__pool_member(rt->isolates[i]);
        if (members == 1)
            ret = ATOLL_E_STATE; /* the last one: drain the runtime instead */
    }
    if (ret == 0) {
        /* The same drain as the runtime's, on this isolate alone. */
        atomic_store(&iso->retired, true);
        atomic_store_explicit(&iso->drain_timeout_ms, timeout_ms, memory_order_release);
        atoll__signal_one(rt, iso, ATOLL_CTL_DRAIN);
        while (ret == 0 && atomic_load(&iso->state) != ATOLL_ISOLATE_EXITED)
            if (pthread_cond_timedwait(&rt->cond, &rt->lock, &deadline) == ETIMEDOUT &&
                atomic_load(&iso->state) != ATOLL_ISOLATE_EXITED)
                ret = ATOLL_E_TIMEDOUT;
    }
    /* Exited: join its thread now, not at atoll_runtime_join, so a retired
     * isolate leaves no stack behind. Taken under the lock so join skips
     * it; joined outside, since the thread takes the lock on its way out. */
    bool join = ret == 0 && iso->thread_started;
    pthread_t th = {0};
    if (join) {
        th = iso->thread;
        iso->thread_started = false;
    }
    pthread_mutex_unlock(&rt->lock);
    if (join)
        pthread_join(th, NULL);
    pthread_mutex_unlock(&rt->scale_mu);
    return ret;
}
