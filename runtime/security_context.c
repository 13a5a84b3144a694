/*
 * runtime/security_context.c: security contexts (atoll/tls.h) and the
 * per-isolate wolfSSL server contexts built from them.
 *
 * A context keeps its own copy of every piece of material, validated as it
 * arrives by loading it into a throw-away WOLFSSL_CTX, so a mistake is
 * reported by the call that made it rather than by the first handshake.
 * Private keys are stored decrypted, as DER (wiped on free): the password
 * is used once, here, and never kept, and the isolates' contexts need no
 * password callback.
 *
 * Once bound (atoll__security_context_acquire or atoll__tls_server_ctx_new)
 * a context is read-only, and isolates read it concurrently without a lock;
 * set_/use_ calls then fail with ATOLL_E_STATE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "atoll/error.h"
#include "runtime/tls_context.h"

/* Material files are small; anything bigger is a wrong path. */
#define MAX_MATERIAL_FILE (16u << 20)

/* One blob of material as given (PEM text or DER bytes). */
typedef struct blob {
    uint8_t *data;
    size_t len;
    int format; /* WOLFSSL_FILETYPE_PEM / _ASN1 */
} blob;

struct atoll_security_context {
    atomic_uint refs;
    /* Set when a server binds: from then on the material is read-only. */
    atomic_bool in_use;
    blob chain;
    blob key;      /* decrypted DER, wiped on free */
    blob *trusted; /* each set_trusted_certificates call adds one */
    size_t ntrusted;
    blob *authorities; /* one DER certificate each */
    size_t nauthorities;
    int min_version; /* WOLFSSL_TLSV1_2 / _3 */
    char last_error[256];
};

/* ---- helpers ----------------------------------------------------------- */

static void blob_free(blob *b, bool wipe)
{
    if (b->data != NULL && wipe)
        explicit_bzero(b->data, b->len);
    free(b->data);
    *b = (blob){0};
}

static int blob_copy(blob *out, const void *data, size_t len, int format)
{
    out->data = malloc(len);
    if (out->data == NULL)
        return -ENOMEM;
    memcpy(out->data, data, len);
    out->len = len;
    out->format = format;
    return 0;
}

static void set_error(atoll_security_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(atoll_security_context *ctx, const char *fmt, ...)
{
    /* The reason is ours now: drop what wolfSSL queued on this thread. */
    wolfSSL_ERR_clear_error();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof(ctx->last_error), fmt, ap);
    va_end(ap);
}

/* Records wolfSSL's reason for `rc` (a wolfSSL return or error code). */
static int material_error(atoll_security_context *ctx, const char *what, int rc)
{
    char reason[96];
    wolfSSL_ERR_error_string_n((unsigned long)rc, reason, sizeof(reason));
    set_error(ctx, "%s: %s (wolfSSL error %d)", what, reason, rc);
    return ATOLL_E_TLS_MATERIAL;
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
    set_error(ctx, "unknown encoding %d", (int)enc);
    return -EINVAL;
}

/* Common entry checks of every set_/use_ call. */
static int begin_set(atoll_security_context *ctx, const void *data, size_t len)
{
    if (ctx == NULL)
        return -EINVAL;
    ctx->last_error[0] = '\0';
    if (atomic_load(&ctx->in_use)) {
        set_error(ctx, "the context is in use by a server and can no longer change");
        return ATOLL_E_STATE;
    }
    if (data == NULL || len == 0) {
        set_error(ctx, "no material (NULL or empty)");
        return -EINVAL;
    }
    if (len > INT_MAX) {
        set_error(ctx, "material too large");
        return -EINVAL;
    }
    wolfSSL_ERR_clear_error();
    return 0;
}

