/*
 * atoll-serve: the example TLS server the load scripts use.
 *
 * One runtime, one pool isolate per CPU (or --isolates N), and one shared
 * listener on every isolate (atoll_runtime_listen: SO_REUSEPORT, steered by
 * the runtime). Each connection is upgraded to TLS with either the
 * certificate given on the command line or an ephemeral self-signed ECDSA
 * P-256 one made at start-up, and then served as minimal HTTP/1.1 (default)
 * or echoed back.
 *
 * Threads: the main thread parses the command line, makes the certificate,
 * starts the runtime and then only waits for signals (sigtimedwait on a
 * mask blocked before the isolates start, so they inherit it). Everything
 * that touches a connection or a server runs on its isolate; counters are
 * read there through atoll_runtime_submit() and handed back under a mutex.
 *
 * Per-connection memory: a small `sconn` (list links, state, counters) and,
 * only while a request is being read or a response written, one 16 KiB
 * block taken from a per-isolate cache. Idle keep-alive connections hold no
 * block.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include <atoll/atoll.h>

#define PROG "atoll-serve"

/* ---------------------------------------------------------------------- */
/* Command line                                                           */
/* ---------------------------------------------------------------------- */

static const char usage_text[] =
    "Usage:\n"
    "atoll-serve [--address ADDR] [--port N] [--isolates N] [--mode http|echo]\n"
    "            [--cert FILE --key FILE [--key-password PW]] [--write-cert FILE]\n"
    "            [--alpn LIST] [--request-client-cert | --require-client-cert] [--client-ca FILE]\n"
    "            [--v6only] [--backlog N] [--handshake-timeout MS] [--no-resumption] [--duration S]\n"
    "\n"
    "A TLS server on every isolate of an atoll runtime (one shared, runtime-steered\n"
    "listener per isolate).\n"
    "\n"
    "Options:\n"
    "  --address ADDR          address to bind (numeric IPv4/IPv6 or a host name).\n"
    "                          Default 127.0.0.1\n"
    "  --port N                port, 0..65535; 0 picks a free one. Default 0\n"
    "  --isolates N            isolates (worker threads), 1..1024. Default: online CPUs\n"
    "  --mode http|echo        http: minimal HTTP/1.1 (below); echo: send back every\n"
    "                          byte received. Default http\n"
    "  --cert FILE             certificate chain (PEM, leaf first, or one DER certificate)\n"
    "  --key FILE              its private key (PEM or DER); required with --cert\n"
    "  --key-password PW       password of an encrypted --key\n"
    "                          Without --cert: an ephemeral self-signed ECDSA P-256\n"
    "                          certificate for CN=localhost, SANs DNS:localhost,\n"
    "                          IP:127.0.0.1, IP:::1, valid 30 days, made in memory\n"
    "  --write-cert FILE       write the server's certificate chain as PEM to FILE\n"
    "                          (before the listening line), for clients to trust\n"
    "  --alpn LIST             ALPN protocols, comma-separated, in server preference\n"
    "                          order; \"\" offers none. Default http/1.1\n"
    "  --request-client-cert   ask clients for a certificate (optional)\n"
    "  --require-client-cert   require one (fail the handshake without)\n"
    "  --client-ca FILE        certificates (PEM or DER) trusted to verify client\n"
    "                          certificates, also sent as the acceptable authorities\n"
    "  --v6only                IPV6_V6ONLY for an IPv6 address (default dual stack)\n"
    "  --backlog N             listen backlog per isolate, 0..65535; 0 = SOMAXCONN.\n"
    "                          Default 0\n"
    "  --handshake-timeout MS  TLS handshake timeout in ms; 0 disables. Default 10000\n"
    "  --no-resumption         no session tickets or cache: every handshake is full\n"
    "  --duration S            stop by itself after S seconds (may be fractional)\n"
    "  -h, --help              this text\n"
    "\n"
    "Output (stdout, one line each, flushed):\n"
    "  listening on ADDR:PORT isolates=N\n"
    "      once every isolate listens. ADDR is --address as given, in brackets\n"
    "      when it contains ':' (IPv6), e.g. \"listening on [::1]:8443 isolates=2\";\n"
    "      PORT is the real port (also after --port 0).\n"
    "  {\"isolates\":[{\"id\":0,\"accepted\":A,\"handshakes\":H,\"handshake_errors\":E,\n"
    "      \"bytes_in\":I,\"bytes_out\":O},...]}\n"
    "      per-isolate counters, on SIGUSR1 (keeps running) and at exit. accepted:\n"
    "      TCP connections accepted; handshakes: TLS handshakes completed (connections\n"
    "      served); handshake_errors: connections that failed before being served;\n"
    "      bytes_in/bytes_out: bytes on the wire (TLS records) of its connections.\n"
    "\n"
    "Signals: SIGINT or SIGTERM (or the end of --duration) stop accepting, finish\n"
    "the responses in progress (close idle keep-alive connections), wait up to 5 s,\n"
    "close what is left, print the counters and exit 0. SIGUSR1 prints the counters.\n"
    "\n"
    "HTTP mode (keep-alive, pipelining; requests up to 8 KiB of headers):\n"
    "  GET|HEAD /          200, body \"hello\\n\"\n"
    "  GET|HEAD /bytes/N   200, N bytes (0 <= N <= 1073741824), streamed\n"
    "  other paths         404, body \"not found\\n\" (connection kept)\n"
    "  malformed request, other method, headers over 8 KiB, N too large, a request\n"
    "  with Transfer-Encoding: 400, then the connection is closed.\n"
    "  \"Connection: close\" and HTTP/1.0 without \"Connection: keep-alive\" close\n"
    "  after the response. Every response has Content-Length.\n"
    "\n"
    "Exit status: 0 after a signal or --duration; 1 runtime errors (certificate or\n"
    "key files, io_uring, bind); 2 bad command line.\n";

