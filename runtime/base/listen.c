/*
 * runtime/base/listen.c: the process-wide listener registry (Dart's
 * ListeningSocketRegistry, keyed by (family, address bytes, port)), the
 * listening sockets, and the steering of each SO_REUSEPORT group
 * (runtime/reuseport_steer.c). Rules and residual windows: docs/listening.md.
 *
 * Process-wide state: `registry` below, guarded by `registry_mu`. Every
 * entry point takes the mutex for its whole duration, including the
 * setsockopt that re-attaches a group's program, so concurrent state
 * changes of one group attach in the order they were decided.
 */
#include "runtime/base/listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atoll/error.h"
#include "runtime/base/reuseport_steer.h"
#include "runtime/base/sock_diag.h"

typedef struct listen_group listen_group;

struct atoll_listen_member {
    listen_group *group;
    int fd;
    uint64_t inode; /* of its socket: how a look at the kernel's listeners tells ours */
    atoll_member_state state;
    bool released;
    bool moving;    /* reclaim(): about to move into a closed member's index, steered nothing */
    bool cpu_local; /* the request's: pinned to `cpu`, wants its SYNs */
    uint32_t cpu;
    bool drops_syns; /* its socket filter drops new SYNs (no live member was left) */
};

struct listen_group {
    listen_group *next;
    int family;
    uint8_t addr[16];
    uint16_t port;
    bool shared;
    bool v6_only;
    /* Join order == kernel index: our sockets never close before teardown,
     * so the kernel never moves one of them into another index. */
    atoll_listen_member **members;
    unsigned n;
    unsigned cap;
    unsigned released;
    /* Sockets in the kernel's group that are not ours (another process of
     * the same user joined): those seen at the last look, each reported
     * once, and when that look was. */
    uint64_t *foreign;
    unsigned nforeign;
    uint64_t audit_ns;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static listen_group *registry;
static unsigned registry_count;

/* ---- addresses ---------------------------------------------------------- */

static size_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static bool is_v4_mapped(const uint8_t *b)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(b, prefix, sizeof(prefix)) == 0;
}

/* The addresses one listener receives on, the way the kernel's bind
 * conflict check sees them (inet_rcv_saddr_equal): an IPv4 part and an IPv6
 * part, each empty, one address, or everything. */
typedef struct cover {
    bool has_v4, all_v4, has_v6, all_v6;
    uint8_t v4[4];
    uint8_t v6[16];
} cover;

static cover cover_of(int family, const uint8_t *addr, bool v6_only)
{
    cover c;
    memset(&c, 0, sizeof(c));
    if (family == AF_INET) {
        c.has_v4 = true;
        c.all_v4 = all_zero(addr, 4);
        memcpy(c.v4, addr, 4);
    } else if (is_v4_mapped(addr)) {
        /* ::ffff:a.b.c.d is IPv4 a.b.c.d (the kernel refuses it with
         * IPV6_V6ONLY); ::ffff:0.0.0.0 is the IPv4 wildcard. */
        c.has_v4 = true;
        c.all_v4 = all_zero(addr + 12, 4);
        memcpy(c.v4, addr + 12, 4);
    } else if (all_zero(addr, 16)) {
        c.has_v6 = c.all_v6 = true;
        c.has_v4 = c.all_v4 = !v6_only; /* dual stack */
    } else {
        c.has_v6 = true;
        memcpy(c.v6, addr, 16);
    }
    return c;
}

static bool covers_overlap(const cover *a, const cover *b)
{
    if (a->has_v4 && b->has_v4 && (a->all_v4 || b->all_v4 || memcmp(a->v4, b->v4, 4) == 0))
        return true;
    return a->has_v6 && b->has_v6 && (a->all_v6 || b->all_v6 || memcmp(a->v6, b->v6, 16) == 0);
}

/* ---- registry (registry_mu held) ------------------------------------------ */

