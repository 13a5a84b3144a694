/*
 * atoll-bench-ports: cross-isolate message throughput and round-trip latency
 * of atoll ports, measured in one run side by side with a plain-pthreads
 * baseline, so the printed ratios compare figures taken together (absolute
 * numbers drift on shared machines).
 *
 * Setup: one runtime with two pool isolates, A (id 0) and B (id 1), each
 * with one receive port of capacity WINDOW. The host thread starts each
 * measurement by sending a command to A's port (an eventfd wakeup, outside
 * the timed window) and waits on a mutex+condvar until an isolate reports
 * "done". Every message carries its kind in `tag` and an integer in `data`
 * (no payload allocation, `release` NULL).
 *
 * 1. Throughput, credit-based flow control. A may have at most WINDOW
 *    messages in flight (WINDOW == port capacity). B returns a credit
 *    message worth CREDIT_EVERY messages each time it has consumed that
 *    many. A sends while it holds credits, from the callback that received
 *    the start command or a credit, then returns to its loop; both loops
 *    keep running and nobody spins. Since outstanding messages never exceed
 *    the port capacity, ATOLL_E_PORT_FULL cannot happen; should it happen
 *    anyway, A stops sending and re-arms a 0 ms one-shot timer to resume on
 *    its next loop turn (counted and reported as "full retries").
 *    Time: A reads CLOCK_MONOTONIC before its first send, B after it
 *    received the last message; B checks that sequence numbers arrive in
 *    order.
 *    (Build with -DBENCH_PORT_CAPACITY=256 to exercise that path.)
 * 2. Round trips: A sends PING(i) to B, B answers PONG(i) to A; A times each
 *    round trip with clock_gettime(CLOCK_MONOTONIC) into a preallocated
 *    array (after a short unrecorded warm-up), then the host sorts it. A run
 *    stops early when its time budget (--rtt-seconds, default 3 s) is spent,
 *    so the whole program stays bounded on machines where a cross-CPU
 *    wakeup costs tens of microseconds; it reports how many it recorded.
 * 3. Baseline: the same two protocols between two plain pthreads. Each
 *    direction is a queue: a mutex-protected fixed-size ring buffer plus a
 *    blocking eventfd. The producer writes the eventfd only when its push
 *    took the queue from empty to non-empty (coalesced wakeups); the
 *    consumer pops one message per lock and blocks in read() on the eventfd
 *    when the queue is empty. Throughput uses a data queue and a credit
 *    queue (same WINDOW/CREDIT_EVERY), ping-pong one queue per side.
 *
 * Each measurement runs --repeat times, alternating which system goes
 * first, and the median of the repeats is reported. The latency ratio is
 * baseline mean RTT / atoll mean RTT (p50 and p99 ratios are printed too).
 *
 * Diagnostics: per-isolate counters (atoll_runtime_isolate_stats) give ring
 * wakeups per message (coalescing) and loop turns; the baseline counts its
 * eventfd writes and read() calls. Both sides also sample sched_getcpu():
 * the replying side records its CPU before it replies (credit or pong), the
 * other compares on receipt; "same CPU" is the fraction of replies received
 * while both ran on one CPU. Latency depends on that placement far more
 * than on either implementation, so read the ratios together with it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atoll/atoll.h>

#define WINDOW       4096u  /* messages in flight; port and queue capacity */
#define CREDIT_EVERY 1024u  /* consumer returns credit every K messages */
#ifndef BENCH_PORT_CAPACITY /* smaller than WINDOW exercises the full-port path */
#define BENCH_PORT_CAPACITY WINDOW
#endif
#define RUN_TIMEOUT_S 60         /* a single measurement taking longer is an error */
#define WARMUP_MAX    10000u     /* unrecorded round trips before each RTT run */
#define RTT_STOP      UINT64_MAX /* baseline: tells the pong thread to end */

/* Metrics kept per repeat, reported as medians. */
enum metric {
    A_TPUT,
    B_TPUT,
    A_MEAN,
    A_P50,
    A_P99,
    B_MEAN,
    B_P50,
    B_P99,
    A_WAKE,
    A_RTWAKE,
    A_TPUT_CO,
    B_TPUT_CO,
    A_RTT_CO,
    B_RTT_CO,
    NMETRICS
};

