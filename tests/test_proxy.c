/*
 * test_proxy: the PROXY protocol. The header parser and the allow-list on
 * their own (every prefix of a valid header asks for more, every kind of
 * bad header fails with its reason), then servers with proxy_protocol:
 * the application sees the header's address, a source outside the
 * allow-list is refused unread, a missing or malformed header fails, a
 * silent client times out; and a runtime listener keeps its own copy of
 * the option strings for isolates added later.
 */
#include "net_support.h"
#include "runtime/base/cidr.h"
#include "runtime/base/proxy_header.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header: command byte, family byte, then `body` of `len` bytes. */
static size_t v2_header(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, uint16_t len)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len)
        memcpy(out + 16, body, len);
    return 16u + len;
}

static size_t v2_inet(uint8_t *out, const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
    uint8_t body[12];
    inet_pton(AF_INET, src, body);
    inet_pton(AF_INET, dst, body + 4);
    body[8] = (uint8_t)(sport >> 8), body[9] = (uint8_t)sport;
    body[10] = (uint8_t)(dport >> 8), body[11] = (uint8_t)dport;
    return v2_header(out, 0x21, 0x11, body, sizeof(body));
}

static void src_text(const atoll_proxy_header *h, char *text, size_t n, uint16_t *port)
{
    if (h->src.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&h->src;
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)n);
        *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&h->src;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)n);
        *port = ntohs(in6->sin6_port);
    }
}

/* Every strict prefix of a valid header asks for more; the whole parses. */
static void expect_header(const uint8_t *h, size_t len, bool has_source, const char *addr, uint16_t port)
{
    atoll_proxy_header out;
    const char *why = NULL;
    for (size_t k = 0; k < len; k++)
        cr_assert_eq(atoll__proxy_parse(h, k, &out, &why), 0, "prefix %zu of %zu: %s", k, len, why ? why : "");
    /* Bytes after the header (the TLS ClientHello) are not its business. */
    uint8_t more[ATOLL_PROXY_MAX + 8];
    memcpy(more, h, len);
    memcpy(more + len, "\x16\x03\x01", 3);
    cr_assert_eq(atoll__proxy_parse(more, len + 3, &out, &why), (int)len, "%s", why ? why : "");
    cr_assert_eq(out.has_source, has_source);
    if (has_source) {
        char text[64];
        uint16_t p;
        src_text(&out, text, sizeof(text), &p);
        cr_assert_str_eq(text, addr);
        cr_assert_eq(p, port);
    }
}

static void expect_bad(const void *h, size_t len, const char *reason_part)
{
    atoll_proxy_header out;
    const char *why = NULL;
    cr_assert_eq(atoll__proxy_parse(h, len, &out, &why), -1, "accepted: %.*s", (int)len, (const char *)h);
    cr_assert(why && strstr(why, reason_part), "reason '%s' lacks '%s'", why ? why : "", reason_part);
}

