/*
 * runtime/base/listen.h: the process-wide listener registry, listening sockets
 * and the runtime-owned steering of SO_REUSEPORT groups. Internal.
 *
 * Thread: every function may be called from any thread (isolates bind and
 * close their own members); the registry is one mutex-protected table
 * (bind/close are not on any data path).
 *
 * Model (docs/dart-mapping.md):
 * - A *group* is one registry entry keyed by (family, address bytes, port):
 *   flags {shared, v6_only}, and its *members* in kernel join order. With
 *   shared = true every member is its own socket with SO_REUSEPORT in the
 *   same kernel reuseport group; shared = false never sets SO_REUSEPORT and
 *   allows one member.
 * - Dart's checks, in Dart's order, only when port > 0: an existing entry
 *   with shared false on either side -> ATOLL_E_SHARED_MISMATCH; v6_only
 *   differs (also for IPv4) -> ATOLL_E_V6ONLY_MISMATCH. Port 0 always makes
 *   a new socket on a new ephemeral port (and a new group).
 * - Steering: a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) attached to
 *   the group returns the kernel index of one of the group's ACTIVE
 *   members (hash of the client's source port modulo their count, then a
 *   table of indices); with no ACTIVE member, of a BOUND or PAUSED one (the
 *   connection waits in its queue, as in Dart when every server is paused);
 *   never of a RETIRED member or of a socket that is not ours (a foreign
 *   process joining the group gets nothing). The program is rebuilt and
 *   re-attached on every state change.
 * - The kernel moves the group's last socket into a closed member's index:
 *   a released member's socket is closed while the group lives on by
 *   moving the tail member into its index (steered nothing meanwhile), or
 *   stays (steered away) when that cannot be done safely (listen.c,
 *   reclaim); when every member is released all the sockets
 *   are closed and the entry removed, synchronously.
 */
#ifndef ATOLL_RUNTIME_LISTEN_H
#define ATOLL_RUNTIME_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "atoll/net.h"

typedef struct atoll_listen_member atoll_listen_member;

typedef enum atoll_member_state {
    ATOLL_MEMBER_BOUND = 0, /* listen()ing, not yet accepting (Dart F1) */
    ATOLL_MEMBER_ACTIVE,    /* accepting: gets its share */
    ATOLL_MEMBER_PAUSED,    /* gets nothing while another member is active */
    ATOLL_MEMBER_RETIRED,   /* closed by its owner: never gets anything */
} atoll_member_state;

typedef struct atoll_listen_request {
    atoll_address address; /* numeric, already looked up */
    int port;              /* 0..65535 (validated by the caller) */
    int backlog;           /* 0 = SOMAXCONN (validated: 0..65535) */
    bool v6_only;
    bool shared;
    /* CPU-local steering (atoll_runtime_options.steering): the member's
     * isolate is pinned to `cpu`, and SYNs processed there go to it. */
    bool cpu_local;
    uint32_t cpu;
} atoll_listen_request;

/*
 * Creates a listening socket for `req` (non-blocking, close-on-exec,
 * SO_REUSEADDR; SO_REUSEPORT only when shared; IPV6_V6ONLY = v6_only for
 * AF_INET6; bind; listen) and joins it to its group as a BOUND member.
 * Returns 0 and fills *out, *fd (owned by the member: never close it; read
 * it to accept) and *port (the real port); or ATOLL_E_SHARED_MISMATCH,
 * ATOLL_E_V6ONLY_MISMATCH, a negated errno from the kernel (-EADDRINUSE,
 * -EADDRNOTAVAIL, ...), -ENOMEM.
 */
int atoll__listen_bind(const atoll_listen_request *req, atoll_listen_member **out, int *fd, uint16_t *port);

/*
 * Changes a member's state and re-steers its group. RETIRED is final:
 * connections already queued on the member stay there for the owner to
 * accept (until accept returns EAGAIN) before it calls release.
 * Returns 0, ATOLL_E_STATE (member already retired), or the setsockopt
 * error of attaching the program (then steering is left as it was).
 */
int atoll__listen_set_state(atoll_listen_member *m, atoll_member_state state);

/*
 * The owner is done with the member (retired and drained): the registry
 * takes its socket. The entry for (address, port) is removed and all its
 * sockets closed once every member is released, synchronously, so a
 * re-bind right after succeeds. `m` is invalid afterwards.
 */
void atoll__listen_release(atoll_listen_member *m);

/* What a look at the kernel's listeners found in a member's group. */
typedef struct atoll_listen_audit {
    unsigned present;   /* sockets in the group that are not ours */
    unsigned newly;     /* of those, never seen by an earlier look: report them */
    uint64_t first_new; /* the inode of the first new one */
    bool looked;        /* false: the last look's figures (too soon, or not shared) */
} atoll_listen_audit;

/*
 * Looks for sockets in m's SO_REUSEPORT group that the runtime did not
 * open (another process of the same user may join the group; steering
 * gives it nothing, docs/listening.md). At most one look per group per
 * `min_interval_ns` (of the monotonic `now_ns`; 0: always), whichever
 * member asks, so each foreign socket is `newly` found once per group.
 * Returns 0 and fills *out, or a negated errno of the kernel's inet_diag
 * (then *out gives the last look's count).
 */
int atoll__listen_audit(atoll_listen_member *m, uint64_t now_ns, uint64_t min_interval_ns, atoll_listen_audit *out);

/* Members of m's group other than m that are not RETIRED: a closing server
 * with live siblings drains its queue (they take new connections); the last
 * one releases at once (Dart: the last close closes the socket). */
unsigned atoll__listen_live_siblings(const atoll_listen_member *m);

/* Number of registry entries (tests). */
unsigned atoll__listen_registry_size(void);

#endif /* ATOLL_RUNTIME_LISTEN_H */
