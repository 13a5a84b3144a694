/*
 * runtime/port_send.c: sending on a send handle (any thread).
 *
 * The handle names a slot of the runtime's port table
 * (runtime/base/port_table.h); inside the slot's gate the port cannot be
 * reclaimed, so its queue and isolate stay valid for the push and wakeup.
 */
#include <errno.h>

#include "isolates/isolate_private.h"
#include "runtime/runtime_private.h"

int atoll_port_send(atoll_runtime *rt, atoll_send_port to, const atoll_message *msg)
{
    if (!rt || !msg)
        return -EINVAL;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return ATOLL_E_STOPPED;
    uint32_t gen;
    atoll_port_slot *s = atoll__port_table_slot(&rt->ports, to.id_private, &gen);
    if (!s || !atoll_gate_enter(&s->gate, gen))
        return ATOLL_E_PORT_CLOSED;
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