static int read_file(atoll_security_context *ctx, const char *path, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    if (ctx == NULL)
        return -EINVAL;
    ctx->last_error[0] = '\0';
    if (path == NULL) {
        set_error(ctx, "no file name");
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        set_error(ctx, "%s: %s", path, strerror(err));
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
        free(buf);
        set_error(ctx, "%s: %s", path, rc == -EINVAL ? "empty or not a regular file" : strerror(-rc));
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

/* begin_set() plus the wolfSSL format of `enc`: the prologue of every
 * use_/set_ call that takes material. */
static int begin_set_format(atoll_security_context *ctx, const void *data, size_t len, atoll_encoding enc, int *format)
{
    int rc = begin_set(ctx, data, len);
    return rc != 0 ? rc : wolfssl_format(ctx, enc, format);
}

/* Validates material by loading it into a throwaway context with `load`. */
static int scratch_load(atoll_security_context *ctx, const char *what,
                        int (*load)(WOLFSSL_CTX *, const unsigned char *, long, int), const void *data, size_t len,
                        int format)
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
static int ec_pair_matches(const blob *chain, const blob *key)
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
        explicit_bzero(priv_der, key->len);
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
static int check_pair(const blob *chain, const blob *key, int *wolf_rc)
{
    WOLFSSL_CTX *w = scratch_ctx();
    if (w == NULL)
        return -ENOMEM;
    int rc = wolfSSL_CTX_use_certificate_chain_buffer_format(w, chain->data, (long)chain->len, chain->format);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CTX_use_PrivateKey_buffer(w, key->data, (long)key->len, WOLFSSL_FILETYPE_ASN1);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CTX_check_private_key(w);
    scratch_free(w);
    if (rc == WOLFSSL_SUCCESS && ec_pair_matches(chain, key) == 0)
        rc = WOLFSSL_FAILURE;
    *wolf_rc = rc;
    return rc == WOLFSSL_SUCCESS ? 0 : ATOLL_E_TLS_MATERIAL;
}

/*
 * Splits `b` into DER certificates (PEM: every CERTIFICATE block; DER: one).
 * Returns the count (> 0) or a negative code with the reason in ctx.
 */
static int split_certificates(atoll_security_context *ctx, const char *what, const blob *b, blob **out)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    *out = NULL;
    if (b->format == WOLFSSL_FILETYPE_ASN1) {
        WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(b->data, (int)b->len, WOLFSSL_FILETYPE_ASN1);
        if (x == NULL) {
            set_error(ctx, "%s: not a DER certificate", what);
            return ATOLL_E_TLS_MATERIAL;
        }
        wolfSSL_X509_free(x);
        blob *one = calloc(1, sizeof(*one));
        if (one == NULL || blob_copy(one, b->data, b->len, WOLFSSL_FILETYPE_ASN1) != 0) {
            free(one);
            return -ENOMEM;
        }
        *out = one;
        return 1;
    }

    blob *certs = NULL;
    int n = 0, rc = 0;
    const char *p = (const char *)b->data, *limit = p + b->len;
    while (rc == 0) {
        const char *s = memmem(p, (size_t)(limit - p), begin, sizeof(begin) - 1);
        if (s == NULL)
            break;
        const char *e = memmem(s, (size_t)(limit - s), end, sizeof(end) - 1);
        if (e == NULL) {
            set_error(ctx, "%s: certificate %d has no END line", what, n + 1);
            rc = ATOLL_E_TLS_MATERIAL;
            break;
        }
        e += sizeof(end) - 1;
        /* DER is shorter than its base64 text. */
        size_t cap = (size_t)(e - s);
        uint8_t *der = malloc(cap);
        blob *grown = realloc(certs, (size_t)(n + 1) * sizeof(*certs));
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
                set_error(ctx, "%s: certificate %d cannot be parsed", what, n + 1);
            else
                material_error(ctx, what, len);
            rc = ATOLL_E_TLS_MATERIAL;
            break;
        }
        wolfSSL_X509_free(x);
        certs[n++] = (blob){.data = der, .len = (size_t)len, .format = WOLFSSL_FILETYPE_ASN1};
        p = e;
    }
    if (rc == 0 && n == 0) {
        set_error(ctx, "%s: no PEM certificate found", what);
        rc = ATOLL_E_TLS_MATERIAL;
    }
    if (rc != 0) {
        for (int i = 0; i < n; i++)
            blob_free(&certs[i], false);
        free(certs);
        return rc;
    }
    *out = certs;
    return n;
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
    blob_free(&ctx->chain, false);
    blob_free(&ctx->key, true);
    for (size_t i = 0; i < ctx->ntrusted; i++)
        blob_free(&ctx->trusted[i], false);
    free(ctx->trusted);
    for (size_t i = 0; i < ctx->nauthorities; i++)
        blob_free(&ctx->authorities[i], false);
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

    rc = scratch_load(ctx, "certificate chain", wolfSSL_CTX_use_certificate_chain_buffer_format, data, len, format);
    if (rc != 0)
        return rc;
    /* A key in PEM format is a "no certificate" error above; make sure the
     * leaf really is a certificate in DER too (wolfSSL parses it lazily). */
    blob given = {.data = (uint8_t *)(uintptr_t)data, .len = len, .format = format};
    blob *certs = NULL;
    int n = split_certificates(ctx, "certificate chain", &given, &certs);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++)
        blob_free(&certs[i], false);
    free(certs);

    blob chain;
    if (blob_copy(&chain, data, len, format) != 0)
        return -ENOMEM;
    if (ctx->key.data != NULL) {
        /* As OpenSSL does, a new chain that does not match the key set
         * earlier drops that key rather than failing: the usual order is
         * chain then key, and a replaced pair comes chain first. */
        int pair_rc;
        rc = check_pair(&chain, &ctx->key, &pair_rc);
        if (rc == -ENOMEM) {
            blob_free(&chain, false);
            return rc;
        }
        if (rc != 0)
            blob_free(&ctx->key, true);
    }
    blob_free(&ctx->chain, false);
    ctx->chain = chain;
    return 0;
}

