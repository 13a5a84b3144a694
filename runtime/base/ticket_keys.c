/*
 * runtime/base/ticket_keys.c: session-ticket keys shared by every isolate, and
 * the wolfSSL callback that seals and opens tickets with them.
 *
 * Ticket layout (wolfSSL owns the framing; we fill its fields):
 *   key_name = 8-byte magic naming the AEAD || epoch (64-bit big endian)
 *   iv       = 16 random bytes; the first 12 are the AEAD nonce
 *   mac      = the 16-byte AEAD tag, then 16 zero bytes
 *   ticket   = wolfSSL's internal ticket, encrypted in place
 * The AAD is key_name || iv, so neither can be swapped between tickets.
 * Keys are derived per call (one HKDF, cheap next to a handshake) rather
 * than cached, which keeps the callback free of mutable state: any isolate
 * can open any other isolate's tickets with nothing but the master secret.
 *
 * With shared keys (nginx's 80-byte ssl_session_ticket_key entries: name 16
 * || HMAC secret 32 || AES key 32), only the file format is nginx's:
 *   key_name = the key's 16-byte name (so the whole name is taken)
 *   iv       = 16 random bytes, except iv[12], which names the AEAD
 *              (AES-256-GCM or ChaCha20-Poly1305); nonce = iv[0..11]
 *   mac, AAD = as above
 * The AEAD key is HKDF-SHA256 over the 64 secret bytes with our own label
 * and the AEAD's id, not the file's AES key used as is: every secret byte
 * counts, and the same file given to nginx (AES-CBC + HMAC) or used with
 * both AEADs never puts one key to two algorithms.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "runtime/base/tls_context.h"

#define TICKET_MAGIC_SZ 8
#define TICKET_NONCE_SZ 12
#define TICKET_TAG_SZ   16

/* The magic names the AEAD, so a ticket is opened with the algorithm that
 * sealed it even if the preference differs (e.g. another build). */
static const unsigned char magic_aes[TICKET_MAGIC_SZ] = {'a', 't', 'o', 'l', 'l', 'T', 'A', '1'};
static const unsigned char magic_chacha[TICKET_MAGIC_SZ] = {'a', 't', 'o', 'l', 'l', 'T', 'C', '1'};

enum ticket_aead { AEAD_AES128_GCM, AEAD_AES256_GCM, AEAD_CHACHA20_POLY1305 };

/* Shared-key tickets: iv[SHARED_ALG_AT] names the AEAD (authenticated as
 * part of the AAD). */
#define SHARED_ALG_AT     TICKET_NONCE_SZ
#define SHARED_ALG_AES    'A'
#define SHARED_ALG_CHACHA 'C'
#define SHARED_SECRET_SZ  (ATOLL__TICKET_KEY_SZ - WOLFSSL_TICKET_NAME_SZ)

_Static_assert(WOLFSSL_TICKET_NAME_SZ == TICKET_MAGIC_SZ + 8, "key_name holds magic + epoch");
_Static_assert(WOLFSSL_TICKET_IV_SZ >= TICKET_NONCE_SZ, "iv holds the nonce");
_Static_assert(WOLFSSL_TICKET_MAC_SZ >= TICKET_TAG_SZ, "mac holds the tag");
_Static_assert(WOLFSSL_TICKET_IV_SZ > SHARED_ALG_AT, "iv holds the nonce and the AEAD id");
_Static_assert(ATOLL__TICKET_KEY_SZ == WOLFSSL_TICKET_NAME_SZ + 64, "nginx's key: name 16, secrets 32 + 32");

