/*
 * test_server: plain TCP server sockets on isolates: Dart's bind semantics
 * (arguments, registry errors, invalid binds, listen after connect),
 * echo with half-close, pause/resume and close in a shared group,
 * runtime-wide listen, dual stack.
 */
#include "net_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct args_ctx {
    int rc[16];
};

static void noop_conn(atoll_server *s, atoll_conn *c, void *u)
{
    (void)s;
    (void)u;
    atoll_conn_close(c);
}

static void bind_args_on(atoll_isolate *self, void *arg)
{
    struct args_ctx *c = arg;
    atoll_server_callbacks cb = {.on_connection = noop_conn};
    atoll_server *s;
    atoll_server_options o;
    atoll_server_options_init(&o);
    int i = 0;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 65536, &o, NULL, &cb, NULL, &s);
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", -1, &o, NULL, &cb, NULL, &s);
    o.backlog = -1;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    o.backlog = 65536;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    atoll_server_options_init(&o);
    const char *empty[] = {""};
    o.supported_protocols = empty;
    o.supported_protocols_count = 1;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    char long_name[257];
    memset(long_name, 'a', 256);
    long_name[256] = '\0';
    const char *too_long[] = {long_name};
    o.supported_protocols = too_long;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    /* 2^12 one-byte names encode to 8192 bytes: refused; 2^12 - 1 fit. */
    static const char *many[4096];
    for (int k = 0; k < 4096; k++)
        many[k] = "x";
    o.supported_protocols = many;
    o.supported_protocols_count = 4096;
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    o.supported_protocols_count = 4095;
    c->rc[i] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    if (c->rc[i] == 0)
        atoll_server_close(s);
    i++;
    c->rc[i++] = atoll_server_bind(self, "", 0, NULL, NULL, &cb, NULL, &s);
    c->rc[i++] = atoll_server_bind(self, "127.0.0.1", 0, NULL, NULL, NULL, NULL, &s);
}

Test(server, argument_errors_are_synchronous, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    struct args_ctx c;
    memset(&c, 0x7f, sizeof(c));
    cr_assert_eq(sup_run_on(rt, 0, bind_args_on, &c), 0);
    const char *what[] = {"port 65536",    "port -1",    "backlog -1",         "backlog 65536", "empty ALPN name",
                          "256-byte name", "4096 names", "4095 names (valid)", "empty address", "no callbacks"};
    int want[] = {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, 0, -EINVAL, -EINVAL};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(c.rc[i], want[i], "%s: %d %s", what[i], c.rc[i], atoll_error_name(c.rc[i]));
    atoll_server_callbacks cb = {.on_connection = noop_conn};
    atoll_server *s;
    /* From a host thread: the isolate check comes first. */
    cr_assert_eq(atoll_server_bind(NULL, "127.0.0.1", 0, NULL, NULL, &cb, NULL, &s), ATOLL_E_WRONG_THREAD);
    sup_shutdown(rt);
}

Test(server, bind_port0_then_shared_same_port, .timeout = 30)
{
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++)
        for (int v6 = 0; v6 < 2; v6++) {
            atoll_runtime *rt = sup_start_n(2);
            ns_app app;
            ns_app_init(&app, rt);
            app.opts.shared = true;
            app.opts.v6_only = v6;
            ns_server a, b;
            cr_assert_eq(ns_bind(&app, &a, 0, hosts[h], 0), 0);
            cr_assert_gt(a.port, 0);
            cr_assert_eq(ns_bind(&app, &b, 1, hosts[h], a.port), 0, "shared re-bind of %s v6Only=%d", hosts[h], v6);
            cr_assert_eq(b.port, a.port);
            cr_assert_str_eq(b.address.text, a.address.text);
            /* Both serve. */
            for (int i = 0; i < 20; i++) {
                int fd = ns_connect(h ? AF_INET6 : AF_INET, hosts[h], a.port);
                cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
                int erc = ns_echo_roundtrip(fd, 100);
                cr_assert_eq(erc, 0, "%s v6=%d conn %d: %s", hosts[h], v6, i, strerror(-erc));
                close(fd);
            }
            cr_assert_eq(atomic_load(&a.connections) + atomic_load(&b.connections), 20);
            /* Two shared binds to port 0 do not share (Dart C3). */
            ns_server c;
            cr_assert_eq(ns_bind(&app, &c, 0, hosts[h], 0), 0);
            cr_assert_neq(c.port, a.port);
            sup_shutdown(rt);
        }
}

