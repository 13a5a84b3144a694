/*
 * runtime/base/tls_context.h: what the isolates need from a security context and
 * from the runtime's session-ticket keys. Internal.
 */
#ifndef ATOLL_RUNTIME_TLS_CONTEXT_H
#define ATOLL_RUNTIME_TLS_CONTEXT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "atoll/tls.h"

/*
 * Session-ticket keys owned by the runtime and shared by all its isolates.
 *
 * The runtime's own keys need no lock and no shared mutable state: a 32-byte
 * master secret drawn at runtime creation; the key of epoch E (E = unix time
 * / rotation period) is derived from (master, E) with HKDF-SHA256. Tickets
 * are sealed with the current epoch's key (AES-128-GCM or ChaCha20-Poly1305,
 * whichever is fast here, see atoll__tls_aes_fast) and carry E in their key
 * name; tickets of the current and the previous epoch are accepted, older
 * ones are refused (full handshake). Resumption therefore works whichever
 * isolate a client reconnects to.
 *
 * Shared keys (atoll_runtime_set_ticket_keys: nginx's ssl_session_ticket_key
 * format, 80 bytes a key) replace them for sealing when set, so that several
 * processes or hosts resume each other's sessions: the first seals, all
 * open. They change while isolates read them, hence `lock`; a reader holds
 * it only to find a key and copy it out.
 */
#define ATOLL__TICKET_KEY_SZ   80 /* name 16 || HMAC secret 32 || AES key 32 */
#define ATOLL__TICKET_KEYS_MAX 64
typedef struct atoll_ticket_keys {
    uint8_t master[32];
    uint32_t rotation_s;   /* default 3600 */
    pthread_rwlock_t lock; /* guards shared, nshared */
    uint8_t *shared;       /* nshared * ATOLL__TICKET_KEY_SZ bytes, or NULL */
    size_t nshared;        /* 0: the runtime's own keys seal */
} atoll_ticket_keys;

/* Overwrites `len` bytes at `p` with zeros in a way the compiler cannot
 * drop as a dead store (glibc's explicit_bzero): the one wipe atoll uses for
 * private-key bytes, decrypted key material, key files and ticket secrets
 * before their memory is freed or goes out of scope. NULL or 0: nothing.
 * The test build reports each wipe to atoll__test_wipe_hook (testing.h).
 * Thread: any. */
void atoll__secure_zero(void *p, size_t len);

/* Initialises wolfSSL once per process (thread-safe; wolfSSL_Init itself is
 * not). Called by runtime creation and security contexts. 0 or -ENOMEM. */
int atoll__wolfssl_init(void);

/* Draws the master secret (wolfCrypt RNG), no shared keys. Returns 0,
 * -EIO, or -ENOMEM (the lock). */
int atoll__ticket_keys_init(atoll_ticket_keys *keys, uint32_t rotation_s);

/* Wipes the master secret and the shared keys (a wipe the compiler cannot
 * drop), so no copy is left in freed memory, and destroys the lock. Call
 * once per init. No errors. Thread: runtime destroy, when no isolate can
 * seal or open tickets any more. */
void atoll__ticket_keys_wipe(atoll_ticket_keys *keys);

/* Copies `len` bytes of shared keys (ATOLL__TICKET_KEY_SZ each, at most
 * ATOLL__TICKET_KEYS_MAX) in place of the current ones, which are wiped;
 * len 0 (data may be NULL) goes back to the runtime's own keys. Returns 0,
 * -EINVAL (len not a multiple of 80, too many keys, data NULL), -ENOMEM.
 * Thread: any, while isolates seal and open tickets. */
int atoll__ticket_keys_set(atoll_ticket_keys *keys, const void *data, size_t len);

/* wolfSSL's SessionTicketEncCb (wolfSSL_CTX_set_TicketEncCb), `keys` being
 * the atoll_ticket_keys given to wolfSSL_CTX_set_TicketEncCtx. Seals
 * (enc = 1) or opens (enc = 0) `ticket` in place; returns a
 * WOLFSSL_TICKET_RET_* value. Thread: any; reads `keys` (under its lock). */
int atoll__ticket_key_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                         unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                         unsigned char *ticket, int in_len, int *out_len, void *keys);

/* True when AES-GCM is fast on this machine: wolfSSL built with AES-NI and
 * the CPU has AES-NI. Decides the cipher preference (AES-GCM first, else
 * ChaCha20-Poly1305 first). */
bool atoll__tls_aes_fast(void);

/* The cipher preference as text, for runtime info. */
const char *atoll__tls_cipher_preference(void);

/*
 * Builds a wolfSSL server context for one isolate from `ctx` (which is
 * marked in use: later set_/use_ calls on it return ATOLL_E_STATE):
 * certificate chain and key (none set: the context still builds, and every
 * handshake fails, as in Dart A4), trusted certificates (peer verification),
 * client authority names, minimum version (TLS 1.2 default), cipher list by
 * atoll__tls_aes_fast, key-share/groups preference X25519 then P-256
 * then P-384 (TLS 1.2 ECDHE limited to those and P-521),
 * session tickets sealed with `keys` (NULL: tickets off and the session
 * cache off, for --no-resumption), wolfSSL's internal session cache off
 * unless tickets are on.
 * The caller sets the I/O callbacks, verify mode and ALPN per connection.
 * Returns 0 or -ENOMEM / ATOLL_E_TLS_MATERIAL.
 * Thread: the isolate that will use the WOLFSSL_CTX.
 */
int atoll__tls_server_ctx_new(atoll_security_context *ctx, atoll_ticket_keys *keys, WOLFSSL_CTX **out);

/*
 * Builds a wolfSSL client context (TLS 1.2 minimum, or the context's
 * minimum; the same cipher and group preferences as servers) trusting the
 * certificates of `ctx` (may be NULL) and of the PEM file `ca_file` (may be
 * NULL), presenting ctx's certificate chain and key as client certificate
 * when set. Verification mode is set per connection by the caller.
 * Returns 0, -ENOMEM or ATOLL_E_TLS_MATERIAL.
 * Thread: the isolate that will use it.
 */
int atoll__tls_client_ctx_new(atoll_security_context *ctx, const char *ca_file, WOLFSSL_CTX **out);

/* Reference counting for servers bound with a context. */
void atoll__security_context_acquire(atoll_security_context *ctx);

/*
 * Peer certificates (isolates/certificate.c): builds the public
 * atoll_certificate from the peer certificate of `ssl` after the handshake;
 * *out = NULL when the peer sent none. Returns 0 or -ENOMEM.
 */
int atoll__certificate_from_peer(WOLFSSL *ssl, atoll_certificate **out);
void atoll__certificate_free(atoll_certificate *cert);

#endif /* ATOLL_RUNTIME_TLS_CONTEXT_H */
