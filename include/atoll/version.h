/**
 * @file
 * version.h: atoll's version, at compile time (macros) and at run time
 * (atoll_version()). docs/abi.md says what a change of each number
 * promises.
 */
#ifndef ATOLL_VERSION_H
#define ATOLL_VERSION_H

#include "common.h"

/** Major version: changes when the API or ABI breaks (docs/abi.md). */
#define ATOLL_VERSION_MAJOR 0
/** Minor version: additions that keep the ABI. */
#define ATOLL_VERSION_MINOR 1
/** Patch version: fixes only. */
#define ATOLL_VERSION_PATCH 0
/** The three numbers as text, "MAJOR.MINOR.PATCH". */
#define ATOLL_VERSION_STRING "0.1.0"
/** The three numbers as one integer, MAJOR * 10000 + MINOR * 100 + PATCH,
 *  for comparisons in the preprocessor. */
#define ATOLL_VERSION_NUMBER (ATOLL_VERSION_MAJOR * 10000 + ATOLL_VERSION_MINOR * 100 + ATOLL_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The version of the library in use, "MAJOR.MINOR.PATCH": the one linked at
 * run time, which may be newer than ATOLL_VERSION_STRING of the headers a
 * program was built with. Never NULL; static storage.
 * Thread: any thread.
 */
ATOLL_API const char *atoll_version(void);

/** The run-time version as ATOLL_VERSION_NUMBER would give it.
 *  Thread: any thread. */
ATOLL_API unsigned atoll_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* ATOLL_VERSION_H */