Test(proxy, parses_v1_and_v2_and_asks_for_more_until_complete)
{
    const char *v1 = "PROXY TCP4 192.0.2.7 10.0.0.1 40312 443\r\n";
    expect_header((const uint8_t *)v1, strlen(v1), true, "192.0.2.7", 40312);
    const char *v1_6 = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
    expect_header((const uint8_t *)v1_6, strlen(v1_6), true, "2001:db8::1", 65535);
    const char *unknown = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    expect_header((const uint8_t *)unknown, strlen(unknown), false, NULL, 0);
    /* The longest v1 line the specification allows: 107 bytes. */
    char longest[128];
    int n = snprintf(longest, sizeof(longest), "PROXY TCP6 %s %s 65535 65535\r\n",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    cr_assert_eq(n, 104);
    expect_header((const uint8_t *)longest, (size_t)n, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

    uint8_t h[ATOLL_PROXY_MAX];
    size_t len = v2_inet(h, "198.51.100.9", 5555, "10.0.0.1", 443);
    expect_header(h, len, true, "198.51.100.9", 5555);
    uint8_t body6[36 + 7] = {0};
    inet_pton(AF_INET6, "2001:db8::9", body6);
    body6[32] = 0x17, body6[33] = 0x70; /* 6000 */
    memcpy(body6 + 36,
           "\x04\x00\x04"
           "abcd",
           7); /* a TLV: skipped */
    len = v2_header(h, 0x21, 0x21, body6, sizeof(body6));
    expect_header(h, len, true, "2001:db8::9", 6000);
    len = v2_header(h, 0x20, 0x00, NULL, 0); /* LOCAL: a health check */
    expect_header(h, len, false, NULL, 0);
    uint8_t unix_body[216] = {0};
    len = v2_header(h, 0x21, 0x31, unix_body, sizeof(unix_body)); /* UNIX: no internet address */
    expect_header(h, len, false, NULL, 0);
    static uint8_t tlvs[ATOLL_PROXY_V2_BODY_MAX];
    len = v2_header(h, 0x21, 0x00, tlvs, sizeof(tlvs)); /* the largest accepted */
    expect_header(h, len, false, NULL, 0);
}

Test(proxy, refuses_bad_headers_as_early_as_it_can)
{
    /* A TLS ClientHello or an HTTP request: refused at their first byte. */
    expect_bad("\x16", 1, "missing");
    expect_bad("GET / HTTP/1.1\r\n", 16, "missing");
    expect_bad("PROXX", 5, "missing");
    expect_bad("\r\n\r\n\x00\r\nQUIX", 11, "missing");
    expect_bad("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", 32, "not TCP4");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", 30, "5 fields");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", 34, "5 fields");
    expect_bad("PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", 33, "5 fields");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", 33, "5 fields");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", 33, "port");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", 36, "port");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", 33, "port");
    expect_bad("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", 28, "address");
    expect_bad("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 28, "address");
    expect_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", 32, "CRLF");
    expect_bad("PROXY TCP4 1.2.3.4\n", 19, "control byte");
    char line[ATOLL_PROXY_V1_MAX + 1];
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY ", 6);
    expect_bad(line, ATOLL_PROXY_V1_MAX, "longer than 107");
    line[ATOLL_PROXY_V1_MAX - 1] = '\r'; /* CR at 106: 108 bytes with the LF */
    expect_bad(line, ATOLL_PROXY_V1_MAX, "longer than 107");

    uint8_t h[ATOLL_PROXY_MAX + 16];
    uint8_t body[12] = {0};
    size_t len = v2_header(h, 0x11, 0x11, body, sizeof(body));
    expect_bad(h, len, "version");
    len = v2_header(h, 0x22, 0x11, body, sizeof(body));
    expect_bad(h, len, "neither LOCAL nor PROXY");
    len = v2_header(h, 0x21, 0x12, body, sizeof(body));
    expect_bad(h, len, "datagram");
    len = v2_header(h, 0x21, 0x41, body, sizeof(body));
    expect_bad(h, len, "unknown");
    len = v2_header(h, 0x21, 0x11, body, 11);
    expect_bad(h, len, "too short for IPv4");
    len = v2_header(h, 0x21, 0x21, body, 12);
    expect_bad(h, len, "too short for IPv6");
    /* Oversized: refused from its 16 fixed bytes, before the body comes. */
    v2_header(h, 0x21, 0x11, NULL, 0);
    h[14] = (uint8_t)((ATOLL_PROXY_V2_BODY_MAX + 1) >> 8);
    h[15] = (uint8_t)(ATOLL_PROXY_V2_BODY_MAX + 1);
    expect_bad(h, 16, "longer than 16 + 2048");
}

static struct sockaddr_storage sa(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
        in6->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;
        in->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return ss;
}

static bool in_list(const char *list, const char *addr)
{
    atoll_cidr *c;
    size_t n;
    cr_assert_eq(atoll__cidr_list_parse(list, &c, &n), 0, "%s", list);
    struct sockaddr_storage ss = sa(addr);
    bool r = atoll__cidr_list_match(c, n, &ss);
    free(c);
    return r;
}

Test(proxy, allow_lists_parse_and_match)
{
    cr_assert(in_list("127.0.0.0/8,::1/128", "127.200.0.1"));
    cr_assert(in_list("127.0.0.0/8,::1/128", "::1"));
    cr_assert_not(in_list("127.0.0.0/8,::1/128", "128.0.0.1"));
    cr_assert_not(in_list("127.0.0.0/8,::1/128", "::2"));
    cr_assert(in_list("127.0.0.0/8", "::ffff:127.0.0.9"), "an IPv4-mapped peer matches IPv4 networks");
    cr_assert(in_list(" 10.1.2.3/8 , 192.168.0.0/23", "10.255.255.255"), "host bits ignored, blanks allowed");
    cr_assert(in_list("192.168.0.0/23", "192.168.1.255"));
    cr_assert_not(in_list("192.168.0.0/23", "192.168.2.0"));
    cr_assert(in_list("10.0.0.5", "10.0.0.5"));
    cr_assert_not(in_list("10.0.0.5", "10.0.0.4"));
    cr_assert(in_list("0.0.0.0/0", "203.0.113.1"));
    cr_assert_not(in_list("0.0.0.0/0", "2001:db8::1"));
    cr_assert(in_list("2001:db8::/33", "2001:db8:7fff::1"));
    cr_assert_not(in_list("2001:db8::/33", "2001:db8:8000::1"));
    const char *bad[] = {"",          ",",           "10.0.0.0/8,", "10.0.0.0/33",  "::/129",
                         "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-1", "host.example", "10.0.0.0/8/8",
                         "1.2.3",     "fe80::1%eth0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        atoll_cidr *c = NULL;
        size_t n = 0;
        cr_assert_eq(atoll__cidr_list_parse(bad[i], &c, &n), -EINVAL, "'%s' accepted", bad[i]);
    }
}

