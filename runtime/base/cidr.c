/*
 * runtime/base/cidr.c: lists of networks and the membership test.
 */
#include "runtime/base/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define ATOLL_CIDR_MAX_ITEMS 256

static bool atoll_cidr_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* One item, text[0, len) without blanks around it. */
static int atoll_cidr_parse_one(const char *text, size_t len, atoll_cidr *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return -EINVAL;
        prefix = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            prefix = prefix * 10 + (*p - '0');
        }
    }
    memset(out, 0, sizeof(*out));
    int bits;
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
        out->family = AF_INET6;
        bits = 128;
    } else {
        return -EINVAL;
    }
    if (prefix > bits)
        return -EINVAL;
    out->prefix = (uint8_t)(prefix < 0 ? bits : prefix);
    /* Clear the host bits, so matching compares whole bytes and one mask. */
    for (int i = out->prefix; i < bits; i++)
        out->bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

int atoll__cidr_list_parse(const char *text, atoll_cidr **out, size_t *count)
{
    if (!text || !out || !count)
        return -EINVAL;
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    if (n > ATOLL_CIDR_MAX_ITEMS)
        return -EINVAL;
    atoll_cidr *list = calloc(n, sizeof(*list));
    if (!list)
        return -ENOMEM;
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && atoll_cidr_blank(*b))
            b++;
        while (e > b && atoll_cidr_blank(e[-1]))
            e--;
        if (atoll_cidr_parse_one(b, (size_t)(e - b), &list[i]) < 0) {
            free(list);
            return -EINVAL;
        }
        p = *end ? end + 1 : end;
    }
    *out = list;
    *count = n;
    return 0;
}

static bool atoll_cidr_contains(const atoll_cidr *c, const uint8_t *bytes)
{
    size_t whole = c->prefix / 8u;
    if (memcmp(c->bytes, bytes, whole) != 0)
        return false;
    unsigned rest = c->prefix % 8u;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (bytes[whole] & mask) == c->bytes[whole];
}

bool atoll__cidr_list_match(const atoll_cidr *list, size_t n, const struct sockaddr_storage *addr)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int family;
    uint8_t bytes[16];
    if (addr->ss_family == AF_INET) {
        family = AF_INET;
        memcpy(bytes, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
    } else if (addr->ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
        if (memcmp(b, v4_mapped, sizeof(v4_mapped)) == 0) {
            family = AF_INET; /* a dual-stack listener's IPv4 client */
            memcpy(bytes, b + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(bytes, b, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && atoll_cidr_contains(&list[i], bytes))
            return true;
    return false;
}
