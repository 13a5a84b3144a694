/*
 * tools/atoll-serve/cert.c: the server's TLS material: the certificate
 * chain and key from --cert/--key (PEM or DER, told apart by their first
 * bytes), or an ephemeral self-signed ECDSA P-256 certificate made in
 * memory (tools/common/ephemeral_cert.c), and the --client-ca certificates,
 * all loaded into the security context the listener uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "common/ephemeral_cert.h"
#include "serve.h"

static atoll_encoding guess_encoding(const uint8_t *data, size_t len)
{
    /* DER starts with a SEQUENCE tag; PEM is text with a BEGIN line. */
    if (len > 0 && data[0] == 0x30 && !memmem(data, len, "-----BEGIN", 10))
        return ATOLL_ENCODING_DER;
    return ATOLL_ENCODING_PEM;
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
        explicit_bzero(kd, kl);
        free(kd);
        if (rc < 0) {
            fprintf(stderr, PROG ": --key %s: %s: %s\n", cfg->key, atoll_strerror(rc),
                    atoll_security_context_last_error(ctx));
            return -1;
        }
    } else {
        pem_buf cert = {0}, key = {0};
        char err[256];
        if (ephemeral_cert_make(&cert.data, &cert.len, &key.data, &key.len, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": making the self-signed certificate: %s\n", err);
            return -1;
        }
        rc = atoll_security_context_use_certificate_chain(ctx, cert.data, cert.len, ATOLL_ENCODING_PEM);
        if (rc == 0)
            rc = atoll_security_context_use_private_key(ctx, key.data, key.len, ATOLL_ENCODING_PEM, NULL);
        explicit_bzero(key.data, key.len);
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
