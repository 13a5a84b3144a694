/*
 * runtime/runtime.c: the runtime's lifecycle (create, start, drain, stop,
 * join, destroy) and the isolate table. Isolates added after start
 * (spawn, live scaling) and retired ones are in scaling.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "isolates/isolate_private.h"
#include "runtime/runtime_private.h"
#include "runtime/base/lookup_pool.h"
#include "runtime/base/probe.h"

void atoll_runtime_options_init(atoll_runtime_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    opts->isolates = n > 0 ? (uint32_t)n : 1;
    opts->max_isolates = 0; /* resolved to isolates + 64 by create */
    opts->sq_entries = 256;
    opts->cq_entries = 8192;
    opts->max_ports = 65536;
    opts->port_capacity = 4096;
    opts->task_capacity = 65536;
    opts->recv_buffers = 512;
    opts->recv_buffers_per_conn = 2;
    opts->conns_per_isolate = 16384;
    opts->recv_buffer_size = 16384;
    opts->ticket_rotation_s = 3600;
}

bool atoll__on_runtime_thread(const atoll_runtime *rt)
{
    atoll_isolate *self = atoll_isolate_current();
    return self && self->rt == rt;
}

int atoll_runtime_create(const atoll_runtime_options *opts_in, atoll_runtime **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    atoll_runtime_options opts;
    if (opts_in)
        opts = *opts_in;
    else
        atoll_runtime_options_init(&opts);
    if (opts.max_isolates == 0)
        opts.max_isolates = opts.isolates + 64;
    if (opts.isolates == 0 || opts.isolates > opts.max_isolates || opts.sq_entries == 0 || opts.cq_entries == 0 ||
        opts.cq_entries < opts.sq_entries || opts.max_ports == 0 || opts.max_ports >= UINT32_MAX ||
        opts.port_capacity == 0 || opts.port_capacity > (1u << 30) || opts.task_capacity == 0 ||
        opts.recv_buffers < 8 || opts.recv_buffers > 32768 || (opts.recv_buffers & (opts.recv_buffers - 1)) ||
        opts.recv_buffers_per_conn == 0 || opts.recv_buffers_per_conn > opts.recv_buffers ||
        opts.conns_per_isolate == 0 || opts.conns_per_isolate > (1u << 20) || opts.recv_buffer_size < 1024 ||
        opts.recv_buffer_size > (1u << 20) || opts.ticket_rotation_s == 0 ||
        (opts.steering != ATOLL_STEERING_HASH && opts.steering != ATOLL_STEERING_CPU) ||
        (opts.steering == ATOLL_STEERING_CPU && !opts.pin_cpus))
        return -EINVAL;

    atoll_runtime_info info;
    uint32_t flags = 0;
    int ret = atoll__probe(&info, &flags);
    if (ret < 0)
        return ret;
    ret = atoll__wolfssl_init(); /* before any isolate can touch wolfSSL */
    if (ret < 0)
        return ret;

    atoll_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    /* The kernel refuses a direct-descriptor table larger than the
     * RLIMIT_NOFILE soft limit (and liburing would then raise the limit,
     * process-wide, behind the host's back): the cap follows the limit. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
        nofile.rlim_cur < opts.conns_per_isolate)
        opts.conns_per_isolate = nofile.rlim_cur > 0 ? (uint32_t)nofile.rlim_cur : 1;
    rt->opts = opts;
    rt->info = info;
    rt->info.isolates = opts.isolates;
    rt->info.conns_per_isolate = opts.conns_per_isolate;
    rt->info.max_conns = opts.max_conns;
    rt->isolates = calloc(opts.max_isolates, sizeof(*rt->isolates));
    if (!rt->isolates || atoll__port_table_init(&rt->ports, opts.max_ports) < 0) {
        free(rt->isolates);
        free(rt);
        return -ENOMEM;
    }
    ret = atoll__budget_init(&rt->conn_budget, opts.max_conns, opts.max_isolates);
    if (ret == 0) {
        ret = atoll__ticket_keys_init(&rt->tickets, opts.ticket_rotation_s);
        if (ret < 0)
            atoll__budget_destroy(&rt->conn_budget);
    }
    if (ret == 0) {
        ret = atoll__lookup_pool_new(&rt->lookups);
        if (ret < 0) {
            atoll__ticket_keys_wipe(&rt->tickets);
            atoll__budget_destroy(&rt->conn_budget);
        }
    }
    if (ret < 0) {
        free(rt->isolates);
        atoll__port_table_destroy(&rt->ports);
        free(rt);
        return ret;
    }
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->scale_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->cond, &ca);
    pthread_condattr_destroy(&ca);
    rt->state = ATOLL_RT_CREATED;
    *out = rt;
    return 0;
}

/* Under rt->lock. Creates isolate `id` and its thread. */
int atoll__isolate_create(atoll_runtime *rt, bool pool, atoll_entry_fn entry, void *arg, struct atoll_isolate **out)
{
    uint32_t id = atomic_load(&rt->isolate_count);
    if (id >= rt->opts.max_isolates)
        return ATOLL_E_LIMIT;
    struct atoll_isolate *iso = calloc(1, sizeof(*iso));
    if (!iso)
        return -ENOMEM;
    iso->rt = rt;
    iso->opts = &rt->opts;
    iso->info = &rt->info;
    iso->tickets = &rt->tickets;
    iso->port_table = &rt->ports;
    iso->lookups = rt->lookups;
    iso->conn_budget = &rt->conn_budget;
    iso->id = id;
    iso->pool = pool;
    iso->resident = pool;
    iso->entry = entry;
    iso->entry_arg = arg;
    iso->event_fd = -1;
    iso->ring_fd = -1;
    iso->cpu = -1;
    atomic_init(&iso->state, ATOLL_ISOLATE_STARTING);
    atoll_tq_init(&iso->inbox);
    atoll_gate_open(&iso->inbox_gate, 0);
    rt->isolates[id] = iso;
    atomic_store(&rt->isolate_count, id + 1);
    rt->alive++;
    int ret = atoll__isolate_launch(rt, iso);
    if (ret < 0) {
        iso->status = ret;
        atomic_store_explicit(&iso->state, ATOLL_ISOLATE_EXITED, memory_order_release);
        rt->alive--;
        return ret;
    }
    *out = iso;
    return 0;
}

/* Under rt->lock: waits until `iso` left STARTING; returns its setup error. */
int atoll__wait_ready(atoll_runtime *rt, struct atoll_isolate *iso)
{
    while (atomic_load(&iso->state) == ATOLL_ISOLATE_STARTING)
        pthread_cond_wait(&rt->cond, &rt->lock);
    if (atomic_load(&iso->state) == ATOLL_ISOLATE_EXITED && !iso->ran && iso->status < 0)
        return iso->status;
    return 0;
}

/* Under rt->lock: sets control bits on one isolate and wakes it. */
void atoll__signal_one(atoll_runtime *rt, struct atoll_isolate *iso, unsigned bits)
{
    (void)rt;
    if (atomic_load(&iso->state) == ATOLL_ISOLATE_EXITED)
        return;
    atomic_fetch_or(&iso->control, bits);
    if (atomic_load_explicit(&iso->state, memory_order_acquire) == ATOLL_ISOLATE_RUNNING)
        atoll__wake(iso);
    /* A STARTING isolate reads control before its first wait. */
}

/* Under rt->lock: sets control bits on every isolate and wakes it. */
static void atoll_signal_all(atoll_runtime *rt, unsigned bits)
{
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n; i++)
        atoll__signal_one(rt, rt->isolates[i], bits);
}

