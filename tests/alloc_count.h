/*
 * tests/alloc_count.h: a count of the process's live heap blocks, for tests
 * that check "allocations back to baseline" without a sanitizer.
 *
 * alloc_count.c replaces malloc and its family (glibc documents replacing
 * them: every caller in the process, libc and wolfSSL included, then goes
 * through it) and forwards to glibc's own implementation. Under ASan or
 * TSan the sanitizer owns the allocator: the count is not kept, and
 * alloc_count_live() returns -1 (LeakSanitizer checks leaks there).
 */
#ifndef ATOLL_TESTS_ALLOC_COUNT_H
#define ATOLL_TESTS_ALLOC_COUNT_H

/* Blocks allocated and not yet freed, or -1 when not counted. Thread: any. */
long alloc_count_live(void);

#endif
