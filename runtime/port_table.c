/*
 * runtime/port_table.c: the runtime-wide table behind send handles, and the
 * send path itself (any thread).
 *
 * A handle is (slot + 1, generation); slot 0 is never a valid handle, so a
 * zeroed handle reads as closed. Sending enters the slot's gate with the
 * handle's generation: a closed or reused slot refuses it, and the owner
 * reclaims a closed port only once no sender is inside. Allocating a slot
 * takes a mutex; sending takes none.
 */
#include <errno.h>

#include "isolates/isolate_private.h"

int atoll__port_slot_alloc(atoll_runtime *rt, struct atoll_receive_port *port, uint32_t *slot, uint32_t *gen)
{
    pthread_mutex_lock(&rt->ports_lock);
    uint32_t i = rt->ports_free;
    if (i == UINT32_MAX) {
        pthread_mutex_unlock(&rt->ports_lock);
        return ATOLL_E_LIMIT;
    }
    atoll_port_slot *s = &rt->ports[i];
    rt->ports_free = s->next_free;
    s->generation++; /* a handle to an earlier port in this slot stays stale */
    s->port = port;
    *slot = i;
    *gen = s->generation;
    pthread_mutex_unlock(&rt->ports_lock);
    return 0;
}

void atoll__port_slot_free(atoll_runtime *rt, uint32_t slot)
{
    pthread_mutex_lock(&rt->ports_lock);
    atoll_port_slot *s = &rt->ports[slot];
    s->port = NULL;
    s->next_free = rt->ports_free;
    rt->ports_free = slot;
    pthread_mutex_unlock(&rt->ports_lock);
}

/* receive_port.c exposes these two through its private struct layout. */

int atoll_port_send(atoll_runtime *rt, atoll_send_port to, const atoll_message *msg)
{
    if (!rt || !msg)
        return -EINVAL;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return ATOLL_E_STOPPED;
    uint64_t slot1 = to.id_private >> 32;
    uint32_t gen = (uint32_t)to.id_private;
    if (slot1 == 0 || slot1 > rt->opts.max_ports)
        return ATOLL_E_PORT_CLOSED;
    atoll_port_slot *s = &rt->ports[slot1 - 1];
    if (!atoll_gate_enter(&s->gate, gen))
        return ATOLL_E_PORT_CLOSED;
    /* Inside the gate the port cannot be reclaimed. */
    struct atoll_receive_port *port = s->port;
    int ret = 0;
    if (atoll_mq_push(atoll__port_queue(port), msg))
        atoll__wake(atoll__port_isolate(port));
    else
        ret = ATOLL_E_PORT_FULL;
    atoll_gate_leave(&s->gate);
    if (ret == ATOLL_E_PORT_FULL)
        atoll__flush_wakeups();
    return ret;
}
