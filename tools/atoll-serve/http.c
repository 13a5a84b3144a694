/*
 * tools/atoll-serve/http.c: HTTP mode: a minimal HTTP/1.1 server on one
 * connection (keep-alive, pipelining, heads up to 8 KiB): parsing request
 * heads, routing / and /bytes/N, and writing responses, a streamed pattern
 * for /bytes/N.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "serve.h"

static uint8_t pattern[PATTERN_LEN];

void http_pattern_init(void)
{
    for (uint32_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = (uint8_t) "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"[i % 64];
}

static bool http_flush(sconn *s)
{
    while (s->head_off < s->head_len) {
        ssize_t w = atoll_conn_write(s->c, s->buf + HEAD_OFF + s->head_off, (size_t)(s->head_len - s->head_off));
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0)
            goto blocked;
        s->head_off = (uint16_t)(s->head_off + w);
    }
    while (s->body_left > 0) {
        size_t po = (size_t)(s->body_pos % PATTERN_LEN);
        size_t want = PATTERN_LEN - po;
        if (want > s->body_left)
            want = (size_t)s->body_left;
        ssize_t w = atoll_conn_write(s->c, pattern + po, want);
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0)
            goto blocked;
        s->body_left -= (uint64_t)w;
        s->body_pos += (uint64_t)w;
    }
    return true;
blocked:
    atoll_conn_set_write_events(s->c, true);
    return false;
}

static void consume(sconn *s, uint32_t n)
{
    if (n >= s->len) {
        s->len = 0;
        return;
    }
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* The Date field (RFC 9110 6.6.1), formatted once a second per isolate. */
static const char *http_date(iso_state *is)
{
    time_t now = time(NULL);
    if (now != is->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(is->date, sizeof(is->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        is->date_at = now;
    }
    return is->date;
}

/* Appends to the response head, cut at its end like snprintf would. */
typedef struct head_buf {
    char *p, *end;
} head_buf;

static void head_put(head_buf *h, const char *s, size_t n)
{
    size_t room = (size_t)(h->end - h->p);
    if (n > room)
        n = room;
    memcpy(h->p, s, n);
    h->p += n;
}

#define HEAD_PUT_LIT(h, lit) head_put((h), (lit), sizeof(lit) - 1)

static void head_put_u64(head_buf *h, uint64_t v)
{
    char digits[20];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    head_put(h, digits + i, sizeof(digits) - i);
}

/* Sets up a response: status line, headers, and a small body copied after
 * them or a streamed pattern body of `stream_len` bytes. Put together by
 * hand, not with snprintf: its format parsing was a few percent of a small
 * request's server CPU (perf, rr under h2load). */
static void http_respond(sconn *s, int status, const char *body, uint64_t stream_len, bool head_only, bool keep_alive,
                         bool http10)
{
    uint64_t clen = body ? strlen(body) : stream_len;
    if (!keep_alive)
        s->close_after = true;
    char *start = (char *)s->buf + HEAD_OFF;
    head_buf h = {start, start + HEAD_MAX - 1};
    switch (status) {
    case 200:
        HEAD_PUT_LIT(&h, "HTTP/1.1 200 OK\r\n");
        break;
    case 404:
        HEAD_PUT_LIT(&h, "HTTP/1.1 404 Not Found\r\n");
        break;
    case 408:
        HEAD_PUT_LIT(&h, "HTTP/1.1 408 Request Timeout\r\n");
        break;
    default:
        HEAD_PUT_LIT(&h, "HTTP/1.1 400 Bad Request\r\n");
        break;
    }
    HEAD_PUT_LIT(&h, "Server: atoll-serve\r\nDate: ");
    const char *date = http_date(s->is);
    head_put(&h, date, strlen(date));
    if (stream_len)
        HEAD_PUT_LIT(&h, "\r\nContent-Type: application/octet-stream\r\nContent-Length: ");
    else
        HEAD_PUT_LIT(&h, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    head_put_u64(&h, clen);
    HEAD_PUT_LIT(&h, "\r\n");
    if (s->close_after)
        HEAD_PUT_LIT(&h, "Connection: close\r\n");
    else if (http10)
        HEAD_PUT_LIT(&h, "Connection: keep-alive\r\n");
    HEAD_PUT_LIT(&h, "\r\n");
    if (body && !head_only)
        head_put(&h, body, strlen(body));
    s->head_off = 0;
    s->head_len = (uint16_t)(h.p - start);
    s->body_left = (stream_len && !head_only) ? stream_len : 0;
    s->body_pos = 0;
    s->responding = true;
}

void http_request_timeout(sconn *s)
{
    s->head_start_ns = 0;
    s->close_after = true;
    s->len = 0;
    s->skip = 0;
    http_respond(s, 408, "request timeout\n", 0, false, false, false);
    http_drive(s);
}

static void http_bad_request(sconn *s)
{
    s->close_after = true;
    s->len = 0; /* nothing after a bad request is read */
    s->skip = 0;
    http_respond(s, 400, "bad request\n", 0, false, false, false);
}

/* Parses one request from the buffer. Returns 1 when a response was set
 * up, 0 when more bytes are needed. */
static int http_parse(sconn *s)
{
    if (s->skip > 0 && s->len > 0) {
        uint32_t n = s->skip < s->len ? (uint32_t)s->skip : s->len;
        consume(s, n);
        s->skip -= n;
    }
    if (s->skip > 0 || s->len == 0)
        return 0;
    const char *b = (const char *)s->buf;
    size_t len = s->len;
    /* Ignore empty lines before a request line (RFC 9112 2.2). */
    size_t start = 0;
    while (start < len && (b[start] == '\r' || b[start] == '\n')) {
        if (b[start] == '\r' && (start + 1 >= len || b[start + 1] != '\n'))
            break;
        start++;
    }
    if (start > 0) {
        consume(s, (uint32_t)start);
        b = (const char *)s->buf;
        len = s->len;
        if (len == 0)
            return 0;
    }
    /* Find the end of the head: an empty line. */
    size_t pos = 0, head_end = 0;
    bool found = false;
    while (pos < len) {
        const char *nl = memchr(b + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t line_len = (size_t)(nl - (b + pos));
        if (line_len > 0 && b[pos + line_len - 1] == '\r')
            line_len--;
        size_t next = (size_t)(nl - b) + 1;
        if (line_len == 0 && pos > 0) {
            head_end = next;
            found = true;
            break;
        }
        pos = next;
    }
    if (!found) {
        if (len >= REQ_MAX) {
            http_bad_request(s); /* head too large */
            return 1;
        }
        if (!s->head_start_ns)
            s->head_start_ns = mono_ns(); /* the header timeout runs from here */
        return 0;
    }
    s->head_start_ns = 0;
    /* Request line. */
    const char *line = b;
    const char *nl = memchr(line, '\n', head_end);
    size_t ll = (size_t)(nl - line);
    if (ll > 0 && line[ll - 1] == '\r')
        ll--;
    const char *sp1 = memchr(line, ' ', ll);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', ll - (size_t)(sp2 + 1 - line))) {
        http_bad_request(s);
        return 1;
    }
    const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - target), vlen = ll - (size_t)(version - line);
    bool http10;
    if (vlen == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
        http10 = false;
    else if (vlen == 8 && memcmp(version, "HTTP/1.0", 8) == 0)
        http10 = true;
    else {
        http_bad_request(s);
        return 1;
    }
    bool head_only;
    if (mlen == 3 && memcmp(method, "GET", 3) == 0)
        head_only = false;
    else if (mlen == 4 && memcmp(method, "HEAD", 4) == 0)
        head_only = true;
    else {
        http_bad_request(s);
        return 1;
    }
    /* absolute-form (RFC 9112 3.2.2): a server accepts it; the path is
     * what follows the authority ("/" when nothing does). */
    if (tlen > 7 && (token_eq(target, 7, "http://") || (tlen > 8 && token_eq(target, 8, "https://")))) {
        size_t skip = target[4] == ':' ? 7 : 8;
        const char *path = memchr(target + skip, '/', tlen - skip);
        const char *qm = memchr(target + skip, '?', tlen - skip);
        if (!path || (qm && qm < path)) {
            target = "/";
            tlen = 1;
        } else {
            tlen -= (size_t)(path - target);
            target = path;
        }
    }
    if (tlen == 0 || target[0] != '/') {
        http_bad_request(s);
        return 1;
    }
    /* Header fields. */
    bool keep_alive = !http10, saw_cl = false;
    unsigned hosts = 0;
    uint64_t content_length = 0;
    pos = (size_t)(nl - b) + 1;
    while (pos < head_end) {
        const char *l = b + pos;
        const char *e = memchr(l, '\n', head_end - pos);
        size_t n = (size_t)(e - l);
        pos = (size_t)(e - b) + 1;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the empty line */
        const char *colon = memchr(l, ':', n);
        if (l[0] == ' ' || l[0] == '\t' || !colon || colon == l || memchr(l, ' ', (size_t)(colon - l)) ||
            memchr(l, '\t', (size_t)(colon - l))) {
            http_bad_request(s);
            return 1;
        }
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1;
        size_t vl = n - nlen - 1;
        if (memchr(v, '\0', vl)) { /* RFC 9110 5.5: NUL in a field value */
            http_bad_request(s);
            return 1;
        }
        trim(&v, &vl);
        if (token_eq(l, nlen, "host"))
            hosts++;
        if (token_eq(l, nlen, "connection")) {
            /* A comma-separated token list. */
            size_t i = 0;
            while (i <= vl) {
                size_t j = i;
                while (j < vl && v[j] != ',')
                    j++;
                const char *t = v + i;
                size_t tl = j - i;
                trim(&t, &tl);
                if (token_eq(t, tl, "close"))
                    keep_alive = false;
                else if (token_eq(t, tl, "keep-alive") && http10)
                    keep_alive = true;
                i = j + 1;
            }
        } else if (token_eq(l, nlen, "content-length")) {
            uint64_t cl = 0;
            if (vl == 0 || vl > 18) {
                http_bad_request(s);
                return 1;
            }
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    http_bad_request(s);
                    return 1;
                }
                cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
            if (saw_cl && cl != content_length) {
                http_bad_request(s);
                return 1;
            }
            saw_cl = true;
            content_length = cl;
        } else if (token_eq(l, nlen, "transfer-encoding")) {
            http_bad_request(s); /* request bodies in chunks: not supported */
            return 1;
        }
    }
    /* RFC 9112 3.2: no Host in HTTP/1.1, or more than one in any: 400. */
    if (hosts > 1 || (hosts == 0 && !http10)) {
        http_bad_request(s);
        return 1;
    }
    /* Route (the query string is ignored). */
    size_t plen = tlen;
    const char *q = memchr(target, '?', tlen);
    if (q)
        plen = (size_t)(q - target);
    int status = 404;
    const char *body = "not found\n";
    uint64_t stream = 0;
    char whoami[INET6_ADDRSTRLEN + 8];
    if (plen == 1) {
        status = 200;
        body = "hello\n";
    } else if (plen == 7 && memcmp(target, "/whoami", 7) == 0) {
        /* The peer as the application sees it: the client's own address
         * behind a balancer that sends a PROXY header. */
        uint16_t port = 0;
        const atoll_address *peer = atoll_conn_remote_address(s->c, &port);
        snprintf(whoami, sizeof(whoami), "%s %u\n", peer ? peer->text : "?", (unsigned)port);
        status = 200;
        body = whoami;
    } else if (plen > 7 && memcmp(target, "/bytes/", 7) == 0) {
        const char *d = target + 7;
        size_t dl = plen - 7;
        bool digits = dl <= 19;
        uint64_t v = 0;
        for (size_t i = 0; digits && i < dl; i++) {
            if (d[i] < '0' || d[i] > '9')
                digits = false;
            else
                v = v * 10 + (uint64_t)(d[i] - '0');
        }
        if (digits) {
            if (v > BYTES_MAX) {
                http_bad_request(s);
                return 1;
            }
            status = 200;
            body = v == 0 ? "" : NULL;
            stream = v;
        }
    }
    consume(s, (uint32_t)head_end);
    s->skip = content_length;
    if (s->is->draining)
        keep_alive = false;
    http_respond(s, status, body, stream, head_only, keep_alive, http10);
    return 1;
}

void http_drive(sconn *s)
{
    for (;;) {
        if (s->closing)
            return;
        if (s->responding) {
            if (!http_flush(s)) {
                /* Blocked (write event armed) or closed. Pause only when the
                 * peer is sending more meanwhile. */
                if (!s->closing && atoll_conn_available(s->c) > 0)
                    sc_pause(s);
                return;
            }
            s->responding = false;
            s->served++;
            if (s->close_after) {
                sc_close(s);
                return;
            }
        }
        sc_resume(s);
        if (s->buf && http_parse(s) == 1)
            continue;
        if (s->peer_eof) {
            sc_close(s); /* nothing more will come; a partial request is dropped */
            return;
        }
        if (!sc_ensure_block(s)) {
            sc_close(s);
            return;
        }
        ssize_t n = atoll_conn_read(s->c, s->buf + s->len, REQ_MAX - s->len);
        if (n <= 0) {
            sc_release_block_if_idle(s);
            if (sc_drain_idle(s))
                sc_close(s); /* draining and quiet between requests */
            return;
        }
        s->len += (uint32_t)n;
    }
}
