/*
 * runtime/base/sock_diag.h: which TCP sockets listen on an address and
 * port, asked of the kernel (NETLINK_SOCK_DIAG), to find sockets in a
 * SO_REUSEPORT group that the runtime did not open. Internal.
 *
 * Thread: any. One netlink socket per call, a dump of the family's
 * listening TCP sockets filtered here; the kernel answers within the calls
 * (nothing waits on the network), like bind() or setsockopt().
 */
#ifndef ATOLL_RUNTIME_SOCK_DIAG_H
#define ATOLL_RUNTIME_SOCK_DIAG_H

#include <stdint.h>

/*
 * Stores in inodes[0..max) the inode numbers of the TCP sockets of `family`
 * (AF_INET, AF_INET6) listening on exactly `addr` (4 or 16 bytes) and
 * `port`, in the caller's network namespace. Returns how many there are
 * (more than max: only max stored) or a negated errno (-EPROTONOSUPPORT
 * without the kernel's inet_diag, -ENOMEM, ...).
 */
int atoll__sock_diag_listeners(int family, const uint8_t *addr, uint16_t port, uint64_t *inodes, uint32_t max);

#endif /* ATOLL_RUNTIME_SOCK_DIAG_H */