Test(server, shared_and_v6only_mismatch_errors, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server a, b;
    int combos[3][2] = {{0, 0}, {1, 0}, {0, 1}};
    for (int k = 0; k < 3; k++) {
        app.opts.shared = combos[k][0];
        cr_assert_eq(ns_bind(&app, &a, 0, "127.0.0.1", 0), 0);
        app.opts.shared = combos[k][1];
        int rc = ns_bind(&app, &b, 1, "127.0.0.1", a.port);
        cr_assert_eq(rc, ATOLL_E_SHARED_MISMATCH, "shared %d then %d: %d %s", combos[k][0], combos[k][1], rc,
                     atoll_error_name(rc));
        cr_assert_eq(b.bind_rc, 0, "the mismatch is reported through on_bound, not synchronously");
        cr_assert(strstr(atoll_strerror(rc), "shared flag") != NULL);
        /* The first server is unaffected. */
        int fd = ns_connect(AF_INET, "127.0.0.1", a.port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ns_echo_roundtrip(fd, 10), 0);
        close(fd);
        cr_assert_eq(ns_close(&a), 0);
    }
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++) {
        app.opts.shared = true;
        app.opts.v6_only = false;
        cr_assert_eq(ns_bind(&app, &a, 0, hosts[h], 0), 0);
        app.opts.v6_only = true;
        int rc = ns_bind(&app, &b, 1, hosts[h], a.port);
        cr_assert_eq(rc, ATOLL_E_V6ONLY_MISMATCH, "%s: %d %s", hosts[h], rc, atoll_error_name(rc));
        cr_assert(strstr(atoll_strerror(rc), "v6Only flag") != NULL);
        cr_assert_eq(ns_close(&a), 0);
    }
    sup_shutdown(rt);
}

Test(server, invalid_binds_fail_through_on_bound, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s;
    int rc = ns_bind(&app, &s, 0, "no-such-host.invalid", 0);
    cr_assert_eq(s.bind_rc, 0, "a host name is looked up asynchronously");
    cr_assert_eq(rc, ATOLL_E_LOOKUP, "unknown host: %d %s", rc, atoll_error_name(rc));
    rc = ns_bind(&app, &s, 0, "8.8.8.8", 0);
    cr_assert_eq(rc, -EADDRNOTAVAIL, "8.8.8.8: %d %s", rc, atoll_error_name(rc));
    /* A port held by a socket outside the registry. */
    uint16_t held;
    int fd = ns_bound_socket(&held);
    cr_assert_geq(fd, 0);
    cr_assert_eq(listen(fd, 4), 0);
    rc = ns_bind(&app, &s, 0, "127.0.0.1", held);
    cr_assert_eq(rc, -EADDRINUSE, "port in use: %d %s", rc, atoll_error_name(rc));
    app.opts.shared = true;
    rc = ns_bind(&app, &s, 0, "127.0.0.1", held);
    cr_assert_eq(rc, -EADDRINUSE, "shared never joins a foreign socket without SO_REUSEPORT: %d", rc);
    close(fd);
    /* "localhost" resolves and binds. */
    app.opts.shared = false;
    cr_assert_eq(ns_bind(&app, &s, 0, "localhost", 0), 0);
    cr_assert_str_eq(s.address.host, "localhost");
    sup_shutdown(rt);
}

static void nothing_on(atoll_isolate *self, void *arg)
{
    (void)self;
    (void)arg;
}

Test(server, listen_after_connect_delivers_on_start, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.autostart = false;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_geq(fd, 0, "the kernel queues connections once bound (Dart F1)");
    /* Nothing is accepted before start: one round trip through the isolate. */
    cr_assert_eq(sup_run_on(rt, 0, nothing_on, NULL), 0);
    cr_assert_eq(atomic_load(&s.connections), 0);
    cr_assert_eq(ns_start(&s), 0);
    cr_assert_eq(ns_echo_roundtrip(fd, 1000), 0);
    cr_assert_eq(atomic_load(&s.connections), 1);
    cr_assert_eq(ns_start(&s), ATOLL_E_STATE, "start twice");
    close(fd);
    sup_shutdown(rt);
}

Test(server, echo_half_close_both_ends, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ns_echo_roundtrip(fd, 100000), 0);
    /* Client shuts its send side: the server sees read-closed and shuts
     * its own: the client reads EOF, and the connection closes fully. */
    shutdown(fd, SHUT_WR);
    char b;
    cr_assert_eq(ns_recv(fd, &b, 1), 0, "EOF after the server's shutdown(send)");
    cr_assert(sup_latch_wait(&app.conn_closed, 1, SUP_WAIT_MS), "server side fully closed");
    close(fd);
    sup_shutdown(rt);
}

static void *count_until_failure(void *arg);

