/* runtime/resolver.c: host name lookup on a helper thread, result posted
 * back to the isolate's inbox. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/resolver.h"
#include "runtime/task.h"

typedef struct atoll_lookup {
    struct atoll_isolate *iso;
    char host[256];
    atoll_resolve_fn cb;
    void *user;
    int status;
    atoll_address addr;
} atoll_lookup;

static void atoll_lookup_deliver(struct atoll_isolate *self, void *arg, bool dropped)
{
    atoll_lookup *l = arg;
    l->cb(self, l->status, &l->addr, l->user, dropped);
    free(l);
}

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

static void *atoll_lookup_thread(void *arg)
{
    atoll_lookup *l = arg;
    l->status = atoll_lookup_run(l);
    if (atoll__post(l->iso, atoll_lookup_deliver, l) < 0)
        free(l); /* the isolate is gone: nobody to tell */
    return NULL;
}

int atoll__resolve(struct atoll_isolate *self, const char *host, atoll_resolve_fn cb, void *user)
{
    atoll_lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->iso = self;
    l->cb = cb;
    l->user = user;
    snprintf(l->host, sizeof(l->host), "%s", host);
    /* Numeric addresses need no thread: parse now, deliver next turn. */
    if (atoll_address_parse(host, &l->addr) == 0) {
        int ret = atoll__post(self, atoll_lookup_deliver, l);
        if (ret < 0)
            free(l);
        return ret;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&th, &attr, atoll_lookup_thread, l);
    pthread_attr_destroy(&attr);
    if (err) {
        free(l);
        return -err;
    }
    return 0;
}
