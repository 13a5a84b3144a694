/*
 * test_drain: draining servers and the runtime, and live scaling (issue 9,
 * "nothing lost"): queued connections are served, not reset; new SYNs
 * during the drain end refused, never established then reset; on_drain once
 * per connection; what is still open at the deadline is closed and counted;
 * isolates added and retired under load lose no exchange.
 */
#include "net_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The application: answers "ping" with "pong" then closes (an exchange);
 * on_drain either closes at once or is ignored. */
typedef struct app {
    bool close_on_drain;
    bool keep_open; /* answer but do not close after the exchange */
    atoll_server *server;
    uint16_t port;
    sup_latch bound, closed, conn_closed;
    _Atomic long delivered, drained, timed_out, exchanges;
    atoll_server_stats final; /* read in the server's on_closed */
    int syn_fd;               /* a connect started on the isolate during the drain */
} app;

static void app_init(app *a)
{
    memset(a, 0, sizeof(*a));
    sup_latch_init(&a->bound);
    sup_latch_init(&a->closed);
    sup_latch_init(&a->conn_closed);
    a->syn_fd = -1;
}

static void app_destroy(app *a)
{
    sup_latch_destroy(&a->bound);
    sup_latch_destroy(&a->closed);
    sup_latch_destroy(&a->conn_closed);
}

static void on_read(atoll_conn *c, void *user)
{
    app *a = user;
    char buf[16];
    ssize_t n = atoll_conn_read(c, buf, sizeof(buf));
    if (n == 4 && memcmp(buf, "ping", 4) == 0) {
        atomic_fetch_add(&a->exchanges, 1);
        atoll_conn_write(c, "pong", 4);
        if (!a->keep_open)
            atoll_conn_close(c);
    }
}

static void on_drain(atoll_conn *c, void *user)
{
    app *a = user;
    atomic_fetch_add(&a->drained, 1);
    if (a->close_on_drain)
        atoll_conn_close(c);
}

static void on_conn_closed(atoll_conn *c, int status, void *user)
{
    app *a = user;
    (void)c;
    if (status == ATOLL_E_TIMEDOUT)
        atomic_fetch_add(&a->timed_out, 1);
    sup_latch_signal(&a->conn_closed);
}

static void on_connection(atoll_server *s, atoll_conn *c, void *user)
{
    app *a = user;
    (void)s;
    atomic_fetch_add(&a->delivered, 1);
    atoll_conn_callbacks cb = {.on_read = on_read, .on_closed = on_conn_closed, .on_drain = on_drain};
    atoll_conn_set_callbacks(c, &cb, a);
}

static void on_bound(atoll_server *s, int status, void *user)
{
    app *a = user;
    if (status == 0)
        a->port = atoll_server_port(s);
    sup_latch_signal(&a->bound);
}

static void on_closed(atoll_server *s, void *user)
{
    app *a = user;
    atoll_server_stats_get(s, &a->final);
    sup_latch_signal(&a->closed);
}

static void bind_on(atoll_isolate *self, void *arg)
{
    app *a = arg;
    atoll_server_callbacks cb = {.on_bound = on_bound, .on_connection = on_connection, .on_closed = on_closed};
    SUP_CHECK(atoll_server_bind(self, "127.0.0.1", 0, NULL, NULL, &cb, a, &a->server) == 0, "bind");
}

static void start_on(atoll_isolate *self, void *arg)
{
    app *a = arg;
    (void)self;
    SUP_CHECK(atoll_server_start(a->server) == 0, "start");
}

static uint64_t drain_timeout_ms = 5000;

static void drain_on(atoll_isolate *self, void *arg)
{
    app *a = arg;
    (void)self;
    SUP_CHECK(atoll_server_drain(a->server, drain_timeout_ms) == 0, "drain");
    SUP_CHECK(atoll_server_drain(a->server, drain_timeout_ms) == ATOLL_E_STATE, "drain twice");
}

/* Right after the drain, on the isolate (so it is surely inside the drain's
 * linger): a non-blocking connect, whose SYN the socket must drop. */
static void drain_then_connect_on(atoll_isolate *self, void *arg)
{
    app *a = arg;
    drain_on(self, arg);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(a->port)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&in, sizeof(in));
    SUP_CHECK(rc < 0 && errno == EINPROGRESS, "non-blocking connect: %d %s", rc, strerror(errno));
    a->syn_fd = fd;
}

