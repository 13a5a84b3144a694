/*
 * atoll-load: a load generator built on atoll's client side.
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
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atoll/atoll.h>

/* ---------------------------------------------------------------------- */
/* Latency histogram: log-bucketed, 32 linear sub-buckets per power of two */
/* ---------------------------------------------------------------------- */

/* Value v (microseconds) goes to bucket shift*32 + (v >> shift), where
 * shift = max(0, msb(v) - 5): exact below 64 us, then 32 sub-buckets per
 * power of two (relative error <= 1/32). Fixed size, covers all of uint64. */
#define HIST_SUB_BITS 5
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS) * HIST_SUB + 2 * HIST_SUB)

typedef struct hist {
    uint64_t count, max, min, sum;
    uint64_t b[HIST_BUCKETS];
} hist;

static unsigned hist_index(uint64_t v)
{
    unsigned msb = v ? 63u - (unsigned)__builtin_clzll(v) : 0;
    unsigned shift = msb > HIST_SUB_BITS ? msb - HIST_SUB_BITS : 0;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* Highest value that falls in bucket i. */
static uint64_t hist_bucket_high(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t m = i - shift * HIST_SUB;
    return ((m + 1) << shift) - 1;
}

static void hist_record(hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (h->count == 1 || v < h->min)
        h->min = v;
}

static void hist_merge(hist *into, const hist *from)
{
    if (!from->count)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    if (!into->count || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

static uint64_t hist_percentile(const hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */
/* ---------------------------------------------------------------------- */

enum scenario { SC_HANDSHAKE, SC_RR, SC_BULK, SC_IDLE, SC_CHURN };
static const char *const scenario_names[] = {"handshake", "rr", "bulk", "idle", "churn"};

/* Error kinds counted per isolate; codes outside these are counted under
 * their atoll_error_name() (see iso_state.other). */
enum err_kind {
    EK_CONNECT,
    EK_HANDSHAKE,
    EK_CERTIFICATE,
    EK_TIMEOUT,
    EK_RESET,
    EK_CLOSED,
    EK_HTTP_STATUS,
    EK_HTTP_PARSE,
    EK_SHORT_READ,
    EK_MISMATCH,
    EK_OTHER,
    EK_COUNT
};
static const char *const err_kind_names[EK_COUNT] = {"connect",    "handshake", "certificate", "timeout",
                                                     "reset",      "closed",    "http_status", "http_parse",
                                                     "short_read", "mismatch",  "other"};

#define MAX_ISOLATES       256
#define MAX_ALPN           16
#define GRACE_MS           2000  /* in-flight operations may finish within this after the bound */
#define OP_TIMEOUT_MS      10000 /* an exchange on an open connection */
#define CONNECT_TIMEOUT_MS 10000
#define HDR_CAP            8192
#define SCRATCH_CAP        65536
#define TICK_MS            100

typedef struct config {
    enum scenario scenario;
    char host[256];     /* as given (a name or a numeric address) */
    char addr_text[64]; /* the resolved numeric address connections go to */
    int port;
    bool host_is_name;
    uint32_t connections;
    double duration_s; /* 0: none (only with --requests) */
    uint64_t requests; /* 0: none */
    uint32_t isolates;
    bool http, resume, insecure, plain, progress, allow_remote;
    bool size_given;
    uint64_t size;
    const char *cafile;
    const char *json;
    char *alpn_buf;
    const char *alpn[MAX_ALPN];
    size_t alpn_count;
    /* Built once, shared read-only by every isolate. */
    uint8_t *payload; /* echo: the bytes sent (and expected back) */
    size_t payload_len;
    char *http_req;
    size_t http_req_len;
} config;

static config cfg;

/* Run phases, published by the host. */
enum { PH_SETUP = 0, PH_RUN = 1, PH_STOP = 2 };
static _Atomic int g_phase;
static _Atomic int64_t g_tickets; /* ops still allowed with --requests */
static volatile sig_atomic_t g_interrupted;

/* ---------------------------------------------------------------------- */
/* Per-isolate state                                                      */
/* ---------------------------------------------------------------------- */

enum slot_state {
    SL_IDLE,       /* nothing: not started, or finished after the bound */
    SL_RETRY,      /* waits for the tick (100 ms) to connect again after a failed connect */
    SL_CONNECTING, /* atoll_connect in flight */
    SL_BUSY,       /* an exchange in flight on conn */
    SL_HELD,       /* open connection, no exchange (idle, or rr/bulk after the bound) */
};

enum read_state { RS_NONE, RS_ECHO, RS_HDR, RS_BODY, RS_BODY_EOF };

struct iso_state;

typedef struct slot {
    struct iso_state *is;
    atoll_conn *conn;
    atoll_session *session;
    enum slot_state state;
    enum read_state rs;
    bool in_op;        /* op_start is set and the op counts when it completes */
    bool keepalive;    /* the HTTP response allows reuse */
    uint64_t op_start; /* ns */
    const uint8_t *wbuf;
    size_t wlen, woff;
    uint64_t expect; /* echo: bytes expected; HTTP: body bytes remaining */
    uint64_t got;    /* echo: bytes received (checked against the payload) */
    size_t hlen;
    int http_status;
    char *hdr;        /* HDR_CAP bytes, allocated at setup */
    uint8_t *scratch; /* SCRATCH_CAP bytes, allocated at setup */
} slot;

#define PAD64(n) (((n) + 63) & ~(size_t)63)

typedef struct iso_counters {
    _Atomic uint64_t ops, errors, bytes, open, inflight, resumed, connects;
    _Atomic uint64_t err[EK_COUNT];
} iso_counters;

#define MAX_OTHER 8
typedef struct iso_state {
    _Alignas(64) iso_counters c; /* written by the owning isolate only, read by the host */
    _Alignas(64) char pad[1];
    atoll_isolate *self;
    uint32_t id;
    slot *slots;
    uint32_t nslots;
    atoll_timer *tick;
    bool closing;
    bool started;
    hist lat;
    int first_err[EK_COUNT]; /* first code seen per kind, for the report */
    int other_code[MAX_OTHER];
    uint64_t other_count[MAX_OTHER];
} iso_state;

static iso_state *g_iso;
static uint32_t g_niso;
static atoll_connect_options g_copts;

static inline void bump(_Atomic uint64_t *ctr, uint64_t n)
{
    /* Single writer: a relaxed load + store, no locked instruction. */
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void drop(_Atomic uint64_t *ctr)
{
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) - 1, memory_order_relaxed);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static enum err_kind classify(int code)
{
    switch (code) {
    case ATOLL_E_LOOKUP:
    case -ECONNREFUSED:
    case -ENETUNREACH:
    case -EHOSTUNREACH:
    case -EADDRNOTAVAIL:
    case -ENETDOWN:
        return EK_CONNECT;
    case ATOLL_E_HANDSHAKE:
    case ATOLL_E_PEER_CLOSED:
    case ATOLL_E_ALPN:
        return EK_HANDSHAKE;
    case ATOLL_E_CERTIFICATE:
        return EK_CERTIFICATE;
    case ATOLL_E_TIMEDOUT:
    case ATOLL_E_HANDSHAKE_TIMEOUT:
    case -ETIMEDOUT:
        return EK_TIMEOUT;
    case -ECONNRESET:
    case -EPIPE:
    case -ECONNABORTED:
        return EK_RESET;
    case 0:
    case ATOLL_E_CLOSED:
        return EK_CLOSED;
    default:
        return EK_OTHER;
    }
}

static void count_error(iso_state *is, enum err_kind k, int code)
{
    if (k == EK_OTHER) {
        for (int i = 0; i < MAX_OTHER; i++) {
            if (is->other_count[i] && is->other_code[i] != code)
                continue;
            is->other_code[i] = code;
            is->other_count[i]++;
            break;
        }
    }
    if (!is->c.err[k])
        is->first_err[k] = code;
    bump(&is->c.err[k], 1);
    bump(&is->c.errors, 1);
}

/* ---------------------------------------------------------------------- */
/* Slots                                                                  */
/* ---------------------------------------------------------------------- */

static void slot_connect(slot *s);
static void slot_start_exchange(slot *s);

static bool stopping(const iso_state *is)
{
    return is->closing || atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_RUN;
}

/* Takes one op ticket (with --requests); false when the run is over. */
static bool take_ticket(iso_state *is)
{
    if (stopping(is))
        return false;
    if (!cfg.requests)
        return true;
    return atomic_fetch_sub_explicit(&g_tickets, 1, memory_order_relaxed) > 0;
}

static bool reuses_connection(void)
{
    return cfg.scenario == SC_RR || cfg.scenario == SC_BULK;
}

static void set_inflight(slot *s, bool busy)
{
    bool was = s->state == SL_CONNECTING || s->state == SL_BUSY;
    if (busy && !was)
        bump(&s->is->c.inflight, 1);
    else if (!busy && was)
        drop(&s->is->c.inflight);
}

static void set_state(slot *s, enum slot_state st)
{
    set_inflight(s, st == SL_CONNECTING || st == SL_BUSY);
    s->state = st;
}

static void detached_closed(atoll_conn *c, int status, void *user)
{
    iso_state *is = user;
    (void)c;
    (void)status;
    drop(&is->c.open);
}

static const atoll_conn_callbacks detached_cb = {.on_closed = detached_closed};

/* Closes the slot's connection; its on_closed only updates the open count. */
static void slot_drop_conn(slot *s)
{
    if (!s->conn)
        return;
    atoll_conn *c = s->conn;
    s->conn = NULL;
    atoll_conn_set_callbacks(c, &detached_cb, s->is);
    atoll_conn_close(c);
}

/* What a slot does next, once it has no exchange in flight. */
static void slot_next(slot *s)
{
    s->in_op = false;
    s->rs = RS_NONE;
    switch (cfg.scenario) {
    case SC_HANDSHAKE:
    case SC_CHURN:
        slot_drop_conn(s);
        slot_connect(s);
        return;
    case SC_RR:
    case SC_BULK:
        if (!s->conn) {
            slot_connect(s);
            return;
        }
        slot_start_exchange(s);
        return;
    case SC_IDLE:
        if (s->conn) {
            set_state(s, SL_HELD);
            return;
        }
        slot_connect(s);
        return;
    }
}

/* An operation (or the connection under it) failed. */
static void slot_fail(slot *s, enum err_kind k, int code)
{
    count_error(s->is, k, code);
    slot_drop_conn(s);
    slot_next(s);
}

static void slot_op_done(slot *s)
{
    iso_state *is = s->is;
    uint64_t us = (now_ns() - s->op_start) / 1000;
    hist_record(&is->lat, us);
    bump(&is->c.ops, 1);
    if (cfg.resume && s->conn) {
        atoll_session *sess = atoll_conn_session(s->conn);
        if (sess) {
            atoll_session_free(s->session);
            s->session = sess;
        }
    }
    if (s->rs == RS_BODY_EOF || (!s->keepalive && cfg.http))
        slot_drop_conn(s); /* the server ends the connection: open another */
    slot_next(s);
}

static void slot_flush(slot *s)
{
    while (s->woff < s->wlen) {
        ssize_t n = atoll_conn_write(s->conn, s->wbuf + s->woff, s->wlen - s->woff);
        if (n < 0) {
            slot_fail(s, classify((int)n), (int)n);
            return;
        }
        if (n == 0) {
            atoll_conn_set_write_events(s->conn, true);
            return;
        }
        s->woff += (size_t)n;
    }
}

static void slot_start_exchange(slot *s)
{
    if (cfg.scenario == SC_RR || cfg.scenario == SC_BULK) {
        if (!take_ticket(s->is)) {
            /* The run is over: close now rather than hold it (a server that
             * serves one connection at a time would wait on it). */
            slot_drop_conn(s);
            set_state(s, SL_IDLE);
            return;
        }
        s->op_start = now_ns();
    }
    set_state(s, SL_BUSY);
    s->in_op = true;
    s->got = 0;
    if (cfg.http) {
        s->wbuf = (const uint8_t *)cfg.http_req;
        s->wlen = cfg.http_req_len;
        s->rs = RS_HDR;
        s->hlen = 0;
        s->expect = 0;
        s->keepalive = true;
    } else {
        s->wbuf = cfg.payload;
        s->wlen = cfg.payload_len;
        s->rs = RS_ECHO;
        s->expect = cfg.payload_len;
    }
    s->woff = 0;
    slot_flush(s);
}

static bool hdr_has(const char *line, size_t len, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *val = v;
    return true;
}

/* Parses the header in s->hdr[0..end); returns false on a malformed one. */
static bool parse_http_header(slot *s, size_t end)
{
    char *h = s->hdr;
    if (end < 12 || strncmp(h, "HTTP/1.", 7) != 0)
        return false;
    s->http_status = atoi(h + 9);
    bool http10 = h[7] == '0';
    s->keepalive = !http10;
    bool have_len = false;
    uint64_t clen = 0;
    const char *p = memchr(h, '\n', end);
    while (p && (size_t)(p + 1 - h) < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', end - (size_t)(line - h));
        if (!eol)
            break;
        size_t len = (size_t)(eol - line);
        if (len && line[len - 1] == '\r')
            len--;
        const char *v;
        if (hdr_has(line, len, "content-length", &v)) {
            char *e;
            clen = strtoull(v, &e, 10);
            if (e == v)
                return false;
            have_len = true;
        } else if (hdr_has(line, len, "connection", &v)) {
            if (!strncasecmp(v, "close", 5))
                s->keepalive = false;
            else if (!strncasecmp(v, "keep-alive", 10))
                s->keepalive = true;
        } else if (hdr_has(line, len, "transfer-encoding", &v)) {
            if (strncasecmp(v, "identity", 8) != 0)
                return false; /* chunked is not supported */
        }
        p = eol;
    }
    if (have_len) {
        s->rs = RS_BODY;
        s->expect = clen;
    } else {
        s->rs = RS_BODY_EOF; /* body until the server closes */
        s->keepalive = false;
    }
    return true;
}

/* Consumes n body bytes; true when the response is complete. */
static bool body_bytes(slot *s, uint64_t n)
{
    if (s->rs == RS_BODY_EOF)
        return false;
    if (n > s->expect)
        return false; /* caller checks the surplus */
    s->expect -= n;
    return s->expect == 0;
}

static void on_read(atoll_conn *c, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    for (;;) {
        if (s->conn != c)
            return;
        ssize_t n;
        if (s->rs == RS_HDR) {
            size_t before = s->hlen;
            n = atoll_conn_read(c, s->hdr + s->hlen, HDR_CAP - 1 - s->hlen);
            if (n <= 0) {
                if (n == 0 && s->hlen >= HDR_CAP - 1)
                    slot_fail(s, EK_HTTP_PARSE, 0);
                return;
            }
            bump(&is->c.bytes, (uint64_t)n);
            s->hlen += (size_t)n;
            s->hdr[s->hlen] = '\0';
            size_t from = before > 3 ? before - 3 : 0;
            char *end = strstr(s->hdr + from, "\r\n\r\n");
            if (!end) {
                if (s->hlen >= HDR_CAP - 1)
                    slot_fail(s, EK_HTTP_PARSE, 0);
                continue;
            }
            size_t hend = (size_t)(end - s->hdr) + 4;
            if (!parse_http_header(s, hend)) {
                slot_fail(s, EK_HTTP_PARSE, 0);
                return;
            }
            uint64_t extra = s->hlen - hend;
            if (s->rs == RS_BODY && extra > s->expect) {
                slot_fail(s, EK_HTTP_PARSE, 0); /* bytes beyond the response */
                return;
            }
            if (s->http_status < 200 || s->http_status > 299) {
                /* Finish reading it first if we can reuse the connection? Simpler: drop it. */
                slot_fail(s, EK_HTTP_STATUS, s->http_status);
                return;
            }
            if (body_bytes(s, extra)) {
                slot_op_done(s);
                return;
            }
            continue;
        }
        size_t want = SCRATCH_CAP;
        if ((s->rs == RS_ECHO || s->rs == RS_BODY) && s->expect < want)
            want = (size_t)s->expect;
        if (s->rs == RS_NONE || want == 0) {
            /* Nothing expected: drain and ignore (a server speaking out of turn). */
            n = atoll_conn_read(c, s->scratch, SCRATCH_CAP);
            if (n > 0) {
                bump(&is->c.bytes, (uint64_t)n);
                continue;
            }
            return;
        }
        n = atoll_conn_read(c, s->scratch, want);
        if (n <= 0)
            return;
        bump(&is->c.bytes, (uint64_t)n);
        if (s->rs == RS_ECHO) {
            if (memcmp(s->scratch, cfg.payload + s->got, (size_t)n) != 0) {
                slot_fail(s, EK_MISMATCH, 0);
                return;
            }
            s->got += (uint64_t)n;
            s->expect -= (uint64_t)n;
            if (s->expect == 0) {
                /* Only accepted bytes can come back: the write is complete too. */
                slot_op_done(s);
                return;
            }
            continue;
        }
        if (body_bytes(s, (uint64_t)n)) {
            slot_op_done(s);
            return;
        }
    }
}

static void on_write(atoll_conn *c, void *user)
{
    slot *s = user;
    if (s->conn != c || s->state != SL_BUSY)
        return;
    slot_flush(s);
}

static void on_read_closed(atoll_conn *c, void *user)
{
    slot *s = user;
    if (s->conn != c)
        return;
    if (s->in_op && s->rs == RS_BODY_EOF) {
        slot_op_done(s); /* the response ends with the connection */
        return;
    }
    if (s->in_op) {
        bool partial = s->rs == RS_BODY || (s->rs == RS_ECHO && s->got > 0) || (s->rs == RS_HDR && s->hlen > 0);
        slot_fail(s, partial ? EK_SHORT_READ : EK_CLOSED, ATOLL_E_CLOSED);
        return;
    }
    /* Closed by the server while held. */
    bool run = !stopping(s->is);
    slot_drop_conn(s);
    if (run) {
        count_error(s->is, EK_CLOSED, ATOLL_E_CLOSED);
        slot_next(s);
    } else {
        set_state(s, SL_IDLE);
    }
}

static void on_closed(atoll_conn *c, int status, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    drop(&is->c.open);
    if (s->conn != c)
        return;
    s->conn = NULL;
    if (is->closing) {
        set_state(s, SL_IDLE);
        return;
    }
    if (s->in_op || !stopping(is)) {
        enum err_kind k = classify(status);
        if (s->in_op && k == EK_CLOSED && (s->rs == RS_BODY || s->got > 0))
            k = EK_SHORT_READ;
        count_error(is, k, status);
        slot_next(s);
        return;
    }
    set_state(s, SL_IDLE);
}

static const atoll_conn_callbacks slot_cb = {
    .on_read = on_read, .on_write = on_write, .on_read_closed = on_read_closed, .on_closed = on_closed};

static void on_connect(atoll_conn *c, int status, void *user)
{
    slot *s = user;
    iso_state *is = s->is;
    if (c)
        bump(&is->c.open, 1);
    if (is->closing || status == ATOLL_E_STOPPED) {
        if (c) {
            atoll_conn_set_callbacks(c, &detached_cb, is);
            atoll_conn_close(c);
        }
        set_state(s, SL_IDLE);
        return;
    }
    if (!c) {
        /* A failed connect waits for the next tick (100 ms): a dead or
         * refusing server must not turn the generator into a busy loop. */
        count_error(is, classify(status), status);
        s->in_op = false;
        set_state(s, SL_RETRY);
        return;
    }
    bump(&is->c.connects, 1);
    if (atoll_conn_resumed(c))
        bump(&is->c.resumed, 1);
    s->conn = c;
    atoll_conn_set_callbacks(c, &slot_cb, s);
    atoll_conn_set_nodelay(c, true);
    if (reuses_connection()) {
        set_state(s, SL_HELD);
        slot_start_exchange(s);
    } else {
        slot_start_exchange(s); /* the op began at connect */
    }
}

static void slot_connect(slot *s)
{
    iso_state *is = s->is;
    if (reuses_connection() ? stopping(is) : !take_ticket(is)) {
        set_state(s, SL_IDLE);
        return;
    }
    s->op_start = now_ns();
    s->in_op = false;
    set_state(s, SL_CONNECTING);
    atoll_connect_options o = g_copts;
    if (cfg.resume && s->session)
        o.resume = s->session;
    int rc = atoll_connect(is->self, cfg.addr_text, cfg.port, &o, on_connect, s);
    if (rc < 0) {
        count_error(is, classify(rc), rc);
        set_state(s, SL_RETRY); /* the tick tries again: never loop synchronously */
    }
}

/* ---------------------------------------------------------------------- */
/* Isolate side: start, tick, drain                                       */
/* ---------------------------------------------------------------------- */

static void on_tick(atoll_timer *t, void *user)
{
    iso_state *is = user;
    (void)t;
    if (is->closing)
        return;
    uint64_t now = now_ns();
    for (uint32_t i = 0; i < is->nslots; i++) {
        slot *s = &is->slots[i];
        if (s->state == SL_RETRY) {
            set_state(s, SL_IDLE);
            slot_connect(s);
        } else if (s->state == SL_BUSY && s->in_op && now - s->op_start > (uint64_t)OP_TIMEOUT_MS * 1000000ull) {
            slot_fail(s, EK_TIMEOUT, ATOLL_E_TIMEDOUT);
        }
    }
}

static void on_drain(atoll_isolate *self, void *user)
{
    iso_state *is = user;
    (void)self;
    is->closing = true;
    if (is->tick) {
        atoll_timer_cancel(is->tick);
        is->tick = NULL;
    }
    for (uint32_t i = 0; i < is->nslots; i++) {
        slot *s = &is->slots[i];
        slot_drop_conn(s);
        set_state(s, SL_IDLE);
    }
}

static void *iso_begin(atoll_isolate *self, void *arg)
{
    iso_state *is = arg;
    is->self = self;
    int rc = atoll_isolate_on_drain(self, on_drain, is);
    if (rc == 0)
        rc = atoll_timer_start(self, TICK_MS, TICK_MS, on_tick, is, &is->tick);
    if (rc < 0)
        return (void *)(intptr_t)rc;
    is->started = true;
    for (uint32_t i = 0; i < is->nslots; i++)
        slot_connect(&is->slots[i]);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Command line                                                           */
/* ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: atoll-load --target HOST:PORT --scenario handshake|rr|bulk|idle|churn\n"
               "                  [--connections N] [--duration S] [--requests N] [--isolates N] [--http]\n"
               "                  [--size BYTES] [--resume] [--alpn LIST] [--cafile FILE | --insecure] [--json FILE]\n"
               "                  [--progress] [--allow-remote] [--plain]\n");
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
               "  --plain              plain TCP, no TLS\n"
               "  --json FILE          write the results as JSON: scenario, ops, ops_per_s, duration_s,\n"
               "                       errors {KIND: N}, latency_us {p50,p90,p99,p999,max}, bytes, mb_per_s,\n"
               "                       connections_held, isolates, connections, resumed\n"
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

static int parse_args(int argc, char **argv)
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
        O_PLAIN
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *target = NULL, *scenario = NULL;
    bool have_conns = false, have_duration = false, have_iso = false;
    uint64_t v;
    int opt;
    opterr = 0;
    cfg.duration_s = 10;
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
    if (cfg.plain && (cfg.cafile || cfg.insecure || cfg.resume || cfg.alpn_count))
        return bad_flags("%s", "--plain takes no TLS option (--cafile, --insecure, --resume, --alpn)");
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

/* Request bytes, built once. */
static int build_requests(void)
{
    if (cfg.http) {
        char path[64] = "/";
        if (cfg.scenario == SC_BULK || cfg.size_given)
            snprintf(path, sizeof(path), "/bytes/%llu", (unsigned long long)cfg.size);
        const char *h = cfg.host;
        bool v6 = strchr(h, ':') != NULL;
        int n = asprintf(&cfg.http_req, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: atoll-load\r\n\r\n", path,
                         v6 ? "[" : "", h, v6 ? "]" : "", cfg.port);
        if (n < 0)
            return -ENOMEM;
        cfg.http_req_len = (size_t)n;
        return 0;
    }
    cfg.payload_len = (size_t)cfg.size;
    cfg.payload = malloc(cfg.payload_len);
    if (!cfg.payload)
        return -ENOMEM;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < cfg.payload_len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cfg.payload[i] = (uint8_t)x;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Host side                                                              */
/* ---------------------------------------------------------------------- */

typedef struct totals {
    uint64_t ops, errors, bytes, open, inflight, resumed, connects;
    uint64_t err[EK_COUNT];
} totals;

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

/* Error kinds with their counts, merged over isolates (fixed kinds, then
 * other codes by atoll_error_name). */
typedef struct err_entry {
    char name[48];
    uint64_t count;
    int first;
} err_entry;

static size_t merge_errors(err_entry *out, size_t cap)
{
    size_t n = 0;
    for (int k = 0; k < EK_OTHER; k++) {
        uint64_t sum = 0;
        int first = 0;
        for (uint32_t i = 0; i < g_niso; i++) {
            uint64_t v = atomic_load(&g_iso[i].c.err[k]);
            if (v && !sum)
                first = g_iso[i].first_err[k];
            sum += v;
        }
        if (sum && n < cap) {
            snprintf(out[n].name, sizeof(out[n].name), "%s", err_kind_names[k]);
            out[n].count = sum;
            out[n].first = first;
            n++;
        }
    }
    for (uint32_t i = 0; i < g_niso; i++)
        for (int j = 0; j < MAX_OTHER; j++) {
            if (!g_iso[i].other_count[j])
                continue;
            const char *name = atoll_error_name(g_iso[i].other_code[j]);
            size_t e = 0;
            while (e < n && strcmp(out[e].name, name))
                e++;
            if (e == n) {
                if (n == cap)
                    continue;
                snprintf(out[n].name, sizeof(out[n].name), "%s", name);
                out[n].count = 0;
                out[n].first = g_iso[i].other_code[j];
                n++;
            }
            out[e].count += g_iso[i].other_count[j];
        }
    return n;
}

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

static const char *error_detail(const err_entry *e)
{
    static char buf[160];
    if (!strcmp(e->name, "http_status"))
        snprintf(buf, sizeof(buf), "first: HTTP %d", e->first);
    else if (!strcmp(e->name, "http_parse") || !strcmp(e->name, "mismatch"))
        snprintf(buf, sizeof(buf), "%s", !strcmp(e->name, "mismatch") ? "echoed bytes differ" : "bad response");
    else
        snprintf(buf, sizeof(buf), "first: %s (%s)", atoll_error_name(e->first), atoll_strerror(e->first));
    return buf;
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
        for (uint32_t j = 0; j < is->nslots; j++) {
            slot *s = &is->slots[j];
            s->is = is;
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
    fprintf(stderr, "\n");

    atomic_store(&g_phase, PH_RUN);
    uint64_t t0 = now_ns();
    int setup_failed = 0;
    for (uint32_t i = 0; i < g_niso; i++) {
        rc = atoll_runtime_submit(rt, i, iso_begin, &g_iso[i], NULL, NULL, NULL);
        if (rc < 0) {
            fprintf(stderr, "atoll-load: starting isolate %u: %s\n", i, atoll_strerror(rc));
            setup_failed = 1;
            break;
        }
    }

    /* Run until the bound. */
    uint64_t bound_ns = cfg.duration_s > 0 ? (uint64_t)(cfg.duration_s * 1e9) : UINT64_MAX;
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
    hist lat;
    memset(&lat, 0, sizeof(lat));
    for (uint32_t i = 0; i < g_niso; i++)
        hist_merge(&lat, &g_iso[i].lat);
    err_entry errs[EK_COUNT + MAX_OTHER * 4];
    size_t nerr = merge_errors(errs, sizeof(errs) / sizeof(errs[0]));
    double ops_s = duration > 0 ? (double)t.ops / duration : 0;
    double mb_s = duration > 0 ? (double)t.bytes / 1e6 / duration : 0;
    uint64_t p50 = hist_percentile(&lat, 0.50), p90 = hist_percentile(&lat, 0.90), p99 = hist_percentile(&lat, 0.99),
             p999 = hist_percentile(&lat, 0.999);

    printf("scenario        %s%s%s\n", scenario_names[cfg.scenario], cfg.http ? " (http)" : " (echo)",
           cfg.plain    ? " plain"
           : cfg.resume ? " tls+resume"
                        : " tls");
    printf("target          %s%s%s:%d (%s)\n", lb, cfg.host, rb, cfg.port, cfg.addr_text);
    printf("connections     %u on %u isolates\n", cfg.connections, g_niso);
    printf("ops             %llu\n", (unsigned long long)t.ops);
    printf("duration        %.3f s\n", duration);
    printf("ops/s           %.1f\n", ops_s);
    printf("errors          %llu\n", (unsigned long long)t.errors);
    for (size_t i = 0; i < nerr; i++)
        printf("  %-13s %llu  %s\n", errs[i].name, (unsigned long long)errs[i].count, error_detail(&errs[i]));
    printf("latency us      p50 %llu  p90 %llu  p99 %llu  p999 %llu  max %llu  (mean %.0f)\n", (unsigned long long)p50,
           (unsigned long long)p90, (unsigned long long)p99, (unsigned long long)p999, (unsigned long long)lat.max,
           lat.count ? (double)lat.sum / (double)lat.count : 0.0);
    printf("bytes           %llu\n", (unsigned long long)t.bytes);
    printf("MB/s            %.2f\n", mb_s);
    printf("connects        %llu (%llu resumed)\n", (unsigned long long)t.connects, (unsigned long long)t.resumed);
    if (cfg.scenario == SC_IDLE)
        printf("held            %llu of %u\n", (unsigned long long)held, cfg.connections);
    if (inflight_left)
        printf("unfinished      %llu ops still in flight after the %d ms grace\n", (unsigned long long)inflight_left,
               GRACE_MS);
    if (g_interrupted)
        printf("interrupted     by signal %d\n", (int)g_interrupted);
    fflush(stdout);

    int exit_code = setup_failed ? 1 : 0;
    if (cfg.json) {
        FILE *f = fopen(cfg.json, "w");
        if (!f) {
            fprintf(stderr, "atoll-load: cannot write %s: %s\n", cfg.json, strerror(errno));
            exit_code = 1;
        } else {
            fprintf(f, "{\"scenario\":\"%s\",\"ops\":%llu,\"ops_per_s\":%.3f,\"duration_s\":%.6f,\"errors\":{",
                    scenario_names[cfg.scenario], (unsigned long long)t.ops, ops_s, duration);
            for (size_t i = 0; i < nerr; i++) {
                fprintf(f, "%s", i ? "," : "");
                json_string(f, errs[i].name);
                fprintf(f, ":%llu", (unsigned long long)errs[i].count);
            }
            fprintf(f,
                    "},\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
                    "\"bytes\":%llu,\"mb_per_s\":%.3f,\"connections_held\":%llu,\"isolates\":%u,"
                    "\"connections\":%u,\"handshakes\":%llu,\"resumed\":%llu,\"unfinished\":%llu}\n",
                    (unsigned long long)p50, (unsigned long long)p90, (unsigned long long)p99, (unsigned long long)p999,
                    (unsigned long long)lat.max, (unsigned long long)t.bytes, mb_s,
                    (unsigned long long)(cfg.scenario == SC_IDLE ? held : 0), g_niso, cfg.connections,
                    (unsigned long long)t.connects, (unsigned long long)t.resumed, (unsigned long long)inflight_left);
            if (fclose(f) != 0) {
                fprintf(stderr, "atoll-load: writing %s failed\n", cfg.json);
                exit_code = 1;
            }
        }
    }

    atoll_runtime_destroy(rt);
    for (uint32_t i = 0; i < g_niso; i++) {
        for (uint32_t j = 0; j < g_iso[i].nslots; j++) {
            slot *s = &g_iso[i].slots[j];
            atoll_session_free(s->session);
            free(s->hdr);
            free(s->scratch);
        }
        free(g_iso[i].slots);
    }
    free(g_iso);
    free(cfg.payload);
    free(cfg.http_req);
    free(cfg.alpn_buf);
    (void)rc;
    return exit_code;
}
