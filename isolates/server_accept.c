/*
 * isolates/server_accept.c: how a server takes connections: up to
 * ATOLL_SERVER_ACCEPTS single-shot accepts in flight, each into a direct
 * descriptor slot taken up front (none free: the isolate is at its
 * connection cap, and accepting waits for a slot), a per-turn budget,
 * back-off after errors, and the linger-then-drain of a retiring server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolates/net_private.h"
#include "isolates/op.h"
#include "isolates/user_data.h"

/* After a close with live siblings, accept for this long past the last
 * accepted connection: handshakes that were in SYN_RECV when steering moved
 * away complete into our queue within a round trip. */
#define ATOLL_CLOSE_LINGER_MS       100
#define ATOLL_ACCEPT_BACKOFF_MIN_MS 10
#define ATOLL_ACCEPT_BACKOFF_MAX_MS 1000

static void atoll_server_admit(struct atoll_server *s, uint32_t file, const struct sockaddr_storage *peer);

static bool atoll_server_wants_accept(const struct atoll_server *s)
{
    return s->state == ATOLL_SRV_STARTED || (s->state == ATOLL_SRV_CLOSING && !s->released);
}

void atoll__server_cancel_accept(struct atoll_server *s)
{
    s->accept_cancel_wanted = true;
    if (!s->accepts_armed || s->accept_cancel_sent)
        return;
    struct io_uring_sqe *sqe;
    if (atoll__obj_reserve(&s->obj, &sqe, 1) < 0)
        return;
    /* Every accept of the server is on its listening socket: one cancel. */
    io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
    atoll__op_start(s->iso, sqe, ATOLL_UD_CANCEL, NULL);
    s->accept_cancel_sent = true;
}

static void atoll_server_arm_accept(struct atoll_server *s)
{
    if (s->fd < 0 || s->backoff_timer || s->accept_cancel_wanted)
        return;
    uint32_t want = s->opts.accepts_per_turn < ATOLL_SERVER_ACCEPTS ? s->opts.accepts_per_turn : ATOLL_SERVER_ACCEPTS;
    atoll_fixed_files *files = &s->iso->net->files;
    for (uint32_t i = 0; i < want && s->accepts_armed < want; i++) {
        atoll_accept_slot *a = &s->acc[i];
        if (a->armed)
            continue;
        if (atoll__files_get(files, &a->file) < 0) {
            /* At the isolate's connection cap with no accept left armed:
             * the group's other members take new connections until slots
             * are back (net turn). */
            if (!s->capped && s->accepts_armed == 0) {
                s->capped = true;
                s->stats->cap_pauses++;
                (void)atoll__server_steer(s); /* on error it keeps its share, queued */
            }
            return;
        }
        struct io_uring_sqe *sqe;
        if (atoll__obj_reserve(&s->obj, &sqe, 1) < 0) {
            atoll__files_put(files, a->file);
            return;
        }
        a->addr_len = sizeof(a->addr);
        /* No SOCK_CLOEXEC: a direct descriptor has no close-on-exec (EINVAL). */
        io_uring_prep_accept_direct(sqe, s->fd, (struct sockaddr *)&a->addr, &a->addr_len, 0, a->file);
        atoll__op_start_tagged(s->iso, sqe, ATOLL_UD_ACCEPT, &s->obj, (uint8_t)i);
        a->armed = true;
        s->accepts_armed++;
    }
}

void atoll__server_rearm(struct atoll_server *s)
{
    if (s->capped && atoll__files_room(&s->iso->net->files)) {
        s->capped = false;
        (void)atoll__server_steer(s);
    }
    if (!s->accept_cancel_wanted && atoll_server_wants_accept(s))
        atoll_server_arm_accept(s);
}

/* After a deferral: whatever the server's state still wants. */
void atoll__server_issue(atoll_obj *o)
{
    struct atoll_server *s = (struct atoll_server *)o;
    if (s->accept_cancel_wanted)
        atoll__server_cancel_accept(s);
    else
        atoll__server_rearm(s);
}

static void atoll_server_backoff_fire(atoll_timer *t, void *user)
{
    struct atoll_server *s = user;
    s->backoff_timer = NULL;
    (void)t;
    if (atoll_server_wants_accept(s))
        atoll_server_arm_accept(s);
    atoll__server_maybe_finish(s);
}

/* Accepts what is left in the queue without waiting, then gives the socket
 * back to the registry. Non-blocking accept4 calls: the queue is finite. */
static void atoll_server_drain_and_release(struct atoll_server *s)
{
    atoll__server_cancel_accept(s);
    atoll_fixed_files *files = &s->iso->net->files;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(s->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        s->stats->accepted++;
        atoll_stat_add(&s->iso->stats.net_accepted, 1);
        /* At the connection cap (or when the kernel refuses the slot) this
         * one is refused, and counted. install closes fd either way. */
        uint32_t file;
        if (atoll__files_get(files, &file) < 0) {
            close(fd);
            s->stats->accept_errors++;
            continue;
        }
        if (atoll__files_install(s->iso, files, file, fd) < 0) {
            s->stats->accept_errors++;
            continue;
        }
        atoll_server_admit(s, file, &peer);
    }
    atoll__server_release_member(s);
}

