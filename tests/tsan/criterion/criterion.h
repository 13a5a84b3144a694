/*
 * tests/tsan/criterion/criterion.h: a minimal stand-in for Criterion's
 * assertion and registration macros, used only by the ThreadSanitizer build.
 *
 * Criterion 2.4 cannot run under ThreadSanitizer (its runner maps an
 * "inheritable arena" at addresses TSan reserves and aborts:
 * Snaipe/Criterion#274). So the tsan preset compiles the very same test
 * sources against this header and runs every test in one process, in order,
 * with no fork. A failed assertion prints where and why, then ends the
 * process with status 1 (the runtime under test may hold threads, so going
 * on to the next test would not be trustworthy).
 */
#ifndef ATOLL_TESTS_TSAN_CRITERION_H
#define ATOLL_TESTS_TSAN_CRITERION_H

#include <stdio.h>
#include <string.h>

typedef void (*crs_test_fn)(void);
void crs_register(const char *suite, const char *name, crs_test_fn fn);
void crs_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

#define Test(suite, name, ...)                                                                                         \
    static void crs_test_##suite##_##name(void);                                                                       \
    __attribute__((constructor)) static void crs_reg_##suite##_##name(void)                                            \
    {                                                                                                                  \
        crs_register(#suite, #name, crs_test_##suite##_##name);                                                        \
    }                                                                                                                  \
    static void crs_test_##suite##_##name(void)

/* Suite options (init/fini hooks, timeouts) are not needed by the suites
 * run here; ctest's timeout bounds the binary. */
#define TestSuite(suite, ...) _Static_assert(1, #suite)

#define cr_assert(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            crs_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                                                      \
    } while (0)
#define cr_assert_not(c, ...)        cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)      cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)     cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)      cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)      cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)     cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)     cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...)       cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...)   cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)  cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_log_info(...)             (fprintf(stderr, "[info] " __VA_ARGS__), fputc('\n', stderr))

#endif /* ATOLL_TESTS_TSAN_CRITERION_H */
