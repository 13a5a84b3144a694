/*
 * tools/atoll-load/main.c: atoll-load, a load generator built on atoll's
 * client side: the host thread's setup, run, bound, grace and teardown.
 *
 * Connection slots are spread over the isolates of one atoll runtime; each
 * isolate drives its own slots with its own state (per-slot buffers
 * allocated once, request bytes built once, a latency histogram and
 * single-writer counters per isolate). The host thread starts the run,
 * prints live progress from the counters, ends the run at the bound, lets
 * in-flight operations finish (at most 2 s), then drains the runtime and
 * merges the per-isolate results into a summary (and optional JSON).
 *
 * Run `atoll-load --help` for the command line.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atoll/atoll.h>

#include "load.h"

config cfg;
_Atomic int g_phase;
_Atomic int64_t g_tickets;
iso_state *g_iso;
uint32_t g_niso;
atoll_connect_options g_copts;
static volatile sig_atomic_t g_interrupted;

static void collect(totals *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < g_niso; i++) {
        iso_counters *c = &g_iso[i].c;
        t->ops += atomic_load_explicit(&c->ops, memory_order_relaxed);
        t->errors += atomic_load_explicit(&c->errors, memory_order_relaxed);
        t->bytes += atomic_load_explicit(&c->bytes, memory_order_relaxed);
        t->open += atomic_load_explicit(&c->open, memory_order_relaxed);
        t->inflight += atomic_load_explicit(&c->inflight, memory_order_relaxed);
        t->resumed += atomic_load_explicit(&c->resumed, memory_order_relaxed);
        t->connects += atomic_load_explicit(&c->connects, memory_order_relaxed);
        for (int k = 0; k < EK_COUNT; k++)
            t->err[k] += atomic_load_explicit(&c->err[k], memory_order_relaxed);
    }
}

static void on_signal(int sig)
{
    g_interrupted = sig;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --rate: what was due, what started and the longest queueing wait, over
 * the isolates (after the run; the isolates' threads have been joined). */
