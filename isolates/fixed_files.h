/*
 * isolates/fixed_files.h: an isolate's table of direct descriptors. Internal.
 *
 * Every connection socket of an isolate lives in its ring's fixed-file
 * table, never in the process's descriptor table: ops name it by slot with
 * IOSQE_FIXED_FILE, so no descriptor number of the host process (or of
 * another isolate) can ever be hit by one of our SQEs, before or after the
 * socket closes. Slots are handed out here, in user space, so an accept can
 * be given its slot up front and the table size is the isolate's connection
 * cap: with no slot free, accepting pauses until a connection closes.
 *
 * Everything here runs on the owning isolate's thread.
 */
#ifndef ATOLL_ISOLATES_FIXED_FILES_H
#define ATOLL_ISOLATES_FIXED_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/base/conn_budget.h"

struct atoll_isolate;

typedef struct atoll_fixed_files {
    uint32_t *free_slots; /* stack of free slots */
    uint32_t nfree, cap;
    bool ready;
    bool starved; /* a slot was wanted while none was free (table or budget) */
    /* The runtime-wide cap: a slot holding a connection is charged one
     * unit (atoll__files_charge), given back with the slot, so the two
     * cannot drift apart. An armed accept's slot is not charged: units go
     * to the isolates where connections arrive, not to idle listeners. */
    atoll_conn_budget *budget;
    struct atoll_isolate *owner;
    uint8_t *charged; /* [cap] when the runtime has a cap, else NULL */
    uint32_t ncharged;
} atoll_fixed_files;

/* Registers a sparse table of `cap` slots with the isolate's ring. Returns 0
 * or a negated errno (-ENOMEM, or the kernel's refusal). */
int atoll__files_init(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t cap);
/* Frees the slot bookkeeping (the table itself goes with the ring), gives
 * back the runtime-wide budget of slots still in use and stops waiting. */
void atoll__files_free(atoll_fixed_files *f);
/* Takes a free slot: 0, or ATOLL_E_CONN_CAP when all slots are in use or
 * the runtime is at max_conns (then `starved` is set, and the isolate is
 * woken when units come back, so the caller can retry: atoll__files_room). */
int atoll__files_get(atoll_fixed_files *f, uint32_t *slot);
/* Charges `slot` one unit of the runtime-wide budget (once; a no-op without
 * a cap): true, or false at max_conns, when the isolate is registered to be
 * woken as units come back. */
bool atoll__files_charge(atoll_fixed_files *f, uint32_t slot);
/* True when the runtime-wide budget has a unit left; when not, registers
 * the isolate to be woken as units come back. */
bool atoll__files_budget_left(atoll_fixed_files *f);
/* Free slots below which a server stays steered away after reaching the
 * cap: a sixteenth of the table (1 to 32), so a server at the cap does not
 * re-steer its group at every connection that closes. */
static inline uint32_t atoll__files_resume_at(const atoll_fixed_files *f)
{
    uint32_t n = f->cap / 16;
    return n < 1 ? 1 : n > 32 ? 32 : n;
}

/* True when a server that stopped at a cap may accept again: enough free
 * slots in the table and the runtime-wide budget back below its mark. */
static inline bool atoll__files_room(const atoll_fixed_files *f)
{
    return f->nfree >= atoll__files_resume_at(f) && atoll__budget_room(f->budget);
}

/* Returns a slot whose file the kernel has released (close_direct done, or
 * an accept into it that failed), and its budget unit if charged; wakes the
 * isolates waiting for the runtime-wide budget when this brings it back. */
void atoll__files_put(atoll_fixed_files *f, uint32_t slot);
/* Moves the process descriptor `fd` into `slot` and closes `fd` (always,
 * also on error). Used where a socket is born outside the ring (connect,
 * draining a retired listener). Returns 0 or a negated errno (the slot is
 * then returned). One io_uring_register call and one close(). */
int atoll__files_install(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t slot, int fd);
/* Empties a slot now (io_uring_register update with -1) and returns it. For
 * teardown and never-started connections only: no op may be live on it. */
void atoll__files_remove(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t slot);

#endif /* ATOLL_ISOLATES_FIXED_FILES_H */