static listen_group *find_group(int family, const uint8_t *addr, uint16_t port)
{
    for (listen_group *g = registry; g; g = g->next)
        if (g->port == port && g->family == family && memcmp(g->addr, addr, addr_len(family)) == 0)
            return g;
    return NULL;
}

/* SO_REUSEPORT lets the kernel accept overlapping listeners of one uid
 * (0.0.0.0:P beside 127.0.0.1:P, dual-stack [::]:P beside 0.0.0.0:P) where
 * Dart, which never sets it, gets EADDRINUSE: refuse them here. */
static bool overlaps_other_group(int family, const uint8_t *addr, bool v6_only, uint16_t port)
{
    cover c = cover_of(family, addr, v6_only);
    for (listen_group *g = registry; g; g = g->next) {
        if (g->port != port)
            continue;
        if (g->family == family && memcmp(g->addr, addr, addr_len(family)) == 0)
            continue; /* the same entry: Dart's checks decide */
        cover o = cover_of(g->family, g->addr, g->v6_only);
        if (covers_overlap(&c, &o))
            return true;
    }
    return false;
}

static void unlink_group(listen_group *g)
{
    for (listen_group **pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            registry_count--;
            return;
        }
    }
}

/* ---- sockets ------------------------------------------------------------ */

static socklen_t make_sockaddr(int family, const uint8_t *addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        memcpy(&a->sin_addr, addr, 4);
        return sizeof(*a);
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    memcpy(&a->sin6_addr, addr, 16);
    return sizeof(*a);
}

/* socket + options + bind (+ listen when backlog >= 0). Returns the fd or
 * -errno, with nothing left open. */
