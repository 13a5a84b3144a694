/*
 * test_ticket_keys: session-ticket keys shared between runtimes
 * (atoll_runtime_set_ticket_keys, nginx's 80-byte ssl_session_ticket_key
 * format). Two runtimes in one process stand for two hosts, each with its
 * own TLS listener on 127.0.0.1: a session begun on one resumes on the
 * other only when both hold the same key; a rotation [new, old] still
 * opens the old tickets, [new] alone no more. Then the ticket callback
 * itself: which key seals, which re-issue, and the argument checks.
 * Certificates come from tests/certs/make-certs.sh (ctest fixture).
 */
#include "net_support.h"
#include "tls_client.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "runtime/base/testing.h"
#include "runtime/base/tls_context.h"
#include "ticket_seal.h"

#define KEY_SZ 80

static void random_keys(unsigned char *k, size_t len)
{
    cr_assert_eq(getrandom(k, len, 0), (ssize_t)len);
}

/* One "host": a runtime with one isolate and a TLS listener. */
typedef struct host {
    atoll_runtime *rt;
    atoll_listener *l;
    _Atomic long conns, resumed; /* as the server saw them */
} host;

static void on_conn(atoll_server *s, atoll_conn *c, void *user)
{
    host *h = user;
    (void)s;
    atomic_fetch_add(&h->conns, 1);
    if (atoll_conn_resumed(c))
        atomic_fetch_add(&h->resumed, 1);
    atoll_conn_write(c, "x", 1); /* one byte, so the client reads (and gets its ticket) */
    atoll_conn_close(c);
}

static void host_start(host *h, atoll_security_context *ctx)
{
    memset(h, 0, sizeof(*h));
    h->rt = sup_start_n(1);
    static const atoll_server_callbacks cb = {.on_connection = on_conn};
    int rc = atoll_runtime_listen(h->rt, "127.0.0.1", 0, NULL, ctx, &cb, h, &h->l);
    cr_assert_eq(rc, 0, "listen: %d %s", rc, atoll_error_name(rc));
}

static void host_stop(host *h)
{
    cr_assert_eq(atoll_listener_close(h->l), 0);
    sup_shutdown(h->rt);
}

/* Connects to `h` over TLS 1.3 offering `resume` (may be NULL), reads the
 * server's byte (the ticket comes with it) and returns whether the
 * handshake resumed; *session (if not NULL) gets the new session, with a
 * ticket. */
static bool handshake(host *h, WOLFSSL_SESSION *resume, WOLFSSL_SESSION **session)
{
    tc_options o = tc_loopback(atoll_listener_port(h->l), NS_CERT("trusted_certs.pem"), 10000);
    o.tls13_only = true;
    o.resume = resume;
    tc_conn *c = NULL;
    int rc = tc_connect(&c, &o);
    cr_assert_eq(rc, 0, "connect: %d %s", rc, tc_error_string(NULL));
    char b;
    cr_assert_eq(tc_read(c, &b, 1), 1, "%s", tc_error_string(c));
    cr_assert_str_eq(wolfSSL_get_version(tc_ssl(c)), "TLSv1.3");
    bool resumed = tc_resumed(c);
    if (session) {
        *session = tc_session(c);
        cr_assert_not_null(*session, "no session");
        cr_assert(wolfSSL_SESSION_has_ticket(*session), "no ticket issued");
    }
    tc_close(c);
    return resumed;
}

/* A session from `a`, offered to `b`: resumed? (Both sides must agree.) */
static bool resumes_across(host *a, host *b)
{
    WOLFSSL_SESSION *s = NULL;
    cr_assert_not(handshake(a, NULL, &s));
    long before = atomic_load(&b->resumed), conns = atomic_load(&b->conns);
    bool resumed = handshake(b, s, NULL);
    wolfSSL_SESSION_free(s);
    /* on_connection ran before the server's byte was written. */
    cr_assert_eq(atomic_load(&b->conns), conns + 1);
    cr_assert_eq(atomic_load(&b->resumed) - before, resumed ? 1 : 0, "client and server disagree");
    return resumed;
}

