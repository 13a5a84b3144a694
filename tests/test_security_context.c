/*
 * test_security_context: security contexts (material loading and
 * validation), the per-isolate wolfSSL server contexts, session tickets
 * shared across contexts, and peer certificates.
 *
 * Handshakes run between tls_client (test thread) and a tiny blocking
 * server on a helper thread that uses atoll__tls_server_ctx_new with
 * wolfSSL's own socket I/O; no runtime is involved.
 */
#include "support.h"
#include "tls_client.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "runtime/base/security_context_private.h"
#include "runtime/base/testing.h"
#include "runtime/base/tls_context.h"
#include "ticket_seal.h"

#define CERT(name) ATOLL_TEST_CERTS_DIR "/" name
#define PASSWORD   "dartdart"

static void suite_init(void)
{
    /* The server side uses wolfSSL's default socket I/O, which writes
     * without MSG_NOSIGNAL: a client that hung up must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void)
{
    tc_thread_cleanup();
}

TestSuite(security_context, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s (did the certs fixture run?)", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static atoll_security_context *new_ctx(void)
{
    atoll_security_context *ctx = NULL;
    cr_assert_eq(atoll_security_context_new(&ctx), 0);
    cr_assert_not_null(ctx);
    cr_assert_str_empty(atoll_security_context_last_error(ctx));
    return ctx;
}

/* The server's context: chain + key (PEM files). */
static atoll_security_context *server_ctx(void)
{
    atoll_security_context *ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM),
                 0, "%s", atoll_security_context_last_error(ctx));
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.pem"), ATOLL_ENCODING_PEM, NULL), 0,
                 "%s", atoll_security_context_last_error(ctx));
    return ctx;
}

#define assert_fails(call, ctx, code)                                                                                  \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        cr_assert_eq(rc_, (code), "%s: expected %d, got %d (%s)", #call, (code), rc_,                                  \
                     atoll_security_context_last_error(ctx));                                                          \
        cr_assert_str_not_empty(atoll_security_context_last_error(ctx), "%s left no reason", #call);                   \
    } while (0)

/* ---- tiny blocking server ------------------------------------------------ */

#define MAX_CONNS 4

typedef struct conn_result {
    int accept_ret;
    int error;
    char version[32];
    char cipher[64];
    char curve[32];
    bool resumed;
    int cert_rc;
    bool has_cert;
    char subject[256];
    char issuer[256];
    char pem_head[64];
    int64_t not_before, not_after;
    uint8_t sha256[32];
    uint8_t der[2048];
    size_t der_len;
} conn_result;

typedef struct tiny_server {
    WOLFSSL_CTX *ctx;
    int lfd;
    uint16_t port;
    int nconns;
    bool require_client_cert;
    pthread_t thread;
    conn_result res[MAX_CONNS];
} tiny_server;