/* CLOCK_MONOTONIC (the condition variable's clock) `ms` from now,
 * saturating far in the future. */
struct timespec atoll__deadline_after(uint64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t secs = ms / 1000;
    t.tv_sec = secs > (uint64_t)INT32_MAX ? INT32_MAX : t.tv_sec + (time_t)secs;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int atoll_runtime_start(atoll_runtime *rt)
{
    if (!rt)
        return -EINVAL;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    pthread_mutex_lock(&rt->lock);
    if (rt->state != ATOLL_RT_CREATED) {
        pthread_mutex_unlock(&rt->lock);
        return ATOLL_E_STATE;
    }
    rt->state = ATOLL_RT_STARTED;
    int ret = 0;
    for (uint32_t i = 0; i < rt->opts.isolates && ret == 0; i++) {
        struct atoll_isolate *iso;
        ret = atoll__isolate_create(rt, true, rt->opts.entry, rt->opts.entry_arg, &iso);
        rt->pool_count = atomic_load(&rt->isolate_count);
    }
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n; i++) {
        int r = atoll__wait_ready(rt, rt->isolates[i]);
        if (r < 0 && ret == 0)
            ret = r;
    }
    rt->pool_ready = true;
    pthread_cond_broadcast(&rt->cond);
    if (ret < 0) {
        /* Leave a stopped runtime the host joins and destroys. */
        rt->state = ATOLL_RT_STOPPED;
        atomic_store(&rt->stopping, 1);
        atoll_signal_all(rt, ATOLL_CTL_STOP);
    }
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

static struct atoll_isolate *atoll_isolate_get(const atoll_runtime *rt, uint32_t id)
{
    if (!rt || id >= atomic_load(&rt->isolate_count))
        return NULL;
    return rt->isolates[id];
}

int atoll_runtime_isolate_status(atoll_runtime *rt, uint32_t id, atoll_isolate_state *state, int *status)
{
    struct atoll_isolate *iso = atoll_isolate_get(rt, id);
    if (!iso)
        return -ENOENT;
    int s = atomic_load_explicit(&iso->state, memory_order_acquire);
    if (state)
        *state = (atoll_isolate_state)s;
    if (status)
        *status = s == ATOLL_ISOLATE_EXITED ? iso->status : 0;
    return 0;
}

uint32_t atoll_runtime_isolate_count(const atoll_runtime *rt)
{
    return rt ? atomic_load(&rt->isolate_count) : 0;
}

int atoll_runtime_isolate_stats(atoll_runtime *rt, uint32_t id, atoll_isolate_stats *out)
{
    struct atoll_isolate *iso = atoll_isolate_get(rt, id);
    if (!iso || !out)
        return iso ? -EINVAL : -ENOENT;
#define ATOLL_READ_STAT(f) out->f = atomic_load_explicit(&iso->stats.f.v, memory_order_relaxed)
    ATOLL_READ_STAT(loop_turns);
    ATOLL_READ_STAT(cqes);
    ATOLL_READ_STAT(cq_overflows);
    ATOLL_READ_STAT(wakeups_ring);
    ATOLL_READ_STAT(wakeups_eventfd);
    ATOLL_READ_STAT(messages_delivered);
    ATOLL_READ_STAT(messages_dropped);
    ATOLL_READ_STAT(tasks_run);
    ATOLL_READ_STAT(timers_fired);
    ATOLL_READ_STAT(wake_errors);
    ATOLL_READ_STAT(recv_enobufs);
    ATOLL_READ_STAT(net_accepted);
    ATOLL_READ_STAT(net_handshakes);
    ATOLL_READ_STAT(net_handshake_errors);
    ATOLL_READ_STAT(net_bytes_in);
    ATOLL_READ_STAT(net_bytes_out);
    ATOLL_READ_STAT(sq_flushes);
    ATOLL_READ_STAT(sq_deferred);
    ATOLL_READ_STAT(submit_errors);
    ATOLL_READ_STAT(cqe_errors);
    ATOLL_READ_STAT(sockopt_errors);
    ATOLL_READ_STAT(net_drain_closed);
    ATOLL_READ_STAT(net_idle_closed);
    ATOLL_READ_STAT(ring_release_deferred);
#undef ATOLL_READ_STAT
    return 0;
}

int atoll_runtime_drain(atoll_runtime *rt, uint64_t timeout_ms)
{
    if (!rt)
        return -EINVAL;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    /* The isolates close what is left at timeout_ms; their exits follow
     * within ATOLL_DRAIN_EXIT_GRACE_MS (closes through the ring). */
    uint64_t wait_ms = timeout_ms > UINT64_MAX / 2 ? UINT64_MAX / 2 : timeout_ms + ATOLL_DRAIN_EXIT_GRACE_MS;
    struct timespec deadline = atoll__deadline_after(wait_ms);
    pthread_mutex_lock(&rt->lock);
    if (rt->state != ATOLL_RT_STARTED && rt->state != ATOLL_RT_DRAINING) {
        pthread_mutex_unlock(&rt->lock);
        return ATOLL_E_STATE;
    }
    if (rt->state == ATOLL_RT_STARTED) {
        /* The first drain sets every isolate's deadline; a later call only
         * waits again. */
        uint32_t n = atomic_load(&rt->isolate_count);
        for (uint32_t i = 0; i < n; i++)
            atomic_store_explicit(&rt->isolates[i]->drain_timeout_ms, timeout_ms, memory_order_release);
    }
    rt->state = ATOLL_RT_DRAINING;
    atoll_signal_all(rt, ATOLL_CTL_DRAIN);
    int ret = 0;
    while (rt->alive > 0 && ret == 0)
        if (pthread_cond_timedwait(&rt->cond, &rt->lock, &deadline) == ETIMEDOUT && rt->alive > 0)
            ret = ATOLL_E_TIMEDOUT;
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

int atoll_runtime_stop(atoll_runtime *rt)
{
    if (!rt)
        return -EINVAL;
    pthread_mutex_lock(&rt->lock);
    atomic_store(&rt->stopping, 1);
    if (rt->state == ATOLL_RT_CREATED) {
        rt->state = ATOLL_RT_JOINED; /* never started: nothing to join */
    } else if (rt->state == ATOLL_RT_STARTED || rt->state == ATOLL_RT_DRAINING) {
        rt->state = ATOLL_RT_STOPPED;
        atoll_signal_all(rt, ATOLL_CTL_STOP);
    }
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

int atoll_runtime_join(atoll_runtime *rt)
{
    if (!rt)
        return -EINVAL;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    pthread_mutex_lock(&rt->lock);
    if (rt->state == ATOLL_RT_JOINED) {
        pthread_mutex_unlock(&rt->lock);
        return 0;
    }
    if (rt->state != ATOLL_RT_STOPPED) {
        pthread_mutex_unlock(&rt->lock);
        return ATOLL_E_STATE;
    }
    /* Wait for every thread to report its exit, so no spawn is in flight. */
    while (rt->alive > 0)
        pthread_cond_wait(&rt->cond, &rt->lock);
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n; i++) {
        struct atoll_isolate *iso = rt->isolates[i];
        if (iso->thread_started) {
            pthread_join(iso->thread, NULL);
            iso->thread_started = false;
        }
        /* Rings outlive their isolate until here so a late MSG_RING never
         * targets a closed (or reused) descriptor. */
        atoll__ring_release(iso);
    }
    rt->state = ATOLL_RT_JOINED;
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

int atoll_runtime_destroy(atoll_runtime *rt)
{
    if (!rt)
        return 0;
    if (atoll__on_runtime_thread(rt))
        return ATOLL_E_DEADLOCK;
    pthread_mutex_lock(&rt->lock);
    bool ok = rt->state == ATOLL_RT_CREATED || rt->state == ATOLL_RT_JOINED;
    pthread_mutex_unlock(&rt->lock);
    if (!ok)
        return ATOLL_E_STATE;
    /* First: once this returns, no lookup worker can post to an isolate
     * (a worker stuck in getaddrinfo is left behind, detached). */
    atoll__lookup_pool_shutdown(rt->lookups);
    atoll__ticket_keys_wipe(&rt->tickets);
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n; i++)
        free(rt->isolates[i]);
    free(rt->isolates);
    atoll__port_table_destroy(&rt->ports);
    atoll__budget_destroy(&rt->conn_budget);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->scale_mu);
    pthread_cond_destroy(&rt->cond);
    free(rt);
    return 0;
}

int atoll_runtime_set_ticket_keys(atoll_runtime *rt, const void *keys, size_t len)
{
    if (!rt)
        return -EINVAL;
    return atoll__ticket_keys_set(&rt->tickets, keys, len);
}

void atoll_runtime_info_get(const atoll_runtime *rt, atoll_runtime_info *out)
{
    if (rt && out)
        *out = rt->info;
}

void atoll__isolate_ready(atoll_runtime *rt, struct atoll_isolate *iso)
{
    pthread_mutex_lock(&rt->lock);
    iso->ran = true;
    atomic_store_explicit(&iso->state, ATOLL_ISOLATE_RUNNING, memory_order_release);
    pthread_cond_broadcast(&rt->cond);
    /* Start-up barrier, before the loop runs: not a wait inside the loop. */
    while (iso->pool && !rt->pool_ready)
        pthread_cond_wait(&rt->cond, &rt->lock);
    pthread_mutex_unlock(&rt->lock);
}

/* How long an exiting isolate waits for the others to submit wakeups that
 * name its ring before it gives up and leaves the ring to join. */
#define ATOLL_RING_RELEASE_WAIT_MS 1000

/* On the exiting isolate's thread, after its loop and teardown: closes its
 * ring and eventfd and frees its buffers now rather than at join, so a
 * host that adds and retires isolates for days holds nothing per retired
 * one but the isolate object. Who could still use the descriptors:
 * - a MSG_RING SQE another isolate prepared while we were RUNNING and has
 *   not submitted yet: each announces it (wake_sqes, set before it reads
 *   our state) until its SQ is submitted empty; we wait for every
 *   announcement to clear (bounded: past it the ring stays until join);
 * - eventfd writers: they hold our inbox gate or a port gate (both closed
 *   and quiet after the teardown) or rt->lock (signal_one, which checks
 *   EXITED, stored under that lock). */
static void atoll_release_early(atoll_runtime *rt, struct atoll_isolate *iso)
{
    /* 100 us naps, at least ATOLL_RING_RELEASE_WAIT_MS in all. */
    uint32_t naps_left = ATOLL_RING_RELEASE_WAIT_MS * 10;
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n; i++) {
        struct atoll_isolate *other = rt->isolates[i];
        if (other == iso)
            continue;
        /* An exited isolate submitted or discarded its SQ with its ring. */
        while (atomic_load(&other->wake_sqes) && atomic_load(&other->state) != ATOLL_ISOLATE_EXITED) {
            if (naps_left-- == 0) {
                atoll_stat_add(&iso->stats.ring_release_deferred, 1);
                return;
            }
            struct timespec ts = {0, 100 * 1000}; /* its next submit is at most a turn away */
            nanosleep(&ts, NULL);
        }
    }
    atoll__ring_release(iso);
}

void atoll__isolate_exited(atoll_runtime *rt, struct atoll_isolate *iso)
{
    /* The status is final before anyone hears of the exit; `alive` drops only
     * after on_exit returned, so drain and join also wait for the callback.
     * EXITED is stored under rt->lock: a signal_one holding it is never
     * between its check and its eventfd write when the ring goes. */
    pthread_mutex_lock(&rt->lock);
    atomic_store(&iso->state, ATOLL_ISOLATE_EXITED);
    pthread_mutex_unlock(&rt->lock);
    if (iso->ran)
        atoll_release_early(rt, iso);
    if (rt->opts.on_exit)
        rt->opts.on_exit(rt, iso->id, iso->status, rt->opts.on_exit_user);
    pthread_mutex_lock(&rt->lock);
    rt->alive--;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}
