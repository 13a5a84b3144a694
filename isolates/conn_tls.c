/*
 * isolates/conn_tls.c: the TLS layer of a connection, wolfSSL driven by
 * per-object custom I/O callbacks over the connection's received segments
 * and output buffer: no socket I/O inside wolfSSL, ever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isolates/net_private.h"

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

/* wolfSSL asks for ciphertext: hand it what the ring delivered. */
static int atoll_tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct atoll_conn *c = ctx;
    (void)ssl;
    if (c->seg_count == 0)
        return c->recv_eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
    return (int)atoll__conn_seg_take(c, (uint8_t *)buf, (size_t)sz);
}

/* wolfSSL produced ciphertext: queue it for the ring's send. */
static int atoll_tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct atoll_conn *c = ctx;
    (void)ssl;
    if (c->fd < 0 || c->tls_dead)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    size_t n = atoll__conn_out_append(c, (const uint8_t *)buf, (size_t)sz);
    return n ? (int)n : WOLFSSL_CBIO_ERR_WANT_WRITE;
}

/* Dart's AlpnCallback: the first of the server's protocols that the client
 * offered (server preference); none in common -> NOACK (the handshake goes
 * on without ALPN) unless strict mode made wolfSSL fail it. */
static int atoll_tls_alpn_select(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
                                 const unsigned char *in, unsigned int inlen, void *arg)
{
    struct atoll_conn *c = wolfSSL_GetIOReadCtx(ssl);
    (void)arg;
    const struct atoll_server *s = c ? c->server : NULL;
    if (!s || !s->alpn_wire)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < s->alpn_len; i += 1u + s->alpn_wire[i]) {
        uint8_t n = s->alpn_wire[i];
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == n && j + 1u + n <= inlen && memcmp(in + j + 1, s->alpn_wire + i + 1, n) == 0) {
                *out = in + j + 1;
                *outlen = n;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

void atoll__tls_set_io(WOLFSSL_CTX *ctx)
{
    wolfSSL_CTX_SetIORecv(ctx, atoll_tls_io_recv);
    wolfSSL_CTX_SetIOSend(ctx, atoll_tls_io_send);
}

int atoll__tls_ctx_for_server(struct atoll_server *s)
{
    atoll_net *net = s->iso->net;
    bool tickets = !s->opts.disable_resumption;
    for (uint32_t i = 0; i < net->ntls_ctxs; i++) {
        if (net->tls_ctxs[i].sctx == s->sctx && net->tls_ctxs[i].tickets == tickets) {
            net->tls_ctxs[i].users++;
            s->wctx = net->tls_ctxs[i].ctx;
            return 0;
        }
    }
    atoll_tls_ctx_entry *e = realloc(net->tls_ctxs, (net->ntls_ctxs + 1) * sizeof(*e));
    if (!e)
        return -ENOMEM;
    net->tls_ctxs = e;
    WOLFSSL_CTX *ctx;
    int ret = atoll__tls_server_ctx_new(s->sctx, tickets ? s->iso->tickets : NULL, &ctx);
    if (ret < 0)
        return ret;
    atoll__tls_set_io(ctx);
    wolfSSL_CTX_set_alpn_select_cb(ctx, atoll_tls_alpn_select, NULL);
    atoll__security_context_acquire(s->sctx);
    e[net->ntls_ctxs++] = (atoll_tls_ctx_entry){.sctx = s->sctx, .tickets = tickets, .ctx = ctx, .users = 1};
    s->wctx = ctx;
    return 0;
}

void atoll__tls_ctx_put(struct atoll_isolate *iso, WOLFSSL_CTX *ctx)
{
    atoll_net *net = iso->net;
    for (uint32_t i = 0; i < net->ntls_ctxs; i++) {
        if (net->tls_ctxs[i].ctx != ctx)
            continue;
        if (--net->tls_ctxs[i].users == 0) {
            /* Connections still alive hold their own reference in wolfSSL. */
            wolfSSL_CTX_free(ctx);
            atoll_security_context_release(net->tls_ctxs[i].sctx);
            net->tls_ctxs[i] = net->tls_ctxs[--net->ntls_ctxs];
        }
        return;
    }
}

int atoll__tls_conn_init(struct atoll_conn *c, WOLFSSL_CTX *ctx)
{
    struct atoll_server *s = c->server;
    c->ssl = wolfSSL_new(ctx);
    if (!c->ssl)
        return ATOLL_E_HANDSHAKE; /* e.g. a context without certificate or key (Dart A4) */
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    int mode = WOLFSSL_VERIFY_NONE;
    if (s->opts.request_client_certificate)
        mode = WOLFSSL_VERIFY_PEER;
    if (s->opts.require_client_certificate)
        mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    wolfSSL_set_verify(c->ssl, mode, NULL);
    if (s->alpn_wire && s->opts.alpn_strict) {
        /* With our callback returning NOACK, wolfSSL's own matching runs
         * over this list and fails with no_application_protocol. */
        char list[8192];
        size_t off = 0;
        for (size_t i = 0; i < s->alpn_len; i += 1u + s->alpn_wire[i]) {
            if (off)
                list[off++] = ',';
            memcpy(list + off, s->alpn_wire + i + 1, s->alpn_wire[i]);
            off += s->alpn_wire[i];
        }
        wolfSSL_UseALPN(c->ssl, list, (unsigned)off, WOLFSSL_ALPN_FAILED_ON_MISMATCH);
    }
    atoll__conn_start_hs_timer(c, s->opts.handshake_timeout_ms);
    return 0;
}

static int atoll_tls_classify(int err)
{
    switch (err) {
    case NO_PEER_CERT:
    case VERIFY_CERT_ERROR:
    case ASN_NO_SIGNER_E:
    case ASN_SIG_CONFIRM_E:
    case ASN_SELF_SIGNED_E:
    case ASN_SIG_OID_E:
    case ASN_PATHLEN_INV_E:
    case ASN_AFTER_DATE_E:
    case ASN_BEFORE_DATE_E:
    case DOMAIN_NAME_MISMATCH:
        return ATOLL_E_CERTIFICATE;
    case UNKNOWN_ALPN_PROTOCOL_NAME_E:
        return ATOLL_E_ALPN;
    case SOCKET_PEER_CLOSED_E:
    case SOCKET_ERROR_E:
        return ATOLL_E_PEER_CLOSED;
    case MEMORY_E:
        return -ENOMEM; /* the host's condition, not the peer's doing */
    default:
        return ATOLL_E_HANDSHAKE;
    }
}

static void atoll_tls_fail(struct atoll_conn *c, int err)
{
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)err, reason, sizeof(reason));
    int status = atoll_tls_classify(err);
    if (status == ATOLL_E_PEER_CLOSED)
        snprintf(reason, sizeof(reason), "%s", atoll_strerror(ATOLL_E_PEER_CLOSED));
    atoll__conn_kick_send(c); /* let the alert out */
    atoll__conn_fail_reason(c, status, reason);
}

