/* runtime/base/address.c: atoll_address helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "atoll/net.h"

int atoll_address_parse(const char *numeric, atoll_address *out)
{
    if (!numeric || !out || strchr(numeric, '%'))
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, numeric, out->bytes) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, numeric, out->bytes) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    inet_ntop(out->family, out->bytes, out->text, sizeof(out->text));
    snprintf(out->host, sizeof(out->host), "%s", numeric);
    return 0;
}

bool atoll_address_is_v4_mapped(const atoll_address *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return a && a->family == AF_INET6 && memcmp(a->bytes, prefix, sizeof(prefix)) == 0;
}