static atoll_runtime *bind_app(app *a)
{
    atoll_runtime *rt = sup_start_n(1);
    cr_assert_eq(sup_run_on(rt, 0, bind_on, a), 0);
    cr_assert(sup_latch_wait(&a->bound, 1, SUP_WAIT_MS));
    cr_assert_gt(a->port, 0);
    return rt;
}

/* Connects and sends "ping"; the TCP handshake completes in the kernel's
 * queue whether or not the server accepts. */
static int ping(uint16_t port)
{
    int fd = ns_connect(AF_INET, "127.0.0.1", port);
    cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
    cr_assert_eq(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    return fd;
}

/* "pong", then the end of the stream: a whole exchange, not a reset. */
static void expect_pong_then_eof(int fd, int i)
{
    char buf[8];
    ssize_t n = ns_recv(fd, buf, 4);
    cr_assert_eq(n, 4, "connection %d: %zd (%s)", i, n, n < 0 ? strerror(errno) : "short");
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    n = ns_recv(fd, buf, 1);
    cr_assert_eq(n, 0, "connection %d: end of stream, got %zd (%s)", i, n, n < 0 ? strerror(errno) : "data");
}

/* The server was bound but never started: five connections wait in the
 * kernel's queue. Closing the group's last socket would reset them (Dart's
 * close); draining accepts and serves each. */
Test(drain, queued_connections_are_served_not_reset, .timeout = 60)
{
    app a;
    app_init(&a);
    atoll_runtime *rt = bind_app(&a);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = ping(a.port);
    cr_assert_eq(sup_run_on(rt, 0, drain_on, &a), 0);
    for (int i = 0; i < 5; i++) {
        expect_pong_then_eof(fds[i], i);
        close(fds[i]);
    }
    cr_assert(sup_latch_wait(&a.closed, 1, SUP_WAIT_MS), "server on_closed after the drain");
    cr_assert_eq(atomic_load(&a.delivered), 5);
    cr_assert_eq(atomic_load(&a.exchanges), 5);
    /* Each was delivered during the drain and heard on_drain (the exchange
     * had already closed it or closed it next). */
    cr_assert_leq(atomic_load(&a.drained), 5);
    cr_assert(sup_latch_wait(&a.conn_closed, 5, SUP_WAIT_MS));
    cr_assert_eq(atomic_load(&a.timed_out), 0);
    /* Gone: refused. */
    int fd = ns_connect(AF_INET, "127.0.0.1", a.port);
    cr_assert_eq(fd, -ECONNREFUSED, "after the drain: %s", fd < 0 ? strerror(-fd) : "connected");
    sup_assert_no_failures();
    sup_shutdown(rt);
    app_destroy(&a);
}

/* A SYN that reaches the last socket after the drain began is dropped: the
 * client's retransmission meets the closed port and is refused. It is never
 * established and then reset. */
Test(drain, new_syn_during_drain_is_refused_never_reset, .timeout = 60)
{
    app a;
    app_init(&a);
    atoll_runtime *rt = bind_app(&a);
    cr_assert_eq(sup_run_on(rt, 0, start_on, &a), 0);
    cr_assert_eq(sup_run_on(rt, 0, drain_then_connect_on, &a), 0);
    cr_assert_geq(a.syn_fd, 0);
    cr_assert(sup_latch_wait(&a.closed, 1, SUP_WAIT_MS), "server on_closed after the drain");
    /* The first retransmission comes about one second after the SYN. */
    struct pollfd p = {.fd = a.syn_fd, .events = POLLOUT};
    cr_assert_eq(poll(&p, 1, 10000), 1, "the connect did not complete");
    int err = 0;
    socklen_t len = sizeof(err);
    cr_assert_eq(getsockopt(a.syn_fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
    cr_assert_eq(err, ECONNREFUSED, "connect ended with %d (%s), want ECONNREFUSED", err, strerror(err));
    cr_assert_eq(atomic_load(&a.delivered), 0);
    close(a.syn_fd);
    sup_assert_no_failures();
    sup_shutdown(rt);
    app_destroy(&a);
}

/* Two open connections: one application closes on on_drain (the client sees
 * the end of the stream), the other ignores it and is closed at the
 * deadline, counted in the server's and the isolate's drain_closed. */
Test(drain, on_drain_once_then_the_deadline_closes_and_counts, .timeout = 60)
{
    for (int ignore = 0; ignore < 2; ignore++) {
        app a;
        app_init(&a);
        a.keep_open = true;
        a.close_on_drain = !ignore;
        atoll_runtime *rt = bind_app(&a);
        cr_assert_eq(sup_run_on(rt, 0, start_on, &a), 0);
        int fds[2];
        char buf[8];
        for (int i = 0; i < 2; i++) {
            fds[i] = ping(a.port);
            cr_assert_eq(ns_recv(fds[i], buf, 4), 4);
        }
        drain_timeout_ms = 300;
        int64_t t0 = sup_now_ms();
        cr_assert_eq(sup_run_on(rt, 0, drain_on, &a), 0);
        for (int i = 0; i < 2; i++) {
            ssize_t n = ns_recv(fds[i], buf, 1);
            /* A close with nothing unread ends the stream (FIN). */
            cr_assert_eq(n, 0, "ignore=%d conn %d: %zd %s", ignore, i, n, n < 0 ? strerror(errno) : "");
            close(fds[i]);
        }
        int64_t waited = sup_now_ms() - t0;
        cr_assert(sup_latch_wait(&a.conn_closed, 2, SUP_WAIT_MS));
        cr_assert_eq(atomic_load(&a.drained), 2, "on_drain once per connection");
        cr_assert_eq(atomic_load(&a.timed_out), ignore ? 2 : 0);
        if (ignore)
            cr_assert_geq(waited, 250, "closed before the deadline (%lld ms)", (long long)waited);
        /* The drain is complete (the server's on_closed) once its last
         * connection finished: the final counters are read there. */
        cr_assert(sup_latch_wait(&a.closed, 1, SUP_WAIT_MS));
        cr_assert_eq(a.final.drain_closed, ignore ? 2u : 0u);
        cr_assert_eq(a.final.handshakes, 2u);
        atoll_isolate_stats is;
        cr_assert_eq(atoll_runtime_isolate_stats(rt, 0, &is), 0);
        cr_assert_eq(is.net_drain_closed, ignore ? 2u : 0u);
        drain_timeout_ms = 5000;
        sup_assert_no_failures();
        sup_shutdown(rt);
        app_destroy(&a);
    }
}

/* The runtime drains: every isolate's listener member drains, every
 * connection hears on_drain; with an application that closes, the drain
 * returns 0 well before its timeout; with one that ignores it, at the
 * deadline, everything counted, and the isolates still exit. */
static void listen_conn(atoll_server *s, atoll_conn *c, void *user)
{
    on_connection(s, c, user);
}

Test(drain, runtime_drain_tells_every_connection, .timeout = 60)
{
    for (int ignore = 0; ignore < 2; ignore++) {
        app a;
        app_init(&a);
        a.keep_open = true;
        a.close_on_drain = !ignore;
        atoll_runtime *rt = sup_start_n(2);
        atoll_server_callbacks cb = {.on_connection = listen_conn};
        atoll_listener *l;
        cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &a, &l), 0);
        int fds[8];
        char buf[8];
        for (int i = 0; i < 8; i++) {
            fds[i] = ping(atoll_listener_port(l));
            cr_assert_eq(ns_recv(fds[i], buf, 4), 4);
        }
        int rc = atoll_runtime_drain(rt, ignore ? 300 : 10000);
        cr_assert_eq(rc, 0, "ignore=%d: drain %d %s", ignore, rc, atoll_error_name(rc));
        for (int i = 0; i < 8; i++) {
            cr_assert_eq(ns_recv(fds[i], buf, 1), 0, "conn %d: end of stream", i);
            close(fds[i]);
        }
        cr_assert_eq(atomic_load(&a.drained), 8);
        cr_assert_eq(atomic_load(&a.timed_out), ignore ? 8 : 0);
        uint64_t counted = 0;
        for (uint32_t i = 0; i < 2; i++) {
            atoll_isolate_stats is;
            cr_assert_eq(atoll_runtime_isolate_stats(rt, i, &is), 0);
            counted += is.net_drain_closed;
        }
        cr_assert_eq(counted, ignore ? 8u : 0u);
        cr_assert_eq(atoll_listener_close(l), 0);
        sup_assert_no_failures();
        sup_shutdown(rt);
        app_destroy(&a);
    }
}

/* ---- live scaling --------------------------------------------------------- */

typedef struct per_iso {
    _Atomic long n[SUP_MAX_ISO];
} per_iso;

static void count_conn(atoll_server *s, atoll_conn *c, void *user)
{
    per_iso *p = user;
    (void)s;
    atomic_fetch_add(&p->n[atoll_isolate_id(atoll_isolate_current())], 1);
    atoll_conn_close(c);
}

/* Served and closed: the client reads the end of the stream. */
static bool served(uint16_t port)
{
    int fd = ns_connect(AF_INET, "127.0.0.1", port);
    if (fd < 0)
        return false;
    char b;
    bool ok = ns_recv(fd, &b, 1) == 0;
    close(fd);
    return ok;
}

static void *nothing_task(atoll_isolate *self, void *arg)
{
    (void)self;
    (void)arg;
    return NULL;
}

static void add_from_isolate_on(atoll_isolate *self, void *arg)
{
    int *rc = arg;
    *rc = atoll_runtime_add_isolate(atoll_isolate_runtime(self), NULL);
}

static int spawned_entry_wait(atoll_isolate *self, void *arg);

/* An added isolate joins the listener and the pool; a retired one leaves
 * both and exits; the errors of each misuse. */
Test(scaling, add_joins_and_retire_leaves, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    per_iso p;
    memset(&p, 0, sizeof(p));
    atoll_server_callbacks cb = {.on_connection = count_conn};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &p, &l), 0);
    uint16_t port = atoll_listener_port(l);
    uint32_t id = 0;
    cr_assert_eq(atoll_runtime_add_isolate(rt, &id), 0);
    cr_assert_eq(id, 2);
    cr_assert_eq(atoll_listener_count(l), 3);
    cr_assert_not_null(atoll_listener_server(l, 2));
    for (int i = 0; i < 200; i++)
        cr_assert(served(port), "connection %d", i);
    cr_assert_gt(atomic_load(&p.n[2]), 0, "the added isolate got no connection");
    bool seen2 = false;
    for (int i = 0; i < 30; i++) {
        uint32_t chosen = UINT32_MAX;
        cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_ROUND_ROBIN, nothing_task, NULL, NULL, NULL, &chosen), 0);
        seen2 |= chosen == 2;
    }
    cr_assert(seen2, "the added isolate takes pool work");

    cr_assert_eq(atoll_runtime_retire(rt, 0, 2000), 0);
    atoll_isolate_state st;
    int status = -1;
    cr_assert_eq(atoll_runtime_isolate_status(rt, 0, &st, &status), 0);
    cr_assert_eq(st, ATOLL_ISOLATE_EXITED);
    cr_assert_eq(status, 0);
    cr_assert_eq(atoll_listener_count(l), 2);
    long before0 = atomic_load(&p.n[0]);
    for (int i = 0; i < 200; i++)
        cr_assert(served(port), "after retire, connection %d", i);
    cr_assert_eq(atomic_load(&p.n[0]), before0, "a retired isolate took a connection");
    for (int i = 0; i < 30; i++) {
        uint32_t chosen = UINT32_MAX;
        cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_ROUND_ROBIN, nothing_task, NULL, NULL, NULL, &chosen), 0);
        cr_assert_neq(chosen, 0, "pool work went to the retired isolate");
        cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_LEAST_LOADED, nothing_task, NULL, NULL, NULL, &chosen), 0);
        cr_assert_neq(chosen, 0, "pool work went to the retired isolate");
    }

    /* Misuse. */
    cr_assert_eq(atoll_runtime_retire(rt, 0, 100), ATOLL_E_STATE, "retired twice");
    cr_assert_eq(atoll_runtime_retire(rt, 99, 100), -ENOENT);
    int rc = 0;
    cr_assert_eq(sup_run_on(rt, 1, add_from_isolate_on, &rc), 0);
    cr_assert_eq(rc, ATOLL_E_DEADLOCK);
    uint32_t spawned = sup_spawn(rt, spawned_entry_wait, NULL);
    cr_assert_eq(atoll_runtime_retire(rt, spawned, 100), ATOLL_E_STATE, "a spawned isolate is not in the pool");
    cr_assert_eq(atoll_runtime_retire(rt, 1, 2000), 0);
    cr_assert_eq(atoll_runtime_retire(rt, 2, 2000), ATOLL_E_STATE, "the last pool isolate");
    for (int i = 0; i < 20; i++)
        cr_assert(served(port), "on the last isolate, connection %d", i);
    cr_assert_eq(atoll_listener_close(l), 0);
    sup_shutdown(rt);
}