static void atoll_server_linger_fire(atoll_timer *t, void *user)
{
    struct atoll_server *s = user;
    (void)t;
    s->linger_timer = NULL;
    if (s->stats->accepted != s->accepted_at_linger) {
        /* Still arriving: linger once more. */
        s->accepted_at_linger = s->stats->accepted;
        if (atoll_timer_start(s->iso, ATOLL_CLOSE_LINGER_MS, 0, atoll_server_linger_fire, s, &s->linger_timer) == 0)
            return;
    }
    atoll_server_drain_and_release(s);
    atoll__server_maybe_finish(s);
}

/* A new connection, within the turn's accept budget; beyond it the
 * connection waits for the next turn so an accept storm cannot starve the
 * loop. */
static void atoll_server_admit(struct atoll_server *s, uint32_t file, const struct sockaddr_storage *peer)
{
    uint64_t turn = atomic_load_explicit(&s->iso->stats.loop_turns.v, memory_order_relaxed);
    if (s->accept_turn != turn) {
        s->accept_turn = turn;
        s->accepted_this_turn = 0;
    }
    /* At the runtime-wide cap an accepted connection waits here, not
     * started, until a unit comes back (the isolate is woken then): as it
     * would in the kernel's queue. At most the accepts that were armed. */
    bool parked = !atoll__files_charge(&s->iso->net->files, file);
    if (parked || s->accepted_this_turn >= s->opts.accepts_per_turn) {
        if (s->npend == s->pend_cap) {
            uint32_t cap = s->pend_cap ? s->pend_cap * 2 : 64;
            atoll_pending_conn *p = realloc(s->pend, cap * sizeof(*p));
            if (!p) {
                atoll__files_remove(s->iso, &s->iso->net->files, file);
                s->stats->accept_errors++;
                return;
            }
            s->pend = p;
            s->pend_cap = cap;
        }
        s->pend[s->npend++] = (atoll_pending_conn){.file = file, .addr = *peer};
        if (!parked) /* a parked one is retried when woken (or at any turn) */
            s->iso->more_work = true;
        return;
    }
    s->accepted_this_turn++;
    struct atoll_conn *c;
    atoll__conn_new(s, (int)file, peer, &c);
}

void atoll__server_run_pending(struct atoll_server *s)
{
    uint32_t n = s->npend;
    atoll_pending_conn *p = s->pend;
    s->npend = 0;
    s->pend = NULL;
    s->pend_cap = 0;
    for (uint32_t i = 0; i < n; i++)
        atoll_server_admit(s, p[i].file, &p[i].addr);
    free(p);
    atoll__server_maybe_finish(s);
}

void atoll__server_accept_cqe(struct atoll_server *s, const struct io_uring_cqe *cqe)
{
    uint8_t i = atoll_ud_tag(io_uring_cqe_get_data64(cqe));
    atoll_accept_slot *a = &s->acc[i < ATOLL_SERVER_ACCEPTS ? i : 0];
    a->armed = false; /* single-shot; the op layer drops the op's reference */
    if (--s->accepts_armed == 0)
        s->accept_cancel_sent = false;
    if (cqe->res >= 0) {
        s->stats->accepted++;
        atoll_stat_add(&s->iso->stats.net_accepted, 1);
        s->accept_backoff_ms = 0;
        struct sockaddr_storage peer;
        memset(&peer, 0, sizeof(peer));
        memcpy(&peer, &a->addr, a->addr_len < sizeof(a->addr) ? a->addr_len : sizeof(a->addr));
        atoll_server_admit(s, a->file, &peer);
    } else {
        atoll__files_put(&s->iso->net->files, a->file); /* nothing was installed */
        if (cqe->res != -ECANCELED) {
            /* ENFILE, ENOBUFS, ENOMEM, ...: never a stream error (Dart F7);
             * counted, and accepting resumes after a growing pause instead
             * of spinning on a condition that persists. */
            s->stats->accept_errors++;
            s->accept_backoff_ms = s->accept_backoff_ms ? s->accept_backoff_ms * 2 : ATOLL_ACCEPT_BACKOFF_MIN_MS;
            if (s->accept_backoff_ms > ATOLL_ACCEPT_BACKOFF_MAX_MS)
                s->accept_backoff_ms = ATOLL_ACCEPT_BACKOFF_MAX_MS;
            if (!s->backoff_timer && !s->released)
                atoll_timer_start(s->iso, s->accept_backoff_ms, 0, atoll_server_backoff_fire, s, &s->backoff_timer);
        }
    }
    atoll__server_rearm(s);
    atoll__server_maybe_finish(s);
}

void atoll__server_retire(struct atoll_server *s)
{
    s->retired = true;
    atoll__server_rearm(s);
    s->accepted_at_linger = s->stats->accepted;
    if (atoll_timer_start(s->iso, ATOLL_CLOSE_LINGER_MS, 0, atoll_server_linger_fire, s, &s->linger_timer) < 0)
        atoll_server_drain_and_release(s);
}