Test(server, pause_steers_away_and_resume_takes_share, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(2);
    ns_app app;
    ns_app_init(&app, rt);
    app.opts.shared = true;
    ns_server a, b;
    cr_assert_eq(ns_bind(&app, &a, 0, "127.0.0.1", 0), 0);
    cr_assert_eq(ns_bind(&app, &b, 1, "127.0.0.1", a.port), 0);
    cr_assert_eq(ns_pause(&a), 0);
    for (int i = 0; i < 20; i++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", a.port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ns_echo_roundtrip(fd, 10), 0);
        close(fd);
    }
    cr_assert_eq(atomic_load(&a.connections), 0, "a paused server received connections");
    cr_assert_eq(atomic_load(&b.connections), 20);
    cr_assert_eq(ns_resume(&a), 0);
    for (int i = 0; i < 60; i++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", a.port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ns_echo_roundtrip(fd, 10), 0);
        close(fd);
    }
    cr_assert_gt(atomic_load(&a.connections), 0, "resumed server got no share");
    cr_assert_eq(ns_pause(&b), 0);
    cr_assert_eq(ns_pause(&a), 0);
    /* Everyone paused: the connection waits in a queue (Dart) and is served
     * after a resume. */
    int fd = ns_connect(AF_INET, "127.0.0.1", a.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ns_resume(&a), 0);
    cr_assert_eq(ns_resume(&b), 0);
    cr_assert_eq(ns_echo_roundtrip(fd, 10), 0);
    close(fd);
    (void)count_until_failure;
    sup_shutdown(rt);
}

struct churn {
    uint16_t port;
    int target;
    _Atomic int done, failures, last_errno;
};

static void *count_until_failure(void *arg)
{
    struct churn *c = arg;
    for (int i = 0; i < c->target; i++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", c->port);
        int rc = fd < 0 ? fd : ns_echo_roundtrip(fd, 64);
        if (fd >= 0)
            close(fd);
        if (rc < 0) {
            atomic_fetch_add(&c->failures, 1);
            atomic_store(&c->last_errno, -rc);
        }
        atomic_fetch_add(&c->done, 1);
    }
    return NULL;
}

Test(server, closing_one_shared_server_under_load_loses_nothing, .timeout = 120)
{
    atoll_runtime *rt = sup_start_n(3);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s[3];
    cr_assert_eq(ns_bind_group(&app, s, 3, "127.0.0.1"), 0);
    struct churn c = {.port = s[0].port, .target = 600};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, count_until_failure, &c);
    while (atomic_load(&c.done) < 200)
        sched_yield();
    cr_assert_eq(ns_close(&s[0]), 0, "close under load");
    long before = atomic_load(&s[0].connections);
    while (atomic_load(&c.done) < 400)
        sched_yield();
    cr_assert_eq(ns_close(&s[1]), 0, "second close under load");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&c.failures), 0, "%d clients failed (last errno %d)", atomic_load(&c.failures),
                 atomic_load(&c.last_errno));
    long total = atomic_load(&s[0].connections) + atomic_load(&s[1].connections) + atomic_load(&s[2].connections);
    cr_assert_eq(total, 1200, "every connection served exactly once: %ld", total);
    cr_assert_eq(atomic_load(&s[0].connections), before, "a closed server still received new connections");
    /* The tuple is still served by the last one, then free after its close. */
    cr_assert_eq(ns_close(&s[2]), 0);
    app.opts.shared = false;
    ns_server again;
    cr_assert_eq(ns_bind(&app, &again, 0, "127.0.0.1", s[0].port), 0, "re-bind right after the last close");
    sup_shutdown(rt);
}

struct per_iso {
    _Atomic long n[NS_MAX];
    _Atomic long wrong;
};

static void listen_conn(atoll_server *s, atoll_conn *c, void *user)
{
    struct per_iso *p = user;
    uint32_t id = atoll_isolate_id(atoll_isolate_current());
    if (atoll_server_isolate(s) != atoll_isolate_current() || atoll_conn_isolate(c) != atoll_isolate_current())
        atomic_fetch_add(&p->wrong, 1);
    atomic_fetch_add(&p->n[id], 1);
    atoll_conn_close(c);
}

