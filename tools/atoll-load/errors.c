/*
 * tools/atoll-load/errors.c: error kinds: mapping atoll and errno codes to
 * the kinds counted per isolate (with the first code seen, and codes of no
 * kind by name), and merging them over the isolates for the report.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

const char *const err_kind_names[EK_COUNT] = {"connect",     "handshake",  "certificate", "timeout",  "reset", "closed",
                                              "http_status", "http_parse", "short_read",  "mismatch", "other"};

enum err_kind classify(int code)
{
    switch (code) {
    case ATOLL_E_LOOKUP:
    case -ECONNREFUSED:
    case -ENETUNREACH:
    case -EHOSTUNREACH:
    case -EADDRNOTAVAIL:
    case -ENETDOWN:
        return EK_CONNECT;
    case ATOLL_E_HANDSHAKE:
    case ATOLL_E_PEER_CLOSED:
    case ATOLL_E_ALPN:
        return EK_HANDSHAKE;
    case ATOLL_E_CERTIFICATE:
        return EK_CERTIFICATE;
    case ATOLL_E_TIMEDOUT:
    case ATOLL_E_HANDSHAKE_TIMEOUT:
    case -ETIMEDOUT:
        return EK_TIMEOUT;
    case -ECONNRESET:
    case -EPIPE:
    case -ECONNABORTED:
        return EK_RESET;
    case 0:
    case ATOLL_E_CLOSED:
        return EK_CLOSED;
    default:
        return EK_OTHER;
    }
}

void count_error(iso_state *is, enum err_kind k, int code)
{
    if (k == EK_OTHER) {
        for (int i = 0; i < MAX_OTHER; i++) {
            if (is->other_count[i] && is->other_code[i] != code)
                continue;
            is->other_code[i] = code;
            is->other_count[i]++;
            break;
        }
    }
    if (!is->c.err[k])
        is->first_err[k] = code;
    bump(&is->c.err[k], 1);
    bump(&is->c.errors, 1);
}

size_t merge_errors(err_entry *out, size_t cap)
{
    size_t n = 0;
    for (int k = 0; k < EK_OTHER; k++) {
        uint64_t sum = 0;
        int first = 0;
        for (uint32_t i = 0; i < g_niso; i++) {
            uint64_t v = atomic_load(&g_iso[i].c.err[k]);
            if (v && !sum)
                first = g_iso[i].first_err[k];
            sum += v;
        }
        if (sum && n < cap) {
            snprintf(out[n].name, sizeof(out[n].name), "%s", err_kind_names[k]);
            out[n].count = sum;
            out[n].first = first;
            n++;
        }
    }
    for (uint32_t i = 0; i < g_niso; i++)
        for (int j = 0; j < MAX_OTHER; j++) {
            if (!g_iso[i].other_count[j])
                continue;
            const char *name = atoll_error_name(g_iso[i].other_code[j]);
            size_t e = 0;
            while (e < n && strcmp(out[e].name, name))
                e++;
            if (e == n) {
                if (n == cap)
                    continue;
                snprintf(out[n].name, sizeof(out[n].name), "%s", name);
                out[n].count = 0;
                out[n].first = g_iso[i].other_code[j];
                n++;
            }
            out[e].count += g_iso[i].other_count[j];
        }
    return n;
}

const char *error_detail(const err_entry *e)
{
    static char buf[160];
    if (!strcmp(e->name, "http_status"))
        snprintf(buf, sizeof(buf), "first: HTTP %d", e->first);
    else if (!strcmp(e->name, "http_parse") || !strcmp(e->name, "mismatch"))
        snprintf(buf, sizeof(buf), "%s", !strcmp(e->name, "mismatch") ? "echoed bytes differ" : "bad response");
    else
        snprintf(buf, sizeof(buf), "first: %s (%s)", atoll_error_name(e->first), atoll_strerror(e->first));
    return buf;
}
