/*
 * runtime/base/conn_budget.c: the runtime-wide connection cap's waiter list
 * (see conn_budget.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/base/conn_budget.h"

int atoll__budget_init(atoll_conn_budget *b, uint32_t max, uint32_t max_waiters)
{
    *b = (atoll_conn_budget){.max = max};
    /* A sixteenth of the cap (1 to 32) must come back before waiters wake,
     * so a runtime at its cap does not re-steer every group at each close
     * (the same hysteresis as one isolate's table, fixed_files.h). */
    uint32_t hyst = max / 16;
    hyst = hyst < 1 ? 1 : hyst > 32 ? 32 : hyst;
    b->resume_at = max > hyst ? max - hyst : 0;
    if (!max)
        return 0;
    b->waiters = calloc(max_waiters ? max_waiters : 1, sizeof(*b->waiters));
    if (!b->waiters)
        return -ENOMEM;
    b->cap_waiters = max_waiters ? max_waiters : 1;
    pthread_mutex_init(&b->mu, NULL);
    return 0;
}

void atoll__budget_destroy(atoll_conn_budget *b)
{
    if (b->waiters)
        pthread_mutex_destroy(&b->mu);
    free(b->waiters);
    b->waiters = NULL;
    b->cap_waiters = 0;
}

bool atoll__budget_wait(atoll_conn_budget *b, void *who)
{
    if (!b || !b->max)
        return true;
    pthread_mutex_lock(&b->mu);
    uint32_t n = atomic_load(&b->nwaiters);
    bool present = false;
    for (uint32_t i = 0; i < n && !present; i++)
        present = b->waiters[i] == who;
    /* cap_waiters is the runtime's isolate count, so there is always room. */
    if (!present && n < b->cap_waiters) {
        b->waiters[n] = who;
        atomic_store(&b->nwaiters, n + 1);
    }
    pthread_mutex_unlock(&b->mu);
    return atoll__budget_room(b);
}

void atoll__budget_unwait(atoll_conn_budget *b, void *who)
{
    if (!b || !b->max)
        return;
    pthread_mutex_lock(&b->mu);
    uint32_t n = atomic_load(&b->nwaiters);
    for (uint32_t i = 0; i < n; i++) {
        if (b->waiters[i] == who) {
            b->waiters[i] = b->waiters[n - 1];
            atomic_store(&b->nwaiters, n - 1);
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

uint32_t atoll__budget_take_waiters(atoll_conn_budget *b, void **out, uint32_t max)
{
    if (!b || !b->max)
        return 0;
    pthread_mutex_lock(&b->mu);
    uint32_t n = atomic_load(&b->nwaiters);
    uint32_t k = n < max ? n : max;
    for (uint32_t i = 0; i < k; i++)
        out[i] = b->waiters[n - 1 - i];
    atomic_store(&b->nwaiters, n - k);
    pthread_mutex_unlock(&b->mu);
    return k;
}
