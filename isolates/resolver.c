/* isolates/resolver.c: host name lookup as a job of the runtime's lookup
 * pool, the result posted back to the isolate's inbox. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base/lookup_pool.h"
#include "isolates/resolver.h"
#include "isolates/task.h"
#include "runtime/base/testing.h"

typedef struct atoll_lookup {
    atoll_lookup_job job; /* first: the pool's handle is the lookup */
    /* Dereferenced only by finish while the runtime is alive (the pool
     * guarantees the isolate object exists then), never by work. */
    struct atoll_isolate *iso;
    char host[256];
    atoll_resolve_fn cb;
    void *user;
    int status;
    atoll_address addr;
} atoll_lookup;

#ifdef ATOLL_TESTING
static pthread_mutex_t test_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t test_cond = PTHREAD_COND_INITIALIZER;
static bool test_block;
static uint32_t test_blocked;

void atoll__test_resolver_block(bool on)
{
    pthread_mutex_lock(&test_lock);
    test_block = on;
    pthread_cond_broadcast(&test_cond);
    pthread_mutex_unlock(&test_lock);
}

uint32_t atoll__test_resolver_blocked(void)
{
    pthread_mutex_lock(&test_lock);
    uint32_t n = test_blocked;
    pthread_mutex_unlock(&test_lock);
    return n;
}

/* The injected resolver that does not answer: holds the worker while the
 * hook is on. Thread: a lookup pool worker. */
static void atoll_test_resolver_wait(void)
{
    pthread_mutex_lock(&test_lock);
    test_blocked++;
    while (test_block)
        pthread_cond_wait(&test_cond, &test_lock);
    test_blocked--;
    pthread_mutex_unlock(&test_lock);
}
#endif

/* Delivers the result and frees the lookup. Errors: none. Thread: the
 * requesting isolate (inbox), or its teardown with dropped = true. */
static void atoll_lookup_deliver(struct atoll_isolate *self, void *arg, bool dropped)
{
    atoll_lookup *l = arg;
    l->cb(self, l->status, &l->addr, l->user, dropped);
    free(l);
}

/* getaddrinfo as Dart calls it; fills l->addr. Returns 0, -EINVAL (scope
 * suffix), -ENOMEM or ATOLL_E_LOOKUP. Thread: a lookup pool worker; touches
 * only `l`. */
static int atoll_lookup_run(atoll_lookup *l)
{
    if (strchr(l->host, '%'))
        return -EINVAL; /* Dart refuses scoped addresses other than fe80 ones; so do we, all */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(l->host, NULL, &hints, &res);
    if (rc != 0) {
        hints.ai_flags = 0;
        rc = getaddrinfo(l->host, NULL, &hints, &res);
    }
    if (rc != 0 || !res)
        return rc == EAI_MEMORY ? -ENOMEM : ATOLL_E_LOOKUP;
    atoll_address *a = &l->addr;
    memset(a, 0, sizeof(*a));
    a->family = res->ai_family;
    if (res->ai_family == AF_INET)
        memcpy(a->bytes, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, 4);
    else
        memcpy(a->bytes, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, 16);
    freeaddrinfo(res);
    inet_ntop(a->family, a->bytes, a->text, sizeof(a->text));
    snprintf(a->host, sizeof(a->host), "%s", l->host);
    return 0;
}

/* The pool's work step: may block for as long as the resolver likes.
 * Thread: a lookup pool worker. */
static void atoll_lookup_work(atoll_lookup_job *job)
{
    atoll_lookup *l = (atoll_lookup *)job;
#ifdef ATOLL_TESTING
    atoll_test_resolver_wait();
#endif
    l->status = atoll_lookup_run(l);
}

/* The pool's finish step, under the pool lock: posts the result while the
 * runtime exists; an isolate that exited refuses the post (its teardown
 * already released `user`), and a destroyed runtime is not touched at all.
 * Thread: a lookup pool worker, or the host thread destroying the runtime. */
static void atoll_lookup_finish(atoll_lookup_job *job, bool runtime_alive)
{
    atoll_lookup *l = (atoll_lookup *)job;
    if (!runtime_alive || atoll__post(l->iso, atoll_lookup_deliver, l) < 0)
        free(l); /* nobody to tell */
}

int atoll__resolve(struct atoll_isolate *self, const char *host, atoll_resolve_fn cb, void *user)
{
    atoll_lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->iso = self;
    l->cb = cb;
    l->user = user;
    /* Numeric addresses need no thread: parse now, deliver next turn. So do
     * names too long for DNS (253): they fail without a lookup. */
    bool now = true;
    if (strlen(host) >= sizeof(l->host))
        l->status = ATOLL_E_LOOKUP;
    else if (atoll_address_parse(host, &l->addr) != 0)
        now = false;
    if (now) {
        int ret = atoll__post(self, atoll_lookup_deliver, l);
        if (ret < 0)
            free(l);
        return ret;
    }
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->job.work = atoll_lookup_work;
    l->job.finish = atoll_lookup_finish;
    int ret = atoll__lookup_pool_submit(self->lookups, &l->job);
    if (ret < 0)
        free(l);
    return ret;
}