Test(ticket_keys, own_keys_do_not_resume_on_another_runtime, .timeout = 60)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    host a, b;
    host_start(&a, ctx);
    host_start(&b, ctx);
    cr_assert_not(resumes_across(&a, &b), "resumed with another runtime's own keys");
    /* The control: the same runtime resumes its own session. */
    cr_assert(resumes_across(&a, &a), "no resumption on the same runtime");
    host_stop(&a);
    host_stop(&b);
    atoll_security_context_release(ctx);
}

Test(ticket_keys, shared_key_resumes_across_runtimes_and_rotates, .timeout = 120)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    host a, b;
    host_start(&a, ctx);
    host_start(&b, ctx);

    /* (b) The same key on both, set while they serve. */
    unsigned char old_key[KEY_SZ], new_key[KEY_SZ], both[2 * KEY_SZ];
    random_keys(old_key, sizeof(old_key));
    random_keys(new_key, sizeof(new_key));
    cr_assert_eq(atoll_runtime_set_ticket_keys(a.rt, old_key, KEY_SZ), 0);
    cr_assert_eq(atoll_runtime_set_ticket_keys(b.rt, old_key, KEY_SZ), 0);
    cr_assert(resumes_across(&a, &b), "not resumed with the same shared key");
    cr_assert(resumes_across(&b, &a), "not resumed the other way");

    /* A ticket sealed by a under the old key, for (c) and (d). */
    WOLFSSL_SESSION *old_ticket = NULL;
    cr_assert_not(handshake(&a, NULL, &old_ticket));

    /* (c) b rotates to [new, old]: the old ticket still resumes there, and
     * the ticket b issues then is sealed with the new key (a, still on
     * [old], cannot open it). */
    memcpy(both, new_key, KEY_SZ);
    memcpy(both + KEY_SZ, old_key, KEY_SZ);
    cr_assert_eq(atoll_runtime_set_ticket_keys(b.rt, both, sizeof(both)), 0);
    memset(both, 0, sizeof(both)); /* the runtime kept its own copy */
    WOLFSSL_SESSION *reissued = NULL;
    cr_assert(handshake(&b, old_ticket, &reissued), "the old key no longer opens after [new, old]");
    cr_assert_not(handshake(&a, reissued, NULL), "re-issued under the old key, not the new");
    wolfSSL_SESSION_free(reissued);

    /* (d) b drops the old key: the old ticket no longer resumes. */
    cr_assert_eq(atoll_runtime_set_ticket_keys(b.rt, new_key, KEY_SZ), 0);
    cr_assert_not(handshake(&b, old_ticket, NULL), "resumed with a key no longer loaded");
    wolfSSL_SESSION_free(old_ticket);

    /* Back to the runtime's own keys (len 0): a's sessions (old key) do
     * not resume on b any more, b's own do. */
    cr_assert_eq(atoll_runtime_set_ticket_keys(b.rt, NULL, 0), 0);
    cr_assert_not(resumes_across(&a, &b), "resumed after going back to the runtime's own keys");
    cr_assert(resumes_across(&b, &b));

    host_stop(&a);
    host_stop(&b);
    atoll_security_context_release(ctx);
}

/* A host thread replaces the keys over and over while clients resume on
 * two isolates: every handshake completes (resumed or not), and under
 * ThreadSanitizer (label isolates) the readers and the setter do not race. */
struct flipper {
    atoll_runtime *rt;
    _Atomic bool stop;
    long sets;
};

static void *flip_keys(void *arg)
{
    struct flipper *f = arg;
    unsigned char k[2 * KEY_SZ];
    random_keys(k, sizeof(k));
    while (!atomic_load(&f->stop)) {
        /* [k1], [k0, k1], the runtime's own keys, in turn. */
        size_t off = f->sets % 3 == 1 ? 0 : KEY_SZ;
        size_t len = f->sets % 3 == 2 ? 0 : f->sets % 3 == 1 ? 2 * KEY_SZ : KEY_SZ;
        if (atoll_runtime_set_ticket_keys(f->rt, len ? k + off : NULL, len) != 0)
            break;
        f->sets++;
        sched_yield();
    }
    return NULL;
}

