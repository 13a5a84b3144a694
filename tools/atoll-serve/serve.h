/*
 * tools/atoll-serve/serve.h: what the files of atoll-serve share: the
 * configuration from the command line, the per-isolate state and the
 * per-connection state, the one global (`g`), and the functions each file
 * offers the others. Private to atoll-serve.
 */
#ifndef ATOLL_TOOLS_SERVE_H
#define ATOLL_TOOLS_SERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <atoll/atoll.h>

#define PROG "atoll-serve"

/* ---- command line (cli.c) ------------------------------------------------ */

typedef enum { MODE_HTTP, MODE_ECHO } serve_mode;

typedef struct config {
    const char *address;
    int port;
    uint32_t isolates;
    serve_mode mode;
    const char *cert, *key, *key_password, *write_cert, *client_ca;
    const char *alpn; /* comma-separated */
    bool request_cert, require_cert, v6only, no_resumption, alpn_strict;
    bool pin_cpus, steer_cpu; /* --pin-cpus, --steering cpu (implies pinning) */
    bool plain;               /* --plain: cleartext TCP, no security context */
    int backlog;
    uint32_t handshake_timeout_ms;
    uint32_t drain_timeout_ms;  /* --drain-timeout */
    uint32_t idle_timeout_ms;   /* --idle-timeout */
    uint32_t max_conns;         /* --max-conns */
    uint32_t header_timeout_ms; /* --header-timeout (http) */
    const char *admin;          /* --admin, or NULL */
    bool proxy_protocol;        /* --proxy-protocol */
    const char *proxy_allow;    /* --proxy-allow, or NULL (the library's default) */
    uint32_t drain_delay_ms;    /* --drain-delay */
    double duration_s;          /* 0: none */
    /* --ticket-key-file, each one, in command-line order */
    const char **ticket_key_files;
    size_t nticket_key_files;
} config;

/* Parses the command line into *cfg; prints the usage and exits 0 on
 * --help, or prints the error and the usage and exits 2 on a bad one. */
void parse_args(int argc, char **argv, config *cfg);

/* ALPN list "a,b,c" -> array of strings (pointing into one copy). */
char **alpn_split(const char *list, size_t *count, char **storage);

/* ---- files (files.c) ----------------------------------------------------- */

/* Reads a whole file into *data (malloc'd, NUL-terminated past *len).
 * 0 or a negative errno (-EFBIG past 64 MiB). */
int read_file(const char *path, uint8_t **data, size_t *len);

/* Writes a file whole, through a temporary file renamed over `path`.
 * 0 or a negative errno. */
int write_whole_file(const char *path, const void *data, size_t len);

/* Reads every --ticket-key-file and concatenates their keys in order into
 * *keys (malloc'd; free with free_ticket_keys), *len bytes. 0, or -1 with
 * the reason (naming the file) in `why`. */
int read_ticket_keys(uint8_t **keys, size_t *len, char *why, size_t why_len);
/* Wipes and frees what read_ticket_keys returned. */
void free_ticket_keys(uint8_t *keys, size_t len);

/* ---- certificate and key (cert.c) ---------------------------------------- */

typedef struct pem_buf {
    uint8_t *data;
    size_t len;
} pem_buf;

/* Loads the server's material into `ctx`: --cert/--key (PEM or DER), or an
 * ephemeral self-signed certificate, and --client-ca. *chain_out gets the
 * chain as PEM (malloc'd) for --write-cert. 0, or -1 with the reason
 * printed. */
int load_material(atoll_security_context *ctx, pem_buf *chain_out);

/* ---- per-isolate state and connections (conn.c) --------------------------- */

#define BLOCK_SIZE  16384u /* per active connection */
#define REQ_MAX     8192u  /* HTTP request head limit */
#define HEAD_OFF    REQ_MAX
#define HEAD_MAX    512u
#define BLOCK_CACHE 256u /* free blocks kept per isolate */
#define PATTERN_LEN 65536u
#define BYTES_MAX   (1ull << 30)

struct sconn;

/* Kinds of failed handshakes in /metrics (atoll_server_error.code). */
enum {
    ERR_HANDSHAKE,
    ERR_TIMEOUT,
    ERR_PEER_CLOSED,
    ERR_CERTIFICATE,
    ERR_ALPN,
    ERR_PROXY,
    ERR_PROXY_DENIED,
    ERR_OTHER,
    ERROR_KINDS
};

