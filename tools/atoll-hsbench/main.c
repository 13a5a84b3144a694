/*
 * tools/atoll-hsbench/main.c: atoll-hsbench, wolfSSL's own server handshake
 * rate in one thread, without sockets: the ceiling an isolate's handshakes
 * cannot pass whatever the I/O around them costs. Sets up the material and
 * the two contexts once, runs one warm-up handshake (first-use costs: lazy
 * tables, page faults), then the measured ones, and reports.
 *
 * Run `atoll-hsbench --help` for the command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atoll/atoll.h>

#include "hsbench.h"

static double mono_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror(PROG ": clock_gettime(CLOCK_MONOTONIC)");
        exit(1);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* atoll's cipher order for this machine, from the values runtime.h
 * documents for tls_cipher_preference; anything else is a change this tool
 * has not followed. 1 AES-GCM first, 0 ChaCha20-Poly1305 first, -1. */
static int aes_first_of(const char *preference)
{
    if (preference != NULL && strcmp(preference, "AES-GCM first (AES-NI)") == 0)
        return 1;
    if (preference != NULL && strcmp(preference, "ChaCha20-Poly1305 first (no AES-NI)") == 0)
        return 0;
    return -1;
}

int main(int argc, char **argv)
{
    config cfg;
    parse_args(argc, argv, &cfg);
    (void)thread_cpu_ns(); /* exits here if the thread CPU clock is missing */

    /* Which wolfSSL atoll is built with, as the runtime reports it. The
     * probe also tries io_uring, which this tool does not use: its result
     * does not matter as long as the wolfSSL facts were filled in. */
    atoll_runtime_info info;
    memset(&info, 0, sizeof(info));
    int probe_rc = atoll_runtime_probe(&info);
    if (info.wolfssl_build == NULL || info.tls_cipher_preference == NULL) {
        fprintf(stderr, PROG ": atoll_runtime_probe gave no wolfSSL facts (%s)\n", atoll_strerror(probe_rc));
        return 1;
    }
    int aes_first = aes_first_of(info.tls_cipher_preference);
    if (aes_first < 0) {
        fprintf(stderr, PROG ": unknown atoll cipher preference '%s'\n", info.tls_cipher_preference);
        return 1;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        fprintf(stderr, PROG ": wolfSSL_Init failed\n");
        return 1;
    }

    int status = 1;
    char err[256];
    material m = {0};
    bench b = {0};
    FILE *json = NULL;
    if (cfg.json != NULL && (json = fopen(cfg.json, "w")) == NULL) {
        fprintf(stderr, PROG ": --json %s: %s\n", cfg.json, strerror(errno));
        goto out;
    }
    b.link = malloc(sizeof(*b.link));
    if (b.link == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    int mrc = cfg.cert ? material_read(&m, cfg.cert, cfg.key, err, sizeof(err)) : material_make(&m, err, sizeof(err));
    if (mrc < 0) {
        fprintf(stderr, PROG ": %s: %s\n", cfg.cert ? "reading the certificate" : "making the certificate", err);
        goto out;
    }
    if (server_ctx_new(&m, aes_first == 1, &b.server_ctx, &b.expect_cipher, err, sizeof(err)) < 0 ||
        client_ctx_new(&b.client_ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }

    if (handshake_once(&b, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": warm-up handshake: %s\n", err);
        goto out;
    }
    b.server_ns = 0;

    double wall0 = mono_s();
    uint64_t cpu0 = thread_cpu_ns();
    for (;;) {
        if (cfg.seconds > 0 ? mono_s() - wall0 >= cfg.seconds : b.handshakes == cfg.handshakes)
            break;
        if (handshake_once(&b, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": handshake %llu: %s\n", (unsigned long long)b.handshakes + 1, err);
            goto out;
        }
        b.handshakes++;
    }
    uint64_t cpu1 = thread_cpu_ns();
    double wall1 = mono_s();
    if (b.handshakes == 0 || b.server_ns == 0) {
        fprintf(stderr, PROG ": nothing measured (%llu handshakes)\n", (unsigned long long)b.handshakes);
        goto out;
    }

    results r = {
        .handshakes = b.handshakes,
        .server_cpu_s = (double)b.server_ns / 1e9,
        .total_cpu_s = (double)(cpu1 - cpu0) / 1e9,
        .wall_s = wall1 - wall0,
        .wolfssl_version = wolfSSL_lib_version(),
        .wolfssl_build = info.wolfssl_build,
        .cipher = b.cipher,
        .group = b.group,
        .certificate = m.what,
    };
    report_print(&r);
    if (json != NULL) {
        FILE *f = json;
        json = NULL; /* closed by report_json, whatever happens */
        if (report_json(&r, f, cfg.json) < 0) {
            unlink(cfg.json);
            goto out;
        }
    }
    status = 0;
out:
    if (json != NULL) {
        /* The run failed: no half-made results file. */
        fclose(json);
        unlink(cfg.json);
    }
    if (b.client_ctx != NULL)
        wolfSSL_CTX_free(b.client_ctx);
    if (b.server_ctx != NULL)
        wolfSSL_CTX_free(b.server_ctx);
    free(b.link);
    material_free(&m);
    wolfSSL_Cleanup();
    return status;
}
