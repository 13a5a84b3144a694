/*
 * tests/fuzz/fuzz_proxy.c: the PROXY protocol header parser
 * (runtime/base/proxy_header.c) and the allow-list parser
 * (runtime/base/cidr.c), on hostile bytes.
 *
 * Invariants, each an abort when broken:
 * - the parser returns -1 (with a reason), 0, or a length within the input
 *   and within ATOLL_PROXY_MAX;
 * - it decides on a prefix: once a prefix decides (-1 or a length), every
 *   longer input decides the same way (a header's end never moves);
 * - a header that carries a source has an AF_INET or AF_INET6 one;
 * - an allow-list that parses has 1..256 entries, prefixes within the
 *   family, no host bit set, and matches its own networks' addresses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "runtime/base/cidr.h"
#include "runtime/base/proxy_header.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_proxy: invariant broken: %s (line %d)\n", #cond, __LINE__);                          \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

static int parse(const uint8_t *data, size_t len, atoll_proxy_header *h)
{
    const char *reason = NULL;
    int r = atoll__proxy_parse(data, len, h, &reason);
    CHECK(r >= -1);
    CHECK(r != -1 || (reason && strncmp(reason, "PROXY header: ", 14) == 0));
    CHECK(r <= (int)len && r <= ATOLL_PROXY_MAX);
    if (r > 0 && h->has_source)
        CHECK(h->src.ss_family == h->dst.ss_family && (h->src.ss_family == AF_INET || h->src.ss_family == AF_INET6));
    return r;
}

static void fuzz_header(const uint8_t *data, size_t len)
{
    atoll_proxy_header h;
    int whole = parse(data, len, &h);
    /* The first prefix that decides, found by halving, and a few around. */
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (parse(data, mid, &h) != 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < len || whole != 0) {
        int first = parse(data, lo, &h);
        CHECK(first != 0);
        CHECK(first == whole); /* decided once, decided for good */
        if (lo > 0)
            CHECK(parse(data, lo - 1, &h) == 0);
    }
}

static void fuzz_cidr(const uint8_t *data, size_t len)
{
    char *text = malloc(len + 1);
    if (!text)
        return;
    memcpy(text, data, len);
    text[len] = '\0';
    atoll_cidr *list = NULL;
    size_t n = 0;
    if (atoll__cidr_list_parse(text, &list, &n) == 0) {
        CHECK(n >= 1 && n <= 256);
        for (size_t i = 0; i < n; i++) {
            int bits = list[i].family == AF_INET ? 32 : 128;
            CHECK(list[i].family == AF_INET || list[i].family == AF_INET6);
            CHECK(list[i].prefix <= bits);
            for (int b = list[i].prefix; b < bits; b++)
                CHECK(!(list[i].bytes[b / 8] & (0x80u >> (b % 8))));
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            if (list[i].family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;
                in->sin_family = AF_INET;
                memcpy(&in->sin_addr, list[i].bytes, 4);
            } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
                in6->sin6_family = AF_INET6;
                memcpy(&in6->sin6_addr, list[i].bytes, 16);
            }
            CHECK(atoll__cidr_list_match(list, n, &ss));
        }
        free(list);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Byte 0: bit 0 picks the allow-list parser; the rest is its input. */
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_cidr(data + 1, size - 1);
    else
        fuzz_header(data + 1, size - 1);
    return 0;
}
