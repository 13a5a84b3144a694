/*
 * tools/atoll-serve/files.c: whole-file input and output for atoll-serve:
 * reading a certificate or key file into memory, and writing the
 * certificate chain for --write-cert through a temporary file renamed into
 * place, so a reader never sees a partial file; and the session-ticket key
 * files (--ticket-key-file), at start-up and on SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

/* Frees a buffer that may hold key bytes, wiped first. */
static void free_wiped(uint8_t *buf, size_t len)
{
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
}

int read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    /* The file may be a private key: no stdio buffer (freed unwiped by
     * fclose), and no realloc (which frees the old block unwiped). */
    setvbuf(f, NULL, _IONBF, 0);
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -ENOMEM;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free_wiped(buf, n);
                fclose(f);
                return -e;
            }
            break;
        }
        if (cap > (64u << 20)) {
            free_wiped(buf, n);
            fclose(f);
            return -EFBIG;
        }
        uint8_t *nb = malloc(cap * 2 + 1);
        if (nb)
            memcpy(nb, buf, n);
        free_wiped(buf, n);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

/* nginx's ssl_session_ticket_key entry; the library's cap on keys. */
#define TICKET_KEY_SZ   80
#define TICKET_KEYS_MAX 64

int read_ticket_keys(uint8_t **keys, size_t *len, char *why, size_t why_len)
{
    const config *cfg = &g.cfg;
    *keys = NULL;
    *len = 0;
    /* At most TICKET_KEYS_MAX keys in all: a fixed buffer, no realloc
     * (which would free key bytes unwiped). */
    uint8_t *all = malloc(TICKET_KEYS_MAX * TICKET_KEY_SZ);
    if (!all) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    size_t total = 0;
    for (size_t i = 0; i < cfg->nticket_key_files; i++) {
        const char *path = cfg->ticket_key_files[i];
        uint8_t *data;
        size_t n;
        int rc = read_file(path, &data, &n);
        if (rc < 0) {
            snprintf(why, why_len, "%s: %s", path, strerror(-rc));
            free_wiped(all, total);
            return -1;
        }
        bool bad_size = n == 0 || n % TICKET_KEY_SZ != 0;
        bool too_many = !bad_size && total + n > TICKET_KEYS_MAX * TICKET_KEY_SZ;
        if (!bad_size && !too_many)
            memcpy(all + total, data, n);
        free_wiped(data, n);
        if (bad_size || too_many) {
            if (bad_size)
                snprintf(why, why_len, "%s: %zu bytes, not a positive multiple of %d (80-byte keys)", path, n,
                         TICKET_KEY_SZ);
            else
                snprintf(why, why_len, "%s: more than %d keys in all", path, TICKET_KEYS_MAX);
            free_wiped(all, total);
            return -1;
        }
        total += n;
    }
    *keys = all;
    *len = total;
    return 0;
}

void free_ticket_keys(uint8_t *keys, size_t len)
{
    free_wiped(keys, len);
}

int write_whole_file(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return -e;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}