int atoll__ticket_keys_init(atoll_ticket_keys *keys, uint32_t rotation_s)
{
    if (keys == NULL)
        return -EINVAL;
    keys->shared = NULL;
    keys->nshared = 0;
    if (pthread_rwlock_init(&keys->lock, NULL) != 0)
        return -ENOMEM;
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0) {
        atoll__secure_zero(&rng, sizeof(rng));
        pthread_rwlock_destroy(&keys->lock);
        return -EIO;
    }
    int rc = wc_RNG_GenerateBlock(&rng, keys->master, sizeof(keys->master));
    wc_FreeRng(&rng);
    atoll__secure_zero(&rng, sizeof(rng)); /* its DRBG state produced the secret */
    if (rc != 0) {
        atoll__secure_zero(keys->master, sizeof(keys->master));
        pthread_rwlock_destroy(&keys->lock);
        return -EIO;
    }
    keys->rotation_s = rotation_s != 0 ? rotation_s : 3600;
    return 0;
}

void atoll__ticket_keys_wipe(atoll_ticket_keys *keys)
{
    if (keys == NULL)
        return;
    atoll__secure_zero(keys->master, sizeof(keys->master));
    /* No isolate reads any more (see the header): no lock needed. */
    atoll__secure_zero(keys->shared, keys->nshared * ATOLL__TICKET_KEY_SZ);
    free(keys->shared);
    keys->shared = NULL;
    keys->nshared = 0;
    pthread_rwlock_destroy(&keys->lock);
}

int atoll__ticket_keys_set(atoll_ticket_keys *keys, const void *data, size_t len)
{
    if (keys == NULL || len % ATOLL__TICKET_KEY_SZ != 0 || len > ATOLL__TICKET_KEYS_MAX * ATOLL__TICKET_KEY_SZ ||
        (len > 0 && data == NULL))
        return -EINVAL;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, data, len);
    }
    pthread_rwlock_wrlock(&keys->lock);
    uint8_t *old = keys->shared;
    size_t nold = keys->nshared;
    keys->shared = copy;
    keys->nshared = len / ATOLL__TICKET_KEY_SZ;
    pthread_rwlock_unlock(&keys->lock);
    /* Outside the lock: no reader waits on the wipe. */
    atoll__secure_zero(old, nold * ATOLL__TICKET_KEY_SZ);
    free(old);
    return 0;
}

/* Finds a shared key and copies its name and 64 secret bytes out, holding
 * the lock only for that. `name` NULL: the first key (the sealing one).
 * Returns -1 when no shared key is set, 0 when none has that name, 1 found
 * (*index = its place; with duplicate names the first one wins).
 * Thread: any. */
