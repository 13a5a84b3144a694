/*
 * isolates/fixed_files.c: slots of the isolate's direct-descriptor table
 * (see fixed_files.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "isolates/fixed_files.h"
#include "isolates/isolate_private.h"

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
    return 0;
}

void atoll__files_free(atoll_fixed_files *f)
{
    free(f->free_slots);
    f->free_slots = NULL;
    f->nfree = f->cap = 0;
    f->ready = false;
}

int atoll__files_get(atoll_fixed_files *f, uint32_t *slot)
{
    if (!f->nfree) {
        f->starved = true;
        return ATOLL_E_CONN_CAP;
    }
    *slot = f->free_slots[--f->nfree];
    return 0;
}

void atoll__files_put(atoll_fixed_files *f, uint32_t slot)
{
    if (f->nfree < f->cap)
        f->free_slots[f->nfree++] = slot;
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
