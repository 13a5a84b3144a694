/*
 * tools/atoll-load/isolate.c: the isolate side of a run: the start task
 * (drain hook, 100 ms tick, the --rate pacer, first connects), the tick
 * (retrying failed connects, timing out stuck exchanges) and the drain hook
 * that closes every slot's connection and stops the pacer.
 */
#include <stdint.h>

#include "load.h"

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
        } else if (s->state == SL_BUSY && s->in_op && now - s->op_sent > (uint64_t)OP_TIMEOUT_MS * 1000000ull) {
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
    pacer_stop(is);
    for (uint32_t i = 0; i < is->nslots; i++) {
        slot *s = &is->slots[i];
        slot_drop_conn(s);
        set_state(s, SL_IDLE);
    }
}

void *iso_begin(atoll_isolate *self, void *arg)
{
    iso_state *is = arg;
    is->self = self;
    int rc = atoll_isolate_on_drain(self, on_drain, is);
    if (rc == 0)
        rc = atoll_timer_start(self, TICK_MS, TICK_MS, on_tick, is, &is->tick);
    if (rc == 0 && cfg.rate)
        rc = pacer_start(is);
    if (rc < 0)
        return (void *)(intptr_t)rc;
    is->started = true;
    for (uint32_t i = 0; i < is->nslots; i++)
        slot_connect(&is->slots[i]);
    return NULL;
}