/* Adding and retiring isolates for long leaves nothing per retired one: its
 * ring, eventfd and listener socket close with it (the descriptor count is
 * back to the baseline after every retire), while the group keeps serving
 * on the members that moved. */
Test(scaling, retired_isolates_leave_no_descriptors, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    per_iso p;
    memset(&p, 0, sizeof(p));
    atoll_server_callbacks cb = {.on_connection = count_conn};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &p, &l), 0);
    uint16_t port = atoll_listener_port(l);
    int baseline = sup_fd_count();
    uint32_t oldest = 0;
    for (int cycle = 0; cycle < 5; cycle++) {
        uint32_t id = 0;
        cr_assert_eq(atoll_runtime_add_isolate(rt, &id), 0);
        cr_assert_gt(sup_fd_count(), baseline, "an added isolate opens its ring and listener");
        for (int i = 0; i < 30; i++) {
            uint32_t chosen;
            cr_assert_eq(atoll_runtime_submit(rt, ATOLL_POOL_ROUND_ROBIN, nothing_task, NULL, NULL, NULL, &chosen), 0);
            cr_assert(served(port), "cycle %d, connection %d", cycle, i);
        }
        cr_assert_eq(atoll_runtime_retire(rt, oldest++, 2000), 0);
        int now = sup_fd_count();
        cr_assert_eq(now, baseline, "cycle %d: %d descriptors after the retire, %d before the add", cycle, now,
                     baseline);
    }
    for (int i = 0; i < 50; i++)
        cr_assert(served(port), "after the cycles, connection %d", i);
    cr_assert_eq(atoll_listener_close(l), 0);
    sup_shutdown(rt);
}

