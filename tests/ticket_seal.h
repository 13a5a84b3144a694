/*
 * tests/ticket_seal.h: seal a fake ticket with atoll's ticket callback and
 * open it again, for the suites that test the callback itself
 * (test_security_context, test_ticket_keys). Static helpers: include once
 * per test program, after <criterion/criterion.h>.
 */
#ifndef ATOLL_TESTS_TICKET_SEAL_H
#define ATOLL_TESTS_TICKET_SEAL_H

#include "runtime/base/tls_context.h"

typedef struct sealed {
    unsigned char name[WOLFSSL_TICKET_NAME_SZ], iv[WOLFSSL_TICKET_IV_SZ], mac[WOLFSSL_TICKET_MAC_SZ];
    unsigned char data[200];
    int len;
} sealed;

/* Seals a known pattern; asserts it was sealed, same length, encrypted. */
static void seal(atoll_ticket_keys *keys, sealed *t)
{
    for (int i = 0; i < (int)sizeof(t->data); i++)
        t->data[i] = (unsigned char)i;
    t->len = 0;
    cr_assert_eq(atoll__ticket_key_cb(NULL, t->name, t->iv, t->mac, 1, t->data, (int)sizeof(t->data), &t->len, keys),
                 WOLFSSL_TICKET_RET_OK);
    cr_assert_eq(t->len, (int)sizeof(t->data));
    cr_assert_neq(t->data[10], 10, "not encrypted");
}

/* Opens a copy of `in`; when the callback accepts it, asserts the pattern
 * came back whole. Returns the callback's WOLFSSL_TICKET_RET_*. */
static int open_ticket(atoll_ticket_keys *keys, const sealed *in)
{
    sealed t = *in;
    int out = 0;
    int rc = atoll__ticket_key_cb(NULL, t.name, t.iv, t.mac, 0, t.data, t.len, &out, keys);
    if (rc == WOLFSSL_TICKET_RET_OK || rc == WOLFSSL_TICKET_RET_CREATE) {
        cr_assert_eq(out, t.len);
        for (int i = 0; i < t.len; i++)
            cr_assert_eq(t.data[i], (unsigned char)i);
    }
    return rc;
}

#endif /* ATOLL_TESTS_TICKET_SEAL_H */
