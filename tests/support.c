#include "support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- latch -------------------------------------------------------------- */

void sup_latch_init(sup_latch *l)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->value = 0;
}

void sup_latch_destroy(sup_latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

void sup_latch_add(sup_latch *l, long n)
{
    pthread_mutex_lock(&l->mu);
    l->value += n;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void sup_latch_signal(sup_latch *l)
{
    sup_latch_add(l, 1);
}

long sup_latch_get(sup_latch *l)
{
    pthread_mutex_lock(&l->mu);
    long v = l->value;
    pthread_mutex_unlock(&l->mu);
    return v;
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool sup_latch_wait(sup_latch *l, long target, int timeout_ms)
{
    struct timespec ts;
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&l->mu);
    while (l->value < target) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT && l->value < target) {
            pthread_mutex_unlock(&l->mu);
            return false;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return true;
}

/* ---- failures ----------------------------------------------------------- */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int fail_count;
static char fail_first[512] = "(none)";

void sup_fail(const char *file, int line, const char *fmt, ...)
{
    pthread_mutex_lock(&fail_mu);
    if (fail_count++ == 0) {
        int n = snprintf(fail_first, sizeof fail_first, "%s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof fail_first)
            vsnprintf(fail_first + n, sizeof fail_first - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_mu);
}

int sup_failure_count(void)
{
    pthread_mutex_lock(&fail_mu);
    int n = fail_count;
    pthread_mutex_unlock(&fail_mu);
    return n;
}

const char *sup_first_failure(void)
{
    return fail_first;
}

/* ---- exits -------------------------------------------------------------- */

void sup_exits_init(sup_exits *e)
{
    memset(e, 0, sizeof *e);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void sup_exits_cb(atoll_runtime *rt, uint32_t id, int status, void *user)
{
    sup_exits *e = user;
    atoll_isolate *cur = atoll_isolate_current();
    bool right_thread = cur != NULL && atoll_isolate_id(cur) == id && atoll_isolate_runtime(cur) == rt;
    if (e->hook)
        e->hook(rt, id, status, e->hook_user);
    pthread_mutex_lock(&e->mu);
    if (!right_thread)
        e->wrong_thread++;
    if (id < SUP_MAX_ISO) {
        e->status[id] = status;
        e->calls[id]++;
    }
    e->total++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

bool sup_exits_wait(sup_exits *e, uint32_t id, int timeout_ms, int *status)
{
    if (id >= SUP_MAX_ISO)
        return false;
    struct timespec ts;
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&e->mu);
    while (e->calls[id] == 0) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT && e->calls[id] == 0) {
            pthread_mutex_unlock(&e->mu);
            return false;
        }
    }
    if (status)
        *status = e->status[id];
    pthread_mutex_unlock(&e->mu);
    return true;
}

int sup_exits_calls(sup_exits *e, uint32_t id)
{
    pthread_mutex_lock(&e->mu);
    int n = id < SUP_MAX_ISO ? e->calls[id] : 0;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- runtimes ----------------------------------------------------------- */

void sup_options(atoll_runtime_options *o, uint32_t isolates)
{
    atoll_runtime_options_init(o);
    o->isolates = isolates;
}

atoll_runtime *sup_start(const atoll_runtime_options *o)
{
    atoll_runtime *rt = NULL;
    int rc = atoll_runtime_create(o, &rt);
    cr_assert_eq(rc, 0, "atoll_runtime_create: %d %s (%s)", rc, atoll_error_name(rc), atoll_strerror(rc));
    cr_assert_not_null(rt, "atoll_runtime_create returned 0 but no runtime");
    rc = atoll_runtime_start(rt);
    cr_assert_eq(rc, 0, "atoll_runtime_start: %d %s (%s)", rc, atoll_error_name(rc), atoll_strerror(rc));
    return rt;
}

atoll_runtime *sup_start_n(uint32_t n)
{
    atoll_runtime_options o;
    sup_options(&o, n);
    return sup_start(&o);
}

void sup_shutdown(atoll_runtime *rt)
{
    int rc = atoll_runtime_stop(rt);
    cr_assert_eq(rc, 0, "atoll_runtime_stop: %d %s", rc, atoll_error_name(rc));
    rc = atoll_runtime_join(rt);
    cr_assert_eq(rc, 0, "atoll_runtime_join: %d %s", rc, atoll_error_name(rc));
    rc = atoll_runtime_destroy(rt);
    cr_assert_eq(rc, 0, "atoll_runtime_destroy: %d %s", rc, atoll_error_name(rc));
}

uint32_t sup_spawn(atoll_runtime *rt, atoll_entry_fn entry, void *arg)
{
    uint32_t id = UINT32_MAX;
    int rc = atoll_runtime_spawn(rt, entry, arg, &id);
    cr_assert_eq(rc, 0, "atoll_runtime_spawn: %d %s (%s)", rc, atoll_error_name(rc), atoll_strerror(rc));
    cr_assert_neq(id, UINT32_MAX, "spawn did not report an id");
    return id;
}

struct run_on_ctx {
    void (*fn)(atoll_isolate *self, void *arg);
    void *arg;
    sup_latch done;
    int status;
};

static void *run_on_task(atoll_isolate *self, void *arg)
{
    struct run_on_ctx *c = arg;
    c->fn(self, c->arg);
    return c;
}

static void run_on_done(int status, void *result, void *user)
{
    struct run_on_ctx *c = user;
    c->status = status;
    sup_latch_signal(&c->done);
}

int sup_run_on(atoll_runtime *rt, uint32_t id, void (*fn)(atoll_isolate *self, void *arg), void *arg)
{
    struct run_on_ctx c = {.fn = fn, .arg = arg, .status = 1};
    sup_latch_init(&c.done);
    int rc = atoll_runtime_submit(rt, id, run_on_task, &c, run_on_done, &c, NULL);
    if (rc == 0) {
        cr_assert(sup_latch_wait(&c.done, 1, SUP_WAIT_MS), "sup_run_on: task on isolate %u never completed", id);
        cr_assert_eq(c.status, 0, "sup_run_on: task status %d %s", c.status, atoll_error_name(c.status));
    }
    sup_latch_destroy(&c.done);
    return rc;
}

struct host_thread {
    pthread_t th;
    int index;
    void (*fn)(int index, void *arg);
    void *arg;
};

static void *host_thread_main(void *p)
{
    struct host_thread *h = p;
    h->fn(h->index, h->arg);
    return NULL;
}

void sup_host_threads(int n, void (*fn)(int index, void *arg), void *arg)
{
    struct host_thread *hs = calloc((size_t)n, sizeof *hs);
    cr_assert_not_null(hs);
    for (int i = 0; i < n; i++) {
        hs[i] = (struct host_thread){.index = i, .fn = fn, .arg = arg};
        cr_assert_eq(pthread_create(&hs[i].th, NULL, host_thread_main, &hs[i]), 0, "pthread_create");
    }
    for (int i = 0; i < n; i++)
        pthread_join(hs[i].th, NULL);
    free(hs);
}

/* LeakSanitizer (sanitizer builds): Criterion 2.4 leaks a few small blocks of
 * its own in the runner process; they are not atoll's. test_enomem against
 * Debian's libwolfssl adds that library's own leak under an allocation
 * failure (see test_enomem.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
#ifdef ATOLL_TEST_LSAN_WOLFSSL_ACCEPT
    return "leak:libcriterion.so\nleak:wolfSSL_accept\n";
#else
    return "leak:libcriterion.so\n";
#endif
}

#ifdef ATOLL_TEST_LSAN_WOLFSSL_ACCEPT
/* Debian's libwolfssl has no frame pointers: only the slow unwinder walks
 * through it up to wolfSSL_accept, which the suppression names. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}
#endif

int64_t sup_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sup_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

int sup_wait_fd_count(int want, int timeout_ms)
{
    int64_t end = sup_now_ms() + timeout_ms;
    int n = sup_fd_count();
    while (n > want && sup_now_ms() < end) {
        poll(NULL, 0, 5);
        n = sup_fd_count();
    }
    return n;
}