enum msg_kind {
    K_START_TPUT = 1, /* host -> A */
    K_START_RTT,      /* host -> A */
    K_DATA,           /* A -> B, data = sequence number */
    K_CREDIT,         /* B -> A, data = messages credited */
    K_PING,           /* A -> B, data = round trip index */
    K_PONG,           /* B -> A, data = round trip index */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Co-location sampling: the answering side stores the CPU it runs on just
 * before it replies (credit or pong); the other side compares it with its
 * own CPU when the reply arrives. Explains latency figures, which depend
 * mostly on whether the scheduler put both threads on one CPU. */
static void cpu_mark(_Atomic int *slot)
{
    atomic_store_explicit(slot, sched_getcpu(), memory_order_relaxed);
}

static bool cpu_same(_Atomic int *slot)
{
    return atomic_load_explicit(slot, memory_order_relaxed) == sched_getcpu();
}

/* ---------------------------------------------------------------------- */
/* Results                                                                */
/* ---------------------------------------------------------------------- */

typedef struct tput_result {
    double msgs_per_s;
    double wakeups_per_msg; /* atoll: B's ring wakeups; baseline: eventfd writes on the data queue */
    double sleeps_per_msg;  /* atoll: B's loop turns; baseline: consumer read() calls */
    uint64_t full_retries;  /* atoll only */
    double same_cpu;        /* fraction of credits received while on the consumer's CPU */
} tput_result;

typedef struct rtt_result {
    double mean_us, p50_us, p99_us;
    double wakeups_per_rt; /* atoll: ring wakeups A+B; baseline: eventfd writes */
    double same_cpu;       /* fraction of round trips with both sides on one CPU */
    uint64_t count;        /* round trips recorded (fewer than asked if the time budget ran out) */
} rtt_result;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t percentile(const uint64_t *sorted, uint64_t n, unsigned p)
{
    uint64_t rank = (n * p + 99) / 100; /* ceil(n * p / 100) */
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

static void rtt_summarise(uint64_t *rtt, uint64_t n, rtt_result *out)
{
    qsort(rtt, n, sizeof(*rtt), cmp_u64);
    long double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += rtt[i];
    out->mean_us = (double)(sum / n / 1000.0L);
    out->p50_us = percentile(rtt, n, 50) / 1000.0;
    out->p99_us = percentile(rtt, n, 99) / 1000.0;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------------- */
/* atoll side                                                             */
/* ---------------------------------------------------------------------- */

/* One isolate's benchmark state; touched only on that isolate's thread
 * (the host reads the counters after "done", ordered by the port queues
 * and the job mutex). */
typedef struct iso_state {
    atoll_isolate *self;
    atoll_receive_port *port;
    /* A, throughput */
    uint64_t sent, credits, full_retries;
    bool retry_armed;
    /* B, throughput */
    uint64_t received, since_credit;
    /* A, round trips */
    uint64_t rt_index, rt_t0;
    /* A: co-location samples (credits or recorded round trips) */
    uint64_t samples, same_cpu;
} iso_state;

/* The current measurement. The host fills the parameters before sending the
 * start command; the isolates publish the outcome under `lock`. */
typedef struct job {
    uint64_t n;           /* messages, or recorded round trips */
    uint64_t warmup;      /* unrecorded round trips */
    uint64_t deadline_ns; /* round trips: stop recording at this time (0: none) */
    uint64_t recorded;
    uint64_t *rtt_ns; /* [n] */
    uint64_t t0_ns, t1_ns;
    int err;
    const char *err_where;
    bool done;
} job;

static struct bench {
    atoll_runtime *rt;
    _Atomic uint64_t handle[2]; /* send handles of A's and B's ports */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    unsigned ready;      /* isolates with an open port */
    unsigned exited;
    int exit_status[2];
    job job;
    iso_state st[2];
    _Atomic int peer_cpu; /* B's CPU when it last replied */
} g;

static void job_end(int err, const char *where)
{
    pthread_mutex_lock(&g.lock);
    if (!g.job.done) {
        g.job.err = err;
        g.job.err_where = where;
        g.job.done = true;
        pthread_cond_broadcast(&g.cond);
    }
    pthread_mutex_unlock(&g.lock);
}

static int send_to(uint32_t iso, uint64_t kind, uint64_t value)
{
    atoll_send_port to = {atomic_load_explicit(&g.handle[iso], memory_order_acquire)};
    atoll_message m = {.tag = kind, .data = (void *)(uintptr_t)value, .size = 0, .release = NULL};
    return atoll_port_send(g.rt, to, &m);
}

static void pump(iso_state *st);

static void on_retry(atoll_timer *t, void *user)
{
    iso_state *st = user;
    (void)t; /* one-shot: released by the loop after we return */
    st->retry_armed = false;
    pump(st);
}

/* A: send while holding credits. Never loops on a full port: a 0 ms timer
 * resumes on the next loop turn, after B had a chance to run. */
static void pump(iso_state *st)
{
    const uint64_t n = g.job.n;
    while (st->sent < n && st->credits > 0) {
        int ret = send_to(1, K_DATA, st->sent);
        if (ret == ATOLL_E_PORT_FULL) {
            st->full_retries++;
            if (!st->retry_armed) {
                atoll_timer *t;
                ret = atoll_timer_start(st->self, 0, 0, on_retry, st, &t);
                if (ret < 0) {
                    job_end(ret, "atoll_timer_start (retry)");
                    return;
                }
                st->retry_armed = true;
            }
            return;
        }
        if (ret < 0) {
            job_end(ret, "atoll_port_send (data)");
            return;
        }
        st->sent++;
        st->credits--;
    }
}

static void on_message(atoll_receive_port *port, atoll_message *msg, void *user)
{
    iso_state *st = user;
    uint64_t v = (uint64_t)(uintptr_t)msg->data;
    int ret;
    (void)port;
    switch (msg->tag) {
    case K_START_TPUT:
        st->sent = 0;
        st->credits = WINDOW;
        st->full_retries = 0;
        st->samples = st->same_cpu = 0;
        g.job.t0_ns = now_ns();
        pump(st);
        break;
    case K_CREDIT:
        st->samples++;
        st->same_cpu += cpu_same(&g.peer_cpu);
        st->credits += v;
        pump(st);
        break;
    case K_DATA:
        if (v == 0) {
            st->received = 0;
            st->since_credit = 0;
        }
        if (v != st->received) {
            job_end(-EPROTO, "B: data message out of order");
            return;
        }
        if (++st->received == g.job.n) {
            g.job.t1_ns = now_ns();
            job_end(0, NULL);
            return;
        }
        if (++st->since_credit == CREDIT_EVERY) {
            cpu_mark(&g.peer_cpu);
            ret = send_to(0, K_CREDIT, st->since_credit);
            if (ret < 0) {
                job_end(ret, "atoll_port_send (credit)");
                return;
            }
            st->since_credit = 0;
        }
        break;
    case K_START_RTT:
        st->rt_index = 0;
        st->samples = st->same_cpu = 0;
        st->rt_t0 = now_ns();
        if ((ret = send_to(1, K_PING, 0)) < 0)
            job_end(ret, "atoll_port_send (ping)");
        break;
    case K_PING:
        cpu_mark(&g.peer_cpu);
        if ((ret = send_to(0, K_PONG, v)) < 0)
            job_end(ret, "atoll_port_send (pong)");
        break;
    case K_PONG: {
        uint64_t t1 = now_ns();
        if (v != st->rt_index) {
            job_end(-EPROTO, "A: pong out of order");
            return;
        }
        if (st->rt_index >= g.job.warmup) {
            g.job.rtt_ns[st->rt_index - g.job.warmup] = t1 - st->rt_t0;
            st->samples++;
            st->same_cpu += cpu_same(&g.peer_cpu);
        }
        if (++st->rt_index == g.job.warmup + g.job.n || (g.job.deadline_ns && t1 >= g.job.deadline_ns)) {
            g.job.recorded = st->rt_index > g.job.warmup ? st->rt_index - g.job.warmup : 0;
            job_end(0, NULL);
            return;
        }
        st->rt_t0 = now_ns();
        if ((ret = send_to(1, K_PING, st->rt_index)) < 0)
            job_end(ret, "atoll_port_send (ping)");
        break;
    }
    default:
        job_end(-EPROTO, "unknown message kind");
        break;
    }
}

static void on_drain(atoll_isolate *self, void *user)
{
    iso_state *st = user;
    int ret = atoll_port_close(st->port);
    if (ret < 0)
        fprintf(stderr, "atoll-bench-ports: isolate %u: atoll_port_close: %s\n", atoll_isolate_id(self),
                atoll_strerror(ret));
}

static int isolate_entry(atoll_isolate *self, void *arg)
{
    uint32_t me = atoll_isolate_id(self);
    (void)arg;
    if (me > 1)
        return 0;
    iso_state *st = &g.st[me];
    st->self = self;
    atoll_port_options po = {.capacity = BENCH_PORT_CAPACITY};
    int ret = atoll_port_open(self, &po, on_message, st, &st->port);
    if (ret < 0) {
        fprintf(stderr, "atoll-bench-ports: isolate %u: atoll_port_open: %s\n", me, atoll_strerror(ret));
        return ret;
    }
    ret = atoll_isolate_on_drain(self, on_drain, st);
    if (ret < 0) {
        fprintf(stderr, "atoll-bench-ports: isolate %u: atoll_isolate_on_drain: %s\n", me, atoll_strerror(ret));
        return ret;
    }
    atomic_store_explicit(&g.handle[me], atoll_port_send_handle(st->port).id_private, memory_order_release);
    pthread_mutex_lock(&g.lock);
    g.ready++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    return 0;
}

static void on_isolate_exit(atoll_runtime *rt, uint32_t id, int status, void *user)
{
    (void)rt;
    (void)user;
    pthread_mutex_lock(&g.lock);
    if (id < 2)
        g.exit_status[id] = status;
    g.exited++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static void deadline_in(struct timespec *ts, unsigned seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += seconds;
}

/* Host: waits for the job, or for an isolate to die, or the deadline. */
static int wait_job(void)
{
    struct timespec dl;
    deadline_in(&dl, RUN_TIMEOUT_S);
    int rc = 0;
    pthread_mutex_lock(&g.lock);
    while (!g.job.done && g.exited == 0 && rc == 0)
        rc = pthread_cond_timedwait(&g.cond, &g.lock, &dl);
    int ret;
    if (g.job.done) {
        ret = g.job.err;
        if (ret < 0)
            fprintf(stderr, "atoll-bench-ports: %s: %s\n", g.job.err_where, atoll_strerror(ret));
    } else if (g.exited) {
        fprintf(stderr, "atoll-bench-ports: an isolate exited during the measurement\n");
        ret = ATOLL_E_STOPPED;
    } else {
        fprintf(stderr, "atoll-bench-ports: measurement did not finish within %d s\n", RUN_TIMEOUT_S);
        ret = ATOLL_E_TIMEDOUT;
    }
    pthread_mutex_unlock(&g.lock);
    return ret;
}

static int stats_pair(atoll_isolate_stats s[2])
{
    for (uint32_t i = 0; i < 2; i++) {
        int ret = atoll_runtime_isolate_stats(g.rt, i, &s[i]);
        if (ret < 0) {
            fprintf(stderr, "atoll-bench-ports: atoll_runtime_isolate_stats(%u): %s\n", i, atoll_strerror(ret));
            return ret;
        }
    }
    return 0;
}

static int start_job(uint64_t kind, uint64_t n, uint64_t warmup, uint64_t *rtt, uint64_t budget_ns)
{
    pthread_mutex_lock(&g.lock);
    g.job = (job){.n = n, .warmup = warmup, .rtt_ns = rtt, .deadline_ns = budget_ns ? now_ns() + budget_ns : 0};
    pthread_mutex_unlock(&g.lock);
    int ret = send_to(0, kind, 0);
    if (ret < 0)
        fprintf(stderr, "atoll-bench-ports: atoll_port_send (start): %s\n", atoll_strerror(ret));
    return ret;
}

static int atoll_tput(uint64_t n, tput_result *out)
{
    atoll_isolate_stats before[2], after[2];
    int ret = stats_pair(before);
    if (ret == 0)
        ret = start_job(K_START_TPUT, n, 0, NULL, 0);
    if (ret == 0)
        ret = wait_job();
    if (ret == 0)
        ret = stats_pair(after);
    if (ret < 0)
        return ret;
    double secs = (double)(g.job.t1_ns - g.job.t0_ns) / 1e9;
    out->msgs_per_s = (double)n / secs;
    out->wakeups_per_msg = (double)(after[1].wakeups_ring - before[1].wakeups_ring) / (double)n;
    out->sleeps_per_msg = (double)(after[1].loop_turns - before[1].loop_turns) / (double)n;
    out->full_retries = g.st[0].full_retries;
    out->same_cpu = g.st[0].samples ? (double)g.st[0].same_cpu / (double)g.st[0].samples : 0;
    return 0;
}

static int atoll_rtt(uint64_t n, uint64_t warmup, uint64_t budget_ns, uint64_t *rtt, rtt_result *out)
{
    atoll_isolate_stats before[2], after[2];
    int ret = stats_pair(before);
    if (ret == 0)
        ret = start_job(K_START_RTT, n, warmup, rtt, budget_ns);
    if (ret == 0)
        ret = wait_job();
    if (ret == 0)
        ret = stats_pair(after);
    if (ret < 0)
        return ret;
    n = g.job.recorded;
    if (n == 0) {
        fprintf(stderr, "atoll-bench-ports: no round trip recorded within the time budget\n");
        return -ETIME;
    }
    rtt_summarise(rtt, n, out);
    uint64_t wk = after[0].wakeups_ring - before[0].wakeups_ring + after[1].wakeups_ring - before[1].wakeups_ring;
    out->wakeups_per_rt = (double)wk / (double)(n + warmup);
    out->same_cpu = (double)g.st[0].same_cpu / (double)n;
    out->count = n;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Baseline: mutex-protected ring buffer + eventfd, coalesced wakeups      */
/* ---------------------------------------------------------------------- */

typedef struct bq {
    pthread_mutex_t lock;
    atoll_message *cells;
    uint32_t mask, head, count;
    int efd;
    uint64_t wakes;  /* eventfd writes (producer side only) */
    uint64_t sleeps; /* read() calls (consumer side only) */
} bq;

static int bq_init(bq *q, uint32_t capacity)
{
    memset(q, 0, sizeof(*q));
    q->cells = calloc(capacity, sizeof(*q->cells));
    if (!q->cells)
        return -ENOMEM;
    q->efd = eventfd(0, EFD_CLOEXEC);
    if (q->efd < 0) {
        int err = -errno;
        free(q->cells);
        return err;
    }
    q->mask = capacity - 1;
    pthread_mutex_init(&q->lock, NULL);
    return 0;
}

static void bq_destroy(bq *q)
{
    pthread_mutex_destroy(&q->lock);
    close(q->efd);
    free(q->cells);
}

/* Returns false when full (cannot happen with the credit protocol). */
static bool bq_push(bq *q, uint64_t kind, uint64_t value)
{
    atoll_message m = {.tag = kind, .data = (void *)(uintptr_t)value, .size = 0, .release = NULL};
    pthread_mutex_lock(&q->lock);
    if (q->count > q->mask) {
        pthread_mutex_unlock(&q->lock);
        return false;
    }
    q->cells[(q->head + q->count) & q->mask] = m;
    bool was_empty = q->count++ == 0;
    pthread_mutex_unlock(&q->lock);
    if (was_empty) {
        uint64_t one = 1;
        while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
        q->wakes++;
    }
    return true;
}

static uint64_t bq_pop(bq *q)
{
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (q->count) {
            atoll_message m = q->cells[q->head];
            q->head = (q->head + 1) & q->mask;
            q->count--;
            pthread_mutex_unlock(&q->lock);
            return (uint64_t)(uintptr_t)m.data;
        }
        pthread_mutex_unlock(&q->lock);
        uint64_t v;
        while (read(q->efd, &v, sizeof(v)) < 0 && errno == EINTR)
            ;
        q->sleeps++;
    }
}

typedef struct base_ctx {
    bq q[2]; /* throughput: [0] data, [1] credits; ping-pong: [0] to B, [1] to A */
    pthread_barrier_t barrier;
    uint64_t n, warmup, deadline_ns, recorded;
    uint64_t *rtt_ns;
    uint64_t t0_ns, t1_ns;
    uint64_t samples, same_cpu; /* producer / ping side */
    _Atomic int peer_cpu;
    const char *err;
} base_ctx;

static void *base_tput_producer(void *arg)
{
    base_ctx *c = arg;
    pthread_barrier_wait(&c->barrier);
    if (c->err)
        return NULL;
    c->t0_ns = now_ns();
    uint64_t credits = WINDOW;
    for (uint64_t seq = 0; seq < c->n; seq++) {
        if (credits == 0) {
            credits += bq_pop(&c->q[1]);
            c->samples++;
            c->same_cpu += cpu_same(&c->peer_cpu);
        }
        if (!bq_push(&c->q[0], K_DATA, seq)) {
            c->err = "baseline producer: data queue full";
            return NULL;
        }
        credits--;
    }
    return NULL;
}

static void *base_tput_consumer(void *arg)
{
    base_ctx *c = arg;
    pthread_barrier_wait(&c->barrier);
    if (c->err)
        return NULL;
    uint64_t since = 0;
    for (uint64_t i = 0; i < c->n; i++) {
        if (bq_pop(&c->q[0]) != i) {
            c->err = "baseline consumer: data out of order";
            break;
        }
        if (++since == CREDIT_EVERY && i + 1 < c->n) {
            cpu_mark(&c->peer_cpu);
            if (!bq_push(&c->q[1], K_CREDIT, since)) {
                c->err = "baseline consumer: credit queue full";
                break;
            }
            since = 0;
        }
    }
    c->t1_ns = now_ns();
    return NULL;
}

static void *base_ping(void *arg)
{
    base_ctx *c = arg;
    pthread_barrier_wait(&c->barrier);
    if (c->err)
        return NULL;
    uint64_t total = c->warmup + c->n, i;
    for (i = 0; i < total; i++) {
        uint64_t t0 = now_ns();
        if (!bq_push(&c->q[0], K_PING, i)) {
            c->err = "baseline ping: queue full";
            return NULL;
        }
        uint64_t v = bq_pop(&c->q[1]);
        uint64_t t1 = now_ns();
        if (v != i) {
            c->err = "baseline ping: pong out of order";
            return NULL;
        }
        if (i >= c->warmup) {
            c->rtt_ns[i - c->warmup] = t1 - t0;
            c->same_cpu += cpu_same(&c->peer_cpu);
        }
        if (c->deadline_ns && t1 >= c->deadline_ns) {
            i++;
            break;
        }
    }
    c->recorded = i > c->warmup ? i - c->warmup : 0;
    if (!bq_push(&c->q[0], K_PING, RTT_STOP))
        c->err = "baseline ping: queue full";
    return NULL;
}

static void *base_pong(void *arg)
{
    base_ctx *c = arg;
    pthread_barrier_wait(&c->barrier);
    if (c->err)
        return NULL;
    for (;;) {
        uint64_t v = bq_pop(&c->q[0]);
        if (v == RTT_STOP)
            break;
        cpu_mark(&c->peer_cpu);
        if (!bq_push(&c->q[1], K_PONG, v)) {
            c->err = "baseline pong: queue full";
            return NULL;
        }
    }
    return NULL;
}

static int base_init(base_ctx *c)
{
    int ret = bq_init(&c->q[0], WINDOW);
    if (ret < 0)
        return ret;
    if ((ret = bq_init(&c->q[1], WINDOW)) < 0)
        bq_destroy(&c->q[0]);
    return ret;
}

static void base_cleanup(base_ctx *c)
{
    bq_destroy(&c->q[0]);
    bq_destroy(&c->q[1]);
}

/* Runs fa on CPU 0 and fb on CPU 1 if pinning, else unpinned; joins both. */
static int base_run(base_ctx *c, void *(*fa)(void *), void *(*fb)(void *), bool pin)
{
    int ret = 0;
    pthread_barrier_init(&c->barrier, NULL, 2);
    pthread_t th[2];
    void *(*fn[2])(void *) = {fa, fb};
    int started = 0;
    for (int i = 0; i < 2; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (pin) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(i, &set);
            ret = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
        if (ret == 0)
            ret = pthread_create(&th[i], &attr, fn[i], c);
        pthread_attr_destroy(&attr);
        if (ret != 0) {
            fprintf(stderr, "atoll-bench-ports: baseline thread: %s\n", strerror(ret));
            ret = -ret;
            break;
        }
        started++;
    }
    if (started == 1) { /* release the lone thread from the barrier, then stop it */
        c->err = "baseline: thread creation failed";
        pthread_barrier_wait(&c->barrier);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&c->barrier);
    if (ret == 0 && c->err) {
        fprintf(stderr, "atoll-bench-ports: %s\n", c->err);
        ret = -EPROTO;
    }
    return ret;
}

static int base_tput(uint64_t n, bool pin, tput_result *out)
{
    base_ctx c;
    memset(&c, 0, sizeof(c));
    c.n = n;
    int ret = base_init(&c);
    if (ret < 0)
        return ret;
    ret = base_run(&c, base_tput_producer, base_tput_consumer, pin);
    if (ret == 0) {
        out->msgs_per_s = (double)n / ((double)(c.t1_ns - c.t0_ns) / 1e9);
        out->wakeups_per_msg = (double)c.q[0].wakes / (double)n;
        out->sleeps_per_msg = (double)c.q[0].sleeps / (double)n;
        out->full_retries = 0;
        out->same_cpu = c.samples ? (double)c.same_cpu / (double)c.samples : 0;
    }
    base_cleanup(&c);
    return ret;
}

static int base_rtt(uint64_t n, uint64_t warmup, uint64_t budget_ns, uint64_t *rtt, bool pin, rtt_result *out)
{
    base_ctx c;
    memset(&c, 0, sizeof(c));
    c.n = n;
    c.warmup = warmup;
    c.rtt_ns = rtt;
    c.deadline_ns = budget_ns ? now_ns() + budget_ns : 0;
    int ret = base_init(&c);
    if (ret < 0)
        return ret;
    ret = base_run(&c, base_ping, base_pong, pin);
    if (ret == 0 && c.recorded == 0) {
        fprintf(stderr, "atoll-bench-ports: no round trip recorded within the time budget\n");
        ret = -ETIME;
    }
    if (ret == 0) {
        n = c.recorded;
        rtt_summarise(rtt, n, out);
        out->wakeups_per_rt = (double)(c.q[0].wakes + c.q[1].wakes) / (double)(n + warmup);
        out->same_cpu = (double)c.same_cpu / (double)n;
        out->count = n;
    }
    base_cleanup(&c);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Command line and main                                                  */
/* ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: atoll-bench-ports [--messages N] [--roundtrips N] [--rtt-seconds S] [--repeat R]\n"
               "                         [--pin] [--help]\n"
               "  --messages N    messages isolate A sends to isolate B (default 2000000)\n"
               "  --roundtrips N  recorded ping-pong round trips (default 200000)\n"
               "  --rtt-seconds S time budget of one round-trip run; a run that reaches it\n"
               "                  stops early and reports how many it recorded (default 3,\n"
               "                  0: no budget)\n"
               "  --repeat R      runs of each measurement, alternating atoll/baseline;\n"
               "                  the median is reported (default 3)\n"
               "  --pin           pin the two isolates (opts.pin_cpus) and the two baseline\n"
               "                  threads (CPUs 0 and 1)\n"
               "  --help          this text\n"
               "Compares atoll ports with two pthreads exchanging messages through a\n"
               "mutex-protected ring buffer + eventfd, in the same run. The last line of\n"
               "stdout is JSON; rtt ratio = baseline mean RTT / atoll mean RTT.\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

typedef struct options {
    uint64_t messages, roundtrips, repeat, rtt_seconds;
    bool pin;
} options;

/* Returns 0 to run, 1 after --help, -1 on a bad command line. */
static int parse_args(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t *dst = NULL, min = 1, max = 0;
        const char *name = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--pin") == 0) {
            o->pin = true;
            continue;
        }
        if (strncmp(a, "--messages", 10) == 0) {
            name = "--messages";
            dst = &o->messages;
            max = UINT64_C(1) << 40;
        } else if (strncmp(a, "--roundtrips", 12) == 0) {
            name = "--roundtrips";
            dst = &o->roundtrips;
            max = UINT64_C(1) << 28; /* 2 GiB of samples */
        } else if (strncmp(a, "--rtt-seconds", 13) == 0) {
            name = "--rtt-seconds";
            dst = &o->rtt_seconds;
            min = 0;
            max = 3600;
        } else if (strncmp(a, "--repeat", 8) == 0) {
            name = "--repeat";
            dst = &o->repeat;
            max = 1000;
        } else {
            fprintf(stderr, "atoll-bench-ports: unknown option '%s'\n", a);
            return -1;
        }
        size_t len = strlen(name);
        const char *val;
        if (a[len] == '=')
            val = a + len + 1;
        else if (a[len] == '\0')
            val = i + 1 < argc ? argv[++i] : NULL;
        else {
            fprintf(stderr, "atoll-bench-ports: unknown option '%s'\n", a);
            return -1;
        }
        if (!parse_u64(val, min, max, dst)) {
            fprintf(stderr, "atoll-bench-ports: %s needs an integer in %" PRIu64 "..%" PRIu64 "\n", name, min, max);
            return -1;
        }
    }
    return 0;
}

static int runtime_up(bool pin)
{
    pthread_mutex_init(&g.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g.cond, &ca);
    pthread_condattr_destroy(&ca);

    atoll_runtime_options opts;
    atoll_runtime_options_init(&opts);
    opts.isolates = 2;
    opts.pin_cpus = pin;
    opts.entry = isolate_entry;
    opts.on_exit = on_isolate_exit;
    int ret = atoll_runtime_create(&opts, &g.rt);
    if (ret < 0) {
        fprintf(stderr, "atoll-bench-ports: atoll_runtime_create: %s (%s)\n", atoll_strerror(ret),
                atoll_error_name(ret));
        return ret;
    }
    if ((ret = atoll_runtime_start(g.rt)) < 0) {
        fprintf(stderr, "atoll-bench-ports: atoll_runtime_start: %s\n", atoll_strerror(ret));
        return ret;
    }
    struct timespec dl;
    deadline_in(&dl, 10);
    int rc = 0;
    pthread_mutex_lock(&g.lock);
    while (g.ready < 2 && g.exited == 0 && rc == 0)
        rc = pthread_cond_timedwait(&g.cond, &g.lock, &dl);
    bool ok = g.ready == 2;
    pthread_mutex_unlock(&g.lock);
    if (!ok) {
        fprintf(stderr, "atoll-bench-ports: the isolates did not open their ports\n");
        return ATOLL_E_STATE;
    }
    return 0;
}

/* Drain (closes the ports), then stop, join, destroy. Returns the first error. */
static int runtime_down(bool drain)
{
    int first = 0, ret;
    if (!g.rt)
        return 0;
    if (drain) {
        ret = atoll_runtime_drain(g.rt, 5000);
        if (ret < 0) {
            fprintf(stderr, "atoll-bench-ports: atoll_runtime_drain: %s\n", atoll_strerror(ret));
            first = ret;
        }
    }
    if ((ret = atoll_runtime_stop(g.rt)) < 0) {
        fprintf(stderr, "atoll-bench-ports: atoll_runtime_stop: %s\n", atoll_strerror(ret));
        first = first ? first : ret;
    }
    if ((ret = atoll_runtime_join(g.rt)) < 0) {
        fprintf(stderr, "atoll-bench-ports: atoll_runtime_join: %s\n", atoll_strerror(ret));
        first = first ? first : ret;
    }
    for (uint32_t i = 0; drain && i < 2; i++) {
        atoll_isolate_state state;
        int status;
        ret = atoll_runtime_isolate_status(g.rt, i, &state, &status);
        if (ret < 0) {
            fprintf(stderr, "atoll-bench-ports: atoll_runtime_isolate_status: %s\n", atoll_strerror(ret));
            first = first ? first : ret;
        } else if (status != 0) {
            fprintf(stderr, "atoll-bench-ports: isolate %u ended with %s\n", i, atoll_error_name(status));
            first = first ? first : status;
        }
    }
    if ((ret = atoll_runtime_destroy(g.rt)) < 0) {
        fprintf(stderr, "atoll-bench-ports: atoll_runtime_destroy: %s\n", atoll_strerror(ret));
        first = first ? first : ret;
    }
    g.rt = NULL;
    return first;
}

int main(int argc, char **argv)
{
    options o = {.messages = 2000000, .roundtrips = 200000, .repeat = 3, .rtt_seconds = 3, .pin = false};
    int pa = parse_args(argc, argv, &o);
    if (pa > 0) {
        usage(stdout);
        return 0;
    }
    if (pa < 0) {
        usage(stderr);
        return 2;
    }
    const unsigned R = (unsigned)o.repeat;
    uint64_t warmup = o.roundtrips / 20;
    if (warmup > WARMUP_MAX)
        warmup = WARMUP_MAX;

    uint64_t *rtt = malloc(o.roundtrips * sizeof(*rtt));
    double *v = malloc(sizeof(double) * R * NMETRICS);
    if (!rtt || !v) {
        fprintf(stderr, "atoll-bench-ports: out of memory\n");
        return 1;
    }
    /* v[k * R + r]: metric k of repeat r */

    setvbuf(stdout, NULL, _IOLBF, 0);

    int ret = runtime_up(o.pin);
    if (ret < 0) {
        runtime_down(false);
        return 1;
    }
    atoll_runtime_info info;
    atoll_runtime_info_get(g.rt, &info);
    printf("atoll-bench-ports: atoll %s, kernel %s, rings %s, %u CPUs online, 2 isolates, pin %s\n",
           ATOLL_VERSION_STRING, info.kernel_release, info.ring_mode, info.online_cpus, o.pin ? "yes" : "no");
    printf("messages %" PRIu64 " (window %u, credit every %u), round trips %" PRIu64 " (+%" PRIu64
           " warm-up, budget %s%" PRIu64 " s per run), repeat %u\n",
           o.messages, WINDOW, CREDIT_EVERY, o.roundtrips, warmup, o.rtt_seconds ? "" : "none/", o.rtt_seconds, R);
    const uint64_t budget_ns = o.rtt_seconds * UINT64_C(1000000000);

    /* Idle check: a sleeping isolate should not turn its loop. */
    atoll_isolate_stats s0[2], s1[2];
    if (stats_pair(s0) == 0) {
        usleep(200000);
        if (stats_pair(s1) == 0)
            printf("idle 200 ms: loop turns A %" PRIu64 ", B %" PRIu64 "\n", s1[0].loop_turns - s0[0].loop_turns,
                   s1[1].loop_turns - s0[1].loop_turns);
    }

    uint64_t t_start = now_ns();
    for (unsigned r = 0; r < R && ret == 0; r++) {
        tput_result ta = {0}, tb = {0};
        bool atoll_first = r % 2 == 0;
        for (int k = 0; k < 2 && ret == 0; k++) {
            if ((k == 0) == atoll_first) {
                ret = atoll_tput(o.messages, &ta);
                if (ret == 0)
                    printf("[%u/%u] throughput atoll    %8.3f M msg/s  (B: %.5f ring wakeups/msg, %.5f loop "
                           "turns/msg; %" PRIu64 " full retries; same CPU %3.0f%%)\n",
                           r + 1, R, ta.msgs_per_s / 1e6, ta.wakeups_per_msg, ta.sleeps_per_msg, ta.full_retries,
                           100 * ta.same_cpu);
            } else {
                ret = base_tput(o.messages, o.pin, &tb);
                if (ret == 0)
                    printf("[%u/%u] throughput baseline %8.3f M msg/s  (consumer: %.5f eventfd writes/msg, %.5f "
                           "read() calls/msg; same CPU %3.0f%%)\n",
                           r + 1, R, tb.msgs_per_s / 1e6, tb.wakeups_per_msg, tb.sleeps_per_msg, 100 * tb.same_cpu);
            }
        }
        if (ret)
            break;
        v[A_TPUT * R + r] = ta.msgs_per_s;
        v[B_TPUT * R + r] = tb.msgs_per_s;
        v[A_WAKE * R + r] = ta.wakeups_per_msg;
        v[A_TPUT_CO * R + r] = ta.same_cpu;
        v[B_TPUT_CO * R + r] = tb.same_cpu;

        rtt_result ra = {0}, rb = {0};
        for (int k = 0; k < 2 && ret == 0; k++) {
            if ((k == 0) == atoll_first) {
                ret = atoll_rtt(o.roundtrips, warmup, budget_ns, rtt, &ra);
                if (ret == 0)
                    printf("[%u/%u] rtt        atoll    mean %7.2f us  p50 %7.2f  p99 %7.2f  (n %" PRIu64 ", %.3f ring "
                           "wakeups/rt, same CPU %3.0f%%)\n",
                           r + 1, R, ra.mean_us, ra.p50_us, ra.p99_us, ra.count, ra.wakeups_per_rt, 100 * ra.same_cpu);
            } else {
                ret = base_rtt(o.roundtrips, warmup, budget_ns, rtt, o.pin, &rb);
                if (ret == 0)
                    printf("[%u/%u] rtt        baseline mean %7.2f us  p50 %7.2f  p99 %7.2f  (n %" PRIu64 ", %.3f "
                           "eventfd writes/rt, same CPU %3.0f%%)\n",
                           r + 1, R, rb.mean_us, rb.p50_us, rb.p99_us, rb.count, rb.wakeups_per_rt, 100 * rb.same_cpu);
            }
        }
        if (ret)
            break;
        v[A_MEAN * R + r] = ra.mean_us;
        v[A_P50 * R + r] = ra.p50_us;
        v[A_P99 * R + r] = ra.p99_us;
        v[B_MEAN * R + r] = rb.mean_us;
        v[B_P50 * R + r] = rb.p50_us;
        v[B_P99 * R + r] = rb.p99_us;
        v[A_RTWAKE * R + r] = ra.wakeups_per_rt;
        v[A_RTT_CO * R + r] = ra.same_cpu;
        v[B_RTT_CO * R + r] = rb.same_cpu;
    }
    double elapsed = (double)(now_ns() - t_start) / 1e9;

    int down = runtime_down(ret == 0);
    free(rtt);
    if (ret != 0 || down != 0) {
        free(v);
        return 1;
    }

    double m[NMETRICS];
    for (int k = 0; k < NMETRICS; k++)
        m[k] = median(&v[k * R], R);
    double tput_ratio = m[A_TPUT] / m[B_TPUT];
    double rtt_ratio = m[B_MEAN] / m[A_MEAN];

    printf("\nmedian of %u run%s (%.1f s measuring)      atoll      baseline   ratio (>1: atoll better)\n", R,
           R > 1 ? "s" : "", elapsed);
    printf("throughput [M msg/s]               %10.3f  %10.3f   %6.2f\n", m[A_TPUT] / 1e6, m[B_TPUT] / 1e6, tput_ratio);
    printf("round trip mean [us]               %10.2f  %10.2f   %6.2f\n", m[A_MEAN], m[B_MEAN], rtt_ratio);
    printf("round trip p50  [us]               %10.2f  %10.2f   %6.2f\n", m[A_P50], m[B_P50], m[B_P50] / m[A_P50]);
    printf("round trip p99  [us]               %10.2f  %10.2f   %6.2f\n", m[A_P99], m[B_P99], m[B_P99] / m[A_P99]);
    printf("both sides on one CPU [%%]          %10.0f  %10.0f   (throughput, sampled per credit)\n",
           100 * m[A_TPUT_CO], 100 * m[B_TPUT_CO]);
    printf("both sides on one CPU [%%]          %10.0f  %10.0f   (round trips)\n", 100 * m[A_RTT_CO],
           100 * m[B_RTT_CO]);
    printf("atoll wakeups: %.5f per message (throughput, B), %.3f per round trip (A+B)\n", m[A_WAKE], m[A_RTWAKE]);
    printf("{\"throughput\":{\"atoll_msgs_per_s\":%.0f,\"baseline_msgs_per_s\":%.0f,\"ratio\":%.4f},"
           "\"rtt_us\":{\"atoll_p50\":%.3f,\"atoll_p99\":%.3f,\"atoll_mean\":%.3f,\"baseline_p50\":%.3f,"
           "\"baseline_p99\":%.3f,\"baseline_mean\":%.3f,\"ratio\":%.4f}}\n",
           m[A_TPUT], m[B_TPUT], tput_ratio, m[A_P50], m[A_P99], m[A_MEAN], m[B_P50], m[B_P99], m[B_MEAN], rtt_ratio);
    free(v);
    return 0;
}
