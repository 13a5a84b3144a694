/*
 * runtime/base/reuseport_steer.h: the classic BPF program that steers a
 * SO_REUSEPORT group's new connections to chosen kernel indices. Internal.
 *
 * Thread: any thread; no state (callers serialise per group).
 */
#ifndef ATOLL_RUNTIME_REUSEPORT_STEER_H
#define ATOLL_RUNTIME_REUSEPORT_STEER_H

#include <linux/filter.h>
#include <stdint.h>

/* Most candidates one program holds (2 instructions each, BPF_MAXINSNS). */
#define ATOLL_STEER_MAX_CANDIDATES 1024u
/* Instructions needed for ATOLL_STEER_MAX_CANDIDATES (prologue + table). */
#define ATOLL_STEER_MAX_INSNS (32u + 2u * ATOLL_STEER_MAX_CANDIDATES)
/* What the program returns with no candidate: out of range, so the kernel
 * falls back to its own hash over the group. */
#define ATOLL_STEER_NONE 0xffffffffu

/*
 * Writes into insns[0..cap) a program returning one of indices[0..n): the
 * client's (source address, source port) hashed, modulo n, then a table of
 * constants. n == 1: returns indices[0]; n == 0: returns ATOLL_STEER_NONE.
 * Returns the instruction count, or -E2BIG (n > ATOLL_STEER_MAX_CANDIDATES or
 * cap too small).
 */
int atoll__steer_build(const uint32_t *indices, unsigned n, struct sock_filter *insns, unsigned cap);

/*
 * Builds the program for indices[0..n) and attaches it with
 * SO_ATTACH_REUSEPORT_CBPF through `fd`, any member of the group (the
 * program belongs to the group; it replaces the previous one atomically).
 * Returns 0, -E2BIG, -ENOMEM or the setsockopt error.
 */
int atoll__steer_attach(int fd, const uint32_t *indices, unsigned n);

#endif /* ATOLL_RUNTIME_REUSEPORT_STEER_H */
