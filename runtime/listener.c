/*
 * runtime/listener.c: atoll_runtime_listen, one shared server per pool
 * isolate, coordinated from a host thread through submitted tasks; an
 * isolate added later (atoll_runtime_add_isolate) joins every listener.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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
    bool serving; /* counted in the listener's `serving` */
} atoll_listener_member;

struct atoll_listener {
    atoll_runtime *rt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char address[256];
    int port;
    atoll_server_options opts; /* its strings point into opts_strings */
    void *opts_strings;
    atoll_security_context *ctx;
    atoll_server_callbacks cb;
    void *user;
    _Atomic uint32_t serving;       /* members bound and not closed */
    uint32_t cap;                   /* members[] is indexed by isolate id: max_isolates */
    atoll_listener_member *members; /* joined: `l` set */
    struct atoll_listener *next;    /* the runtime's list (under scale_mu) */
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
    else if (!m->serving) {
        m->serving = true;
        atomic_fetch_add(&l->serving, 1);
    }
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
    if (m->serving) {
        m->serving = false;
        atomic_fetch_sub(&l->serving, 1);
    }
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
    for (uint32_t i = 0; i < l->cap; i++) {
        if (!l->members[i].l)
            continue; /* no member on isolate i */
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
    for (uint32_t i = 0; i < l->cap; i++)
        while (l->members[i].l && !l->members[i].closed) {
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

/* Copies the strings the options point to (ALPN names, proxy_allow) into
 * one block the listener owns: isolates added later bind with them, long
 * after the caller's arrays may be gone. Entries the bind will refuse
 * (NULL names) stay NULL. 0 or -ENOMEM. */
static int atoll_listener_own_options(struct atoll_listener *l)
{
    atoll_server_options *o = &l->opts;
    size_t n = o->supported_protocols ? o->supported_protocols_count : 0;
    size_t size = n * sizeof(char *) + (o->proxy_allow ? strlen(o->proxy_allow) + 1 : 0);
    for (size_t i = 0; i < n; i++)
        size += o->supported_protocols[i] ? strlen(o->supported_protocols[i]) + 1 : 0;
    if (size == 0)
        return 0;
    char **names = malloc(size);
    if (!names)
        return -ENOMEM;
    char *p = (char *)(names + n);
    for (size_t i = 0; i < n; i++) {
        const char *src = o->supported_protocols[i];
        names[i] = NULL;
        if (src) {
            size_t len = strlen(src) + 1;
            names[i] = memcpy(p, src, len);
            p += len;
        }
    }
    if (o->supported_protocols)
        o->supported_protocols = (const char *const *)names;
    if (o->proxy_allow)
        o->proxy_allow = memcpy(p, o->proxy_allow, strlen(o->proxy_allow) + 1);
    l->opts_strings = names;
    return 0;
}

static void atoll_listener_free(struct atoll_listener *l)
{
    free(l->opts_strings);
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
    l->cap = rt->opts.max_isolates;
    l->members = calloc(l->cap, sizeof(*l->members));
    if (!l->members) {
        free(l);
        return -ENOMEM;
    }
    l->rt = rt;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    snprintf(l->address, sizeof(l->address), "%s", address);
    l->port = port;
    if (opts)
        l->opts = *opts;
    else
        atoll_server_options_init(&l->opts);
    l->opts.shared = true;
    if (atoll_listener_own_options(l) < 0) {
        atoll_listener_free(l);
        return -ENOMEM;
    }
    l->cb = *cb;
    l->user = user;
    if (ctx) {
        atoll__security_context_acquire(ctx);
        l->ctx = ctx;
    }
    /* The pool's members now (ids with live scaling need not be 0..n-1);
     * an isolate added meanwhile waits for scale_mu, then joins. */
    pthread_mutex_lock(&rt->scale_mu);
    int ret = 0;
    bool first = true;
    uint32_t n = atomic_load(&rt->isolate_count);
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        if (!atoll__pool_member(rt->isolates[i]))
            continue;
        ret = atoll__listener_join(l, i);
        if (ret == 0 && first) {
            pthread_mutex_lock(&l->lock);
            l->port = atoll_server_port(l->members[i].server); /* the others bind the port obtained */
            pthread_mutex_unlock(&l->lock);
        }
        first = false;
    }
    if (ret == 0) {
        l->next = rt->listeners;
        rt->listeners = l;
    }
    pthread_mutex_unlock(&rt->scale_mu);
    if (ret < 0) {
        atoll_listener_close_members(l);
        atoll_listener_free(l);
        return ret;
    }
    *out = l;
    return 0;
}

int atoll__listener_join(struct atoll_listener *l, uint32_t id)
{
    if (id >= l->cap)
        return ATOLL_E_LIMIT;
    atoll_listener_member *m = &l->members[id];
    pthread_mutex_lock(&l->lock);
    memset(m, 0, sizeof(*m));
    m->l = l;
    m->index = id;
    pthread_mutex_unlock(&l->lock);
    int ret = atoll_listener_run(l, id, atoll_member_bind_task);
    pthread_mutex_lock(&l->lock);
    while (ret == 0 && !m->bound_reported)
        pthread_cond_wait(&l->cond, &l->lock);
    if (ret == 0)
        ret = m->bind_status;
    if (ret < 0)
        m->closed = true;
    pthread_mutex_unlock(&l->lock);
    return ret;
}

struct atoll_listener *atoll__listener_next(const struct atoll_listener *l)
{
    return l->next;
}

uint16_t atoll_listener_port(const atoll_listener *l)
{
    return (uint16_t)l->port;
}

uint32_t atoll_listener_count(const atoll_listener *l)
{
    return atomic_load(&l->serving);
}

atoll_server *atoll_listener_server(const atoll_listener *l, uint32_t i)
{
    return i < l->cap ? l->members[i].server : NULL;
}

int atoll_listener_close(atoll_listener *l)
{
    if (!l)
        return -EINVAL;
    atoll_isolate *self = atoll_isolate_current();
    if (self && self->rt == l->rt)
        return ATOLL_E_DEADLOCK;
    /* Out of the runtime's list first: no isolate added from now on joins. */
    pthread_mutex_lock(&l->rt->scale_mu);
    for (struct atoll_listener **p = &l->rt->listeners; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_unlock(&l->rt->scale_mu);
    atoll_listener_close_members(l);
    atoll_listener_free(l);
    return 0;
}