Test(ticket_keys, set_while_handshaking, .timeout = 120)
{
    atoll_security_context *ctx = ns_server_ctx();
    cr_assert_not_null(ctx, "%s", sup_first_failure());
    host h;
    memset(&h, 0, sizeof(h));
    h.rt = sup_start_n(2);
    static const atoll_server_callbacks cb = {.on_connection = on_conn};
    cr_assert_eq(atoll_runtime_listen(h.rt, "127.0.0.1", 0, NULL, ctx, &cb, &h, &h.l), 0);
    struct flipper f = {.rt = h.rt};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flip_keys, &f), 0);
    WOLFSSL_SESSION *s = NULL;
    int resumed = 0;
    for (int i = 0; i < 40; i++) {
        WOLFSSL_SESSION *next = NULL;
        resumed += handshake(&h, s, &next);
        if (s)
            wolfSSL_SESSION_free(s);
        s = next;
    }
    wolfSSL_SESSION_free(s);
    atomic_store(&f.stop, true);
    pthread_join(th, NULL);
    cr_log_info("%d of 39 resumed while the keys changed %ld times", resumed, f.sets);
    cr_assert_gt(f.sets, 0);
    cr_assert_eq(atomic_load(&h.conns), 40);
    host_stop(&h);
    atoll_security_context_release(ctx);
}

Test(ticket_keys, bad_arguments, .timeout = 30)
{
    unsigned char k[2 * KEY_SZ + 1];
    random_keys(k, sizeof(k));
    cr_assert_eq(atoll_runtime_set_ticket_keys(NULL, k, KEY_SZ), -EINVAL);
    atoll_runtime *rt = sup_start_n(1);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, KEY_SZ - 1), -EINVAL);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, KEY_SZ + 1), -EINVAL);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, 2 * KEY_SZ + 1), -EINVAL);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, NULL, KEY_SZ), -EINVAL);
    static unsigned char many[65 * KEY_SZ];
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, many, sizeof(many)), -EINVAL, "65 keys: over the cap");
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, many, sizeof(many) - KEY_SZ), 0, "64 keys");
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, 2 * KEY_SZ), 0);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, NULL, 0), 0, "back to the runtime's own keys");
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, 0), 0);
    sup_shutdown(rt);

    /* Before start and on a runtime never started: allowed. */
    atoll_runtime_options o;
    sup_options(&o, 1);
    cr_assert_eq(atoll_runtime_create(&o, &rt), 0);
    cr_assert_eq(atoll_runtime_set_ticket_keys(rt, k, KEY_SZ), 0);
    cr_assert_eq(atoll_runtime_destroy(rt), 0);
}

/* ---- the callback itself ------------------------------------------------- */

