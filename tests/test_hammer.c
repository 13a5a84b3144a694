/*
 * test_hammer: a randomized hammer over the public API (issue 7), after
 * uSockets' hammer_test.
 *
 * Isolates 0 and 1 each run a TLS server and a plain server; isolates 2
 * and 3 keep a population of client connections (atoll_connect, TLS and
 * plain, to a random server). Every callback, server and client side (and
 * a periodic timer on every isolate, which also wakes connections left
 * paused or with read events off), calls a random operation from a table:
 * close, shutdown send / receive, a write of a random length up to 256 KiB
 * (short writes accepted), a read of a random size, pause / resume, read /
 * write events on or off, set_nodelay, and now and then a server close
 * followed by a new bind. For a bounded time, then the runtime is stopped
 * with everything in flight, joined and destroyed.
 *
 * Checked: canaries in every connection's and server's user data (checked
 * in every callback, poisoned in on_closed: a callback after on_closed or a
 * second on_closed fails), connections delivered == on_closed, servers
 * bound == server on_closed, stop / join / destroy return 0, the process's
 * descriptor count back to its baseline, and the process's live heap blocks
 * back to theirs: without sanitizers tests/alloc_count.c counts every
 * malloc and free in the process (a first runtime is started and destroyed
 * before the baseline, so one-time allocations of libc and wolfSSL and
 * cached thread stacks are made by then); under ASan LeakSanitizer checks
 * instead (__lsan_do_recoverable_leak_check() must return 0), with every
 * test-owned block freed first.
 *
 * Seed: ATOLL_HAMMER_SEED (decimal) or the clock; printed (cr_log_info and
 * stderr) so a failure can be replayed. Duration: ATOLL_HAMMER_MS (default
 * 5000). ATOLL_HAMMER_TLS=0 makes the clients use plain TCP only (to look
 * past a TLS defect). Thread scheduling still varies between runs; the seed fixes the
 * choices each isolate makes.
 */
#include "alloc_count.h"
#include "net_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAMMER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HAMMER_ASAN)
#include <sanitizer/lsan_interface.h>
#define ASSERT_NO_LEAKS() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)")
#else
#define ASSERT_NO_LEAKS() ((void)0)
#endif

#define SERVER_ISOS 2 /* isolates 0..1: servers */
#define CLIENT_ISOS 2 /* isolates 2..3: clients */
#define NISO        (SERVER_ISOS + CLIENT_ISOS)
#define POPULATION  24 /* connections kept per client isolate */
#define MAX_WRITE   (256u * 1024u)
#define MAX_READ    (64u * 1024u)
#define MAX_REBINDS 24 /* server closes + rebinds per run, all isolates */
#define TICK_MS     5

#define MAGIC_LIVE 0x4a4d4d52u
#define MAGIC_DEAD 0xdeaddeadu

/* ---- state -------------------------------------------------------------- */

typedef struct hconn {
    uint32_t magic;
    uint32_t iso;
    bool client, tls;
    atoll_conn *conn;
    struct hconn *next, *prev; /* live list of its isolate */
    struct hconn *all;         /* every hconn, freed after destroy */
} hconn;

typedef struct hserver {
    uint32_t magic;
    uint32_t iso;
    bool tls, bound, close_called;
    atoll_server *server;
    struct hserver *all;
} hserver;

typedef struct hiso {
    uint64_t rng;
    hconn *live;
    int live_n, pending; /* client isolates: connections and connects out */
    hserver *srv[2];     /* server isolates: the current plain [0] and TLS [1] server */
    uint8_t *scratch;    /* read buffer */
    atoll_timer *tick;
    uint64_t ops[16];
} hiso;

static struct hammer {
    atoll_runtime *rt;
    atoll_security_context *ctx;
    uint64_t seed;
    hiso iso[NISO];
    _Atomic uint16_t ports[SERVER_ISOS][2]; /* 0: none bound now */
    _Atomic(hconn *) all_conns;
    _Atomic(hserver *) all_servers;
    _Atomic bool stopping;
    bool tls; /* clients use TLS too (ATOLL_HAMMER_TLS=0: plain only) */
    _Atomic long rebinds;
    _Atomic long delivered, closed, srv_bound, srv_closed, srv_errors, connect_failed, connects;
    _Atomic uint64_t written, read;
    sup_latch bound;
} H;

