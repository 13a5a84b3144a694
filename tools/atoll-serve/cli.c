/*
 * tools/atoll-serve/cli.c: atoll-serve's command line: the usage text, the
 * option parser that fills the configuration, and the ALPN list split into
 * protocol names. A bad command line exits 2 with the reason and the usage;
 * so does --plain with a TLS-only flag, which would otherwise be ignored,
 * and --ticket-key-file with --no-resumption.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli_flags.h"
#include "serve.h"

static const char usage_text[] =
    "Usage:\n"
    "atoll-serve [--address ADDR] [--port N] [--isolates N] [--mode http|echo] [--plain]\n"
    "            [--cert FILE --key FILE [--key-password PW]] [--write-cert FILE]\n"
    "            [--alpn LIST] [--alpn-strict] [--request-client-cert | --require-client-cert]\n"
    "            [--client-ca FILE]\n"
    "            [--v6only] [--backlog N] [--handshake-timeout MS] [--no-resumption] [--duration S]\n"
    "            [--pin-cpus] [--steering hash|cpu] [--drain-timeout MS] [--admin ADDR:PORT]\n"
    "            [--idle-timeout MS] [--header-timeout MS] [--max-conns N]\n"
    "            [--proxy-protocol [--proxy-allow CIDR[,CIDR...]]] [--drain-delay MS]\n"
    "            [--ticket-key-file FILE]...\n"
    "\n"
    "A TLS server on every isolate of an atoll runtime (one shared, runtime-steered\n"
    "listener per isolate); with --plain the same server over cleartext TCP.\n"
    "\n"
    "Options:\n"
    "  --address ADDR          address to bind (numeric IPv4/IPv6 or a host name).\n"
    "                          Default 127.0.0.1\n"
    "  --port N                port, 0..65535; 0 picks a free one. Default 0\n"
    "  --isolates N            isolates (worker threads), 1..1024. Default: online CPUs\n"
    "  --mode http|echo        http: minimal HTTP/1.1 (below); echo: send back every\n"
    "                          byte received. Default http\n"
    "  --plain                 cleartext TCP, no TLS: the same modes, output and\n"
    "                          signals. The TLS-only options (--cert, --key,\n"
    "                          --key-password, --write-cert, --alpn, --alpn-strict,\n"
    "                          --request-client-cert, --require-client-cert,\n"
    "                          --client-ca, --handshake-timeout (allowed with\n"
    "                          --proxy-protocol), --no-resumption,\n"
    "                          --ticket-key-file) are refused with it (exit 2)\n"
    "  --cert FILE             certificate chain (PEM, leaf first, or one DER certificate)\n"
    "  --key FILE              its private key (PEM or DER); required with --cert\n"
    "  --key-password PW       password of an encrypted --key\n"
    "                          Without --cert: an ephemeral self-signed ECDSA P-256\n"
    "                          certificate for CN=localhost, SANs DNS:localhost,\n"
    "                          IP:127.0.0.1, IP:::1, valid 30 days, made in memory\n"
    "  --write-cert FILE       write the server's certificate chain as PEM to FILE\n"
    "                          (before the listening line), for clients to trust\n"
    "  --alpn LIST             ALPN protocols, comma-separated, in server preference\n"
    "                          order; \"\" offers none. In http mode only http/1.1\n"
    "                          and http/1.0 (what it speaks; h2 is refused, exit 2).\n"
    "                          Default http/1.1\n"
    "  --alpn-strict           a client offering ALPN with no protocol in common\n"
    "                          fails the handshake (no_application_protocol alert)\n"
    "                          instead of going on without one\n"
    "  --request-client-cert   ask clients for a certificate (optional)\n"
    "  --require-client-cert   require one (fail the handshake without)\n"
    "  --client-ca FILE        certificates (PEM or DER) trusted to verify client\n"
    "                          certificates, also sent as the acceptable authorities\n"
    "  --v6only                IPV6_V6ONLY for an IPv6 address (default dual stack)\n"
    "  --backlog N             listen backlog per isolate, 0..65535; 0 = SOMAXCONN.\n"
    "                          Default 0\n"
    "  --handshake-timeout MS  TLS handshake timeout in ms (with --proxy-protocol it\n"
    "                          covers the PROXY header too); 0 disables. Default 10000\n"
    "  --no-resumption         no session tickets or cache: every handshake is full\n"
    "  --ticket-key-file FILE  session-ticket keys shared with other servers, so a\n"
    "                          session begun on one resumes on another: nginx's\n"
    "                          ssl_session_ticket_key format, 80-byte keys back to\n"
    "                          back (16-byte name, 32-byte HMAC secret, 32-byte AES\n"
    "                          key; e.g. `openssl rand 80 > FILE`), at most 64 keys\n"
    "                          in all. May be repeated: the keys of all the files in\n"
    "                          command-line order, the first one sealing new\n"
    "                          tickets, every one opening them. Read at start-up (a\n"
    "                          size not a positive multiple of 80 exits 1) and again\n"
    "                          on SIGHUP. Not with --no-resumption. Default: the\n"
    "                          server's own random keys, rotated hourly\n"
    "  --pin-cpus              pin isolate i to the i-th CPU this process may run on\n"
    "  --steering hash|cpu     how the kernel's SO_REUSEPORT group spreads new\n"
    "                          connections: hash (client address and port) or cpu (to\n"
    "                          the isolate pinned to the CPU that processed the SYN,\n"
    "                          others by the hash; implies --pin-cpus). Default hash\n"
    "  --duration S            stop by itself after S seconds (may be fractional)\n"
    "  --idle-timeout MS       close a connection with nothing received or sent for\n"
    "                          MS (a send blocked on a peer that does not read\n"
    "                          counts as nothing sent), 0..86400000; 0 disables.\n"
    "                          Default 60000\n"
    "  --header-timeout MS     http: a request head must complete within MS of its\n"
    "                          first byte, else 408 and the connection closes,\n"
    "                          0..86400000; 0 disables. Default 10000\n"
    "  --max-conns N           most connections of the whole server at once (all\n"
    "                          isolates, handshaking ones too), 0..16777216; at the\n"
    "                          cap new connections wait in the kernel's queue\n"
    "                          (backlog). 0: no cap but the per-isolate table. Default 0\n"
    "  --proxy-protocol        every connection begins with a PROXY protocol header\n"
    "                          (v1 or v2, as HAProxy's send-proxy and send-proxy-v2\n"
    "                          write), read before the TLS handshake; the server\n"
    "                          sees the client address it carries (a v2 LOCAL or v1\n"
    "                          UNKNOWN header keeps the balancer's). A missing,\n"
    "                          malformed or oversized header closes the connection\n"
    "                          (counted as kind \"proxy\"); one not complete within\n"
    "                          --handshake-timeout too (kind \"timeout\")\n"
    "  --proxy-allow LIST      with --proxy-protocol: the only sources a header is\n"
    "                          taken from, CIDR[,CIDR...] (numeric; an address alone\n"
    "                          is one host); connections from anywhere else are\n"
    "                          closed unread (kind \"proxy_denied\").\n"
    "                          Default 127.0.0.0/8,::1/128\n"
    "  --drain-delay MS        on SIGINT, SIGTERM, the end of --duration or POST\n"
    "                          /drain: GET /ready answers 503 at once, and the\n"
    "                          server goes on accepting for MS before the drain\n"
    "                          itself begins, so a balancer's health checks take\n"
    "                          it out first, 0..3600000. Default 0\n"
    "  --drain-timeout MS      how long a drain (signals, --duration, the admin\n"
    "                          port's /drain and DELETE /isolates/N) lets\n"
    "                          connections finish before closing them, 0..86400000.\n"
    "                          Default 30000\n"
    "  --admin ADDR:PORT       the admin port: plain HTTP/1.1 on ADDR (numeric;\n"
    "                          \"PORT\" alone means 127.0.0.1; IPv6 as [::1]:PORT;\n"
    "                          port 0 picks a free one), one request per connection:\n"
    "                            POST /isolates            add an isolate: {\"id\":N}\n"
    "                            DELETE /isolates/N        retire isolate N; answers\n"
    "                                                      once it has drained\n"
    "                            POST /isolates/N/pause    pause its listener member\n"
    "                            POST /isolates/N/resume   resume it\n"
    "                            POST /drain               drain as on SIGTERM, exit\n"
    "                            GET /stats                the counters line\n"
    "                            GET /metrics              the counters and more, per\n"
    "                                                      isolate, Prometheus text\n"
    "                            GET /ready                200 ready; 503 draining once\n"
    "                                                      a drain began (signal or /drain)\n"
    "                            GET /live                 200 live while the process runs\n"
    "                          Errors: JSON {\"error\":...,\"code\":...} with 400,\n"
    "                          404, 405, 409 (refused: e.g. the last isolate),\n"
    "                          504 (not drained in time), 507 (no more isolates:\n"
    "                          ids are never reused, 1024 can be added over the\n"
    "                          server's life)\n"
    "  -h, --help              this text\n"
    "\n"
    "Output (stdout, one line each, flushed):\n"
    "  listening on ADDR:PORT isolates=N\n"
    "      once every isolate listens. ADDR is --address as given, in brackets\n"
    "      when it contains ':' (IPv6), e.g. \"listening on [::1]:8443 isolates=2\";\n"
    "      PORT is the real port (also after --port 0).\n"
    "  admin on ADDR:PORT\n"
    "      with --admin, right after the listening line: the admin port's real\n"
    "      address and port.\n"
    "  {\"isolates\":[{\"id\":0,\"accepted\":A,\"handshakes\":H,\"handshake_errors\":E,\n"
    "      \"bytes_in\":I,\"bytes_out\":O,\"drain_closed\":D,\"idle_closed\":L,\n"
    "      \"header_timeouts\":T,\"loop_turns\":N},...]}\n"
    "      per-isolate counters of every isolate the server had (added and retired\n"
    "      ones too), on SIGUSR1 (keeps running), GET /stats and at exit. accepted:\n"
    "      TCP connections accepted; handshakes: TLS handshakes completed (connections\n"
    "      served); handshake_errors: connections that failed before being served;\n"
    "      bytes_in/bytes_out: bytes on the wire (TLS records) of its connections;\n"
    "      drain_closed: connections still open at the drain's deadline, closed then;\n"
    "      idle_closed: connections closed by --idle-timeout; header_timeouts:\n"
    "      requests answered 408 by --header-timeout; loop_turns: event-loop turns.\n"
    "      With --plain: handshakes is always 0 (there are none) and bytes_in/bytes_out\n"
    "      count the cleartext.\n"
    "\n"
    "Signals: SIGINT or SIGTERM (or the end of --duration) drain the server: no new\n"
    "connection is accepted (those already queued are served; new ones are refused\n"
    "once the sockets close, none is reset), handshakes in flight finish, every\n"
    "connection finishes its exchange and closes (http: after its next response,\n"
    "which says \"Connection: close\", or a second into the drain when quiet\n"
    "between requests; a new connection waits for its first request; echo: after\n"
    "its next echo or the peer's close),\n"
    "what is left at --drain-timeout is closed; then the counters are printed and\n"
    "the exit status is 0. SIGUSR1 prints the counters. SIGHUP re-reads every\n"
    "--ticket-key-file and prints on stderr \"ticket keys reloaded: N key(s) from\n"
    "M file(s)\"; if one cannot be read or has a bad size it prints\n"
    "\"atoll-serve: --ticket-key-file: reload failed: REASON; keeping the previous\n"
    "keys\" and serves on with them. Without --ticket-key-file SIGHUP only says\n"
    "there is nothing to reload.\n"
    "\n"
    "HTTP mode (keep-alive, pipelining; requests up to 8 KiB of headers):\n"
    "  GET|HEAD /          200, body \"hello\\n\"\n"
    "  GET|HEAD /bytes/N   200, N bytes (0 <= N <= 1073741824), streamed\n"
    "  GET|HEAD /whoami    200, body \"ADDR PORT\\n\": the client's address and port\n"
    "                      as the server sees them (with --proxy-protocol: the\n"
    "                      header's), e.g. \"127.0.0.1 40312\\n\"\n"
    "  other paths         404, body \"not found\\n\" (connection kept)\n"
    "  malformed request, other method, headers over 8 KiB, N too large, a request\n"
    "  with Transfer-Encoding, an HTTP/1.1 request without Host, a request with\n"
    "  two Host fields, a NUL byte in a field value: 400, then the connection is\n"
    "  closed. Targets in absolute form (http://host/path) are accepted.\n"
    "  \"Connection: close\" and HTTP/1.0 without \"Connection: keep-alive\" close\n"
    "  after the response. Every response has Content-Length and Date.\n"
    "\n"
    "Stderr: the runtime's log lines, prefixed \"warning: \" or \"error: \" (for\n"
    "example a socket of another process joining the listeners' SO_REUSEPORT\n"
    "group, once per socket).\n"
    "\n"
    "Environment: ATOLL_SERVE_DEBUG (any value) logs on stderr every failed\n"
    "handshake and every connection that ended with an error, with the peer and\n"
    "the reason, one line each.\n"
    "\n"
    "Exit status: 0 after a signal or --duration; 1 runtime errors (certificate,\n"
    "key or ticket key files, io_uring, bind); 2 bad command line.\n";

/* The reason, the usage, exit 2 (tools/common/cli_flags.c). */
#define usage_error(...) cli_usage_error(PROG, usage_text, __VA_ARGS__)