void atoll__tls_handshake_step(struct atoll_conn *c)
{
    if (c->state != ATOLL_CONN_HANDSHAKE || (!c->server && !c->client))
        return; /* failed or closed since it was queued */
    int r = c->client ? wolfSSL_connect(c->ssl) : wolfSSL_accept(c->ssl);
    atoll__conn_kick_send(c);
    if (r != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(c->ssl, r);
        if (err == WOLFSSL_ERROR_WANT_READ) {
            if (c->recv_eof)
                atoll__conn_fail(c, ATOLL_E_PEER_CLOSED);
            return;
        }
        if (err == WOLFSSL_ERROR_WANT_WRITE)
            return; /* retried when the send completes */
        atoll_tls_fail(c, err);
        return;
    }
    if (c->hs_timer) {
        atoll_timer_cancel(c->hs_timer);
        c->hs_timer = NULL;
    }
    atoll__certificate_from_peer(c->ssl, &c->peer_cert);
    char *name = NULL;
    unsigned short len = 0;
    if (wolfSSL_ALPN_GetProtocol(c->ssl, &name, &len) == WOLFSSL_SUCCESS && name && len) {
        c->alpn = malloc(len + 1u);
        if (c->alpn) {
            memcpy(c->alpn, name, len);
            c->alpn[len] = '\0';
        }
    }
    c->resumed = wolfSSL_session_reused(c->ssl) == 1;
    c->state = ATOLL_CONN_OPEN;
    if (c->client) {
        struct atoll_connect_req *req = c->client;
        c->client = NULL;
        atoll__client_done(req, c, 0);
    } else {
        struct atoll_server *s = c->server;
        c->server = NULL;
        atoll__server_conn_done(s, c, 0, NULL);
    }
    /* Application data may have come with the client's Finished. */
    atoll__tls_pump_input(c);
    if (atoll__tls_available(c) || c->recv_eof)
        atoll__conn_schedule(c);
}