static void serve_one(tiny_server *s, conn_result *r)
{
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        r->accept_ret = -1;
        r->error = -errno;
        return;
    }
    struct timeval tv = {.tv_sec = SUP_WAIT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    WOLFSSL *ssl = wolfSSL_new(s->ctx);
    if (ssl == NULL) {
        r->accept_ret = -1;
        close(fd);
        return;
    }
    wolfSSL_set_fd(ssl, fd);
    if (s->require_client_cert)
        wolfSSL_set_verify(ssl, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    r->accept_ret = wolfSSL_accept(ssl);
    if (r->accept_ret != WOLFSSL_SUCCESS) {
        r->error = wolfSSL_get_error(ssl, r->accept_ret);
    } else {
        snprintf(r->version, sizeof(r->version), "%s", wolfSSL_get_version(ssl));
        snprintf(r->cipher, sizeof(r->cipher), "%s", wolfSSL_get_cipher_name(ssl));
        const char *curve = wolfSSL_get_curve_name(ssl);
        snprintf(r->curve, sizeof(r->curve), "%s", curve != NULL ? curve : "(none)");
        r->resumed = wolfSSL_session_reused(ssl) == 1;

        atoll_certificate *cert = NULL;
        r->cert_rc = atoll__certificate_from_peer(ssl, &cert);
        if (cert != NULL) {
            r->has_cert = true;
            snprintf(r->subject, sizeof(r->subject), "%s", atoll_certificate_subject(cert));
            snprintf(r->issuer, sizeof(r->issuer), "%s", atoll_certificate_issuer(cert));
            snprintf(r->pem_head, sizeof(r->pem_head), "%s", atoll_certificate_pem(cert));
            r->not_before = atoll_certificate_not_before(cert);
            r->not_after = atoll_certificate_not_after(cert);
            memcpy(r->sha256, atoll_certificate_sha256(cert), 32);
            size_t len = 0;
            const uint8_t *der = atoll_certificate_der(cert, &len);
            if (len <= sizeof(r->der)) {
                memcpy(r->der, der, len);
                r->der_len = len;
            }
            atoll__certificate_free(cert);
        }
        /* Say hello (the client's read also picks up TLS 1.3 tickets), then
         * wait for the client to close. */
        wolfSSL_write(ssl, "hello", 5);
        char buf[64];
        while (wolfSSL_read(ssl, buf, sizeof(buf)) > 0) {
        }
    }
    wolfSSL_free(ssl);
    close(fd);
}

static void *server_main(void *arg)
{
    tiny_server *s = arg;
    for (int i = 0; i < s->nconns; i++)
        serve_one(s, &s->res[i]);
    tc_thread_cleanup();
    return NULL;
}

/* Serves `nconns` connections with `ctx` on 127.0.0.1:<s->port>. */
static void server_start(tiny_server *s, WOLFSSL_CTX *ctx, int nconns)
{
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->nconns = nconns;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    cr_assert_eq(listen(s->lfd, 8), 0);
    socklen_t alen = sizeof(a);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    /* Bounds accept() too: a test that fails to connect cannot hang. */
    struct timeval tv = {.tv_sec = SUP_WAIT_MS / 1000};
    setsockopt(s->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void server_run(tiny_server *s)
{
    cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_join(tiny_server *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

static tc_options client_options(const tiny_server *s)
{
    return (tc_options){.port = s->port, .timeout_ms = SUP_WAIT_MS, .ca_file = CERT("trusted_certs.pem")};
}

/* Connects, reads the server's hello; returns the client connection. */
static tc_conn *talk(const tc_options *o)
{
    tc_conn *c = NULL;
    int rc = tc_connect(&c, o);
    cr_assert_eq(rc, 0, "tc_connect: %d %s", rc, tc_error_string(NULL));
    char buf[16] = {0};
    ssize_t n = tc_read(c, buf, sizeof(buf) - 1);
    cr_assert_eq(n, 5, "read %zd: %s", n, tc_error_string(c));
    cr_assert_str_eq(buf, "hello");
    return c;
}

static WOLFSSL_CTX *build(atoll_security_context *ctx, atoll_ticket_keys *keys)
{
    WOLFSSL_CTX *w = NULL;
    cr_assert_eq(atoll__tls_server_ctx_new(ctx, keys, &w), 0);
    cr_assert_not_null(w);
    return w;
}

/* ---- material ------------------------------------------------------------ */

Test(security_context, pem_files)
{
    atoll_security_context *ctx = server_ctx();
    cr_assert_eq(
        atoll_security_context_set_trusted_certificates_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0,
        "%s", atoll_security_context_last_error(ctx));
    cr_assert_eq(
        atoll_security_context_set_client_authorities_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0,
        "%s", atoll_security_context_last_error(ctx));
    cr_assert_eq(atoll_security_context_set_min_version(ctx, ATOLL_TLS_1_3), 0);
    cr_assert_str_empty(atoll_security_context_last_error(ctx));
    atoll_security_context_release(ctx);
}

Test(security_context, der_files)
{
    atoll_security_context *ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_cert.der"), ATOLL_ENCODING_DER), 0,
                 "%s", atoll_security_context_last_error(ctx));
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.der"), ATOLL_ENCODING_DER, NULL), 0,
                 "%s", atoll_security_context_last_error(ctx));
    atoll_security_context_release(ctx);
}

Test(security_context, from_memory)
{
    size_t chain_len, key_len, cert_der_len, key_der_len, trusted_len;
    uint8_t *chain = slurp(CERT("server_chain.pem"), &chain_len);
    uint8_t *key = slurp(CERT("server_key.pem"), &key_len);
    uint8_t *cert_der = slurp(CERT("server_cert.der"), &cert_der_len);
    uint8_t *key_der = slurp(CERT("server_key.der"), &key_der_len);
    uint8_t *trusted = slurp(CERT("trusted_certs.pem"), &trusted_len);

    atoll_security_context *ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain(ctx, chain, chain_len, ATOLL_ENCODING_PEM), 0);
    cr_assert_eq(atoll_security_context_use_private_key(ctx, key, key_len, ATOLL_ENCODING_PEM, NULL), 0);
    cr_assert_eq(atoll_security_context_set_trusted_certificates(ctx, trusted, trusted_len, ATOLL_ENCODING_PEM), 0);
    /* Trusted certificates add up. */
    cr_assert_eq(atoll_security_context_set_trusted_certificates(ctx, cert_der, cert_der_len, ATOLL_ENCODING_DER), 0);
    atoll_security_context_release(ctx);

    ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain(ctx, cert_der, cert_der_len, ATOLL_ENCODING_DER), 0);
    cr_assert_eq(atoll_security_context_use_private_key(ctx, key_der, key_der_len, ATOLL_ENCODING_DER, NULL), 0);
    cr_assert_eq(atoll_security_context_set_client_authorities(ctx, cert_der, cert_der_len, ATOLL_ENCODING_DER), 0);
    atoll_security_context_release(ctx);

    free(chain);
    free(key);
    free(cert_der);
    free(key_der);
    free(trusted);
}

Test(security_context, encrypted_key)
{
    static const char *const files[] = {CERT("server_key_encrypted.pem"), CERT("server_key_encrypted_trad.pem")};
    for (size_t i = 0; i < 2; i++) {
        atoll_security_context *ctx = new_ctx();
        cr_assert_eq(
            atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM), 0);
        assert_fails(atoll_security_context_use_private_key_file(ctx, files[i], ATOLL_ENCODING_PEM, "wrong"), ctx,
                     ATOLL_E_TLS_MATERIAL);
        assert_fails(atoll_security_context_use_private_key_file(ctx, files[i], ATOLL_ENCODING_PEM, NULL), ctx,
                     ATOLL_E_TLS_MATERIAL);
        assert_fails(atoll_security_context_use_private_key_file(ctx, files[i], ATOLL_ENCODING_PEM, ""), ctx,
                     ATOLL_E_TLS_MATERIAL);
        int rc = atoll_security_context_use_private_key_file(ctx, files[i], ATOLL_ENCODING_PEM, PASSWORD);
        cr_assert_eq(rc, 0, "%s: %s", files[i], atoll_security_context_last_error(ctx));
        cr_assert_str_empty(atoll_security_context_last_error(ctx));

        /* The decrypted key serves: a handshake works without a password. */
        WOLFSSL_CTX *w = build(ctx, NULL);
        tiny_server s;
        server_start(&s, w, 1);
        server_run(&s);
        tc_options o = client_options(&s);
        tc_close(talk(&o));
        server_join(&s);
        cr_assert_eq(s.res[0].accept_ret, WOLFSSL_SUCCESS);
        wolfSSL_CTX_free(w);
        atoll_security_context_release(ctx);
    }
}

