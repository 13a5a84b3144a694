/*
 * tools/atoll-load/load.h: what the files of atoll-load share: the
 * configuration, the run phase, the latency histogram, the per-isolate and
 * per-slot state with their single-writer counters, the host's merged
 * results, and the functions each file offers the others. Private to
 * atoll-load.
 */
#ifndef ATOLL_TOOLS_LOAD_H
#define ATOLL_TOOLS_LOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <atoll/atoll.h>

/* ---- latency histogram (histogram.c) --------------------------------------- */

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

/* Counts value v (microseconds). */
void hist_record(hist *h, uint64_t v);
/* Adds the counts of `from` to `into`. */
void hist_merge(hist *into, const hist *from);
/* The value at quantile p (0..1): the top of its bucket, at most the
 * maximum; 0 when empty. */
uint64_t hist_percentile(const hist *h, double p);

/* ---- configuration (cli.c) -------------------------------------------------- */

enum scenario { SC_HANDSHAKE, SC_RR, SC_BULK, SC_IDLE, SC_CHURN };
/* How --rate spaces the intended start times. */
enum arrivals { AR_UNIFORM, AR_POISSON };
/* Scenario names, by enum scenario (cli.c). */
extern const char *const scenario_names[];

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
/* Error kind names, by enum err_kind (errors.c). */
extern const char *const err_kind_names[EK_COUNT];

#define MAX_ISOLATES       256
#define MAX_ALPN           16
#define GRACE_MS           2000  /* in-flight operations may finish within this after the bound */
#define OP_TIMEOUT_MS      10000 /* an exchange on an open connection */
#define CONNECT_TIMEOUT_MS 10000
#define HDR_CAP            8192
#define SCRATCH_CAP        65536
#define TICK_MS            100
#define PACE_MS            1     /* the --rate pacer's period: atoll timers count milliseconds */
#define PACE_START_MS      1000  /* an isolate's schedule begins when its connections are open, or then */
#define MIN_RATE           0.001 /* a gap of 1000 s: gaps stay far inside uint64 ns */
#define MAX_RATE           1e7
#define DEFAULT_SEED       1

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
    double rate;            /* --rate: requests/s over the whole run; 0: closed loop */
    enum arrivals arrivals; /* --arrivals */
    uint64_t seed;          /* --seed: the poisson PRNG's seed */
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

/* The configuration, set by parse_args and build_requests, read-only
 * during the run (main.c). */
extern config cfg;

/* Parses the command line into cfg and resolves --target. 0, 1 (setup
 * failure: unreadable --cafile, a target that does not resolve or is not
 * loopback) or 2 (bad flags), the reason printed; --help exits 0. */
int parse_args(int argc, char **argv);

/* Request bytes, built once (request.c): cfg.http_req or cfg.payload.
 * 0 or -ENOMEM. */
int build_requests(void);

/* ---- run phase (main.c) ----------------------------------------------------- */

/* Run phases, published by the host. */
enum { PH_SETUP = 0, PH_RUN = 1, PH_STOP = 2 };
extern _Atomic int g_phase;
extern _Atomic int64_t g_tickets; /* ops still allowed with --requests */

/* ---- per-isolate state ------------------------------------------------------ */

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
    bool on_free;      /* --rate: on its isolate's free stack (maybe stale: checked on pop) */
    uint32_t idx;      /* index in is->slots */
    uint64_t op_start; /* ns; with --rate the request's intended start */
    uint64_t op_sent;  /* ns: when the exchange really began (the timeout counts from it) */
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

/* An isolate's share of the --rate schedule (pace.c). Isolate i of n takes
 * every n-th point of a uniform schedule (offset i), or runs a poisson
 * process of rate R/n (the sum of independent poisson processes is one of
 * rate R). It begins once the isolate's connections are open (at the
 * latest PACE_START_MS into the run). Written by the isolate during the
 * run, by the host after it. */
typedef struct pacer {
    bool started;         /* the schedule has begun (see PACE_START_MS) */
    uint64_t start_by_ns; /* it begins at the latest then */
    uint64_t origin_ns;   /* when it began */
    uint64_t end_ns;      /* no intended start at or after this (the duration bound) */
    uint64_t next_ns;     /* intended start of the next request */
    uint64_t k;           /* schedule points taken = requests issued */
    uint64_t max_wait_ns;
    uint64_t rng;
    double period_ns; /* uniform: 1/R; poisson: the mean gap n/R */
    uint32_t lane, lanes;
    uint32_t *free_idx; /* stack of slots with an open connection and no request */
    uint32_t nfree;
    atoll_timer *timer;
} pacer;

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
    pacer pace;
} iso_state;

/* The isolates' state (g_niso of them) and the connect options every slot
 * uses (main.c). */
