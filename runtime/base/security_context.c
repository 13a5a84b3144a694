/*
 * runtime/base/security_context.c: the security context object (atoll/tls.h):
 * creation, reference counting, the last error, the minimum version, and
 * the set_/use_ calls that store material, from memory or from a file.
 *
 * A context keeps its own copy of every piece of material, validated as it
 * arrives (tls_material.c), so a mistake is reported by the call that made
 * it rather than by the first handshake. Private keys are stored decrypted,
 * as DER (wiped on free): the password is used once, when the key is set,
 * and never kept, and the isolates' contexts need no password callback.
 *
 * Once bound (atoll__security_context_acquire or atoll__tls_server_ctx_new)
 * a context is read-only, and isolates read it concurrently without a lock;
 * set_/use_ calls then fail with ATOLL_E_STATE.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "atoll/error.h"
#include "runtime/base/security_context_private.h"

/* ---- helpers ----------------------------------------------------------- */

void atoll__security_context_set_error(atoll_security_context *ctx, const char *fmt, ...)
{
    /* The reason is ours now: drop what wolfSSL queued on this thread. */
    wolfSSL_ERR_clear_error();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof(ctx->last_error), fmt, ap);
    va_end(ap);
}

static int wolfssl_format(atoll_security_context *ctx, atoll_encoding enc, int *format)
{
    switch (enc) {
    case ATOLL_ENCODING_PEM:
        *format = WOLFSSL_FILETYPE_PEM;
        return 0;
    case ATOLL_ENCODING_DER:
        *format = WOLFSSL_FILETYPE_ASN1;
        return 0;
    }
    atoll__security_context_set_error(ctx, "unknown encoding %d", (int)enc);
    return -EINVAL;
}

/* Common entry checks of every set_/use_ call. */
static int begin_set(atoll_security_context *ctx, const void *data, size_t len)
{
    if (ctx == NULL)
        return -EINVAL;
    ctx->last_error[0] = '\0';
    if (atomic_load(&ctx->in_use)) {
        atoll__security_context_set_error(ctx, "the context is in use by a server and can no longer change");
        return ATOLL_E_STATE;
    }
    if (data == NULL || len == 0) {
        atoll__security_context_set_error(ctx, "no material (NULL or empty)");
        return -EINVAL;
    }
    if (len > INT_MAX) {
        atoll__security_context_set_error(ctx, "material too large");
        return -EINVAL;
    }
    wolfSSL_ERR_clear_error();
    return 0;
}

/* begin_set() plus the wolfSSL format of `enc`: the prologue of every
 * use_/set_ call that takes material. */
static int begin_set_format(atoll_security_context *ctx, const void *data, size_t len, atoll_encoding enc, int *format)
{
    int rc = begin_set(ctx, data, len);
    return rc != 0 ? rc : wolfssl_format(ctx, enc, format);
}

/* ---- public API ---------------------------------------------------------- */

/*
 * wolfSSL_Init is not safe to race with itself the first time, and
 * wolfSSL_CTX_new only calls it implicitly, unguarded. Every WOLFSSL_CTX
 * atoll makes derives from a security context, so initialising once here
 * (a write-once global, the one in this file) covers the isolates. Never
 * undone: wolfSSL_Cleanup would pull the library from under contexts
 * that other code in the process made without a reference.
 */
static pthread_once_t wolfssl_once = PTHREAD_ONCE_INIT;
static int wolfssl_init_rc;

static void wolfssl_init(void)
{
    wolfssl_init_rc = wolfSSL_Init();
}

int atoll__wolfssl_init(void)
{
    /* wolfSSL_Init is not thread-safe (it seeds a global RNG): every path
     * into wolfSSL goes through this once, before any isolate runs. */
    pthread_once(&wolfssl_once, wolfssl_init);
    return wolfssl_init_rc == WOLFSSL_SUCCESS ? 0 : -ENOMEM;
}

