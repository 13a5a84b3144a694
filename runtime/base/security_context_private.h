/*
 * runtime/base/security_context_private.h: the inside of a security context
 * (atoll/tls.h), shared by the files that keep it (security_context.c),
 * check and decode its material (tls_material.c) and build wolfSSL contexts
 * from it (tls_ctx.c). Internal: runtime/tls_context.h is what the isolates
 * see.
 */
#ifndef ATOLL_RUNTIME_SECURITY_CONTEXT_PRIVATE_H
#define ATOLL_RUNTIME_SECURITY_CONTEXT_PRIVATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "runtime/base/tls_context.h"

/* One blob of material as given (PEM text or DER bytes). */
typedef struct atoll_blob {
    uint8_t *data;
    size_t len;
    int format; /* WOLFSSL_FILETYPE_PEM / _ASN1 */
} atoll_blob;

struct atoll_security_context {
    atomic_uint refs;
    /* Set when a server binds: from then on the material is read-only. */
    atomic_bool in_use;
    atoll_blob chain;
    atoll_blob key;      /* decrypted DER, wiped on free */
    atoll_blob *trusted; /* each set_trusted_certificates call adds one */
    size_t ntrusted;
    atoll_blob *authorities; /* one DER certificate each */
    size_t nauthorities;
    int min_version; /* WOLFSSL_TLSV1_2 / _3 */
    char last_error[256];
};

/* ---- the context (security_context.c) ------------------------------------ */

/* Records the reason of a failed call in ctx->last_error (printf format),
 * dropping what wolfSSL queued on this thread. */
void atoll__security_context_set_error(atoll_security_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- material (tls_material.c) ------------------------------------------- */

/* Frees a blob's data (wiped first when `wipe`) and zeroes it. */
void atoll__blob_free(atoll_blob *b, bool wipe);

/* Copies `len` bytes of `data` into a new blob of `format`. 0 or -ENOMEM. */
int atoll__blob_copy(atoll_blob *out, const void *data, size_t len, int format);

/* Reads a whole material file (a regular file of at most 16 MiB, not
 * empty) into *out (malloc'd). 0 or a negative errno, the reason in ctx. */
int atoll__material_read_file(atoll_security_context *ctx, const char *path, uint8_t **out, size_t *out_len);

/* Validates material by loading it into a throwaway context with `load`.
 * 0, -ENOMEM or ATOLL_E_TLS_MATERIAL with the reason in ctx. */
int atoll__material_scratch_load(atoll_security_context *ctx, const char *what,
                                 int (*load)(WOLFSSL_CTX *, const unsigned char *, long, int), const void *data,
                                 size_t len, int format);

/* Whether chain and key belong together (both must be set): 0,
 * ATOLL_E_TLS_MATERIAL (*wolf_rc says why) or -ENOMEM. */
int atoll__material_check_pair(const atoll_blob *chain, const atoll_blob *key, int *wolf_rc);

/* Splits `b` into DER certificates (PEM: every CERTIFICATE block; DER: one).
 * Returns the count (> 0) or a negative code with the reason in ctx. */
int atoll__material_split_certificates(atoll_security_context *ctx, const char *what, const atoll_blob *b,
                                       atoll_blob **out);

/* Decodes a private key to unencrypted DER, decrypting with `password`.
 * 0, -ENOMEM or ATOLL_E_TLS_MATERIAL with the reason in ctx. */
int atoll__material_decode_key(atoll_security_context *ctx, const uint8_t *data, size_t len, int format,
                               const char *password, atoll_blob *out);

#endif /* ATOLL_RUNTIME_SECURITY_CONTEXT_PRIVATE_H */