static uint8_t pattern[MAX_WRITE];

static uint64_t rnd(hiso *h)
{
    /* xorshift64* */
    uint64_t x = h->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    h->rng = x;
    return x * 2685821657736338717ull;
}

static uint32_t rnd_below(hiso *h, uint32_t n)
{
    return (uint32_t)((rnd(h) >> 32) % n);
}

static hiso *self_iso(void)
{
    atoll_isolate *me = atoll_isolate_current();
    uint32_t id = atoll_isolate_id(me);
    SUP_CHECK(id < NISO, "callback on isolate %u", id);
    return &H.iso[id < NISO ? id : 0];
}

static bool conn_ok(hconn *x, const char *what)
{
    if (!x) {
        sup_fail(__FILE__, __LINE__, "%s: NULL user data", what);
        return false;
    }
    if (x->magic != MAGIC_LIVE) {
        sup_fail(__FILE__, __LINE__, "%s ran on a connection after its on_closed (canary %#x)", what, x->magic);
        return false;
    }
    return true;
}

static bool server_ok(hserver *s, const char *what)
{
    if (!s || s->magic != MAGIC_LIVE) {
        sup_fail(__FILE__, __LINE__, "server %s ran after its on_closed (canary %#x)", what, s ? s->magic : 0u);
        return false;
    }
    return true;
}

/* ---- operations --------------------------------------------------------- */

enum op {
    OP_NOP,
    OP_WRITE,
    OP_READ,
    OP_PAUSE,
    OP_RESUME,
    OP_READ_OFF,
    OP_READ_ON,
    OP_WRITE_EV,
    OP_WRITE_EV_OFF,
    OP_SHUT_SEND,
    OP_SHUT_RECV,
    OP_CLOSE,
    OP_NODELAY,
    OP_SERVER_CYCLE,
    OP_COUNT
};

/* Weights per mille. */
static const uint16_t op_weight[OP_COUNT] = {
    [OP_NOP] = 330,     [OP_WRITE] = 220,  [OP_READ] = 200,    [OP_PAUSE] = 25,        [OP_RESUME] = 50,
    [OP_READ_OFF] = 15, [OP_READ_ON] = 50, [OP_WRITE_EV] = 50, [OP_WRITE_EV_OFF] = 10, [OP_SHUT_SEND] = 12,
    [OP_SHUT_RECV] = 8, [OP_CLOSE] = 22,   [OP_NODELAY] = 5,   [OP_SERVER_CYCLE] = 3,
};

static enum op pick_op(hiso *h)
{
    uint32_t r = rnd_below(h, 1000);
    for (int i = 0; i < OP_COUNT; i++) {
        if (r < op_weight[i])
            return (enum op)i;
        r -= op_weight[i];
    }
    return OP_NOP;
}

static void server_bind(atoll_isolate *self, bool tls);

/* Closes a server of this isolate and binds a new one of the same kind. */
static void server_cycle(atoll_isolate *self, hiso *h)
{
    if (atomic_load(&H.stopping) || atomic_fetch_add(&H.rebinds, 1) >= MAX_REBINDS)
        return;
    bool tls = rnd_below(h, 2);
    hserver *s = h->srv[tls];
    if (!s || !s->bound || s->close_called)
        return;
    s->close_called = true;
    h->srv[tls] = NULL;
    atomic_store(&H.ports[atoll_isolate_id(self)][tls], 0);
    int rc = atoll_server_close(s->server);
    SUP_CHECK(rc == 0, "server_close: %s", atoll_error_name(rc));
    server_bind(self, tls);
}