int atoll_security_context_new(atoll_security_context **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (atoll__wolfssl_init() < 0)
        return -ENOMEM;
    atoll_security_context *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return -ENOMEM;
    atomic_init(&ctx->refs, 1);
    atomic_init(&ctx->in_use, false);
    ctx->min_version = WOLFSSL_TLSV1_2;
    *out = ctx;
    return 0;
}

static void context_free(atoll_security_context *ctx)
{
    atoll__blob_free(&ctx->chain, false);
    atoll__blob_free(&ctx->key, true);
    for (size_t i = 0; i < ctx->ntrusted; i++)
        atoll__blob_free(&ctx->trusted[i], false);
    free(ctx->trusted);
    for (size_t i = 0; i < ctx->nauthorities; i++)
        atoll__blob_free(&ctx->authorities[i], false);
    free(ctx->authorities);
    free(ctx);
}

void atoll_security_context_release(atoll_security_context *ctx)
{
    if (ctx == NULL)
        return;
    /* acq_rel: the last owner sees every other owner's reads finished. */
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) == 1)
        context_free(ctx);
}

void atoll__security_context_acquire(atoll_security_context *ctx)
{
    atomic_store(&ctx->in_use, true);
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

const char *atoll_security_context_last_error(const atoll_security_context *ctx)
{
    return ctx != NULL ? ctx->last_error : "";
}

int atoll_security_context_use_certificate_chain(atoll_security_context *ctx, const void *data, size_t len,
                                                 atoll_encoding enc)
{
    int format = 0;
    int rc = begin_set_format(ctx, data, len, enc, &format);
    if (rc != 0)
        return rc;

    rc = atoll__material_scratch_load(ctx, "certificate chain", wolfSSL_CTX_use_certificate_chain_buffer_format, data,
                                      len, format);
    if (rc != 0)
        return rc;
    /* A key in PEM format is a "no certificate" error above; make sure the
     * leaf really is a certificate in DER too (wolfSSL parses it lazily). */
    atoll_blob given = {.data = (uint8_t *)(uintptr_t)data, .len = len, .format = format};
    atoll_blob *certs = NULL;
    int n = atoll__material_split_certificates(ctx, "certificate chain", &given, &certs);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++)
        atoll__blob_free(&certs[i], false);
    free(certs);

    atoll_blob chain;
    if (atoll__blob_copy(&chain, data, len, format) != 0)
        return -ENOMEM;
    if (ctx->key.data != NULL) {
        /* As OpenSSL does, a new chain that does not match the key set
         * earlier drops that key rather than failing: the usual order is
         * chain then key, and a replaced pair comes chain first. */
        int pair_rc;
        rc = atoll__material_check_pair(&chain, &ctx->key, &pair_rc);
        if (rc == -ENOMEM) {
            atoll__blob_free(&chain, false);
            return rc;
        }
        if (rc != 0)
            atoll__blob_free(&ctx->key, true);
    }
    atoll__blob_free(&ctx->chain, false);
    ctx->chain = chain;
    return 0;
}

int atoll_security_context_use_private_key(atoll_security_context *ctx, const void *data, size_t len,
                                           atoll_encoding enc, const char *password)
{
    int format = 0;
    int rc = begin_set_format(ctx, data, len, enc, &format);
    if (rc != 0)
        return rc;
    atoll_blob key;
    rc = atoll__material_decode_key(ctx, data, len, format, password, &key);
    if (rc != 0)
        return rc;
    if (ctx->chain.data != NULL) {
        int pair_rc;
        rc = atoll__material_check_pair(&ctx->chain, &key, &pair_rc);
        if (rc != 0) {
            atoll__blob_free(&key, true);
            if (rc == ATOLL_E_TLS_MATERIAL)
                atoll__security_context_set_error(
                    ctx, "private key does not match the certificate chain (wolfSSL error %d)", pair_rc);
            return rc;
        }
    }
    atoll__blob_free(&ctx->key, true);
    ctx->key = key;
    return 0;
}

