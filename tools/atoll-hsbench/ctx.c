/*
 * tools/atoll-hsbench/ctx.c: the two wolfSSL contexts of a run, made once:
 * the server's built by atoll itself, as an isolate builds it for a server
 * without resumption (atoll_server_options.disable_resumption), and a
 * TLS 1.3-only client's. A run checks the negotiated suite and group
 * against atoll's documented preference, so a drift shows as a failed run
 * rather than a wrong number.
 */
#include <stdio.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <atoll/atoll.h>

/* Internal to the library (tools link atoll_static): this bench's whole
 * point is wolfSSL with atoll's own server settings, so it builds the
 * server context with atoll's builder rather than a copy of it. */
#include "runtime/base/tls_context.h"

#include "hsbench.h"

/* X25519 first, as atoll's clients rank them (runtime/base/tls_ctx.c); the
 * client is this bench's own (TLS 1.3 only, wolfSSL's default suites). */
static int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
#define NGROUPS ((int)(sizeof(groups) / sizeof(groups[0])))

/* Records what failed and wolfSSL's reason for it. */
static int ctx_error(WOLFSSL_CTX *w, const char *what, int rc, char *err, size_t errlen)
{
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)rc, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s (%d)", what, reason, rc);
    wolfSSL_CTX_free(w);
    return -1;
}

/* Records what failed with the security context's reason (atoll's error
 * text when it has none, as for -ENOMEM), and drops the context. */
static int sc_error(atoll_security_context *sc, const char *what, int rc, char *err, size_t errlen)
{
    const char *reason = atoll_security_context_last_error(sc);
    snprintf(err, errlen, "%s: %s", what, reason[0] != '\0' ? reason : atoll_strerror(rc));
    atoll_security_context_release(sc);
    return -1;
}

int server_ctx_new(const material *m, bool aes_first, WOLFSSL_CTX **out, const char **first_tls13, char *err,
                   size_t errlen)
{
    *out = NULL;
    atoll_security_context *sc = NULL;
    int rc = atoll_security_context_new(&sc);
    if (rc < 0) {
        snprintf(err, errlen, "atoll_security_context_new: %s", atoll_strerror(rc));
        return -1;
    }
    /* The material as atoll-serve gives it: PEM, no password; atoll checks
     * that the key is the certificate's. The default minimum stays
     * (TLS 1.2); the client below offers 1.3 only. */
    rc = atoll_security_context_use_certificate_chain(sc, m->cert_pem, m->cert_len, ATOLL_ENCODING_PEM);
    if (rc < 0)
        return sc_error(sc, "server certificate", rc, err, errlen);
    rc = atoll_security_context_use_private_key(sc, m->key_pem, m->key_len, ATOLL_ENCODING_PEM, NULL);
    if (rc < 0)
        return sc_error(sc, "server private key", rc, err, errlen);
    /* No ticket keys: tickets and the session cache off, every handshake
     * full (a TLS 1.3 server would otherwise also seal and send a
     * NewSessionTicket after each one). The context copies the material:
     * the security context is not needed afterwards. */
    WOLFSSL_CTX *w = NULL;
    rc = atoll__tls_server_ctx_new(sc, NULL, &w);
    if (rc < 0)
        return sc_error(sc, "atoll's server context", rc, err, errlen);
    atoll_security_context_release(sc);
    link_set_io(w);
    /* The first TLS 1.3 suite of the order atoll documents for this machine
     * (atoll_runtime_info.tls_cipher_preference): what a run must
     * negotiate. Stated here, not read from the context, so that it checks
     * the builder. */
    *first_tls13 = aes_first ? "TLS13-AES128-GCM-SHA256" : "TLS13-CHACHA20-POLY1305-SHA256";
    *out = w;
    return 0;
}

int client_ctx_new(WOLFSSL_CTX **out, char *err, size_t errlen)
{
    *out = NULL;
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    if (w == NULL) {
        snprintf(err, errlen, "wolfSSL_CTX_new(client): out of memory");
        return -1;
    }
    int rc;
    if ((rc = wolfSSL_CTX_set_groups(w, groups, NGROUPS)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_set_groups(client)", rc, err, errlen);
    /* Nothing to trust the self-signed certificate with, and the client's
     * checks are not what is measured. */
    wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
    link_set_io(w);
    *out = w;
    return 0;
}
