/*
 * test_callbacks: every public call made from inside every callback, against
 * the public API only (issue 7: "any API call is safe from inside any
 * callback: test each from each").
 *
 * A table of rows {callback, call, tls}: in each scenario one callback
 * performs one call (some twice: close, shutdown, server close) the first
 * time it runs, and the scenario is then driven to its end:
 *
 *   isolate 0: a server (TLS or plain) replying once to what it reads and
 *              shutting its send side when the peer's end of stream is read;
 *   isolate 1: a client connected with atoll_connect that sends a greeting,
 *              reads the reply and shuts its send side (or holds the
 *              connection open, for the callbacks triggered from outside:
 *              on_error, the server's on_closed, a timer, a port message,
 *              a drain hook, which act on that held connection).
 *
 * At the end every remaining connection and the server are closed from
 * tasks on their isolates (when both still run), then the runtime is
 * stopped, joined and destroyed, and the test asserts: no ASan report (the
 * build aborts on one), on_closed exactly once for every delivered
 * connection and no callback after it (a canary in each connection's user
 * data), the server's on_closed exactly once and no server callback after
 * it, documented return values for each call (misuse returns its error,
 * calls that would block an isolate return ATOLL_E_DEADLOCK), stop / join /
 * destroy return 0, the process's descriptor count back to its baseline,
 * and (ASan builds) LeakSanitizer finds nothing.
 *
 * Adding a row is one line in `rows` below. After the table: a directed
 * regression found by test_hammer (a TLS peer resetting while writes are
 * pending).
 */
#include "net_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CB_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(CB_TEST_ASAN)
#include <sanitizer/lsan_interface.h>
/* Leaks fail the test itself: LeakSanitizer's report at the child's exit
 * comes after Criterion has recorded the result. */
#define ASSERT_NO_LEAKS() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)")
#else
#define ASSERT_NO_LEAKS() ((void)0)
#endif

/* ---- the table ---------------------------------------------------------- */

typedef enum cb_kind {
    CB_BOUND,       /* server on_bound */
    CB_CONNECTION,  /* server on_connection (the new connection in hand) */
    CB_ERROR,       /* server on_error (TLS: a client sending garbage) */
    CB_SRV_CLOSED,  /* server on_closed */
    CB_READ,        /* connection on_read (server side) */
    CB_WRITE,       /* connection on_write (server side) */
    CB_READ_CLOSED, /* connection on_read_closed (server side) */
    CB_CLOSED,      /* connection on_closed (server side) */
    CB_CONNECT,     /* atoll_connect_fn (the client connection in hand) */
    CB_TIMER,       /* a timer on the server's isolate */
    CB_PORT,        /* a port message on the server's isolate */
    CB_DRAIN,       /* a drain hook on the server's isolate */
} cb_kind;

static const char *const cb_names[] = {"on_bound",   "on_connection", "on_error",       "server on_closed",
                                       "on_read",    "on_write",      "on_read_closed", "on_closed",
                                       "on_connect", "timer",         "port message",   "drain hook"};

typedef enum call_kind {
    /* on a connection */
    C_CLOSE,          /* atoll_conn_close, twice */
    C_SHUT_SEND,      /* atoll_conn_shutdown(SEND), twice */
    C_SHUT_RECV,      /* atoll_conn_shutdown(RECEIVE), twice */
    C_SHUT_BOTH,      /* atoll_conn_shutdown(BOTH), then an invalid `how` */
    C_PAUSE,          /* atoll_conn_pause, twice */
    C_PAUSE_RESUME,   /* pause, then resume */
    C_RESUME,         /* resume without pause */
    C_WRITE_SMALL,    /* atoll_conn_write of 8 bytes */
    C_WRITE_FILL,     /* write until the buffer is full, then write events on */
    C_READ,           /* atoll_conn_read (and its argument error) */
    C_READ_EV_OFF,    /* atoll_conn_set_read_events(false) */
    C_READ_EV_TOGGLE, /* set_read_events(false) then (true) */
    C_WRITE_EV,       /* atoll_conn_set_write_events(true) */
    C_WRITE_EV_OFF,   /* atoll_conn_set_write_events(false) */
    C_CB_REPLACE,     /* atoll_conn_set_callbacks with another table */
    C_CB_NULL_CLOSE,  /* atoll_conn_set_callbacks(NULL), then close */
    C_CB_NULL,        /* atoll_conn_set_callbacks(NULL), left to teardown */
    C_NODELAY,        /* atoll_conn_set_nodelay(true) */
    /* on the server */
    C_SRV_PAUSE,        /* atoll_server_pause */
    C_SRV_PAUSE_RESUME, /* atoll_server_pause, then resume */
    C_SRV_CLOSE,        /* atoll_server_close, twice */
    C_SRV_START,        /* atoll_server_start (misuse: already started) */
    /* on the isolate / runtime */
    C_CONNECT,  /* atoll_connect: a new connection to the server */
    C_EXIT,     /* atoll_isolate_exit(self, 0) */
    C_STOP,     /* atoll_runtime_stop (legal from an isolate) */
    C_BLOCKING, /* drain, join, destroy, listen, start: refused, not a deadlock */
} call_kind;

static const char *const call_names[] = {"conn_close x2",
                                         "shutdown(SEND) x2",
                                         "shutdown(RECEIVE) x2",
                                         "shutdown(BOTH)",
                                         "pause x2",
                                         "pause+resume",
                                         "resume",
                                         "write small",
                                         "write fill",
                                         "read",
                                         "read_events off",
                                         "read_events off+on",
                                         "write_events on",
                                         "write_events off",
                                         "set_callbacks replace",
                                         "set_callbacks NULL+close",
                                         "set_callbacks NULL",
                                         "set_nodelay",
                                         "server_pause",
                                         "server_pause+resume",
                                         "server_close x2",
                                         "server_start",
                                         "atoll_connect",
                                         "isolate_exit",
                                         "runtime_stop",
                                         "blocking calls"};

typedef struct row {
    cb_kind cb;
    call_kind call;
    bool tls;
} row;

/* Rows, one line each; the macros spell the usual sets out. */
#define CONN_CALLS(cb, tls)                                                                                            \
    {cb, C_CLOSE, tls}, {cb, C_SHUT_SEND, tls}, {cb, C_SHUT_RECV, tls}, {cb, C_SHUT_BOTH, tls}, {cb, C_PAUSE, tls},    \
        {cb, C_PAUSE_RESUME, tls}, {cb, C_RESUME, tls}, {cb, C_WRITE_SMALL, tls}, {cb, C_WRITE_FILL, tls},             \
        {cb, C_READ, tls}, {cb, C_READ_EV_OFF, tls}, {cb, C_READ_EV_TOGGLE, tls}, {cb, C_WRITE_EV, tls},               \
        {cb, C_WRITE_EV_OFF, tls}, {cb, C_CB_REPLACE, tls}, {cb, C_CB_NULL_CLOSE, tls}, {cb, C_CB_NULL, tls},          \
    {                                                                                                                  \
        cb, C_NODELAY, tls                                                                                             \
    }
