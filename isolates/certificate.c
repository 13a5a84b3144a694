/*
 * isolates/certificate.c: a peer's certificate (atoll_certificate).
 *
 * Everything the accessors return is computed once, when the connection's
 * handshake completes, so they are plain field reads and the object holds
 * no reference into wolfSSL (the WOLFSSL may be freed first).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "runtime/base/tls_context.h"

struct atoll_certificate {
    uint8_t *der;
    size_t der_len;
    char *pem;
    char *subject;
    char *issuer;
    int64_t not_before;
    int64_t not_after;
    uint8_t sha256[WC_SHA256_DIGEST_SIZE];
};

/* The one-line form of a name, in our own allocation ("" if absent). */
static char *name_oneline(WOLFSSL_X509_NAME *name)
{
    char *text = name != NULL ? wolfSSL_X509_NAME_oneline(name, NULL, 0) : NULL;
    char *copy = strdup(text != NULL ? text : "");
    if (text != NULL)
        wolfSSL_OPENSSL_free(text);
    return copy;
}

/* ASN.1 time -> Unix seconds (struct tm in UTC, as timegm wants it). */
/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool parse_digits(const unsigned char *p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* UTCTime (YYMMDDHHMMSSZ, RFC 5280: YY < 50 is 20YY) or GeneralizedTime
 * (YYYYMMDDHHMMSSZ) to seconds since the epoch. Parsed here rather than
 * with wolfSSL_ASN1_TIME_to_tm, which goes through libc's time zone state
 * (tzset), shared by every thread of the process. */
static int asn1_time_to_unix(WOLFSSL_ASN1_TIME *t, int64_t *out)
{
    if (t == NULL)
        return -EINVAL;
    const unsigned char *p = wolfSSL_ASN1_TIME_get_data(t);
    int len = wolfSSL_ASN1_TIME_get_length(t);
    unsigned year, mon, day, hh, mm, ss;
    if (p == NULL || (len != 13 && len != 15) || p[len - 1] != 'Z')
        return -EINVAL;
    int yl = len == 13 ? 2 : 4;
    if (!parse_digits(p, yl, &year) || !parse_digits(p + yl, 2, &mon) || !parse_digits(p + yl + 2, 2, &day) ||
        !parse_digits(p + yl + 4, 2, &hh) || !parse_digits(p + yl + 6, 2, &mm) || !parse_digits(p + yl + 8, 2, &ss))
        return -EINVAL;
    if (yl == 2)
        year += year < 50 ? 2000 : 1900;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
        return -EINVAL;
    *out = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

void atoll__certificate_free(atoll_certificate *cert)
{
    if (cert == NULL)
        return;
    free(cert->der);
    free(cert->pem);
    free(cert->subject);
    free(cert->issuer);
    free(cert);
}

static int from_x509(WOLFSSL_X509 *x, atoll_certificate **out)
{
    int der_len = 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &der_len);
    if (der == NULL || der_len <= 0)
        return -EINVAL;

    atoll_certificate *cert = calloc(1, sizeof(*cert));
    if (cert == NULL)
        return -ENOMEM;
    cert->der = malloc((size_t)der_len);
    if (cert->der == NULL)
        goto nomem;
    memcpy(cert->der, der, (size_t)der_len);
    cert->der_len = (size_t)der_len;

    /* wc_DerToPem with no output buffer returns the size it needs. */
    int pem_len = wc_DerToPem(cert->der, (word32)der_len, NULL, 0, CERT_TYPE);
    if (pem_len <= 0)
        goto bad;
    cert->pem = malloc((size_t)pem_len + 1);
    if (cert->pem == NULL)
        goto nomem;
    pem_len = wc_DerToPem(cert->der, (word32)der_len, (byte *)cert->pem, (word32)pem_len, CERT_TYPE);
    if (pem_len <= 0)
        goto bad;
    cert->pem[pem_len] = '\0';

    cert->subject = name_oneline(wolfSSL_X509_get_subject_name(x));
    cert->issuer = name_oneline(wolfSSL_X509_get_issuer_name(x));
    if (cert->subject == NULL || cert->issuer == NULL)
        goto nomem;
    if (asn1_time_to_unix(wolfSSL_X509_get_notBefore(x), &cert->not_before) != 0 ||
        asn1_time_to_unix(wolfSSL_X509_get_notAfter(x), &cert->not_after) != 0)
        goto bad;
    if (wc_Sha256Hash(cert->der, (word32)der_len, cert->sha256) != 0)
        goto bad;
    *out = cert;
    return 0;

nomem:
    atoll__certificate_free(cert);
    return -ENOMEM;
bad:
    atoll__certificate_free(cert);
    return -EINVAL;
}

int atoll__certificate_from_peer(WOLFSSL *ssl, atoll_certificate **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (ssl == NULL)
        return -EINVAL;
    /* With OPENSSL_EXTRA this is a copy we own (OpenSSL's get1 rules). */
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
    if (x == NULL)
        return 0;
    int rc = from_x509(x, out);
    wolfSSL_X509_free(x);
    return rc;
}

const uint8_t *atoll_certificate_der(const atoll_certificate *cert, size_t *len)
{
    if (cert == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = cert->der_len;
    return cert->der;
}

const char *atoll_certificate_pem(const atoll_certificate *cert)
{
    return cert != NULL ? cert->pem : NULL;
}

const char *atoll_certificate_subject(const atoll_certificate *cert)
{
    return cert != NULL ? cert->subject : NULL;
}

const char *atoll_certificate_issuer(const atoll_certificate *cert)
{
    return cert != NULL ? cert->issuer : NULL;
}

int64_t atoll_certificate_not_before(const atoll_certificate *cert)
{
    return cert != NULL ? cert->not_before : 0;
}

int64_t atoll_certificate_not_after(const atoll_certificate *cert)
{
    return cert != NULL ? cert->not_after : 0;
}

const uint8_t *atoll_certificate_sha256(const atoll_certificate *cert)
{
    return cert != NULL ? cert->sha256 : NULL;
}
