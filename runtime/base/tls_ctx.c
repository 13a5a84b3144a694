/*
 * runtime/base/tls_ctx.c: the per-isolate wolfSSL contexts built from a security
 * context: a server context for each isolate a listener runs on, a client
 * context for outgoing connections. Each gets the context's material
 * (validated when it was set), the cipher and group preferences, and, for
 * servers, the client authority names and session tickets. Building one
 * marks the security context in use (read-only from then on).
 */
#include <errno.h>
#include <stdatomic.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "atoll/error.h"
#include "runtime/base/security_context_private.h"

/* Server preference, strongest-fast first. ECDSA and RSA variants side by
 * side: the certificate decides which ones can be chosen. */
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

/* The client authority names, as wolfSSL wants them (it owns the stack). */
static WOLF_STACK_OF(WOLFSSL_X509_NAME) * authority_names(const atoll_security_context *ctx)
{
    WOLF_STACK_OF(WOLFSSL_X509_NAME) *names = wolfSSL_sk_X509_NAME_new(NULL);
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < ctx->nauthorities; i++) {
        const atoll_blob *b = &ctx->authorities[i];
        WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(b->data, (int)b->len, WOLFSSL_FILETYPE_ASN1);
        WOLFSSL_X509_NAME *name = x != NULL ? wolfSSL_X509_NAME_dup(wolfSSL_X509_get_subject_name(x)) : NULL;
        wolfSSL_X509_free(x);
        if (name == NULL || wolfSSL_sk_X509_NAME_push(names, name) <= 0) {
            wolfSSL_X509_NAME_free(name);
            wolfSSL_sk_X509_NAME_pop_free(names, wolfSSL_X509_NAME_free);
            return NULL;
        }
    }
    return names;
}

/* Loads the context's chain, key and trusted certificates into `w`. The
 * material was validated when set: a failure now is memory. */
static int apply_material(const atoll_security_context *ctx, WOLFSSL_CTX *w)
{
    if (ctx->chain.data != NULL && wolfSSL_CTX_use_certificate_chain_buffer_format(
                                       w, ctx->chain.data, (long)ctx->chain.len, ctx->chain.format) != WOLFSSL_SUCCESS)
        return ATOLL_E_TLS_MATERIAL;
    if (ctx->key.data != NULL && wolfSSL_CTX_use_PrivateKey_buffer(w, ctx->key.data, (long)ctx->key.len,
                                                                   WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
        return ATOLL_E_TLS_MATERIAL;
    for (size_t i = 0; i < ctx->ntrusted; i++) {
        const atoll_blob *b = &ctx->trusted[i];
        if (wolfSSL_CTX_load_verify_buffer(w, b->data, (long)b->len, b->format) != WOLFSSL_SUCCESS)
            return ATOLL_E_TLS_MATERIAL;
    }
    return 0;
}

/* Cipher order for the crypto present, and groups X25519 first. */
static int apply_preferences(WOLFSSL_CTX *w)
{
    if (wolfSSL_CTX_set_cipher_list(w, atoll__tls_aes_fast() ? ciphers_aes_first : ciphers_chacha_first) !=
        WOLFSSL_SUCCESS)
        return ATOLL_E_TLS_MATERIAL;
    /* TLS 1.2 ECDHE picks from the client's curves, ignoring the group list
     * below: without this, Debian's wolfSSL took X448, secp256k1 and the
     * brainpool curves. P-521 stays: wolfSSL's TLS 1.2 code checks an ECDSA
     * certificate's curve against this list too (read in its source, not
     * tested with a P-521 certificate). */
    if (wolfSSL_CTX_set1_curves_list(w, "X25519:P-256:P-384:P-521") != WOLFSSL_SUCCESS)
        return ATOLL_E_TLS_MATERIAL;
    /* After the curve list, which may reset the groups: TLS 1.3 key shares. */
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (wolfSSL_CTX_set_groups(w, groups, (int)(sizeof(groups) / sizeof(groups[0]))) != WOLFSSL_SUCCESS)
        return ATOLL_E_TLS_MATERIAL;
    return 0;
}

int atoll__tls_server_ctx_new(atoll_security_context *ctx, atoll_ticket_keys *keys, WOLFSSL_CTX **out)
{
    if (ctx == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    /* From here the material is frozen: concurrent isolates read it. */
    atomic_store(&ctx->in_use, true);

    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLS_server_method());
    if (w == NULL)
        return -ENOMEM;
    int rc = 0;
    if (wolfSSL_CTX_SetMinVersion(w, ctx->min_version) != WOLFSSL_SUCCESS)
        rc = ATOLL_E_TLS_MATERIAL;

    if (rc == 0)
        rc = apply_material(ctx, w);
    if (rc == 0 && ctx->nauthorities > 0) {
        /* Sent in the CertificateRequest. Without client authorities the
         * list is empty: the client may send any certificate. */
        WOLF_STACK_OF(WOLFSSL_X509_NAME) *names = authority_names(ctx);
        if (names == NULL)
            rc = -ENOMEM;
        else
            wolfSSL_CTX_set_client_CA_list(w, names);
    }

    if (rc == 0)
        rc = apply_preferences(w);
    /* Our order, not the client's, picks the cipher. TLS 1.3: among the key
     * shares a client sent, the best ranked wins (no HelloRetryRequest just
     * for preference: one P-256 share is taken as is). TLS 1.2 ECDHE follows
     * the client's curve order in wolfSSL 5.5, whatever is set here. */
    if (rc == 0)
        wolfSSL_CTX_set_options(w, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    if (rc == 0)
        wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);

    if (rc == 0 && keys != NULL) {
        if (wolfSSL_CTX_set_TicketEncCb(w, atoll__ticket_key_cb) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_TicketEncCtx(w, keys) != WOLFSSL_SUCCESS)
            rc = ATOLL_E_TLS_MATERIAL;
        /* A ticket stays valid for one to two rotation periods: promise
         * the lower bound. */
        else
            wolfSSL_CTX_set_TicketHint(w, (int)(keys->rotation_s != 0 ? keys->rotation_s : 3600));
    } else if (rc == 0) {
        wolfSSL_CTX_NoTicketTLSv12(w);
        wolfSSL_CTX_no_ticket_TLSv13(w);
        wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
    }

    if (rc != 0) {
        wolfSSL_CTX_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int atoll__tls_client_ctx_new(atoll_security_context *ctx, const char *ca_file, WOLFSSL_CTX **out)
{
    *out = NULL;
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLS_client_method());
    if (w == NULL)
        return -ENOMEM;
    int rc = 0;
    if (wolfSSL_CTX_SetMinVersion(w, ctx ? ctx->min_version : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
        rc = ATOLL_E_TLS_MATERIAL;
    if (ctx != NULL) {
        atomic_store(&ctx->in_use, true); /* shared read-only from now on */
        if (rc == 0)
            rc = apply_material(ctx, w);
    }
    if (rc == 0 && ca_file != NULL && wolfSSL_CTX_load_verify_locations(w, ca_file, NULL) != WOLFSSL_SUCCESS)
        rc = ATOLL_E_TLS_MATERIAL;
    if (rc == 0)
        rc = apply_preferences(w); /* X25519 first: the key share a ClientHello sends */
    if (rc != 0) {
        wolfSSL_CTX_free(w);
        return rc;
    }
    *out = w;
    return 0;
}
