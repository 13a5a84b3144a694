/*
 * test_listen: the listener registry (Dart's socket_bind_test.dart starred
 * cases re-expressed), the listening sockets, and reuseport steering.
 * Plain blocking sockets on loopback from the test thread: a connect()
 * returns after the kernel finished the handshake, and each connection is
 * then accepted (poll with a bound) before the next one, so every count is
 * exact and nothing sleeps.
 */
#include "support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/listen.h"
#include "runtime/base/reuseport_steer.h"

/* Attempts when a port picked for one family turns out held by some other
 * process in the other family (tests run beside other suites). */
#define PORT_TRIES 20

typedef struct srv {
    atoll_listen_member *m;
    int fd;
    uint16_t port;
} srv;

static atoll_listen_request req_of(const char *addr, int port, bool v6_only, bool shared)
{
    atoll_listen_request r;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(atoll_address_parse(addr, &r.address), 0, "parse %s", addr);
    r.port = port;
    r.v6_only = v6_only;
    r.shared = shared;
    return r;
}

static int bind_srv(const char *addr, int port, bool v6_only, bool shared, srv *s)
{
    atoll_listen_request r = req_of(addr, port, v6_only, shared);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    return atoll__listen_bind(&r, &s->m, &s->fd, &s->port);
}

static void must_bind(const char *addr, int port, bool v6_only, bool shared, srv *s)
{
    int rc = bind_srv(addr, port, v6_only, shared, s);
    cr_assert_eq(rc, 0, "bind %s:%d v6only=%d shared=%d: %s", addr, port, v6_only, shared, atoll_error_name(rc));
    cr_assert_geq(s->fd, 0);
    cr_assert_gt(s->port, 0);
}

static void release_all(srv *s, int n)
{
    for (int i = 0; i < n; i++) {
        atoll__listen_release(s[i].m);
        s[i].m = NULL;
    }
}

static socklen_t sockaddr_of(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        return sizeof(*a4);
    }
    cr_assert_eq(inet_pton(AF_INET6, addr, &a6->sin6_addr), 1, "address %s", addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    return sizeof(*a6);
}

/* A socket outside the registry: bound (and listening when `listen_too`),
 * SO_REUSEPORT when asked. Returns the fd or -errno. */
static int foreign_socket(const char *addr, uint16_t port, bool reuseport, bool v6_only, bool listen_too)
{
    struct sockaddr_storage ss;
    socklen_t sl = sockaddr_of(addr, port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1, v6 = v6_only;
    if (reuseport)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    if (ss.ss_family == AF_INET6)
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)), 0);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || (listen_too && listen(fd, 64) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static uint16_t port_of_fd(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Blocking connect; returns the fd or -errno. */
static int client_connect(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sockaddr_of(addr, port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Accepts one connection from whichever of fds[] has it; returns that
 * index (accepted socket in *conn, or closed when conn is NULL), or -1 when
 * nothing arrived within SUP_WAIT_MS. */
static int accept_one(const int *fds, int n, int *conn)
{
    long deadline = now_ms() + SUP_WAIT_MS;
    for (;;) {
        for (int i = 0; i < n; i++) {
            int c = accept4(fds[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                if (conn)
                    *conn = c;
                else
                    close(c);
                return i;
            }
            cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept4: %s", strerror(errno));
        }
        long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p[8];
        cr_assert_leq(n, 8);
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        poll(p, (nfds_t)n, (int)left);
    }
}

/* Connections still queued on fd (accepted and closed). */
static int drain(int fd)
{
    int n = 0;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept4: %s", strerror(errno));
            return n;
        }
        close(c);
        n++;
    }
}

/* `conns` connections to addr:port, each accepted from one of fds[] and
 * counted in counts[]; then every queue must be empty. */
static void spread(const char *addr, uint16_t port, const int *fds, int n, int conns, int *counts)
{
    memset(counts, 0, (size_t)n * sizeof(*counts));
    for (int k = 0; k < conns; k++) {
        int c = client_connect(addr, port);
        cr_assert_geq(c, 0, "connect %s:%u: %s", addr, port, strerror(-c));
        int i = accept_one(fds, n, NULL);
        cr_assert_geq(i, 0, "connection %d never reached any queue", k);
        counts[i]++;
        close(c);
    }
    for (int i = 0; i < n; i++)
        cr_assert_eq(drain(fds[i]), 0, "socket %d has connections nobody counted", i);
}

static void assert_accepts(const char *client_addr, const srv *s)
{
    int c = client_connect(client_addr, s->port);
    cr_assert_geq(c, 0, "connect %s:%u: %s", client_addr, s->port, strerror(-c));
    cr_assert_eq(accept_one(&s->fd, 1, NULL), 0, "no connection on the member");
    close(c);
}

static int reuseport_of(int fd)
{
    int v = -1;
    socklen_t sl = sizeof(v);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &sl), 0);
    return v;
}

/* ---- registry: Dart's socket_bind_test.dart ------------------------------ */

/* testBindShared(host, v6Only): port 0 shared, then that port shared. */
Test(listen, bind_shared_same_port_two_members, .timeout = 60)
{
    static const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++) {
        for (int v6 = 0; v6 < 2; v6++) {
            srv s[2];
            must_bind(hosts[h], 0, v6, true, &s[0]);
            must_bind(hosts[h], s[0].port, v6, true, &s[1]);
            cr_assert_eq(s[1].port, s[0].port);
            cr_assert_neq(s[1].fd, s[0].fd, "each member is its own socket");
            cr_assert_eq(atoll__listen_registry_size(), 1);
            cr_assert_eq(atoll__listen_live_siblings(s[0].m), 1);
            int fds[2] = {s[0].fd, s[1].fd}, counts[2];
            spread(hosts[h], s[0].port, fds, 2, 4, counts);
            cr_assert_eq(counts[0] + counts[1], 4);
            release_all(s, 2);
            cr_assert_eq(atoll__listen_registry_size(), 0);
        }
    }
}

