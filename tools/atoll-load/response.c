/*
 * tools/atoll-load/response.c: the callbacks of a slot's connection:
 * reading the response (echoed bytes compared with the payload, or an
 * HTTP/1.1 head parsed and the body counted by Content-Length or to the
 * close), flushing the request, and the end of input and close, each
 * counted as an op done or an error of its kind.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load.h"

static bool hdr_has(const char *line, size_t len, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *val = v;
    return true;
}

/* Parses the header in s->hdr[0..end); returns false on a malformed one. */
static bool parse_http_header(slot *s, size_t end)
{
    char *h = s->hdr;
    if (end < 12 || strncmp(h, "HTTP/1.", 7) != 0)
        return false;
    s->http_status = atoi(h + 9);
    bool http10 = h[7] == '0';
    s->keepalive = !http10;
    bool have_len = false;
    uint64_t clen = 0;
    const char *p = memchr(h, '\n', end);
    while (p && (size_t)(p + 1 - h) < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', end - (size_t)(line - h));
        if (!eol)
            break;
        size_t len = (size_t)(eol - line);
        if (len && line[len - 1] == '\r')
            len--;
        const char *v;
        if (hdr_has(line, len, "content-length", &v)) {
            char *e;
            clen = strtoull(v, &e, 10);
            if (e == v)
                return false;
            have_len = true;
        } else if (hdr_has(line, len, "connection", &v)) {
            if (!strncasecmp(v, "close", 5))
                s->keepalive = false;
            else if (!strncasecmp(v, "keep-alive", 10))
                s->keepalive = true;
        } else if (hdr_has(line, len, "transfer-encoding", &v)) {
            if (strncasecmp(v, "identity", 8) != 0)
                return false; /* chunked is not supported */
        }
        p = eol;
    }
    if (have_len) {
        s->rs = RS_BODY;
        s->expect = clen;
    } else {
        s->rs = RS_BODY_EOF; /* body until the server closes */
        s->keepalive = false;
    }
    return true;
}

/* Consumes n body bytes; true when the response is complete. */
static bool body_bytes(slot *s, uint64_t n)
{
    if (s->rs == RS_BODY_EOF)
        return false;
    if (n > s->expect)
        return false; /* caller checks the surplus */
    s->expect -= n;
    return s->expect == 0;
}

static void on_read(atoll_conn *c, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    for (;;) {
        if (s->conn != c)
            return;
        ssize_t n;
        if (s->rs == RS_HDR) {
            size_t before = s->hlen;
            n = atoll_conn_read(c, s->hdr + s->hlen, HDR_CAP - 1 - s->hlen);
            if (n <= 0) {
                if (n == 0 && s->hlen >= HDR_CAP - 1)
                    slot_fail(s, EK_HTTP_PARSE, 0);
                return;
            }
            bump(&is->c.bytes, (uint64_t)n);
            s->hlen += (size_t)n;
            s->hdr[s->hlen] = '\0';
            size_t from = before > 3 ? before - 3 : 0;
            char *end = strstr(s->hdr + from, "\r\n\r\n");
            if (!end) {
                if (s->hlen >= HDR_CAP - 1)
                    slot_fail(s, EK_HTTP_PARSE, 0);
                continue;
            }
            size_t hend = (size_t)(end - s->hdr) + 4;
            if (!parse_http_header(s, hend)) {
                slot_fail(s, EK_HTTP_PARSE, 0);
                return;
            }
            uint64_t extra = s->hlen - hend;
            if (s->rs == RS_BODY && extra > s->expect) {
                slot_fail(s, EK_HTTP_PARSE, 0); /* bytes beyond the response */
                return;
            }
            if (s->http_status < 200 || s->http_status > 299) {
                /* Finish reading it first if we can reuse the connection? Simpler: drop it. */
                slot_fail(s, EK_HTTP_STATUS, s->http_status);
                return;
            }
            if (body_bytes(s, extra)) {
                slot_op_done(s);
                return;
            }
            continue;
        }
        size_t want = SCRATCH_CAP;
        if ((s->rs == RS_ECHO || s->rs == RS_BODY) && s->expect < want)
            want = (size_t)s->expect;
        if (s->rs == RS_NONE || want == 0) {
            /* Nothing expected: drain and ignore (a server speaking out of turn). */
            n = atoll_conn_read(c, s->scratch, SCRATCH_CAP);
            if (n > 0) {
                bump(&is->c.bytes, (uint64_t)n);
                continue;
            }
            return;
        }
        n = atoll_conn_read(c, s->scratch, want);
        if (n <= 0)
            return;
        bump(&is->c.bytes, (uint64_t)n);
        if (s->rs == RS_ECHO) {
            if (memcmp(s->scratch, cfg.payload + s->got, (size_t)n) != 0) {
                slot_fail(s, EK_MISMATCH, 0);
                return;
            }
            s->got += (uint64_t)n;
            s->expect -= (uint64_t)n;
            if (s->expect == 0) {
                /* Only accepted bytes can come back: the write is complete too. */
                slot_op_done(s);
                return;
            }
            continue;
        }
        if (body_bytes(s, (uint64_t)n)) {
            slot_op_done(s);
            return;
        }
    }
}

static void on_write(atoll_conn *c, void *user)
{
    slot *s = user;
    if (s->conn != c || s->state != SL_BUSY)
        return;
    slot_flush(s);
}

static void on_read_closed(atoll_conn *c, void *user)
{
    slot *s = user;
    if (s->conn != c)
        return;
    if (s->in_op && s->rs == RS_BODY_EOF) {
        slot_op_done(s); /* the response ends with the connection */
        return;
    }
    if (s->in_op) {
        bool partial = s->rs == RS_BODY || (s->rs == RS_ECHO && s->got > 0) || (s->rs == RS_HDR && s->hlen > 0);
        slot_fail(s, partial ? EK_SHORT_READ : EK_CLOSED, ATOLL_E_CLOSED);
        return;
    }
    /* Closed by the server while held. */
    bool run = !stopping(s->is);
    slot_drop_conn(s);
    if (run) {
        count_error(s->is, EK_CLOSED, ATOLL_E_CLOSED);
        slot_next(s);
    } else {
        set_state(s, SL_IDLE);
    }
}

static void on_closed(atoll_conn *c, int status, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    drop(&is->c.open);
    if (s->conn != c)
        return;
    s->conn = NULL;
    if (is->closing) {
        set_state(s, SL_IDLE);
        return;
    }
    if (s->in_op || !stopping(is)) {
        enum err_kind k = classify(status);
        if (s->in_op && k == EK_CLOSED && (s->rs == RS_BODY || s->got > 0))
            k = EK_SHORT_READ;
        count_error(is, k, status);
        slot_next(s);
        return;
    }
    set_state(s, SL_IDLE);
}

const atoll_conn_callbacks slot_cb = {
    .on_read = on_read, .on_write = on_write, .on_read_closed = on_read_closed, .on_closed = on_closed};
