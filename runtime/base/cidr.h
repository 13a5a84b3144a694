/*
 * runtime/base/cidr.h: lists of networks, "CIDR[,CIDR...]", and the test
 * of an address against them (the PROXY protocol's allow-list). Internal.
 */
#ifndef ATOLL_BASE_CIDR_H
#define ATOLL_BASE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct atoll_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t prefix;
    uint8_t bytes[16]; /* network order, host bits cleared */
} atoll_cidr;

/* Parses "CIDR[,CIDR...]": each a numeric IPv4 or IPv6 address with an
 * optional "/prefix" (none: the single address), blanks around items
 * allowed. Host bits below the prefix are cleared ("10.1.2.3/8" is
 * 10.0.0.0/8). On success *out (free() it) holds *count >= 1 entries.
 * Errors: -EINVAL (NULL, empty, an item that is not a network, a prefix
 * out of range, more than 256 items), -ENOMEM. Thread: any. */
int atoll__cidr_list_parse(const char *text, atoll_cidr **out, size_t *count);

/* True when `addr` (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts
 * as its IPv4 address) is in one of the n networks. Thread: any. */
bool atoll__cidr_list_match(const atoll_cidr *list, size_t n, const struct sockaddr_storage *addr);

#endif /* ATOLL_BASE_CIDR_H */
