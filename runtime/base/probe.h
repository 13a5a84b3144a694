/*
 * runtime/base/probe.h: what the kernel and wolfSSL offer, found once per
 * runtime (runtime/base/probe.c, wolfssl_info.c). Internal.
 */
#ifndef ATOLL_RUNTIME_BASE_PROBE_H
#define ATOLL_RUNTIME_BASE_PROBE_H

#include <stdint.h>

#include "atoll/error.h"
#include "atoll/runtime.h"

/* Maps an io_uring_setup errno to atoll's code (EPERM -> URING_DISABLED, ...). */
int atoll__uring_setup_error(int err);
/* Probes io_uring with the isolates' flags; fills info and the ring flags
 * to use. 0 or one of the ATOLL_E_URING_* codes. Any thread. */
int atoll__probe(atoll_runtime_info *info, uint32_t *ring_flags);
/* Fills the wolfSSL fields of info (version, build, AES-NI, asm). */
void atoll__wolfssl_info(atoll_runtime_info *info);

#endif /* ATOLL_RUNTIME_BASE_PROBE_H */