Test(security_context, encrypted_key_der)
{
    /* PKCS#8 in DER: encrypted, then the same key plain with an (unused)
     * password. */
    atoll_security_context *ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM),
                 0);
    const char *enc = CERT("server_key_encrypted.der");
    assert_fails(atoll_security_context_use_private_key_file(ctx, enc, ATOLL_ENCODING_DER, NULL), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_private_key_file(ctx, enc, ATOLL_ENCODING_DER, "wrong"), ctx,
                 ATOLL_E_TLS_MATERIAL);
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, enc, ATOLL_ENCODING_DER, PASSWORD), 0, "%s",
                 atoll_security_context_last_error(ctx));
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.der"), ATOLL_ENCODING_DER, PASSWORD),
                 0);
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.pem"), ATOLL_ENCODING_PEM, PASSWORD),
                 0);
    atoll_security_context_release(ctx);
}

Test(security_context, bad_material)
{
    static const char garbage[] = "this is not a certificate";
    size_t key_len, key_der_len, cert_der_len;
    uint8_t *key = slurp(CERT("server_key.pem"), &key_len);
    uint8_t *key_der = slurp(CERT("server_key.der"), &key_der_len);
    uint8_t *cert = slurp(CERT("server_cert.der"), &cert_der_len);
    atoll_security_context *ctx = new_ctx();

    assert_fails(atoll_security_context_use_certificate_chain(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_PEM), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_DER), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, key, key_len, ATOLL_ENCODING_PEM), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, key_der, key_der_len, ATOLL_ENCODING_DER), ctx,
                 ATOLL_E_TLS_MATERIAL);
    /* PEM bytes declared as DER and the reverse. */
    assert_fails(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_DER),
                 ctx, ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, cert, cert_der_len, ATOLL_ENCODING_PEM), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, garbage, 0, ATOLL_ENCODING_PEM), ctx, -EINVAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, NULL, 10, ATOLL_ENCODING_PEM), ctx, -EINVAL);
    assert_fails(atoll_security_context_use_certificate_chain(ctx, cert, cert_der_len, (atoll_encoding)7), ctx,
                 -EINVAL);

    assert_fails(atoll_security_context_use_private_key(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_PEM, NULL), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_private_key(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_DER, NULL), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_private_key(ctx, cert, cert_der_len, ATOLL_ENCODING_DER, NULL), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_private_key_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM, NULL),
                 ctx, ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_use_private_key(ctx, key, 0, ATOLL_ENCODING_PEM, NULL), ctx, -EINVAL);

    assert_fails(atoll_security_context_set_trusted_certificates(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_PEM),
                 ctx, ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_set_trusted_certificates(ctx, key, key_len, ATOLL_ENCODING_PEM), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_set_client_authorities(ctx, key, key_len, ATOLL_ENCODING_PEM), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_set_client_authorities(ctx, garbage, sizeof(garbage), ATOLL_ENCODING_DER), ctx,
                 ATOLL_E_TLS_MATERIAL);
    assert_fails(atoll_security_context_set_min_version(ctx, (atoll_tls_version)0x0302), ctx, -EINVAL);

    /* A success clears the reason. */
    cr_assert_eq(atoll_security_context_use_private_key(ctx, key, key_len, ATOLL_ENCODING_PEM, NULL), 0);
    cr_assert_str_empty(atoll_security_context_last_error(ctx));

    atoll_security_context_release(ctx);
    free(key);
    free(key_der);
    free(cert);
}

Test(security_context, file_errors)
{
    atoll_security_context *ctx = new_ctx();
    const char *missing = CERT("no_such_file.pem");
    assert_fails(atoll_security_context_use_certificate_chain_file(ctx, missing, ATOLL_ENCODING_PEM), ctx, -ENOENT);
    cr_assert(strstr(atoll_security_context_last_error(ctx), "no_such_file.pem") != NULL);
    assert_fails(atoll_security_context_use_private_key_file(ctx, missing, ATOLL_ENCODING_PEM, NULL), ctx, -ENOENT);
    assert_fails(atoll_security_context_set_trusted_certificates_file(ctx, missing, ATOLL_ENCODING_PEM), ctx, -ENOENT);
    assert_fails(atoll_security_context_set_client_authorities_file(ctx, missing, ATOLL_ENCODING_PEM), ctx, -ENOENT);
    assert_fails(atoll_security_context_use_certificate_chain_file(ctx, ATOLL_TEST_CERTS_DIR, ATOLL_ENCODING_PEM), ctx,
                 -EISDIR);
    char empty[] = "/tmp/atoll-empty-XXXXXX";
    int fd = mkstemp(empty);
    cr_assert_geq(fd, 0);
    close(fd);
    int rc = atoll_security_context_use_certificate_chain_file(ctx, empty, ATOLL_ENCODING_PEM);
    unlink(empty);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_not_empty(atoll_security_context_last_error(ctx));
    assert_fails(atoll_security_context_use_certificate_chain_file(ctx, NULL, ATOLL_ENCODING_PEM), ctx, -EINVAL);
    atoll_security_context_release(ctx);
}

