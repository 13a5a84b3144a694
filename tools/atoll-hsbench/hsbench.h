/*
 * tools/atoll-hsbench/hsbench.h: what the files of atoll-hsbench share: the
 * command line, the certificate material, the two wolfSSL contexts, the
 * in-memory links between a client and a server, and the measurements.
 * Private to atoll-hsbench.
 */
#ifndef ATOLL_TOOLS_HSBENCH_H
#define ATOLL_TOOLS_HSBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define PROG "atoll-hsbench"

/* ---- command line (cli.c) ------------------------------------------------ */

typedef struct config {
    uint64_t handshakes; /* measured handshakes; ignored with seconds > 0 */
    double seconds;      /* > 0: run until this much wall time has passed */
    const char *cert, *key;
    const char *json;
} config;

/* Parses the command line into *cfg; prints the usage and exits 0 on
 * --help, or prints the error and the usage and exits 2 on a bad one. */
void parse_args(int argc, char **argv, config *cfg);

/* ---- certificate and key (cert.c) ---------------------------------------- */

typedef struct material {
    uint8_t *cert_pem, *key_pem; /* malloc'd; the key is wiped when freed */
    size_t cert_len, key_len;
    const char *what; /* for the report: "ephemeral ECDSA P-256" or the file */
} material;

/* Makes the ephemeral self-signed ECDSA P-256 certificate atoll-serve makes
 * without --cert, or reads --cert/--key (PEM). 0, or -1 with the reason in
 * err. */
int material_make(material *m, char *err, size_t errlen);
int material_read(material *m, const char *cert, const char *key, char *err, size_t errlen);
void material_free(material *m);

/* ---- wolfSSL contexts (ctx.c) --------------------------------------------- */

/* The server context built by atoll (atoll__tls_server_ctx_new) for a
 * server without resumption, holding `m`. `aes_first`: atoll reports
 * AES-GCM first for this machine (else ChaCha20-Poly1305 first);
 * *first_tls13 gets the TLS 1.3 suite that order puts first, the one a run
 * must negotiate. 0, or -1 with the reason in err. */
int server_ctx_new(const material *m, bool aes_first, WOLFSSL_CTX **out, const char **first_tls13, char *err,
                   size_t errlen);

/* A TLS 1.3-only client context with atoll's group preference; it does not
 * verify the server (the server's work is what is measured). */
int client_ctx_new(WOLFSSL_CTX **out, char *err, size_t errlen);

/* ---- in-memory links (link.c) --------------------------------------------- */

#define LINK_CAP 65536u /* bytes in flight one way; a handshake flight is ~1 KiB */

typedef struct byte_pipe {
    uint8_t data[LINK_CAP];
    size_t head, tail; /* unread bytes are data[head..tail) */
} byte_pipe;

/* One end of a link: what it reads from, what it writes to. The I/O
 * context of a WOLFSSL object (wolfSSL_SetIOReadCtx/WriteCtx). */
typedef struct link_end {
    byte_pipe *in, *out;
} link_end;

/* Both directions between one client and one server. */
typedef struct mem_link {
    byte_pipe to_server, to_client;
    link_end client, server;
} mem_link;

/* Points the ends at the pipes and empties both. */
void link_reset(mem_link *l);

/* Installs the link's I/O callbacks on a context: wolfSSL never touches a
 * socket. */
void link_set_io(WOLFSSL_CTX *ctx);

/* ---- one handshake (handshake.c) ----------------------------------------- */

typedef struct bench {
    WOLFSSL_CTX *server_ctx, *client_ctx;
    const char *expect_cipher; /* the TLS 1.3 suite the server prefers */
    mem_link *link;
    uint64_t server_ns; /* thread CPU inside server-side wolfSSL calls */
    uint64_t handshakes;
    char cipher[64], group[32]; /* from the first handshake */
} bench;

/* Thread CPU time in ns (CLOCK_THREAD_CPUTIME_ID). Exits on failure, which
 * the start-up check in main.c has ruled out. */
uint64_t thread_cpu_ns(void);

/* One full handshake, a 64-byte echo from client to server and back, and
 * both objects freed, adding the server's CPU time to b->server_ns.
 * 0, or -1 with the reason in err (wrong version, group or cipher too). */
int handshake_once(bench *b, char *err, size_t errlen);

/* ---- results (report.c) ---------------------------------------------------- */

typedef struct results {
    uint64_t handshakes;
    double server_cpu_s, total_cpu_s, wall_s;
    const char *wolfssl_version, *wolfssl_build;
    const char *cipher, *group, *certificate;
} results;

/* Prints the result lines on stdout. */
void report_print(const results *r);

/* Writes the results as one JSON object to `f` (opened on `path` before the
 * run, so a bad path fails at once) and closes it. 0, or -1 with the reason
 * printed. */
int report_json(const results *r, FILE *f, const char *path);

#endif /* ATOLL_TOOLS_HSBENCH_H */
