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

/* One counter of /metrics: its name, help text, and how to read it. */
typedef struct metric {
    const char *name, *type, *help;
    int kind; /* ERROR_KINDS for not an error counter, else the error kind */
    uint64_t (*read)(uint32_t id, const atoll_isolate_stats *st);
} metric;

static uint64_t m_accepted(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->net_accepted;
}
static uint64_t m_handshakes(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, g.cfg.plain ? 0 : st->net_handshakes;
}
static uint64_t m_in(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->net_bytes_in;
}
static uint64_t m_out(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->net_bytes_out;
}
static uint64_t m_turns(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->loop_turns;
}
static uint64_t m_overflows(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->cq_overflows;
}
static uint64_t m_enobufs(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->recv_enobufs;
}
static uint64_t m_drain(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->net_drain_closed;
}
static uint64_t m_idle(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)id, st->net_idle_closed;
}
static uint64_t m_open(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)st, id < g.cap ? atomic_load(&g.iso[id].open_conns) : 0;
}
static uint64_t m_resumed(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)st, id < g.cap ? atomic_load(&g.iso[id].resumed) : 0;
}
static uint64_t m_408(uint32_t id, const atoll_isolate_stats *st)
{
    return (void)st, id < g.cap ? atomic_load(&g.iso[id].header_timeouts) : 0;
}

static const metric metrics[] = {
    {"atoll_connections_open", "gauge", "connections open now", ERROR_KINDS, m_open},
    {"atoll_connections_accepted_total", "counter", "TCP connections accepted", ERROR_KINDS, m_accepted},
    {"atoll_handshakes_total", "counter", "TLS handshakes completed (0 with --plain)", ERROR_KINDS, m_handshakes},
    {"atoll_resumptions_total", "counter", "handshakes that resumed a session", ERROR_KINDS, m_resumed},
    {"atoll_bytes_received_total", "counter", "bytes received on the wire", ERROR_KINDS, m_in},
    {"atoll_bytes_sent_total", "counter", "bytes sent on the wire", ERROR_KINDS, m_out},
    {"atoll_drain_closed_total", "counter", "connections closed at a drain's deadline", ERROR_KINDS, m_drain},
    {"atoll_idle_closed_total", "counter", "connections closed by --idle-timeout", ERROR_KINDS, m_idle},
    {"atoll_header_timeouts_total", "counter", "requests answered 408 by --header-timeout", ERROR_KINDS, m_408},
    {"atoll_loop_turns_total", "counter", "event-loop turns", ERROR_KINDS, m_turns},
    {"atoll_cq_overflows_total", "counter", "loop turns that found the completion queue overflowed", ERROR_KINDS,
     m_overflows},
    {"atoll_recv_enobufs_total", "counter", "receives that found the buffer ring empty", ERROR_KINDS, m_enobufs},
};

static const char *const error_kinds[ERROR_KINDS] = {"handshake", "timeout", "peer_closed",  "certificate",
                                                     "alpn",      "proxy",   "proxy_denied", "other"};

char *stats_metrics(void)
{
    uint32_t n = atoll_runtime_isolate_count(g.rt);
    size_t nm = sizeof(metrics) / sizeof(metrics[0]);
    size_t cap = 4096 + (size_t)n * (nm + ERROR_KINDS) * 96, off = 0;
    char *out = malloc(cap);
    atoll_isolate_stats *st = calloc(n ? n : 1, sizeof(*st));
    if (!out || !st) {
        free(out);
        free(st);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++)
        atoll_runtime_isolate_stats(g.rt, i, &st[i]);
    for (size_t m = 0; m < nm; m++) {
        off += (size_t)snprintf(out + off, cap - off, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
                                metrics[m].name, metrics[m].type);
        for (uint32_t i = 0; i < n; i++)
            off += (size_t)snprintf(out + off, cap - off, "%s{isolate=\"%" PRIu32 "\"} %" PRIu64 "\n", metrics[m].name,
                                    i, metrics[m].read(i, &st[i]));
    }
    off += (size_t)snprintf(out + off, cap - off,
                            "# HELP atoll_handshake_errors_total connections that failed before being served, by "
                            "kind\n# TYPE atoll_handshake_errors_total counter\n");
    for (int k = 0; k < ERROR_KINDS; k++)
        for (uint32_t i = 0; i < n; i++)
            off += (size_t)snprintf(out + off, cap - off,
                                    "atoll_handshake_errors_total{isolate=\"%" PRIu32 "\",kind=\"%s\"} %" PRIu64 "\n",
                                    i, error_kinds[k], i < g.cap ? atomic_load(&g.iso[i].errors[k]) : 0);
    free(st);
    return out;
}
