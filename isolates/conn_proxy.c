/*
 * isolates/conn_proxy.c: a server connection's PROXY protocol header: the
 * allow-list at admission, then the header, read from the received
 * segments before anything else (TLS included) sees them.
 */
#include "isolates/net_private.h"
#include "runtime/base/proxy_header.h"

bool atoll__conn_proxy_admit(struct atoll_conn *c, const struct sockaddr_storage *peer)
{
    const struct atoll_server *s = c->server;
    if (!atoll__cidr_list_match(s->proxy_allow, s->proxy_allow_n, peer)) {
        /* Nothing is read from a source that may not speak for others. */
        atoll__conn_fail_reason(c, ATOLL_E_PROXY_DENIED,
                                "PROXY protocol: source not in the server's proxy_allow networks");
        return false;
    }
    c->proxy_wait = true;
    return true;
}

int atoll__conn_proxy_read(struct atoll_conn *c)
{
    if (c->state != ATOLL_CONN_HANDSHAKE || !c->server)
        return -1; /* failed or closed since it was queued */
    /* A buffer as large as the largest header always decides. */
    uint8_t buf[ATOLL_PROXY_MAX];
    size_t n = atoll__conn_seg_peek(c, buf, sizeof(buf));
    atoll_proxy_header h;
    const char *reason = NULL;
    int len = atoll__proxy_parse(buf, n, &h, &reason);
    if (len < 0) {
        atoll__conn_fail_reason(c, ATOLL_E_PROXY_HEADER, reason);
        return -1;
    }
    if (len == 0) {
        if (c->recv_eof) {
            atoll__conn_fail_reason(c, ATOLL_E_PEER_CLOSED, "PROXY protocol: closed before a complete header");
            return -1;
        }
        return 0; /* the next receive brings more */
    }
    atoll__conn_seg_take(c, buf, (size_t)len);
    if (h.has_source)
        atoll__sockaddr_to_address(&h.src, &c->remote, &c->remote_port);
    c->proxy_wait = false;
    return 1;
}