typedef enum { MODE_HTTP, MODE_ECHO } serve_mode;

typedef struct config {
    const char *address;
    int port;
    uint32_t isolates;
    serve_mode mode;
    const char *cert, *key, *key_password, *write_cert, *client_ca;
    const char *alpn; /* comma-separated */
    bool request_cert, require_cert, v6only, no_resumption;
    int backlog;
    uint32_t handshake_timeout_ms;
    double duration_s; /* 0: none */
} config;

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n%s", usage_text);
    va_end(ap);
    exit(2);
}

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

static void parse_args(int argc, char **argv, config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->address = "127.0.0.1";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->isolates = cpus > 0 ? (uint32_t)cpus : 1;
    cfg->mode = MODE_HTTP;
    cfg->alpn = "http/1.1";
    cfg->handshake_timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char flagbuf[64];
        /* --flag=value is accepted as well as --flag value. */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof(flagbuf)) {
            memcpy(flagbuf, a, (size_t)(eq - a));
            flagbuf[eq - a] = '\0';
            val = eq + 1;
            a = flagbuf;
        }
#define FLAG(name) (strcmp(a, name) == 0)
#define NEED_VALUE()                                                                                                   \
    do {                                                                                                               \
        if (!val) {                                                                                                    \
            if (i + 1 >= argc)                                                                                         \
                usage_error("%s needs a value", a);                                                                    \
            val = argv[++i];                                                                                           \
        }                                                                                                              \
    } while (0)
#define NO_VALUE()                                                                                                     \
    do {                                                                                                               \
        if (val)                                                                                                       \
            usage_error("%s takes no value", a);                                                                       \
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
        } else if (FLAG("--key")) {
            NEED_VALUE();
            cfg->key = val;
        } else if (FLAG("--key-password")) {
            NEED_VALUE();
            cfg->key_password = val;
        } else if (FLAG("--write-cert")) {
            NEED_VALUE();
            cfg->write_cert = val;
        } else if (FLAG("--alpn")) {
            NEED_VALUE();
            cfg->alpn = val;
        } else if (FLAG("--request-client-cert")) {
            NO_VALUE();
            cfg->request_cert = true;
        } else if (FLAG("--require-client-cert")) {
            NO_VALUE();
            cfg->require_cert = true;
        } else if (FLAG("--client-ca")) {
            NEED_VALUE();
            cfg->client_ca = val;
        } else if (FLAG("--v6only")) {
            NO_VALUE();
            cfg->v6only = true;
        } else if (FLAG("--backlog")) {
            NEED_VALUE();
            cfg->backlog = (int)parse_int(a, val, 0, 65535);
        } else if (FLAG("--handshake-timeout")) {
            NEED_VALUE();
            cfg->handshake_timeout_ms = (uint32_t)parse_int(a, val, 0, UINT32_MAX);
        } else if (FLAG("--no-resumption")) {
            NO_VALUE();
            cfg->no_resumption = true;
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
#undef FLAG
#undef NEED_VALUE
#undef NO_VALUE
    }
    if (cfg->request_cert && cfg->require_cert)
        usage_error("--request-client-cert and --require-client-cert exclude each other");
    if (cfg->cert && !cfg->key)
        usage_error("--cert needs --key");
    if (cfg->key && !cfg->cert)
        usage_error("--key needs --cert");
    if (cfg->key_password && !cfg->key)
        usage_error("--key-password needs --key");
}

/* ALPN list "a,b,c" -> array of strings (pointing into one copy). */
static char **alpn_split(const char *list, size_t *count, char **storage)
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

/* ---------------------------------------------------------------------- */
/* Files and certificates                                                 */
/* ---------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -ENOMEM;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                fclose(f);
                return -e;
            }
            break;
        }
        if (cap > (64u << 20)) {
            free(buf);
            fclose(f);
            return -EFBIG;
        }
        cap *= 2;
        uint8_t *nb = realloc(buf, cap + 1);
        if (!nb)
            free(buf);
        buf = nb;
    }
    fclose(f);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static atoll_encoding guess_encoding(const uint8_t *data, size_t len)
{
    /* DER starts with a SEQUENCE tag; PEM is text with a BEGIN line. */
    if (len > 0 && data[0] == 0x30 && !memmem(data, len, "-----BEGIN", 10))
        return ATOLL_ENCODING_DER;
    return ATOLL_ENCODING_PEM;
}

