/*
 * tools/atoll-load/cli.c: atoll-load's command line: the usage text, the
 * flags with their checks and defaults, --target split, resolved and
 * checked to be loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

const char *const scenario_names[] = {"handshake", "rr", "bulk", "idle", "churn"};

static void usage(FILE *f)
{
    fprintf(f, "usage: atoll-load --target HOST:PORT --scenario handshake|rr|bulk|idle|churn\n"
               "                  [--connections N] [--duration S] [--requests N] [--isolates N] [--http]\n"
               "                  [--size BYTES] [--resume] [--alpn LIST] [--cafile FILE | --insecure] [--json FILE]\n"
               "                  [--progress] [--allow-remote] [--plain]\n"
               "                  [--rate R [--arrivals uniform|poisson] [--seed N]]\n");
    if (f == stderr) {
        fprintf(f, "Run 'atoll-load --help' for the details.\n");
        return;
    }
    fprintf(f, "\n"
               "Load generator on atoll's client side: connection slots spread over the isolates of one runtime.\n"
               "\n"
               "  --target HOST:PORT   server; HOST a numeric address or a name, IPv6 as [::1]:PORT. Only\n"
               "                       loopback (127.0.0.0/8, ::1, ::ffff:127.x) unless --allow-remote.\n"
               "  --scenario NAME      handshake  one new TLS connection per op (full handshake, or with --resume\n"
               "                                  the slot's last session), one exchange, close.\n"
               "                                  ops = completed handshake+exchange. Default connections: 1.\n"
               "                       rr         keep-alive connections, request/response in a loop;\n"
               "                                  ops = request/response pairs.\n"
               "                       bulk       large responses: with --http GET /bytes/SIZE, else SIZE bytes\n"
               "                                  echoed back; reports MB/s. Default size 16 MiB.\n"
               "                       idle       open and hold connections (handshake + one small exchange);\n"
               "                                  ops = connections established; reports connections held.\n"
               "                       churn      connect, handshake, one exchange, close, as fast as possible\n"
               "                                  on every slot concurrently.\n"
               "  --connections N      concurrent connection slots (default 1 for handshake, else 8)\n"
               "  --duration S         run time in seconds, fractions allowed (default 10; with --requests\n"
               "                       and no --duration: no time bound)\n"
               "  --requests N         total ops (attempts, counting failed ones) before stopping\n"
               "  --isolates N         isolates (default: online CPUs, at most --connections)\n"
               "  --http               HTTP/1.1: GET / (GET /bytes/SIZE for bulk, or when --size is given);\n"
               "                       responses delimited by Content-Length (or by close)\n"
               "  --size BYTES         echo payload (default 64) or bulk response size (default 16777216)\n"
               "  --resume             resume TLS sessions (handshake, churn, reconnects)\n"
               "  --alpn LIST          ALPN protocols offered, comma-separated (e.g. http/1.1)\n"
               "  --cafile FILE        trust the CA certificates in FILE (PEM)\n"
               "  --insecure           skip certificate verification; one of --cafile or --insecure is\n"
               "                       required for TLS (verification is on by default)\n"
               "  --plain              cleartext TCP, no TLS (against e.g. atoll-serve --plain). Every scenario\n"
               "                       runs the same way with the TLS handshake left out: handshake and churn\n"
               "                       = TCP connect + one exchange + close per op; idle = connect + one small\n"
               "                       exchange, held; rr and bulk unchanged. \"connects\" (JSON \"handshakes\")\n"
               "                       counts TCP connections. Refused with --cafile, --insecure, --resume or\n"
               "                       --alpn (exit 2)\n"
               "  --json FILE          write the results as JSON: scenario, ops, ops_per_s, duration_s,\n"
               "                       errors {KIND: N}, latency_us {p50,p90,p99,p999,max}, bytes, mb_per_s,\n"
               "                       connections_held, isolates, connections, handshakes (connections\n"
               "                       established), resumed, unfinished, tls (false with --plain)\n"
               "                       rate (R, or null), intended_vs_actual {intended, issued, completed,\n"
               "                       max_queue_delay_us} (without --rate only completed, the rest null),\n"
               "                       and with --rate: arrivals, seed\n"
               "  --rate R             open loop (rr only; refused with the other scenarios, exit 2): R requests\n"
               "                       per second (0.001 to 1e7) over the whole run, shared by every\n"
               "                       connection and isolate, each started at its intended time when a\n"
               "                       connection is free, else queued until one is. Latency counts from the\n"
               "                       intended start, so a stalled server shows in the percentiles (no\n"
               "                       coordinated omission).\n"
               "                       Isolate i of n takes every n-th intended start (poisson: a stream of\n"
               "                       rate R/n); a due request waits for a connection of its isolate. The\n"
               "                       pacer runs every 1 ms: a request may start up to ~1 ms after its\n"
               "                       intended time even when a connection is free, and that counts. An\n"
               "                       isolate's schedule begins once its connections are open (setup is\n"
               "                       not queueing), at the latest 1 s into the run (a server that accepts\n"
               "                       none shows as requests due and not issued).\n"
               "                       With --requests N: at most N requests. intended = requests due before\n"
               "                       the bound (at most N), issued = requests started (issued <= intended),\n"
               "                       completed = ops, max_queue_delay_us = longest intended-to-start wait\n"
               "  --arrivals KIND      with --rate: uniform (default, 1/R apart) or poisson (exponential gaps\n"
               "                       of mean 1/R from a PRNG seeded by --seed)\n"
               "  --seed N             with --rate: the poisson PRNG's seed (default 1; same seed, same schedule)\n"
               "  --progress           live progress each second on stderr (default when stderr is a terminal)\n"
               "  --allow-remote       allow a target outside loopback\n"
               "  -h, --help           this text\n"
               "\n"
               "The run stops issuing ops at the bound, lets in-flight ops finish (at most 2 s), then stops.\n"
               "Latency is per op in microseconds. Error kinds: connect, handshake, certificate, timeout, reset,\n"
               "closed, http_status, http_parse, short_read, mismatch, or the atoll error name of another code.\n"
               "MB = 10^6 bytes of responses read. Exit: 0 run completed (even with op errors), 1 setup\n"
               "failure (bad target, runtime error), 2 bad flags.\n");
}

static int bad_flags(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_flags(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "atoll-load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e)
        return false;
    *out = v;
    return true;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return b[0] == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Splits HOST:PORT / [V6]:PORT, resolves HOST and checks the address. */