static void random_op(hiso *h, hconn *x)
{
    atoll_conn *c = x->conn;
    enum op op = pick_op(h);
    h->ops[op]++;
    ssize_t n;
    int rc;
    switch (op) {
    case OP_NOP:
        break;
    case OP_WRITE: {
        size_t len = 1 + rnd_below(h, MAX_WRITE);
        n = atoll_conn_write(c, pattern, len);
        SUP_CHECK((n >= 0 && (size_t)n <= len) || n == ATOLL_E_CLOSED, "write: %zd", n);
        if (n > 0)
            atomic_fetch_add(&H.written, (uint64_t)n);
        if (n >= 0 && (size_t)n < len)
            atoll_conn_set_write_events(c, true);
        break;
    }
    case OP_READ: {
        size_t len = 1 + rnd_below(h, MAX_READ);
        n = atoll_conn_read(c, h->scratch, len);
        SUP_CHECK((n >= 0 && (size_t)n <= len) || n == ATOLL_E_CLOSED, "read: %zd", n);
        if (n > 0)
            atomic_fetch_add(&H.read, (uint64_t)n);
        break;
    }
    case OP_PAUSE:
        atoll_conn_pause(c);
        break;
    case OP_RESUME:
        atoll_conn_resume(c);
        break;
    case OP_READ_OFF:
        atoll_conn_set_read_events(c, false);
        break;
    case OP_READ_ON:
        atoll_conn_set_read_events(c, true);
        break;
    case OP_WRITE_EV:
        atoll_conn_set_write_events(c, true);
        break;
    case OP_WRITE_EV_OFF:
        atoll_conn_set_write_events(c, false);
        break;
    case OP_SHUT_SEND:
        rc = atoll_conn_shutdown(c, ATOLL_SHUT_SEND);
        SUP_CHECK(rc == 0, "shutdown(SEND): %d", rc);
        break;
    case OP_SHUT_RECV:
        rc = atoll_conn_shutdown(c, ATOLL_SHUT_RECEIVE);
        SUP_CHECK(rc == 0, "shutdown(RECEIVE): %d", rc);
        break;
    case OP_CLOSE:
        rc = atoll_conn_close(c);
        SUP_CHECK(rc == 0, "close: %d", rc);
        if (rnd_below(h, 4) == 0) {
            rc = atoll_conn_close(c);
            SUP_CHECK(rc == 0, "second close: %d", rc);
        }
        break;
    case OP_NODELAY:
        rc = atoll_conn_set_nodelay(c, rnd_below(h, 2));
        SUP_CHECK(rc == 0 || rc == -EOPNOTSUPP || rc == ATOLL_E_CLOSED, "set_nodelay: %d", rc);
        break;
    case OP_SERVER_CYCLE:
        if (!x->client && atoll_isolate_id(atoll_conn_isolate(c)) < SERVER_ISOS)
            server_cycle(atoll_conn_isolate(c), h);
        break;
    default:
        break;
    }
}

/* ---- connections ------------------------------------------------------- */

static void conn_link(hiso *h, hconn *x)
{
    x->next = h->live;
    x->prev = NULL;
    if (h->live)
        h->live->prev = x;
    h->live = x;
    h->live_n++;
}

static void conn_unlink(hiso *h, hconn *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->live = x->next;
    if (x->next)
        x->next->prev = x->prev;
    h->live_n--;
}

static void c_on_read(atoll_conn *c, void *user)
{
    hconn *x = user;
    (void)c;
    if (conn_ok(x, "on_read"))
        random_op(self_iso(), x);
}

static void c_on_write(atoll_conn *c, void *user)
{
    hconn *x = user;
    (void)c;
    if (conn_ok(x, "on_write"))
        random_op(self_iso(), x);
}

static void c_on_read_closed(atoll_conn *c, void *user)
{
    hconn *x = user;
    if (!conn_ok(x, "on_read_closed"))
        return;
    hiso *h = self_iso();
    if (rnd_below(h, 2))
        atoll_conn_close(c);
    else
        random_op(h, x);
}

static void top_up(atoll_isolate *self, hiso *h);

static void c_on_closed(atoll_conn *c, int status, void *user)
{
    hconn *x = user;
    (void)status;
    if (!conn_ok(x, "on_closed"))
        return;
    hiso *h = self_iso();
    /* Calls on the handle are still allowed inside on_closed. */
    if (rnd_below(h, 8) == 0)
        random_op(h, x);
    x->magic = MAGIC_DEAD;
    conn_unlink(h, x);
    atomic_fetch_add(&H.closed, 1);
    if (x->client)
        top_up(atoll_conn_isolate(c), h);
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = c_on_read, .on_write = c_on_write, .on_read_closed = c_on_read_closed, .on_closed = c_on_closed};