static int open_socket(const atoll_listen_request *req, bool reuseport, int backlog)
{
    int family = req->address.family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    int v6only = req->v6_only ? 1 : 0;
    struct sockaddr_storage ss;
    socklen_t sl = make_sockaddr(family, req->address.bytes, (uint16_t)req->port, &ss);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || (backlog >= 0 && listen(fd, backlog) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* A new group on port P must not join a reuseport group someone else
 * already holds (Dart C9: `shared` never lets us share with another
 * process, and our join-order indices assume we are first). A probe bound
 * the same way minus SO_REUSEPORT fails with EADDRINUSE exactly when
 * another listener (or bound socket) covers the address. */
static int probe_port_free(const atoll_listen_request *req)
{
    int fd = open_socket(req, false, -1);
    if (fd < 0)
        return fd;
    close(fd); /* never listened: leaves nothing behind */
    return 0;
}

static int bound_port(int fd, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* ---- steering (registry_mu held) ----------------------------------------- */

/* The one ACTIVE CPU-local member pinned to `cpu`, or -1 (none, or
 * several: those share the CPU's connections by the hash). */
static int sole_local_member(const listen_group *g, uint32_t cpu)
{
    int found = -1;
    for (unsigned i = 0; i < g->n; i++) {
        const atoll_listen_member *m = g->members[i];
        if (m->state == ATOLL_MEMBER_ACTIVE && m->cpu_local && m->cpu == cpu) {
            if (found >= 0)
                return -1;
            found = (int)i;
        }
    }
    return found;
}

/* No live member left: whatever the kernel picks would reset the client
 * when the group's sockets close. New SYNs are dropped instead, so clients
 * retransmit and then meet a closed port (refused); handshakes already
 * under way still complete into a queue its owner reads (the linger). */
static int drop_syns_if_none_live(listen_group *g)
{
    for (unsigned i = 0; i < g->n; i++)
        if (g->members[i]->state != ATOLL_MEMBER_RETIRED)
            return 0;
    for (unsigned i = 0; i < g->n; i++) {
        atoll_listen_member *m = g->members[i];
        if (m->drops_syns)
            continue;
        int rc = atoll__steer_drop_syns(m->fd);
        if (rc != 0)
            return rc;
        m->drops_syns = true;
    }
    return 0;
}

/* Candidates: the ACTIVE members, else the BOUND and PAUSED ones, never a
 * RETIRED one; attached through any open member of the group. An ACTIVE
 * CPU-local member alone on its CPU also gets that CPU's SYNs first. */
static int steer(listen_group *g)
{
    if (g->n == 0)
        return 0;
    if (!g->shared)
        return drop_syns_if_none_live(g); /* no SO_REUSEPORT: one member, nothing to steer */
    uint32_t *idx = malloc(g->n * sizeof(*idx));
    atoll_steer_local *local = malloc(g->n * sizeof(*local));
    if (!idx || !local) {
        free(idx);
        free(local);
        return -ENOMEM;
    }
    unsigned n = 0, nlocal = 0;
    for (unsigned i = 0; i < g->n; i++) {
        const atoll_listen_member *m = g->members[i];
        if (m->state != ATOLL_MEMBER_ACTIVE || m->moving)
            continue;
        idx[n++] = i;
        if (m->cpu_local && sole_local_member(g, m->cpu) == (int)i)
            local[nlocal++] = (atoll_steer_local){.cpu = m->cpu, .index = i};
    }
    if (n == 0)
        for (unsigned i = 0; i < g->n; i++)
            if ((g->members[i]->state == ATOLL_MEMBER_BOUND || g->members[i]->state == ATOLL_MEMBER_PAUSED) &&
                !g->members[i]->moving)
                idx[n++] = i;
    int rc = atoll__steer_attach(g->members[0]->fd, idx, n, local, nlocal);
    free(idx);
    free(local);
    return rc == 0 ? drop_syns_if_none_live(g) : rc;
}

/* ---- API ---------------------------------------------------------------- */

static bool request_valid(const atoll_listen_request *req)
{
    return req && (req->address.family == AF_INET || req->address.family == AF_INET6) && req->port >= 0 &&
           req->port <= 65535 && req->backlog >= 0 && req->backlog <= 65535;
}

int atoll__listen_bind(const atoll_listen_request *req, atoll_listen_member **out, int *fd, uint16_t *port)
{
    if (!request_valid(req) || !out || !fd || !port)
        return -EINVAL;
    int family = req->address.family;
    const uint8_t *addr = req->address.bytes;
    int rc = 0;
    int sfd = -1;
    listen_group *g = NULL;
    bool new_group = false;
    atoll_listen_member *m = NULL;

    pthread_mutex_lock(&registry_mu);
    if (req->port > 0) {
        g = find_group(family, addr, (uint16_t)req->port);
        if (g) {
            /* Dart's order: shared first, then v6Only (IPv4 included). */
            if (!g->shared || !req->shared) {
                rc = ATOLL_E_SHARED_MISMATCH;
                goto out;
            }
            if (g->v6_only != req->v6_only) {
                rc = ATOLL_E_V6ONLY_MISMATCH;
                goto out;
            }
            if (g->n >= ATOLL_STEER_MAX_CANDIDATES) {
                rc = ATOLL_E_LIMIT;
                goto out;
            }
        } else {
            if (overlaps_other_group(family, addr, req->v6_only, (uint16_t)req->port)) {
                rc = -EADDRINUSE;
                goto out;
            }
            if (req->shared && (rc = probe_port_free(req)) != 0)
                goto out;
        }
    }

    sfd = open_socket(req, req->shared, req->backlog > 0 ? req->backlog : SOMAXCONN);
    if (sfd < 0) {
        rc = sfd;
        sfd = -1;
        goto out;
    }
    uint16_t real_port = (uint16_t)req->port;
    if (req->port == 0) {
        if ((rc = bound_port(sfd, &real_port)) != 0)
            goto out;
        /* The kernel's autobind never shares a port with an existing
         * listener, so this cannot match; refuse rather than alias. */
        if (find_group(family, addr, real_port) || overlaps_other_group(family, addr, req->v6_only, real_port)) {
            rc = -EADDRINUSE;
            goto out;
        }
    }

    if (!g) {
        g = calloc(1, sizeof(*g));
        if (!g) {
            rc = -ENOMEM;
            goto out;
        }
        new_group = true;
        g->family = family;
        memcpy(g->addr, addr, addr_len(family));
        g->port = real_port;
        g->shared = req->shared;
        g->v6_only = req->v6_only;
    }
    if (g->n == g->cap) {
        unsigned cap = g->cap ? g->cap * 2 : 4;
        atoll_listen_member **mm = realloc(g->members, cap * sizeof(*mm));
        if (!mm) {
            rc = -ENOMEM;
            goto out;
        }
        g->members = mm;
        g->cap = cap;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = -ENOMEM;
        goto out;
    }
    m->group = g;
    m->fd = sfd;
    struct stat st;
    m->inode = fstat(sfd, &st) == 0 ? (uint64_t)st.st_ino : 0;
    m->state = ATOLL_MEMBER_BOUND;
    m->cpu_local = req->cpu_local;
    m->cpu = req->cpu;
    g->members[g->n++] = m;
    /* listen() joined the socket at the group's last kernel index; until
     * this attach the previous program still steers among the others. */
    if ((rc = steer(g)) != 0) {
        g->n--;
        free(m);
        m = NULL;
        goto out;
    }
    if (new_group) {
        g->next = registry;
        registry = g;
        registry_count++;
    }
    *out = m;
    *fd = sfd;
    *port = real_port;
    sfd = -1;

out:
    if (rc != 0 && new_group && g) {
        free(g->members);
        free(g);
    }
    /* Closing our newest socket (the group's last index) moves nobody. */
    if (sfd >= 0)
        close(sfd);
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

int atoll__listen_set_state(atoll_listen_member *m, atoll_member_state state)
{
    if (!m || (int)state < ATOLL_MEMBER_BOUND || state > ATOLL_MEMBER_RETIRED)
        return -EINVAL;
    pthread_mutex_lock(&registry_mu);
    int rc = 0;
    atoll_member_state old = m->state;
    if (old == ATOLL_MEMBER_RETIRED) {
        rc = ATOLL_E_STATE;
    } else if (old != state) {
        m->state = state;
        if ((rc = steer(m->group)) != 0)
            m->state = old; /* the kernel kept the previous program */
    }
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

static void close_member(listen_group *g, unsigned i)
{
    /* shutdown() takes a listener out of its group at once, even while an
     * accept op of the ring still holds a reference to the file (its
     * cancel may not have completed yet); close() alone would leave it at
     * index i until that reference goes, and steering would count wrong. */
    shutdown(g->members[i]->fd, SHUT_RDWR);
    close(g->members[i]->fd);
    free(g->members[i]);
    g->released--;
}

/* Closes the sockets of released members while their group lives on, so a
 * host that retires and adds isolates for days does not keep one listening
 * socket per retired member. Closing kernel index i moves the group's last
 * socket into i: a released member at the tail just goes; one elsewhere
 * goes once the tail member, steered nothing for the moment, can take its
 * index (steer, close, re-steer with the tail at i). Skipped while the tail
 * is the only ACTIVE member (its share could not go elsewhere meanwhile) or
 * while a foreign socket is in the group (its indices are not ours to
 * know); a later release tries again. Under registry_mu. */
static void reclaim(listen_group *g)
{
    for (;;) {
        while (g->n > 1 && g->members[g->n - 1]->released)
            close_member(g, --g->n);
        unsigned i = 0;
        while (i + 1 < g->n && !g->members[i]->released)
            i++;
        if (i + 1 >= g->n || g->nforeign)
            return;
        atoll_listen_member *tail = g->members[g->n - 1];
        unsigned others = 0;
        for (unsigned k = 0; k + 1 < g->n; k++)
            others += g->members[k]->state == ATOLL_MEMBER_ACTIVE;
        if (!others)
            return;
        tail->moving = true;
        if (steer(g) != 0) {
            tail->moving = false;
            return; /* the previous program stays: nothing moved */
        }
        close_member(g, i);
        g->members[i] = tail;
        g->n--;
        tail->moving = false;
        /* On failure the tail stays steered nothing until the group's next
         * change re-steers (the others take its share meanwhile). */
        (void)steer(g);
    }
}

void atoll__listen_release(atoll_listen_member *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&registry_mu);
    listen_group *g = m->group;
    if (m->released) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    m->released = true;
    if (++g->released < g->n) {
        if (m->state != ATOLL_MEMBER_RETIRED) {
            /* Released without retiring first: steer away now (best effort:
             * release cannot fail; on error the old program stays). */
            m->state = ATOLL_MEMBER_RETIRED;
            (void)steer(g);
        }
        reclaim(g);
    } else {
        unlink_group(g);
        /* Reverse join order: each close removes the group's last index,
         * so no remaining socket (ours or foreign) moves while we close. */
        for (unsigned i = g->n; i-- > 0;) {
            close(g->members[i]->fd);
            free(g->members[i]);
        }
        free(g->members);
        free(g->foreign);
        free(g);
    }
    pthread_mutex_unlock(&registry_mu);
}

static bool has_inode(const uint64_t *v, unsigned n, uint64_t ino)
{
    for (unsigned i = 0; i < n; i++)
        if (v[i] == ino)
            return true;
    return false;
}

static bool is_ours(const listen_group *g, uint64_t ino)
{
    for (unsigned i = 0; i < g->n; i++)
        if (g->members[i]->inode == ino)
            return true;
    return false;
}

int atoll__listen_audit(atoll_listen_member *m, uint64_t now_ns, uint64_t min_interval_ns, atoll_listen_audit *out)
{
    *out = (atoll_listen_audit){0};
    if (!m)
        return -EINVAL;
    pthread_mutex_lock(&registry_mu);
    listen_group *g = m->group;
    int rc = 0;
    if (!g->shared || (g->audit_ns && now_ns - g->audit_ns < min_interval_ns)) {
        out->present = g->nforeign; /* the last look's: nobody can join without SO_REUSEPORT */
        goto done;
    }
    g->audit_ns = now_ns;
    /* Room for ours and a few dozen others; a crowd beyond that is still
     * counted (the return value), only its inodes are not all kept. */
    uint32_t cap = g->n + 64;
    uint64_t *seen = malloc(cap * sizeof(*seen));
    uint64_t *foreign = malloc(cap * sizeof(*foreign));
    if (!seen || !foreign) {
        free(seen);
        free(foreign);
        rc = -ENOMEM;
        goto done;
    }
    int total = atoll__sock_diag_listeners(g->family, g->addr, g->port, seen, cap);
    if (total < 0) {
        free(seen);
        free(foreign);
        rc = total;
        goto done;
    }
    unsigned nf = 0, stored = (unsigned)total < cap ? (unsigned)total : cap;
    for (unsigned i = 0; i < stored; i++) {
        if (is_ours(g, seen[i]))
            continue;
        if (!has_inode(g->foreign, g->nforeign, seen[i])) {
            if (!out->newly++)
                out->first_new = seen[i];
        }
        foreign[nf++] = seen[i];
    }
    free(g->foreign);
    g->foreign = foreign;
    g->nforeign = nf;
    out->present = nf + ((unsigned)total - stored);
    out->looked = true;
    free(seen);
done:
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

unsigned atoll__listen_live_siblings(const atoll_listen_member *m)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&registry_mu);
    const listen_group *g = m->group;
    unsigned live = 0;
    for (unsigned i = 0; i < g->n; i++)
        if (g->members[i] != m && g->members[i]->state != ATOLL_MEMBER_RETIRED)
            live++;
    pthread_mutex_unlock(&registry_mu);
    return live;
}

unsigned atoll__listen_registry_size(void)
{
    pthread_mutex_lock(&registry_mu);
    unsigned n = registry_count;
    pthread_mutex_unlock(&registry_mu);
    return n;
}