#define SERVER_CALLS(cb, tls)                                                                                          \
    {cb, C_SRV_PAUSE, tls}, {cb, C_SRV_PAUSE_RESUME, tls}, {cb, C_SRV_CLOSE, tls},                                     \
    {                                                                                                                  \
        cb, C_SRV_START, tls                                                                                           \
    }
#define ISOLATE_CALLS(cb, tls)                                                                                         \
    {cb, C_CONNECT, tls}, {cb, C_EXIT, tls}, {cb, C_STOP, tls},                                                        \
    {                                                                                                                  \
        cb, C_BLOCKING, tls                                                                                            \
    }
#define ALL_CALLS(cb, tls) CONN_CALLS(cb, tls), SERVER_CALLS(cb, tls), ISOLATE_CALLS(cb, tls)

static row rows[] = {
    SERVER_CALLS(CB_BOUND, false),    ISOLATE_CALLS(CB_BOUND, false),
    SERVER_CALLS(CB_BOUND, true),     ALL_CALLS(CB_CONNECTION, false),
    ALL_CALLS(CB_CONNECTION, true),   ALL_CALLS(CB_ERROR, true), /* a plain server has no handshake to fail */
    ALL_CALLS(CB_SRV_CLOSED, false),  CONN_CALLS(CB_SRV_CLOSED, true),
    ALL_CALLS(CB_READ, false),        ALL_CALLS(CB_READ, true),
    ALL_CALLS(CB_WRITE, false),       ALL_CALLS(CB_WRITE, true),
    ALL_CALLS(CB_READ_CLOSED, false), ALL_CALLS(CB_READ_CLOSED, true),
    ALL_CALLS(CB_CLOSED, false),      ALL_CALLS(CB_CLOSED, true),
    CONN_CALLS(CB_CONNECT, false),    ISOLATE_CALLS(CB_CONNECT, false),
    CONN_CALLS(CB_CONNECT, true),     ALL_CALLS(CB_TIMER, false),
    CONN_CALLS(CB_TIMER, true),       ALL_CALLS(CB_PORT, false),
    CONN_CALLS(CB_PORT, true),        ALL_CALLS(CB_DRAIN, false),
    CONN_CALLS(CB_DRAIN, true),
};

/* Callbacks triggered from outside act on a connection the client holds. */
static bool cb_holds(cb_kind k)
{
    return k == CB_ERROR || k == CB_SRV_CLOSED || k == CB_TIMER || k == CB_PORT || k == CB_DRAIN;
}

/* ---- the scenario's state ----------------------------------------------- */

#define MAGIC_LIVE  0x11fe11feu
#define MAGIC_DEAD  0xdeadc0deu
#define GREETING    "hello, server"
#define REPLY_LEN   64
#define WAIT_ACTION 15000

/* Per connection user data: the canary and the application's state. */
typedef struct cx {
    uint32_t magic;
    int side; /* 0 server side, 1 client side */
    uint32_t iso;
    atoll_conn *conn;
    bool replaced; /* set_callbacks replaced the table */
    bool detached; /* set_callbacks(NULL): no callback may run any more */
    bool linked;
    bool replied, shut_sent, echoed;
    size_t got;
    struct cx *next, *prev; /* live list of its isolate */
    struct cx *all;         /* every cx, freed after destroy */
} cx;

static struct scenario {
    row r;
    bool hold;
    atoll_runtime *rt;
    atoll_security_context *ctx;
    _Atomic uint16_t port;
    atoll_server *server; /* isolate 0 */
    uint32_t srv_magic;   /* isolate 0 */
    bool srv_close_called;
    int in_srv_close; /* isolate 0: depth of atoll_server_close calls */
    cx *held;         /* isolate 0: the server side of the held connection */
    cx *live[2];      /* per isolate: delivered, not yet closed */
    _Atomic(cx *) all;
    _Atomic bool fired, ending, iso_gone;
    _Atomic long delivered, closed, detached, srv_bound_ok, srv_closed, srv_errors, connect_failed;
    _Atomic long srv_closed_nested; /* server on_closed run inside atoll_server_close */
    sup_latch action, echo, bound, errors, events;
    atoll_receive_port *port_rx; /* isolate 0 */
} sc;

static void cx_link(cx *x)
{
    x->next = sc.live[x->iso];
    x->prev = NULL;
    if (x->next)
        x->next->prev = x;
    sc.live[x->iso] = x;
    x->linked = true;
}

static void cx_unlink(cx *x)
{
    if (!x->linked)
        return;
    if (x->prev)
        x->prev->next = x->next;
    else
        sc.live[x->iso] = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->linked = false;
}

static cx *cx_new(atoll_conn *c, int side)
{
    cx *x = calloc(1, sizeof(*x));
    SUP_CHECK(x != NULL, "calloc");
    x->magic = MAGIC_LIVE;
    x->side = side;
    x->conn = c;
    x->iso = atoll_isolate_id(atoll_conn_isolate(c));
    SUP_CHECK(x->iso < 2, "connection on isolate %u", x->iso);
    x->all = atomic_load(&sc.all);
    while (!atomic_compare_exchange_weak(&sc.all, &x->all, x))
        ;
    cx_link(x);
    atomic_fetch_add(&sc.delivered, 1);
    return x;
}

/* Every callback starts here: the canary must be live and the table the
 * one installed. */
static bool cx_check(cx *x, bool alt, const char *what)
{
    if (!x) {
        sup_fail(__FILE__, __LINE__, "%s: NULL user data (after set_callbacks(NULL)?)", what);
        return false;
    }
    if (x->magic != MAGIC_LIVE) {
        sup_fail(__FILE__, __LINE__, "%s ran after on_closed (canary %#x)", what, x->magic);
        return false;
    }
    if (x->detached) {
        sup_fail(__FILE__, __LINE__, "%s ran after set_callbacks(NULL)", what);
        return false;
    }
    if (x->replaced != alt) {
        sup_fail(__FILE__, __LINE__, "%s: the %s table ran after set_callbacks", what, alt ? "new" : "old");
        return false;
    }
    return true;
}