size_t atoll__tls_available(const struct atoll_conn *c)
{
    if (c->state != ATOLL_CONN_OPEN || c->shut_rd)
        return 0;
    int n = wolfSSL_pending(c->ssl);
    return n > 0 ? (size_t)n : 0;
}

/*
 * TLS as a buffer transform, input side. No plaintext buffer of ours: the
 * next record is decrypted in place inside wolfSSL's input buffer (peek),
 * which is what makes on_read due, and atoll_conn_read copies it straight
 * into the caller's buffer. Per record: ring buffer -> wolfSSL input (one
 * copy, the I/O callback), decrypt in place, -> caller (one copy).
 */
void atoll__tls_pump_input(struct atoll_conn *c)
{
    if (c->state != ATOLL_CONN_OPEN || c->shut_rd || c->tls_eof || wolfSSL_pending(c->ssl) > 0 ||
        (c->seg_count == 0 && !c->recv_eof))
        return;
    uint8_t probe;
    for (;;) {
        size_t before = atoll__conn_seg_bytes(c);
        int r = wolfSSL_peek(c->ssl, &probe, 1);
        if (r > 0)
            break;
        int err = wolfSSL_get_error(c->ssl, r);
        if (err == WOLFSSL_ERROR_ZERO_RETURN || err == SOCKET_PEER_CLOSED_E) {
            c->tls_eof = true; /* close_notify (or EOF): the read side is done */
            break;
        }
        if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE) {
            atoll__conn_kick_send(c); /* the alert wolfSSL queued */
            c->tls_dead = true;
            atoll__conn_fail(c, -EPROTO);
            return;
        }
        /* WANT_READ is not always "no input left": after a post-handshake
         * message (a TLS 1.3 NewSessionTicket, a KeyUpdate) wolfSSL_peek
         * returns it once its own input buffer is empty, with records
         * still waiting in our segments. Peek again while it consumed
         * some: a peer sending tickets and its response in one flight
         * would otherwise wait for data that already arrived. */
        if (err != WOLFSSL_ERROR_WANT_READ || c->seg_count == 0 || atoll__conn_seg_bytes(c) == before)
            break;
    }
    atoll__conn_kick_send(c); /* a post-handshake message may have answered */
}

ssize_t atoll__tls_read(struct atoll_conn *c, void *buf, size_t len)
{
    size_t avail = atoll__tls_available(c);
    size_t n = len < avail ? len : avail;
    if (n == 0)
        return 0;
    /* Served from the record decrypted by the last peek: no new input is
     * read, no callback of ours runs. */
    int r = wolfSSL_read(c->ssl, buf, (int)n);
    if (r <= 0) {
        c->tls_dead = true;
        atoll__conn_fail(c, -EPROTO);
        return ATOLL_E_CLOSED;
    }
    /* The record is read out: if more ciphertext waits in our segments
     * (wolfSSL's own input holds at most the record it asked for), the
     * next dispatch decrypts it; otherwise the next recv brings it. */
    if (!wolfSSL_pending(c->ssl) && (c->seg_count || c->recv_eof))
        atoll__conn_schedule(c);
    return r;
}

/* Block ciphers pad a short record by up to a block more than a full one;
 * AEAD suites add a fixed amount. A tail is let in only with this margin. */
