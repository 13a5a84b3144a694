/*
 * tools/atoll-hsbench/ctx.c: the two wolfSSL contexts of a run, made once:
 * the server's with the settings runtime/base/tls_ctx.c gives a server
 * without resumption (atoll_server_options.disable_resumption), and a
 * TLS 1.3-only client's. The library's builder is internal, so its
 * settings are repeated here; a run checks the negotiated suite and group
 * against them, so a drift shows as a failed run rather than a wrong number.
 */
#include <stdio.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "hsbench.h"

/* runtime/base/tls_ctx.c's two cipher orders, chosen there by whether
 * AES-GCM is fast here (atoll_runtime_info.tls_cipher_preference). */
static const char ciphers_aes_first[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char ciphers_chacha_first[] = "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:"
                                           "TLS13-AES256-GCM-SHA384:"
                                           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                           "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

/* X25519 first, as atoll's servers and clients rank them. */
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

int server_ctx_new(const material *m, bool aes_first, WOLFSSL_CTX **out, const char **first_tls13, char *err,
                   size_t errlen)
{
    *out = NULL;
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLS_server_method());
    if (w == NULL) {
        snprintf(err, errlen, "wolfSSL_CTX_new(server): out of memory");
        return -1;
    }
    int rc;
    /* atoll's default minimum (TLS 1.2); the client below offers 1.3 only. */
    if ((rc = wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_SetMinVersion", rc, err, errlen);
    rc = wolfSSL_CTX_use_certificate_chain_buffer_format(w, m->cert_pem, (long)m->cert_len, WOLFSSL_FILETYPE_PEM);
    if (rc != WOLFSSL_SUCCESS)
        return ctx_error(w, "server certificate", rc, err, errlen);
    rc = wolfSSL_CTX_use_PrivateKey_buffer(w, m->key_pem, (long)m->key_len, WOLFSSL_FILETYPE_PEM);
    if (rc != WOLFSSL_SUCCESS)
        return ctx_error(w, "server private key", rc, err, errlen);
    if ((rc = wolfSSL_CTX_check_private_key(w)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "the private key is not the certificate's", rc, err, errlen);

    const char *list = aes_first ? ciphers_aes_first : ciphers_chacha_first;
    if ((rc = wolfSSL_CTX_set_cipher_list(w, list)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_set_cipher_list", rc, err, errlen);
    if ((rc = wolfSSL_CTX_set_groups(w, groups, NGROUPS)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_set_groups(server)", rc, err, errlen);
    wolfSSL_CTX_set_options(w, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
    /* Every handshake full: no tickets, no session cache (atoll's
     * disable_resumption); a TLS 1.3 server would otherwise also seal and
     * send a NewSessionTicket after each handshake. */
    if ((rc = wolfSSL_CTX_NoTicketTLSv12(w)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_NoTicketTLSv12", rc, err, errlen);
    /* This one returns 0 on success (wolfSSL 5.5.4). */
    if ((rc = wolfSSL_CTX_no_ticket_TLSv13(w)) != 0)
        return ctx_error(w, "wolfSSL_CTX_no_ticket_TLSv13", rc, err, errlen);
    if ((rc = (int)wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF)) != WOLFSSL_SUCCESS)
        return ctx_error(w, "wolfSSL_CTX_set_session_cache_mode", rc, err, errlen);
    link_set_io(w);
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