static bool srv_check(const char *what)
{
    if (sc.srv_magic != MAGIC_LIVE) {
        sup_fail(__FILE__, __LINE__, "server %s ran with canary %#x (after on_closed?)", what, sc.srv_magic);
        return false;
    }
    return true;
}

static bool take_fire(cb_kind k)
{
    if (sc.r.cb != k)
        return false;
    bool expected = false;
    return atomic_compare_exchange_strong(&sc.fired, &expected, true);
}

/* ---- the calls ---------------------------------------------------------- */

static void client_on_connect(atoll_conn *c, int status, void *user);
static const atoll_server_callbacks srv_cb;

static atoll_connect_options client_opts(void)
{
    atoll_connect_options o;
    atoll_connect_options_init(&o);
    o.secure = sc.r.tls;
    o.insecure = true; /* these tests are about I/O, not verification */
    return o;
}

#define CHECK_RC(cond, what, rc)                                                                                       \
    SUP_CHECK(cond, "[%s / %s / %s] %s returned %d (%s)", cb_names[sc.r.cb], call_names[sc.r.call],                    \
              sc.r.tls ? "tls" : "plain", what, (int)(rc), atoll_error_name((int)(rc)))

static bool write_rc_ok(ssize_t rc, size_t len)
{
    return (rc >= 0 && (size_t)rc <= len) || rc == ATOLL_E_CLOSED;
}

static const atoll_conn_callbacks *alt_table(int side);

static void conn_call(cx *x)
{
    atoll_conn *c = x->conn;
    int rc, rc2;
    ssize_t n;
    static uint8_t big[65536];
    uint8_t buf[4096];
    switch (sc.r.call) {
    case C_CLOSE:
        rc = atoll_conn_close(c);
        rc2 = atoll_conn_close(c);
        CHECK_RC(rc == 0, "close", rc);
        CHECK_RC(rc2 == 0, "second close", rc2);
        break;
    case C_SHUT_SEND:
    case C_SHUT_RECV: {
        atoll_shutdown_how how = sc.r.call == C_SHUT_SEND ? ATOLL_SHUT_SEND : ATOLL_SHUT_RECEIVE;
        rc = atoll_conn_shutdown(c, how);
        rc2 = atoll_conn_shutdown(c, how);
        CHECK_RC(rc == 0, "shutdown", rc);
        CHECK_RC(rc2 == 0, "second shutdown", rc2);
        break;
    }
    case C_SHUT_BOTH:
        rc = atoll_conn_shutdown(c, ATOLL_SHUT_BOTH);
        CHECK_RC(rc == 0, "shutdown(BOTH)", rc);
        rc = atoll_conn_shutdown(c, (atoll_shutdown_how)7);
        CHECK_RC(rc == -EINVAL, "shutdown(7)", rc);
        break;
    case C_PAUSE:
        atoll_conn_pause(c);
        atoll_conn_pause(c);
        break;
    case C_PAUSE_RESUME:
        atoll_conn_pause(c);
        atoll_conn_resume(c);
        break;
    case C_RESUME:
        atoll_conn_resume(c);
        break;
    case C_WRITE_SMALL:
        n = atoll_conn_write(c, "01234567", 8);
        CHECK_RC(write_rc_ok(n, 8), "write", n);
        break;
    case C_WRITE_FILL:
        for (int i = 0; i < 64; i++) {
            n = atoll_conn_write(c, big, sizeof(big));
            CHECK_RC(write_rc_ok(n, sizeof(big)), "write (fill)", n);
            if (n < (ssize_t)sizeof(big))
                break;
        }
        atoll_conn_set_write_events(c, true);
        break;
    case C_READ:
        n = atoll_conn_read(c, buf, sizeof(buf));
        CHECK_RC(n >= 0 || n == ATOLL_E_CLOSED, "read", n);
        n = atoll_conn_read(c, NULL, 1);
        CHECK_RC(n == -EINVAL, "read(NULL, 1)", n);
        break;
    case C_READ_EV_OFF:
        atoll_conn_set_read_events(c, false);
        break;
    case C_READ_EV_TOGGLE:
        atoll_conn_set_read_events(c, false);
        atoll_conn_set_read_events(c, true);
        break;
    case C_WRITE_EV:
        atoll_conn_set_write_events(c, true);
        break;
    case C_WRITE_EV_OFF:
        atoll_conn_set_write_events(c, false);
        break;
    case C_CB_REPLACE:
        x->replaced = true;
        atoll_conn_set_callbacks(c, alt_table(x->side), x);
        break;
    case C_CB_NULL_CLOSE:
    case C_CB_NULL:
        atoll_conn_set_callbacks(c, NULL, NULL);
        if (x->magic == MAGIC_LIVE) { /* inside on_closed it was counted closed already */
            x->detached = true;
            atomic_fetch_add(&sc.detached, 1);
            cx_unlink(x);
            if (sc.held == x)
                sc.held = NULL;
        }
        if (sc.r.call == C_CB_NULL_CLOSE) {
            rc = atoll_conn_close(c);
            CHECK_RC(rc == 0, "close after set_callbacks(NULL)", rc);
        }
        break;
    case C_NODELAY:
        rc = atoll_conn_set_nodelay(c, true);
        CHECK_RC(rc == 0 || rc == -EOPNOTSUPP || rc == ATOLL_E_CLOSED, "set_nodelay", rc);
        break;
    default:
        break;
    }
}

static void server_call(atoll_server *s)
{
    int rc, rc2;
    SUP_CHECK(s != NULL, "[%s / %s] no server in hand", cb_names[sc.r.cb], call_names[sc.r.call]);
    if (!s)
        return;
    switch (sc.r.call) {
    case C_SRV_PAUSE:
        rc = atoll_server_pause(s);
        CHECK_RC(rc == 0 || rc == ATOLL_E_STATE, "server_pause", rc);
        break;
    case C_SRV_PAUSE_RESUME:
        rc = atoll_server_pause(s);
        CHECK_RC(rc == 0 || rc == ATOLL_E_STATE, "server_pause", rc);
        rc = atoll_server_resume(s);
        CHECK_RC(rc == 0 || rc == ATOLL_E_STATE, "server_resume", rc);
        break;
    case C_SRV_CLOSE:
        sc.srv_close_called = true;
        sc.in_srv_close++;
        rc = atoll_server_close(s);
        rc2 = atoll_server_close(s); /* "closing twice returns 0" */
        sc.in_srv_close--;
        CHECK_RC(rc == 0, "server_close", rc);
        CHECK_RC(rc2 == 0, "second server_close", rc2);
        break;
    case C_SRV_START:
        rc = atoll_server_start(s);
        CHECK_RC(rc == ATOLL_E_STATE, "server_start on a started or closing server", rc);
        break;
    default:
        break;
    }
}

