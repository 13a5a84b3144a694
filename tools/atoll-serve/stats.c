/*
 * tools/atoll-serve/stats.c: the per-isolate counters line (JSON on
 * stdout), printed on SIGUSR1 and at exit from the runtime's network
 * counters (handshakes 0 with --plain).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* The per-isolate network counters of the runtime, every isolate it ever
 * had (added ones too; a retired one keeps its counters): readable from any
 * thread at any time, exact also for connections that outlive the listener. */
char *stats_json(void)
{
    uint32_t n = atoll_runtime_isolate_count(g.rt);
    size_t cap = 64 + (size_t)n * 448, off = 0; /* an entry is at most ~340 bytes */
    char *out = malloc(cap);
    if (!out)
        return NULL;
    off += (size_t)snprintf(out + off, cap - off, "{\"isolates\":[");
    for (uint32_t i = 0; i < n; i++) {
        atoll_isolate_stats st;
        memset(&st, 0, sizeof(st));
        atoll_runtime_isolate_stats(g.rt, i, &st);
        /* The runtime counts every connection its servers deliver as a
         * handshake; a cleartext one is delivered on accept, with none. */
        uint64_t handshakes = g.cfg.plain ? 0 : st.net_handshakes;
        off += (size_t)snprintf(out + off, cap - off,
                                "%s{\"id\":%" PRIu32 ",\"accepted\":%" PRIu64 ",\"handshakes\":%" PRIu64
                                ",\"handshake_errors\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                                ",\"drain_closed\":%" PRIu64 ",\"idle_closed\":%" PRIu64 ",\"header_timeouts\":%" PRIu64
                                ",\"loop_turns\":%" PRIu64 "}",
                                i ? "," : "", i, st.net_accepted, handshakes, st.net_handshake_errors, st.net_bytes_in,
                                st.net_bytes_out, st.net_drain_closed, st.net_idle_closed,
                                i < g.cap ? atomic_load(&g.iso[i].header_timeouts) : 0, st.loop_turns);
    }
    snprintf(out + off, cap - off, "]}\n");
    return out;
}

void print_stats(void)
{
    char *out = stats_json();
    if (!out)
        return;
    fputs(out, stdout);
    fflush(stdout);
    free(out);
}
