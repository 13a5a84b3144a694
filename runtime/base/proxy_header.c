/*
 * runtime/base/proxy_header.c: the PROXY protocol header, versions 1 and
 * 2. Strict where the specification is (the signature, the version 1
 * grammar, the lengths), lenient where it asks receivers to be (TLVs are
 * skipped unread, families without an internet address keep the
 * connection's own).
 */
#include "runtime/base/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t atoll_proxy_v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t atoll_proxy_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int atoll_proxy_fail(const char **reason, const char *why)
{
    *reason = why;
    return -1;
}

/* A decimal port, "0" to "65535", no sign, no leading zero. */
static bool atoll_proxy_v1_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool atoll_proxy_v1_addr(int family, const char *s, size_t len, uint16_t port, struct sockaddr_storage *out)
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return inet_pton(AF_INET, text, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return inet_pton(AF_INET6, text, &in6->sin6_addr) == 1;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN...\r\n". */
static int atoll_proxy_v1(const uint8_t *buf, size_t len, atoll_proxy_header *out, const char **reason)
{
    size_t scan = len < ATOLL_PROXY_V1_MAX ? len : ATOLL_PROXY_V1_MAX;
    const uint8_t *cr = NULL;
    for (size_t i = sizeof(atoll_proxy_v1_sig); i < scan; i++) {
        if (buf[i] == '\r') {
            cr = buf + i;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return atoll_proxy_fail(reason, "PROXY header: v1 line has a control byte before its CRLF");
    }
    if (!cr) {
        if (len >= ATOLL_PROXY_V1_MAX)
            return atoll_proxy_fail(reason, "PROXY header: v1 line longer than 107 bytes");
        return 0;
    }
    size_t line_len = (size_t)(cr - buf);
    if (line_len + 2 > ATOLL_PROXY_V1_MAX)
        return atoll_proxy_fail(reason, "PROXY header: v1 line longer than 107 bytes");
    if (line_len + 1 >= len)
        return 0; /* the LF is still to come */
    if (cr[1] != '\n')
        return atoll_proxy_fail(reason, "PROXY header: v1 line not ended by CRLF");
    /* Tokens after "PROXY ", separated by single spaces. */
    const char *tok[6];
    size_t tok_len[6], ntok = 0;
    const char *p = (const char *)buf + sizeof(atoll_proxy_v1_sig), *end = (const char *)cr;
    while (p <= end && ntok < 6) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        tok[ntok] = p;
        tok_len[ntok++] = (size_t)(e - p);
        if (!sp)
            break;
        p = sp + 1;
    }
    memset(out, 0, sizeof(*out));
    out->version = 1;
    if (ntok >= 1 && tok_len[0] == 7 && memcmp(tok[0], "UNKNOWN", 7) == 0)
        return (int)line_len + 2; /* the rest of the line is ignored */
    int family;
    if (ntok >= 1 && tok_len[0] == 4 && memcmp(tok[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (ntok >= 1 && tok_len[0] == 4 && memcmp(tok[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return atoll_proxy_fail(reason, "PROXY header: v1 protocol is not TCP4, TCP6 or UNKNOWN");
    uint16_t sport, dport;
    if (ntok != 5)
        return atoll_proxy_fail(reason, "PROXY header: v1 line does not have 5 fields");
    if (!atoll_proxy_v1_port(tok[3], tok_len[3], &sport) || !atoll_proxy_v1_port(tok[4], tok_len[4], &dport))
        return atoll_proxy_fail(reason, "PROXY header: v1 port is not a number from 0 to 65535");
    if (!atoll_proxy_v1_addr(family, tok[1], tok_len[1], sport, &out->src) ||
        !atoll_proxy_v1_addr(family, tok[2], tok_len[2], dport, &out->dst))
        return atoll_proxy_fail(reason, "PROXY header: v1 address does not match its protocol");
    out->has_source = true;
    return (int)line_len + 2;
}

static int atoll_proxy_v2(const uint8_t *buf, size_t len, atoll_proxy_header *out, const char **reason)
{
    if (len < 16)
        return 0;
    uint8_t version = buf[12] >> 4, command = buf[12] & 0x0f;
    uint8_t family = buf[13] >> 4, transport = buf[13] & 0x0f;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (version != 2)
        return atoll_proxy_fail(reason, "PROXY header: v2 signature with a version other than 2");
    if (command > 1)
        return atoll_proxy_fail(reason, "PROXY header: v2 command is neither LOCAL nor PROXY");
    if (body > ATOLL_PROXY_V2_BODY_MAX)
        return atoll_proxy_fail(reason, "PROXY header: v2 header longer than 16 + 2048 bytes");
    if (len < 16 + body)
        return 0;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    if (command == 0)
        return (int)(16 + body); /* LOCAL: the balancer's own connection */
    if (family > 3 || transport > 2)
        return atoll_proxy_fail(reason, "PROXY header: v2 address family or transport unknown");
    if (family != 0 && transport == 2)
        return atoll_proxy_fail(reason, "PROXY header: v2 header for a datagram flow on a stream");
    const uint8_t *a = buf + 16;
    if (family == 1) {
        if (body < 12)
            return atoll_proxy_fail(reason, "PROXY header: v2 length too short for IPv4 addresses");
        struct sockaddr_in *s = (struct sockaddr_in *)(void *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)(void *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2); /* both in network order already */
        memcpy(&d->sin_port, a + 10, 2);
        out->has_source = true;
    } else if (family == 2) {
        if (body < 36)
            return atoll_proxy_fail(reason, "PROXY header: v2 length too short for IPv6 addresses");
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)(void *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->has_source = true;
    }
    /* UNSPEC and UNIX: no internet address to take; TLVs: not used. */
    return (int)(16 + body);
}

int atoll__proxy_parse(const uint8_t *buf, size_t len, atoll_proxy_header *out, const char **reason)
{
    /* Which signature the bytes so far can still begin. */
    size_t n1 = len < sizeof(atoll_proxy_v1_sig) ? len : sizeof(atoll_proxy_v1_sig);
    size_t n2 = len < sizeof(atoll_proxy_v2_sig) ? len : sizeof(atoll_proxy_v2_sig);
    bool v1 = memcmp(buf, atoll_proxy_v1_sig, n1) == 0;
    bool v2 = memcmp(buf, atoll_proxy_v2_sig, n2) == 0;
    if (!v1 && !v2)
        return atoll_proxy_fail(reason, "PROXY header: missing (the connection does not begin with one)");
    if (len == 0 || (v1 && n1 < sizeof(atoll_proxy_v1_sig)) || (v2 && n2 < sizeof(atoll_proxy_v2_sig)))
        return 0;
    return v1 ? atoll_proxy_v1(buf, len, out, reason) : atoll_proxy_v2(buf, len, out, reason);
}
