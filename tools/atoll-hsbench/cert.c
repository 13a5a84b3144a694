/*
 * tools/atoll-hsbench/cert.c: the server's certificate and key as PEM: the
 * ephemeral self-signed ECDSA P-256 certificate atoll-serve makes without
 * --cert (tools/common/ephemeral_cert.c, the generator both tools share),
 * or --cert/--key read from files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ephemeral_cert.h"
#include "hsbench.h"

/* Material files are small; anything bigger is a wrong path. */
#define MAX_PEM_FILE (1u << 20)

void material_free(material *m)
{
    if (m->key_pem != NULL)
        explicit_bzero(m->key_pem, m->key_len);
    free(m->key_pem);
    free(m->cert_pem);
    m->cert_pem = m->key_pem = NULL;
    m->cert_len = m->key_len = 0;
}

int material_make(material *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->what = "ephemeral ECDSA P-256";
    return ephemeral_cert_make(&m->cert_pem, &m->cert_len, &m->key_pem, &m->key_len, err, errlen);
}

/* Frees a buffer that may hold key bytes, wiped first. */
static void free_wiped(uint8_t *buf, size_t len)
{
    if (buf != NULL)
        explicit_bzero(buf, len);
    free(buf);
}

/* Reads a whole (small) file, which may be a private key: no stdio buffer
 * and no realloc, which would both free copies unwiped. 0 or a negative
 * errno. */
static int read_small_file(const char *path, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    setvbuf(f, NULL, _IONBF, 0);
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            uint8_t *bigger = cap < MAX_PEM_FILE ? malloc(cap * 2) : NULL;
            if (bigger == NULL) {
                rc = cap < MAX_PEM_FILE ? -ENOMEM : -EFBIG;
                break;
            }
            memcpy(bigger, buf, len);
            free_wiped(buf, len);
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
        free_wiped(buf, len);
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