static void isolate_call(atoll_isolate *self)
{
    int rc;
    switch (sc.r.call) {
    case C_CONNECT: {
        atoll_connect_options o = client_opts();
        rc = atoll_connect(self, "127.0.0.1", atomic_load(&sc.port), &o, client_on_connect, NULL);
        CHECK_RC(rc == 0 || rc == ATOLL_E_STOPPED, "atoll_connect", rc);
        break;
    }
    case C_EXIT:
        atomic_store(&sc.iso_gone, true);
        rc = atoll_isolate_exit(self, 0);
        CHECK_RC(rc == 0, "isolate_exit", rc);
        break;
    case C_STOP:
        atomic_store(&sc.iso_gone, true);
        rc = atoll_runtime_stop(sc.rt);
        CHECK_RC(rc == 0, "runtime_stop", rc);
        break;
    case C_BLOCKING: {
        rc = atoll_runtime_drain(sc.rt, 1000);
        CHECK_RC(rc == ATOLL_E_DEADLOCK, "runtime_drain from an isolate", rc);
        rc = atoll_runtime_join(sc.rt);
        CHECK_RC(rc == ATOLL_E_DEADLOCK, "runtime_join from an isolate", rc);
        rc = atoll_runtime_destroy(sc.rt);
        CHECK_RC(rc == ATOLL_E_DEADLOCK, "runtime_destroy from an isolate", rc);
        rc = atoll_runtime_start(sc.rt);
        CHECK_RC(rc == ATOLL_E_DEADLOCK || rc == ATOLL_E_STATE, "runtime_start from an isolate", rc);
        atoll_listener *l = NULL;
        rc = atoll_runtime_listen(sc.rt, "127.0.0.1", 0, NULL, NULL, &srv_cb, NULL, &l);
        CHECK_RC(rc == ATOLL_E_DEADLOCK, "runtime_listen from an isolate", rc);
        break;
    }
    default:
        break;
    }
}

/* The row's call, from inside callback `k`, with what it has in hand. */
static void perform(cb_kind k, atoll_isolate *self, cx *victim, atoll_server *server)
{
    (void)k;
    if (sc.r.call <= C_NODELAY) {
        SUP_CHECK(victim != NULL, "[%s / %s] no connection in hand", cb_names[sc.r.cb], call_names[sc.r.call]);
        if (victim)
            conn_call(victim);
    } else if (sc.r.call <= C_SRV_START) {
        server_call(server);
    } else {
        isolate_call(self);
    }
    sup_latch_signal(&sc.action);
}

/* ---- the client (isolate 1, and connections made by C_CONNECT) ---------- */

static void cl_read_impl(atoll_conn *c, void *user, bool alt)
{
    cx *x = user;
    if (!cx_check(x, alt, "client on_read"))
        return;
    uint8_t buf[16384];
    ssize_t n;
    while ((n = atoll_conn_read(c, buf, sizeof(buf))) > 0)
        x->got += (size_t)n;
    if (x->got >= REPLY_LEN && !x->echoed) {
        x->echoed = true;
        sup_latch_signal(&sc.echo);
    }
    if (x->got >= REPLY_LEN && !sc.hold && !x->shut_sent) {
        x->shut_sent = true;
        atoll_conn_shutdown(c, ATOLL_SHUT_SEND);
    }
}

static void cl_write_impl(atoll_conn *c, void *user, bool alt)
{
    (void)c;
    cx_check(user, alt, "client on_write");
}

static void cl_read_closed_impl(atoll_conn *c, void *user, bool alt)
{
    if (cx_check(user, alt, "client on_read_closed"))
        atoll_conn_close(c);
}

static void closed_common(cx *x, bool alt, const char *what)
{
    if (!cx_check(x, alt, what))
        return;
    x->magic = MAGIC_DEAD;
    cx_unlink(x);
    atomic_fetch_add(&sc.closed, 1);
    sup_latch_signal(&sc.events);
}

static void cl_closed_impl(atoll_conn *c, int status, void *user, bool alt)
{
    (void)c;
    (void)status;
    closed_common(user, alt, "client on_closed");
}

static void cl_on_read(atoll_conn *c, void *u)
{
    cl_read_impl(c, u, false);
}
static void cl_on_write(atoll_conn *c, void *u)
{
    cl_write_impl(c, u, false);
}
static void cl_on_read_closed(atoll_conn *c, void *u)
{
    cl_read_closed_impl(c, u, false);
}
static void cl_on_closed(atoll_conn *c, int s, void *u)
{
    cl_closed_impl(c, s, u, false);
}
static void cl_on_read_alt(atoll_conn *c, void *u)
{
    cl_read_impl(c, u, true);
}
static void cl_on_write_alt(atoll_conn *c, void *u)
{
    cl_write_impl(c, u, true);
}
static void cl_on_read_closed_alt(atoll_conn *c, void *u)
{
    cl_read_closed_impl(c, u, true);
}
static void cl_on_closed_alt(atoll_conn *c, int s, void *u)
{
    cl_closed_impl(c, s, u, true);
}

static const atoll_conn_callbacks cl_cb = {
    .on_read = cl_on_read, .on_write = cl_on_write, .on_read_closed = cl_on_read_closed, .on_closed = cl_on_closed};
static const atoll_conn_callbacks cl_cb_alt = {.on_read = cl_on_read_alt,
                                               .on_write = cl_on_write_alt,
                                               .on_read_closed = cl_on_read_closed_alt,
                                               .on_closed = cl_on_closed_alt};

static void client_on_connect(atoll_conn *c, int status, void *user)
{
    (void)user;
    if (!c) {
        /* Refused after a server close or isolate exit, ... */
        atomic_fetch_add(&sc.connect_failed, 1);
        SUP_CHECK(status < 0, "on_connect(NULL, %d)", status);
        sup_latch_signal(&sc.events);
        return;
    }
    SUP_CHECK(status == 0, "on_connect(conn, %d)", status);
    cx *x = cx_new(c, 1);
    atoll_conn_set_callbacks(c, &cl_cb, x);
    ssize_t n = atoll_conn_write(c, GREETING, strlen(GREETING));
    SUP_CHECK(n == (ssize_t)strlen(GREETING), "greeting: %zd", n);
    if (take_fire(CB_CONNECT))
        perform(CB_CONNECT, atoll_conn_isolate(c), x, NULL);
    if (atomic_load(&sc.ending) && x->magic == MAGIC_LIVE && !x->detached)
        atoll_conn_close(c);
}

