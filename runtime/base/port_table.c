/* runtime/base/port_table.c: slot allocation for send handles (see the header). */
#include <errno.h>
#include <stdlib.h>

#include "atoll/atoll.h"
#include "runtime/base/port_table.h"

int atoll__port_table_init(atoll_port_table *t, uint32_t size)
{
    t->slots = calloc(size ? size : 1, sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    t->size = size;
    for (uint32_t i = 0; i < size; i++)
        t->slots[i].next_free = i + 1 < size ? i + 1 : UINT32_MAX;
    t->free_head = size ? 0 : UINT32_MAX;
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

void atoll__port_table_destroy(atoll_port_table *t)
{
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    t->slots = NULL;
}

int atoll__port_table_alloc(atoll_port_table *t, struct atoll_receive_port *port, uint32_t *slot, uint32_t *gen)
{
    pthread_mutex_lock(&t->lock);
    uint32_t i = t->free_head;
    if (i == UINT32_MAX) {
        pthread_mutex_unlock(&t->lock);
        return ATOLL_E_LIMIT;
    }
    atoll_port_slot *s = &t->slots[i];
    t->free_head = s->next_free;
    s->generation++;
    s->port = port;
    *slot = i;
    *gen = s->generation;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void atoll__port_table_free(atoll_port_table *t, uint32_t slot)
{
    pthread_mutex_lock(&t->lock);
    atoll_port_slot *s = &t->slots[slot];
    s->port = NULL;
    s->next_free = t->free_head;
    t->free_head = slot;
    pthread_mutex_unlock(&t->lock);
}

atoll_port_slot *atoll__port_table_slot(atoll_port_table *t, uint64_t id_private, uint32_t *gen)
{
    uint64_t slot1 = id_private >> 32;
    *gen = (uint32_t)id_private;
    if (slot1 == 0 || slot1 > t->size)
        return NULL;
    return &t->slots[slot1 - 1];
}
