/*
 * runtime/base/proxy_header.h: the PROXY protocol header (HAProxy's
 * proxy-protocol.txt, versions 1 and 2) as a pure parser: bytes in, the
 * addresses it carries out. Internal.
 */
#ifndef ATOLL_BASE_PROXY_HEADER_H
#define ATOLL_BASE_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Version 1: the whole line, "PROXY" to CRLF, is at most 107 bytes (the
 * specification's own bound). */
#define ATOLL_PROXY_V1_MAX 107
/* Version 2: the 16-byte fixed part and up to this many bytes of
 * addresses and TLVs (IPv6 addresses take 36, a UNIX pair 216; the rest is
 * room for the TLVs balancers add). Longer is refused as oversized. */
#define ATOLL_PROXY_V2_BODY_MAX 2048
/* The most bytes a header can take: a buffer this large always decides. */
#define ATOLL_PROXY_MAX (16 + ATOLL_PROXY_V2_BODY_MAX)

typedef struct atoll_proxy_header {
    int version; /* 1 or 2 */
    /* false for v2 LOCAL (the balancer's own health check), v1 UNKNOWN and
     * v2 families that carry no internet address (UNSPEC, UNIX): the
     * connection keeps its own addresses, as the specification asks. */
    bool has_source;
    struct sockaddr_storage src, dst; /* with has_source */
} atoll_proxy_header;

/* Parses the PROXY header at the start of buf[0, len). Returns its length
 * (> 0) once all of it is there, 0 while more bytes are needed to decide,
 * or -1 for bytes that cannot be a valid header, with *reason set to a
 * static sentence ("PROXY header: ..."). Decides as early as the bytes
 * allow: a TLS ClientHello fails at its first byte. Never reads past len.
 * Thread: any. */
int atoll__proxy_parse(const uint8_t *buf, size_t len, atoll_proxy_header *out, const char **reason);

#endif /* ATOLL_BASE_PROXY_HEADER_H */
