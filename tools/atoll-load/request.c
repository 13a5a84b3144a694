/*
 * tools/atoll-load/request.c: the bytes every slot sends, built once before
 * the run and shared read-only by the isolates: an HTTP/1.1 GET (of / or
 * /bytes/SIZE) with --http, else a SIZE-byte pseudo-random payload that the
 * server echoes back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* Request bytes, built once. */
int build_requests(void)
{
    if (cfg.http) {
        char path[64] = "/";
        if (cfg.scenario == SC_BULK || cfg.size_given)
            snprintf(path, sizeof(path), "/bytes/%llu", (unsigned long long)cfg.size);
        const char *h = cfg.host;
        bool v6 = strchr(h, ':') != NULL;
        int n = asprintf(&cfg.http_req, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: atoll-load\r\n\r\n", path,
                         v6 ? "[" : "", h, v6 ? "]" : "", cfg.port);
        if (n < 0)
            return -ENOMEM;
        cfg.http_req_len = (size_t)n;
        return 0;
    }
    cfg.payload_len = (size_t)cfg.size;
    cfg.payload = malloc(cfg.payload_len);
    if (!cfg.payload)
        return -ENOMEM;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < cfg.payload_len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cfg.payload[i] = (uint8_t)x;
    }
    return 0;
}
