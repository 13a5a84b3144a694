/*
 * tools/atoll-hsbench/cli.c: atoll-hsbench's command line: the usage text
 * and the option parser that fills the configuration. A bad command line
 * exits 2 with the reason and the usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli_flags.h"
#include "hsbench.h"

#define DEFAULT_HANDSHAKES 2000u
#define MAX_HANDSHAKES     100000000u
#define MAX_SECONDS        86400.0

static const char usage_text[] =
    "Usage:\n"
    "atoll-hsbench [--handshakes N | --seconds S] [--cert FILE --key FILE] [--json FILE]\n"
    "\n"
    "wolfSSL's own server handshake rate, in process: a wolfSSL client and a\n"
    "wolfSSL server in one thread exchange bytes through memory (no sockets, no\n"
    "io_uring). Each handshake is a full TLS 1.3 handshake (X25519 key share, no\n"
    "session resumption) with atoll's server settings (runtime/base/tls_ctx.c),\n"
    "then a 64-byte echo from client to server and back, then both objects are\n"
    "freed. The CPU time of the server-side wolfSSL calls is measured apart\n"
    "from the client's. One warm-up handshake runs first and is not counted.\n"
    "\n"
    "Options:\n"
    "  --handshakes N   measured handshakes, 1..100000000. Default 2000\n"
    "  --seconds S      instead: run handshakes until S seconds of wall time have\n"
    "                   passed (may be fractional, at most 86400)\n"
    "  --cert FILE      server certificate chain (PEM, leaf first)\n"
    "  --key FILE       its private key (PEM, unencrypted); required with --cert\n"
    "                   Without --cert: an ephemeral self-signed ECDSA P-256\n"
    "                   certificate made in memory as atoll-serve makes it\n"
    "  --json FILE      also write the results as one JSON object to FILE\n"
    "  -h, --help       this text\n"
    "\n"
    "Output (stdout, one line each):\n"
    "  wolfssl VERSION BUILD              wolfSSL_lib_version(); \"optimized\" or\n"
    "                                     \"system\" (atoll_runtime_info.wolfssl_build)\n"
    "  certificate WHAT                   \"ephemeral ECDSA P-256\" or the --cert file\n"
    "  cipher NAME                        negotiated suite (wolfSSL's name)\n"
    "  group NAME                         negotiated key-exchange group\n"
    "  handshakes N                       handshakes measured\n"
    "  server cpu-s X.XXX                 thread CPU inside server-side wolfSSL calls\n"
    "  server handshakes per cpu-s R      N / server cpu-s, to 0.1\n"
    "  total cpu-s X.XXX                  thread CPU of the whole run (client too)\n"
    "  total handshakes per cpu-s T       N / total cpu-s, to 0.1\n"
    "  wall-s X.XXX                       wall time of the run\n"
    "--json FILE writes the same as {\"handshakes\":N,\"server_cpu_s\":X,\n"
    "\"server_handshakes_per_cpu_s\":R,\"total_cpu_s\":X,\"total_handshakes_per_cpu_s\":T,\n"
    "\"wall_s\":X,\"wolfssl_version\":\"V\",\"wolfssl_build\":\"B\",\"cipher\":\"C\",\n"
    "\"group\":\"G\",\"certificate\":\"W\"}.\n"
    "\n"
    "Exit status: 0 done; 1 a failure (material, wolfSSL, a handshake that did\n"
    "not negotiate TLS 1.3 with X25519 and atoll's cipher, the JSON file);\n"
    "2 bad command line.\n";

/* The reason, the usage, exit 2 (tools/common/cli_flags.c). */
#define usage_error(...) cli_usage_error(PROG, usage_text, __VA_ARGS__)

static uint64_t parse_count(const char *flag, const char *s, uint64_t lo, uint64_t hi)
{
    errno = 0;
    char *end = NULL;
    /* strtoull takes "-1" as a huge number: only digits are numbers here. */
    if (s[0] < '0' || s[0] > '9')
        usage_error("%s: '%s' is not a whole number", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        usage_error("%s: '%s' is not a whole number", flag, s);
    if (v < lo || v > hi)
        usage_error("%s: %llu is out of range %" PRIu64 "..%" PRIu64, flag, v, lo, hi);
    return v;
}

static double parse_seconds(const char *flag, const char *s)
{
    errno = 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (errno || !*s || *end || !(d > 0) || d > MAX_SECONDS)
        usage_error("%s: '%s' is not a number of seconds in (0, %.0f]", flag, s, MAX_SECONDS);
    return d;
}

void parse_args(int argc, char **argv, config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->handshakes = DEFAULT_HANDSHAKES;
    bool handshakes_set = false;
    for (int i = 1; i < argc; i++) {
        char flagbuf[CLI_FLAG_BUF];
        const char *val;
        /* --flag=value is accepted as well as --flag value. */
        const char *a = cli_split_flag(argv[i], flagbuf, &val);
        if (FLAG("-h") || FLAG("--help")) {
            NO_VALUE();
            fputs(usage_text, stdout);
            exit(0);
        } else if (FLAG("--handshakes")) {
            NEED_NONEMPTY_VALUE();
            cfg->handshakes = parse_count(a, val, 1, MAX_HANDSHAKES);
            handshakes_set = true;
        } else if (FLAG("--seconds")) {
            NEED_NONEMPTY_VALUE();
            cfg->seconds = parse_seconds(a, val);
        } else if (FLAG("--cert")) {
            NEED_NONEMPTY_VALUE();
            cfg->cert = val;
        } else if (FLAG("--key")) {
            NEED_NONEMPTY_VALUE();
            cfg->key = val;
        } else if (FLAG("--json")) {
            NEED_NONEMPTY_VALUE();
            cfg->json = val;
        } else if (a[0] == '-') {
            usage_error("unknown option '%s'", argv[i]);
        } else {
            usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (handshakes_set && cfg->seconds > 0)
        usage_error("--handshakes and --seconds exclude each other");
    if (cfg->cert && !cfg->key)
        usage_error("--cert needs --key");
    if (cfg->key && !cfg->cert)
        usage_error("--key needs --cert");
}
