/*
 * runtime/base/tls_material.c: checking and decoding the material a security
 * context stores: reading material files, loading material into a
 * throw-away WOLFSSL_CTX to validate it, decoding (and decrypting) private
 * keys to DER, checking that a key is its certificate's, and splitting PEM
 * text into DER certificates. Failures leave their reason in the context.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "atoll/error.h"
#include "runtime/base/security_context_private.h"
#include "runtime/base/testing.h"

/* Material files are small; anything bigger is a wrong path. */
#define MAX_MATERIAL_FILE (16u << 20)

#ifdef ATOLL_TESTING
static _Atomic(atoll_test_wipe_hook) wipe_hook;

void atoll__test_set_wipe_hook(atoll_test_wipe_hook hook)
{
    atomic_store(&wipe_hook, hook);
}
#endif

void atoll__secure_zero(void *p, size_t len)
{
    if (p == NULL || len == 0)
        return;
    explicit_bzero(p, len);
#ifdef ATOLL_TESTING
    atoll_test_wipe_hook hook = atomic_load(&wipe_hook);
    if (hook != NULL)
        hook(p, len);
#endif
}

void atoll__blob_free(atoll_blob *b, bool wipe)
{
    if (b->data != NULL && wipe)
        atoll__secure_zero(b->data, b->len);
    free(b->data);
    *b = (atoll_blob){0};
}

int atoll__blob_copy(atoll_blob *out, const void *data, size_t len, int format)
{
    out->data = malloc(len);
    if (out->data == NULL)
        return -ENOMEM;
    memcpy(out->data, data, len);
    out->len = len;
    out->format = format;
    return 0;
}

/* Records wolfSSL's reason for `rc` (a wolfSSL return or error code). */
static int material_error(atoll_security_context *ctx, const char *what, int rc)
{
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)rc, reason, sizeof(reason));
    atoll__security_context_set_error(ctx, "%s: %s (wolfSSL error %d)", what, reason, rc);
    return ATOLL_E_TLS_MATERIAL;
}