Test(server, runtime_listen_serves_each_connection_once_per_isolate, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(4);
    struct per_iso p;
    memset(&p, 0, sizeof(p));
    atoll_server_callbacks cb = {.on_connection = listen_conn};
    atoll_listener *l;
    int rc = atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &p, &l);
    cr_assert_eq(rc, 0, "listen: %d %s", rc, atoll_error_name(rc));
    cr_assert_gt(atoll_listener_port(l), 0);
    cr_assert_eq(atoll_listener_count(l), 4);
    for (int i = 0; i < 200; i++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", atoll_listener_port(l));
        cr_assert_geq(fd, 0);
        char b;
        ssize_t r = ns_recv(fd, &b, 1);
        cr_assert_eq(r, 0, "connection %d: served and closed: %zd %s", i, r, r < 0 ? strerror(errno) : "");
        close(fd);
    }
    long total = 0;
    for (int i = 0; i < 4; i++) {
        total += atomic_load(&p.n[i]);
        cr_assert_gt(atomic_load(&p.n[i]), 0, "isolate %d got no connection", i);
    }
    cr_assert_eq(total, 200);
    cr_assert_eq(atomic_load(&p.wrong), 0);
    /* Per-isolate network counters, readable from any thread. */
    uint64_t accepted = 0, delivered = 0;
    for (uint32_t i = 0; i < 4; i++) {
        atoll_isolate_stats st;
        cr_assert_eq(atoll_runtime_isolate_stats(rt, i, &st), 0);
        cr_assert_eq(st.net_handshakes, (uint64_t)atomic_load(&p.n[i]), "isolate %u", i);
        accepted += st.net_accepted;
        delivered += st.net_handshakes;
    }
    cr_assert_eq(accepted, 200);
    cr_assert_eq(delivered, 200);
    uint16_t port = atoll_listener_port(l);
    cr_assert_eq(atoll_listener_close(l), 0);
    int fd = ns_connect(AF_INET, "127.0.0.1", port);
    cr_assert_lt(fd, 0, "closed listener still accepts");
    sup_shutdown(rt);
}

/* The i-th CPU of this thread's affinity mask (the runtime pins pool isolate
 * i the same way), or -1. */
static int allowed_cpu(int i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -1;
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && seen++ == i)
            return cpu;
    return -1;
}

/* On loopback the kernel processes a SYN on the connecting thread's CPU, so
 * with CPU-local steering every connection from a thread pinned to the CPU
 * of isolate k goes to isolate k (with the hash, about half would not). */
Test(server, cpu_steering_gives_each_connection_to_the_isolate_on_its_cpu, .timeout = 60)
{
    int cpus[2] = {allowed_cpu(0), allowed_cpu(1)};
    if (cpus[1] < 0)
        cr_skip_test("needs two CPUs in the affinity mask");
    atoll_runtime_options o;
    sup_options(&o, 2);
    o.steering = ATOLL_STEERING_CPU;
    atoll_runtime *bad;
    cr_assert_eq(atoll_runtime_create(&o, &bad), -EINVAL, "CPU steering without pinning is refused");
    o.pin_cpus = true;
    atoll_runtime *rt = sup_start(&o);
    struct per_iso p;
    memset(&p, 0, sizeof(p));
    atoll_server_callbacks cb = {.on_connection = listen_conn};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, NULL, NULL, &cb, &p, &l), 0);
    cpu_set_t saved;
    cr_assert_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
    for (int k = 0; k < 2; k++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[k], &one);
        cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        for (int i = 0; i < 50; i++) {
            int fd = ns_connect(AF_INET, "127.0.0.1", atoll_listener_port(l));
            cr_assert_geq(fd, 0);
            char b;
            cr_assert_eq(ns_recv(fd, &b, 1), 0, "served and closed");
            close(fd);
        }
        cr_assert_eq(atomic_load(&p.n[k]), 50, "isolate %d (CPU %d) got %ld of 50", k, cpus[k], atomic_load(&p.n[k]));
    }
    cr_assert_eq(sched_setaffinity(0, sizeof(saved), &saved), 0);
    cr_assert_eq(atomic_load(&p.wrong), 0);
    cr_assert_eq(atoll_listener_close(l), 0);
    sup_shutdown(rt);
}

Test(server, dual_stack_and_v6only, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "::", 0), 0);
    int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_geq(fd, 0, "IPv4 client of a dual-stack server");
    cr_assert_eq(ns_echo_roundtrip(fd, 10), 0);
    close(fd);
    cr_assert_eq(ns_close(&s), 0);
    app.opts.v6_only = true;
    cr_assert_eq(ns_bind(&app, &s, 0, "::", 0), 0);
    fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_eq(fd, -ECONNREFUSED, "v6Only refuses IPv4: %d", fd);
    fd = ns_connect(AF_INET6, "::1", s.port);
    cr_assert_geq(fd, 0);
    close(fd);
    app.opts.v6_only = false;
    ns_server v4;
    cr_assert_eq(ns_bind(&app, &v4, 0, "127.0.0.1", 0), 0);
    fd = ns_connect(AF_INET6, "::1", v4.port);
    cr_assert_lt(fd, 0, "an IPv4 server refuses ::1");
    sup_shutdown(rt);
}

