/*
 * tools/atoll-serve/echo.c: echo mode: every byte a connection receives is
 * written back, through the connection's block, pausing the reads while
 * the peer does not take the output.
 */
#include "serve.h"

/* Writes what is pending; true when nothing is left. */
static bool echo_flush(sconn *s)
{
    while (s->off < s->len) {
        ssize_t w = atoll_conn_write(s->c, s->buf + s->off, s->len - s->off);
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0) {
            atoll_conn_set_write_events(s->c, true);
            return false;
        }
        s->off += (uint32_t)w;
    }
    s->off = s->len = 0;
    return true;
}

void echo_drive(sconn *s)
{
    if (s->closing)
        return;
    if (s->len > 0 && !echo_flush(s)) {
        if (!s->closing && atoll_conn_available(s->c) > 0)
            sc_pause(s);
        return;
    }
    sc_resume(s);
    for (;;) {
        if (!sc_ensure_block(s)) {
            sc_close(s);
            return;
        }
        ssize_t n = atoll_conn_read(s->c, s->buf, BLOCK_SIZE);
        if (n <= 0)
            break;
        s->len = (uint32_t)n;
        s->off = 0;
        if (!echo_flush(s)) {
            if (!s->closing)
                sc_pause(s);
            return;
        }
    }
    sc_release_block_if_idle(s);
    if (s->peer_eof || s->close_after)
        sc_close(s); /* close flushes what the connection holds */
}