/* ---- the server (isolate 0) --------------------------------------------- */

static void sv_read_impl(atoll_conn *c, void *user, bool alt)
{
    cx *x = user;
    if (!cx_check(x, alt, "server on_read"))
        return;
    if (take_fire(CB_READ))
        perform(CB_READ, atoll_conn_isolate(c), x, sc.server);
    if (x->magic != MAGIC_LIVE || x->detached)
        return;
    uint8_t buf[16384];
    while (atoll_conn_read(c, buf, sizeof(buf)) > 0)
        ;
    if (!x->replied) {
        static const uint8_t reply[REPLY_LEN];
        x->replied = true;
        (void)atoll_conn_write(c, reply, sizeof(reply));
    }
}

static void sv_write_impl(atoll_conn *c, void *user, bool alt)
{
    cx *x = user;
    if (!cx_check(x, alt, "server on_write"))
        return;
    if (take_fire(CB_WRITE))
        perform(CB_WRITE, atoll_conn_isolate(c), x, sc.server);
}

static void sv_read_closed_impl(atoll_conn *c, void *user, bool alt)
{
    cx *x = user;
    if (!cx_check(x, alt, "server on_read_closed"))
        return;
    if (take_fire(CB_READ_CLOSED))
        perform(CB_READ_CLOSED, atoll_conn_isolate(c), x, sc.server);
    if (x->magic == MAGIC_LIVE && !x->detached)
        atoll_conn_shutdown(c, ATOLL_SHUT_SEND);
}

static void sv_closed_impl(atoll_conn *c, int status, void *user, bool alt)
{
    cx *x = user;
    (void)status;
    if (!cx_check(x, alt, "server on_closed"))
        return;
    if (take_fire(CB_CLOSED))
        perform(CB_CLOSED, atoll_conn_isolate(c), x, sc.server);
    if (x->detached)
        return; /* set_callbacks(NULL) from inside on_closed: counted below anyway */
    if (sc.held == x)
        sc.held = NULL;
    closed_common(x, x->replaced, "server on_closed");
}

static void sv_on_read(atoll_conn *c, void *u)
{
    sv_read_impl(c, u, false);
}
static void sv_on_write(atoll_conn *c, void *u)
{
    sv_write_impl(c, u, false);
}
static void sv_on_read_closed(atoll_conn *c, void *u)
{
    sv_read_closed_impl(c, u, false);
}
static void sv_on_closed(atoll_conn *c, int s, void *u)
{
    sv_closed_impl(c, s, u, false);
}
static void sv_on_read_alt(atoll_conn *c, void *u)
{
    sv_read_impl(c, u, true);
}
static void sv_on_write_alt(atoll_conn *c, void *u)
{
    sv_write_impl(c, u, true);
}
static void sv_on_read_closed_alt(atoll_conn *c, void *u)
{
    sv_read_closed_impl(c, u, true);
}
static void sv_on_closed_alt(atoll_conn *c, int s, void *u)
{
    sv_closed_impl(c, s, u, true);
}

static const atoll_conn_callbacks sv_cb = {
    .on_read = sv_on_read, .on_write = sv_on_write, .on_read_closed = sv_on_read_closed, .on_closed = sv_on_closed};
static const atoll_conn_callbacks sv_cb_alt = {.on_read = sv_on_read_alt,
                                               .on_write = sv_on_write_alt,
                                               .on_read_closed = sv_on_read_closed_alt,
                                               .on_closed = sv_on_closed_alt};

static const atoll_conn_callbacks *alt_table(int side)
{
    return side == 0 ? &sv_cb_alt : &cl_cb_alt;
}

static void srv_on_bound(atoll_server *s, int status, void *user)
{
    (void)user;
    SUP_CHECK(status == 0, "on_bound: %s", atoll_error_name(status));
    if (status == 0) {
        sc.srv_magic = MAGIC_LIVE;
        sc.server = s;
        atomic_store(&sc.port, atoll_server_port(s));
        atomic_fetch_add(&sc.srv_bound_ok, 1);
        int rc = atoll_server_start(s);
        SUP_CHECK(rc == 0, "server_start: %s", atoll_error_name(rc));
        if (take_fire(CB_BOUND))
            perform(CB_BOUND, atoll_server_isolate(s), NULL, s);
    }
    sup_latch_signal(&sc.bound);
}

static void srv_on_connection(atoll_server *s, atoll_conn *c, void *user)
{
    (void)user;
    srv_check("on_connection");
    cx *x = cx_new(c, 0);
    atoll_conn_set_callbacks(c, &sv_cb, x);
    if (sc.hold && !sc.held)
        sc.held = x;
    if (take_fire(CB_CONNECTION))
        perform(CB_CONNECTION, atoll_server_isolate(s), x, s);
    if (atomic_load(&sc.ending) && x->magic == MAGIC_LIVE && !x->detached)
        atoll_conn_close(c);
}

static void srv_on_error(atoll_server *s, const atoll_server_error *e, void *user)
{
    (void)user;
    (void)e;
    srv_check("on_error");
    atomic_fetch_add(&sc.srv_errors, 1);
    if (take_fire(CB_ERROR))
        perform(CB_ERROR, atoll_server_isolate(s), sc.held, s);
    sup_latch_signal(&sc.errors);
}

static void srv_on_closed(atoll_server *s, void *user)
{
    (void)user;
    if (!srv_check("on_closed"))
        return;
    if (sc.in_srv_close)
        atomic_fetch_add(&sc.srv_closed_nested, 1);
    if (take_fire(CB_SRV_CLOSED))
        perform(CB_SRV_CLOSED, atoll_server_isolate(s), sc.held, s);
    sc.srv_magic = MAGIC_DEAD;
    sc.server = NULL;
    atomic_fetch_add(&sc.srv_closed, 1);
    sup_latch_signal(&sc.events);
}

static const atoll_server_callbacks srv_cb = {
    .on_bound = srv_on_bound, .on_connection = srv_on_connection, .on_error = srv_on_error, .on_closed = srv_on_closed};

/* ---- tasks run on the isolates ------------------------------------------ */

typedef struct run_ctx {
    void (*fn)(atoll_isolate *self, void *arg);
    void *arg;
    sup_latch done;
    int status;
} run_ctx;

static void *run_task(atoll_isolate *self, void *arg)
{
    run_ctx *r = arg;
    r->fn(self, r->arg);
    return NULL;
}

