/*
 * tools/atoll-hsbench/link.c: the in-memory link between the client and the
 * server: one byte pipe each way and the wolfSSL I/O callbacks over them.
 * As in isolates/conn_tls.c, wolfSSL only ever reads and writes buffers
 * through callbacks; here the buffers are the peer's, so no socket, system
 * call or copy into the kernel is measured.
 */
#include <string.h>

#include "hsbench.h"

void link_reset(mem_link *l)
{
    l->to_server.head = l->to_server.tail = 0;
    l->to_client.head = l->to_client.tail = 0;
    l->client = (link_end){.in = &l->to_client, .out = &l->to_server};
    l->server = (link_end){.in = &l->to_server, .out = &l->to_client};
}

/* wolfSSL wants bytes: what the peer wrote, or "come back later". */
static int link_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    byte_pipe *p = ((link_end *)ctx)->in;
    (void)ssl;
    size_t avail = p->tail - p->head;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = sz > 0 && (size_t)sz < avail ? (size_t)sz : avail;
    memcpy(buf, p->data + p->head, n);
    p->head += n;
    if (p->head == p->tail)
        p->head = p->tail = 0; /* drained: start over at the front */
    return (int)n;
}

/* wolfSSL produced bytes: append them for the peer. */
static int link_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    byte_pipe *p = ((link_end *)ctx)->out;
    (void)ssl;
    if (sz <= 0)
        return 0;
    if (p->tail + (size_t)sz > LINK_CAP && p->head > 0) {
        memmove(p->data, p->data + p->head, p->tail - p->head);
        p->tail -= p->head;
        p->head = 0;
    }
    size_t room = LINK_CAP - p->tail;
    if (room == 0)
        return WOLFSSL_CBIO_ERR_WANT_WRITE; /* the peer has not read: retried */
    size_t n = (size_t)sz < room ? (size_t)sz : room;
    memcpy(p->data + p->tail, buf, n);
    p->tail += n;
    return (int)n;
}

void link_set_io(WOLFSSL_CTX *ctx)
{
    wolfSSL_CTX_SetIORecv(ctx, link_recv);
    wolfSSL_CTX_SetIOSend(ctx, link_send);
}