int atoll_security_context_set_trusted_certificates(atoll_security_context *ctx, const void *data, size_t len,
                                                    atoll_encoding enc)
{
    int format = 0;
    int rc = begin_set_format(ctx, data, len, enc, &format);
    if (rc != 0)
        return rc;
    rc = atoll__material_scratch_load(ctx, "trusted certificates", wolfSSL_CTX_load_verify_buffer, data, len, format);
    if (rc != 0)
        return rc;
    atoll_blob *grown = realloc(ctx->trusted, (ctx->ntrusted + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    ctx->trusted = grown;
    if (atoll__blob_copy(&ctx->trusted[ctx->ntrusted], data, len, format) != 0)
        return -ENOMEM;
    ctx->ntrusted++;
    return 0;
}

int atoll_security_context_set_client_authorities(atoll_security_context *ctx, const void *data, size_t len,
                                                  atoll_encoding enc)
{
    int format = 0;
    int rc = begin_set_format(ctx, data, len, enc, &format);
    if (rc != 0)
        return rc;
    atoll_blob given = {.data = (uint8_t *)(uintptr_t)data, .len = len, .format = format};
    atoll_blob *certs = NULL;
    int n = atoll__material_split_certificates(ctx, "client authorities", &given, &certs);
    if (n < 0)
        return n;
    for (size_t i = 0; i < ctx->nauthorities; i++)
        atoll__blob_free(&ctx->authorities[i], false);
    free(ctx->authorities);
    ctx->authorities = certs;
    ctx->nauthorities = (size_t)n;
    return 0;
}

int atoll_security_context_set_min_version(atoll_security_context *ctx, atoll_tls_version v)
{
    if (ctx == NULL)
        return -EINVAL;
    ctx->last_error[0] = '\0';
    if (atomic_load(&ctx->in_use)) {
        atoll__security_context_set_error(ctx, "the context is in use by a server and can no longer change");
        return ATOLL_E_STATE;
    }
    switch (v) {
    case ATOLL_TLS_1_2:
        ctx->min_version = WOLFSSL_TLSV1_2;
        return 0;
    case ATOLL_TLS_1_3:
        ctx->min_version = WOLFSSL_TLSV1_3;
        return 0;
    }
    atoll__security_context_set_error(ctx, "unsupported TLS version 0x%04x", (unsigned)v);
    return -EINVAL;
}

/* The file variants: read, then the same as from memory. */
#define FROM_FILE(call)                                                                                                \
    do {                                                                                                               \
        uint8_t *buf;                                                                                                  \
        size_t len = 0;                                                                                                \
        int rc_ = atoll__material_read_file(ctx, path, &buf, &len);                                                    \
        if (rc_ != 0)                                                                                                  \
            return rc_;                                                                                                \
        rc_ = call;                                                                                                    \
        atoll__secure_zero(buf, len);                                                                                  \
        free(buf);                                                                                                     \
        return rc_;                                                                                                    \
    } while (0)

int atoll_security_context_use_certificate_chain_file(atoll_security_context *ctx, const char *path, atoll_encoding enc)
{
    FROM_FILE(atoll_security_context_use_certificate_chain(ctx, buf, len, enc));
}

int atoll_security_context_use_private_key_file(atoll_security_context *ctx, const char *path, atoll_encoding enc,
                                                const char *password)
{
    FROM_FILE(atoll_security_context_use_private_key(ctx, buf, len, enc, password));
}

int atoll_security_context_set_trusted_certificates_file(atoll_security_context *ctx, const char *path,
                                                         atoll_encoding enc)
{
    FROM_FILE(atoll_security_context_set_trusted_certificates(ctx, buf, len, enc));
}

int atoll_security_context_set_client_authorities_file(atoll_security_context *ctx, const char *path,
                                                       atoll_encoding enc)
{
    FROM_FILE(atoll_security_context_set_client_authorities(ctx, buf, len, enc));
}
