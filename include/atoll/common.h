/**
 * @file
 * atoll/common.h: what every public header needs.
 */
#ifndef ATOLL_COMMON_H
#define ATOLL_COMMON_H

/* Marks the public API; the shared library hides everything else. */
#if defined(__GNUC__)
#define ATOLL_API __attribute__((visibility("default")))
#else
#define ATOLL_API
#endif

#endif /* ATOLL_COMMON_H */