/* ---- servers with proxy_protocol --------------------------------------- */

static void wait_errors(ns_server *s, long n)
{
    cr_assert(sup_latch_wait(&s->errored, n, SUP_WAIT_MS), "no error %ld reported", n);
}

/* Sends `hdr` and then `data`, expects `data` echoed back. */
static void echo_through(uint16_t port, const void *hdr, size_t hdr_len, const char *data)
{
    int fd = ns_connect(AF_INET, "127.0.0.1", port);
    cr_assert_geq(fd, 0);
    /* Header and data in one segment: the header's end is found inside. */
    char buf[256];
    memcpy(buf, hdr, hdr_len);
    memcpy(buf + hdr_len, data, strlen(data));
    cr_assert_eq(send(fd, buf, hdr_len + strlen(data), MSG_NOSIGNAL), (ssize_t)(hdr_len + strlen(data)));
    size_t got = 0;
    while (got < strlen(data)) {
        ssize_t n = ns_recv(fd, buf + got, sizeof(buf) - got);
        cr_assert_gt(n, 0, "echo ended after %zu bytes", got);
        got += (size_t)n;
    }
    cr_assert_eq(memcmp(buf, data, strlen(data)), 0);
    close(fd);
}

Test(proxy, plain_server_sees_the_header_address_and_refuses_bad_ones, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.echo = true;
    app.opts.proxy_protocol = true;
    app.opts.handshake_timeout_ms = 300;
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);

    const char *v1 = "PROXY TCP4 192.0.2.7 10.0.0.1 40312 443\r\n";
    echo_through(s.port, v1, strlen(v1), "hello");
    cr_assert_str_eq(s.last_peer, "192.0.2.7");
    cr_assert_eq(atomic_load(&s.last_peer_port), 40312);
    uint8_t h[64];
    size_t len = v2_inet(h, "198.51.100.9", 5555, "10.0.0.1", 443);
    echo_through(s.port, h, len, "world");
    cr_assert_str_eq(s.last_peer, "198.51.100.9");
    cr_assert_eq(atomic_load(&s.last_peer_port), 5555);
    len = v2_header(h, 0x20, 0x00, NULL, 0); /* LOCAL keeps the real peer */
    echo_through(s.port, h, len, "local");
    cr_assert_str_eq(s.last_peer, "127.0.0.1");
    cr_assert_eq(atomic_load(&s.errors), 0);

    /* Header, data and FIN at once: the data is still delivered (and
     * echoed), then the end of input. */
    int fin_fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_geq(fin_fd, 0);
    const char *with_fin = "PROXY TCP4 192.0.2.8 10.0.0.1 1234 443\r\nbye";
    cr_assert_eq(send(fin_fd, with_fin, strlen(with_fin), MSG_NOSIGNAL), (ssize_t)strlen(with_fin));
    cr_assert_eq(shutdown(fin_fd, SHUT_WR), 0);
    char got[16];
    size_t n = 0;
    ssize_t r;
    while ((r = ns_recv(fin_fd, got + n, sizeof(got) - n)) > 0)
        n += (size_t)r;
    cr_assert_eq(n, 3, "echoed %zu bytes", n);
    cr_assert_eq(memcmp(got, "bye", 3), 0);
    close(fin_fd);
    cr_assert_str_eq(s.last_peer, "192.0.2.8");
    cr_assert_eq(atomic_load(&s.errors), 0);

    /* Missing (a client that speaks first without one), malformed, and a
     * client that sends nothing: one error each, the connection closed. */
    const char *sends[] = {"GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", NULL};
    int want[] = {ATOLL_E_PROXY_HEADER, ATOLL_E_PROXY_HEADER, ATOLL_E_HANDSHAKE_TIMEOUT};
    const char *reason[] = {"missing", "5 fields", "PROXY"};
    for (int k = 0; k < 3; k++) {
        int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
        cr_assert_geq(fd, 0);
        if (sends[k])
            send(fd, sends[k], strlen(sends[k]), MSG_NOSIGNAL);
        char b[64];
        cr_assert_leq(ns_recv(fd, b, sizeof(b)), 0, "case %d: the server closes", k);
        close(fd);
        wait_errors(&s, k + 1);
        cr_assert_eq(atomic_load(&s.last_error), want[k], "case %d: %s", k,
                     atoll_error_name(atomic_load(&s.last_error)));
        cr_assert(strstr(s.last_reason, reason[k]), "case %d: reason '%s'", k, s.last_reason);
    }
    cr_assert_eq(atomic_load(&s.connections), 4);
    sup_shutdown(rt);
}

