/*
 * runtime/listener.c: atoll_runtime_listen, one shared server per pool
 * isolate, coordinated from a host thread through submitted tasks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isolates/isolate_private.h"
#include "runtime/runtime_private.h"

typedef struct atoll_listener_member {
    struct atoll_listener *l;
    uint32_t index;
    atoll_server *server;
    int bind_status;
    bool bound_reported, closed;
} atoll_listener_member;

struct atoll_listener {
    atoll_runtime *rt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char address[256];
    int port;
    atoll_server_options opts;
    atoll_security_context *ctx;
    atoll_server_callbacks cb;
    void *user;
    uint32_t n;
    atoll_listener_member *members;
};

static void atoll_member_bound(atoll_server *s, int status, void *user)
{
    atoll_listener_member *m = user;
    struct atoll_listener *l = m->l;
    if (status == 0)
        status = atoll_server_start(s);
    if (l->cb.on_bound)
        l->cb.on_bound(s, status, l->user);
    pthread_mutex_lock(&l->lock);
    m->bind_status = status;
    m->bound_reported = true;
    if (status < 0)
        m->server = NULL; /* freed after a failed bind */
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static void atoll_member_connection(atoll_server *s, atoll_conn *c, void *user)
{
    atoll_listener_member *m = user;
    m->l->cb.on_connection(s, c, m->l->user);
}

static void atoll_member_error(atoll_server *s, const atoll_server_error *e, void *user)
{
    atoll_listener_member *m = user;
    if (m->l->cb.on_error)
        m->l->cb.on_error(s, e, m->l->user);
}

static void atoll_member_closed(atoll_server *s, void *user)
{
    atoll_listener_member *m = user;
    struct atoll_listener *l = m->l;
    if (l->cb.on_closed)
        l->cb.on_closed(s, l->user);
    pthread_mutex_lock(&l->lock);
    m->closed = true;
    m->server = NULL;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static void *atoll_member_bind_task(atoll_isolate *self, void *arg)
{
    atoll_listener_member *m = arg;
    struct atoll_listener *l = m->l;
    static const atoll_server_callbacks wrap = {
        .on_bound = atoll_member_bound,
        .on_connection = atoll_member_connection,
        .on_error = atoll_member_error,
        .on_closed = atoll_member_closed,
    };
    atoll_server *s = NULL;
    int ret = atoll_server_bind(self, l->address, l->port, &l->opts, l->ctx, &wrap, m, &s);
    pthread_mutex_lock(&l->lock);
    if (ret < 0) {
        m->bind_status = ret;
        m->bound_reported = true;
    } else if (!m->bound_reported) {
        m->server = s;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void *atoll_member_close_task(atoll_isolate *self, void *arg)
{
    atoll_listener_member *m = arg;
    (void)self;
    if (m->server)
        atoll_server_close(m->server);
    return NULL;
}

/* Runs `fn` for member i on its isolate and waits until `done` holds. */
static int atoll_listener_run(struct atoll_listener *l, uint32_t i, atoll_task_fn fn)
{
    int ret = atoll_runtime_submit(l->rt, i, fn, &l->members[i], NULL, NULL, NULL);
    if (ret < 0)
        return ret;
    return 0;
}

static void atoll_listener_close_members(struct atoll_listener *l)
{
    for (uint32_t i = 0; i < l->n; i++) {
        pthread_mutex_lock(&l->lock);
        bool open = l->members[i].server && !l->members[i].closed;
        pthread_mutex_unlock(&l->lock);
        if (!open || atoll_listener_run(l, i, atoll_member_close_task) < 0) {
            pthread_mutex_lock(&l->lock);
            l->members[i].closed = true; /* its isolate is gone: so is the server */
            pthread_mutex_unlock(&l->lock);
        }
    }
    pthread_mutex_lock(&l->lock);
    for (uint32_t i = 0; i < l->n; i++)
        while (!l->members[i].closed) {
            atoll_isolate_state st;
            atoll_runtime_isolate_status(l->rt, i, &st, NULL);
            if (st == ATOLL_ISOLATE_EXITED) {
                l->members[i].closed = true;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* re-check the isolate's state now and then */
            pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        }
    pthread_mutex_unlock(&l->lock);
}

static void atoll_listener_free(struct atoll_listener *l)
{
    if (l->ctx)
        atoll_security_context_release(l->ctx);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l->members);
    free(l);
}

int atoll_runtime_listen(atoll_runtime *rt, const char *address, int port, const atoll_server_options *opts,
                         atoll_security_context *ctx, const atoll_server_callbacks *cb, void *user,
                         atoll_listener **out)
{
    if (!rt || !address || !cb || !cb->on_connection || !out || port < 0 || port > 65535)
        return -EINVAL;
    atoll_isolate *self = atoll_isolate_current();
    if (self && self->rt == rt)
        return ATOLL_E_DEADLOCK;
    if (rt->pool_count == 0)
        return ATOLL_E_STATE;
    struct atoll_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->members = calloc(rt->pool_count, sizeof(*l->members));
    if (!l->members) {
        free(l);
        return -ENOMEM;
    }
    l->rt = rt;
    l->n = rt->pool_count;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    snprintf(l->address, sizeof(l->address), "%s", address);
    l->port = port;
    if (opts)
        l->opts = *opts;
    else
        atoll_server_options_init(&l->opts);
    l->opts.shared = true;
    l->cb = *cb;
    l->user = user;
    if (ctx) {
        atoll__security_context_acquire(ctx);
        l->ctx = ctx;
    }
    int ret = 0;
    for (uint32_t i = 0; i < l->n && ret == 0; i++) {
        l->members[i].l = l;
        l->members[i].index = i;
        ret = atoll_listener_run(l, i, atoll_member_bind_task);
        pthread_mutex_lock(&l->lock);
        while (ret == 0 && !l->members[i].bound_reported)
            pthread_cond_wait(&l->cond, &l->lock);
        if (ret == 0)
            ret = l->members[i].bind_status;
        if (ret == 0 && i == 0)
            l->port = atoll_server_port(l->members[0].server); /* the others bind the port obtained */
        pthread_mutex_unlock(&l->lock);
        if (ret < 0)
            l->members[i].closed = true;
    }
    if (ret < 0) {
        atoll_listener_close_members(l);
        atoll_listener_free(l);
        return ret;
    }
    *out = l;
    return 0;
}

uint16_t atoll_listener_port(const atoll_listener *l)
{
    return (uint16_t)l->port;
}

uint32_t atoll_listener_count(const atoll_listener *l)
{
    return l->n;
}

atoll_server *atoll_listener_server(const atoll_listener *l, uint32_t i)
{
    return i < l->n ? l->members[i].server : NULL;
}

int atoll_listener_close(atoll_listener *l)
{
    if (!l)
        return -EINVAL;
    atoll_isolate *self = atoll_isolate_current();
    if (self && self->rt == l->rt)
        return ATOLL_E_DEADLOCK;
    atoll_listener_close_members(l);
    atoll_listener_free(l);
    return 0;
}