extern iso_state *g_iso;
extern uint32_t g_niso;
extern atoll_connect_options g_copts;

static inline void bump(_Atomic uint64_t *ctr, uint64_t n)
{
    /* Single writer: a relaxed load + store, no locked instruction. */
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void drop(_Atomic uint64_t *ctr)
{
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) - 1, memory_order_relaxed);
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- errors (errors.c) ------------------------------------------------------ */

/* The error kind of an atoll or errno code. */
enum err_kind classify(int code);
/* Counts an error of kind k (code `code`) on isolate `is`. Isolate only. */
void count_error(iso_state *is, enum err_kind k, int code);

/* Error kinds with their counts, merged over isolates (fixed kinds, then
 * other codes by atoll_error_name). */
typedef struct err_entry {
    char name[48];
    uint64_t count;
    int first;
} err_entry;

/* Fills out[0..cap) with the error kinds seen over every isolate; returns
 * how many. Host, after the run. */
size_t merge_errors(err_entry *out, size_t cap);
/* A one-line detail for an error kind in the summary (a static buffer). */
const char *error_detail(const err_entry *e);

/* ---- slots (slot.c, response.c) --------------------------------------------- */

/* Whether the slots of `is` must stop issuing ops (drained, or the run is
 * past its bound). */
bool stopping(const iso_state *is);
/* Moves the slot to state st, keeping the in-flight count. */
void set_state(slot *s, enum slot_state st);
/* Closes the slot's connection; its on_closed only updates the open count. */
void slot_drop_conn(slot *s);
/* What a slot does next, once it has no exchange in flight. */
void slot_next(slot *s);
/* An operation (or the connection under it) failed. */
void slot_fail(slot *s, enum err_kind k, int code);
/* An operation completed: its latency and count are recorded, the session
 * kept for resumption, and the slot goes on. */
void slot_op_done(slot *s);
/* Writes the rest of the request; arms write events when blocked. */
void slot_flush(slot *s);
/* Starts a connect on the slot (an op of its own unless the scenario
 * reuses connections), or leaves it idle when the run is over. */
void slot_connect(slot *s);

/* The callbacks of a slot's open connection: reading and checking the
 * response, flushing the request, end of input and close (response.c). */
extern const atoll_conn_callbacks slot_cb;

/* Starts a request on a slot holding an open connection, its latency
 * counted from intended_ns (rr, --rate; slot.c). */
void slot_issue(slot *s, uint64_t intended_ns);

/* ---- --rate pacing (pace.c) ------------------------------------------------- */

/* Allocates the pacer's free stack (host, at setup). 0 or -ENOMEM. */
int pacer_alloc(iso_state *is);
/* Sets up isolate `is`'s share of the schedule (host, as the run starts):
 * run start t0, end bound (UINT64_MAX: none). */
void pacer_init(iso_state *is, uint64_t t0, uint64_t end_ns);
/* Frees the pacer's stack (host, after the run). */
void pacer_free(iso_state *is);
/* Starts the isolate's 1 ms pacing timer (isolate). 0 or an atoll error. */
int pacer_start(iso_state *is);
/* Cancels the pacing timer (isolate, drain). */
void pacer_stop(iso_state *is);
/* A slot's connection is open and has no request: it takes the oldest due
 * request now, or waits on the free stack for the next one (isolate). */
void pace_slot_free(slot *s);
/* Requests of isolate `is`'s schedule due before stop_ns, issued or not
 * (host, after the run; advances the schedule). */
uint64_t pacer_due(iso_state *is, uint64_t stop_ns);

/* ---- isolate side (isolate.c) ----------------------------------------------- */

/* Task run on each isolate at the start: drain hook, tick timer, then a
 * connect on every slot. Returns NULL or an error code as a pointer. */
void *iso_begin(atoll_isolate *self, void *arg);

/* ---- report (report.c) ------------------------------------------------------ */

typedef struct totals {
    uint64_t ops, errors, bytes, open, inflight, resumed, connects;
    uint64_t err[EK_COUNT];
} totals;

/* What a run measured, merged over the isolates, for the report. */
typedef struct results {
    totals t;
    hist lat;
    err_entry errs[EK_COUNT + MAX_OTHER * 4];
    size_t nerr;
    double duration, ops_s, mb_s;
    uint64_t p50, p90, p99, p999;
    uint64_t held, inflight_left;
    int interrupted; /* the signal that ended the run, or 0 */
    /* --rate: requests due by the end, started, and the longest wait
     * between a request's intended and real start. */
    uint64_t intended, issued, max_queue_delay_us;
} results;

/* Prints the summary on stdout. */
void report_print(const results *r);
/* Writes the results as JSON to cfg.json. 0, or 1 with the reason on
 * stderr. */
int report_json(const results *r);

#endif /* ATOLL_TOOLS_LOAD_H */
