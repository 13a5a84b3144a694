/*
 * tests/fuzz/fuzz_http.c: libFuzzer target http_parse: atoll-serve's HTTP
 * driver (tools/atoll-serve/http.c, compiled unchanged) on one connection
 * whose peer sends the fuzz input. The connection and atoll-serve's
 * connection helpers are stand-ins defined here, so the target links no
 * runtime: reads hand out the input in chunks, writes are taken up to a
 * per-turn budget and then block (write events), as a slow peer would.
 *
 * Input: byte 0 is the most a read returns (0: all that is asked), the rest
 * is what the peer sends, then EOF.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define WRITE_BUDGET (128u * 1024u) /* bytes a turn's writes may take */
#define MAX_TURNS    64u

struct atoll_conn {
    const uint8_t *in;
    size_t in_len, in_off, chunk;
    size_t budget;
    bool write_events, paused, closed;
    uint8_t sink[PATTERN_LEN]; /* writes are copied here: ASan checks every source byte */
};

/* ---- the connection API http.c calls --------------------------------------- */

size_t atoll_conn_available(const atoll_conn *c)
{
    return c->in_len - c->in_off;
}

ssize_t atoll_conn_read(atoll_conn *c, void *buf, size_t len)
{
    size_t n = c->in_len - c->in_off;
    if (c->chunk && n > c->chunk)
        n = c->chunk;
    if (n > len)
        n = len;
    memcpy(buf, c->in + c->in_off, n);
    c->in_off += n;
    return (ssize_t)n;
}

ssize_t atoll_conn_write(atoll_conn *c, const void *buf, size_t len)
{
    if (c->closed)
        abort(); /* http.c must not write after closing */
    size_t n = len < c->budget ? len : c->budget;
    if (n > sizeof(c->sink))
        n = sizeof(c->sink);
    memcpy(c->sink, buf, n);
    c->budget -= n;
    return (ssize_t)n;
}

void atoll_conn_set_write_events(atoll_conn *c, bool enabled)
{
    c->write_events = enabled;
}

/* GET /whoami: a fixed peer (the route's formatting is what runs). */
const atoll_address *atoll_conn_remote_address(const atoll_conn *c, uint16_t *port)
{
    static const atoll_address peer = {.family = 2, .text = "192.0.2.7", .host = "192.0.2.7"};
    (void)c;
    if (port)
        *port = 40312;
    return &peer;
}

/* ---- atoll-serve's connection helpers (tools/atoll-serve/conn.c) ------------ */

void sc_close(sconn *s)
{
    s->closing = true;
    s->c->closed = true;
}

bool sc_ensure_block(sconn *s)
{
    if (!s->buf)
        s->buf = malloc(BLOCK_SIZE);
    return s->buf != NULL;
}

void sc_release_block_if_idle(sconn *s)
{
    if (s->buf && s->len == 0 && !s->responding) {
        free(s->buf);
        s->buf = NULL;
    }
}

void sc_pause(sconn *s)
{
    s->paused = true;
    s->c->paused = true;
}

void sc_resume(sconn *s)
{
    s->paused = false;
    s->c->paused = false;
}

/* No drain here: the connection is never quiet-while-draining. */
bool sc_drain_idle(const sconn *s)
{
    (void)s;
    return false;
}

/* ---- the driver ---------------------------------------------------------------- */

static void check(const sconn *s)
{
    if (s->len > REQ_MAX || s->head_len >= HEAD_MAX || s->head_off > s->head_len || (s->len && !s->buf)) {
        fprintf(stderr, "fuzz_http: bad state: len %u head %u/%u\n", s->len, s->head_off, s->head_len);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static atoll_conn conn;
    static iso_state is;
    static bool once;
    if (!once) {
        http_pattern_init();
        once = true;
    }
    if (size == 0)
        return 0;
    conn.in = data + 1;
    conn.in_len = size - 1;
    conn.in_off = 0;
    conn.chunk = data[0];
    conn.write_events = conn.paused = conn.closed = false;
    sconn s = {.c = &conn, .is = &is};

    /* One callback per turn, in the order atoll's dispatch would run them. */
    for (unsigned t = 0; t < MAX_TURNS && !conn.closed; t++) {
        conn.budget = WRITE_BUDGET;
        if (!conn.paused && atoll_conn_available(&conn) > 0) {
            http_drive(&s); /* on_read */
        } else if (conn.write_events) {
            conn.write_events = false;
            http_drive(&s); /* on_write */
        } else if (!s.peer_eof) {
            s.peer_eof = true;
            http_drive(&s); /* on_read_closed */
        } else {
            break;
        }
        check(&s);
    }
    free(s.buf);
    return 0;
}