typedef struct iso_state {
    uint32_t id;
    struct sconn *conns; /* every live connection of this isolate (open_conns counts them) */
    bool draining;
    uint64_t drain_ns;                /* when the drain reached this isolate (mono_ns) */
    atoll_timer *sweep;               /* http: the header-timeout sweep */
    time_t date_at;                   /* http: the second `date` was made for */
    char date[32];                    /* http: the Date field's value */
    _Atomic uint64_t header_timeouts; /* requests answered 408 (read by stats_json) */
    /* For GET /metrics (stats.c), written by the isolate, read by the admin
     * thread: open connections, resumed handshakes, failed ones by kind. */
    _Atomic uint64_t open_conns, resumed;
    _Atomic uint64_t errors[ERROR_KINDS];
    void *cache[BLOCK_CACHE];
    uint32_t ncache;
} iso_state;

typedef struct app {
    config cfg;
    atoll_runtime *rt;
    atoll_listener *listener;
    uint32_t n;   /* isolates at start */
    uint32_t cap; /* iso[]: every isolate the runtime may have (max_isolates) */
    iso_state *iso;
    _Atomic bool draining; /* a drain began: GET /ready answers 503 */
} app;

/* The program's state: the configuration, the runtime and its listener,
 * and each isolate's state (main.c). */
extern app g;

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
    uint64_t head_start_ns;      /* http: when the first byte of an incomplete head came; 0: none */
    uint32_t served;             /* http: responses completed */
    bool close_after;            /* close once the output is flushed */
    bool peer_eof, paused, closing;
} sconn;

/* Set from ATOLL_SERVE_DEBUG: log every failed handshake (conn.c). */
extern bool debug_log;

/* Draining, http: quiet between requests for a second (closed then). */
bool sc_drain_idle(const sconn *s);
/* Closes the connection (once); its on_closed frees it. */
void sc_close(sconn *s);
/* Gives the connection a 16 KiB block from the isolate's cache, if it has
 * none; false when out of memory. */
bool sc_ensure_block(sconn *s);
/* Returns the block to the cache when nothing is buffered or being sent. */
void sc_release_block_if_idle(sconn *s);
/* Backpressure on the input side: stop the socket reads while output is
 * blocked and the peer keeps sending (lazily, when a read event shows it). */
void sc_pause(sconn *s);
/* Resumes the socket reads stopped by sc_pause. */
void sc_resume(sconn *s);

/* Server callbacks, on each isolate: a new connection gets an sconn and the
 * connection callbacks; a failed handshake is logged with debug_log. */
void srv_on_connection(atoll_server *server, atoll_conn *c, void *user);
void srv_on_error(atoll_server *server, const atoll_server_error *e, void *user);
/* A listener member is bound on its isolate: in http mode, starts the
 * isolate's header-timeout sweep (stopped when the isolate drains). */
void srv_on_bound(atoll_server *server, int status, void *user);

/* ---- the two modes (echo.c, http.c) --------------------------------------- */

/* Echo mode: flushes what is pending, then reads and writes back until the
 * connection blocks or ends. */
void echo_drive(sconn *s);

/* HTTP mode: flushes the response in progress, then parses and answers the
 * buffered requests, reading more as needed. */
void http_drive(sconn *s);
/* The request head did not complete within --header-timeout: 408, close. */
void http_request_timeout(sconn *s);

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fills the pattern streamed as the body of /bytes/N. Call once, before
 * any connection. */
void http_pattern_init(void);

/* ---- counters (stats.c) --------------------------------------------------- */

/* Prints the per-isolate counters line (stats_json) on stdout. */
void print_stats(void);
/* The same line, malloc'd (NULL: out of memory); for the admin port. */
char *stats_json(void);
/* The same counters and a few more in Prometheus' text format (version
 * 0.0.4), one sample per isolate (label isolate="N"), for GET /metrics;
 * malloc'd, NULL when out of memory. Thread: any. */
char *stats_metrics(void);

/* ---- admin port (admin.c) ------------------------------------------------- */

/* Splits --admin's "PORT", "ADDR:PORT" or "[V6]:PORT" (ADDR defaults to
 * 127.0.0.1); -1 when malformed. */
int admin_parse(const char *spec, char *host, size_t host_len, int *port);
/* Binds the admin port and starts its thread; `bound` gets "ADDR:PORT" (the
 * real port). 0, or -1 with the reason printed. */
int admin_start(const char *host, int port, char *bound, size_t bound_len);
/* Stops the admin thread (after the request in progress) and closes it. */
void admin_stop(void);

#endif /* ATOLL_TOOLS_SERVE_H */