/* negTestBindSharedMismatch: either side shared=false. */
Test(listen, shared_mismatch_leaves_first_member_working, .timeout = 60)
{
    static const bool cases[3][2] = {{false, false}, {true, false}, {false, true}};
    for (int k = 0; k < 3; k++) {
        srv a, b;
        must_bind("127.0.0.1", 0, false, cases[k][0], &a);
        int rc = bind_srv("127.0.0.1", a.port, false, cases[k][1], &b);
        cr_assert_eq(rc, ATOLL_E_SHARED_MISMATCH, "case %d: %s", k, atoll_error_name(rc));
        cr_assert_eq(atoll__listen_registry_size(), 1);
        assert_accepts("127.0.0.1", &a);
        release_all(&a, 1);
    }
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* negTestBindV6OnlyMismatch, for IPv4 (where v6Only changes nothing in the
 * kernel) and IPv6. */
Test(listen, v6only_mismatch_ipv4_and_ipv6, .timeout = 60)
{
    static const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++) {
        for (int v6 = 0; v6 < 2; v6++) {
            srv a, b;
            must_bind(hosts[h], 0, v6, true, &a);
            int rc = bind_srv(hosts[h], a.port, !v6, true, &b);
            cr_assert_eq(rc, ATOLL_E_V6ONLY_MISMATCH, "%s v6only=%d: %s", hosts[h], v6, atoll_error_name(rc));
            /* Dart's order: shared is checked first. */
            rc = bind_srv(hosts[h], a.port, !v6, false, &b);
            cr_assert_eq(rc, ATOLL_E_SHARED_MISMATCH, "%s: %s", hosts[h], atoll_error_name(rc));
            assert_accepts(hosts[h], &a);
            release_all(&a, 1);
        }
    }
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* testBindDifferentAddresses(::, 0.0.0.0, v6Only=true, shared=false), both
 * orders: separate entries, both bind. */
Test(listen, bind_different_addresses_both_orders, .timeout = 60)
{
    static const struct {
        const char *first, *second;
        bool v6_first, v6_second;
    } cases[] = {{"::", "0.0.0.0", true, false}, {"0.0.0.0", "::", false, true}};
    for (int k = 0; k < 2; k++) {
        int rc = -1;
        for (int t = 0; t < PORT_TRIES && rc != 0; t++) {
            srv a, b;
            must_bind(cases[k].first, 0, cases[k].v6_first, false, &a);
            rc = bind_srv(cases[k].second, a.port, cases[k].v6_second, false, &b);
            if (rc == 0) {
                cr_assert_eq(b.port, a.port);
                cr_assert_eq(atoll__listen_registry_size(), 2);
                release_all(&b, 1);
            } else {
                /* Only another process holding the other family's port. */
                cr_assert_eq(rc, -EADDRINUSE, "%s then %s: %s", cases[k].first, cases[k].second, atoll_error_name(rc));
            }
            release_all(&a, 1);
        }
        cr_assert_eq(rc, 0, "no port free for both families in %d tries", PORT_TRIES);
    }
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* Dart C3: shared binds to port 0 never share. */
Test(listen, shared_port_zero_twice_gives_two_ports, .timeout = 30)
{
    srv s[2];
    must_bind("127.0.0.1", 0, false, true, &s[0]);
    must_bind("127.0.0.1", 0, false, true, &s[1]);
    cr_assert_neq(s[0].port, s[1].port);
    cr_assert_eq(atoll__listen_registry_size(), 2);
    cr_assert_eq(atoll__listen_live_siblings(s[0].m), 0);
    release_all(s, 2);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* Dart C9: a socket outside the registry holds the port. */
Test(listen, port_held_by_another_socket_is_eaddrinuse, .timeout = 30)
{
    for (int listening = 0; listening < 2; listening++) {
        int other = foreign_socket("127.0.0.1", 0, false, false, listening);
        cr_assert_geq(other, 0);
        uint16_t port = port_of_fd(other);
        for (int shared = 0; shared < 2; shared++) {
            srv s;
            int rc = bind_srv("127.0.0.1", port, false, shared, &s);
            cr_assert_eq(rc, -EADDRINUSE, "listening=%d shared=%d: %s", listening, shared, atoll_error_name(rc));
        }
        cr_assert_eq(atoll__listen_registry_size(), 0);
        close(other);
    }
}

/* Dart C9 again, where SO_REUSEPORT alone would let us join: a foreign
 * SO_REUSEPORT listener of the same uid already holds the port. */
Test(listen, foreign_reuseport_listener_first_is_eaddrinuse, .timeout = 30)
{
    int other = foreign_socket("127.0.0.1", 0, true, false, true);
    cr_assert_geq(other, 0);
    srv s;
    int rc = bind_srv("127.0.0.1", port_of_fd(other), false, true, &s);
    cr_assert_eq(rc, -EADDRINUSE, "%s", atoll_error_name(rc));
    cr_assert_eq(atoll__listen_registry_size(), 0);
    close(other);
}

Test(listen, non_local_address_is_eaddrnotavail, .timeout = 30)
{
    srv s;
    int rc = bind_srv("192.0.2.1", 0, false, true, &s); /* TEST-NET-1 */
    cr_assert_eq(rc, -EADDRNOTAVAIL, "%s", atoll_error_name(rc));
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

Test(listen, invalid_requests_are_einval, .timeout = 30)
{
    atoll_listen_member *m;
    int fd;
    uint16_t port;
    atoll_listen_request r = req_of("127.0.0.1", 65536, false, true);
    cr_assert_eq(atoll__listen_bind(&r, &m, &fd, &port), -EINVAL);
    r.port = 0;
    r.backlog = -1;
    cr_assert_eq(atoll__listen_bind(&r, &m, &fd, &port), -EINVAL);
    r.backlog = 0;
    r.address.family = AF_UNIX;
    cr_assert_eq(atoll__listen_bind(&r, &m, &fd, &port), -EINVAL);
    cr_assert_eq(atoll__listen_bind(NULL, &m, &fd, &port), -EINVAL);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

Test(listen, so_reuseport_only_when_shared, .timeout = 30)
{
    srv a, b;
    must_bind("127.0.0.1", 0, false, false, &a);
    must_bind("::1", 0, true, true, &b);
    cr_assert_eq(reuseport_of(a.fd), 0, "shared=false never sets SO_REUSEPORT");
    cr_assert_eq(reuseport_of(b.fd), 1, "shared=true sets SO_REUSEPORT");
    int v = -1;
    socklen_t sl = sizeof(v);
    cr_assert_eq(getsockopt(b.fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &sl), 0);
    cr_assert_eq(v, 1);
    release_all(&a, 1);
    release_all(&b, 1);
}

/* Dart E1: backlog 0 is SOMAXCONN (clamped by net.core.somaxconn); a
 * listener's TCP_INFO reports its backlog in tcpi_sacked. */
Test(listen, backlog_zero_is_somaxconn, .timeout = 30)
{
    static const int backlogs[] = {0, 7};
    for (int k = 0; k < 2; k++) {
        atoll_listen_request r = req_of("127.0.0.1", 0, false, true);
        r.backlog = backlogs[k];
        srv s;
        cr_assert_eq(atoll__listen_bind(&r, &s.m, &s.fd, &s.port), 0);
        struct tcp_info ti;
        socklen_t sl = sizeof(ti);
        cr_assert_eq(getsockopt(s.fd, IPPROTO_TCP, TCP_INFO, &ti, &sl), 0);
        unsigned expect = backlogs[k] ? (unsigned)backlogs[k] : SOMAXCONN;
        FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
        unsigned somax = 0;
        if (f) {
            if (fscanf(f, "%u", &somax) != 1)
                somax = 0;
            fclose(f);
        }
        if (somax && expect > somax)
            expect = somax;
        cr_assert_eq(ti.tcpi_sacked, expect, "backlog %d", backlogs[k]);
        assert_accepts("127.0.0.1", &s);
        release_all(&s, 1);
    }
}

/* Synchronous teardown (stricter than Dart C10): right after the last
 * release the same tuple binds with shared=false. */
Test(listen, release_all_removes_entry_synchronously, .timeout = 30)
{
    srv s[2];
    must_bind("127.0.0.1", 0, false, true, &s[0]);
    must_bind("127.0.0.1", s[0].port, false, true, &s[1]);
    uint16_t port = s[0].port;
    cr_assert_eq(atoll__listen_set_state(s[0].m, ATOLL_MEMBER_RETIRED), 0);
    atoll__listen_release(s[0].m);
    cr_assert_eq(atoll__listen_registry_size(), 1, "one member left: entry stays");
    assert_accepts("127.0.0.1", &s[1]);
    atoll__listen_release(s[1].m); /* released without retiring first */
    cr_assert_eq(atoll__listen_registry_size(), 0);
    srv again;
    must_bind("127.0.0.1", port, false, false, &again);
    cr_assert_eq(again.port, port);
    release_all(&again, 1);
}

Test(listen, member_states, .timeout = 30)
{
    srv s[3];
    must_bind("127.0.0.1", 0, false, true, &s[0]);
    for (int i = 1; i < 3; i++)
        must_bind("127.0.0.1", s[0].port, false, true, &s[i]);
    cr_assert_eq(atoll__listen_live_siblings(s[0].m), 2);
    cr_assert_eq(atoll__listen_set_state(s[1].m, ATOLL_MEMBER_ACTIVE), 0);
    cr_assert_eq(atoll__listen_set_state(s[1].m, ATOLL_MEMBER_ACTIVE), 0, "same state again is a no-op");
    cr_assert_eq(atoll__listen_set_state(s[2].m, ATOLL_MEMBER_PAUSED), 0);
    cr_assert_eq(atoll__listen_set_state(s[2].m, (atoll_member_state)9), -EINVAL);
    cr_assert_eq(atoll__listen_set_state(s[2].m, ATOLL_MEMBER_RETIRED), 0);
    cr_assert_eq(atoll__listen_set_state(s[2].m, ATOLL_MEMBER_ACTIVE), ATOLL_E_STATE, "RETIRED is final");
    cr_assert_eq(atoll__listen_set_state(s[2].m, ATOLL_MEMBER_RETIRED), ATOLL_E_STATE);
    cr_assert_eq(atoll__listen_live_siblings(s[0].m), 1);
    cr_assert_eq(atoll__listen_live_siblings(s[2].m), 2);
    release_all(s, 3);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* Binds, state changes and releases from several threads on one group:
 * the registry stays consistent and steering still finds the live member
 * among 100 retired ones that stay open until teardown. */
#define CHURN_THREADS 4
#define CHURN_ROUNDS  25

static void churn_fn(int index, void *arg)
{
    const uint16_t *port = arg;
    for (int k = 0; k < CHURN_ROUNDS; k++) {
        atoll_listen_request r;
        memset(&r, 0, sizeof(r));
        atoll_address_parse("127.0.0.1", &r.address);
        r.port = *port;
        r.shared = true;
        atoll_listen_member *m;
        int fd;
        uint16_t got;
        int rc = atoll__listen_bind(&r, &m, &fd, &got);
        SUP_CHECK(rc == 0, "thread %d bind: %s", index, atoll_error_name(rc));
        if (rc != 0)
            return;
        SUP_CHECK(got == *port, "thread %d: port %u", index, got);
        SUP_CHECK(atoll__listen_set_state(m, ATOLL_MEMBER_ACTIVE) == 0, "thread %d: active", index);
        SUP_CHECK(atoll__listen_live_siblings(m) >= 1, "thread %d: the test's member is live", index);
        SUP_CHECK(atoll__listen_set_state(m, ATOLL_MEMBER_RETIRED) == 0, "thread %d: retire", index);
        atoll__listen_release(m);
    }
}

Test(listen, concurrent_binds_and_releases, .timeout = 60)
{
    srv s;
    must_bind("127.0.0.1", 0, false, true, &s);
    cr_assert_eq(atoll__listen_set_state(s.m, ATOLL_MEMBER_ACTIVE), 0);
    uint16_t port = s.port;
    sup_host_threads(CHURN_THREADS, churn_fn, &port);
    sup_assert_no_failures();
    cr_assert_eq(atoll__listen_registry_size(), 1);
    cr_assert_eq(atoll__listen_live_siblings(s.m), 0);
    for (int k = 0; k < 20; k++)
        assert_accepts("127.0.0.1", &s);
    release_all(&s, 1);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* ---- overlapping tuples ------------------------------------------------ */

/* The kernel's behaviour the registry rule answers: with SO_REUSEPORT on
 * both (same uid) Linux accepts overlapping listeners that it refuses
 * without it. */
Test(listen, kernel_accepts_overlap_only_with_reuseport, .timeout = 30)
{
    for (int rp = 0; rp < 2; rp++) {
        int a = foreign_socket("0.0.0.0", 0, rp, false, true);
        cr_assert_geq(a, 0);
        int b = foreign_socket("127.0.0.1", port_of_fd(a), rp, false, true);
        if (rp)
            cr_assert_geq(b, 0, "reuseport: overlap accepted (%s)", strerror(-b));
        else
            cr_assert_eq(b, -EADDRINUSE);
        if (b >= 0)
            close(b);
        close(a);
    }
}

Test(listen, overlapping_tuples_are_eaddrinuse, .timeout = 30)
{
    static const struct {
        const char *first;
        bool v6_first;
        const char *second;
        bool v6_second;
    } cases[] = {
        {"0.0.0.0", false, "127.0.0.1", false},
        {"127.0.0.1", false, "0.0.0.0", false},
        {"::", false, "0.0.0.0", false},
        {"0.0.0.0", false, "::", false},
        {"::", false, "127.0.0.1", false},
        {"::", true, "::1", true},
        {"::1", true, "::", true},
        {"127.0.0.1", false, "::ffff:127.0.0.1", false},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        for (int shared = 0; shared < 2; shared++) {
            srv a, b;
            must_bind(cases[k].first, 0, cases[k].v6_first, shared, &a);
            int rc = bind_srv(cases[k].second, a.port, cases[k].v6_second, shared, &b);
            cr_assert_eq(rc, -EADDRINUSE, "%s then %s shared=%d: %s", cases[k].first, cases[k].second, shared,
                         atoll_error_name(rc));
            cr_assert_eq(atoll__listen_registry_size(), 1);
            release_all(&a, 1);
        }
    }
}

/* ---- dual stack (Dart D2, D3) -------------------------------------------- */

Test(listen, dual_stack_accepts_ipv4_as_mapped, .timeout = 30)
{
    srv s;
    must_bind("::", 0, false, true, &s);
    int c = client_connect("127.0.0.1", s.port);
    cr_assert_geq(c, 0, "%s", strerror(-c));
    int conn = -1;
    cr_assert_eq(accept_one(&s.fd, 1, &conn), 0);
    struct sockaddr_in6 peer;
    socklen_t sl = sizeof(peer);
    cr_assert_eq(getpeername(conn, (struct sockaddr *)&peer, &sl), 0);
    cr_assert_eq(peer.sin6_family, AF_INET6);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof(text));
    cr_assert_str_eq(text, "::ffff:127.0.0.1");
    close(conn);
    close(c);
    release_all(&s, 1);
}

/* A server on `server_addr`; a client of the other family is refused. The
 * other family's port is held (bound, not listening) by a blocker so no
 * unrelated listener can answer. */
static void assert_other_family_refused(const char *server_addr, bool v6_only, const char *client_addr,
                                        bool blocker_v6only)
{
    for (int t = 0; t < PORT_TRIES; t++) {
        srv s;
        must_bind(server_addr, 0, v6_only, true, &s);
        int blocker = foreign_socket(client_addr, s.port, false, blocker_v6only, false);
        if (blocker < 0) {
            release_all(&s, 1);
            continue;
        }
        int c = client_connect(client_addr, s.port);
        cr_assert_eq(c, -ECONNREFUSED, "%s client to %s v6only=%d: %s", client_addr, server_addr, v6_only,
                     c < 0 ? strerror(-c) : "connected");
        cr_assert_eq(drain(s.fd), 0);
        close(blocker);
        release_all(&s, 1);
        return;
    }
    cr_assert_fail("no port free in both families in %d tries", PORT_TRIES);
}

Test(listen, v6only_refuses_ipv4_client, .timeout = 30)
{
    assert_other_family_refused("::", true, "127.0.0.1", false);
}

Test(listen, ipv4_server_refuses_ipv6_client, .timeout = 30)
{
    assert_other_family_refused("127.0.0.1", false, "::1", true);
}

/* ---- steering ------------------------------------------------------------ */

static void group_of(const char *addr, bool v6_only, srv *s, int n, int *fds)
{
    must_bind(addr, 0, v6_only, true, &s[0]);
    for (int i = 1; i < n; i++)
        must_bind(addr, s[0].port, v6_only, true, &s[i]);
    for (int i = 0; i < n; i++)
        fds[i] = s[i].fd;
}

static void set_states(srv *s, const atoll_member_state *st, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(atoll__listen_set_state(s[i].m, st[i]), 0, "member %d", i);
}

Test(listen, steer_bound_members_never_retired, .timeout = 60)
{
    srv s[3];
    int fds[3], counts[3];
    group_of("127.0.0.1", false, s, 3, fds);
    spread("127.0.0.1", s[0].port, fds, 3, 30, counts);
    cr_assert_eq(counts[0] + counts[1] + counts[2], 30);
    cr_assert_eq(atoll__listen_set_state(s[0].m, ATOLL_MEMBER_RETIRED), 0);
    spread("127.0.0.1", s[0].port, fds, 3, 30, counts);
    cr_assert_eq(counts[0], 0, "the retired member got %d", counts[0]);
    release_all(s, 3);
}

/* Two ACTIVE and one PAUSED, then resumed; for IPv4, IPv6, and a
 * dual-stack group reached by IPv4 clients (IPv4 headers in a v6 group). */
Test(listen, steer_paused_gets_nothing_then_its_share, .timeout = 120)
{
    static const struct {
        const char *bind_addr, *client_addr;
        bool v6_only;
    } cases[] = {{"127.0.0.1", "127.0.0.1", false}, {"::1", "::1", true}, {"::", "127.0.0.1", false}};
    for (int k = 0; k < 3; k++) {
        srv s[3];
        int fds[3], counts[3];
        group_of(cases[k].bind_addr, cases[k].v6_only, s, 3, fds);
        const atoll_member_state st[3] = {ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_PAUSED, ATOLL_MEMBER_ACTIVE};
        set_states(s, st, 3);
        spread(cases[k].client_addr, s[0].port, fds, 3, 60, counts);
        cr_assert_eq(counts[1], 0, "%s: paused member got %d", cases[k].bind_addr, counts[1]);
        cr_assert_gt(counts[0], 0, "%s", cases[k].bind_addr);
        cr_assert_gt(counts[2], 0, "%s", cases[k].bind_addr);
        cr_assert_eq(atoll__listen_set_state(s[1].m, ATOLL_MEMBER_ACTIVE), 0);
        spread(cases[k].client_addr, s[0].port, fds, 3, 60, counts);
        for (int i = 0; i < 3; i++)
            cr_assert_gt(counts[i], 0, "%s: member %d got nothing after resume", cases[k].bind_addr, i);
        release_all(s, 3);
    }
}

Test(listen, steer_retired_gets_nothing, .timeout = 60)
{
    srv s[3];
    int fds[3], counts[3];
    group_of("127.0.0.1", false, s, 3, fds);
    const atoll_member_state st[3] = {ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE};
    set_states(s, st, 3);
    cr_assert_eq(atoll__listen_set_state(s[0].m, ATOLL_MEMBER_RETIRED), 0);
    spread("127.0.0.1", s[0].port, fds, 3, 60, counts);
    cr_assert_eq(counts[0], 0, "retired member got %d", counts[0]);
    cr_assert_gt(counts[1], 0);
    cr_assert_gt(counts[2], 0);
    /* Released: its socket is closed at once (the kernel moves the group's
     * last socket, s[2], into its index, and steering follows), and every
     * connection still reaches one of the two others, both of them. */
    atoll__listen_release(s[0].m);
    s[0].m = NULL;
    cr_assert_eq(fcntl(fds[0], F_GETFD), -1, "the released member's socket is still open");
    cr_assert_eq(errno, EBADF);
    spread("127.0.0.1", s[0].port, fds + 1, 2, 60, counts);
    cr_assert_gt(counts[0], 0, "s[1] got none");
    cr_assert_gt(counts[1], 0, "s[2], moved into index 0, got none");
    release_all(s + 1, 2);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* Members released in the middle, at the tail and last of the ACTIVE ones:
 * each socket closes once another ACTIVE member can take the moved index
 * (the last ACTIVE one at the tail keeps a released socket open until the
 * group ends), and connections always reach a live member. */
Test(listen, released_members_close_while_the_group_lives, .timeout = 60)
{
    srv s[4];
    int fds[4], counts[4];
    group_of("127.0.0.1", false, s, 4, fds);
    const atoll_member_state st[4] = {ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE,
                                      ATOLL_MEMBER_ACTIVE};
    set_states(s, st, 4);
    cr_assert_eq(atoll__listen_set_state(s[1].m, ATOLL_MEMBER_RETIRED), 0);
    atoll__listen_release(s[1].m); /* middle: s[3] moves into index 1 */
    cr_assert_eq(fcntl(fds[1], F_GETFD), -1);
    int live[3] = {fds[0], fds[2], fds[3]};
    spread("127.0.0.1", s[0].port, live, 3, 90, counts);
    for (int i = 0; i < 3; i++)
        cr_assert_gt(counts[i], 0, "live member %d got none", i);
    /* s[2] is now the tail: it goes without moving anyone. */
    cr_assert_eq(atoll__listen_set_state(s[2].m, ATOLL_MEMBER_RETIRED), 0);
    atoll__listen_release(s[2].m);
    cr_assert_eq(fcntl(fds[2], F_GETFD), -1);
    int two[2] = {fds[0], fds[3]};
    spread("127.0.0.1", s[0].port, two, 2, 60, counts);
    cr_assert_gt(counts[0], 0);
    cr_assert_gt(counts[1], 0);
    /* s[0] at index 0 with s[3], the last ACTIVE one, at the tail: kept. */
    cr_assert_eq(atoll__listen_set_state(s[0].m, ATOLL_MEMBER_RETIRED), 0);
    atoll__listen_release(s[0].m);
    cr_assert_neq(fcntl(fds[0], F_GETFD), -1, "closing it would have moved the only live member");
    spread("127.0.0.1", s[0].port, &fds[3], 1, 20, counts);
    cr_assert_eq(counts[0], 20);
    atoll__listen_release(s[3].m);
    cr_assert_eq(atoll__listen_registry_size(), 0);
}

/* A foreign SO_REUSEPORT listener (same uid) that joined last gets none. */
Test(listen, steer_foreign_member_gets_nothing, .timeout = 60)
{
    srv s[3];
    int fds[4], counts[4];
    group_of("127.0.0.1", false, s, 3, fds);
    const atoll_member_state st[3] = {ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE};
    set_states(s, st, 3);
    fds[3] = foreign_socket("127.0.0.1", s[0].port, true, false, true);
    cr_assert_geq(fds[3], 0, "the foreign socket joins the group: %s", strerror(-fds[3]));
    spread("127.0.0.1", s[0].port, fds, 4, 60, counts);
    cr_assert_eq(counts[3], 0, "foreign member got %d", counts[3]);
    cr_assert_eq(counts[0] + counts[1] + counts[2], 60);
    close(fds[3]); /* the group's last index: nobody moves */
    release_all(s, 3);
}

/* A distribution check, not a timing one: 400 connections over 4 ACTIVE
 * members, each within [50, 150] (expected 100). */
Test(listen, steer_spreads_over_active_members, .timeout = 120)
{
    srv s[4];
    int fds[4], counts[4];
    group_of("127.0.0.1", false, s, 4, fds);
    const atoll_member_state st[4] = {ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE, ATOLL_MEMBER_ACTIVE,
                                      ATOLL_MEMBER_ACTIVE};
    set_states(s, st, 4);
    spread("127.0.0.1", s[0].port, fds, 4, 400, counts);
    cr_log_info("spread over 4: %d %d %d %d", counts[0], counts[1], counts[2], counts[3]);
    for (int i = 0; i < 4; i++)
        cr_assert(counts[i] >= 50 && counts[i] <= 150, "member %d got %d of 400", i, counts[i]);
    release_all(s, 4);
}

/* No candidate: out of range (the kernel's hash); one: a constant; the
 * largest table still fits BPF_MAXINSNS. */
Test(listen, steer_program_shapes, .timeout = 30)
{
    struct sock_filter insns[ATOLL_STEER_MAX_INSNS];
    uint32_t idx[ATOLL_STEER_MAX_CANDIDATES + 1];
    for (unsigned i = 0; i <= ATOLL_STEER_MAX_CANDIDATES; i++)
        idx[i] = i;
    cr_assert_eq(atoll__steer_build(idx, 0, NULL, 0, insns, ATOLL_STEER_MAX_INSNS), 1);
    cr_assert_eq(insns[0].k, ATOLL_STEER_NONE);
    cr_assert_eq(atoll__steer_build(idx + 5, 1, NULL, 0, insns, ATOLL_STEER_MAX_INSNS), 1);
    cr_assert_eq(insns[0].k, 5);
    int len = atoll__steer_build(idx, ATOLL_STEER_MAX_CANDIDATES, NULL, 0, insns, ATOLL_STEER_MAX_INSNS);
    cr_assert_gt(len, 0);
    cr_assert_leq(len, BPF_MAXINSNS);
    cr_assert_eq(atoll__steer_build(idx, ATOLL_STEER_MAX_CANDIDATES + 1, NULL, 0, insns, ATOLL_STEER_MAX_INSNS),
                 -E2BIG);
}

/* CPU-local entries come first (the SKF_AD_CPU load, then one compare and
 * return per entry); the largest tables together still fit BPF_MAXINSNS. */
Test(listen, steer_program_cpu_local_shapes, .timeout = 30)
{
    static struct sock_filter insns[ATOLL_STEER_MAX_INSNS];
    static uint32_t idx[ATOLL_STEER_MAX_CANDIDATES];
    static atoll_steer_local local[ATOLL_STEER_MAX_LOCAL + 1];
    for (unsigned i = 0; i < ATOLL_STEER_MAX_CANDIDATES; i++)
        idx[i] = i;
    for (unsigned i = 0; i <= ATOLL_STEER_MAX_LOCAL; i++)
        local[i] = (atoll_steer_local){.cpu = 100 + i, .index = i};
    int len = atoll__steer_build(idx, 2, local, 2, insns, ATOLL_STEER_MAX_INSNS);
    cr_assert_gt(len, 5);
    cr_assert_eq(insns[0].code, BPF_LD | BPF_W | BPF_ABS);
    cr_assert_eq(insns[0].k, (uint32_t)SKF_AD_OFF + SKF_AD_CPU);
    cr_assert_eq(insns[1].k, 100);
    cr_assert_eq(insns[2].k, 0);
    cr_assert_eq(insns[3].k, 101);
    cr_assert_eq(insns[4].k, 1);
    /* One candidate: a constant whatever the CPU. */
    cr_assert_eq(atoll__steer_build(idx + 3, 1, local, 1, insns, ATOLL_STEER_MAX_INSNS), 1);
    cr_assert_eq(insns[0].k, 3);
    len =
        atoll__steer_build(idx, ATOLL_STEER_MAX_CANDIDATES, local, ATOLL_STEER_MAX_LOCAL, insns, ATOLL_STEER_MAX_INSNS);
    cr_assert_gt(len, 0);
    cr_assert_leq(len, BPF_MAXINSNS);
    cr_assert_eq(atoll__steer_build(idx, 2, local, ATOLL_STEER_MAX_LOCAL + 1, insns, ATOLL_STEER_MAX_INSNS), -E2BIG);
}
