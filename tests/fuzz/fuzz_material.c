/*
 * tests/fuzz/fuzz_material.c: libFuzzer target material: the PEM/DER
 * loaders of runtime/base/tls_material.c, through the security-context calls
 * that use them (certificate chains, keys plain and encrypted, trusted
 * certificates, client authorities, chain/key pairing), and, when a pair
 * loads, the wolfSSL server context built from it (tls_ctx.c).
 *
 * Input: byte 0 chooses the call (low 3 bits, below) and the encoding (bit
 * 3: DER, else PEM); the rest is the material.
 *   0 chain   1 key   2 key with password "dartdart"   3 trusted
 *   4 client authorities   5 the fuzz key after the test chain
 *   6 the fuzz chain after the test key   7 as 5, key password "dartdart"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/base/security_context_private.h"

static uint8_t *good_chain, *good_key;
static size_t good_chain_len, good_key_len;

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/certs/%s", ATOLL_FUZZ_DIR, name);
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(65536);
    if (!f || !buf) {
        fprintf(stderr, "fuzz_material: cannot read %s\n", path);
        abort();
    }
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

/* Feedback beyond atoll's own edges (wolfSSL is not instrumented): each
 * distinct reason a call fails with counts as coverage. */
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t outcomes[4096];

static void outcome(unsigned op, int rc, const char *text)
{
    uint32_t h = 2166136261u ^ op; /* FNV-1a */
    for (const char *p = text; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    outcomes[((h ^ (uint32_t)rc) * 16777619u) % sizeof(outcomes)]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!good_chain) {
        good_chain = slurp("server_chain.pem", &good_chain_len);
        good_key = slurp("server_key.pem", &good_key_len);
    }
    if (size == 0)
        return 0;
    unsigned op = data[0] & 7u;
    atoll_encoding enc = (data[0] & 8u) ? ATOLL_ENCODING_DER : ATOLL_ENCODING_PEM;
    const uint8_t *m = data + 1;
    size_t n = size - 1;

    atoll_security_context *ctx;
    if (atoll_security_context_new(&ctx) != 0)
        abort();
    int rc = -1;
    switch (op) {
    case 0:
        rc = atoll_security_context_use_certificate_chain(ctx, m, n, enc);
        break;
    case 1:
    case 2:
        rc = atoll_security_context_use_private_key(ctx, m, n, enc, op == 2 ? "dartdart" : NULL);
        break;
    case 3:
        rc = atoll_security_context_set_trusted_certificates(ctx, m, n, enc);
        break;
    case 4:
        rc = atoll_security_context_set_client_authorities(ctx, m, n, enc);
        break;
    case 5:
    case 7:
        if (atoll_security_context_use_certificate_chain(ctx, good_chain, good_chain_len, ATOLL_ENCODING_PEM) != 0)
            abort();
        rc = atoll_security_context_use_private_key(ctx, m, n, enc, op == 7 ? "dartdart" : NULL);
        break;
    case 6:
        if (atoll_security_context_use_private_key(ctx, good_key, good_key_len, ATOLL_ENCODING_PEM, NULL) != 0)
            abort();
        rc = atoll_security_context_use_certificate_chain(ctx, m, n, enc);
        break;
    }
    /* A failed call always says why. */
    if (rc != 0 && atoll_security_context_last_error(ctx)[0] == '\0' && rc != -ENOMEM) {
        fprintf(stderr, "fuzz_material: call %u failed (%d) without a reason\n", op, rc);
        abort();
    }
    outcome(op, rc, atoll_security_context_last_error(ctx));
    if (rc == 0 && ctx->chain.data && ctx->key.data) {
        WOLFSSL_CTX *w = NULL;
        if (atoll__tls_server_ctx_new(ctx, NULL, &w) == 0)
            wolfSSL_CTX_free(w);
    }
    atoll_security_context_release(ctx);
    return 0;
}
