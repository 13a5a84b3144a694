/*
 * tools/atoll-serve/tasks.c: work the main thread hands to the isolates:
 * running a task on every pool isolate and waiting for all of them, and the
 * task that starts the graceful shutdown of an isolate's connections.
 */
#include "serve.h"

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
void run_on_all(atoll_task_fn fn)
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
void *task_begin_drain(atoll_isolate *self, void *arg)
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
