/* test_errors: atoll_strerror / atoll_error_name cover every code. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
} atoll_codes[] = {
    {ATOLL_E_URING_DISABLED, "ATOLL_E_URING_DISABLED"},
    {ATOLL_E_URING_NOSYS, "ATOLL_E_URING_NOSYS"},
    {ATOLL_E_URING_MEMLOCK, "ATOLL_E_URING_MEMLOCK"},
    {ATOLL_E_URING_FEATURE, "ATOLL_E_URING_FEATURE"},
    {ATOLL_E_STATE, "ATOLL_E_STATE"},
    {ATOLL_E_STOPPED, "ATOLL_E_STOPPED"},
    {ATOLL_E_PORT_FULL, "ATOLL_E_PORT_FULL"},
    {ATOLL_E_PORT_CLOSED, "ATOLL_E_PORT_CLOSED"},
    {ATOLL_E_WRONG_THREAD, "ATOLL_E_WRONG_THREAD"},
    {ATOLL_E_DEADLOCK, "ATOLL_E_DEADLOCK"},
    {ATOLL_E_LIMIT, "ATOLL_E_LIMIT"},
    {ATOLL_E_CANCELED, "ATOLL_E_CANCELED"},
    {ATOLL_E_TIMEDOUT, "ATOLL_E_TIMEDOUT"},
    {ATOLL_E_TLS_MATERIAL, "ATOLL_E_TLS_MATERIAL"},
    {ATOLL_E_SHARED_MISMATCH, "ATOLL_E_SHARED_MISMATCH"},
    {ATOLL_E_V6ONLY_MISMATCH, "ATOLL_E_V6ONLY_MISMATCH"},
    {ATOLL_E_LOOKUP, "ATOLL_E_LOOKUP"},
    {ATOLL_E_HANDSHAKE, "ATOLL_E_HANDSHAKE"},
    {ATOLL_E_HANDSHAKE_TIMEOUT, "ATOLL_E_HANDSHAKE_TIMEOUT"},
    {ATOLL_E_PEER_CLOSED, "ATOLL_E_PEER_CLOSED"},
    {ATOLL_E_CERTIFICATE, "ATOLL_E_CERTIFICATE"},
    {ATOLL_E_CLOSED, "ATOLL_E_CLOSED"},
    {ATOLL_E_ALPN, "ATOLL_E_ALPN"},
    {ATOLL_E_CONN_CAP, "ATOLL_E_CONN_CAP"},
    {ATOLL_E_PROXY_HEADER, "ATOLL_E_PROXY_HEADER"},
    {ATOLL_E_PROXY_DENIED, "ATOLL_E_PROXY_DENIED"},
};
#define N_ATOLL_CODES (sizeof atoll_codes / sizeof atoll_codes[0])

static const struct {
    int code;
    const char *name;
} errno_codes[] = {
    {-EINVAL, "EINVAL"}, {-ENOMEM, "ENOMEM"}, {-ENOENT, "ENOENT"},         {-EAGAIN, "EAGAIN"},
    {-EPERM, "EPERM"},   {-ENOSYS, "ENOSYS"}, {-EADDRINUSE, "EADDRINUSE"},
};
#define N_ERRNO_CODES (sizeof errno_codes / sizeof errno_codes[0])

Test(errors, every_atoll_code_has_its_name_and_a_message, .timeout = 10)
{
    for (size_t i = 0; i < N_ATOLL_CODES; i++) {
        int c = atoll_codes[i].code;
        const char *name = atoll_error_name(c);
        const char *msg = atoll_strerror(c);
        cr_assert_not_null(name, "atoll_error_name(%d) is NULL", c);
        cr_assert_str_eq(name, atoll_codes[i].name, "atoll_error_name(%d)", c);
        cr_assert_not_null(msg, "atoll_strerror(%s) is NULL", atoll_codes[i].name);
        cr_assert_gt(strlen(msg), 5, "atoll_strerror(%s) is too short: '%s'", atoll_codes[i].name, msg);
    }
}

Test(errors, atoll_code_messages_are_distinct, .timeout = 10)
{
    for (size_t i = 0; i < N_ATOLL_CODES; i++)
        for (size_t j = i + 1; j < N_ATOLL_CODES; j++)
            cr_assert_str_neq(atoll_strerror(atoll_codes[i].code), atoll_strerror(atoll_codes[j].code),
                              "%s and %s share a message", atoll_codes[i].name, atoll_codes[j].name);
}

Test(errors, atoll_codes_are_below_minus_4000, .timeout = 10)
{
    for (size_t i = 0; i < N_ATOLL_CODES; i++)
        cr_assert_lt(atoll_codes[i].code, -4000, "%s = %d", atoll_codes[i].name, atoll_codes[i].code);
}

Test(errors, negated_errno_codes_are_named, .timeout = 10)
{
    for (size_t i = 0; i < N_ERRNO_CODES; i++) {
        int c = errno_codes[i].code;
        const char *name = atoll_error_name(c);
        const char *msg = atoll_strerror(c);
        cr_assert_not_null(name);
        cr_assert_str_eq(name, errno_codes[i].name, "atoll_error_name(%d)", c);
        cr_assert_not_null(msg, "atoll_strerror(%d) is NULL", c);
        cr_assert_gt(strlen(msg), 0, "atoll_strerror(%s) is empty", errno_codes[i].name);
        cr_assert_str_neq(msg, atoll_strerror(-4999), "atoll_strerror(%s) is the unknown-code text",
                          errno_codes[i].name);
    }
}

Test(errors, zero_is_success, .timeout = 10)
{
    const char *msg = atoll_strerror(0);
    cr_assert_not_null(msg);
    cr_assert_not_null(strcasestr(msg, "success"), "atoll_strerror(0) = '%s'", msg);
    cr_assert_not_null(atoll_error_name(0));
}

Test(errors, unknown_codes_are_UNKNOWN_with_a_message, .timeout = 10)
{
    const int unknown[] = {-4000, -4099, -4999, -3999999, 123456, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int c = unknown[i];
        const char *name = atoll_error_name(c);
        const char *msg = atoll_strerror(c);
        cr_assert_not_null(name, "atoll_error_name(%d) is NULL", c);
        cr_assert_str_eq(name, "UNKNOWN", "atoll_error_name(%d)", c);
        cr_assert_not_null(msg, "atoll_strerror(%d) is NULL", c);
        cr_assert_gt(strlen(msg), 0, "atoll_strerror(%d) is empty", c);
    }
}

/* INT_MIN cannot be negated: an implementation doing strerror(-code) must not
 * overflow (UBSan catches it in the sanitizer build). */