static int resolve_target(const char *target)
{
    char host[256];
    const char *port_s;
    if (target[0] == '[') {
        const char *rb = strchr(target, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - target - 1) >= sizeof(host) || rb == target + 1)
            return bad_flags("bad --target '%s' (expected [IPV6]:PORT)", target);
        memcpy(host, target + 1, (size_t)(rb - target - 1));
        host[rb - target - 1] = '\0';
        port_s = rb + 2;
    } else {
        const char *colon = strrchr(target, ':');
        if (!colon || colon == target || (size_t)(colon - target) >= sizeof(host) ||
            memchr(target, ':', (size_t)(colon - target)))
            return bad_flags("bad --target '%s' (expected HOST:PORT, IPv6 as [::1]:PORT)", target);
        memcpy(host, target, (size_t)(colon - target));
        host[colon - target] = '\0';
        port_s = colon + 1;
    }
    uint64_t port;
    if (!parse_u64(port_s, &port) || port < 1 || port > 65535)
        return bad_flags("bad port in --target '%s'", target);
    snprintf(cfg.host, sizeof(cfg.host), "%s", host);
    cfg.port = (int)port;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "atoll-load: cannot resolve '%s': %s\n", host, gai_strerror(rc));
        return 1;
    }
    /* Connections go to this (first) address; SNI and name checks use the name. */
    const struct sockaddr *sa = res->ai_addr;
    const void *bytes = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                                 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    inet_ntop(sa->sa_family, bytes, cfg.addr_text, sizeof(cfg.addr_text));
    bool loop = is_loopback(sa);
    freeaddrinfo(res);
    if (!loop && !cfg.allow_remote) {
        fprintf(stderr,
                "atoll-load: refusing target %s (%s): not a loopback address (127.0.0.0/8, ::1); "
                "pass --allow-remote to load a remote host\n",
                host, cfg.addr_text);
        return 1;
    }
    atoll_address probe;
    cfg.host_is_name = atoll_address_parse(host, &probe) != 0;
    return 0;
}

