/*
 * tools/atoll-serve/cert.c: the server's TLS material: the certificate
 * chain and key from --cert/--key (PEM or DER, told apart by their first
 * bytes), or an ephemeral self-signed ECDSA P-256 certificate made in
 * memory, and the --client-ca certificates, all loaded into the security
 * context the listener uses.
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

#include "serve.h"

static atoll_encoding guess_encoding(const uint8_t *data, size_t len)
{
    /* DER starts with a SEQUENCE tag; PEM is text with a BEGIN line. */
    if (len > 0 && data[0] == 0x30 && !memmem(data, len, "-----BEGIN", 10))
        return ATOLL_ENCODING_DER;
    return ATOLL_ENCODING_PEM;
}

/* SubjectAltName GeneralNames: DNS:localhost, IP:127.0.0.1, IP:::1. */
static const uint8_t san_der[] = {
    0x30, 0x23,                                              /* SEQUENCE, 35 bytes */
    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* [2] dNSName */
    0x87, 0x04, 127, 0,   0,   1,                            /* [7] iPAddress v4 */
    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 1,
};

/* Makes an ephemeral self-signed ECDSA P-256 certificate and its key, PEM. */
static int make_self_signed(pem_buf *cert_pem, pem_buf *key_pem, char *err, size_t errlen)
{
    int ret;
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    Cert *cert = calloc(1, sizeof(*cert));
    const word32 der_cap = 4096;
    uint8_t *der = malloc(der_cap), *kder = malloc(512);
    cert_pem->data = malloc(8192);
    key_pem->data = malloc(1024);
    if (!cert || !der || !kder || !cert_pem->data || !key_pem->data) {
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
    WC_STEP(wc_DerToPem(der, der_len, cert_pem->data, 8191, CERT_TYPE), "wc_DerToPem(cert)");
    cert_pem->len = (size_t)ret;
    WC_STEP(wc_EccKeyToDer(&key, kder, 512), "wc_EccKeyToDer");
    word32 kder_len = (word32)ret;
    WC_STEP(wc_DerToPem(kder, kder_len, key_pem->data, 1023, ECC_PRIVATEKEY_TYPE), "wc_DerToPem(key)");
    key_pem->len = (size_t)ret;
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
    if (ret < 0) {
        free(cert_pem->data);
        free(key_pem->data);
        cert_pem->data = key_pem->data = NULL;
    }
    return ret;
}

int load_material(atoll_security_context *ctx, pem_buf *chain_out)
{
    const config *cfg = &g.cfg;
    int rc;
    chain_out->data = NULL;
    chain_out->len = 0;
    if (cfg->cert) {
        uint8_t *cd, *kd;
        size_t cl, kl;
        if ((rc = read_file(cfg->cert, &cd, &cl)) < 0) {
            fprintf(stderr, PROG ": --cert %s: %s\n", cfg->cert, strerror(-rc));
            return -1;
        }
        atoll_encoding ce = guess_encoding(cd, cl);
        rc = atoll_security_context_use_certificate_chain(ctx, cd, cl, ce);
        if (rc < 0) {
            fprintf(stderr, PROG ": --cert %s: %s: %s\n", cfg->cert, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            free(cd);
            return -1;
        }
        if (ce == ATOLL_ENCODING_DER) {
            /* Keep a PEM copy for --write-cert. */
            uint8_t *pem = malloc(cl * 2 + 256);
            int n = pem ? wc_DerToPem(cd, (word32)cl, pem, (word32)(cl * 2 + 256), CERT_TYPE) : -1;
            free(cd);
            if (n < 0) {
                free(pem);
                fprintf(stderr, PROG ": --cert %s: cannot convert to PEM\n", cfg->cert);
                return -1;
            }
            cd = pem;
            cl = (size_t)n;
        }
        chain_out->data = cd;
        chain_out->len = cl;
        if ((rc = read_file(cfg->key, &kd, &kl)) < 0) {
            fprintf(stderr, PROG ": --key %s: %s\n", cfg->key, strerror(-rc));
            return -1;
        }
        rc = atoll_security_context_use_private_key(ctx, kd, kl, guess_encoding(kd, kl), cfg->key_password);
        memset(kd, 0, kl);
        free(kd);
        if (rc < 0) {
            fprintf(stderr, PROG ": --key %s: %s: %s\n", cfg->key, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            return -1;
        }
    } else {
        pem_buf cert = {0}, key = {0};
        char err[256];
        if (make_self_signed(&cert, &key, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": making the self-signed certificate: %s\n", err);
            return -1;
        }
        rc = atoll_security_context_use_certificate_chain(ctx, cert.data, cert.len, ATOLL_ENCODING_PEM);
        if (rc == 0)
            rc = atoll_security_context_use_private_key(ctx, key.data, key.len, ATOLL_ENCODING_PEM, NULL);
        memset(key.data, 0, key.len);
        free(key.data);
        if (rc < 0) {
            fprintf(stderr, PROG ": loading the self-signed certificate: %s: %s\n", atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            free(cert.data);
            return -1;
        }
        *chain_out = cert;
    }
    if (cfg->client_ca) {
        uint8_t *d;
        size_t l;
        if ((rc = read_file(cfg->client_ca, &d, &l)) < 0) {
            fprintf(stderr, PROG ": --client-ca %s: %s\n", cfg->client_ca, strerror(-rc));
            return -1;
        }
        atoll_encoding e = guess_encoding(d, l);
        rc = atoll_security_context_set_trusted_certificates(ctx, d, l, e);
        if (rc == 0)
            rc = atoll_security_context_set_client_authorities(ctx, d, l, e);
        free(d);
        if (rc < 0) {
            fprintf(stderr, PROG ": --client-ca %s: %s: %s\n", cfg->client_ca, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            return -1;
        }
    }
    return 0;
}