static int write_whole_file(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return -e;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

typedef struct pem_buf {
    uint8_t *data;
    size_t len;
} pem_buf;

/* SubjectAltName GeneralNames: DNS:localhost, IP:127.0.0.1, IP:::1. */
static const uint8_t san_der[] = {
    0x30, 0x23,                                              /* SEQUENCE, 35 bytes */
    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* [2] dNSName */
    0x87, 0x04, 127, 0,   0,   1,                            /* [7] iPAddress v4 */
    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 1,
};

/* Makes an ephemeral self-signed ECDSA P-256 certificate and its key, PEM. */
static int make_self_signed(pem_buf *cert_pem, pem_buf *key_pem, char *err, size_t errlen)
{
    int ret;
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    Cert *cert = calloc(1, sizeof(*cert));
    const word32 der_cap = 4096;
    uint8_t *der = malloc(der_cap), *kder = malloc(512);
    cert_pem->data = malloc(8192);
    key_pem->data = malloc(1024);
    if (!cert || !der || !kder || !cert_pem->data || !key_pem->data) {
        snprintf(err, errlen, "out of memory");
        ret = -1;
        goto out;
    }
#define WC_STEP(call, what)                                                                                            \
    do {                                                                                                               \
        ret = (call);                                                                                                  \
        if (ret < 0) {                                                                                                 \
            snprintf(err, errlen, "%s: %s (%d)", what, wc_GetErrorString(ret), ret);                                   \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    WC_STEP(wc_InitRng(&rng), "wc_InitRng");
    rng_ok = true;
    WC_STEP(wc_ecc_init(&key), "wc_ecc_init");
    key_ok = true;
    WC_STEP(wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1), "wc_ecc_make_key");
    WC_STEP(wc_ecc_set_rng(&key, &rng), "wc_ecc_set_rng");

    WC_STEP(wc_InitCert(cert), "wc_InitCert");
    snprintf(cert->subject.commonName, CTC_NAME_SIZE, "localhost");
    snprintf(cert->subject.org, CTC_NAME_SIZE, "atoll-serve ephemeral");
    cert->sigType = CTC_SHA256wECDSA;
    cert->daysValid = 30;
    cert->selfSigned = 1;
    cert->isCA = 0;
    memcpy(cert->altNames, san_der, sizeof(san_der));
    cert->altNamesSz = (int)sizeof(san_der);
    WC_STEP(wc_SetKeyUsage(cert, "digitalSignature"), "wc_SetKeyUsage");
    WC_STEP(wc_SetExtKeyUsage(cert, "serverAuth"), "wc_SetExtKeyUsage");
    WC_STEP(wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, &key), "wc_SetSubjectKeyId");
    WC_STEP(wc_MakeCert_ex(cert, der, der_cap, ECC_TYPE, &key, &rng), "wc_MakeCert_ex");
    WC_STEP(wc_SignCert_ex(cert->bodySz, cert->sigType, der, der_cap, ECC_TYPE, &key, &rng), "wc_SignCert_ex");
    word32 der_len = (word32)ret;
    WC_STEP(wc_DerToPem(der, der_len, cert_pem->data, 8191, CERT_TYPE), "wc_DerToPem(cert)");
    cert_pem->len = (size_t)ret;
    WC_STEP(wc_EccKeyToDer(&key, kder, 512), "wc_EccKeyToDer");
    word32 kder_len = (word32)ret;
    WC_STEP(wc_DerToPem(kder, kder_len, key_pem->data, 1023, ECC_PRIVATEKEY_TYPE), "wc_DerToPem(key)");
    key_pem->len = (size_t)ret;
    ret = 0;
#undef WC_STEP
out:
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    if (kder) {
        memset(kder, 0, 512);
        free(kder);
    }
    free(der);
    free(cert);
    if (ret < 0) {
        free(cert_pem->data);
        free(key_pem->data);
        cert_pem->data = key_pem->data = NULL;
    }
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Per-isolate state                                                      */
/* ---------------------------------------------------------------------- */

#define BLOCK_SIZE  16384u /* per active connection */
#define REQ_MAX     8192u  /* HTTP request head limit */
#define HEAD_OFF    REQ_MAX
#define HEAD_MAX    512u
#define BLOCK_CACHE 256u /* free blocks kept per isolate */
#define PATTERN_LEN 65536u
#define BYTES_MAX   (1ull << 30)

struct sconn;

typedef struct iso_state {
    uint32_t id;
    struct sconn *conns; /* every live connection of this isolate */
    uint32_t nconns;
    bool draining;
    void *cache[BLOCK_CACHE];
    uint32_t ncache;
} iso_state;

typedef struct app {
    config cfg;
    atoll_runtime *rt;
    atoll_listener *listener;
    uint32_t n;
    iso_state *iso;
    /* Counters handed to the main thread. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t pending; /* tasks not yet done */
} app;

static app g;
static uint8_t pattern[PATTERN_LEN];

static void *block_get(iso_state *is)
{
    if (is->ncache > 0)
        return is->cache[--is->ncache];
    return malloc(BLOCK_SIZE);
}

static void block_put(iso_state *is, void *b)
{
    if (!b)
        return;
    if (is->ncache < BLOCK_CACHE)
        is->cache[is->ncache++] = b;
    else
        free(b);
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

enum body_kind { BODY_NONE = 0, BODY_PATTERN = 1 };

typedef struct sconn {
    struct sconn *prev, *next;
    atoll_conn *c;
    iso_state *is;
    uint8_t *buf;       /* NULL while idle */
    uint32_t len;       /* http: request bytes buffered; echo: bytes pending output */
    uint32_t off;       /* echo: output offset in buf */
    uint64_t skip;      /* http: request body bytes still to discard */
    uint64_t body_left; /* http: pattern bytes still to write */
    uint64_t body_pos;
    uint16_t head_off, head_len; /* http: response head (+ small body) in buf */
    bool responding;             /* http: a response is being written */
    bool close_after;            /* close once the output is flushed */
    bool peer_eof, paused, closing;
} sconn;

static void sc_unlink(sconn *s)
{
    iso_state *is = s->is;
    if (s->prev)
        s->prev->next = s->next;
    else
        is->conns = s->next;
    if (s->next)
        s->next->prev = s->prev;
    is->nconns--;
}

static void sc_close(sconn *s)
{
    if (s->closing)
        return;
    s->closing = true;
    atoll_conn_close(s->c);
}

static void sc_on_closed(atoll_conn *c, int status, void *user)
{
    sconn *s = user;
    (void)c;
    (void)status;
    sc_unlink(s);
    block_put(s->is, s->buf);
    free(s);
}

static bool sc_ensure_block(sconn *s)
{
    if (!s->buf)
        s->buf = block_get(s->is);
    return s->buf != NULL;
}

static void sc_release_block_if_idle(sconn *s)
{
    if (s->buf && s->len == 0 && !s->responding) {
        block_put(s->is, s->buf);
        s->buf = NULL;
    }
}

/* Backpressure on the input side: stop the socket reads while output is
 * blocked and the peer keeps sending (lazily, when a read event shows it). */
static void sc_pause(sconn *s)
{
    if (!s->paused) {
        s->paused = true;
        atoll_conn_pause(s->c);
    }
}

static void sc_resume(sconn *s)
{
    if (s->paused) {
        s->paused = false;
        atoll_conn_resume(s->c);
    }
}

/* ---- echo ---- */

/* Writes what is pending; true when nothing is left. */
static bool echo_flush(sconn *s)
{
    while (s->off < s->len) {
        ssize_t w = atoll_conn_write(s->c, s->buf + s->off, s->len - s->off);
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0) {
            atoll_conn_set_write_events(s->c, true);
            return false;
        }
        s->off += (uint32_t)w;
    }
    s->off = s->len = 0;
    return true;
}

static void echo_drive(sconn *s)
{
    if (s->closing)
        return;
    if (s->len > 0 && !echo_flush(s)) {
        if (!s->closing && atoll_conn_available(s->c) > 0)
            sc_pause(s);
        return;
    }
    sc_resume(s);
    for (;;) {
        if (!sc_ensure_block(s)) {
            sc_close(s);
            return;
        }
        ssize_t n = atoll_conn_read(s->c, s->buf, BLOCK_SIZE);
        if (n <= 0)
            break;
        s->len = (uint32_t)n;
        s->off = 0;
        if (!echo_flush(s)) {
            if (!s->closing)
                sc_pause(s);
            return;
        }
    }
    sc_release_block_if_idle(s);
    if (s->peer_eof || s->close_after)
        sc_close(s); /* close flushes what the connection holds */
}

/* ---- http ---- */

static bool http_flush(sconn *s)
{
    while (s->head_off < s->head_len) {
        ssize_t w = atoll_conn_write(s->c, s->buf + HEAD_OFF + s->head_off, (size_t)(s->head_len - s->head_off));
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0)
            goto blocked;
        s->head_off = (uint16_t)(s->head_off + w);
    }
    while (s->body_left > 0) {
        size_t po = (size_t)(s->body_pos % PATTERN_LEN);
        size_t want = PATTERN_LEN - po;
        if (want > s->body_left)
            want = (size_t)s->body_left;
        ssize_t w = atoll_conn_write(s->c, pattern + po, want);
        if (w < 0) {
            sc_close(s);
            return false;
        }
        if (w == 0)
            goto blocked;
        s->body_left -= (uint64_t)w;
        s->body_pos += (uint64_t)w;
    }
    return true;
blocked:
    atoll_conn_set_write_events(s->c, true);
    return false;
}

static void consume(sconn *s, uint32_t n)
{
    if (n >= s->len) {
        s->len = 0;
        return;
    }
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* Sets up a response: status line, headers, and a small body copied after
 * them or a streamed pattern body of `stream_len` bytes. */
static void http_respond(sconn *s, int status, const char *body, uint64_t stream_len, bool head_only, bool keep_alive,
                         bool http10)
{
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
    const char *ctype = stream_len ? "application/octet-stream" : "text/plain";
    uint64_t clen = body ? strlen(body) : stream_len;
    if (!keep_alive)
        s->close_after = true;
    const char *conn_hdr = s->close_after ? "Connection: close\r\n" : http10 ? "Connection: keep-alive\r\n" : "";
    char *h = (char *)s->buf + HEAD_OFF;
    int n =
        snprintf(h, HEAD_MAX,
                 "HTTP/1.1 %d %s\r\nServer: atoll-serve\r\nContent-Type: %s\r\nContent-Length: %" PRIu64 "\r\n%s\r\n%s",
                 status, reason, ctype, clen, conn_hdr, (body && !head_only) ? body : "");
    s->head_off = 0;
    s->head_len = (uint16_t)(n < (int)HEAD_MAX ? n : (int)HEAD_MAX - 1);
    s->body_left = (stream_len && !head_only) ? stream_len : 0;
    s->body_pos = 0;
    s->responding = true;
}

static void http_bad_request(sconn *s)
{
    s->close_after = true;
    s->len = 0; /* nothing after a bad request is read */
    s->skip = 0;
    http_respond(s, 400, "bad request\n", 0, false, false, false);
}

/* Parses one request from the buffer. Returns 1 when a response was set
 * up, 0 when more bytes are needed. */
static int http_parse(sconn *s)
{
    if (s->skip > 0 && s->len > 0) {
        uint32_t n = s->skip < s->len ? (uint32_t)s->skip : s->len;
        consume(s, n);
        s->skip -= n;
    }
    if (s->skip > 0 || s->len == 0)
        return 0;
    const char *b = (const char *)s->buf;
    size_t len = s->len;
    /* Ignore empty lines before a request line (RFC 9112 2.2). */
    size_t start = 0;
    while (start < len && (b[start] == '\r' || b[start] == '\n')) {
        if (b[start] == '\r' && (start + 1 >= len || b[start + 1] != '\n'))
            break;
        start++;
    }
    if (start > 0) {
        consume(s, (uint32_t)start);
        b = (const char *)s->buf;
        len = s->len;
        if (len == 0)
            return 0;
    }
    /* Find the end of the head: an empty line. */
    size_t pos = 0, head_end = 0;
    bool found = false;
    while (pos < len) {
        const char *nl = memchr(b + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t line_len = (size_t)(nl - (b + pos));
        if (line_len > 0 && b[pos + line_len - 1] == '\r')
            line_len--;
        size_t next = (size_t)(nl - b) + 1;
        if (line_len == 0 && pos > 0) {
            head_end = next;
            found = true;
            break;
        }
        pos = next;
    }
    if (!found) {
        if (len >= REQ_MAX) {
            http_bad_request(s); /* head too large */
            return 1;
        }
        return 0;
    }
    /* Request line. */
    const char *line = b;
    const char *nl = memchr(line, '\n', head_end);
    size_t ll = (size_t)(nl - line);
    if (ll > 0 && line[ll - 1] == '\r')
        ll--;
    const char *sp1 = memchr(line, ' ', ll);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', ll - (size_t)(sp2 + 1 - line))) {
        http_bad_request(s);
        return 1;
    }
    const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - target), vlen = ll - (size_t)(version - line);
    bool http10;
    if (vlen == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
        http10 = false;
    else if (vlen == 8 && memcmp(version, "HTTP/1.0", 8) == 0)
        http10 = true;
    else {
        http_bad_request(s);
        return 1;
    }
    bool head_only;
    if (mlen == 3 && memcmp(method, "GET", 3) == 0)
        head_only = false;
    else if (mlen == 4 && memcmp(method, "HEAD", 4) == 0)
        head_only = true;
    else {
        http_bad_request(s);
        return 1;
    }
    if (tlen == 0 || target[0] != '/') {
        http_bad_request(s);
        return 1;
    }
    /* Header fields. */
    bool keep_alive = !http10, saw_cl = false;
    uint64_t content_length = 0;
    pos = (size_t)(nl - b) + 1;
    while (pos < head_end) {
        const char *l = b + pos;
        const char *e = memchr(l, '\n', head_end - pos);
        size_t n = (size_t)(e - l);
        pos = (size_t)(e - b) + 1;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the empty line */
        const char *colon = memchr(l, ':', n);
        if (l[0] == ' ' || l[0] == '\t' || !colon || colon == l || memchr(l, ' ', (size_t)(colon - l)) ||
            memchr(l, '\t', (size_t)(colon - l))) {
            http_bad_request(s);
            return 1;
        }
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1;
        size_t vl = n - nlen - 1;
        trim(&v, &vl);
        if (token_eq(l, nlen, "connection")) {
            /* A comma-separated token list. */
            size_t i = 0;
            while (i <= vl) {
                size_t j = i;
                while (j < vl && v[j] != ',')
                    j++;
                const char *t = v + i;
                size_t tl = j - i;
                trim(&t, &tl);
                if (token_eq(t, tl, "close"))
                    keep_alive = false;
                else if (token_eq(t, tl, "keep-alive") && http10)
                    keep_alive = true;
                i = j + 1;
            }
        } else if (token_eq(l, nlen, "content-length")) {
            uint64_t cl = 0;
            if (vl == 0 || vl > 18) {
                http_bad_request(s);
                return 1;
            }
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    http_bad_request(s);
                    return 1;
                }
                cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
            if (saw_cl && cl != content_length) {
                http_bad_request(s);
                return 1;
            }
            saw_cl = true;
            content_length = cl;
        } else if (token_eq(l, nlen, "transfer-encoding")) {
            http_bad_request(s); /* request bodies in chunks: not supported */
            return 1;
        }
    }
    /* Route (the query string is ignored). */
    size_t plen = tlen;
    const char *q = memchr(target, '?', tlen);
    if (q)
        plen = (size_t)(q - target);
    int status = 404;
    const char *body = "not found\n";
    uint64_t stream = 0;
    if (plen == 1) {
        status = 200;
        body = "hello\n";
    } else if (plen > 7 && memcmp(target, "/bytes/", 7) == 0) {
        const char *d = target + 7;
        size_t dl = plen - 7;
        bool digits = dl <= 19;
        uint64_t v = 0;
        for (size_t i = 0; digits && i < dl; i++) {
            if (d[i] < '0' || d[i] > '9')
                digits = false;
            else
                v = v * 10 + (uint64_t)(d[i] - '0');
        }
        if (digits) {
            if (v > BYTES_MAX) {
                http_bad_request(s);
                return 1;
            }
            status = 200;
            body = v == 0 ? "" : NULL;
            stream = v;
        }
    }
    consume(s, (uint32_t)head_end);
    s->skip = content_length;
    if (s->is->draining)
        keep_alive = false;
    http_respond(s, status, body, stream, head_only, keep_alive, http10);
    return 1;
}

static void http_drive(sconn *s)
{
    for (;;) {
        if (s->closing)
            return;
        if (s->responding) {
            if (!http_flush(s)) {
                /* Blocked (write event armed) or closed. Pause only when the
                 * peer is sending more meanwhile. */
                if (!s->closing && atoll_conn_available(s->c) > 0)
                    sc_pause(s);
                return;
            }
            s->responding = false;
            if (s->close_after) {
                sc_close(s);
                return;
            }
        }
        sc_resume(s);
        if (s->buf && http_parse(s) == 1)
            continue;
        if (s->peer_eof) {
            sc_close(s); /* nothing more will come; a partial request is dropped */
            return;
        }
        if (!sc_ensure_block(s)) {
            sc_close(s);
            return;
        }
        ssize_t n = atoll_conn_read(s->c, s->buf + s->len, REQ_MAX - s->len);
        if (n <= 0) {
            sc_release_block_if_idle(s);
            if (s->len == 0 && s->skip == 0 && s->close_after)
                sc_close(s); /* draining and idle */
            return;
        }
        s->len += (uint32_t)n;
    }
}

static void sc_on_read(atoll_conn *c, void *user)
{
    sconn *s = user;
    (void)c;
    if (g.cfg.mode == MODE_HTTP)
        http_drive(s);
    else
        echo_drive(s);
}

static void sc_on_read_closed(atoll_conn *c, void *user)
{
    sconn *s = user;
    s->peer_eof = true;
    sc_on_read(c, user);
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = sc_on_read,
    .on_write = sc_on_read, /* the same driver: flush, then read on */
    .on_read_closed = sc_on_read_closed,
    .on_closed = sc_on_closed,
};

/* ---------------------------------------------------------------------- */
/* Server callbacks (on each isolate)                                     */
/* ---------------------------------------------------------------------- */

static void srv_on_connection(atoll_server *server, atoll_conn *c, void *user)
{
    (void)user;
    iso_state *is = &g.iso[atoll_isolate_id(atoll_server_isolate(server))];
    sconn *s = calloc(1, sizeof(*s));
    if (!s) {
        atoll_conn_close(c);
        return;
    }
    s->c = c;
    s->is = is;
    s->close_after = is->draining;
    s->next = is->conns;
    if (is->conns)
        is->conns->prev = s;
    is->conns = s;
    is->nconns++;
    atoll_conn_set_nodelay(c, true);
    atoll_conn_set_callbacks(c, &conn_cb, s);
}

/* Failed handshakes are counted by the server (handshake_errors); with
 * ATOLL_SERVE_DEBUG set in the environment each one is also logged. */
static bool debug_log;

static void srv_on_error(atoll_server *server, const atoll_server_error *e, void *user)
{
    (void)user;
    if (debug_log)
        fprintf(stderr, PROG ": isolate %" PRIu32 ": handshake with %s port %u failed: %s: %s\n",
                atoll_isolate_id(atoll_server_isolate(server)), e->peer.text, (unsigned)e->peer_port,
                atoll_error_name(e->code), e->reason ? e->reason : "");
}

/* ---------------------------------------------------------------------- */
/* Host -> isolate tasks                                                  */
/* ---------------------------------------------------------------------- */

static void task_done(int status, void *result, void *user)
{
    (void)status;
    (void)result;
    (void)user;
    pthread_mutex_lock(&g.lock);
    g.pending--;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

/* Runs fn on every pool isolate and waits until each ran (or was dropped). */
static void run_on_all(atoll_task_fn fn)
{
    pthread_mutex_lock(&g.lock);
    g.pending = 0;
    pthread_mutex_unlock(&g.lock);
    for (uint32_t i = 0; i < g.n; i++) {
        pthread_mutex_lock(&g.lock);
        g.pending++;
        pthread_mutex_unlock(&g.lock);
        if (atoll_runtime_submit(g.rt, i, fn, NULL, task_done, NULL, NULL) < 0) {
            pthread_mutex_lock(&g.lock);
            g.pending--;
            pthread_mutex_unlock(&g.lock);
        }
    }
    pthread_mutex_lock(&g.lock);
    while (g.pending > 0)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
}

/* Graceful start of the shutdown: new responses say "Connection: close",
 * idle keep-alive connections are closed, busy ones close after their
 * response. */
static void *task_begin_drain(atoll_isolate *self, void *arg)
{
    (void)arg;
    iso_state *is = &g.iso[atoll_isolate_id(self)];
    is->draining = true;
    for (sconn *s = is->conns, *next; s; s = next) {
        next = s->next;
        s->close_after = true;
        bool idle = g.cfg.mode == MODE_HTTP ? (!s->responding && s->len == 0 && s->skip == 0) : s->len == 0;
        if (idle)
            sc_close(s);
    }
    return NULL;
}

/* The per-isolate network counters of the runtime: readable from this
 * thread at any time, exact also for connections that outlive the listener. */
static void print_stats(void)
{
    size_t cap = 64 + (size_t)g.n * 200, off = 0;
    char *out = malloc(cap);
    if (!out)
        return;
    off += (size_t)snprintf(out + off, cap - off, "{\"isolates\":[");
    for (uint32_t i = 0; i < g.n; i++) {
        atoll_isolate_stats st;
        memset(&st, 0, sizeof(st));
        atoll_runtime_isolate_stats(g.rt, i, &st);
        off += (size_t)snprintf(out + off, cap - off,
                                "%s{\"id\":%" PRIu32 ",\"accepted\":%" PRIu64 ",\"handshakes\":%" PRIu64
                                ",\"handshake_errors\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 "}",
                                i ? "," : "", i, st.net_accepted, st.net_handshakes, st.net_handshake_errors,
                                st.net_bytes_in, st.net_bytes_out);
    }
    snprintf(out + off, cap - off, "]}\n");
    fputs(out, stdout);
    fflush(stdout);
    free(out);
}

/* ---------------------------------------------------------------------- */
/* main                                                                   */
/* ---------------------------------------------------------------------- */

static void die_rc(const char *what, int rc)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, atoll_strerror(rc), atoll_error_name(rc));
}