int parse_args(int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_SCENARIO,
        O_CONNECTIONS,
        O_DURATION,
        O_REQUESTS,
        O_ISOLATES,
        O_HTTP,
        O_SIZE,
        O_RESUME,
        O_ALPN,
        O_CAFILE,
        O_INSECURE,
        O_JSON,
        O_PROGRESS,
        O_ALLOW_REMOTE,
        O_PLAIN,
        O_RATE,
        O_ARRIVALS,
        O_SEED
    };
    static const struct option longopts[] = {
        {"target", required_argument, NULL, O_TARGET},
        {"scenario", required_argument, NULL, O_SCENARIO},
        {"connections", required_argument, NULL, O_CONNECTIONS},
        {"duration", required_argument, NULL, O_DURATION},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"isolates", required_argument, NULL, O_ISOLATES},
        {"http", no_argument, NULL, O_HTTP},
        {"size", required_argument, NULL, O_SIZE},
        {"resume", no_argument, NULL, O_RESUME},
        {"alpn", required_argument, NULL, O_ALPN},
        {"cafile", required_argument, NULL, O_CAFILE},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"json", required_argument, NULL, O_JSON},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"allow-remote", no_argument, NULL, O_ALLOW_REMOTE},
        {"plain", no_argument, NULL, O_PLAIN},
        {"rate", required_argument, NULL, O_RATE},
        {"arrivals", required_argument, NULL, O_ARRIVALS},
        {"seed", required_argument, NULL, O_SEED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *target = NULL, *scenario = NULL;
    bool have_conns = false, have_duration = false, have_iso = false;
    const char *rate_only = NULL; /* --arrivals or --seed, which need --rate */
    uint64_t v;
    int opt;
    opterr = 0;
    cfg.duration_s = 10;
    cfg.seed = DEFAULT_SEED;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            exit(0);
        case O_TARGET:
            target = optarg;
            break;
        case O_SCENARIO:
            scenario = optarg;
            break;
        case O_CONNECTIONS:
            if (!parse_u64(optarg, &v) || v < 1 || v > 1000000)
                return bad_flags("bad --connections '%s' (1..1000000)", optarg);
            cfg.connections = (uint32_t)v;
            have_conns = true;
            break;
        case O_DURATION: {
            char *e;
            double d = strtod(optarg, &e);
            if (e == optarg || *e || !(d > 0) || d > 1e7)
                return bad_flags("bad --duration '%s' (seconds > 0)", optarg);
            cfg.duration_s = d;
            have_duration = true;
            break;
        }
        case O_REQUESTS:
            if (!parse_u64(optarg, &v) || v < 1 || v > (uint64_t)INT64_MAX / 2)
                return bad_flags("bad --requests '%s' (>= 1)", optarg);
            cfg.requests = v;
            break;
        case O_ISOLATES:
            if (!parse_u64(optarg, &v) || v < 1 || v > MAX_ISOLATES)
                return bad_flags("bad --isolates '%s' (1..256)", optarg);
            cfg.isolates = (uint32_t)v;
            have_iso = true;
            break;
        case O_HTTP:
            cfg.http = true;
            break;
        case O_SIZE:
            if (!parse_u64(optarg, &v) || v < 1 || v > (1ull << 40))
                return bad_flags("bad --size '%s' (1..2^40 bytes)", optarg);
            cfg.size = v;
            cfg.size_given = true;
            break;
        case O_RESUME:
            cfg.resume = true;
            break;
        case O_ALPN: {
            free(cfg.alpn_buf);
            cfg.alpn_buf = strdup(optarg);
            cfg.alpn_count = 0;
            char *save = NULL;
            for (char *t = strtok_r(cfg.alpn_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (cfg.alpn_count == MAX_ALPN || strlen(t) > 255)
                    return bad_flags("bad --alpn '%s' (at most 16 names of 1..255 bytes)", optarg);
                cfg.alpn[cfg.alpn_count++] = t;
            }
            if (!cfg.alpn_count)
                return bad_flags("bad --alpn '%s'", optarg);
            break;
        }
        case O_CAFILE:
            cfg.cafile = optarg;
            break;
        case O_INSECURE:
            cfg.insecure = true;
            break;
        case O_JSON:
            cfg.json = optarg;
            break;
        case O_PROGRESS:
            cfg.progress = true;
            break;
        case O_ALLOW_REMOTE:
            cfg.allow_remote = true;
            break;
        case O_PLAIN:
            cfg.plain = true;
            break;
        case O_RATE: {
            char *e;
            double r = strtod(optarg, &e);
            /* !(r >= MIN_RATE) also refuses NaN; the upper bound refuses inf. */
            if (e == optarg || *e || !(r >= MIN_RATE) || r > MAX_RATE)
                return bad_flags("bad --rate '%s' (requests per second, a number > 0: 0.001 to 1e7)", optarg);
            cfg.rate = r;
            break;
        }
        case O_ARRIVALS:
            if (!strcmp(optarg, "uniform"))
                cfg.arrivals = AR_UNIFORM;
            else if (!strcmp(optarg, "poisson"))
                cfg.arrivals = AR_POISSON;
            else
                return bad_flags("bad --arrivals '%s' (uniform|poisson)", optarg);
            rate_only = "--arrivals";
            break;
        case O_SEED:
            if (!parse_u64(optarg, &v))
                return bad_flags("bad --seed '%s' (an integer >= 0)", optarg);
            cfg.seed = v;
            rate_only = "--seed";
            break;
        default:
            return bad_flags("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_flags("unexpected argument '%s'", argv[optind]);
    if (!target)
        return bad_flags("%s", "--target is required");
    if (!scenario)
        return bad_flags("%s", "--scenario is required");
    bool found = false;
    for (int i = 0; i < 5; i++)
        if (!strcmp(scenario, scenario_names[i])) {
            cfg.scenario = (enum scenario)i;
            found = true;
        }
    if (!found)
        return bad_flags("unknown --scenario '%s' (handshake|rr|bulk|idle|churn)", scenario);
    if (cfg.cafile && cfg.insecure)
        return bad_flags("%s", "--cafile and --insecure exclude each other");
    if (rate_only && !cfg.rate)
        return bad_flags("%s needs --rate", rate_only);
    if (cfg.rate && cfg.scenario != SC_RR)
        return bad_flags("--rate is for --scenario rr only (open-loop request/response), not %s",
                         scenario_names[cfg.scenario]);
    const char *tls_flag = cfg.cafile       ? "--cafile"
                           : cfg.insecure   ? "--insecure"
                           : cfg.resume     ? "--resume"
                           : cfg.alpn_count ? "--alpn"
                                            : NULL;
    if (cfg.plain && tls_flag)
        return bad_flags("%s is a TLS option: --plain is cleartext TCP and takes no TLS option "
                         "(--cafile, --insecure, --resume, --alpn)",
                         tls_flag);
    if (!cfg.plain && !cfg.cafile && !cfg.insecure)
        return bad_flags("%s", "TLS verification is on by default: give --cafile FILE (trusted CA), or --insecure to "
                               "skip verification, or --plain for cleartext");
    if (cfg.requests && !have_duration)
        cfg.duration_s = 0;
    if (!have_conns)
        cfg.connections = cfg.scenario == SC_HANDSHAKE ? 1 : 8;
    if (!cfg.size_given)
        cfg.size = cfg.scenario == SC_BULK ? 16u << 20 : 64;
    if (!have_iso) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.isolates = n < 1 ? 1 : n > MAX_ISOLATES ? MAX_ISOLATES : (uint32_t)n;
    }
    if (cfg.isolates > cfg.connections)
        cfg.isolates = cfg.connections;
    if (cfg.cafile && access(cfg.cafile, R_OK) != 0) {
        fprintf(stderr, "atoll-load: cannot read --cafile %s: %s\n", cfg.cafile, strerror(errno));
        return 1;
    }
    return resolve_target(target);
}
