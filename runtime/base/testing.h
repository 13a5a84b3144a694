/*
 * runtime/base/testing.h: fault-injection hooks, compiled only into the test build
 * of the library (ATOLL_TESTING). Never part of the installed API.
 */
#ifndef ATOLL_RUNTIME_TESTING_H
#define ATOLL_RUNTIME_TESTING_H

#ifdef ATOLL_TESTING

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Makes the next io_uring probes behave as if io_uring_setup() failed with
 * `setup_errno` (EPERM, ENOSYS, ENOMEM, ...; 0 = no injection), or, when
 * `missing_feature` is non-NULL, as if the kernel lacked that feature (e.g.
 * "IORING_OP_MSG_RING"). Affects atoll_runtime_probe() and therefore
 * atoll_runtime_create(), for the whole process until reset with (0, NULL).
 * Thread: any thread; tests call it before creating a runtime.
 */
void atoll__test_probe_inject(int setup_errno, const char *missing_feature);

/**
 * A resolver that never answers, on demand: while `on`, every lookup of a
 * host name (not a numeric address) blocks on its pool worker before
 * getaddrinfo(), until the hook is turned off again (which releases all).
 * Process-wide. Thread: any thread.
 */
void atoll__test_resolver_block(bool on);

/** Lookups currently held by atoll__test_resolver_block. Thread: any. */
uint32_t atoll__test_resolver_blocked(void);

/** Counters of the lookup pools (runtime/lookup_pool.c), process-wide. */
typedef struct atoll_test_lookup_counts {
    uint32_t threads; /* worker threads alive, all pools (they outlive destroy) */
    uint32_t busy;    /* jobs taken by a worker and not yet finished */
    uint32_t peak;    /* most workers one pool had at once, since the reset */
    uint32_t blocked; /* = atoll__test_resolver_blocked() */
} atoll_test_lookup_counts;

/** Reads the counters. Thread: any. */
void atoll__test_lookup_counts(atoll_test_lookup_counts *out);

/** Sets `peak` back to 0. Thread: any. */
void atoll__test_lookup_peak_reset(void);

/** Called by every atoll__secure_zero, right after the wipe and before the
 *  memory is freed or reused: `p` and `len` are the region just zeroed, still
 *  valid for the duration of the call (so a test can read it without UB). */
typedef void (*atoll_test_wipe_hook)(const void *p, size_t len);

/**
 * Installs `hook` (NULL removes it), process-wide. Thread: any; the hook runs
 * on the thread that wipes, so it must be thread-safe if isolates wipe.
 */
void atoll__test_set_wipe_hook(atoll_test_wipe_hook hook);

#endif
#endif /* ATOLL_RUNTIME_TESTING_H */
