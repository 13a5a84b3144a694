/*
 * runtime/base/port_table.h: the runtime-wide table behind send handles.
 * Internal to the library.
 *
 * A handle is (slot + 1, generation); slot 0 is never a valid handle, so a
 * zeroed handle reads as closed. Each slot has a gate opened with the
 * generation of the port it holds: a sender enters with its handle's
 * generation, so a closed or reused slot refuses it, and the owner reclaims
 * a closed port only once the gate is quiet. Allocating a slot takes a
 * mutex; entering and leaving take none.
 */
#ifndef ATOLL_RUNTIME_BASE_PORT_TABLE_H
#define ATOLL_RUNTIME_BASE_PORT_TABLE_H

#include <pthread.h>
#include <stdint.h>

#include "runtime/base/gate.h"

struct atoll_receive_port;

typedef struct atoll_port_slot {
    atoll_gate gate;
    struct atoll_receive_port *port; /* valid while the gate is open */
    uint32_t generation;             /* under the table's lock */
    uint32_t next_free;              /* free list, under the table's lock */
} atoll_port_slot;

typedef struct atoll_port_table {
    pthread_mutex_t lock; /* slot allocation only: not on the send path */
    atoll_port_slot *slots;
    uint32_t size;
    uint32_t free_head; /* UINT32_MAX: none */
} atoll_port_table;

/* Makes an empty table of `size` slots (all closed). Returns 0 or -ENOMEM.
 * Thread: any, before the table is shared. */
int atoll__port_table_init(atoll_port_table *t, uint32_t size);

/* Frees the slots. Thread: any, once nobody uses the table. */
void atoll__port_table_destroy(atoll_port_table *t);

/* Takes a free slot for `port` with a new generation (a handle to an
 * earlier port in the slot stays stale); its gate stays closed until the
 * owner opens it. Returns 0 or ATOLL_E_LIMIT (no free slot). Thread: any. */
int atoll__port_table_alloc(atoll_port_table *t, struct atoll_receive_port *port, uint32_t *slot, uint32_t *gen);

/* Returns `slot` to the free list; its gate must be closed and quiet.
 * Thread: any. */
void atoll__port_table_free(atoll_port_table *t, uint32_t slot);

/* The slot a handle's id names, or NULL when it names none (zero, out of
 * range); `gen` receives the handle's generation. Thread: any. */
atoll_port_slot *atoll__port_table_slot(atoll_port_table *t, uint64_t id_private, uint32_t *gen);

/* The handle id of (slot, generation). */
static inline uint64_t atoll__port_table_id(uint32_t slot, uint32_t gen)
{
    return ((uint64_t)(slot + 1) << 32) | gen;
}

#endif /* ATOLL_RUNTIME_BASE_PORT_TABLE_H */
