/*
 * tools/common/ephemeral_cert.c: the ephemeral self-signed ECDSA P-256
 * certificate atoll-serve and atoll-hsbench make without --cert, built with
 * wolfCrypt in memory.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "common/ephemeral_cert.h"

/* Output room: a P-256 certificate is well under 1 KiB of DER. */
#define CERT_DER_CAP 4096u
#define CERT_PEM_CAP 8192u
#define KEY_DER_CAP  512u
#define KEY_PEM_CAP  1024u

/* SubjectAltName GeneralNames: DNS:localhost, IP:127.0.0.1, IP:::1. */
static const uint8_t san_der[] = {
    0x30, 0x23,                                              /* SEQUENCE, 35 bytes */
    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* [2] dNSName */
    0x87, 0x04, 127, 0,   0,   1,                            /* [7] iPAddress v4 */
    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 1,
};

int ephemeral_cert_make(uint8_t **cert_pem, size_t *cert_len, uint8_t **key_pem, size_t *key_len, char *err,
                        size_t errlen)
{
    int ret;
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    *cert_len = *key_len = 0;
    Cert *cert = calloc(1, sizeof(*cert));
    uint8_t *der = malloc(CERT_DER_CAP), *kder = malloc(KEY_DER_CAP);
    *cert_pem = malloc(CERT_PEM_CAP);
    *key_pem = malloc(KEY_PEM_CAP);
    if (!cert || !der || !kder || !*cert_pem || !*key_pem) {
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
    /* The subject names atoll-serve, for both tools: the Certificate
     * message a server sends is then the same size whichever made it. */
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
    WC_STEP(wc_MakeCert_ex(cert, der, CERT_DER_CAP, ECC_TYPE, &key, &rng), "wc_MakeCert_ex");
    WC_STEP(wc_SignCert_ex(cert->bodySz, cert->sigType, der, CERT_DER_CAP, ECC_TYPE, &key, &rng), "wc_SignCert_ex");
    word32 der_len = (word32)ret;
    /* CAP - 1, as the tools' own generators asked: one byte stays spare. */
    WC_STEP(wc_DerToPem(der, der_len, *cert_pem, CERT_PEM_CAP - 1, CERT_TYPE), "wc_DerToPem(cert)");
    *cert_len = (size_t)ret;
    WC_STEP(wc_EccKeyToDer(&key, kder, KEY_DER_CAP), "wc_EccKeyToDer");
    word32 kder_len = (word32)ret;
    WC_STEP(wc_DerToPem(kder, kder_len, *key_pem, KEY_PEM_CAP - 1, ECC_PRIVATEKEY_TYPE), "wc_DerToPem(key)");
    *key_len = (size_t)ret;
    ret = 0;
#undef WC_STEP
out:
    if (key_ok)
        wc_ecc_free(&key); /* zeroes the private scalar */
    if (rng_ok)
        wc_FreeRng(&rng);
    /* explicit_bzero, not memset: a store just before free() is dead to
     * the compiler and may be dropped. */
    explicit_bzero(&key, sizeof(key));
    explicit_bzero(&rng, sizeof(rng)); /* its DRBG state made the key */
    if (kder) {
        explicit_bzero(kder, KEY_DER_CAP);
        free(kder);
    }
    free(der);
    free(cert);
    if (ret < 0) {
        if (*key_pem != NULL)
            explicit_bzero(*key_pem, KEY_PEM_CAP); /* a key may have been written */
        free(*key_pem);
        free(*cert_pem);
        *cert_pem = *key_pem = NULL;
        *cert_len = *key_len = 0;
        return -1;
    }
    return 0;
}