/* Decodes a private key to unencrypted DER, decrypting with `password`. */
static int decode_key(atoll_security_context *ctx, const uint8_t *data, size_t len, int format, const char *password,
                      blob *out)
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
            free(der);
            set_error(ctx, "private key: the key is encrypted and no password was given");
            return ATOLL_E_TLS_MATERIAL;
        }
        der_len = wc_KeyPemToDer(data, (int)len, der, (int)len, password);
        if (der_len <= 0) {
            free(der);
            if (encrypted) {
                set_error(ctx, "private key: cannot decrypt (wrong password?) (wolfSSL error %d)", der_len);
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
                free(der);
                return -ENOMEM;
            }
            memcpy(copy, data, len);
            int n = wc_DecryptPKCS8Key(copy, (word32)len, password, (int)strlen(password));
            if (n > 0) {
                encrypted = true;
                explicit_bzero(der, len);
                memcpy(der, copy, (size_t)n);
                der_len = n;
            }
            explicit_bzero(copy, len);
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
        explicit_bzero(der, len);
        free(der);
        if (rc == -ENOMEM)
            return rc;
        if (encrypted) {
            set_error(ctx, "private key: cannot decrypt (wrong password?) (wolfSSL error %d)", rc);
            return ATOLL_E_TLS_MATERIAL;
        }
        return material_error(ctx, "private key", rc);
    }
    *out = (blob){.data = der, .len = (size_t)der_len, .format = WOLFSSL_FILETYPE_ASN1};
    return 0;
}

int atoll_security_context_use_private_key(atoll_security_context *ctx, const void *data, size_t len,
                                           atoll_encoding enc, const char *password)
{
    int format = 0;
    int rc = begin_set_format(ctx, data, len, enc, &format);
    if (rc != 0)
        return rc;
    blob key;
    rc = decode_key(ctx, data, len, format, password, &key);
    if (rc != 0)
        return rc;
    if (ctx->chain.data != NULL) {
        int pair_rc;
        rc = check_pair(&ctx->chain, &key, &pair_rc);
        if (rc != 0) {
            blob_free(&key, true);
            if (rc == ATOLL_E_TLS_MATERIAL)
                set_error(ctx, "private key does not match the certificate chain (wolfSSL error %d)", pair_rc);
            return rc;
        }
    }
    blob_free(&ctx->key, true);
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
    rc = scratch_load(ctx, "trusted certificates", wolfSSL_CTX_load_verify_buffer, data, len, format);
    if (rc != 0)
        return rc;
    blob *grown = realloc(ctx->trusted, (ctx->ntrusted + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    ctx->trusted = grown;
    if (blob_copy(&ctx->trusted[ctx->ntrusted], data, len, format) != 0)
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
    blob given = {.data = (uint8_t *)(uintptr_t)data, .len = len, .format = format};
    blob *certs = NULL;
    int n = split_certificates(ctx, "client authorities", &given, &certs);
    if (n < 0)
        return n;
    for (size_t i = 0; i < ctx->nauthorities; i++)
        blob_free(&ctx->authorities[i], false);
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
        set_error(ctx, "the context is in use by a server and can no longer change");
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
    set_error(ctx, "unsupported TLS version 0x%04x", (unsigned)v);
    return -EINVAL;
}

/* The file variants: read, then the same as from memory. */
#define FROM_FILE(call)                                                                                                \
    do {                                                                                                               \
        uint8_t *buf;                                                                                                  \
        size_t len = 0;                                                                                                \
        int rc_ = read_file(ctx, path, &buf, &len);                                                                    \
        if (rc_ != 0)                                                                                                  \
            return rc_;                                                                                                \
        rc_ = call;                                                                                                    \
        explicit_bzero(buf, len);                                                                                      \
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

/* ---- per-isolate wolfSSL contexts --------------------------------------- */

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
        const blob *b = &ctx->authorities[i];
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
        const blob *b = &ctx->trusted[i];
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
