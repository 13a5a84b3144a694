/*
 * tools/atoll-load/pace.c: open-loop load (--rate): each isolate's share of
 * the schedule of intended start times, the stack of its free connections,
 * and the 1 ms pacer that starts every due request on a free connection.
 *
 * A request's latency counts from its intended start, not from when a
 * connection became free: when every connection is busy the request waits,
 * and the wait is part of its latency (no coordinated omission). The
 * schedule is split over the isolates so that they share nothing while
 * running; a due request waits for a connection of its own isolate.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* splitmix64: small, seedable, good enough for inter-arrival times. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* -ln(u) for u in (0, 1], without libm (the tool links none): u = m * 2^e
 * with m in [1, 2), ln m = 2 atanh((m-1)/(m+1)) by its series (|z| <= 1/3,
 * 12 terms: relative error below 1e-12). */
static double neg_ln(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof(m));
    double z = (m - 1) / (m + 1), z2 = z * z, term = z, sum = 0;
    for (int i = 1; i <= 23; i += 2) {
        sum += term / i;
        term *= z2;
    }
    return -(e * 0.69314718055994530942 + 2 * sum);
}

/* An exponential gap with the pacer's mean (poisson arrivals). */
static uint64_t exp_gap_ns(pacer *p)
{
    double u = (double)((rng_next(&p->rng) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    return (uint64_t)(neg_ln(u) * p->period_ns);
}

/* Moves to the next point of this isolate's schedule. */
static void pacer_advance(pacer *p)
{
    p->k++;
    if (cfg.arrivals == AR_POISSON) {
        p->next_ns += exp_gap_ns(p);
        return;
    }
    /* From the origin each time: no rounding drift over long runs. */
    p->next_ns = p->origin_ns + (uint64_t)(((double)p->k * p->lanes + p->lane) * p->period_ns);
}

int pacer_alloc(iso_state *is)
{
    is->pace.free_idx = calloc(is->nslots ? is->nslots : 1, sizeof(uint32_t));
    return is->pace.free_idx ? 0 : -ENOMEM;
}

void pacer_init(iso_state *is, uint64_t t0, uint64_t end_ns)
{
    pacer *p = &is->pace;
    p->started = false;
    p->start_by_ns = t0 + (uint64_t)PACE_START_MS * 1000000ull;
    p->end_ns = end_ns;
    p->lane = is->id;
    p->lanes = g_niso;
    if (cfg.arrivals == AR_POISSON) {
        p->period_ns = 1e9 * g_niso / cfg.rate;
        /* One stream per isolate, all from --seed: the run repeats. */
        p->rng = cfg.seed ^ (0xd1b54a32d192ed03ull * (is->id + 1));
    } else {
        p->period_ns = 1e9 / cfg.rate;
    }
}

/* The schedule's first point, at origin (the isolate's connections are
 * open, or PACE_START_MS have passed). */
static void pacer_begin(pacer *p, uint64_t origin)
{
    p->started = true;
    p->origin_ns = origin;
    if (cfg.arrivals == AR_POISSON)
        p->next_ns = origin + exp_gap_ns(p);
    else
        p->next_ns = origin + (uint64_t)(p->lane * p->period_ns);
}

void pacer_free(iso_state *is)
{
    free(is->pace.free_idx);
    is->pace.free_idx = NULL;
}

/* Whether slot s can take a request now (its stack entry may be stale: the
 * connection closed or reopened since it was pushed). */
static bool slot_free(const slot *s)
{
    return s->state == SL_HELD && s->conn && !s->in_op;
}

static slot *pop_free(iso_state *is)
{
    pacer *p = &is->pace;
    while (p->nfree) {
        slot *s = &is->slots[p->free_idx[--p->nfree]];
        s->on_free = false;
        if (slot_free(s))
            return s;
    }
    return NULL;
}

static void push_free(slot *s)
{
    if (s->on_free)
        return; /* already there (each slot at most once: the stack holds nslots) */
    pacer *p = &s->is->pace;
    s->on_free = true;
    p->free_idx[p->nfree++] = s->idx;
}

/* Starts every request that is due, oldest first, while a connection is
 * free; the rest wait for pace_slot_free or the next pacer tick. */
static void pace(iso_state *is)
{
    pacer *p = &is->pace;
    if (stopping(is))
        return;
    uint64_t now = now_ns();
    if (!p->started) {
        /* Connection setup is not queueing: start once every connection
         * of this isolate is open, or at the latest PACE_START_MS into the
         * run (then a server that accepts none shows as requests due). */
        if (p->nfree < is->nslots && now < p->start_by_ns)
            return;
        pacer_begin(p, now < p->start_by_ns ? now : p->start_by_ns);
    }
    while (p->next_ns <= now && p->next_ns < p->end_ns) {
        slot *s = pop_free(is);
        if (!s)
            return; /* queued: its wait counts in its latency */
        if (cfg.requests && atomic_fetch_sub_explicit(&g_tickets, 1, memory_order_relaxed) <= 0) {
            push_free(s); /* --requests reached: nothing more to start */
            return;
        }
        uint64_t wait = now - p->next_ns;
        if (wait > p->max_wait_ns)
            p->max_wait_ns = wait;
        uint64_t intended = p->next_ns;
        pacer_advance(p);
        slot_issue(s, intended);
    }
}

void pace_slot_free(slot *s)
{
    set_state(s, SL_HELD);
    push_free(s);
    pace(s->is);
}

static void on_pace(atoll_timer *t, void *user)
{
    (void)t;
    pace(user);
}

int pacer_start(iso_state *is)
{
    return atoll_timer_start(is->self, PACE_MS, PACE_MS, on_pace, is, &is->pace.timer);
}

void pacer_stop(iso_state *is)
{
    if (!is->pace.timer)
        return;
    atoll_timer_cancel(is->pace.timer);
    is->pace.timer = NULL;
}

uint64_t pacer_due(iso_state *is, uint64_t stop_ns)
{
    pacer *p = &is->pace;
    if (!p->started) {
        if (stop_ns <= p->start_by_ns)
            return 0; /* the schedule had not begun */
        pacer_begin(p, p->start_by_ns);
    }
    /* Every point taken counts, even one taken just as the bound passed. */
    while (p->next_ns < stop_ns && p->next_ns < p->end_ns)
        pacer_advance(p);
    return p->k;
}
