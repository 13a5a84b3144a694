/*
 * runtime/isolate_thread.c: the thread under each isolate: pinning, the
 * start-up barrier of the pool, and the hand-over to the isolate's loop.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "isolates/isolate_private.h"
#include "runtime/runtime_private.h"

static void atoll_pin(struct atoll_isolate *iso)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        return;
    int n = CPU_COUNT(&allowed);
    if (n <= 0)
        return;
    int want = (int)(iso->id % (uint32_t)n), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            /* Unpinned (an error), the isolate's servers take the hash. */
            if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0)
                iso->cpu = cpu;
            return;
        }
    }
}

static void *atoll_isolate_main(void *arg)
{
    struct atoll_isolate *iso = arg;
    atoll__set_current(iso);
    if (iso->pool && iso->rt->opts.pin_cpus)
        atoll_pin(iso);
    iso->status = atoll__loop_setup(iso);
    if (iso->status == 0) {
        atoll__isolate_ready(iso->rt, iso);
        iso->status = atoll__loop_run(iso);
    }
    atoll__isolate_exited(iso->rt, iso);
    atoll__set_current(NULL);
    return NULL;
}

int atoll__isolate_launch(atoll_runtime *rt, struct atoll_isolate *iso)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int err = pthread_create(&iso->thread, &attr, atoll_isolate_main, iso);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    iso->thread_started = true;
    return 0;
}