static int64_t parse_int(const char *flag, const char *s, int64_t lo, int64_t hi)
{
    if (!s || !*s)
        usage_error("%s needs a value", flag);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || s[0] == ' ' || s[0] == '+')
        usage_error("%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi)
        usage_error("%s: %lld is out of range %" PRId64 "..%" PRId64, flag, v, lo, hi);
    return v;
}

/* The shape the library's proxy_allow takes: numeric addresses, each with
 * an optional /prefix in range, comma-separated, blanks around items. */
static bool cidr_list_ok(const char *list)
{
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        char item[64];
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || n >= sizeof(item))
            return false;
        memcpy(item, p, n);
        item[n] = '\0';
        char *slash = strchr(item, '/');
        if (slash)
            *slash = '\0';
        unsigned char bytes[16];
        int bits = inet_pton(AF_INET, item, bytes) == 1 ? 32 : inet_pton(AF_INET6, item, bytes) == 1 ? 128 : 0;
        if (bits == 0)
            return false;
        if (slash) {
            char *end = NULL;
            errno = 0;
            long v = strtol(slash + 1, &end, 10);
            if (errno || end == slash + 1 || *end || slash[1] < '0' || slash[1] > '9' || v > bits)
                return false;
        }
        p += strcspn(p, ",");
        if (!*p)
            return true;
        p++;
    }
}