static hconn *conn_new(atoll_conn *c, bool client, bool tls)
{
    hconn *x = calloc(1, sizeof(*x));
    SUP_CHECK(x != NULL, "calloc");
    x->magic = MAGIC_LIVE;
    x->iso = atoll_isolate_id(atoll_conn_isolate(c));
    x->client = client;
    x->tls = tls;
    x->conn = c;
    x->all = atomic_load(&H.all_conns);
    while (!atomic_compare_exchange_weak(&H.all_conns, &x->all, x))
        ;
    conn_link(&H.iso[x->iso], x);
    atomic_fetch_add(&H.delivered, 1);
    atoll_conn_set_callbacks(c, &conn_cb, x);
    return x;
}

static void on_connect(atoll_conn *c, int status, void *user)
{
    bool tls = (uintptr_t)user != 0;
    hiso *h = self_iso();
    h->pending--;
    if (!c) {
        SUP_CHECK(status < 0, "on_connect(NULL, %d)", status);
        atomic_fetch_add(&H.connect_failed, 1);
        top_up(atoll_isolate_current(), h);
        return;
    }
    SUP_CHECK(status == 0, "on_connect(conn, %d)", status);
    hconn *x = conn_new(c, true, tls);
    random_op(h, x);
}

/* Keeps the client isolate's population at POPULATION. */
static void top_up(atoll_isolate *self, hiso *h)
{
    while (!atomic_load(&H.stopping) && h->live_n + h->pending < POPULATION) {
        uint32_t si = rnd_below(h, SERVER_ISOS);
        bool tls = H.tls && rnd_below(h, 2);
        uint16_t port = atomic_load(&H.ports[si][tls]);
        if (!port)
            return; /* being rebound: the tick tries again */
        atoll_connect_options o;
        atoll_connect_options_init(&o);
        o.secure = tls;
        o.insecure = true;
        o.timeout_ms = 5000;
        int rc = atoll_connect(self, "127.0.0.1", port, &o, on_connect, (void *)(uintptr_t)tls);
        if (rc < 0) {
            SUP_CHECK(rc == ATOLL_E_STOPPED || rc == ATOLL_E_CONN_CAP, "atoll_connect: %s", atoll_error_name(rc));
            return;
        }
        h->pending++;
        atomic_fetch_add(&H.connects, 1);
    }
}

/* ---- servers ------------------------------------------------------------- */

static void s_on_bound(atoll_server *server, int status, void *user)
{
    hserver *s = user;
    if (!server_ok(s, "on_bound"))
        return;
    SUP_CHECK(status == 0, "on_bound: %s", atoll_error_name(status));
    if (status != 0) {
        s->magic = MAGIC_DEAD; /* released after this callback, no on_closed */
        sup_latch_signal(&H.bound);
        return;
    }
    s->bound = true;
    atomic_fetch_add(&H.srv_bound, 1);
    int rc = atoll_server_start(server);
    SUP_CHECK(rc == 0, "server_start: %s", atoll_error_name(rc));
    if (!s->close_called)
        atomic_store(&H.ports[s->iso][s->tls], atoll_server_port(server));
    sup_latch_signal(&H.bound);
}

static void s_on_connection(atoll_server *server, atoll_conn *c, void *user)
{
    hserver *s = user;
    (void)server;
    if (!server_ok(s, "on_connection"))
        return;
    hconn *x = conn_new(c, false, s->tls);
    random_op(self_iso(), x);
}

static void s_on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    hserver *s = user;
    (void)server;
    (void)e;
    if (!server_ok(s, "on_error"))
        return;
    atomic_fetch_add(&H.srv_errors, 1);
    hiso *h = self_iso();
    /* Act on a random connection of the isolate from here too. */
    if (h->live && rnd_below(h, 2))
        random_op(h, h->live);
}

static void s_on_closed(atoll_server *server, void *user)
{
    hserver *s = user;
    (void)server;
    if (!server_ok(s, "on_closed"))
        return;
    s->magic = MAGIC_DEAD;
    atomic_fetch_add(&H.srv_closed, 1);
}

static const atoll_server_callbacks srv_cb = {
    .on_bound = s_on_bound, .on_connection = s_on_connection, .on_error = s_on_error, .on_closed = s_on_closed};

