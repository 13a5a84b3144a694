/*
 * tools/common/ephemeral_cert.h: the ephemeral self-signed certificate the
 * tools make when no --cert is given. One generator, so atoll-serve and
 * atoll-hsbench present the same kind and size of certificate.
 */
#ifndef ATOLL_TOOLS_COMMON_EPHEMERAL_CERT_H
#define ATOLL_TOOLS_COMMON_EPHEMERAL_CERT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Makes a self-signed ECDSA P-256 certificate (SHA-256 signature, subject
 * CN=localhost O=atoll-serve ephemeral, SANs DNS:localhost, IP:127.0.0.1,
 * IP:::1, key usage digitalSignature, extended key usage serverAuth, valid
 * 30 days, not a CA) and its private key, both PEM, in memory.
 * 0 with *cert_pem and *key_pem malloc'd (the caller frees them and wipes
 * the key first), or -1 with both NULL and the reason in err.
 */
int ephemeral_cert_make(uint8_t **cert_pem, size_t *cert_len, uint8_t **key_pem, size_t *key_len, char *err,
                        size_t errlen);

#endif /* ATOLL_TOOLS_COMMON_EPHEMERAL_CERT_H */
