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

struct atoll_isolate;

typedef struct atoll_fixed_files {
    uint32_t *free_slots; /* stack of free slots */
    uint32_t nfree, cap;
    bool ready;
    bool starved; /* a slot was wanted while none was free */
} atoll_fixed_files;

/* Registers a sparse table of `cap` slots with the isolate's ring. Returns 0
 * or a negated errno (-ENOMEM, or the kernel's refusal). */
int atoll__files_init(struct atoll_isolate *iso, atoll_fixed_files *f, uint32_t cap);
/* Frees the slot bookkeeping (the table itself goes with the ring). */
void atoll__files_free(atoll_fixed_files *f);
/* Takes a free slot: 0, or ATOLL_E_CONN_CAP when all are in use (then
 * `starved` is set, so the caller can retry when one is returned). */
int atoll__files_get(atoll_fixed_files *f, uint32_t *slot);
/* Free slots below which a server stays steered away after reaching the
 * cap: a sixteenth of the table (1 to 32), so a server at the cap does not
 * re-steer its group at every connection that closes. */
static inline uint32_t atoll__files_resume_at(const atoll_fixed_files *f)
{
    uint32_t n = f->cap / 16;
    return n < 1 ? 1 : n > 32 ? 32 : n;
}

/* Returns a slot whose file the kernel has released (close_direct done, or
 * an accept into it that failed). */
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