static void run_done(int status, void *result, void *user)
{
    run_ctx *r = user;
    (void)result;
    r->status = status;
    sup_latch_signal(&r->done);
}

/* Like sup_run_on, but an isolate that exited (or a stopped runtime) is an
 * answer, not a failure: returns the submit error or the task's status. */
static int try_run_on(uint32_t id, void (*fn)(atoll_isolate *self, void *arg), void *arg)
{
    run_ctx r = {.fn = fn, .arg = arg, .status = 1};
    sup_latch_init(&r.done);
    int rc = atoll_runtime_submit(sc.rt, id, run_task, &r, run_done, &r, NULL);
    if (rc == 0) {
        cr_assert(sup_latch_wait(&r.done, 1, SUP_WAIT_MS), "a task on isolate %u never completed", id);
        rc = r.status;
    }
    sup_latch_destroy(&r.done);
    return rc;
}

static void bind_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    atoll_server_options o;
    atoll_server_options_init(&o);
    atoll_server *out = NULL;
    int rc = atoll_server_bind(self, "127.0.0.1", 0, &o, sc.ctx, &srv_cb, NULL, &out);
    SUP_CHECK(rc == 0, "bind: %s", atoll_error_name(rc));
    if (rc < 0)
        sup_latch_signal(&sc.bound);
}

static void connect_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    atoll_connect_options o = client_opts();
    int rc = atoll_connect(self, "127.0.0.1", atomic_load(&sc.port), &o, client_on_connect, NULL);
    SUP_CHECK(rc == 0, "connect: %s", atoll_error_name(rc));
}

/* The end: close what is still open on this isolate (the server, then its
 * connections). */
static void end_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    uint32_t id = atoll_isolate_id(self);
    if (id == 0 && sc.server && !sc.srv_close_called) {
        sc.srv_close_called = true;
        int rc = atoll_server_close(sc.server);
        SUP_CHECK(rc == 0, "server_close at the end: %s", atoll_error_name(rc));
    }
    while (sc.live[id]) {
        cx *x = sc.live[id];
        cx_unlink(x); /* on_closed finds it unlinked */
        int rc = atoll_conn_close(x->conn);
        SUP_CHECK(rc == 0, "close at the end: %s", atoll_error_name(rc));
    }
}

/* The server's close alone (the trigger of its on_closed). */
static void srv_close_on(atoll_isolate *self, void *arg)
{
    (void)self;
    (void)arg;
    if (sc.server && !sc.srv_close_called) {
        sc.srv_close_called = true;
        int rc = atoll_server_close(sc.server);
        SUP_CHECK(rc == 0, "server_close: %s", atoll_error_name(rc));
    }
}

static void timer_fire(atoll_timer *t, void *user)
{
    (void)t;
    (void)user;
    if (take_fire(CB_TIMER))
        perform(CB_TIMER, atoll_isolate_current(), sc.held, sc.server);
}

static void timer_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    atoll_timer *t;
    int rc = atoll_timer_start(self, 0, 0, timer_fire, NULL, &t);
    SUP_CHECK(rc == 0, "timer_start: %s", atoll_error_name(rc));
}

static void port_msg(atoll_receive_port *port, atoll_message *msg, void *user)
{
    (void)msg;
    (void)user;
    if (take_fire(CB_PORT))
        perform(CB_PORT, atoll_isolate_current(), sc.held, sc.server);
    int rc = atoll_port_close(port);
    SUP_CHECK(rc == 0, "port_close: %s", atoll_error_name(rc));
}

static void port_on(atoll_isolate *self, void *arg)
{
    atoll_send_port *out = arg;
    int rc = atoll_port_open(self, NULL, port_msg, NULL, &sc.port_rx);
    SUP_CHECK(rc == 0, "port_open: %s", atoll_error_name(rc));
    if (rc == 0)
        *out = atoll_port_send_handle(sc.port_rx);
}

static void drain_hook(atoll_isolate *self, void *user)
{
    (void)user;
    if (atoll_isolate_id(self) == 0 && take_fire(CB_DRAIN))
        perform(CB_DRAIN, self, sc.held, sc.server);
    /* What a drain hook is for: close what keeps the isolate alive. */
    atomic_store(&sc.ending, true);
    end_on(self, NULL);
}

static void drain_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    int rc = atoll_isolate_on_drain(self, drain_hook, NULL);
    SUP_CHECK(rc == 0, "on_drain: %s", atoll_error_name(rc));
}

/* ---- the scenario -------------------------------------------------------- */

static bool all_closed(void)
{
    return atomic_load(&sc.closed) == atomic_load(&sc.delivered) - atomic_load(&sc.detached) &&
           atomic_load(&sc.srv_closed) == atomic_load(&sc.srv_bound_ok);
}

static bool wait_all_closed(int timeout_ms)
{
    int64_t end = sup_now_ms() + timeout_ms;
    for (;;) {
        long v = sup_latch_get(&sc.events);
        if (all_closed())
            return true;
        int left = (int)(end - sup_now_ms());
        if (left <= 0)
            return false;
        sup_latch_wait(&sc.events, v + 1, left < 100 ? left : 100);
    }
}

