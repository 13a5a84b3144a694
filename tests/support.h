/*
 * tests/support.h: helpers shared by the Criterion suites.
 *
 * Rules the suites follow:
 * - never sleep to synchronise: wait on a sup_latch with a generous bound
 *   (SUP_WAIT_MS); a hang then fails instead of blocking forever;
 * - never call cr_assert* on an isolate or helper thread (Criterion aborts
 *   the test with a longjmp on the calling thread): record with SUP_CHECK and
 *   assert with sup_assert_no_failures() on the test thread.
 */
#ifndef ATOLL_TESTS_SUPPORT_H
#define ATOLL_TESTS_SUPPORT_H

#include <atoll/atoll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/** Bound for every wait in the suites: long enough for ASan on 2 cores. */
#define SUP_WAIT_MS 20000

/* ---- latch: a counter with a bounded wait ------------------------------ */

typedef struct sup_latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} sup_latch;

void sup_latch_init(sup_latch *l);
void sup_latch_destroy(sup_latch *l);
/** Adds `n` to the value and wakes waiters. */
void sup_latch_add(sup_latch *l, long n);
/** Adds 1. */
void sup_latch_signal(sup_latch *l);
long sup_latch_get(sup_latch *l);
/** Waits until value >= target or timeout_ms passed; false on timeout. */
bool sup_latch_wait(sup_latch *l, long target, int timeout_ms);

/* ---- failures recorded off the test thread ----------------------------- */

void sup_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sup_failure_count(void);
const char *sup_first_failure(void);

#define SUP_CHECK(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            sup_fail(__FILE__, __LINE__, __VA_ARGS__);                                                                 \
    } while (0)

/** Asserts (on the test thread) that no SUP_CHECK failed so far. */
#define sup_assert_no_failures()                                                                                       \
    cr_assert_eq(sup_failure_count(), 0, "%d check(s) failed off the test thread; first: %s", sup_failure_count(),     \
                 sup_first_failure())

/* ---- exit notifications ------------------------------------------------- */

#define SUP_MAX_ISO 64

typedef struct sup_exits {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int status[SUP_MAX_ISO];
    int calls[SUP_MAX_ISO];
    int total;
    /** Exit callbacks that did not run on the exiting isolate's thread. */
    int wrong_thread;
    /** Optional hook run inside the callback (before recording). */
    void (*hook)(atoll_runtime *rt, uint32_t id, int status, void *user);
    void *hook_user;
} sup_exits;

void sup_exits_init(sup_exits *e);
/** The atoll_exit_fn: `user` must be a sup_exits. */
void sup_exits_cb(atoll_runtime *rt, uint32_t id, int status, void *user);
/** Waits for isolate `id`'s exit notification; false on timeout. */
bool sup_exits_wait(sup_exits *e, uint32_t id, int timeout_ms, int *status);
int sup_exits_calls(sup_exits *e, uint32_t id);

/* ---- runtimes ----------------------------------------------------------- */

/** Options with defaults and `isolates` pool isolates. */
void sup_options(atoll_runtime_options *o, uint32_t isolates);
/** Creates and starts a runtime (asserts on the test thread). */
atoll_runtime *sup_start(const atoll_runtime_options *o);
/** Creates and starts a runtime with `n` pool isolates and the defaults. */
atoll_runtime *sup_start_n(uint32_t n);
/** Stop, join and destroy, asserting each returns 0. */
void sup_shutdown(atoll_runtime *rt);

/**
 * Spawns an isolate and asserts the spawn succeeded; returns its id.
 */
uint32_t sup_spawn(atoll_runtime *rt, atoll_entry_fn entry, void *arg);

/**
 * Runs fn(isolate, arg) on isolate `id` through atoll_runtime_submit() and
 * waits until it ran. Returns the submit error or 0; asserts no timeout.
 */
int sup_run_on(atoll_runtime *rt, uint32_t id, void (*fn)(atoll_isolate *self, void *arg), void *arg);

/** Starts `n` host threads running fn(index, arg) and joins them. */
void sup_host_threads(int n, void (*fn)(int index, void *arg), void *arg);

/* ---- time and descriptors ------------------------------------------------ */

/** CLOCK_MONOTONIC in milliseconds. */
int64_t sup_now_ms(void);
/** Open descriptors of this process (/proc/self/fd, its own one excluded). */
int sup_fd_count(void);
/** Polls until at most `want` descriptors are open or timeout_ms passed;
 *  returns the last count. */
int sup_wait_fd_count(int want, int timeout_ms);

#endif
