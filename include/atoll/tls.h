/**
 * @file
 * atoll/tls.h: security contexts (Dart's SecurityContext) and certificates.
 *
 * A security context holds what TLS needs: the certificate chain and
 * private key a server presents, the certificates it trusts to verify
 * clients, and the client authorities it advertises. It is filled on any
 * thread before use, validated as it is filled (bad material is refused at
 * once, with a reason), and then shared read-only by every isolate that
 * binds with it: each isolate builds its own wolfSSL context from it, so no
 * lock is taken per handshake.
 *
 * Lifecycle: atoll_security_context_new() -> use_* / set_* calls ->
 * atoll_server_bind() (takes a reference) -> atoll_security_context_release()
 * (frees once the last server using it is closed).
 */
#ifndef ATOLL_TLS_H
#define ATOLL_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A security context. Opaque, reference-counted. */
typedef struct atoll_security_context atoll_security_context;

/** Encoding of certificate and key material. */
typedef enum atoll_encoding {
    ATOLL_ENCODING_PEM = 1, /**< text, "-----BEGIN ...": may hold several certificates */
    ATOLL_ENCODING_DER = 2, /**< binary ASN.1: one certificate or key */
} atoll_encoding;

/** TLS protocol versions for atoll_security_context_set_min_version(). */
typedef enum atoll_tls_version {
    ATOLL_TLS_1_2 = 0x0303, /**< TLS 1.2 (the default minimum) */
    ATOLL_TLS_1_3 = 0x0304, /**< TLS 1.3 only */
} atoll_tls_version;

/**
 * Creates an empty context (TLS 1.2 minimum). Errors: -EINVAL, -ENOMEM.
 * Thread: any thread.
 */
ATOLL_API int atoll_security_context_new(atoll_security_context **out);

/**
 * Drops the caller's reference; the context is freed when servers bound with
 * it are closed too. NULL is accepted.
 * Thread: any thread.
 */
ATOLL_API void atoll_security_context_release(atoll_security_context *ctx);

/**
 * Sets the certificate chain the server presents: leaf first, then
 * intermediates (PEM may hold several; DER holds one certificate).
 * Errors: -EINVAL (NULL, empty), ATOLL_E_TLS_MATERIAL (not a certificate in
 * that encoding), -ENOENT/-EACCES (file), ATOLL_E_STATE (context in use).
 * Thread: any thread, before the context is bound.
 */
ATOLL_API int atoll_security_context_use_certificate_chain(atoll_security_context *ctx, const void *data, size_t len,
                                                           atoll_encoding enc);
/** The same, with the material read from the file at `path`. Errors: the
 *  same, and the file's (-ENOENT, -EACCES, -EISDIR, -EFBIG, ...).
 *  Thread: any thread, before the context is bound. */
ATOLL_API int atoll_security_context_use_certificate_chain_file(atoll_security_context *ctx, const char *path,
                                                                atoll_encoding enc);

/**
 * Sets the private key, optionally encrypted with `password` (NULL: none).
 * Errors: -EINVAL, ATOLL_E_TLS_MATERIAL (not a key, wrong password, or the
 * key does not match the chain already set), file errors, ATOLL_E_STATE.
 * Thread: any thread, before the context is bound.
 */
ATOLL_API int atoll_security_context_use_private_key(atoll_security_context *ctx, const void *data, size_t len,
                                                     atoll_encoding enc, const char *password);
/** The same, with the material read from the file at `path`. Errors: the
 *  same, and the file's (-ENOENT, -EACCES, -EISDIR, -EFBIG, ...).
 *  Thread: any thread, before the context is bound. */
ATOLL_API int atoll_security_context_use_private_key_file(atoll_security_context *ctx, const char *path,
                                                          atoll_encoding enc, const char *password);

/**
 * Adds certificates trusted to verify peers (clients, for a server).
 * Errors as use_certificate_chain.
 * Thread: any thread, before the context is bound.
 */
ATOLL_API int atoll_security_context_set_trusted_certificates(atoll_security_context *ctx, const void *data, size_t len,
                                                              atoll_encoding enc);
/** The same, with the material read from the file at `path`. Errors: the
 *  same, and the file's (-ENOENT, -EACCES, -EISDIR, -EFBIG, ...).
 *  Thread: any thread, before the context is bound. */
ATOLL_API int atoll_security_context_set_trusted_certificates_file(atoll_security_context *ctx, const char *path,
                                                                   atoll_encoding enc);

/**
 * Sets the certificate authorities whose names the server sends in its
 * CertificateRequest (Dart's setClientAuthorities).
 * Errors as use_certificate_chain.
 * Thread: any thread, before the context is bound.
 */
ATOLL_API int atoll_security_context_set_client_authorities(atoll_security_context *ctx, const void *data, size_t len,
                                                            atoll_encoding enc);
/** The same, with the material read from the file at `path`. Errors: the
 *  same, and the file's (-ENOENT, -EACCES, -EISDIR, -EFBIG, ...).
 *  Thread: any thread, before the context is bound. */
ATOLL_API int atoll_security_context_set_client_authorities_file(atoll_security_context *ctx, const char *path,
                                                                 atoll_encoding enc);

/**
 * Sets the lowest TLS version accepted (default TLS 1.2).
 * Errors: -EINVAL (not a listed version), ATOLL_E_STATE.
 * Thread: any thread, before the context is bound.
 */
ATOLL_API int atoll_security_context_set_min_version(atoll_security_context *ctx, atoll_tls_version v);

/**
 * A short description of why the last failed call on `ctx` failed (e.g.
 * wolfSSL's error text), or "" when none. Valid until the next call on ctx.
 * Thread: the thread that made that call.
 */
ATOLL_API const char *atoll_security_context_last_error(const atoll_security_context *ctx);

/* ---------------------------------------------------------------------- */
/* Certificates                                                           */
/* ---------------------------------------------------------------------- */

/** A peer's certificate (Dart's X509Certificate). Opaque; owned by the
 *  connection it came from and valid as long as that connection. */
typedef struct atoll_certificate atoll_certificate;

/** DER bytes (`len` receives their size). Thread: the owning isolate. */
ATOLL_API const uint8_t *atoll_certificate_der(const atoll_certificate *cert, size_t *len);
/** PEM text, NUL-terminated. Thread: the owning isolate. */
ATOLL_API const char *atoll_certificate_pem(const atoll_certificate *cert);
/** Subject distinguished name, one line ("/CN=user1/O=..."). NULL for a
 *  NULL cert. Thread: the owning isolate. */
ATOLL_API const char *atoll_certificate_subject(const atoll_certificate *cert);
/** Issuer distinguished name, one line. NULL for a NULL cert.
 *  Thread: the owning isolate. */
ATOLL_API const char *atoll_certificate_issuer(const atoll_certificate *cert);
/** Start of validity, seconds since the Unix epoch (UTC); 0 for a NULL
 *  cert. Thread: the owning isolate. */
ATOLL_API int64_t atoll_certificate_not_before(const atoll_certificate *cert);
/** End of validity, seconds since the Unix epoch (UTC); 0 for a NULL cert.
 *  Thread: the owning isolate. */
ATOLL_API int64_t atoll_certificate_not_after(const atoll_certificate *cert);
/** SHA-256 of the DER bytes: 32 bytes. NULL for a NULL cert.
 *  Thread: the owning isolate. */
ATOLL_API const uint8_t *atoll_certificate_sha256(const atoll_certificate *cert);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_TLS_H */