struct bulk_client {
    uint16_t port;
    int rc;
};

static void *bulk_echo(void *arg)
{
    struct bulk_client *b = arg;
    int fd = ns_connect(AF_INET, "127.0.0.1", b->port);
    b->rc = fd < 0 ? fd : ns_echo_roundtrip(fd, 300000);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* 8 receive buffers of 1 KiB for 24 connections echoing 300 KB each at
 * once, each allowed to hold all 8, and an application that reads nothing
 * until the ring has run dry once (so it surely does): ENOBUFS is flow
 * control, every byte still arrives in order. */
Test(server, buffer_ring_exhaustion_is_flow_control, .timeout = 120)
{
    atoll_runtime_options o;
    sup_options(&o, 1);
    o.recv_buffers = 8;
    o.recv_buffers_per_conn = 8;
    o.recv_buffer_size = 1024;
    atoll_runtime *rt = sup_start(&o);
    ns_app app;
    ns_app_init(&app, rt);
    app.hold_until_enobufs = true;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    pthread_t th[24];
    struct bulk_client b[24];
    for (int i = 0; i < 24; i++) {
        b[i] = (struct bulk_client){.port = s.port};
        pthread_create(&th[i], NULL, bulk_echo, &b[i]);
    }
    for (int i = 0; i < 24; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(b[i].rc, 0, "client %d: %s", i, strerror(-b[i].rc));
    }
    atoll_isolate_stats st;
    cr_assert_eq(atoll_runtime_isolate_stats(rt, 0, &st), 0);
    cr_log_info("recv_enobufs = %llu", (unsigned long long)st.recv_enobufs);
    cr_assert_gt(st.recv_enobufs, 0, "the ring never ran dry: the test proves nothing");
    sup_shutdown(rt);
}

static _Atomic int stopped_status = 1;

struct reclose {
    uint16_t port;
    sup_latch bound, delivered, closed;
};
static struct reclose g_rc;

static void reclose_on_closed(atoll_conn *c, int status, void *user)
{
    (void)user;
    atomic_store(&stopped_status, status);
    atoll_conn_close(c); /* closing again from on_closed: harmless */
}

static void reclose_conn(atoll_server *s, atoll_conn *c, void *user)
{
    (void)s;
    (void)user;
    static const atoll_conn_callbacks cb = {.on_closed = reclose_on_closed};
    atoll_conn_set_callbacks(c, &cb, NULL);
    sup_latch_signal(&g_rc.delivered);
}

static void reclose_server_closed(atoll_server *s, void *user)
{
    (void)user;
    atoll_server_close(s); /* closing again from on_closed: harmless */
    sup_latch_signal(&g_rc.closed);
}

static void reclose_bound(atoll_server *s, int status, void *user)
{
    (void)user;
    if (status == 0) {
        g_rc.port = atoll_server_port(s);
        atoll_server_start(s);
    }
    sup_latch_signal(&g_rc.bound);
}

static void reclose_bind_on(atoll_isolate *self, void *arg)
{
    (void)arg;
    static const atoll_server_callbacks cb = {
        .on_bound = reclose_bound, .on_connection = reclose_conn, .on_closed = reclose_server_closed};
    atoll_server *s;
    SUP_CHECK(atoll_server_bind(self, "127.0.0.1", 0, NULL, NULL, &cb, NULL, &s) == 0, "bind");
}

/* An isolate stopping with a connection and a server open: on_closed runs
 * with ATOLL_E_STOPPED, and closing again from inside it is harmless (ASan
 * checks there is no double free). */
Test(server, stop_delivers_on_closed_and_tolerates_close_inside, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    sup_latch_init(&g_rc.bound);
    sup_latch_init(&g_rc.delivered);
    sup_latch_init(&g_rc.closed);
    cr_assert_eq(sup_run_on(rt, 0, reclose_bind_on, NULL), 0);
    cr_assert(sup_latch_wait(&g_rc.bound, 1, SUP_WAIT_MS));
    sup_assert_no_failures();
    int fd = ns_connect(AF_INET, "127.0.0.1", g_rc.port);
    cr_assert_geq(fd, 0);
    cr_assert(sup_latch_wait(&g_rc.delivered, 1, SUP_WAIT_MS));
    sup_shutdown(rt);
    cr_assert_eq(atomic_load(&stopped_status), ATOLL_E_STOPPED, "status %d", atomic_load(&stopped_status));
    cr_assert_eq(sup_latch_get(&g_rc.closed), 1, "server on_closed once");
    close(fd);
}
