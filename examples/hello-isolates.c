/*
 * hello-isolates: the smallest tour of atoll's foundation.
 *
 * One isolate per CPU. Each opens a receive port; a token message travels
 * the ring of isolates for a few laps (isolate to isolate, MSG_RING
 * wakeups), a host thread sends greetings (eventfd wakeups), isolate 0
 * submits work to isolate 1 and gets the reply back, every isolate ticks a
 * periodic timer, and SIGINT/SIGTERM or the end of the laps drains the
 * runtime. Run: ./hello-isolates [laps]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atoll/atoll.h>

#define MAX_ISOLATES 64

enum { TAG_TOKEN = 1, TAG_HELLO = 2 };

typedef struct demo {
    atoll_runtime *rt;
    uint32_t n;
    uint64_t laps;
    _Atomic uint64_t ports[MAX_ISOLATES]; /* send handles, 0 until open */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready, done;
} demo;

typedef struct isolate_state {
    demo *d;
    atoll_isolate *self;
    atoll_receive_port *port;
    atoll_timer *tick;
    uint64_t tokens, hellos, ticks;
} isolate_state;

static isolate_state states[MAX_ISOLATES];

static void signal_host(demo *d, int *field)
{
    pthread_mutex_lock(&d->lock);
    (*field)++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static atoll_send_port port_of(demo *d, uint32_t id)
{
    atoll_send_port p = {atomic_load(&d->ports[id])};
    return p;
}

static void on_message(atoll_receive_port *port, atoll_message *msg, void *user)
{
    isolate_state *st = user;
    demo *d = st->d;
    uint32_t me = atoll_isolate_id(st->self);
    if (msg->tag == TAG_HELLO) {
        st->hellos++;
        printf("isolate %u: host says \"%s\"\n", me, (char *)msg->data);
        free(msg->data);
        return;
    }
    /* The token: data carries the hop count. */
    uint64_t hop = (uint64_t)(uintptr_t)msg->data;
    st->tokens++;
    if (hop + 1 >= d->laps * d->n) {
        printf("isolate %u: token finished %llu hops over %u isolates\n", me, (unsigned long long)(hop + 1), d->n);
        signal_host(d, &d->done);
        return;
    }
    atoll_message next = {.tag = TAG_TOKEN, .data = (void *)(uintptr_t)(hop + 1)};
    int ret = atoll_port_send(atoll_isolate_runtime(st->self), port_of(d, (me + 1) % d->n), &next);
    if (ret < 0)
        fprintf(stderr, "isolate %u: forwarding the token failed: %s\n", me, atoll_strerror(ret));
    (void)port;
}

static void on_tick(atoll_timer *t, void *user)
{
    isolate_state *st = user;
    st->ticks++;
    (void)t;
}

static void *square(atoll_isolate *self, void *arg)
{
    uintptr_t x = (uintptr_t)arg;
    printf("isolate %u: computing %lu^2 for a neighbour\n", atoll_isolate_id(self), (unsigned long)x);
    return (void *)(x * x);
}

static void on_square(atoll_isolate *self, int status, void *result, void *user)
{
    if (status == 0)
        printf("isolate %u: reply arrived: %lu\n", atoll_isolate_id(self), (unsigned long)(uintptr_t)result);
    else
        printf("isolate %u: task failed: %s\n", atoll_isolate_id(self), atoll_strerror(status));
    (void)user;
}

static void on_drain(atoll_isolate *self, void *user)
{
    isolate_state *st = user;
    printf("isolate %u: draining after %llu tokens, %llu greetings, %llu timer ticks\n", atoll_isolate_id(self),
           (unsigned long long)st->tokens, (unsigned long long)st->hellos, (unsigned long long)st->ticks);
    atoll_timer_cancel(st->tick);
    atoll_port_close(st->port);
}

static int isolate_main(atoll_isolate *self, void *arg)
{
    demo *d = arg;
    uint32_t me = atoll_isolate_id(self);
    isolate_state *st = &states[me];
    st->d = d;
    st->self = self;
    int ret = atoll_port_open(self, NULL, on_message, st, &st->port);
    if (ret == 0)
        ret = atoll_timer_start(self, 10, 10, on_tick, st, &st->tick);
    if (ret == 0)
        ret = atoll_isolate_on_drain(self, on_drain, st);
    if (ret < 0)
        return ret; /* ends this isolate with an error status */
    atomic_store(&d->ports[me], atoll_port_send_handle(st->port).id_private);
    if (me == 0 && d->n > 1)
        atoll_submit(self, 1, square, (void *)(uintptr_t)12, on_square, NULL);
    signal_host(d, &d->ready);
    return 0;
}

static void on_exit_cb(atoll_runtime *rt, uint32_t id, int status, void *user)
{
    printf("isolate %u exited: %s\n", id, status == 0 ? "ok" : atoll_error_name(status));
    (void)rt;
    (void)user;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    interrupted = sig;
}

int main(int argc, char **argv)
{
    static demo d;
    d.laps = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    atoll_runtime_options opts;
    atoll_runtime_options_init(&opts);
    if (opts.isolates < 2)
        opts.isolates = 2;
    if (opts.isolates > MAX_ISOLATES)
        opts.isolates = MAX_ISOLATES;
    opts.entry = isolate_main;
    opts.entry_arg = &d;
    opts.on_exit = on_exit_cb;
    d.n = opts.isolates;

    int ret = atoll_runtime_create(&opts, &d.rt);
    if (ret < 0) {
        fprintf(stderr, "hello-isolates: %s (%s)\n", atoll_strerror(ret), atoll_error_name(ret));
        return 1;
    }
    atoll_runtime_info info;
    atoll_runtime_info_get(d.rt, &info);
    printf("atoll %s: kernel %s, rings %s, wolfSSL %s (%s build, AES-NI %s), %u isolates\n", ATOLL_VERSION_STRING,
           info.kernel_release, info.ring_mode, info.wolfssl_version, info.wolfssl_build,
           info.wolfssl_aesni ? "yes" : "no", d.n);
    if ((ret = atoll_runtime_start(d.rt)) < 0) {
        fprintf(stderr, "hello-isolates: start: %s\n", atoll_strerror(ret));
        atoll_runtime_stop(d.rt);
        atoll_runtime_join(d.rt);
        atoll_runtime_destroy(d.rt);
        return 1;
    }
    pthread_mutex_lock(&d.lock);
    while (d.ready < (int)d.n)
        pthread_cond_wait(&d.cond, &d.lock);
    pthread_mutex_unlock(&d.lock);

    /* From the host thread: a greeting to everyone, then the token. */
    for (uint32_t i = 0; i < d.n; i++) {
        char *text = strdup("hello from the host thread");
        atoll_message m = {.tag = TAG_HELLO, .data = text, .size = strlen(text) + 1, .release = NULL};
        if (atoll_port_send(d.rt, port_of(&d, i), &m) < 0)
            free(text);
    }
    atoll_message token = {.tag = TAG_TOKEN, .data = (void *)(uintptr_t)0};
    atoll_port_send(d.rt, port_of(&d, 0), &token);

    pthread_mutex_lock(&d.lock);
    while (!d.done && !interrupted) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1; /* re-check the signal flag once a second */
        pthread_cond_timedwait(&d.cond, &d.lock, &ts);
    }
    pthread_mutex_unlock(&d.lock);

    ret = atoll_runtime_drain(d.rt, 5000);
    printf("drain: %s\n", ret == 0 ? "every isolate finished" : atoll_strerror(ret));
    for (uint32_t i = 0; i < d.n; i++) {
        atoll_isolate_stats s;
        atoll_runtime_isolate_stats(d.rt, i, &s);
        printf("isolate %u: %llu messages, %llu ring wakeups, %llu host wakeups, %llu loop turns\n", i,
               (unsigned long long)s.messages_delivered, (unsigned long long)s.wakeups_ring,
               (unsigned long long)s.wakeups_eventfd, (unsigned long long)s.loop_turns);
    }
    atoll_runtime_stop(d.rt);
    atoll_runtime_join(d.rt);
    atoll_runtime_destroy(d.rt);
    return 0;
}