#define ATOLL_TLS_PAD_MARGIN 16u

/* The most plaintext, up to `len`, that wolfSSL can seal into `room` bytes
 * of output: whole records of the negotiated fragment size; a shorter
 * record only for the caller's last bytes. Never a record cut short by the
 * room left (that would send small records while a send is in flight and
 * the buffer cannot compact): 0 then, and the write waits for room. The
 * record sizes are asked of wolfSSL once per connection, not per write. */
static size_t atoll_tls_fit(struct atoll_conn *c, size_t len, size_t room)
{
    if (!c->tls_frag) {
        int frag = wolfSSL_GetMaxOutputSize(c->ssl);
        int whole = frag > 0 ? wolfSSL_GetOutputSize(c->ssl, frag) : -1;
        if (frag <= 0 || whole <= frag)
            return len; /* no figure: let wolfSSL's own flow control decide */
        c->tls_frag = (uint32_t)frag;
        c->tls_overhead = (uint32_t)(whole - frag);
    }
    size_t whole = (size_t)c->tls_frag + c->tls_overhead;
    size_t records = room / whole, n = records * c->tls_frag;
    if (n >= len)
        return len;
    /* The caller's tail, shorter than a record. */
    size_t tail = len - n;
    if (tail < c->tls_frag && tail + c->tls_overhead + ATOLL_TLS_PAD_MARGIN <= room - records * whole)
        n += tail;
    return n;
}

ssize_t atoll__tls_write(struct atoll_conn *c, const void *buf, size_t len)
{
    if (c->wpend_len)
        return 0; /* a record is waiting to be retried */
    /* Hand wolfSSL only what its records leave room for in the output
     * buffer: then it never stops half way (WANT_WRITE), and the caller's
     * plaintext needs no copy kept for a retry. */
    /* What `len` takes sealed, about: a record header and tag per record. */
    ssize_t room = atoll__conn_out_room(c, len + (len / 16384 + 1) * 64);
    if (room < 0)
        return room;
    len = atoll_tls_fit(c, len, (size_t)room);
    if (len == 0)
        return 0;
    int r = wolfSSL_write(c->ssl, buf, (int)len);
    if (r > 0)
        return r;
    int err = wolfSSL_get_error(c->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_WRITE) {
        /* wolfSSL wants the same call again later; the caller's buffer
         * will be gone, so keep an identical copy to retry with. */
        c->wpend = malloc(len);
        if (!c->wpend)
            return -ENOMEM;
        memcpy(c->wpend, buf, len);
        c->wpend_len = (uint32_t)len;
        return (ssize_t)len;
    }
    c->tls_dead = true;
    atoll__conn_fail(c, -EPROTO);
    return ATOLL_E_CLOSED;
}

void atoll__tls_flush_pending(struct atoll_conn *c)
{
    if (!c->wpend_len)
        return;
    int r = wolfSSL_write(c->ssl, c->wpend, (int)c->wpend_len);
    if (r > 0) {
        free(c->wpend);
        c->wpend = NULL;
        c->wpend_len = 0;
        return;
    }
    if (wolfSSL_get_error(c->ssl, r) != WOLFSSL_ERROR_WANT_WRITE) {
        c->tls_dead = true;
        atoll__conn_fail(c, -EPROTO);
    }
}

void atoll__tls_shutdown_send(struct atoll_conn *c)
{
    if (!c->ssl || c->tls_dead || c->notify_sent)
        return;
    if (c->wpend_len) {
        /* wolfSSL is inside a write that must be retried as it was: no
         * other record may start before it. close_notify follows it. */
        c->notify_wanted = true;
        return;
    }
    c->notify_wanted = false;
    c->notify_sent = true;
    wolfSSL_shutdown(c->ssl); /* queues close_notify; the peer's is not awaited */
    atoll__conn_kick_send(c);
}

void atoll__tls_thread_exit(void)
{
#ifdef FP_ECC
    /* wolfSSL's fixed-point ECC cache is per thread: free it before the
     * isolate's thread ends, or every exited isolate leaks it. */
    wc_ecc_fp_free();
#endif
}
