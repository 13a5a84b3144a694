/**
 * @file
 * atoll/net.h: internet addresses as atoll passes them around.
 */
#ifndef ATOLL_NET_H
#define ATOLL_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An IPv4 or IPv6 address (Dart's InternetAddress): raw bytes, numeric
 *  text, and the host string it was looked up from. A plain value. */
typedef struct atoll_address {
    int family;        /**< AF_INET or AF_INET6 */
    uint8_t bytes[16]; /**< network order; 4 bytes used for AF_INET */
    char text[46];     /**< numeric form, e.g. "127.0.0.1", "::ffff:127.0.0.1" */
    char host[256];    /**< the string the address came from (Dart's `host`);
                            equals `text` for addresses not looked up */
} atoll_address;

/**
 * Parses a numeric IPv4 or IPv6 address (no host names; a "%scope" suffix is
 * refused). Fills `out` with host = the string given.
 * Errors: -EINVAL (NULL, not numeric).
 * Thread: any thread.
 */
ATOLL_API int atoll_address_parse(const char *numeric, atoll_address *out);

/** True when `a` is an IPv4-mapped IPv6 address (\::ffff:a.b.c.d).
 *  Thread: any thread. */
ATOLL_API bool atoll_address_is_v4_mapped(const atoll_address *a);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_NET_H */
