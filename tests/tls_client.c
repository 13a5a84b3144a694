/* tests/tls_client.c: see tls_client.h. */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <atoll/error.h>

struct tc_conn {
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    int fd;
    int io_errno; /* errno of the last failed recv/send */
    bool handshake_done;
    char alpn[256];
    char error[256];
};

/* Test helper: a per-thread buffer is the simplest way to explain a failed
 * connect to the caller without handing back a half-made connection. */
static _Thread_local char connect_error[256];

static void fmt_error(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fmt_error(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Own I/O callbacks rather than wolfSSL_set_fd: MSG_NOSIGNAL (a server that
 * closed first must not kill the test with SIGPIPE) and the errno kept for
 * the error text. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    tc_conn *c = arg;
    for (;;) {
        ssize_t n = recv(c->fd, buf, (size_t)sz, 0);
        if (n > 0)
            return (int)n;
        if (n == 0)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        if (errno == EINTR)
            continue;
        c->io_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WOLFSSL_CBIO_ERR_WANT_READ; /* SO_RCVTIMEO expired */
        if (errno == ECONNRESET)
            return WOLFSSL_CBIO_ERR_CONN_RST;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    tc_conn *c = arg;
    for (;;) {
        ssize_t n = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        c->io_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WOLFSSL_CBIO_ERR_WANT_WRITE; /* SO_SNDTIMEO expired */
        if (errno == EPIPE)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        if (errno == ECONNRESET)
            return WOLFSSL_CBIO_ERR_CONN_RST;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

/* Maps a failed wolfSSL call to our code and records why in `buf`. */
static int ssl_failure(tc_conn *c, int ret, const char *what, char *buf, size_t cap)
{
    int err = wolfSSL_get_error(c->ssl, ret);
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)err, reason, sizeof(reason));
    int code;
    switch (err) {
    case WOLFSSL_ERROR_WANT_READ:
    case WOLFSSL_ERROR_WANT_WRITE:
        code = ATOLL_E_TIMEDOUT;
        snprintf(reason, sizeof(reason), "timed out");
        break;
    case WOLFSSL_ERROR_ZERO_RETURN:
    case WOLFSSL_ERROR_SYSCALL:
    case SOCKET_PEER_CLOSED_E:
    case SOCKET_ERROR_E:
        code = c->handshake_done ? -ECONNRESET : ATOLL_E_PEER_CLOSED;
        break;
    case ASN_NO_SIGNER_E:
    case ASN_BEFORE_DATE_E:
    case ASN_AFTER_DATE_E:
    case ASN_SIG_CONFIRM_E:
    case ASN_SELF_SIGNED_E:
    case DOMAIN_NAME_MISMATCH:
    case IPADDR_MISMATCH:
    case VERIFY_CERT_ERROR:
        code = ATOLL_E_CERTIFICATE;
        break;
    default:
        code = c->handshake_done ? -EIO : ATOLL_E_HANDSHAKE;
        break;
    }
    fmt_error(buf, cap, "%s: %s (wolfSSL error %d%s%s)", what, reason, err, c->io_errno ? ", " : "",
              c->io_errno ? strerror(c->io_errno) : "");
    return code;
}

static int connect_socket(tc_conn *c, const tc_options *o, const char *host)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)o->port);
    struct addrinfo hints = {.ai_family = o->family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        fmt_error(connect_error, sizeof(connect_error), "lookup %s: %s", host, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        /* SO_SNDTIMEO also bounds a blocking connect() on Linux. */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        int cr = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (cr < 0 && errno == EINTR) {
            /* A signal cut the wait short; the connect goes on: wait for
             * it to finish and take its outcome. */
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int pr;
            do
                pr = poll(&p, 1, timeout_ms);
            while (pr < 0 && errno == EINTR);
            int err = 0;
            socklen_t el = sizeof(err);
            if (pr == 0)
                errno = EINPROGRESS;
            else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                err = errno;
            cr = pr > 0 && err == 0 ? 0 : -1;
            if (pr > 0 && err)
                errno = err;
        }
        if (cr == 0) {
            c->fd = fd;
            rc = 0;
            break;
        }
        rc = errno == EINPROGRESS ? ATOLL_E_TIMEDOUT : -errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (rc != 0)
        fmt_error(connect_error, sizeof(connect_error), "connect %s port %u: %s", host, (unsigned)o->port,
                  rc == ATOLL_E_TIMEDOUT ? "timed out" : strerror(-rc));
    return rc;
}

static bool is_numeric_host(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static int setup_ctx(tc_conn *c, const tc_options *o)
{
    c->ctx = wolfSSL_CTX_new(o->tls13_only   ? wolfTLSv1_3_client_method()
                             : o->tls12_only ? wolfTLSv1_2_client_method()
                                             : wolfSSLv23_client_method());
    if (c->ctx == NULL) {
        fmt_error(connect_error, sizeof(connect_error), "wolfSSL_CTX_new failed");
        return -ENOMEM;
    }
    wolfSSL_CTX_SetMinVersion(c->ctx, o->tls13_only ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2);
    int rc = WOLFSSL_SUCCESS;
    const char *what = "";
    if (o->ca_file != NULL) {
        what = o->ca_file;
        rc = wolfSSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL);
        wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    if (rc == WOLFSSL_SUCCESS && o->cert_file != NULL) {
        what = o->cert_file;
        rc = wolfSSL_CTX_use_certificate_chain_file(c->ctx, o->cert_file);
    }
    if (rc == WOLFSSL_SUCCESS && o->key_file != NULL) {
        what = o->key_file;
        rc = wolfSSL_CTX_use_PrivateKey_file(c->ctx, o->key_file, WOLFSSL_FILETYPE_PEM);
    }
    if (rc == WOLFSSL_SUCCESS && o->ciphers != NULL) {
        what = o->ciphers;
        rc = wolfSSL_CTX_set_cipher_list(c->ctx, o->ciphers);
    }
    if (rc != WOLFSSL_SUCCESS) {
        char reason[96];
        wolfSSL_ERR_error_string_n((unsigned long)rc, reason, sizeof(reason));
        fmt_error(connect_error, sizeof(connect_error), "client setup, %s: %s", what, reason);
        return -EINVAL;
    }
    return 0;
}

static int setup_ssl(tc_conn *c, const tc_options *o, const char *host)
{
    c->ssl = wolfSSL_new(c->ctx);
    if (c->ssl == NULL) {
        fmt_error(connect_error, sizeof(connect_error), "wolfSSL_new failed");
        return -ENOMEM;
    }
    wolfSSL_SSLSetIORecv(c->ssl, io_recv);
    wolfSSL_SSLSetIOSend(c->ssl, io_send);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (!is_numeric_host(host)) {
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, host, (unsigned short)strlen(host));
        if (o->ca_file != NULL)
            wolfSSL_check_domain_name(c->ssl, host);
    }
    if (o->alpn != NULL) {
        /* wolfSSL_UseALPN takes a mutable list. */
        char list[256];
        snprintf(list, sizeof(list), "%s", o->alpn);
        if (wolfSSL_UseALPN(c->ssl, list, (unsigned)strlen(list), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
            WOLFSSL_SUCCESS) {
            fmt_error(connect_error, sizeof(connect_error), "bad ALPN list '%s'", o->alpn);
            return -EINVAL;
        }
    }
    for (const int *g = o->key_shares; g != NULL && *g != 0; g++) {
        if (wolfSSL_UseKeyShare(c->ssl, (word16)*g) != WOLFSSL_SUCCESS) {
            fmt_error(connect_error, sizeof(connect_error), "cannot make a key share for group %d", *g);
            return -EINVAL;
        }
    }
    /* A refused session (nothing to resume with) is a full handshake, as for
     * any client; tc_resumed() tells. */
    if (o->resume != NULL)
        (void)wolfSSL_set_session(c->ssl, o->resume);
    return 0;
}

int tc_connect(tc_conn **out, const tc_options *o)
{
    if (out == NULL || o == NULL)
        return -EINVAL;
    *out = NULL;
    connect_error[0] = '\0';
    tc_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fd = -1;
    const char *host = o->host != NULL ? o->host : "127.0.0.1";

    int rc = setup_ctx(c, o);
    if (rc == 0)
        rc = connect_socket(c, o, host);
    if (rc == 0)
        rc = setup_ssl(c, o, host);
    if (rc == 0) {
        int ret = wolfSSL_connect(c->ssl);
        if (ret != WOLFSSL_SUCCESS)
            rc = ssl_failure(c, ret, "handshake", connect_error, sizeof(connect_error));
    }
    if (rc != 0) {
        tc_close(c);
        return rc;
    }
    c->handshake_done = true;
    char *name = NULL;
    unsigned short len = 0;
    if (wolfSSL_ALPN_GetProtocol(c->ssl, &name, &len) == WOLFSSL_SUCCESS && name != NULL && len < sizeof(c->alpn)) {
        memcpy(c->alpn, name, len);
        c->alpn[len] = '\0';
    }
    *out = c;
    return 0;
}

int tc_write_all(tc_conn *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int n = wolfSSL_write(c->ssl, p, chunk);
        if (n <= 0)
            return ssl_failure(c, n, "write", c->error, sizeof(c->error));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t tc_read(tc_conn *c, void *buf, size_t len)
{
    int chunk = len > INT_MAX ? INT_MAX : (int)len;
    int n = wolfSSL_read(c->ssl, buf, chunk);
    if (n > 0)
        return n;
    int err = wolfSSL_get_error(c->ssl, n);
    if (err == WOLFSSL_ERROR_ZERO_RETURN || err == SOCKET_PEER_CLOSED_E ||
        (err == WOLFSSL_ERROR_SYSCALL && c->io_errno == 0))
        return 0; /* close_notify, or EOF without one */
    return ssl_failure(c, n, "read", c->error, sizeof(c->error));
}

const char *tc_selected_alpn(tc_conn *c)
{
    return c->alpn[0] != '\0' ? c->alpn : NULL;
}

WOLFSSL_SESSION *tc_session(tc_conn *c)
{
    return wolfSSL_get1_session(c->ssl);
}

bool tc_resumed(tc_conn *c)
{
    return wolfSSL_session_reused(c->ssl) == 1;
}

WOLFSSL *tc_ssl(tc_conn *c)
{
    return c->ssl;
}

void tc_close(tc_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        if (c->handshake_done)
            wolfSSL_shutdown(c->ssl); /* sends close_notify; does not wait for the peer's */
        wolfSSL_free(c->ssl);
    }
    if (c->ctx != NULL)
        wolfSSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

void tc_thread_cleanup(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
}

const char *tc_error_string(const tc_conn *c)
{
    return c != NULL ? c->error : connect_error;
}

int tc_echo(tc_conn *c, size_t n)
{
    /* calloc: n may be 0, and gcc -O2 then sees uninitialized bytes */
    uint8_t *out = calloc(n ? n : 1, 1), *in = calloc(n ? n : 1, 1);
    if (!out || !in) {
        free(out);
        free(in);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i & 0xff);
    int rc = tc_write_all(c, out, n);
    size_t got = 0;
    while (rc == 0 && got < n) {
        ssize_t r = tc_read(c, in + got, n - got);
        if (r <= 0)
            rc = r < 0 ? (int)r : -EPROTO;
        else
            got += (size_t)r;
    }
    if (rc == 0 && memcmp(in, out, n))
        rc = -EPROTO;
    free(out);
    free(in);
    return rc;
}

tc_options tc_loopback(uint16_t port, const char *ca_file, int timeout_ms)
{
    tc_options o;
    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = port;
    o.family = AF_INET;
    o.ca_file = ca_file;
    o.timeout_ms = timeout_ms;
    return o;
}
