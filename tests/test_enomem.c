/*
 * test_enomem: ENOMEM inside wolfSSL (issue 9, exhaustion), injected
 * through wolfSSL's allocator hooks (wolfSSL_SetAllocators): the test
 * build's injection point, set and removed by the test itself.
 *
 * Debian's libwolfssl 5.5.4 (the sanitizer presets link it) leaks the
 * server's new key-share entry when generating its key fails
 * (TLSX_KeyShare_Establish returns without freeing it); atoll's own build
 * carries a patch for it (scripts/build-wolfssl.sh). Against the system
 * library that one leak is suppressed (tests/support.c,
 * ATOLL_TEST_LSAN_WOLFSSL_ACCEPT), and only leaks allocated under
 * wolfSSL_accept: a WOLFSSL object atoll failed to free would still
 * be reported (its allocation is under wolfSSL_new).
 */
#include "net_support.h"
#include "tls_client.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>

/* ENOMEM inside wolfSSL, injected through its allocator hooks: the k-th
 * wolfSSL allocation on an isolate thread after arming fails (the test's
 * own client, on this thread, is left alone), for k = 1, 2, ... over the
 * allocations of a whole handshake and echo. Each connection either works
 * or ends with one error reported to the server; none hangs, nothing
 * crashes or leaks (ASan), and service is whole once the hook is off. */
static _Atomic long fail_countdown; /* > 0: armed; the allocation taking it to 0 fails */
static _Atomic long injected;

static bool inject_now(void)
{
    if (!atoll_isolate_current() || atomic_load(&fail_countdown) <= 0)
        return false;
    if (atomic_fetch_sub(&fail_countdown, 1) != 1)
        return false;
    atomic_fetch_add(&injected, 1);
    return true;
}

static void *inject_malloc(size_t n)
{
    return inject_now() ? NULL : malloc(n);
}

static void inject_free(void *p)
{
    free(p);
}

static void *inject_realloc(void *p, size_t n)
{
    return inject_now() ? NULL : realloc(p, n);
}

Test(enomem, wolfssl_allocation_failures_fail_one_connection_at_a_time, .timeout = 300)
{
    atoll_runtime *rt = sup_start_n(1);
    ns_app app;
    ns_app_init(&app, rt);
    app.echo = true;
    app.ctx = ns_server_ctx();
    cr_assert_not_null(app.ctx, "%s", sup_first_failure());
    ns_server s;
    cr_assert_eq(ns_bind(&app, &s, 0, "127.0.0.1", 0), 0);
    cr_assert_eq(wolfSSL_SetAllocators(inject_malloc, inject_free, inject_realloc), 0);
    enum { ATTEMPTS = 400 };
    int ok = 0, failed = 0;
    for (int k = 1; k <= ATTEMPTS; k++) {
        atomic_store(&fail_countdown, k);
        tc_options o = tc_loopback(s.port, NS_CERT("trusted_certs.pem"), 10000);
        tc_conn *c;
        if (tc_connect(&c, &o) == 0) {
            if (tc_echo(c, 100) == 0)
                ok++;
            else
                failed++;
            tc_close(c);
        } else {
            failed++;
        }
        atomic_store(&fail_countdown, 0);
    }
    /* Every attempt reached the server: served, or reported once (a failed
     * client's connection can no longer be served afterwards). */
    long served = atomic_load(&s.connections);
    cr_assert(sup_latch_wait(&s.errored, (int)(ATTEMPTS - served), SUP_WAIT_MS), "%ld served, %ld errors", served,
              atomic_load(&s.errors));
    long errors = atomic_load(&s.errors);
    cr_assert_eq(served + errors, ATTEMPTS, "%ld served + %ld errors", served, errors);
    cr_log_info("%d attempts: %d echoed, %d failed; server: %ld served, %ld errors (last %s: %s), %ld allocations "
                "failed",
                ATTEMPTS, ok, failed, served, errors, atoll_error_name(atomic_load(&s.last_error)), s.last_reason,
                atomic_load(&injected));
    cr_assert_gt(atomic_load(&injected), 0, "the hook never failed an allocation");
    cr_assert_gt(failed, 0, "no connection failed: the test did not test it");
    cr_assert_gt(ok, 0);
    cr_assert_eq(wolfSSL_SetAllocators(malloc, free, realloc), 0);
    for (int i = 0; i < 5; i++) {
        tc_options o = tc_loopback(s.port, NS_CERT("trusted_certs.pem"), 10000);
        tc_conn *c;
        cr_assert_eq(tc_connect(&c, &o), 0, "after the injection: %s", tc_error_string(NULL));
        cr_assert_eq(tc_echo(c, 1000), 0);
        tc_close(c);
    }
    atoll_security_context_release(app.ctx);
    sup_shutdown(rt);
    tc_thread_cleanup();
}
