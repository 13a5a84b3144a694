/*
 * tools/atoll-hsbench/report.c: the results, as the text lines of the
 * output contract (parsed by scripts: keep the prefixes) and as one JSON
 * object with the same numbers, formatted the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hsbench.h"

static double rate(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : 0.0;
}

void report_print(const results *r)
{
    printf("wolfssl %s %s\n", r->wolfssl_version, r->wolfssl_build);
    printf("certificate %s\n", r->certificate);
    printf("cipher %s\n", r->cipher);
    printf("group %s\n", r->group);
    printf("handshakes %" PRIu64 "\n", r->handshakes);
    printf("server cpu-s %.3f\n", r->server_cpu_s);
    printf("server handshakes per cpu-s %.1f\n", rate(r->handshakes, r->server_cpu_s));
    printf("total cpu-s %.3f\n", r->total_cpu_s);
    printf("total handshakes per cpu-s %.1f\n", rate(r->handshakes, r->total_cpu_s));
    printf("wall-s %.3f\n", r->wall_s);
    fflush(stdout);
}

/* Writes `s` as a JSON string. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int report_json(const results *r, FILE *f, const char *path)
{
    fprintf(f,
            "{\"handshakes\":%" PRIu64 ",\"server_cpu_s\":%.3f,\"server_handshakes_per_cpu_s\":%.1f,"
            "\"total_cpu_s\":%.3f,\"total_handshakes_per_cpu_s\":%.1f,\"wall_s\":%.3f,",
            r->handshakes, r->server_cpu_s, rate(r->handshakes, r->server_cpu_s), r->total_cpu_s,
            rate(r->handshakes, r->total_cpu_s), r->wall_s);
    const struct {
        const char *key, *value;
    } strings[] = {
        {"wolfssl_version", r->wolfssl_version},
        {"wolfssl_build", r->wolfssl_build},
        {"cipher", r->cipher},
        {"group", r->group},
        {"certificate", r->certificate},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        fprintf(f, "%s\"%s\":", i ? "," : "", strings[i].key);
        json_string(f, strings[i].value);
    }
    fputs("}\n", f);
    /* A full disk shows at the flush: check both. */
    int werr = ferror(f);
    if (fclose(f) != 0 || werr) {
        fprintf(stderr, PROG ": --json %s: %s\n", path, werr ? "write error" : strerror(errno));
        return -1;
    }
    return 0;
}
