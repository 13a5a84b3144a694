/*
 * tools/atoll-serve/main.c: atoll-serve, the example TLS server the load
 * scripts use: start-up, the signal loop and shutdown.
 *
 * One runtime, one pool isolate per CPU (or --isolates N), and one shared
 * listener on every isolate (atoll_runtime_listen: SO_REUSEPORT, steered by
 * the runtime). Each connection is upgraded to TLS with either the
 * certificate given on the command line or an ephemeral self-signed ECDSA
 * P-256 one made at start-up (with --plain: no security context, so the
 * listener serves cleartext TCP), and then served as minimal HTTP/1.1
 * (default) or echoed back.
 *
 * Threads: the main thread parses the command line, makes the certificate,
 * starts the runtime and then only waits for signals (sigtimedwait on a
 * mask blocked before the isolates start, so they inherit it); SIGHUP
 * re-reads the --ticket-key-file files there. Everything that touches a
 * connection or a server runs on its isolate; counters are read there
 * through atoll_runtime_submit() and handed back under a mutex.
 *
 * Per-connection memory: a small `sconn` (list links, state, counters) and,
 * only while a request is being read or a response written, one 16 KiB
 * block taken from a per-isolate cache. Idle keep-alive connections hold no
 * block.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include <atoll/atoll.h>

#include "serve.h"

app g;

static void die_rc(const char *what, int rc)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, atoll_strerror(rc), atoll_error_name(rc));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The listener's security context: NULL with --plain (the listener then
 * serves cleartext TCP), else one holding the server's certificate and key,
 * whose chain is also written for --write-cert. *chain gets the chain (the
 * caller frees it). 0, or -1 with the reason printed. */