int atoll__material_read_file(atoll_security_context *ctx, const char *path, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    if (ctx == NULL)
        return -EINVAL;
    ctx->last_error[0] = '\0';
    if (path == NULL) {
        atoll__security_context_set_error(ctx, "no file name");
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        atoll__security_context_set_error(ctx, "%s: %s", path, strerror(err));
        return -err;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
    } else if ((uint64_t)st.st_size > MAX_MATERIAL_FILE) {
        rc = -EFBIG;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == 0) {
        buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
        if (buf == NULL)
            rc = -ENOMEM;
    }
    while (rc == 0 && len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break; /* shrank while reading: take what is there */
        else
            len += (size_t)n;
    }
    close(fd);
    if (rc == 0 && len == 0)
        rc = -EINVAL;
    if (rc != 0) {
        atoll__secure_zero(buf, len); /* what was read may be a key */
        free(buf);
        atoll__security_context_set_error(ctx, "%s: %s", path,
                                          rc == -EINVAL ? "empty or not a regular file" : strerror(-rc));
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Frees a scratch context and forgets the errors it queued on this thread,
 * so they cannot be mistaken for a later failure's. */
static void scratch_free(WOLFSSL_CTX *w)
{
    wolfSSL_CTX_free(w);
    wolfSSL_ERR_clear_error();
}

static WOLFSSL_CTX *scratch_ctx(void)
{
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLS_server_method());
    if (w != NULL) {
        /* The context exists only to parse material: no peer checks. */
        wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
    }
    return w;
}

/* Validates material by loading it into a throwaway context with `load`. */
int atoll__material_scratch_load(atoll_security_context *ctx, const char *what,
                                 int (*load)(WOLFSSL_CTX *, const unsigned char *, long, int), const void *data,
                                 size_t len, int format)
{
    WOLFSSL_CTX *w = scratch_ctx();
    if (w == NULL)
        return -ENOMEM;
    int wrc = load(w, data, (long)len, format);
    scratch_free(w);
    return wrc == WOLFSSL_SUCCESS ? 0 : material_error(ctx, what, wrc);
}

/*
 * Whether an EC key is the certificate's: recomputes the public point from
 * the private scalar and compares it with the certificate's. Needed because
 * wolfSSL 5.5's check_private_key only does this with SP math: the Debian
 * build accepts any EC key for any EC certificate. Returns 1 (match),
 * 0 (mismatch), -1 (the certificate's key is not EC: wolfSSL's check holds).
 */
static int ec_pair_matches(const atoll_blob *chain, const atoll_blob *key)
{
    uint8_t *leaf = NULL, *spki = NULL, *priv_der = NULL;
    int leaf_len = 0, spki_len = 0, result = 0;
    ecc_key pub, priv;
    ecc_point *point = NULL;
    bool pub_init = false, priv_init = false;

    if (chain->format == WOLFSSL_FILETYPE_PEM) {
        /* wc_CertPemToDer converts the first certificate: the leaf. */
        leaf = malloc(chain->len);
        if (leaf == NULL)
            return 0;
        leaf_len = wc_CertPemToDer(chain->data, (int)chain->len, leaf, (int)chain->len, CERT_TYPE);
    } else {
        leaf_len = (int)chain->len;
    }
    WOLFSSL_X509 *x = leaf_len > 0 ? wolfSSL_X509_load_certificate_buffer(leaf != NULL ? leaf : chain->data, leaf_len,
                                                                          WOLFSSL_FILETYPE_ASN1)
                                   : NULL;
    if (x == NULL || wolfSSL_X509_get_pubkey_buffer(x, NULL, &spki_len) != WOLFSSL_SUCCESS || spki_len <= 0 ||
        (spki = malloc((size_t)spki_len)) == NULL ||
        wolfSSL_X509_get_pubkey_buffer(x, spki, &spki_len) != WOLFSSL_SUCCESS)
        goto done;

    word32 idx = 0;
    if (wc_ecc_init(&pub) != 0)
        goto done;
    pub_init = true;
    if (wc_EccPublicKeyDecode(spki, &idx, &pub, (word32)spki_len) != 0) {
        result = -1;
        goto done;
    }
    /* The private key may be PKCS#8-wrapped; the offset finder edits its
     * input, hence a copy. */
    priv_der = malloc(key->len);
    if (priv_der == NULL || wc_ecc_init(&priv) != 0)
        goto done;
    priv_init = true;
    memcpy(priv_der, key->data, key->len);
    idx = 0;
    if (wc_GetPkcs8TraditionalOffset(priv_der, &idx, (word32)key->len) < 0)
        idx = 0;
    if (wc_EccPrivateKeyDecode(priv_der, &idx, &priv, (word32)key->len) != 0)
        goto done; /* not an EC key: cannot be this certificate's */
    if (priv.dp == NULL || pub.dp == NULL || priv.dp->id != pub.dp->id)
        goto done;
    point = wc_ecc_new_point();
    if (point != NULL && wc_ecc_make_pub(&priv, point) == 0 && wc_ecc_cmp_point(point, &pub.pubkey) == MP_EQ)
        result = 1;

done:
    if (point != NULL)
        wc_ecc_del_point(point);
    if (priv_init)
        wc_ecc_free(&priv);
    if (pub_init)
        wc_ecc_free(&pub);
    if (priv_der != NULL) {
        atoll__secure_zero(priv_der, key->len);
        free(priv_der);
    }
#ifdef FP_ECC
    /* The multiplication above filled this thread's fixed-point cache,
     * which wolfSSL frees only when asked, on the same thread: a host
     * thread would leak it at exit. */
    wc_ecc_fp_free();
#endif
    wolfSSL_X509_free(x);
    free(spki);
    free(leaf);
    return result;
}

/* Whether chain and key belong together (both must be set). */
int atoll__material_check_pair(const atoll_blob *chain, const atoll_blob *key, int *wolf_rc)
{
    /* For an EC certificate our comparison decides, and wolfSSL's check is
     * not called: wolfSSL 5.5.4's check_private_key crashes (a read through
     * a wild pointer in wc_ecc_export_private_only) on an EC key whose
     * curve OID does not fit its data, which a damaged key file is
     * (tests/fuzz/regressions/material/). */
    int ec = ec_pair_matches(chain, key);
    WOLFSSL_CTX *w = scratch_ctx();
    if (w == NULL)
        return -ENOMEM;
    int rc = wolfSSL_CTX_use_certificate_chain_buffer_format(w, chain->data, (long)chain->len, chain->format);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CTX_use_PrivateKey_buffer(w, key->data, (long)key->len, WOLFSSL_FILETYPE_ASN1);
    if (rc == WOLFSSL_SUCCESS && ec < 0)
        rc = wolfSSL_CTX_check_private_key(w);
    scratch_free(w);
    if (rc == WOLFSSL_SUCCESS && ec == 0)
        rc = WOLFSSL_FAILURE;
    *wolf_rc = rc;
    return rc == WOLFSSL_SUCCESS ? 0 : ATOLL_E_TLS_MATERIAL;
}

/*
 * Splits `b` into DER certificates (PEM: every CERTIFICATE block; DER: one).
 * Returns the count (> 0) or a negative code with the reason in ctx.
 */
int atoll__material_split_certificates(atoll_security_context *ctx, const char *what, const atoll_blob *b,
                                       atoll_blob **out)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    *out = NULL;
    if (b->format == WOLFSSL_FILETYPE_ASN1) {
        WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(b->data, (int)b->len, WOLFSSL_FILETYPE_ASN1);
        if (x == NULL) {
            atoll__security_context_set_error(ctx, "%s: not a DER certificate", what);
            return ATOLL_E_TLS_MATERIAL;
        }
        wolfSSL_X509_free(x);
        atoll_blob *one = calloc(1, sizeof(*one));
        if (one == NULL || atoll__blob_copy(one, b->data, b->len, WOLFSSL_FILETYPE_ASN1) != 0) {
            free(one);
            return -ENOMEM;
        }
        *out = one;
        return 1;
    }

    atoll_blob *certs = NULL;
    int n = 0, rc = 0;
    const char *p = (const char *)b->data, *limit = p + b->len;
    while (rc == 0) {
        const char *s = memmem(p, (size_t)(limit - p), begin, sizeof(begin) - 1);
        if (s == NULL)
            break;
        const char *e = memmem(s, (size_t)(limit - s), end, sizeof(end) - 1);
        if (e == NULL) {
            atoll__security_context_set_error(ctx, "%s: certificate %d has no END line", what, n + 1);
            rc = ATOLL_E_TLS_MATERIAL;
            break;
        }
        e += sizeof(end) - 1;
        /* DER is shorter than its base64 text. */
        size_t cap = (size_t)(e - s);
        uint8_t *der = malloc(cap);
        atoll_blob *grown = realloc(certs, (size_t)(n + 1) * sizeof(*certs));
        if (der == NULL || grown == NULL) {
            free(der);
            if (grown != NULL)
                certs = grown;
            rc = -ENOMEM;
            break;
        }
        certs = grown;
        int len = wc_CertPemToDer((const unsigned char *)s, (int)(e - s), der, (int)cap, CERT_TYPE);
        WOLFSSL_X509 *x = len > 0 ? wolfSSL_X509_load_certificate_buffer(der, len, WOLFSSL_FILETYPE_ASN1) : NULL;
        if (x == NULL) {
            free(der);
            if (len > 0)
                atoll__security_context_set_error(ctx, "%s: certificate %d cannot be parsed", what, n + 1);
            else
                material_error(ctx, what, len);
            rc = ATOLL_E_TLS_MATERIAL;
            break;
        }
        wolfSSL_X509_free(x);
        certs[n++] = (atoll_blob){.data = der, .len = (size_t)len, .format = WOLFSSL_FILETYPE_ASN1};
        p = e;
    }
    if (rc == 0 && n == 0) {
        atoll__security_context_set_error(ctx, "%s: no PEM certificate found", what);
        rc = ATOLL_E_TLS_MATERIAL;
    }
    if (rc != 0) {
        for (int i = 0; i < n; i++)
            atoll__blob_free(&certs[i], false);
        free(certs);
        return rc;
    }
    *out = certs;
    return n;
}

