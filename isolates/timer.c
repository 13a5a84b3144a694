/*
 * isolates/timer.c: timers on an isolate's loop.
 *
 * A binary min-heap ordered by (due time, start sequence); the loop's ring
 * wait uses the earliest due time as its timeout, so timers cost no SQE and
 * no file descriptor, and thousands (one per handshake) stay cheap. Timer
 * objects are recycled through a per-isolate free list.
 */
#include <errno.h>
#include <stdlib.h>

#include "isolates/isolate_private.h"

struct atoll_timer {
    struct atoll_isolate *iso;
    uint64_t due_ns, period_ns, seq;
    atoll_timer_fn fn;
    void *user;
    uint32_t heap_index; /* UINT32_MAX: not in the heap */
    bool firing;         /* its callback is running */
    bool cancelled;      /* cancelled while firing: free after the callback */
    struct atoll_timer *next_free;
};

#define ATOLL_NOT_IN_HEAP UINT32_MAX

static bool atoll_timer_before(const struct atoll_timer *a, const struct atoll_timer *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void atoll_heap_set(struct atoll_isolate *iso, uint32_t i, struct atoll_timer *t)
{
    iso->heap[i] = t;
    t->heap_index = i;
}

static void atoll_heap_up(struct atoll_isolate *iso, uint32_t i)
{
    struct atoll_timer *t = iso->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!atoll_timer_before(t, iso->heap[parent]))
            break;
        atoll_heap_set(iso, i, iso->heap[parent]);
        i = parent;
    }
    atoll_heap_set(iso, i, t);
}

static void atoll_heap_down(struct atoll_isolate *iso, uint32_t i)
{
    struct atoll_timer *t = iso->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const struct atoll_timer *best = t;
        if (l < iso->nheap && atoll_timer_before(iso->heap[l], best)) {
            m = l;
            best = iso->heap[l];
        }
        if (r < iso->nheap && atoll_timer_before(iso->heap[r], best))
            m = r;
        if (m == i)
            break;
        atoll_heap_set(iso, i, iso->heap[m]);
        i = m;
    }
    atoll_heap_set(iso, i, t);
}

static int atoll_heap_push(struct atoll_isolate *iso, struct atoll_timer *t)
{
    if (iso->nheap == iso->heap_cap) {
        uint32_t cap = iso->heap_cap ? iso->heap_cap * 2 : 64;
        struct atoll_timer **h = realloc(iso->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        iso->heap = h;
        iso->heap_cap = cap;
    }
    iso->heap[iso->nheap] = t;
    t->heap_index = iso->nheap++;
    atoll_heap_up(iso, t->heap_index);
    return 0;
}

static void atoll_heap_remove(struct atoll_isolate *iso, struct atoll_timer *t)
{
    uint32_t i = t->heap_index;
    t->heap_index = ATOLL_NOT_IN_HEAP;
    struct atoll_timer *last = iso->heap[--iso->nheap];
    if (i == iso->nheap)
        return;
    atoll_heap_set(iso, i, last);
    atoll_heap_down(iso, i);
    atoll_heap_up(iso, last->heap_index);
}

static void atoll_timer_release(struct atoll_isolate *iso, struct atoll_timer *t)
{
    t->next_free = iso->timer_free;
    iso->timer_free = t;
    iso->refs--;
}

int atoll_timer_start(atoll_isolate *iso, uint64_t timeout_ms, uint64_t repeat_ms, atoll_timer_fn fn, void *user,
                      atoll_timer **out)
{
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (!fn || !out)
        return -EINVAL;
    if (iso->exiting)
        return ATOLL_E_STOPPED;
    if (timeout_ms > UINT64_MAX / 2000000u || repeat_ms > UINT64_MAX / 2000000u)
        return -EINVAL;
    struct atoll_timer *t = iso->timer_free;
    if (t)
        iso->timer_free = t->next_free;
    else if (!(t = malloc(sizeof(*t))))
        return -ENOMEM;
    *t = (struct atoll_timer){
        .iso = iso,
        .due_ns = iso->now_ns + timeout_ms * 1000000u,
        .period_ns = repeat_ms * 1000000u,
        .seq = iso->timer_seq++,
        .fn = fn,
        .user = user,
        .heap_index = ATOLL_NOT_IN_HEAP,
    };
    int ret = atoll_heap_push(iso, t);
    if (ret < 0) {
        t->next_free = iso->timer_free;
        iso->timer_free = t;
        return ret;
    }
    iso->refs++;
    *out = t;
    return 0;
}

int atoll_timer_cancel(atoll_timer *t)
{
    if (!t)
        return -EINVAL;
    struct atoll_isolate *iso = t->iso;
    if (!atoll__on_owner_thread(iso))
        return ATOLL_E_WRONG_THREAD;
    if (t->heap_index != ATOLL_NOT_IN_HEAP)
        atoll_heap_remove(iso, t);
    if (t->firing)
        t->cancelled = true; /* atoll__timers_run frees it after the callback */
    else
        atoll_timer_release(iso, t);
    return 0;
}

uint64_t atoll__timers_next_due(struct atoll_isolate *iso)
{
    return iso->nheap ? iso->heap[0]->due_ns : UINT64_MAX;
}

void atoll__timers_run(struct atoll_isolate *iso)
{
    uint64_t now = iso->now_ns;
    /* Timers started by callbacks in this pass are due at now + timeout, so
     * a zero timeout runs next turn, not in this loop: no starvation. */
    uint64_t last_seq = iso->timer_seq;
    while (iso->nheap && iso->heap[0]->due_ns <= now && !iso->exiting) {
        struct atoll_timer *t = iso->heap[0];
        if (t->seq >= last_seq)
            break;
        atoll_heap_remove(iso, t);
        bool periodic = t->period_ns > 0;
        if (periodic) {
            /* Next due time on the original grid; skip missed periods. */
            uint64_t next = t->due_ns + t->period_ns;
            if (next <= now)
                next += ((now - next) / t->period_ns + 1) * t->period_ns;
            t->due_ns = next;
            atoll_heap_push(iso, t); /* cannot fail: the slot was just freed */
        }
        t->firing = true;
        atoll_stat_add(&iso->stats.timers_fired, 1);
        t->fn(t, t->user);
        t->firing = false;
        if (t->cancelled || !periodic)
            atoll_timer_release(iso, t);
    }
}

void atoll__timers_teardown(struct atoll_isolate *iso)
{
    while (iso->nheap) {
        struct atoll_timer *t = iso->heap[0];
        atoll_heap_remove(iso, t);
        atoll_timer_release(iso, t);
    }
    free(iso->heap);
    iso->heap = NULL;
    iso->heap_cap = 0;
    while (iso->timer_free) {
        struct atoll_timer *t = iso->timer_free;
        iso->timer_free = t->next_free;
        free(t);
    }
}
