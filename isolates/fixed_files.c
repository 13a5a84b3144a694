/*
 * isolates/fixed_files.c: slots of the isolate's direct-descriptor table
 * (see fixed_files.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "isolates/fixed_files.h"
#include "isolates/isolate_private.h"
#include "isolates/task.h"

/* Posted to an isolate waiting for the runtime-wide budget: nothing to do
 * here, the wakeup is the point (its net turn re-arms what stopped). */
static void atoll_files_budget_back(struct atoll_isolate *self, void *arg, bool dropped)
{
    (void)self, (void)arg, (void)dropped;
}

static void atoll_files_give(atoll_fixed_files *f, uint32_t n)
{
    if (!atoll__budget_give(f->budget, n))
        return;
    void *who[16];
    uint32_t k, left = atomic_load(&f->budget->nwaiters); /* bounded: a failed post registers again */
    while (left > 0 && (k = atoll__budget_take_waiters(f->budget, who, left < 16 ? left : 16)) > 0) {
        left -= k;
        for (uint32_t i = 0; i < k; i++) {
            if (who[i] == f->owner)
                f->owner->more_work = true; /* ourselves: no post needed */
            else if (atoll__post(who[i], atoll_files_budget_back, NULL) == -ENOMEM)
                (void)atoll__budget_wait(f->budget, who[i]); /* woken by the next unit back */
            /* ATOLL_E_PORT_CLOSED: the isolate is exiting, nothing to re-arm. */
        }
    }
}

int atoll__files_init(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t cap)
{
    f->free_slots = malloc((size_t)cap * sizeof(*f->free_slots));
    if (!f->free_slots)
        return -ENOMEM;
    int ret = io_uring_register_files_sparse(&iso->ring, cap);
    if (ret < 0) {
        free(f->free_slots);
        f->free_slots = NULL;
        return ret;
    }
    /* Lowest slots on top: a small working set stays in few cache lines. */
    for (uint32_t i = 0; i < cap; i++)
        f->free_slots[i] = cap - 1 - i;
    f->nfree = f->cap = cap;
    f->ready = true;
    f->budget = iso->conn_budget;
    f->owner = iso;
    if (f->budget && f->budget->max) {
        f->charged = calloc(cap, 1);
        if (!f->charged) {
            atoll__files_free(f);
            return -ENOMEM;
        }
    }
    return 0;
}

void atoll__files_free(atoll_fixed_files *f)
{
    if (f->ready) {
        atoll__budget_unwait(f->budget, f->owner);
        atoll_files_give(f, f->ncharged);
    }
    free(f->charged);
    f->charged = NULL;
    f->ncharged = 0;
    free(f->free_slots);
    f->free_slots = NULL;
    f->nfree = f->cap = 0;
    f->ready = false;
}

int atoll__files_get(atoll_fixed_files *f, uint32_t *slot)
{
    if (!f->nfree || !atoll__files_budget_left(f)) {
        f->starved = true;
        return ATOLL_E_CONN_CAP;
    }
    *slot = f->free_slots[--f->nfree];
    return 0;
}

bool atoll__files_budget_left(atoll_fixed_files *f)
{
    if (atoll__budget_has(f->budget))
        return true;
    /* Units came back between the look and the registration: look again
     * next turn instead of sleeping. */
    if (atoll__budget_wait(f->budget, f->owner))
        f->owner->more_work = true;
    return false;
}

bool atoll__files_charge(atoll_fixed_files *f, uint32_t slot)
{
    if (!f->charged || f->charged[slot])
        return true;
    if (!atoll__budget_take(f->budget)) {
        (void)atoll__files_budget_left(f); /* registers to be woken */
        return false;
    }
    f->charged[slot] = 1;
    f->ncharged++;
    return true;
}

void atoll__files_put(atoll_fixed_files *f, uint32_t slot)
{
    if (f->nfree < f->cap) {
        f->free_slots[f->nfree++] = slot;
        if (f->charged && f->charged[slot]) {
            f->charged[slot] = 0;
            f->ncharged--;
            atoll_files_give(f, 1);
        }
    }
}

int atoll__files_install(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t slot, int fd)
{
    int ret = io_uring_register_files_update(&iso->ring, slot, &fd, 1);
    close(fd); /* the table holds its own reference now (or never got one) */
    if (ret < 0) {
        atoll__files_put(f, slot);
        return ret;
    }
    return 0;
}

void atoll__files_remove(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t slot)
{
    int none = -1;
    io_uring_register_files_update(&iso->ring, slot, &none, 1);
    atoll__files_put(f, slot);
}