void parse_args(int argc, char **argv, config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->address = "127.0.0.1";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->isolates = cpus > 0 ? (uint32_t)cpus : 1;
    cfg->mode = MODE_HTTP;
    cfg->alpn = "http/1.1";
    cfg->handshake_timeout_ms = 10000;
    cfg->drain_timeout_ms = 30000;
    cfg->idle_timeout_ms = 60000;
    cfg->header_timeout_ms = 10000;
    /* The first TLS-only flag given, for the --plain check once all are read. */
    const char *tls_flag = NULL;
    bool handshake_timeout_flag = false;
    for (int i = 1; i < argc; i++) {
        char flagbuf[CLI_FLAG_BUF];
        const char *val;
        /* --flag=value is accepted as well as --flag value. */
        const char *a = cli_split_flag(argv[i], flagbuf, &val);
#define TLS_ONLY(name)                                                                                                 \
    do {                                                                                                               \
        if (!tls_flag)                                                                                                 \
            tls_flag = name;                                                                                           \
    } while (0)
        if (FLAG("-h") || FLAG("--help")) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (FLAG("--address")) {
            NEED_VALUE();
            if (!*val)
                usage_error("--address: empty");
            cfg->address = val;
        } else if (FLAG("--port")) {
            NEED_VALUE();
            cfg->port = (int)parse_int(a, val, 0, 65535);
        } else if (FLAG("--isolates")) {
            NEED_VALUE();
            cfg->isolates = (uint32_t)parse_int(a, val, 1, 1024);
        } else if (FLAG("--mode")) {
            NEED_VALUE();
            if (strcmp(val, "http") == 0)
                cfg->mode = MODE_HTTP;
            else if (strcmp(val, "echo") == 0)
                cfg->mode = MODE_ECHO;
            else
                usage_error("--mode: '%s' is not http or echo", val);
        } else if (FLAG("--cert")) {
            NEED_VALUE();
            cfg->cert = val;
            TLS_ONLY("--cert");
        } else if (FLAG("--key")) {
            NEED_VALUE();
            cfg->key = val;
            TLS_ONLY("--key");
        } else if (FLAG("--key-password")) {
            NEED_VALUE();
            cfg->key_password = val;
            TLS_ONLY("--key-password");
        } else if (FLAG("--write-cert")) {
            NEED_VALUE();
            cfg->write_cert = val;
            TLS_ONLY("--write-cert");
        } else if (FLAG("--alpn")) {
            NEED_VALUE();
            cfg->alpn = val;
            TLS_ONLY("--alpn");
        } else if (FLAG("--alpn-strict")) {
            NO_VALUE();
            cfg->alpn_strict = true;
            TLS_ONLY("--alpn-strict");
        } else if (FLAG("--request-client-cert")) {
            NO_VALUE();
            cfg->request_cert = true;
            TLS_ONLY("--request-client-cert");
        } else if (FLAG("--require-client-cert")) {
            NO_VALUE();
            cfg->require_cert = true;
            TLS_ONLY("--require-client-cert");
        } else if (FLAG("--client-ca")) {
            NEED_VALUE();
            cfg->client_ca = val;
            TLS_ONLY("--client-ca");
        } else if (FLAG("--plain")) {
            NO_VALUE();
            cfg->plain = true;
        } else if (FLAG("--v6only")) {
            NO_VALUE();
            cfg->v6only = true;
        } else if (FLAG("--backlog")) {
            NEED_VALUE();
            cfg->backlog = (int)parse_int(a, val, 0, 65535);
        } else if (FLAG("--handshake-timeout")) {
            NEED_VALUE();
            cfg->handshake_timeout_ms = (uint32_t)parse_int(a, val, 0, UINT32_MAX);
            handshake_timeout_flag = true;
        } else if (FLAG("--no-resumption")) {
            NO_VALUE();
            cfg->no_resumption = true;
            TLS_ONLY("--no-resumption");
        } else if (FLAG("--ticket-key-file")) {
            NEED_VALUE();
            if (!*val)
                usage_error("--ticket-key-file: empty");
            if (!cfg->ticket_key_files) {
                cfg->ticket_key_files = calloc((size_t)argc, sizeof(*cfg->ticket_key_files));
                if (!cfg->ticket_key_files) {
                    fprintf(stderr, PROG ": out of memory\n");
                    exit(1);
                }
            }
            cfg->ticket_key_files[cfg->nticket_key_files++] = val;
            TLS_ONLY("--ticket-key-file");
        } else if (FLAG("--admin")) {
            NEED_VALUE();
            char host[256];
            int port;
            if (admin_parse(val, host, sizeof(host), &port) < 0)
                usage_error("--admin: '%s' is not ADDR:PORT, [ADDR6]:PORT or PORT", val);
            cfg->admin = val;
        } else if (FLAG("--idle-timeout")) {
            NEED_VALUE();
            cfg->idle_timeout_ms = (uint32_t)parse_int(a, val, 0, 86400000);
        } else if (FLAG("--header-timeout")) {
            NEED_VALUE();
            cfg->header_timeout_ms = (uint32_t)parse_int(a, val, 0, 86400000);
        } else if (FLAG("--max-conns")) {
            NEED_VALUE();
            cfg->max_conns = (uint32_t)parse_int(a, val, 0, 16777216);
        } else if (FLAG("--proxy-protocol")) {
            NO_VALUE();
            cfg->proxy_protocol = true;
        } else if (FLAG("--proxy-allow")) {
            NEED_VALUE();
            if (!cidr_list_ok(val))
                usage_error("--proxy-allow: '%s' is not a list of CIDR networks (e.g. 10.0.0.0/8,::1/128)", val);
            cfg->proxy_allow = val;
        } else if (FLAG("--drain-delay")) {
            NEED_VALUE();
            cfg->drain_delay_ms = (uint32_t)parse_int(a, val, 0, 3600000);
        } else if (FLAG("--drain-timeout")) {
            NEED_VALUE();
            cfg->drain_timeout_ms = (uint32_t)parse_int(a, val, 0, 86400000);
        } else if (FLAG("--pin-cpus")) {
            NO_VALUE();
            cfg->pin_cpus = true;
        } else if (FLAG("--steering")) {
            NEED_VALUE();
            if (strcmp(val, "hash") == 0)
                cfg->steer_cpu = false;
            else if (strcmp(val, "cpu") == 0)
                cfg->steer_cpu = true;
            else
                usage_error("--steering: '%s' is not hash or cpu", val);
        } else if (FLAG("--duration")) {
            NEED_VALUE();
            char *end = NULL;
            errno = 0;
            double d = strtod(val, &end);
            if (errno || !*val || *end || !(d > 0) || d > 1e9)
                usage_error("--duration: '%s' is not a positive number of seconds", val);
            cfg->duration_s = d;
        } else if (a[0] == '-') {
            usage_error("unknown option '%s'", argv[i]);
        } else {
            usage_error("unexpected argument '%s'", argv[i]);
        }
#undef TLS_ONLY
    }
    /* The handshake timeout also bounds the wait for a PROXY header. */
    if (handshake_timeout_flag && !cfg->proxy_protocol && !tls_flag)
        tls_flag = "--handshake-timeout";
    if (cfg->proxy_allow && !cfg->proxy_protocol)
        usage_error("--proxy-allow needs --proxy-protocol");
    if (cfg->plain && tls_flag)
        usage_error("%s is a TLS option: --plain serves cleartext and takes no TLS option", tls_flag);
    if (cfg->no_resumption && cfg->nticket_key_files > 0)
        usage_error("--ticket-key-file and --no-resumption exclude each other (no tickets without resumption)");
    if (cfg->request_cert && cfg->require_cert)
        usage_error("--request-client-cert and --require-client-cert exclude each other");
    if (cfg->cert && !cfg->key)
        usage_error("--cert needs --key");
    if (cfg->key && !cfg->cert)
        usage_error("--key needs --cert");
    if (cfg->key_password && !cfg->key)
        usage_error("--key-password needs --key");
    /* Offering a protocol it does not speak would let a client pick it and
     * then fail: in http mode only HTTP/1.x. */
    if (cfg->mode == MODE_HTTP && !cfg->plain)
        for (const char *p = cfg->alpn; *p;) {
            size_t n = strcspn(p, ",");
            if (!((n == 8 && !strncmp(p, "http/1.1", 8)) || (n == 8 && !strncmp(p, "http/1.0", 8))))
                usage_error("--alpn: http mode speaks http/1.1 and http/1.0 only, not '%.*s'", (int)n, p);
            p += n + (p[n] == ',');
        }
}

/* ALPN list "a,b,c" -> array of strings (pointing into one copy). */
char **alpn_split(const char *list, size_t *count, char **storage)
{
    *count = 0;
    *storage = NULL;
    if (!*list)
        return NULL;
    char *copy = strdup(list);
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **v = calloc(n, sizeof(*v));
    if (!copy || !v) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    size_t k = 0;
    /* strtok would merge empty items: check them by hand. */
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        size_t len = strlen(p);
        if (len == 0 || len > 255)
            usage_error("--alpn: every protocol must be 1..255 bytes ('%s')", list);
        v[k++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    *count = k;
    *storage = copy;
    return v;
}
