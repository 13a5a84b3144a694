/*
 * tests/tsan/runner.c: runs the tests registered through the stand-in
 * criterion.h (ThreadSanitizer build only) and prints the plain closing line
 * "N passed, N failed".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "criterion/criterion.h"

#define CRS_MAX_TESTS 256

static struct {
    const char *suite, *name;
    crs_test_fn fn;
} crs_tests[CRS_MAX_TESTS];
static int crs_count, crs_passed;

void crs_register(const char *suite, const char *name, crs_test_fn fn)
{
    if (crs_count == CRS_MAX_TESTS) {
        fprintf(stderr, "tsan runner: more than %d tests\n", CRS_MAX_TESTS);
        exit(2);
    }
    crs_tests[crs_count].suite = suite;
    crs_tests[crs_count].name = name;
    crs_tests[crs_count].fn = fn;
    crs_count++;
}

void crs_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n  ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%d passed, 1 failed\n", crs_passed);
    exit(1);
}

int main(void)
{
    /* Constructors registered in reverse file order on some toolchains:
     * run in registration order either way, which is deterministic. */
    for (int i = 0; i < crs_count; i++) {
        fprintf(stderr, "[RUN ] %s::%s\n", crs_tests[i].suite, crs_tests[i].name);
        crs_tests[i].fn();
        crs_passed++;
        fprintf(stderr, "[PASS] %s::%s\n", crs_tests[i].suite, crs_tests[i].name);
    }
    printf("%d passed, 0 failed\n", crs_passed);
    return 0;
}