static void ignore_message(atoll_receive_port *port, atoll_message *msg, void *user)
{
    (void)port;
    (void)msg;
    (void)user;
}

/* A spawned isolate that stays (one port open) until stop. */
static int spawned_entry_wait(atoll_isolate *self, void *arg)
{
    (void)arg;
    atoll_receive_port *port;
    return atoll_port_open(self, NULL, ignore_message, NULL, &port);
}

typedef struct churn {
    uint16_t port;
    _Atomic bool stop;
    _Atomic long ok, failed;
} churn;

static void churn_client(int index, void *arg)
{
    churn *c = arg;
    (void)index;
    while (!atomic_load(&c->stop)) {
        int fd = ping(c->port);
        char buf[8];
        bool ok = ns_recv(fd, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0 && ns_recv(fd, buf, 1) == 0;
        close(fd);
        atomic_fetch_add(ok ? &c->ok : &c->failed, 1);
    }
}

static void *scale_cycles(void *arg);

typedef struct scaler {
    atoll_runtime *rt;
    churn *c;
    int cycles;
} scaler;

/* Continuous exchanges from two client threads while isolates are added and
 * the oldest retired, three times: no exchange fails. */
Test(scaling, retire_and_add_under_load_lose_nothing, .timeout = 120)
{
    atoll_runtime *rt = sup_start_n(2);
    app a;
    app_init(&a);
    atoll_server_callbacks cb = {.on_connection = on_connection};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &a, &l), 0);
    churn c = {.port = atoll_listener_port(l)};
    scaler s = {.rt = rt, .c = &c, .cycles = 3};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, scale_cycles, &s), 0);
    sup_host_threads(2, churn_client, &c);
    pthread_join(th, NULL);
    cr_log_info("exchanges %ld, failed %ld", atomic_load(&c.ok), atomic_load(&c.failed));
    cr_assert_eq(atomic_load(&c.failed), 0);
    cr_assert_gt(atomic_load(&c.ok), 100);
    cr_assert_eq(atoll_listener_count(l), 2);
    cr_assert_eq(atoll_listener_close(l), 0);
    sup_assert_no_failures();
    sup_shutdown(rt);
    app_destroy(&a);
}

static void *scale_cycles(void *arg)
{
    scaler *s = arg;
    uint32_t oldest = 0;
    for (int i = 0; i < s->cycles; i++) {
        /* Exchanges keep flowing during each step: wait for some. */
        long base = atomic_load(&s->c->ok);
        while (atomic_load(&s->c->ok) < base + 50 && !atomic_load(&s->c->failed))
            sched_yield();
        uint32_t id;
        int rc = atoll_runtime_add_isolate(s->rt, &id);
        SUP_CHECK(rc == 0, "add: %d", rc);
        base = atomic_load(&s->c->ok);
        while (atomic_load(&s->c->ok) < base + 50 && !atomic_load(&s->c->failed))
            sched_yield();
        rc = atoll_runtime_retire(s->rt, oldest++, 5000);
        SUP_CHECK(rc == 0, "retire: %d", rc);
    }
    long base = atomic_load(&s->c->ok);
    while (atomic_load(&s->c->ok) < base + 50 && !atomic_load(&s->c->failed))
        sched_yield();
    atomic_store(&s->c->stop, true);
    return NULL;
}