Test(security_context, key_must_match_chain)
{
    atoll_security_context *ctx = new_ctx();
    cr_assert_eq(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM),
                 0);
    assert_fails(atoll_security_context_use_private_key_file(ctx, CERT("untrusted_key.pem"), ATOLL_ENCODING_PEM, NULL),
                 ctx, ATOLL_E_TLS_MATERIAL);
    cr_assert(strstr(atoll_security_context_last_error(ctx), "does not match") != NULL, "%s",
              atoll_security_context_last_error(ctx));
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.pem"), ATOLL_ENCODING_PEM, NULL), 0);
    /* A whole new pair, chain first: accepted (the old key is dropped). */
    cr_assert_eq(
        atoll_security_context_use_certificate_chain_file(ctx, CERT("untrusted_chain.pem"), ATOLL_ENCODING_PEM), 0);
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("untrusted_key.pem"), ATOLL_ENCODING_PEM, NULL),
                 0);
    atoll_security_context_release(ctx);
}

Test(security_context, frozen_once_in_use)
{
    atoll_security_context *ctx = server_ctx();
    atoll__security_context_acquire(ctx);
    assert_fails(atoll_security_context_use_certificate_chain_file(ctx, CERT("server_chain.pem"), ATOLL_ENCODING_PEM),
                 ctx, ATOLL_E_STATE);
    assert_fails(atoll_security_context_use_private_key_file(ctx, CERT("server_key.pem"), ATOLL_ENCODING_PEM, NULL),
                 ctx, ATOLL_E_STATE);
    assert_fails(
        atoll_security_context_set_trusted_certificates_file(ctx, CERT("trusted_certs.pem"), ATOLL_ENCODING_PEM), ctx,
        ATOLL_E_STATE);
    assert_fails(atoll_security_context_set_client_authorities_file(ctx, CERT("trusted_certs.pem"), ATOLL_ENCODING_PEM),
                 ctx, ATOLL_E_STATE);
    assert_fails(atoll_security_context_set_min_version(ctx, ATOLL_TLS_1_3), ctx, ATOLL_E_STATE);
    /* Two references: the caller's and the "server's". Still usable after
     * the first release (ASan checks the second frees it). */
    atoll_security_context_release(ctx);
    WOLFSSL_CTX *w = build(ctx, NULL);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
    atoll_security_context_release(NULL);

    /* Building a server context freezes it too. */
    ctx = server_ctx();
    w = build(ctx, NULL);
    assert_fails(atoll_security_context_set_min_version(ctx, ATOLL_TLS_1_2), ctx, ATOLL_E_STATE);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
}

Test(security_context, server_ctx_builds)
{
    atoll_ticket_keys keys;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 0), 0);
    cr_assert_eq(keys.rotation_s, 3600);

    atoll_security_context *ctx = server_ctx();
    cr_assert_eq(
        atoll_security_context_set_trusted_certificates_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0);
    cr_assert_eq(
        atoll_security_context_set_client_authorities_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0);
    wolfSSL_CTX_free(build(ctx, &keys));
    wolfSSL_CTX_free(build(ctx, NULL));
    atoll_security_context_release(ctx);

    /* No material at all still builds (its handshakes fail). */
    ctx = new_ctx();
    WOLFSSL_CTX *w = build(ctx, &keys);
    tiny_server s;
    server_start(&s, w, 1);
    server_run(&s);
    tc_options o = client_options(&s);
    tc_conn *c = NULL;
    cr_assert_lt(tc_connect(&c, &o), 0);
    cr_assert_null(c);
    cr_assert_str_not_empty(tc_error_string(NULL));
    server_join(&s);
    cr_assert_neq(s.res[0].accept_ret, WOLFSSL_SUCCESS);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);

    cr_assert_str_eq(atoll__tls_cipher_preference(),
                     atoll__tls_aes_fast() ? "AES-GCM first (AES-NI)" : "ChaCha20-Poly1305 first (no AES-NI)");
}

/* ---- handshakes ------------------------------------------------------------ */