static void server_bind(atoll_isolate *self, bool tls)
{
    uint32_t id = atoll_isolate_id(self);
    hserver *s = calloc(1, sizeof(*s));
    SUP_CHECK(s != NULL, "calloc");
    s->magic = MAGIC_LIVE;
    s->iso = id;
    s->tls = tls;
    s->all = atomic_load(&H.all_servers);
    while (!atomic_compare_exchange_weak(&H.all_servers, &s->all, s))
        ;
    atoll_server_options o;
    atoll_server_options_init(&o);
    o.handshake_timeout_ms = 5000;
    int rc = atoll_server_bind(self, "127.0.0.1", 0, &o, tls ? H.ctx : NULL, &srv_cb, s, &s->server);
    SUP_CHECK(rc == 0, "bind: %s", atoll_error_name(rc));
    if (rc < 0) {
        s->magic = MAGIC_DEAD;
        return;
    }
    H.iso[id].srv[tls] = s;
}

/* ---- per-isolate setup and the tick ------------------------------------- */

static void tick(atoll_timer *t, void *user)
{
    (void)t;
    (void)user;
    atoll_isolate *self = atoll_isolate_current();
    hiso *h = self_iso();
    /* A few random connections get a random operation, and whatever was
     * left paused or deaf gets woken now and then. */
    for (int k = 0; k < 4 && h->live_n > 0; k++) {
        uint32_t i = rnd_below(h, (uint32_t)h->live_n);
        hconn *x = h->live;
        while (i-- && x)
            x = x->next;
        if (!x || !conn_ok(x, "tick"))
            continue;
        if (rnd_below(h, 3) == 0) {
            atoll_conn_resume(x->conn);
            atoll_conn_set_read_events(x->conn, true);
        }
        random_op(h, x);
    }
    if (atoll_isolate_id(self) >= SERVER_ISOS)
        top_up(self, h);
    else if (rnd_below(h, 200) == 0)
        server_cycle(self, h);
}

static void setup_server_iso(atoll_isolate *self, void *arg)
{
    (void)arg;
    hiso *h = &H.iso[atoll_isolate_id(self)];
    server_bind(self, false);
    server_bind(self, true);
    int rc = atoll_timer_start(self, TICK_MS, TICK_MS, tick, NULL, &h->tick);
    SUP_CHECK(rc == 0, "timer: %s", atoll_error_name(rc));
}