/* Decodes a private key to unencrypted DER, decrypting with `password`. */
int atoll__material_decode_key(atoll_security_context *ctx, const uint8_t *data, size_t len, int format,
                               const char *password, atoll_blob *out)
{
    /* PEM -> DER (and PKCS#8 decryption) never grows the data. */
    uint8_t *der = malloc(len);
    if (der == NULL)
        return -ENOMEM;
    int der_len;
    bool encrypted = false;
    if (format == WOLFSSL_FILETYPE_PEM) {
        /* Both PKCS#8 "ENCRYPTED PRIVATE KEY" and traditional
         * "Proc-Type: 4,ENCRYPTED" mention ENCRYPTED. */
        encrypted = memmem(data, len, "ENCRYPTED", 9) != NULL;
        if (encrypted && password == NULL) {
            free(der); /* nothing written to it yet */
            atoll__security_context_set_error(ctx, "private key: the key is encrypted and no password was given");
            return ATOLL_E_TLS_MATERIAL;
        }
        der_len = wc_KeyPemToDer(data, (int)len, der, (int)len, password);
        if (der_len <= 0) {
            /* A failure may come after part of the key was decoded into der. */
            atoll__secure_zero(der, len);
            free(der);
            if (encrypted) {
                atoll__security_context_set_error(
                    ctx, "private key: cannot decrypt (wrong password?) (wolfSSL error %d)", der_len);
                return ATOLL_E_TLS_MATERIAL;
            }
            return material_error(ctx, "private key", der_len);
        }
    } else {
        memcpy(der, data, len);
        der_len = (int)len;
        if (password != NULL) {
            /* Encrypted PKCS#8 in DER. A plain key with a password is
             * accepted (the password is unused), as OpenSSL does. */
            uint8_t *copy = malloc(len);
            if (copy == NULL) {
                atoll__secure_zero(der, len);
                free(der);
                return -ENOMEM;
            }
            memcpy(copy, data, len);
            int n = wc_DecryptPKCS8Key(copy, (word32)len, password, (int)strlen(password));
            if (n > 0) {
                encrypted = true;
                atoll__secure_zero(der, len);
                memcpy(der, copy, (size_t)n);
                der_len = n;
            }
            atoll__secure_zero(copy, len);
            free(copy);
        }
    }

    /* Load it: wc_KeyPemToDer does not parse the key, and a traditional PEM
     * key decrypted with a wrong password is garbage that only parsing
     * catches. */
    WOLFSSL_CTX *w = scratch_ctx();
    int rc = w != NULL ? wolfSSL_CTX_use_PrivateKey_buffer(w, der, der_len, WOLFSSL_FILETYPE_ASN1) : -ENOMEM;
    scratch_free(w);
    if (rc != WOLFSSL_SUCCESS) {
        atoll__secure_zero(der, len);
        free(der);
        if (rc == -ENOMEM)
            return rc;
        if (encrypted) {
            atoll__security_context_set_error(ctx, "private key: cannot decrypt (wrong password?) (wolfSSL error %d)",
                                              rc);
            return ATOLL_E_TLS_MATERIAL;
        }
        return material_error(ctx, "private key", rc);
    }
    *out = (atoll_blob){.data = der, .len = (size_t)der_len, .format = WOLFSSL_FILETYPE_ASN1};
    return 0;
}