Test(security_context, handshake_tls13)
{
    atoll_ticket_keys keys;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 3600), 0);
    atoll_security_context *ctx = server_ctx();
    WOLFSSL_CTX *w = build(ctx, &keys);
    tiny_server s;
    server_start(&s, w, 1);
    server_run(&s);

    /* The client prefers the cipher the server ranks lower, and offers a
     * P-256 key share next to X25519: the server's order must win. */
    bool aes = atoll__tls_aes_fast();
    tc_options o = client_options(&s);
    o.tls13_only = true;
    static const int shares[] = {WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_X25519, 0};
    o.key_shares = shares;
    o.ciphers = aes ? "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384:TLS13-AES128-GCM-SHA256"
                    : "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";
    tc_conn *c = NULL;
    int rc = tc_connect(&c, &o);
    cr_assert_eq(rc, 0, "%s", tc_error_string(NULL));
    char buf[8];
    cr_assert_eq(tc_read(c, buf, sizeof(buf)), 5);
    cr_assert_str_eq(wolfSSL_get_version(tc_ssl(c)), "TLSv1.3");
    cr_assert_not(tc_resumed(c));
    tc_close(c);
    server_join(&s);

    conn_result *r = &s.res[0];
    cr_assert_eq(r->accept_ret, WOLFSSL_SUCCESS, "server error %d", r->error);
    cr_assert_str_eq(r->version, "TLSv1.3");
    cr_assert_str_eq(r->cipher, aes ? "TLS13-AES128-GCM-SHA256" : "TLS13-CHACHA20-POLY1305-SHA256");
    cr_assert_str_eq(r->curve, "X25519");
    cr_assert_not(r->has_cert, "no client certificate was sent");
    cr_assert_eq(r->cert_rc, 0);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
}

Test(security_context, handshake_tls12)
{
    atoll_security_context *ctx = server_ctx();
    WOLFSSL_CTX *w = build(ctx, NULL);
    tiny_server s;
    server_start(&s, w, 1);
    server_run(&s);
    bool aes = atoll__tls_aes_fast();
    tc_options o = client_options(&s);
    o.tls12_only = true;
    o.ciphers = aes ? "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"
                    : "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
    tc_close(talk(&o));
    server_join(&s);
    conn_result *r = &s.res[0];
    cr_assert_eq(r->accept_ret, WOLFSSL_SUCCESS, "server error %d", r->error);
    cr_assert_str_eq(r->version, "TLSv1.2");
    cr_assert_str_eq(r->cipher, aes ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "ECDHE-ECDSA-CHACHA20-POLY1305");
    /* No curve check: wolfSSL 5.5 picks the TLS 1.2 ECDHE curve in the
     * client's order, whatever the server's groups say. */
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
}

Test(security_context, min_version_tls13_refuses_tls12)
{
    atoll_security_context *ctx = server_ctx();
    cr_assert_eq(atoll_security_context_set_min_version(ctx, ATOLL_TLS_1_3), 0);
    WOLFSSL_CTX *w = build(ctx, NULL);
    tiny_server s;
    server_start(&s, w, 1);
    server_run(&s);
    tc_options o = client_options(&s);
    o.tls12_only = true;
    tc_conn *c = NULL;
    cr_assert_lt(tc_connect(&c, &o), 0);
    server_join(&s);
    cr_assert_neq(s.res[0].accept_ret, WOLFSSL_SUCCESS);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
}

/* ---- session tickets ---------------------------------------------------- */

/* First connection on a, second on b: does the second resume? */
static void resume_across(WOLFSSL_CTX *a, WOLFSSL_CTX *b, bool tls13, bool *resumed_client, bool *resumed_server)
{
    tiny_server s1, s2;
    server_start(&s1, a, 1);
    server_start(&s2, b, 1);
    server_run(&s1);
    server_run(&s2);

    tc_options o = client_options(&s1);
    o.tls13_only = tls13;
    tc_conn *c = talk(&o);
    WOLFSSL_SESSION *session = tc_session(c);
    cr_assert_not_null(session);
    cr_assert(wolfSSL_SESSION_has_ticket(session), "no ticket issued");
    tc_close(c);

    o.port = s2.port;
    o.resume = session;
    c = talk(&o);
    *resumed_client = tc_resumed(c);
    tc_close(c);
    wolfSSL_SESSION_free(session);
    server_join(&s1);
    server_join(&s2);
    cr_assert_eq(s1.res[0].accept_ret, WOLFSSL_SUCCESS);
    cr_assert_eq(s2.res[0].accept_ret, WOLFSSL_SUCCESS, "second handshake failed: %d", s2.res[0].error);
    cr_assert_not(s1.res[0].resumed);
    *resumed_server = s2.res[0].resumed;
}

Test(security_context, tickets_resume_across_contexts)
{
    atoll_ticket_keys keys, other;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 3600), 0);
    cr_assert_eq(atoll__ticket_keys_init(&other, 3600), 0);
    cr_assert_neq(memcmp(keys.master, other.master, sizeof(keys.master)), 0);
    atoll_security_context *ctx = server_ctx();
    /* Two "isolates" with the same runtime keys, one with another's. */
    WOLFSSL_CTX *a = build(ctx, &keys), *b = build(ctx, &keys), *c = build(ctx, &other);

    for (int tls13 = 1; tls13 >= 0; tls13--) {
        bool client_side, server_side;
        resume_across(a, b, tls13, &client_side, &server_side);
        cr_assert(client_side, "TLS 1.%d: not resumed on a context with the same keys", tls13 ? 3 : 2);
        cr_assert(server_side);
        resume_across(a, c, tls13, &client_side, &server_side);
        cr_assert_not(client_side, "TLS 1.%d: resumed with another master secret", tls13 ? 3 : 2);
        cr_assert_not(server_side);
    }
    wolfSSL_CTX_free(a);
    wolfSSL_CTX_free(b);
    wolfSSL_CTX_free(c);
    atoll_security_context_release(ctx);
}