static int load_material(atoll_security_context *ctx, pem_buf *chain_out)
{
    const config *cfg = &g.cfg;
    int rc;
    chain_out->data = NULL;
    chain_out->len = 0;
    if (cfg->cert) {
        uint8_t *cd, *kd;
        size_t cl, kl;
        if ((rc = read_file(cfg->cert, &cd, &cl)) < 0) {
            fprintf(stderr, PROG ": --cert %s: %s\n", cfg->cert, strerror(-rc));
            return -1;
        }
        atoll_encoding ce = guess_encoding(cd, cl);
        rc = atoll_security_context_use_certificate_chain(ctx, cd, cl, ce);
        if (rc < 0) {
            fprintf(stderr, PROG ": --cert %s: %s: %s\n", cfg->cert, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            free(cd);
            return -1;
        }
        if (ce == ATOLL_ENCODING_DER) {
            /* Keep a PEM copy for --write-cert. */
            uint8_t *pem = malloc(cl * 2 + 256);
            int n = pem ? wc_DerToPem(cd, (word32)cl, pem, (word32)(cl * 2 + 256), CERT_TYPE) : -1;
            free(cd);
            if (n < 0) {
                free(pem);
                fprintf(stderr, PROG ": --cert %s: cannot convert to PEM\n", cfg->cert);
                return -1;
            }
            cd = pem;
            cl = (size_t)n;
        }
        chain_out->data = cd;
        chain_out->len = cl;
        if ((rc = read_file(cfg->key, &kd, &kl)) < 0) {
            fprintf(stderr, PROG ": --key %s: %s\n", cfg->key, strerror(-rc));
            return -1;
        }
        rc = atoll_security_context_use_private_key(ctx, kd, kl, guess_encoding(kd, kl), cfg->key_password);
        memset(kd, 0, kl);
        free(kd);
        if (rc < 0) {
            fprintf(stderr, PROG ": --key %s: %s: %s\n", cfg->key, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            return -1;
        }
    } else {
        pem_buf cert = {0}, key = {0};
        char err[256];
        if (make_self_signed(&cert, &key, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": making the self-signed certificate: %s\n", err);
            return -1;
        }
        rc = atoll_security_context_use_certificate_chain(ctx, cert.data, cert.len, ATOLL_ENCODING_PEM);
        if (rc == 0)
            rc = atoll_security_context_use_private_key(ctx, key.data, key.len, ATOLL_ENCODING_PEM, NULL);
        memset(key.data, 0, key.len);
        free(key.data);
        if (rc < 0) {
            fprintf(stderr, PROG ": loading the self-signed certificate: %s: %s\n", atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            free(cert.data);
            return -1;
        }
        *chain_out = cert;
    }
    if (cfg->client_ca) {
        uint8_t *d;
        size_t l;
        if ((rc = read_file(cfg->client_ca, &d, &l)) < 0) {
            fprintf(stderr, PROG ": --client-ca %s: %s\n", cfg->client_ca, strerror(-rc));
            return -1;
        }
        atoll_encoding e = guess_encoding(d, l);
        rc = atoll_security_context_set_trusted_certificates(ctx, d, l, e);
        if (rc == 0)
            rc = atoll_security_context_set_client_authorities(ctx, d, l, e);
        free(d);
        if (rc < 0) {
            fprintf(stderr, PROG ": --client-ca %s: %s: %s\n", cfg->client_ca, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            return -1;
        }
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &g.cfg);
    debug_log = getenv("ATOLL_SERVE_DEBUG") != NULL;
    const config *cfg = &g.cfg;
    size_t alpn_count = 0;
    char *alpn_storage = NULL;
    char **alpn = alpn_split(cfg->alpn, &alpn_count, &alpn_storage);

    /* Signals: blocked here, before any thread exists, so every isolate
     * inherits the mask; the main thread takes them with sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (uint32_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = (uint8_t) "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"[i % 64];

    int exit_code = 1, rc;
    pem_buf chain = {0};
    atoll_security_context *ctx = NULL;
    wolfCrypt_Init();
    if ((rc = atoll_security_context_new(&ctx)) < 0) {
        die_rc("security context", rc);
        goto out_crypto;
    }
    if (load_material(ctx, &chain) < 0)
        goto out_ctx;
    if (cfg->write_cert && (rc = write_whole_file(cfg->write_cert, chain.data, chain.len)) < 0) {
        fprintf(stderr, PROG ": --write-cert %s: %s\n", cfg->write_cert, strerror(-rc));
        goto out_ctx;
    }

    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    g.n = cfg->isolates;
    g.iso = calloc(g.n, sizeof(*g.iso));
    if (!g.iso) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out_state;
    }
    for (uint32_t i = 0; i < g.n; i++)
        g.iso[i].id = i;

    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = g.n;
    if ((rc = atoll_runtime_create(&ro, &g.rt)) < 0) {
        die_rc("creating the runtime", rc);
        goto out_state;
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
    so.disable_resumption = cfg->no_resumption;
    static const atoll_server_callbacks scb = {
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
    /* The listener holds its own reference to the context. */
    atoll_security_context_release(ctx);
    ctx = NULL;

    bool v6 = strchr(cfg->address, ':') != NULL;
    printf("listening on %s%s%s:%u isolates=%" PRIu32 "\n", v6 ? "[" : "", cfg->address, v6 ? "]" : "",
           (unsigned)atoll_listener_port(g.listener), g.n);
    fflush(stdout);

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
        break; /* SIGINT, SIGTERM */
    }

    /* Shutdown: stop accepting, let responses finish, then stop. */
    run_on_all(task_begin_drain);
    rc = atoll_listener_close(g.listener);
    if (rc < 0)
        die_rc("closing the listener", rc);
    g.listener = NULL;
    rc = atoll_runtime_drain(g.rt, 5000);
    if (rc < 0 && rc != ATOLL_E_TIMEDOUT)
        die_rc("draining", rc);
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
        for (uint32_t i = 0; i < g.n; i++)
            while (g.iso[i].ncache > 0)
                free(g.iso[i].cache[--g.iso[i].ncache]);
    free(g.iso);
    pthread_mutex_destroy(&g.lock);
    pthread_cond_destroy(&g.cond);
out_ctx:
    atoll_security_context_release(ctx);
out_crypto:
    free(chain.data);
    free(alpn);
    free(alpn_storage);
    wc_ecc_fp_free();
    wolfCrypt_Cleanup();
    return exit_code;
}