static void run_row(const row *r)
{
    signal(SIGPIPE, SIG_IGN);
    const char *tname = r->tls ? "tls" : "plain";
    cr_log_info("row: %s / %s / %s", cb_names[r->cb], call_names[r->call], tname);
    int baseline = sup_fd_count();
    memset(&sc, 0, sizeof(sc));
    sc.r = *r;
    sc.hold = cb_holds(r->cb);
    sup_latch_init(&sc.action);
    sup_latch_init(&sc.echo);
    sup_latch_init(&sc.bound);
    sup_latch_init(&sc.errors);
    sup_latch_init(&sc.events);
    if (r->tls) {
        sc.ctx = ns_server_ctx();
        cr_assert_not_null(sc.ctx, "%s", sup_first_failure());
    }
    sc.rt = sup_start_n(2);
    if (r->cb == CB_DRAIN) {
        cr_assert_eq(try_run_on(0, drain_on, NULL), 0);
        cr_assert_eq(try_run_on(1, drain_on, NULL), 0);
    }
    cr_assert_eq(try_run_on(0, bind_on, NULL), 0);
    cr_assert(sup_latch_wait(&sc.bound, 1, SUP_WAIT_MS), "on_bound did not run");
    if (!atomic_load(&sc.iso_gone) || r->call == C_EXIT) {
        int rc = try_run_on(1, connect_on, NULL);
        cr_assert(rc == 0 || atomic_load(&sc.iso_gone), "connect task: %s", atoll_error_name(rc));
    }

    /* Trigger the callback under test. */
    if (sc.hold) {
        cr_assert(sup_latch_wait(&sc.echo, 1, SUP_WAIT_MS), "the held connection never got its reply");
        switch (r->cb) {
        case CB_ERROR: {
            int fd = ns_connect(AF_INET, "127.0.0.1", atomic_load(&sc.port));
            cr_assert_geq(fd, 0, "raw connect: %s", strerror(-fd));
            static const char junk[] = "GET / HTTP/1.1\r\nHost: not-tls\r\n\r\n";
            cr_assert_eq(send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(junk) - 1);
            cr_assert(sup_latch_wait(&sc.errors, 1, SUP_WAIT_MS), "on_error did not run");
            close(fd);
            break;
        }
        case CB_SRV_CLOSED:
            cr_assert_eq(try_run_on(0, srv_close_on, NULL), 0);
            break;
        case CB_TIMER:
            cr_assert_eq(try_run_on(0, timer_on, NULL), 0);
            break;
        case CB_PORT: {
            atoll_send_port to = {0};
            cr_assert_eq(try_run_on(0, port_on, &to), 0);
            atoll_message m = {.tag = 1};
            cr_assert_eq(atoll_port_send(sc.rt, to, &m), 0);
            break;
        }
        case CB_DRAIN: {
            /* A connection left open with set_callbacks(NULL) keeps its
             * isolate alive: drain cannot finish then. */
            bool may_time_out = r->call == C_CB_NULL || r->call == C_CONNECT;
            int drc = atoll_runtime_drain(sc.rt, may_time_out ? 2000 : 10000);
            cr_assert(drc == 0 || (drc == ATOLL_E_TIMEDOUT && may_time_out), "drain: %s", atoll_error_name(drc));
            break;
        }
        default:
            break;
        }
    }
    cr_assert(sup_latch_wait(&sc.action, 1, WAIT_ACTION), "[%s / %s / %s] the callback never ran", cb_names[r->cb],
              call_names[r->call], tname);

    /* The end, while the isolates still run: close everything gracefully;
     * every delivered connection and the server must report on_closed. */
    bool graceful = !atomic_load(&sc.iso_gone) && r->cb != CB_DRAIN;
    if (graceful) {
        atomic_store(&sc.ending, true);
        cr_assert_eq(try_run_on(0, end_on, NULL), 0);
        cr_assert_eq(try_run_on(1, end_on, NULL), 0);
        bool ok = wait_all_closed(SUP_WAIT_MS);
        cr_assert(ok,
                  "[%s / %s / %s] after closing everything: on_closed for %ld of %ld connections (%ld detached), "
                  "server on_closed %ld of %ld",
                  cb_names[r->cb], call_names[r->call], tname, atomic_load(&sc.closed), atomic_load(&sc.delivered),
                  atomic_load(&sc.detached), atomic_load(&sc.srv_closed), atomic_load(&sc.srv_bound_ok));
    }
    int stop = atoll_runtime_stop(sc.rt);
    int join = atoll_runtime_join(sc.rt);
    int destroy = atoll_runtime_destroy(sc.rt);
    cr_assert_eq(stop, 0, "stop: %s", atoll_error_name(stop));
    cr_assert_eq(join, 0, "join: %s", atoll_error_name(join));
    cr_assert_eq(destroy, 0, "destroy: %s", atoll_error_name(destroy));
    sup_assert_no_failures();
    cr_assert(all_closed(),
              "[%s / %s / %s] after stop: on_closed for %ld of %ld connections (%ld detached), server on_closed "
              "%ld of %ld",
              cb_names[r->cb], call_names[r->call], tname, atomic_load(&sc.closed), atomic_load(&sc.delivered),
              atomic_load(&sc.detached), atomic_load(&sc.srv_closed), atomic_load(&sc.srv_bound_ok));
    cr_assert_eq(atomic_load(&sc.srv_bound_ok), 1);
    if (atomic_load(&sc.srv_closed_nested))
        cr_log_info("[%s / %s / %s] note: the server's on_closed ran inside atoll_server_close", cb_names[r->cb],
                    call_names[r->call], tname);
    atoll_security_context_release(sc.ctx);
    int fds = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(fds, baseline, "[%s / %s / %s] open descriptors: %d, baseline %d", cb_names[r->cb],
                  call_names[r->call], tname, fds, baseline);
    for (cx *x = atomic_load(&sc.all); x;) {
        cx *next = x->all;
        free(x);
        x = next;
    }
    ASSERT_NO_LEAKS();
}