Test(security_context, no_keys_no_resumption)
{
    atoll_security_context *ctx = server_ctx();
    WOLFSSL_CTX *a = build(ctx, NULL);
    for (int tls13 = 1; tls13 >= 0; tls13--) {
        tiny_server s;
        server_start(&s, a, 2);
        server_run(&s);
        tc_options o = client_options(&s);
        o.tls13_only = tls13;
        o.tls12_only = !tls13;
        tc_conn *c = talk(&o);
        WOLFSSL_SESSION *session = tc_session(c);
        cr_assert(session == NULL || !wolfSSL_SESSION_has_ticket(session), "TLS 1.%d: a ticket was issued",
                  tls13 ? 3 : 2);
        tc_close(c);
        /* Not even by session ID (the session cache is off too). */
        o.resume = session;
        c = talk(&o);
        cr_assert_not(tc_resumed(c), "TLS 1.%d: resumed", tls13 ? 3 : 2);
        tc_close(c);
        wolfSSL_SESSION_free(session);
        server_join(&s);
        cr_assert_eq(s.res[1].accept_ret, WOLFSSL_SUCCESS);
        cr_assert_not(s.res[1].resumed);
    }
    wolfSSL_CTX_free(a);
    atoll_security_context_release(ctx);
}

/* Waits until the clock reads more than `t`; returns the new time. */
static uint64_t wait_clock_past(uint64_t t)
{
    for (int i = 0; i < 100; i++) {
        uint64_t now = (uint64_t)time(NULL);
        if (now > t)
            return now;
        struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("the clock did not move");
    return 0;
}

Test(security_context, ticket_callback)
{
    atoll_ticket_keys keys, other;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 3600), 0);
    cr_assert_eq(atoll__ticket_keys_init(&other, 3600), 0);
    sealed t;
    seal(&keys, &t);
    cr_assert_eq(open_ticket(&keys, &t), WOLFSSL_TICKET_RET_OK);
    cr_assert_eq(open_ticket(&other, &t), WOLFSSL_TICKET_RET_REJECT);

    sealed bad = t;
    bad.data[3] ^= 1;
    cr_assert_eq(open_ticket(&keys, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.mac[0] ^= 1;
    cr_assert_eq(open_ticket(&keys, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.iv[15] ^= 1; /* outside the nonce, but authenticated */
    cr_assert_eq(open_ticket(&keys, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.name[0] ^= 1; /* not our magic */
    cr_assert_eq(open_ticket(&keys, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.name[15] ^= 1; /* another epoch */
    cr_assert_eq(open_ticket(&keys, &bad), WOLFSSL_TICKET_RET_REJECT);

    /* Rotation: with 1 s epochs a ticket is current, then previous (still
     * accepted, and re-issued), then too old. key_name carries the epoch
     * (big endian, after the 8-byte magic). */
    atoll_ticket_keys fast = keys;
    fast.rotation_s = 1;
    wait_clock_past((uint64_t)time(NULL)); /* start of a second: room to work */
    seal(&fast, &t);
    uint64_t epoch = 0;
    for (int i = 8; i < 16; i++)
        epoch = (epoch << 8) | t.name[i];
    cr_assert_geq(epoch, (uint64_t)time(NULL) - 1);
    if ((uint64_t)time(NULL) == epoch)
        cr_assert_eq(open_ticket(&fast, &t), WOLFSSL_TICKET_RET_OK);
    wait_clock_past(epoch);
    uint64_t before = (uint64_t)time(NULL);
    int rc = open_ticket(&fast, &t);
    if (before == epoch + 1 && (uint64_t)time(NULL) == before)
        cr_assert_eq(rc, WOLFSSL_TICKET_RET_CREATE);
    wait_clock_past(epoch + 1);
    cr_assert_eq(open_ticket(&fast, &t), WOLFSSL_TICKET_RET_REJECT);
}

/* ---- peer certificates ---------------------------------------------------- */

/* Checks one connection's view of user1's certificate. */
static void check_user1(const conn_result *r)
{
    cr_assert_eq(r->accept_ret, WOLFSSL_SUCCESS, "server error %d", r->error);
    cr_assert_eq(r->cert_rc, 0);
    cr_assert(r->has_cert);
    cr_assert(strstr(r->subject, "user1") != NULL, "subject %s", r->subject);
    cr_assert(strstr(r->issuer, "clientauthority") != NULL, "issuer %s", r->issuer);
    cr_assert(strncmp(r->pem_head, "-----BEGIN CERTIFICATE-----", 27) == 0, "pem %s", r->pem_head);
    int64_t now = (int64_t)time(NULL);
    cr_assert_lt(r->not_before, now + 1);
    cr_assert_gt(r->not_after, now);
    /* 10 years, give or take the leap days. */
    cr_assert_lt(llabs((long long)(r->not_after - r->not_before) - 3650LL * 86400), 2 * 86400);

    /* The expected DER and fingerprint, from the file. */
    size_t pem_len;
    uint8_t *pem = slurp(CERT("client1.pem"), &pem_len);
    uint8_t der[2048];
    int der_len = wc_CertPemToDer(pem, (int)pem_len, der, sizeof(der), CERT_TYPE);
    free(pem);
    cr_assert_gt(der_len, 0);
    cr_assert_eq(r->der_len, (size_t)der_len);
    cr_assert_arr_eq(r->der, der, (size_t)der_len);
    uint8_t expected[WC_SHA256_DIGEST_SIZE];
    cr_assert_eq(wc_Sha256Hash(der, (word32)der_len, expected), 0);
    cr_assert_arr_eq(r->sha256, expected, sizeof(expected));

    /* The validity, to the second, as wolfSSL and libc convert it (on this
     * one thread: atoll parses the dates itself, away from libc's shared
     * time zone state). */
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(der, der_len, WOLFSSL_FILETYPE_ASN1);
    cr_assert_not_null(x);
    struct tm tb = {0}, ta = {0};
    cr_assert_eq(wolfSSL_ASN1_TIME_to_tm(wolfSSL_X509_get_notBefore(x), &tb), WOLFSSL_SUCCESS);
    cr_assert_eq(wolfSSL_ASN1_TIME_to_tm(wolfSSL_X509_get_notAfter(x), &ta), WOLFSSL_SUCCESS);
    wolfSSL_X509_free(x);
    cr_assert_eq(r->not_before, (int64_t)timegm(&tb));
    cr_assert_eq(r->not_after, (int64_t)timegm(&ta));
}

Test(security_context, client_certificate)
{
    atoll_security_context *ctx = server_ctx();
    cr_assert_eq(
        atoll_security_context_set_trusted_certificates_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0);
    cr_assert_eq(
        atoll_security_context_set_client_authorities_file(ctx, CERT("client_authority.pem"), ATOLL_ENCODING_PEM), 0);
    WOLFSSL_CTX *w = build(ctx, NULL);
    tiny_server s;
    server_start(&s, w, 3);
    s.require_client_cert = true;
    server_run(&s);

    tc_options o = client_options(&s);
    o.cert_file = CERT("client1.pem");
    o.key_file = CERT("client1_key.pem");
    for (int tls13 = 0; tls13 < 2; tls13++) {
        o.tls12_only = !tls13;
        o.tls13_only = tls13;
        tc_conn *c = talk(&o);
        /* The client authorities travel in TLS 1.2's CertificateRequest;
         * wolfSSL 5.5 sends no certificate_authorities in TLS 1.3. */
        WOLF_STACK_OF(WOLFSSL_X509_NAME) *names = wolfSSL_get_client_CA_list(tc_ssl(c));
        if (!tls13) {
            cr_assert_not_null(names);
            cr_assert_eq(wolfSSL_sk_X509_NAME_num(names), 1);
            char *name = wolfSSL_X509_NAME_oneline(wolfSSL_sk_X509_NAME_value(names, 0), NULL, 0);
            cr_assert_str_eq(name, "/CN=clientauthority");
            wolfSSL_OPENSSL_free(name);
        }
        tc_close(c);
    }

    /* Without a certificate the server refuses the client. */
    o.cert_file = o.key_file = NULL;
    tc_conn *c = NULL;
    if (tc_connect(&c, &o) == 0) {
        /* TLS 1.3: the client finishes first and learns on its read. */
        char buf[8];
        cr_assert_leq(tc_read(c, buf, sizeof(buf)), 0);
        tc_close(c);
    }
    server_join(&s);

    check_user1(&s.res[0]);
    cr_assert_str_eq(s.res[0].version, "TLSv1.2");
    check_user1(&s.res[1]);
    cr_assert_str_eq(s.res[1].version, "TLSv1.3");
    cr_assert_neq(s.res[2].accept_ret, WOLFSSL_SUCCESS, "accepted a client without a certificate");
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);
}

Test(security_context, peer_certificate_absent)
{
    /* Verification off (the default) and no client certificate: NULL. */
    atoll_security_context *ctx = server_ctx();
    WOLFSSL_CTX *w = build(ctx, NULL);
    tiny_server s;
    server_start(&s, w, 1);
    server_run(&s);
    tc_options o = client_options(&s);
    tc_close(talk(&o));
    server_join(&s);
    cr_assert_eq(s.res[0].accept_ret, WOLFSSL_SUCCESS);
    cr_assert_eq(s.res[0].cert_rc, 0);
    cr_assert_not(s.res[0].has_cert);
    wolfSSL_CTX_free(w);
    atoll_security_context_release(ctx);

    cr_assert_null(atoll_certificate_subject(NULL));
    size_t len = 1;
    cr_assert_null(atoll_certificate_der(NULL, &len));
    cr_assert_eq(len, 0);
    atoll__certificate_free(NULL);
}

/* ---- key material is wiped before it is freed ---------------------------- */

/* What the wipe hook saw: each region atoll__secure_zero zeroed, and whether
 * every byte was zero when the hook ran (before the free). These tests run
 * no server thread: only the test's own thread wipes. */
#define MAX_WIPES 64
static struct wipe_seen {
    uintptr_t p; /* an address, compared after the free: kept as a number */
    size_t len;
    bool zero;
} wipes[MAX_WIPES];
static size_t nwipes;

static void record_wipe(const void *p, size_t len)
{
    const uint8_t *b = p;
    bool zero = true;
    for (size_t i = 0; i < len; i++)
        zero = zero && b[i] == 0;
    if (nwipes < MAX_WIPES)
        wipes[nwipes] = (struct wipe_seen){.p = (uintptr_t)p, .len = len, .zero = zero};
    nwipes++;
}

static void wipes_reset(void)
{
    nwipes = 0;
    atoll__test_set_wipe_hook(record_wipe);
}

/* Whether a wipe of exactly [p, p + len) was seen, all zeros. */
static bool wiped(uintptr_t p, size_t len)
{
    for (size_t i = 0; i < nwipes && i < MAX_WIPES; i++)
        if (wipes[i].p == p && wipes[i].len == len)
            return wipes[i].zero;
    return false;
}

/* Whether some wipe of `len` bytes was seen, all zeros. */
static bool wiped_len(size_t len)
{
    for (size_t i = 0; i < nwipes && i < MAX_WIPES; i++)
        if (wipes[i].len == len && wipes[i].zero)
            return true;
    return false;
}

Test(security_context, key_wiped_on_release)
{
    atoll_security_context *ctx = server_ctx();
    /* The stored key: decrypted DER, the context's own copy. */
    uintptr_t key = (uintptr_t)ctx->key.data;
    size_t key_len = ctx->key.len;
    cr_assert_neq(key, 0);
    cr_assert_gt(key_len, 0);
    wipes_reset();
    atoll_security_context_release(ctx);
    cr_assert(wiped(key, key_len), "the stored key (%zu bytes) was not wiped before free (%zu wipes)", key_len, nwipes);
    atoll__test_set_wipe_hook(NULL);
}

Test(security_context, replaced_and_dropped_keys_wiped)
{
    atoll_security_context *ctx = server_ctx();
    uintptr_t first = (uintptr_t)ctx->key.data;
    size_t first_len = ctx->key.len;
    wipes_reset();
    /* A second key replaces the first: the first is wiped. */
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.der"), ATOLL_ENCODING_DER, NULL), 0,
                 "%s", atoll_security_context_last_error(ctx));
    cr_assert(wiped(first, first_len), "the replaced key was not wiped");
    /* A chain that does not match drops the key: wiped too. */
    uintptr_t second = (uintptr_t)ctx->key.data;
    size_t second_len = ctx->key.len;
    wipes_reset();
    cr_assert_eq(atoll_security_context_use_certificate_chain_file(ctx, CERT("client1.pem"), ATOLL_ENCODING_PEM), 0,
                 "%s", atoll_security_context_last_error(ctx));
    cr_assert_null(ctx->key.data);
    cr_assert(wiped(second, second_len), "the key dropped for a new chain was not wiped");
    atoll_security_context_release(ctx);
    atoll__test_set_wipe_hook(NULL);
}

Test(security_context, key_file_and_decoding_buffers_wiped)
{
    /* The file buffer of a key read from disk, whole. */
    size_t pem_len = 0;
    free(slurp(CERT("server_key.pem"), &pem_len));
    atoll_security_context *ctx = new_ctx();
    wipes_reset();
    cr_assert_eq(atoll_security_context_use_private_key_file(ctx, CERT("server_key.pem"), ATOLL_ENCODING_PEM, NULL), 0);
    cr_assert(wiped_len(pem_len), "the %zu-byte key file buffer was not wiped", pem_len);

    /* An encrypted PKCS#8 DER key: the decryption buffer (the file's size)
     * is wiped when the password is right and when it is wrong. */
    size_t enc_len = 0;
    free(slurp(CERT("server_key_encrypted.der"), &enc_len));
    for (int pass = 0; pass < 2; pass++) {
        const char *pw = pass == 0 ? "wrong" : PASSWORD;
        wipes_reset();
        int rc =
            atoll_security_context_use_private_key_file(ctx, CERT("server_key_encrypted.der"), ATOLL_ENCODING_DER, pw);
        cr_assert_eq(rc, pass == 0 ? ATOLL_E_TLS_MATERIAL : 0, "%s", atoll_security_context_last_error(ctx));
        /* The file buffer, the decryption copy and (wrong password) the
         * refused key: every one of the file's size. */
        size_t n = 0;
        for (size_t i = 0; i < nwipes && i < MAX_WIPES; i++)
            n += wipes[i].len == enc_len && wipes[i].zero;
        cr_assert_geq(n, pass == 0 ? 3u : 2u, "%s password: %zu wipes of %zu bytes", pw, n, enc_len);
    }

    /* A wrong password on an encrypted PEM key: the output buffer. */
    size_t pem_enc_len = 0;
    free(slurp(CERT("server_key_encrypted.pem"), &pem_enc_len));
    wipes_reset();
    cr_assert_eq(
        atoll_security_context_use_private_key_file(ctx, CERT("server_key_encrypted.pem"), ATOLL_ENCODING_PEM, "wrong"),
        ATOLL_E_TLS_MATERIAL);
    size_t n = 0;
    for (size_t i = 0; i < nwipes && i < MAX_WIPES; i++)
        n += wipes[i].len == pem_enc_len && wipes[i].zero;
    cr_assert_geq(n, 2u, "file buffer and output buffer: %zu wipes of %zu bytes", n, pem_enc_len);
    atoll_security_context_release(ctx);
    atoll__test_set_wipe_hook(NULL);
}

Test(security_context, ticket_master_wiped)
{
    atoll_ticket_keys keys;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 3600), 0);
    bool nonzero = false;
    for (size_t i = 0; i < sizeof(keys.master); i++)
        nonzero = nonzero || keys.master[i] != 0;
    cr_assert(nonzero, "the master secret was not drawn");
    wipes_reset();
    atoll__ticket_keys_wipe(&keys);
    cr_assert(wiped((uintptr_t)keys.master, sizeof(keys.master)), "the ticket master secret was not wiped");
    atoll__test_set_wipe_hook(NULL);
}
