/* isolates/isolate.c: what code inside an isolate asks of it, and which
 * isolate the calling thread runs. */
#include <errno.h>

#include "isolates/isolate_private.h"

/* The isolate running on this thread; NULL on host threads. Thread-local,
 * so no thread sees another's. */
static _Thread_local struct atoll_isolate *atoll_current;

atoll_isolate *atoll_isolate_current(void)
{
    return atoll_current;
}

void atoll__set_current(struct atoll_isolate *iso)
{
    atoll_current = iso;
}

uint32_t atoll_isolate_id(const atoll_isolate *iso)
{
    return iso->id;
}

atoll_runtime *atoll_isolate_runtime(const atoll_isolate *iso)
{
    return iso->rt;
}

int atoll_isolate_exit(atoll_isolate *iso, int status)
{
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (!iso->exiting) {
        iso->exiting = true;
        iso->exit_status = status;
    }
    return 0;
}

int atoll_isolate_on_drain(atoll_isolate *iso, atoll_drain_fn fn, void *user)
{
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (!fn)
        return -EINVAL;
    if (iso->ndrain_hooks == ATOLL_MAX_DRAIN_HOOKS)
        return ATOLL_E_LIMIT;
    iso->drain_hooks[iso->ndrain_hooks].fn = fn;
    iso->drain_hooks[iso->ndrain_hooks].user = user;
    iso->ndrain_hooks++;
    return 0;
}

uint64_t atoll_isolate_now_ns(const atoll_isolate *iso)
{
    return iso->now_ns;
}