static int make_context(atoll_security_context **out, pem_buf *chain)
{
    const config *cfg = &g.cfg;
    *out = NULL;
    if (cfg->plain)
        return 0;
    atoll_security_context *ctx = NULL;
    int rc = atoll_security_context_new(&ctx);
    if (rc < 0) {
        die_rc("security context", rc);
        return -1;
    }
    if (load_material(ctx, chain) < 0) {
        atoll_security_context_release(ctx);
        return -1;
    }
    if (cfg->write_cert && (rc = write_whole_file(cfg->write_cert, chain->data, chain->len)) < 0) {
        fprintf(stderr, PROG ": --write-cert %s: %s\n", cfg->write_cert, strerror(-rc));
        atoll_security_context_release(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

/* Reads every --ticket-key-file and gives the keys to the runtime, which
 * copies them. 0, or -1 with the reason in `why` (the runtime's keys are
 * then unchanged). *nkeys gets the number of keys. */
static int load_ticket_keys(size_t *nkeys, char *why, size_t why_len)
{
    uint8_t *keys;
    size_t len;
    if (read_ticket_keys(&keys, &len, why, why_len) < 0)
        return -1;
    int rc = atoll_runtime_set_ticket_keys(g.rt, keys, len);
    free_ticket_keys(keys, len);
    if (rc < 0) {
        snprintf(why, why_len, "%s", atoll_strerror(rc));
        return -1;
    }
    *nkeys = len / 80;
    return 0;
}

/* SIGHUP: reload the ticket keys, keeping the old ones on failure. */
static void reload_ticket_keys(void)
{
    size_t n = g.cfg.nticket_key_files, nkeys = 0;
    char why[512];
    if (n == 0)
        fprintf(stderr, PROG ": SIGHUP: nothing to reload (no --ticket-key-file)\n");
    else if (load_ticket_keys(&nkeys, why, sizeof(why)) < 0)
        fprintf(stderr, PROG ": --ticket-key-file: reload failed: %s; keeping the previous keys\n", why);
    else
        fprintf(stderr, "ticket keys reloaded: %zu key(s) from %zu file(s)\n", nkeys, n);
}

/* The runtime's log lines (a foreign socket in a listener's group, ...) go
 * to stderr, one line each; stdio locks the stream per call. */
static void serve_log(atoll_log_level level, const char *line, void *user)
{
    (void)user;
    fprintf(stderr, "%s%s\n",
            level == ATOLL_LOG_ERROR     ? "error: "
            : level == ATOLL_LOG_WARNING ? "warning: "
                                         : "",
            line);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &g.cfg);
    debug_log = getenv("ATOLL_SERVE_DEBUG") != NULL;
    const config *cfg = &g.cfg;
    size_t alpn_count = 0;
    char *alpn_storage = NULL;
    /* --plain offers no ALPN (no TLS); the default list is not even split. */
    char **alpn = cfg->plain ? NULL : alpn_split(cfg->alpn, &alpn_count, &alpn_storage);

    /* Signals: blocked here, before any thread exists, so every isolate
     * inherits the mask; the main thread takes them with sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    http_pattern_init();

    int exit_code = 1, rc;
    pem_buf chain = {0};
    atoll_security_context *ctx = NULL;
    wolfCrypt_Init();
    if (make_context(&ctx, &chain) < 0)
        goto out_crypto;

    g.n = cfg->isolates;
    g.cap = g.n + 1024; /* isolates added through the admin port: ids are never reused */
    g.iso = calloc(g.cap, sizeof(*g.iso));
    if (!g.iso) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out_state;
    }
    for (uint32_t i = 0; i < g.cap; i++)
        g.iso[i].id = i;

    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = g.n;
    ro.max_isolates = g.cap;
    ro.pin_cpus = cfg->pin_cpus || cfg->steer_cpu;
    ro.max_conns = cfg->max_conns;
    ro.log = serve_log;
    ro.steering = cfg->steer_cpu ? ATOLL_STEERING_CPU : ATOLL_STEERING_HASH;
    if ((rc = atoll_runtime_create(&ro, &g.rt)) < 0) {
        die_rc("creating the runtime", rc);
        goto out_state;
    }
    if (cfg->nticket_key_files > 0) {
        /* Before the listener: no ticket is sealed with the own keys. */
        char why[512];
        size_t nkeys;
        if (load_ticket_keys(&nkeys, why, sizeof(why)) < 0) {
            fprintf(stderr, PROG ": --ticket-key-file: %s\n", why);
            goto out_rt;
        }
    }
    if ((rc = atoll_runtime_start(g.rt)) < 0) {
        die_rc("starting the runtime", rc);
        goto out_rt;
    }

    atoll_server_options so;
    atoll_server_options_init(&so);
    so.backlog = cfg->backlog;
    so.v6_only = cfg->v6only;
    so.request_client_certificate = cfg->request_cert || cfg->require_cert;
    so.require_client_certificate = cfg->require_cert;
    so.supported_protocols = (const char *const *)alpn;
    so.supported_protocols_count = alpn_count;
    so.handshake_timeout_ms = cfg->handshake_timeout_ms;
    so.idle_timeout_ms = cfg->idle_timeout_ms;
    so.disable_resumption = cfg->no_resumption;
    so.alpn_strict = cfg->alpn_strict;
    so.proxy_protocol = cfg->proxy_protocol;
    so.proxy_allow = cfg->proxy_allow;
    static const atoll_server_callbacks scb = {
        .on_bound = srv_on_bound,
        .on_connection = srv_on_connection,
        .on_error = srv_on_error,
    };
    rc = atoll_runtime_listen(g.rt, cfg->address, cfg->port, &so, ctx, &scb, NULL, &g.listener);
    if (rc < 0) {
        char what[320];
        snprintf(what, sizeof(what), "listening on %s%s%s:%d", strchr(cfg->address, ':') ? "[" : "", cfg->address,
                 strchr(cfg->address, ':') ? "]" : "", cfg->port);
        die_rc(what, rc);
        g.listener = NULL;
        goto out_stop;
    }
    /* The listener holds its own reference to the context (none with --plain). */
    atoll_security_context_release(ctx);
    ctx = NULL;

    bool v6 = strchr(cfg->address, ':') != NULL;
    printf("listening on %s%s%s:%u isolates=%" PRIu32 "\n", v6 ? "[" : "", cfg->address, v6 ? "]" : "",
           (unsigned)atoll_listener_port(g.listener), g.n);
    fflush(stdout);
    if (cfg->admin) {
        char host[256], bound[300];
        int admin_port = 0;
        (void)admin_parse(cfg->admin, host, sizeof(host), &admin_port); /* checked by parse_args */
        if (admin_start(host, admin_port, bound, sizeof(bound)) < 0) {
            atoll_listener_close(g.listener);
            g.listener = NULL;
            goto out_stop;
        }
        printf("admin on %s\n", bound);
        fflush(stdout);
    }

    double deadline = cfg->duration_s > 0 ? now_s() + cfg->duration_s : 0;
    for (;;) {
        siginfo_t si;
        int sig;
        if (deadline > 0) {
            double left = deadline - now_s();
            if (left <= 0)
                break;
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            sig = sigtimedwait(&sigs, &si, &ts);
            if (sig < 0 && errno == EAGAIN)
                break; /* --duration elapsed */
        } else {
            sig = sigwaitinfo(&sigs, &si);
        }
        if (sig < 0)
            continue; /* EINTR */
        if (sig == SIGUSR1) {
            print_stats();
            continue;
        }
        if (sig == SIGHUP) {
            reload_ticket_keys();
            continue;
        }
        break; /* SIGINT, SIGTERM */
    }

    /* Shutdown: GET /ready answers 503 from here on, and for --drain-delay
     * the server goes on accepting, so a balancer's checks take it out
     * before its sockets close. Then the runtime drains every listener
     * member and connection (sc_on_drain); the members are closed by then. */
    atomic_store(&g.draining, true);
    if (cfg->drain_delay_ms) {
        struct timespec delay = {(time_t)(cfg->drain_delay_ms / 1000), (long)(cfg->drain_delay_ms % 1000) * 1000000L};
        while (nanosleep(&delay, &delay) < 0 && errno == EINTR)
            ;
    }
    rc = atoll_runtime_drain(g.rt, cfg->drain_timeout_ms);
    if (rc < 0 && rc != ATOLL_E_TIMEDOUT)
        die_rc("draining", rc);
    rc = atoll_listener_close(g.listener);
    if (rc < 0)
        die_rc("closing the listener", rc);
    g.listener = NULL;
    admin_stop(); /* after the drain: /stats answers while it runs */
    exit_code = 0;
out_stop:
    atoll_runtime_stop(g.rt);
    atoll_runtime_join(g.rt);
    if (exit_code == 0)
        print_stats(); /* final: every isolate has ended */
out_rt:
    atoll_runtime_destroy(g.rt);
    g.rt = NULL;
out_state:
    if (g.iso)
        for (uint32_t i = 0; i < g.cap; i++)
            while (g.iso[i].ncache > 0)
                free(g.iso[i].cache[--g.iso[i].ncache]);
    free(g.iso);
    atoll_security_context_release(ctx);
out_crypto:
    free(chain.data);
    free(alpn);
    free(alpn_storage);
    free(g.cfg.ticket_key_files);
#ifdef FP_ECC
    wc_ecc_fp_free(); /* the main thread's fixed-point ECC cache (a build with FP_ECC) */
#endif
    wolfCrypt_Cleanup();
    return exit_code;
}
