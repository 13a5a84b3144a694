/*
 * isolates/receive_port.c: the receiving side of ports, on the owning
 * isolate: open, deliver in order with a per-turn budget, close and release
 * what was never read.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "isolates/isolate_private.h"

/* Most messages one port delivers per turn, so a flooded port cannot starve
 * the ring, the timers or the other ports. */
#define ATOLL_PORT_TURN_BUDGET 1024u

struct atoll_receive_port {
    struct atoll_isolate *iso;
    uint32_t slot, generation;
    uint32_t index; /* in iso->ports */
    bool closed;
    atoll_port_fn fn;
    void *user;
    atoll_message_queue queue;
    struct atoll_receive_port *next_closing;
};

int atoll_port_open(atoll_isolate *iso, const atoll_port_options *opts, atoll_port_fn fn, void *user,
                    atoll_receive_port **out)
{
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (!fn || !out)
        return -EINVAL;
    if (iso->exiting)
        return ATOLL_E_STOPPED;
    uint32_t cap = opts && opts->capacity ? opts->capacity : iso->opts->port_capacity;
    if (cap > (1u << 30))
        return -EINVAL;
    if (iso->nports == iso->ports_cap) {
        uint32_t ncap = iso->ports_cap ? iso->ports_cap * 2 : 8;
        struct atoll_receive_port **p = realloc(iso->ports, ncap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        iso->ports = p;
        iso->ports_cap = ncap;
    }
    struct atoll_receive_port *port = calloc(1, sizeof(*port));
    if (!port)
        return -ENOMEM;
    int ret = atoll_mq_init(&port->queue, cap);
    if (ret == 0)
        ret = atoll__port_table_alloc(iso->port_table, port, &port->slot, &port->generation);
    if (ret < 0) {
        atoll_mq_destroy(&port->queue);
        free(port);
        return ret;
    }
    port->iso = iso;
    port->fn = fn;
    port->user = user;
    port->index = iso->nports;
    iso->ports[iso->nports++] = port;
    iso->refs++;
    atoll_gate_open(&iso->port_table->slots[port->slot].gate, port->generation);
    *out = port;
    return 0;
}

atoll_send_port atoll_port_send_handle(const atoll_receive_port *port)
{
    atoll_send_port h = {0};
    if (port)
        h.id_private = atoll__port_table_id(port->slot, port->generation);
    return h;
}

int atoll_port_close(atoll_receive_port *port)
{
    if (!port)
        return -EINVAL;
    struct atoll_isolate *iso = port->iso;
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (port->closed)
        return 0;
    port->closed = true;
    atoll_gate_close(&iso->port_table->slots[port->slot].gate, port->generation);
    /* Swap-remove from the open list. */
    struct atoll_receive_port *last = iso->ports[--iso->nports];
    iso->ports[port->index] = last;
    last->index = port->index;
    iso->refs--;
    /* Reclaimed at the end of the turn, never under a running callback. */
    port->next_closing = iso->closing;
    iso->closing = port;
    return 0;
}

static void atoll_port_release_all(struct atoll_isolate *iso, struct atoll_receive_port *port)
{
    atoll_message m;
    uint64_t n = 0;
    while (atoll_mq_pop(&port->queue, &m)) {
        if (m.release)
            m.release(m.data, m.size);
        n++;
    }
    atoll_stat_add(&iso->stats.messages_dropped, n);
}

bool atoll__ports_reclaim(struct atoll_isolate *iso)
{
    struct atoll_receive_port **pp = &iso->closing;
    while (*pp) {
        struct atoll_receive_port *port = *pp;
        if (!atoll_gate_quiet(&iso->port_table->slots[port->slot].gate)) {
            pp = &port->next_closing; /* a sender is mid-send: next turn */
            continue;
        }
        *pp = port->next_closing;
        atoll_port_release_all(iso, port);
        atoll__port_table_free(iso->port_table, port->slot);
        atoll_mq_destroy(&port->queue);
        free(port);
    }
    return iso->closing == NULL;
}

void atoll__ports_deliver(struct atoll_isolate *iso)
{
    /* Index loop: callbacks may open or close ports, which reorders the
     * list; a port moved behind `i` waits for the next turn (more_work). */
    for (uint32_t i = 0; i < iso->nports && !iso->exiting; i++) {
        struct atoll_receive_port *port = iso->ports[i];
        uint32_t budget = ATOLL_PORT_TURN_BUDGET;
        atoll_message m;
        uint64_t n = 0;
        while (!port->closed && !iso->exiting && atoll_mq_pop(&port->queue, &m)) {
            n++;
            port->fn(port, &m, port->user);
            if (--budget == 0) {
                iso->more_work = true;
                break;
            }
        }
        atoll_stat_add(&iso->stats.messages_delivered, n);
        if (i < iso->nports && iso->ports[i] != port)
            iso->more_work = true;
    }
    if (iso->more_work)
        atomic_store(&iso->wake_pending, 1); /* deliver the rest next turn */
}

void atoll__ports_teardown(struct atoll_isolate *iso)
{
    while (iso->nports)
        atoll_port_close(iso->ports[iso->nports - 1]);
    /* Senders hold a gate only for an enqueue and a wakeup: wait them out. */
    while (!atoll__ports_reclaim(iso))
        sched_yield();
    free(iso->ports);
    iso->ports = NULL;
    iso->ports_cap = 0;
}

atoll_message_queue *atoll__port_queue(struct atoll_receive_port *port)
{
    return &port->queue;
}

struct atoll_isolate *atoll__port_isolate(struct atoll_receive_port *port)
{
    return port->iso;
}