static int shared_key(atoll_ticket_keys *keys, const unsigned char *name,
                      unsigned char name_out[WOLFSSL_TICKET_NAME_SZ], unsigned char secret[SHARED_SECRET_SZ],
                      size_t *index)
{
    int found = -1;
    pthread_rwlock_rdlock(&keys->lock);
    if (keys->nshared > 0) {
        found = 0;
        for (size_t i = 0; i < keys->nshared; i++) {
            const uint8_t *k = keys->shared + i * ATOLL__TICKET_KEY_SZ;
            if (name == NULL || memcmp(k, name, WOLFSSL_TICKET_NAME_SZ) == 0) {
                memcpy(name_out, k, WOLFSSL_TICKET_NAME_SZ);
                memcpy(secret, k + WOLFSSL_TICKET_NAME_SZ, SHARED_SECRET_SZ);
                *index = i;
                found = 1;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&keys->lock);
    return found;
}

bool atoll__tls_aes_fast(void)
{
#if defined(WOLFSSL_AESNI) && (defined(__x86_64__) || defined(__i386__))
    /* The build's AES-NI code checks the CPU at run time too and falls back
     * to slow table AES without it: both must hold. (libgcc's constructor
     * has filled the CPU model before main; no __builtin_cpu_init, whose
     * writes would race between isolates.) */
    return __builtin_cpu_supports("aes") != 0;
#else
    return false;
#endif
}

const char *atoll__tls_cipher_preference(void)
{
    return atoll__tls_aes_fast() ? "AES-GCM first (AES-NI)" : "ChaCha20-Poly1305 first (no AES-NI)";
}

static uint64_t current_epoch(const atoll_ticket_keys *keys)
{
    uint32_t period = keys->rotation_s != 0 ? keys->rotation_s : 3600;
    time_t now = time(NULL);
    return now > 0 ? (uint64_t)now / period : 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* One HMAC-SHA256 into out[WC_SHA256_DIGEST_SIZE], with the Hmac state on
 * this frame so it can be wiped (wolfSSL's own wrappers leave their key
 * schedule, i.e. the padded key hashes, on their stack). Returns 0 or a
 * wolfCrypt error. Thread: any. */
static int hmac_sha256(const unsigned char *key, word32 key_len, const unsigned char *in1, word32 in1_len,
                       const unsigned char *in2, word32 in2_len, unsigned char *out)
{
    Hmac hmac;
    int rc = wc_HmacInit(&hmac, NULL, INVALID_DEVID);
    if (rc == 0) {
        rc = wc_HmacSetKey(&hmac, WC_SHA256, key, key_len);
        if (rc == 0)
            rc = wc_HmacUpdate(&hmac, in1, in1_len);
        if (rc == 0 && in2_len > 0)
            rc = wc_HmacUpdate(&hmac, in2, in2_len);
        if (rc == 0)
            rc = wc_HmacFinal(&hmac, out);
        wc_HmacFree(&hmac);
    }
    atoll__secure_zero(&hmac, sizeof(hmac));
    return rc;
}

/* key = HKDF-SHA256(salt = none, ikm, info), RFC 5869 written out (one
 * Expand block suffices for key_len <= 32) so that the PRK and the output
 * block live here and are wiped. Returns 0 or a wolfCrypt error.
 * Thread: any. */
static int hkdf_sha256(const unsigned char *ikm, word32 ikm_len, const unsigned char *info, word32 info_len,
                       unsigned char *key, word32 key_len)
{
    static const unsigned char zero_salt[WC_SHA256_DIGEST_SIZE];
    static const unsigned char counter = 0x01;
    if (key_len > WC_SHA256_DIGEST_SIZE)
        return BAD_FUNC_ARG;
    unsigned char prk[WC_SHA256_DIGEST_SIZE], t1[WC_SHA256_DIGEST_SIZE];
    int rc = hmac_sha256(zero_salt, sizeof(zero_salt), ikm, ikm_len, NULL, 0, prk);
    if (rc == 0)
        rc = hmac_sha256(prk, sizeof(prk), info, info_len, &counter, 1, t1);
    if (rc == 0)
        memcpy(key, t1, key_len);
    atoll__secure_zero(prk, sizeof(prk));
    atoll__secure_zero(t1, sizeof(t1));
    return rc;
}

/* The runtime's own key: HKDF-SHA256(master, info = label || magic ||
 * epoch). Returns 0 or a wolfCrypt error. Thread: any; reads `keys` only. */
static int derive_key(const atoll_ticket_keys *keys, const unsigned char *magic, uint64_t epoch, unsigned char *key,
                      word32 key_len)
{
    static const char label[] = "atoll session ticket key";
    unsigned char info[sizeof(label) - 1 + TICKET_MAGIC_SZ + 8];
    memcpy(info, label, sizeof(label) - 1);
    memcpy(info + sizeof(label) - 1, magic, TICKET_MAGIC_SZ);
    put_be64(info + sizeof(label) - 1 + TICKET_MAGIC_SZ, epoch);
    return hkdf_sha256(keys->master, sizeof(keys->master), info, sizeof(info), key, key_len);
}

/* A shared key's AEAD key: HKDF-SHA256(HMAC secret || AES key, info =
 * label || AEAD id), 32 bytes. A label of its own, so it never equals a
 * key of the runtime's scheme. Returns 0 or a wolfCrypt error.
 * Thread: any. */
static int derive_shared_key(const unsigned char secret[SHARED_SECRET_SZ], unsigned char alg_id,
                             unsigned char key[CHACHA20_POLY1305_AEAD_KEYSIZE])
{
    static const char label[] = "atoll shared session ticket key";
    unsigned char info[sizeof(label) - 1 + 1];
    memcpy(info, label, sizeof(label) - 1);
    info[sizeof(label) - 1] = alg_id;
    return hkdf_sha256(secret, SHARED_SECRET_SZ, info, sizeof(info), key, CHACHA20_POLY1305_AEAD_KEYSIZE);
}

/* Runs the AEAD in place over ticket[0, len) with `key` (16 bytes for
 * AES-128-GCM, 32 for the others). Every cipher state (the AES
 * key schedule, the ChaCha20 state and Poly1305 key) lives on this frame
 * and is wiped before returning, whatever the outcome. Returns 0, or
 * nonzero on any failure (for open: a forged or damaged ticket).
 * Thread: any. */
static int aead(enum ticket_aead alg, bool seal, const unsigned char *key, const unsigned char *nonce,
                const unsigned char *aad, word32 aad_len, unsigned char *data, word32 len, unsigned char *tag)
{
    int rc;
    if (alg == AEAD_CHACHA20_POLY1305) {
        /* The streaming calls, not the one-shot ones, so the state is ours. */
        ChaChaPoly_Aead st;
        unsigned char computed[CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE];
        rc = wc_ChaCha20Poly1305_Init(&st, key, nonce,
                                      seal ? CHACHA20_POLY1305_AEAD_ENCRYPT : CHACHA20_POLY1305_AEAD_DECRYPT);
        if (rc == 0)
            rc = wc_ChaCha20Poly1305_UpdateAad(&st, aad, aad_len);
        if (rc == 0)
            rc = wc_ChaCha20Poly1305_UpdateData(&st, data, data, len);
        if (rc == 0)
            rc = wc_ChaCha20Poly1305_Final(&st, seal ? tag : computed);
        if (rc == 0 && !seal)
            rc = wc_ChaCha20Poly1305_CheckTag(tag, computed);
        atoll__secure_zero(&st, sizeof(st));
        atoll__secure_zero(computed, sizeof(computed));
        return rc;
    }
    Aes aes;
    rc = wc_AesInit(&aes, NULL, INVALID_DEVID);
    if (rc == 0) {
        rc = wc_AesGcmSetKey(&aes, key, alg == AEAD_AES256_GCM ? AES_256_KEY_SIZE : AES_128_KEY_SIZE);
        if (rc == 0) {
            rc =
                seal
                    ? wc_AesGcmEncrypt(&aes, data, data, len, nonce, TICKET_NONCE_SZ, tag, TICKET_TAG_SZ, aad, aad_len)
                    : wc_AesGcmDecrypt(&aes, data, data, len, nonce, TICKET_NONCE_SZ, tag, TICKET_TAG_SZ, aad, aad_len);
        }
        wc_AesFree(&aes); /* frees, does not wipe the round keys / GHASH key */
    }
    atoll__secure_zero(&aes, sizeof(aes));
    return rc;
}

/* Seals (enc) or opens a ticket with shared key `secret` named `name`
 * (copied into key_name when sealing). Returns 0, or nonzero on any failure
 * (open: forged, damaged, or an unknown AEAD id). Thread: any. */
static int shared_aead(bool enc, const unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                       const unsigned char secret[SHARED_SECRET_SZ], unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                       unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                       unsigned char *ticket, int in_len)
{
    enum ticket_aead alg;
    if (enc) {
        alg = atoll__tls_aes_fast() ? AEAD_AES256_GCM : AEAD_CHACHA20_POLY1305;
        memcpy(key_name, name, WOLFSSL_TICKET_NAME_SZ);
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ)
            return -1;
        iv[SHARED_ALG_AT] = alg == AEAD_AES256_GCM ? SHARED_ALG_AES : SHARED_ALG_CHACHA;
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    } else if (iv[SHARED_ALG_AT] == SHARED_ALG_AES) {
        alg = AEAD_AES256_GCM;
    } else if (iv[SHARED_ALG_AT] == SHARED_ALG_CHACHA) {
        alg = AEAD_CHACHA20_POLY1305;
    } else {
        return -1;
    }
    unsigned char key[CHACHA20_POLY1305_AEAD_KEYSIZE];
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    int rc = derive_shared_key(secret, iv[SHARED_ALG_AT], key);
    if (rc == 0)
        rc = aead(alg, enc, key, iv, aad, sizeof(aad), ticket, (word32)in_len, mac);
    atoll__secure_zero(key, sizeof(key));
    return rc;
}

int atoll__ticket_key_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                         unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                         unsigned char *ticket, int in_len, int *out_len, void *user)
{
    (void)ssl;
    atoll_ticket_keys *keys = user;
    if (keys == NULL || ticket == NULL || in_len <= 0 || out_len == NULL)
        return WOLFSSL_TICKET_RET_FATAL;

    /* Shared keys first: the first seals; any opens a ticket named after
     * it, one not first being re-issued under the first. */
    unsigned char name[WOLFSSL_TICKET_NAME_SZ], secret[SHARED_SECRET_SZ];
    size_t index = 0;
    int shared = shared_key(keys, enc ? NULL : key_name, name, secret, &index);
    if (shared == 1) {
        int rc = shared_aead(enc != 0, name, secret, key_name, iv, mac, ticket, in_len);
        atoll__secure_zero(secret, sizeof(secret));
        if (rc != 0)
            return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
        *out_len = in_len;
        return enc || index == 0 ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
    }
    /* Not found (shared == 0): nothing was copied. With shared keys set, a
     * ticket of the runtime's own scheme still opens below (e.g. issued
     * just before the keys were set) and is re-issued under the first. */

    uint64_t now = current_epoch(keys);
    enum ticket_aead alg;
    uint64_t epoch;
    int ok;
    if (enc) {
        alg = atoll__tls_aes_fast() ? AEAD_AES128_GCM : AEAD_CHACHA20_POLY1305;
        epoch = now;
        memcpy(key_name, alg == AEAD_AES128_GCM ? magic_aes : magic_chacha, TICKET_MAGIC_SZ);
        put_be64(key_name + TICKET_MAGIC_SZ, epoch);
        /* getrandom: no RNG object to keep per thread; fails only if the
         * kernel pool is not initialised yet (no ticket then). */
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ)
            return WOLFSSL_TICKET_RET_FATAL;
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        ok = WOLFSSL_TICKET_RET_OK;
    } else {
        if (memcmp(key_name, magic_aes, TICKET_MAGIC_SZ) == 0)
            alg = AEAD_AES128_GCM;
        else if (memcmp(key_name, magic_chacha, TICKET_MAGIC_SZ) == 0)
            alg = AEAD_CHACHA20_POLY1305;
        else
            return WOLFSSL_TICKET_RET_REJECT; /* not ours: full handshake */
        epoch = get_be64(key_name + TICKET_MAGIC_SZ);
        if (epoch == now)
            ok = shared == 0 ? WOLFSSL_TICKET_RET_CREATE : WOLFSSL_TICKET_RET_OK;
        else if (now > 0 && epoch == now - 1)
            ok = WOLFSSL_TICKET_RET_CREATE; /* still good; reissue under the current key */
        else
            return WOLFSSL_TICKET_RET_REJECT; /* expired or from the future */
    }

    unsigned char key[CHACHA20_POLY1305_AEAD_KEYSIZE];
    word32 key_len = alg == AEAD_AES128_GCM ? AES_128_KEY_SIZE : CHACHA20_POLY1305_AEAD_KEYSIZE;
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);

    int rc = derive_key(keys, key_name, epoch, key, key_len);
    if (rc == 0)
        rc = aead(alg, enc != 0, key, iv, aad, sizeof(aad), ticket, (word32)in_len, mac);
    atoll__secure_zero(key, sizeof(key));
    if (rc != 0)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    *out_len = in_len; /* AEAD in place: same length, tag lives in mac */
    return ok;
}
