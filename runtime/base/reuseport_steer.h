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
/* Most CPU-local entries (2 instructions each) next to a full table. */
#define ATOLL_STEER_MAX_LOCAL 1000u
/* Instructions needed at most (prologue, CPU table, hash table); <= 4096. */
#define ATOLL_STEER_MAX_INSNS (32u + 2u * ATOLL_STEER_MAX_LOCAL + 2u * ATOLL_STEER_MAX_CANDIDATES)
/* What the program returns with no candidate: out of range, so the kernel
 * falls back to its own hash over the group. */
#define ATOLL_STEER_NONE 0xffffffffu

/* CPU-local steering: a SYN processed on `cpu` goes to kernel index
 * `index` (the member whose isolate is pinned to that CPU). */
typedef struct atoll_steer_local {
    uint32_t cpu;
    uint32_t index;
} atoll_steer_local;

/*
 * Writes into insns[0..cap) a program returning one of indices[0..n): first,
 * when nlocal > 0, the entry of local[0..nlocal) whose cpu is the CPU that
 * processes the SYN (SKF_AD_CPU); otherwise the client's (source address,
 * source port) hashed, modulo n, then a table of constants. n == 1: returns
 * indices[0]; n == 0: returns ATOLL_STEER_NONE (local is then ignored: a
 * local index is always one of the candidates). Returns the instruction
 * count, or -E2BIG (n > ATOLL_STEER_MAX_CANDIDATES, nlocal >
 * ATOLL_STEER_MAX_LOCAL, or cap too small).
 */
int atoll__steer_build(const uint32_t *indices, unsigned n, const atoll_steer_local *local, unsigned nlocal,
                       struct sock_filter *insns, unsigned cap);

/*
 * Builds the program for indices[0..n) and local[0..nlocal) and attaches it
 * with SO_ATTACH_REUSEPORT_CBPF through `fd`, any member of the group (the
 * program belongs to the group; it replaces the previous one atomically).
 * Returns 0, -E2BIG, -ENOMEM or the setsockopt error.
 */
int atoll__steer_attach(int fd, const uint32_t *indices, unsigned n, const atoll_steer_local *local, unsigned nlocal);

/*
 * Attaches to listening socket `fd` (SO_ATTACH_FILTER) a socket filter that
 * drops TCP SYNs without ACK and lets every other segment through: no new
 * connection starts on it (the client retransmits its SYN and, once the
 * socket is closed, is refused), while handshakes already under way
 * complete into its queue. IPv4, and IPv6 without extension headers (a SYN
 * with them passes). Returns 0 or the setsockopt error.
 */
int atoll__steer_drop_syns(int fd);

#endif /* ATOLL_RUNTIME_REUSEPORT_STEER_H */
