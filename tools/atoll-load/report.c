/*
 * tools/atoll-load/report.c: the results of a run, as the summary printed
 * on stdout and, with --json FILE, as one JSON object in FILE. "handshakes"
 * counts the connections established (TCP connects with --plain, which
 * "tls": false tells apart).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* "rate" and "intended_vs_actual"; with --rate also the arrivals and the
 * seed. Without --rate: rate null and, in the (always present) object,
 * only "completed" counted (a closed loop has no intended starts). Closes
 * the object. */
static void json_rate(FILE *f, const results *r)
{
    if (!cfg.rate) {
        fprintf(f,
                "\"rate\":null,\"intended_vs_actual\":{\"intended\":null,\"issued\":null,\"completed\":%llu,"
                "\"max_queue_delay_us\":null}}\n",
                (unsigned long long)r->t.ops);
        return;
    }
    fprintf(f,
            "\"rate\":%.17g,\"arrivals\":\"%s\",\"seed\":%llu,\"intended_vs_actual\":{\"intended\":%llu,"
            "\"issued\":%llu,\"completed\":%llu,\"max_queue_delay_us\":%llu}}\n",
            cfg.rate, cfg.arrivals == AR_POISSON ? "poisson" : "uniform", (unsigned long long)cfg.seed,
            (unsigned long long)r->intended, (unsigned long long)r->issued, (unsigned long long)r->t.ops,
            (unsigned long long)r->max_queue_delay_us);
}

void report_print(const results *r)
{
    const char *lb = strchr(cfg.host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    printf("scenario        %s%s%s\n", scenario_names[cfg.scenario], cfg.http ? " (http)" : " (echo)",
           cfg.plain    ? " plain"
           : cfg.resume ? " tls+resume"
                        : " tls");
    printf("target          %s%s%s:%d (%s)\n", lb, cfg.host, rb, cfg.port, cfg.addr_text);
    printf("connections     %u on %u isolates\n", cfg.connections, g_niso);
    printf("ops             %llu\n", (unsigned long long)r->t.ops);
    printf("duration        %.3f s\n", r->duration);
    printf("ops/s           %.1f\n", r->ops_s);
    printf("errors          %llu\n", (unsigned long long)r->t.errors);
    for (size_t i = 0; i < r->nerr; i++)
        printf("  %-13s %llu  %s\n", r->errs[i].name, (unsigned long long)r->errs[i].count, error_detail(&r->errs[i]));
    printf("latency us      p50 %llu  p90 %llu  p99 %llu  p999 %llu  max %llu  (mean %.0f)\n",
           (unsigned long long)r->p50, (unsigned long long)r->p90, (unsigned long long)r->p99,
           (unsigned long long)r->p999, (unsigned long long)r->lat.max,
           r->lat.count ? (double)r->lat.sum / (double)r->lat.count : 0.0);
    printf("bytes           %llu\n", (unsigned long long)r->t.bytes);
    printf("MB/s            %.2f\n", r->mb_s);
    printf("connects        %llu (%llu resumed)\n", (unsigned long long)r->t.connects,
           (unsigned long long)r->t.resumed);
    if (cfg.scenario == SC_IDLE)
        printf("held            %llu of %u\n", (unsigned long long)r->held, cfg.connections);
    if (r->inflight_left)
        printf("unfinished      %llu ops still in flight after the %d ms grace\n", (unsigned long long)r->inflight_left,
               GRACE_MS);
    if (cfg.rate) {
        printf("rate            %g req/s offered (%s arrivals)\n", cfg.rate,
               cfg.arrivals == AR_POISSON ? "poisson" : "uniform");
        printf("intended        %llu  issued %llu  completed %llu  max queue delay %llu us\n",
               (unsigned long long)r->intended, (unsigned long long)r->issued, (unsigned long long)r->t.ops,
               (unsigned long long)r->max_queue_delay_us);
    }
    if (r->interrupted)
        printf("interrupted     by signal %d\n", r->interrupted);
    fflush(stdout);
}

int report_json(const results *r)
{
    FILE *f = fopen(cfg.json, "w");
    if (!f) {
        fprintf(stderr, "atoll-load: cannot write %s: %s\n", cfg.json, strerror(errno));
        return 1;
    }
    fprintf(f, "{\"scenario\":\"%s\",\"ops\":%llu,\"ops_per_s\":%.3f,\"duration_s\":%.6f,\"errors\":{",
            scenario_names[cfg.scenario], (unsigned long long)r->t.ops, r->ops_s, r->duration);
    for (size_t i = 0; i < r->nerr; i++) {
        fprintf(f, "%s", i ? "," : "");
        json_string(f, r->errs[i].name);
        fprintf(f, ":%llu", (unsigned long long)r->errs[i].count);
    }
    fprintf(f,
            "},\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
            "\"bytes\":%llu,\"mb_per_s\":%.3f,\"connections_held\":%llu,\"isolates\":%u,"
            "\"connections\":%u,\"handshakes\":%llu,\"resumed\":%llu,\"unfinished\":%llu,\"tls\":%s,",
            (unsigned long long)r->p50, (unsigned long long)r->p90, (unsigned long long)r->p99,
            (unsigned long long)r->p999, (unsigned long long)r->lat.max, (unsigned long long)r->t.bytes, r->mb_s,
            (unsigned long long)(cfg.scenario == SC_IDLE ? r->held : 0), g_niso, cfg.connections,
            (unsigned long long)r->t.connects, (unsigned long long)r->t.resumed, (unsigned long long)r->inflight_left,
            cfg.plain ? "false" : "true");
    json_rate(f, r);
    if (fclose(f) != 0) {
        fprintf(stderr, "atoll-load: writing %s failed\n", cfg.json);
        return 1;
    }
    return 0;
}