static void rate_results(results *r, uint64_t stop_ns)
{
    uint64_t max_wait = 0;
    for (uint32_t i = 0; i < g_niso; i++) {
        pacer *p = &g_iso[i].pace;
        r->issued += p->k;
        if (p->max_wait_ns > max_wait)
            max_wait = p->max_wait_ns;
        r->intended += pacer_due(&g_iso[i], stop_ns);
    }
    /* With --requests N no more than N are ever due (issued <= N holds). */
    if (cfg.requests && r->intended > cfg.requests)
        r->intended = cfg.requests;
    r->max_queue_delay_us = max_wait / 1000;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc)
        return rc;
    if (build_requests() < 0) {
        fprintf(stderr, "atoll-load: out of memory\n");
        return 1;
    }
    bool progress = cfg.progress || isatty(STDERR_FILENO);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    atoll_connect_options_init(&g_copts);
    g_copts.secure = !cfg.plain;
    g_copts.insecure = cfg.insecure;
    g_copts.ca_file = cfg.cafile;
    g_copts.server_name = cfg.host_is_name ? cfg.host : NULL;
    g_copts.alpn = cfg.alpn_count ? cfg.alpn : NULL;
    g_copts.alpn_count = cfg.alpn_count;
    g_copts.timeout_ms = CONNECT_TIMEOUT_MS;

    /* Per-isolate state and per-slot buffers, all allocated before the run. */
    g_niso = cfg.isolates;
    g_iso = aligned_alloc(64, PAD64(sizeof(iso_state) * g_niso));
    if (!g_iso) {
        fprintf(stderr, "atoll-load: out of memory\n");
        return 1;
    }
    memset(g_iso, 0, sizeof(iso_state) * g_niso);
    for (uint32_t i = 0; i < g_niso; i++) {
        iso_state *is = &g_iso[i];
        is->id = i;
        is->nslots = cfg.connections / g_niso + (i < cfg.connections % g_niso ? 1 : 0);
        is->slots = calloc(is->nslots, sizeof(slot));
        if (!is->slots) {
            fprintf(stderr, "atoll-load: out of memory\n");
            return 1;
        }
        if (cfg.rate && pacer_alloc(is) < 0) {
            fprintf(stderr, "atoll-load: out of memory\n");
            return 1;
        }
        for (uint32_t j = 0; j < is->nslots; j++) {
            slot *s = &is->slots[j];
            s->is = is;
            s->idx = j;
            s->hdr = malloc(HDR_CAP);
            s->scratch = malloc(SCRATCH_CAP);
            if (!s->hdr || !s->scratch) {
                fprintf(stderr, "atoll-load: out of memory\n");
                return 1;
            }
        }
    }
    atomic_store(&g_tickets, (int64_t)cfg.requests);

    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = g_niso;
    ro.sq_entries = 1024;
    atoll_runtime *rt = NULL;
    rc = atoll_runtime_create(&ro, &rt);
    if (rc < 0) {
        fprintf(stderr, "atoll-load: runtime: %s (%s)\n", atoll_strerror(rc), atoll_error_name(rc));
        return 1;
    }
    rc = atoll_runtime_start(rt);
    if (rc < 0) {
        fprintf(stderr, "atoll-load: runtime start: %s (%s)\n", atoll_strerror(rc), atoll_error_name(rc));
        atoll_runtime_stop(rt);
        atoll_runtime_join(rt);
        atoll_runtime_destroy(rt);
        return 1;
    }

    const char *lb = strchr(cfg.host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    fprintf(stderr, "atoll-load: %s against %s%s%s:%d (%s%s), %u connections on %u isolates, ",
            scenario_names[cfg.scenario], lb, cfg.host, rb, cfg.port, cfg.addr_text,
            cfg.plain      ? ", plain"
            : cfg.insecure ? ", TLS insecure"
                           : ", TLS",
            cfg.connections, g_niso);
    if (cfg.duration_s > 0)
        fprintf(stderr, "%.3g s", cfg.duration_s);
    if (cfg.requests)
        fprintf(stderr, "%s%llu ops", cfg.duration_s > 0 ? ", at most " : "", (unsigned long long)cfg.requests);
    if (cfg.rate)
        fprintf(stderr, ", open loop at %g req/s (%s arrivals)", cfg.rate,
                cfg.arrivals == AR_POISSON ? "poisson" : "uniform");
    fprintf(stderr, "\n");

    /* Run until the bound. */
    uint64_t bound_ns = cfg.duration_s > 0 ? (uint64_t)(cfg.duration_s * 1e9) : UINT64_MAX;
    atomic_store(&g_phase, PH_RUN);
    uint64_t t0 = now_ns();
    /* Each isolate's schedule begins once its connections are open (pace.c). */
    for (uint32_t i = 0; cfg.rate && i < g_niso; i++)
        pacer_init(&g_iso[i], t0, bound_ns == UINT64_MAX ? UINT64_MAX : t0 + bound_ns);
    int setup_failed = 0;
    for (uint32_t i = 0; i < g_niso; i++) {
        rc = atoll_runtime_submit(rt, i, iso_begin, &g_iso[i], NULL, NULL, NULL);
        if (rc < 0) {
            fprintf(stderr, "atoll-load: starting isolate %u: %s\n", i, atoll_strerror(rc));
            setup_failed = 1;
            break;
        }
    }

    uint64_t next_progress = t0 + 1000000000ull, last_ops = 0, last_bytes = 0, last_t = t0;
    totals t;
    while (!setup_failed && !g_interrupted) {
        uint64_t now = now_ns();
        if (now - t0 >= bound_ns)
            break;
        collect(&t);
        if (cfg.requests && atomic_load(&g_tickets) <= 0 && t.inflight == 0)
            break;
        if (progress && now >= next_progress) {
            double dt = (double)(now - last_t) / 1e9;
            fprintf(stderr, "[%6.1fs] ops %10llu  %10.0f ops/s  errors %llu  open %llu  %.1f MB/s\n",
                    (double)(now - t0) / 1e9, (unsigned long long)t.ops, (double)(t.ops - last_ops) / dt,
                    (unsigned long long)t.errors, (unsigned long long)t.open,
                    (double)(t.bytes - last_bytes) / 1e6 / dt);
            last_ops = t.ops;
            last_bytes = t.bytes;
            last_t = now;
            next_progress += 1000000000ull;
        }
        uint64_t left = bound_ns == UINT64_MAX ? 50000000ull : bound_ns - (now - t0);
        sleep_ms(left < 50000000ull ? (unsigned)(left / 1000000ull) + 1 : 50);
    }
    /* The bound: no new ops; in-flight ones may finish within the grace. */
    atomic_store(&g_phase, PH_STOP);
    uint64_t stop_t = now_ns();
    collect(&t);
    while (t.inflight > 0 && now_ns() - stop_t < (uint64_t)GRACE_MS * 1000000ull) {
        sleep_ms(2);
        collect(&t);
    }
    uint64_t t_end = now_ns();
    uint64_t inflight_left = t.inflight;
    uint64_t held = t.open;
    double duration = (double)(t_end - t0) / 1e9;

    /* Close everything (drain hooks), then stop. */
    rc = atoll_runtime_drain(rt, 2000);
    atoll_runtime_stop(rt);
    atoll_runtime_join(rt);

    collect(&t);
    results r;
    memset(&r, 0, sizeof(r));
    r.t = t;
    for (uint32_t i = 0; i < g_niso; i++)
        hist_merge(&r.lat, &g_iso[i].lat);
    r.nerr = merge_errors(r.errs, sizeof(r.errs) / sizeof(r.errs[0]));
    r.duration = duration;
    r.ops_s = duration > 0 ? (double)t.ops / duration : 0;
    r.mb_s = duration > 0 ? (double)t.bytes / 1e6 / duration : 0;
    r.p50 = hist_percentile(&r.lat, 0.50);
    r.p90 = hist_percentile(&r.lat, 0.90);
    r.p99 = hist_percentile(&r.lat, 0.99);
    r.p999 = hist_percentile(&r.lat, 0.999);
    r.held = held;
    r.inflight_left = inflight_left;
    r.interrupted = (int)g_interrupted;
    if (cfg.rate)
        rate_results(&r, stop_t);
    report_print(&r);

    int exit_code = setup_failed ? 1 : 0;
    if (cfg.json && report_json(&r) != 0)
        exit_code = 1;

    atoll_runtime_destroy(rt);
    for (uint32_t i = 0; i < g_niso; i++) {
        for (uint32_t j = 0; j < g_iso[i].nslots; j++) {
            slot *s = &g_iso[i].slots[j];
            atoll_session_free(s->session);
            free(s->hdr);
            free(s->scratch);
        }
        free(g_iso[i].slots);
        pacer_free(&g_iso[i]);
    }
    free(g_iso);
    free(cfg.payload);
    free(cfg.http_req);
    free(cfg.alpn_buf);
    (void)rc;
    return exit_code;
}
