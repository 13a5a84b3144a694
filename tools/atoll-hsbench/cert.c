/*
 * tools/atoll-hsbench/cert.c: the server's certificate and key as PEM: the
 * ephemeral self-signed ECDSA P-256 certificate atoll-serve makes without
 * --cert (the same steps and fields as tools/atoll-serve/cert.c, so both
 * tools present the same kind and size of certificate), or --cert/--key
 * read from files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "hsbench.h"

/* Material files are small; anything bigger is a wrong path. */
#define MAX_PEM_FILE (1u << 20)

/* SubjectAltName GeneralNames: DNS:localhost, IP:127.0.0.1, IP:::1. */
static const uint8_t san_der[] = {
    0x30, 0x23,                                              /* SEQUENCE, 35 bytes */
    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* [2] dNSName */
    0x87, 0x04, 127, 0,   0,   1,                            /* [7] iPAddress v4 */
    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 1,
};

void material_free(material *m)
{
    if (m->key_pem != NULL)
        memset(m->key_pem, 0, m->key_len);
    free(m->key_pem);
    free(m->cert_pem);
    m->cert_pem = m->key_pem = NULL;
    m->cert_len = m->key_len = 0;
}

int material_make(material *m, char *err, size_t errlen)
{
    int ret;
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    memset(m, 0, sizeof(*m));
    m->what = "ephemeral ECDSA P-256";
    Cert *cert = calloc(1, sizeof(*cert));
    const word32 der_cap = 4096;
    uint8_t *der = malloc(der_cap), *kder = malloc(512);
    m->cert_pem = malloc(8192);
    m->key_pem = malloc(1024);
    if (!cert || !der || !kder || !m->cert_pem || !m->key_pem) {
        snprintf(err, errlen, "out of memory");
        ret = -1;
        goto out;
    }
#define WC_STEP(call, what)                                                                                            \
    do {                                                                                                               \
        ret = (call);                                                                                                  \
        if (ret < 0) {                                                                                                 \
            snprintf(err, errlen, "%s: %s (%d)", what, wc_GetErrorString(ret), ret);                                   \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    WC_STEP(wc_InitRng(&rng), "wc_InitRng");
    rng_ok = true;
    WC_STEP(wc_ecc_init(&key), "wc_ecc_init");
    key_ok = true;
    WC_STEP(wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1), "wc_ecc_make_key");
    WC_STEP(wc_ecc_set_rng(&key, &rng), "wc_ecc_set_rng");

    WC_STEP(wc_InitCert(cert), "wc_InitCert");
    /* atoll-serve's subject, byte for byte: the Certificate message the
     * server sends is then the same size. */
    snprintf(cert->subject.commonName, CTC_NAME_SIZE, "localhost");
    snprintf(cert->subject.org, CTC_NAME_SIZE, "atoll-serve ephemeral");
    cert->sigType = CTC_SHA256wECDSA;
    cert->daysValid = 30;
    cert->selfSigned = 1;
    cert->isCA = 0;
    memcpy(cert->altNames, san_der, sizeof(san_der));
    cert->altNamesSz = (int)sizeof(san_der);
    WC_STEP(wc_SetKeyUsage(cert, "digitalSignature"), "wc_SetKeyUsage");
    WC_STEP(wc_SetExtKeyUsage(cert, "serverAuth"), "wc_SetExtKeyUsage");
    WC_STEP(wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, &key), "wc_SetSubjectKeyId");
    WC_STEP(wc_MakeCert_ex(cert, der, der_cap, ECC_TYPE, &key, &rng), "wc_MakeCert_ex");
    WC_STEP(wc_SignCert_ex(cert->bodySz, cert->sigType, der, der_cap, ECC_TYPE, &key, &rng), "wc_SignCert_ex");
    word32 der_len = (word32)ret;
    WC_STEP(wc_DerToPem(der, der_len, m->cert_pem, 8191, CERT_TYPE), "wc_DerToPem(cert)");
    m->cert_len = (size_t)ret;
    WC_STEP(wc_EccKeyToDer(&key, kder, 512), "wc_EccKeyToDer");
    word32 kder_len = (word32)ret;
    WC_STEP(wc_DerToPem(kder, kder_len, m->key_pem, 1023, ECC_PRIVATEKEY_TYPE), "wc_DerToPem(key)");
    m->key_len = (size_t)ret;
    ret = 0;
#undef WC_STEP
out:
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    if (kder) {
        memset(kder, 0, 512);
        free(kder);
    }
    free(der);
    free(cert);
    if (ret < 0)
        material_free(m);
    return ret < 0 ? -1 : 0;
}

/* Reads a whole (small) file. 0 or a negative errno. */
static int read_small_file(const char *path, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            uint8_t *bigger = cap < MAX_PEM_FILE ? realloc(buf, cap * 2) : NULL;
            if (bigger == NULL) {
                rc = cap < MAX_PEM_FILE ? -ENOMEM : -EFBIG;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            rc = ferror(f) ? -EIO : 1; /* 1: end of file */
    }
    if (fclose(f) != 0 && rc == 1)
        rc = -errno;
    if (rc == 1 && len == 0)
        rc = -ENODATA;
    if (rc != 1) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int material_read(material *m, const char *cert, const char *key, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->what = cert;
    int rc = read_small_file(cert, &m->cert_pem, &m->cert_len);
    if (rc < 0) {
        snprintf(err, errlen, "--cert %s: %s", cert, rc == -ENODATA ? "empty file" : strerror(-rc));
        return -1;
    }
    rc = read_small_file(key, &m->key_pem, &m->key_len);
    if (rc < 0) {
        snprintf(err, errlen, "--key %s: %s", key, rc == -ENODATA ? "empty file" : strerror(-rc));
        material_free(m);
        return -1;
    }
    return 0;
}