Test(errors, int_min_is_unknown, .timeout = 10)
{
    cr_assert_str_eq(atoll_error_name(INT_MIN), "UNKNOWN");
    cr_assert_not_null(atoll_strerror(INT_MIN));
}

Test(errors, messages_are_static, .timeout = 10)
{
    const char *a = atoll_strerror(-EINVAL);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", a);
    (void)atoll_strerror(-ENOMEM);
    (void)atoll_strerror(ATOLL_E_PORT_FULL);
    (void)atoll_strerror(-4999);
    cr_assert_str_eq(a, copy, "atoll_strerror's result changed after later calls");
}

Test(errors, uring_messages_are_actionable, .timeout = 10)
{
    const char *dis = atoll_strerror(ATOLL_E_URING_DISABLED);
    cr_assert(strcasestr(dis, "io_uring_disabled") || strcasestr(dis, "seccomp"), "DISABLED text names no fix: '%s'",
              dis);
    const char *mem = atoll_strerror(ATOLL_E_URING_MEMLOCK);
    cr_assert(strcasestr(mem, "memlock") || strcasestr(mem, "ulimit"), "MEMLOCK text names no fix: '%s'", mem);
    const char *nosys = atoll_strerror(ATOLL_E_URING_NOSYS);
    cr_assert(strcasestr(nosys, "kernel"), "NOSYS text does not mention the kernel: '%s'", nosys);
}