Test(proxy, source_outside_the_allow_list_is_refused_unread, .timeout = 60)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.echo = true;
    app.opts.proxy_protocol = true;
    app.opts.proxy_allow = "10.0.0.0/8, ::1";
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    int fd = ns_connect(AF_INET, "127.0.0.1", s.port);
    cr_assert_geq(fd, 0);
    const char *v1 = "PROXY TCP4 192.0.2.7 10.0.0.1 40312 443\r\nhello";
    send(fd, v1, strlen(v1), MSG_NOSIGNAL);
    char b[64];
    cr_assert_leq(ns_recv(fd, b, sizeof(b)), 0, "refused");
    close(fd);
    wait_errors(&s, 1);
    cr_assert_eq(atomic_load(&s.last_error), ATOLL_E_PROXY_DENIED, "%s", atoll_error_name(atomic_load(&s.last_error)));
    cr_assert_str_eq(s.last_error_peer.text, "127.0.0.1", "the error names the real source");
    cr_assert_eq(atomic_load(&s.connections), 0);
    sup_shutdown(rt);
}

struct bad_allow {
    int rc[3];
};

static void noop_conn(atoll_server *s, atoll_conn *c, void *u)
{
    (void)s;
    (void)u;
    atoll_conn_close(c);
}

static void bind_bad_allow(atoll_isolate *self, void *arg)
{
    struct bad_allow *r = arg;
    atoll_server_callbacks cb = {.on_connection = noop_conn};
    atoll_server_options o;
    atoll_server_options_init(&o);
    atoll_server *s;
    o.proxy_protocol = true;
    o.proxy_allow = "10.0.0.0/40";
    r->rc[0] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    o.proxy_allow = "";
    r->rc[1] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    o.proxy_protocol = false; /* not used without proxy_protocol: not checked */
    r->rc[2] = atoll_server_bind(self, "127.0.0.1", 0, &o, NULL, &cb, NULL, &s);
    if (r->rc[2] == 0)
        atoll_server_close(s);
}

Test(proxy, bind_refuses_a_bad_allow_list, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(1);
    struct bad_allow r;
    cr_assert_eq(sup_run_on(rt, 0, bind_bad_allow, &r), 0);
    cr_assert_eq(r.rc[0], -EINVAL);
    cr_assert_eq(r.rc[1], -EINVAL);
    cr_assert_eq(r.rc[2], 0);
    sup_shutdown(rt);
}

/* The caller's strings may be gone once atoll_runtime_listen returns; an
 * isolate added later binds with the listener's copies (under ASan the
 * old code read freed memory here). */
Test(proxy, listener_keeps_its_own_copy_of_option_strings, .timeout = 60)
{
    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = 1;
    ro.max_isolates = 4;
    atoll_runtime *rt = sup_start(&ro);
    atoll_server_options so;
    atoll_server_options_init(&so);
    char **names = malloc(2 * sizeof(*names));
    names[0] = strdup("x-first");
    names[1] = strdup("http/1.1");
    so.supported_protocols = (const char *const *)names;
    so.supported_protocols_count = 2;
    char *allow = strdup("127.0.0.0/8");
    so.proxy_protocol = true;
    so.proxy_allow = allow;
    atoll_server_callbacks cb = {.on_connection = noop_conn};
    atoll_listener *l;
    cr_assert_eq(atoll_runtime_listen(rt, "127.0.0.1", 0, &so, NULL, &cb, NULL, &l), 0);
    memset(names[0], 0, 7);
    free(names[0]);
    free(names[1]);
    free(names);
    memset(allow, 'z', strlen(allow));
    free(allow);
    uint32_t id;
    cr_assert_eq(atoll_runtime_add_isolate(rt, &id), 0);
    cr_assert_eq(atoll_listener_count(l), 2);
    cr_assert_eq(atoll_listener_close(l), 0);
    sup_shutdown(rt);
}