Test(ticket_keys, callback_first_seals_all_open)
{
    atoll_ticket_keys a, b;
    cr_assert_eq(atoll__ticket_keys_init(&a, 3600), 0);
    cr_assert_eq(atoll__ticket_keys_init(&b, 3600), 0);
    unsigned char k[3 * KEY_SZ];
    random_keys(k, sizeof(k));

    sealed own;
    seal(&a, &own); /* the runtime's own scheme */
    cr_assert_eq(atoll__ticket_keys_set(&a, k, 2 * KEY_SZ), 0);
    sealed t;
    seal(&a, &t);
    cr_assert_eq(memcmp(t.name, k, WOLFSSL_TICKET_NAME_SZ), 0, "key_name is the first key's name");
    cr_assert(t.iv[12] == 'A' || t.iv[12] == 'C');
    cr_assert_eq(open_ticket(&a, &t), WOLFSSL_TICKET_RET_OK);
    /* An own-scheme ticket from before the keys were set: re-issued. */
    cr_assert_eq(open_ticket(&a, &own), WOLFSSL_TICKET_RET_CREATE);

    /* b holds [k1, k0]: opens with the second key, re-issues. */
    unsigned char swapped[2 * KEY_SZ];
    memcpy(swapped, k + KEY_SZ, KEY_SZ);
    memcpy(swapped + KEY_SZ, k, KEY_SZ);
    cr_assert_eq(atoll__ticket_keys_set(&b, swapped, sizeof(swapped)), 0);
    cr_assert_eq(open_ticket(&b, &t), WOLFSSL_TICKET_RET_CREATE);
    cr_assert_eq(open_ticket(&b, &own), WOLFSSL_TICKET_RET_REJECT, "another runtime's own ticket");
    /* b holds [k2]: k0's ticket is refused. */
    cr_assert_eq(atoll__ticket_keys_set(&b, k + 2 * KEY_SZ, KEY_SZ), 0);
    cr_assert_eq(open_ticket(&b, &t), WOLFSSL_TICKET_RET_REJECT);

    /* Damage anywhere authenticated is refused, the AEAD id included. */
    sealed bad = t;
    bad.data[5] ^= 1;
    cr_assert_eq(open_ticket(&a, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.iv[15] ^= 1;
    cr_assert_eq(open_ticket(&a, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.iv[12] = bad.iv[12] == 'A' ? 'C' : 'A';
    cr_assert_eq(open_ticket(&a, &bad), WOLFSSL_TICKET_RET_REJECT);
    bad = t;
    bad.mac[0] ^= 1;
    cr_assert_eq(open_ticket(&a, &bad), WOLFSSL_TICKET_RET_REJECT);

    /* Same name, other secret: refused. */
    unsigned char forged[KEY_SZ];
    random_keys(forged, sizeof(forged));
    memcpy(forged, k, WOLFSSL_TICKET_NAME_SZ);
    cr_assert_eq(atoll__ticket_keys_set(&b, forged, KEY_SZ), 0);
    cr_assert_eq(open_ticket(&b, &t), WOLFSSL_TICKET_RET_REJECT);

    /* Back to the own keys: shared tickets are not ours any more, own ones are. */
    cr_assert_eq(atoll__ticket_keys_set(&a, NULL, 0), 0);
    cr_assert_eq(open_ticket(&a, &t), WOLFSSL_TICKET_RET_REJECT);
    cr_assert_eq(open_ticket(&a, &own), WOLFSSL_TICKET_RET_OK);
    atoll__ticket_keys_wipe(&a);
    atoll__ticket_keys_wipe(&b);
}

/* ---- wipes (the test build's hook) ---------------------------------------- */

#define MAX_WIPES 64
static struct {
    uintptr_t p;
    size_t len;
    bool zero;
} wipes[MAX_WIPES];
static size_t nwipes;

static void record_wipe(const void *p, size_t len)
{
    if (nwipes < MAX_WIPES) {
        bool zero = true;
        for (size_t i = 0; i < len; i++)
            zero = zero && ((const unsigned char *)p)[i] == 0;
        wipes[nwipes].p = (uintptr_t)p;
        wipes[nwipes].len = len;
        wipes[nwipes].zero = zero;
    }
    nwipes++;
}

static bool wiped(uintptr_t p, size_t len)
{
    for (size_t i = 0; i < nwipes && i < MAX_WIPES; i++)
        if (wipes[i].p == p && wipes[i].len == len && wipes[i].zero)
            return true;
    return false;
}

Test(ticket_keys, old_copy_wiped_on_replace_and_at_the_end)
{
    atoll_ticket_keys keys;
    cr_assert_eq(atoll__ticket_keys_init(&keys, 3600), 0);
    unsigned char k[2 * KEY_SZ];
    random_keys(k, sizeof(k));
    cr_assert_eq(atoll__ticket_keys_set(&keys, k, sizeof(k)), 0);
    uintptr_t first = (uintptr_t)keys.shared;
    cr_assert_eq(memcmp(keys.shared, k, sizeof(k)), 0, "a copy");
    nwipes = 0;
    atoll__test_set_wipe_hook(record_wipe);
    cr_assert_eq(atoll__ticket_keys_set(&keys, k, KEY_SZ), 0);
    cr_assert(wiped(first, sizeof(k)), "the replaced keys were not wiped");
    uintptr_t second = (uintptr_t)keys.shared;
    nwipes = 0;
    cr_assert_eq(atoll__ticket_keys_set(&keys, NULL, 0), 0);
    cr_assert(wiped(second, KEY_SZ), "the keys were not wiped on going back to the own keys");
    cr_assert_eq(atoll__ticket_keys_set(&keys, k, KEY_SZ), 0);
    uintptr_t third = (uintptr_t)keys.shared;
    nwipes = 0;
    atoll__ticket_keys_wipe(&keys);
    cr_assert(wiped(third, KEY_SZ), "the keys were not wiped at the end");
    cr_assert(wiped((uintptr_t)keys.master, sizeof(keys.master)));
    atoll__test_set_wipe_hook(NULL);
}