static void setup_client_iso(atoll_isolate *self, void *arg)
{
    (void)arg;
    hiso *h = &H.iso[atoll_isolate_id(self)];
    top_up(self, h);
    int rc = atoll_timer_start(self, TICK_MS, TICK_MS, tick, NULL, &h->tick);
    SUP_CHECK(rc == 0, "timer: %s", atoll_error_name(rc));
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

Test(hammer, random_ops_from_random_callbacks, .timeout = 240)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env = getenv("ATOLL_HAMMER_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const char *ms_env = getenv("ATOLL_HAMMER_MS");
    int run_ms = ms_env && *ms_env ? atoi(ms_env) : 5000;
    cr_log_info("hammer seed %" PRIu64 " (replay: ATOLL_HAMMER_SEED=%" PRIu64 "), %d ms", seed, seed, run_ms);
    fprintf(stderr, "test_hammer: seed %" PRIu64 " (replay: ATOLL_HAMMER_SEED=%" PRIu64 "), %d ms\n", seed, seed,
            run_ms);

    int baseline = sup_fd_count();
    memset(&H, 0, sizeof(H));
    H.seed = seed;
    const char *tls_env = getenv("ATOLL_HAMMER_TLS");
    H.tls = !(tls_env && !strcmp(tls_env, "0"));
    sup_latch_init(&H.bound);
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 31u + 7u);
    uint64_t sm = seed;
    for (int i = 0; i < NISO; i++) {
        H.iso[i].rng = splitmix(&sm) | 1u;
        H.iso[i].scratch = malloc(MAX_READ);
        cr_assert_not_null(H.iso[i].scratch);
    }
    H.ctx = ns_server_ctx();
    cr_assert_not_null(H.ctx, "%s", sup_first_failure());
    /* Warm-up: a runtime of the same shape, started and destroyed, so the
     * one-time allocations are made before the baseline. */
    atoll_runtime *warm = sup_start_n(NISO);
    cr_assert_eq(atoll_runtime_stop(warm), 0);
    cr_assert_eq(atoll_runtime_join(warm), 0);
    cr_assert_eq(atoll_runtime_destroy(warm), 0);
    long blocks_before = alloc_count_live();
    H.rt = sup_start_n(NISO);

    for (uint32_t i = 0; i < SERVER_ISOS; i++)
        cr_assert_eq(sup_run_on(H.rt, i, setup_server_iso, NULL), 0);
    cr_assert(sup_latch_wait(&H.bound, 2 * SERVER_ISOS, SUP_WAIT_MS), "servers not bound");
    sup_assert_no_failures();
    for (uint32_t i = SERVER_ISOS; i < NISO; i++)
        cr_assert_eq(sup_run_on(H.rt, i, setup_client_iso, NULL), 0);

    /* Let it run; fail early if a check already failed. */
    int64_t end = sup_now_ms() + run_ms;
    while (sup_now_ms() < end && sup_failure_count() == 0)
        poll(NULL, 0, 50);
    atomic_store(&H.stopping, true);

    /* Stop with everything in flight. */
    int stop = atoll_runtime_stop(H.rt);
    int join = atoll_runtime_join(H.rt);
    int destroy = atoll_runtime_destroy(H.rt);
    uint64_t ops = 0;
    for (int i = 0; i < NISO; i++)
        for (int k = 0; k < OP_COUNT; k++)
            ops += H.iso[i].ops[k];
    cr_log_info("hammer seed %" PRIu64 ": %" PRIu64 " ops, %ld connects (%ld failed), %ld delivered, %ld closed, "
                "%ld servers bound, %ld closed, %ld handshake errors, %" PRIu64 " bytes written, %" PRIu64 " read",
                seed, ops, atomic_load(&H.connects), atomic_load(&H.connect_failed), atomic_load(&H.delivered),
                atomic_load(&H.closed), atomic_load(&H.srv_bound), atomic_load(&H.srv_closed),
                atomic_load(&H.srv_errors), atomic_load(&H.written), atomic_load(&H.read));
    cr_assert_eq(stop, 0, "stop: %s", atoll_error_name(stop));
    cr_assert_eq(join, 0, "join: %s", atoll_error_name(join));
    cr_assert_eq(destroy, 0, "destroy: %s", atoll_error_name(destroy));
    cr_assert_eq(sup_failure_count(), 0, "seed %" PRIu64 ": %d check(s) failed; first: %s", seed, sup_failure_count(),
                 sup_first_failure());
    cr_assert_eq(atomic_load(&H.closed), atomic_load(&H.delivered),
                 "seed %" PRIu64 ": on_closed for %ld of %ld delivered connections", seed, atomic_load(&H.closed),
                 atomic_load(&H.delivered));
    cr_assert_eq(atomic_load(&H.srv_closed), atomic_load(&H.srv_bound),
                 "seed %" PRIu64 ": server on_closed for %ld of %ld bound servers", seed, atomic_load(&H.srv_closed),
                 atomic_load(&H.srv_bound));
    cr_assert_gt(atomic_load(&H.delivered), 0, "no connection was ever delivered");

    atoll_security_context_release(H.ctx);
    int fds = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(fds, baseline, "seed %" PRIu64 ": open descriptors %d, baseline %d", seed, fds, baseline);
    for (hconn *x = atomic_load(&H.all_conns); x;) {
        hconn *n = x->all;
        free(x);
        x = n;
    }
    for (hserver *s = atomic_load(&H.all_servers); s;) {
        hserver *n = s->all;
        free(s);
        s = n;
    }
    long blocks_after = alloc_count_live();
    cr_log_info("hammer seed %" PRIu64 ": live heap blocks %ld before the runtime, %ld after destroy", seed,
                blocks_before, blocks_after);
    cr_assert_leq(blocks_after, blocks_before,
                  "seed %" PRIu64 ": %ld heap blocks still live after destroy (%ld before the runtime)", seed,
                  blocks_after, blocks_before);
    for (int i = 0; i < NISO; i++)
        free(H.iso[i].scratch);
    ASSERT_NO_LEAKS();
}