ParameterizedTestParameters(callbacks, every_call_from_every_callback)
{
    return cr_make_param_array(row, rows, sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(row *r, callbacks, every_call_from_every_callback, .timeout = 60)
{
    run_row(r);
}

/* ======================================================================= */
/* Directed: a TLS peer that resets while the server's writes are blocked */
/* ======================================================================= */

/* Found by test_hammer: a server connection that keeps its write buffer
 * full (on_write writes until a write is short) towards a peer that does
 * not read, then the peer resets. The failed send fails the connection,
 * whose close sends close_notify (wolfSSL_shutdown) while a record of an
 * earlier wolfSSL_write is still pending (WANT_WRITE). */
#define RST_CONNS 8

typedef struct rst_app {
    _Atomic long delivered, closed, writes_short;
    sup_latch closed_latch, short_latch;
} rst_app;

static rst_app rst;

static void rst_fill(atoll_conn *c, bool *first)
{
    static uint8_t chunk[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = atoll_conn_write(c, chunk, sizeof(chunk));
        if (n < (ssize_t)sizeof(chunk)) {
            if (first && !*first) {
                *first = true;
                atomic_fetch_add(&rst.writes_short, 1);
                sup_latch_signal(&rst.short_latch);
            }
            break;
        }
    }
    atoll_conn_set_write_events(c, true);
}

static void rst_on_write(atoll_conn *c, void *user)
{
    rst_fill(c, user);
}

static void rst_on_closed(atoll_conn *c, int status, void *user)
{
    (void)c;
    (void)status;
    free(user);
    atomic_fetch_add(&rst.closed, 1);
    sup_latch_signal(&rst.closed_latch);
}

static void rst_on_connection(atoll_server *s, atoll_conn *c, void *user)
{
    (void)s;
    (void)user;
    bool *first = calloc(1, sizeof(bool));
    atomic_fetch_add(&rst.delivered, 1);
    static const atoll_conn_callbacks cb = {.on_write = rst_on_write, .on_closed = rst_on_closed};
    atoll_conn_set_callbacks(c, &cb, first);
    rst_fill(c, first);
}

static void rst_on_bound(atoll_server *s, int status, void *user)
{
    (void)user;
    SUP_CHECK(status == 0, "bind: %s", atoll_error_name(status));
    if (status == 0) {
        atomic_store(&sc.port, atoll_server_port(s));
        sc.server = s;
        atoll_server_start(s);
    }
    sup_latch_signal(&sc.bound);
}

static void rst_on_srv_closed(atoll_server *s, void *user)
{
    (void)s;
    (void)user;
    sc.server = NULL; /* no pointer of ours may keep a leaked server reachable */
    atomic_fetch_add(&sc.srv_closed, 1);
}

static void rst_bind_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    static const atoll_server_callbacks cb = {
        .on_bound = rst_on_bound, .on_connection = rst_on_connection, .on_closed = rst_on_srv_closed};
    atoll_server *out;
    int rc = atoll_server_bind(self, "127.0.0.1", 0, NULL, sc.ctx, &cb, NULL, &out);
    SUP_CHECK(rc == 0, "bind: %s", atoll_error_name(rc));
}

#include "tls_client.h"

Test(callbacks, tls_peer_reset_while_writes_pending, .timeout = 120)
{
    signal(SIGPIPE, SIG_IGN);
    int baseline = sup_fd_count();
    memset(&sc, 0, sizeof(sc));
    memset(&rst, 0, sizeof(rst));
    sup_latch_init(&sc.bound);
    sup_latch_init(&rst.closed_latch);
    sup_latch_init(&rst.short_latch);
    sc.ctx = ns_server_ctx();
    cr_assert_not_null(sc.ctx);
    sc.rt = sup_start_n(1);
    cr_assert_eq(try_run_on(0, rst_bind_on, NULL), 0);
    cr_assert(sup_latch_wait(&sc.bound, 1, SUP_WAIT_MS));
    /* Raw wolfSSL clients over sockets with a tiny receive buffer, so the
     * server's sends complete partially and its writes queue records. */
    wolfSSL_Init();
    WOLFSSL_CTX *wctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    cr_assert_not_null(wctx);
    wolfSSL_CTX_set_verify(wctx, WOLFSSL_VERIFY_NONE, NULL);
    WOLFSSL *ssl[RST_CONNS];
    int fds_c[RST_CONNS];
    for (int i = 0; i < RST_CONNS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        struct sockaddr_in in = {
            .sin_family = AF_INET, .sin_port = htons(atomic_load(&sc.port)), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert_eq(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0, "connect: %s", strerror(errno));
        ssl[i] = wolfSSL_new(wctx);
        cr_assert_not_null(ssl[i]);
        wolfSSL_set_fd(ssl[i], fd);
        cr_assert_eq(wolfSSL_connect(ssl[i]), WOLFSSL_SUCCESS, "handshake");
        fds_c[i] = fd;
    }
    cr_assert(sup_latch_wait(&rst.short_latch, RST_CONNS, SUP_WAIT_MS), "%ld of %d connections blocked",
              atomic_load(&rst.writes_short), RST_CONNS);
    /* Trickle-read for a while (the server's sends go partial, its on_write
     * refills), then reset each peer (SO_LINGER 0: RST, not FIN). */
    for (int i = 0; i < RST_CONNS; i++) {
        char b[512];
        for (int k = 0; k < 40 + 20 * i; k++)
            if (wolfSSL_read(ssl[i], b, sizeof(b)) <= 0)
                break;
        struct linger lg = {1, 0};
        setsockopt(fds_c[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fds_c[i]);
        wolfSSL_free(ssl[i]);
    }
    wolfSSL_CTX_free(wctx);
    cr_assert(sup_latch_wait(&rst.closed_latch, RST_CONNS, SUP_WAIT_MS), "on_closed for %ld of %d",
              atomic_load(&rst.closed), RST_CONNS);
    sup_shutdown(sc.rt);
    sup_assert_no_failures();
    cr_assert_eq(atomic_load(&sc.srv_closed), 1);
    atoll_security_context_release(sc.ctx);
    tc_thread_cleanup();
    int fds = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(fds, baseline, "open descriptors: %d, baseline %d", fds, baseline);
    ASSERT_NO_LEAKS();
}

/* ======================================================================= */
/* Directed: stop while a TLS handshake is in flight                       */
/* ======================================================================= */

/* Found by test_hammer (LeakSanitizer: the atoll_server allocated in
 * atoll_server_bind): a runtime stopped while a server has a handshake in
 * flight must still free the server. */
static void hs_stats_on(atoll_isolate *self, void *arg)
{
    (void)self;
    atoll_server_stats *st = arg;
    if (sc.server)
        atoll_server_stats_get(sc.server, st);
}

Test(callbacks, stop_during_tls_handshake_frees_server, .timeout = 60)
{
    signal(SIGPIPE, SIG_IGN);
    int baseline = sup_fd_count();
    memset(&sc, 0, sizeof(sc));
    memset(&rst, 0, sizeof(rst));
    sup_latch_init(&sc.bound);
    sc.ctx = ns_server_ctx();
    cr_assert_not_null(sc.ctx);
    sc.rt = sup_start_n(1);
    cr_assert_eq(try_run_on(0, rst_bind_on, NULL), 0);
    cr_assert(sup_latch_wait(&sc.bound, 1, SUP_WAIT_MS));
    /* A TCP client that never sends its ClientHello: the server accepted it
     * and waits in the handshake. */
    int fd = ns_connect(AF_INET, "127.0.0.1", atomic_load(&sc.port));
    cr_assert_geq(fd, 0);
    atoll_server_stats st = {0};
    int64_t end = sup_now_ms() + SUP_WAIT_MS;
    while (st.accepted < 1 && sup_now_ms() < end) {
        cr_assert_eq(try_run_on(0, hs_stats_on, &st), 0);
        if (st.accepted < 1)
            poll(NULL, 0, 5);
    }
    cr_assert_eq(st.accepted, 1, "the server did not accept");
    sup_shutdown(sc.rt); /* the handshake is still in flight */
    close(fd);
    sup_assert_no_failures();
    cr_assert_eq(atomic_load(&sc.srv_closed), 1, "server on_closed at stop");
    cr_assert_null(sc.server);
    atoll_security_context_release(sc.ctx);
    int fds = sup_wait_fd_count(baseline, SUP_WAIT_MS);
    cr_assert_leq(fds, baseline, "open descriptors: %d, baseline %d", fds, baseline);
    ASSERT_NO_LEAKS();
}
