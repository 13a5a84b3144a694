/*
 * isolates/resolver.h: host name lookup off the isolate's loop. Internal.
 */
#ifndef ATOLL_ISOLATES_RESOLVER_H
#define ATOLL_ISOLATES_RESOLVER_H

#include "atoll/net.h"
#include "isolates/isolate_private.h"

/* Result: status 0 and the first address, ATOLL_E_LOOKUP, -EINVAL (a '%'
 * scope suffix) or -ENOMEM; `dropped` is true when the isolate is exiting
 * (release `user`, touch nothing else). Runs on the requesting isolate. */
typedef void (*atoll_resolve_fn)(struct atoll_isolate *self, int status, const atoll_address *addr, void *user,
                                 bool dropped);

/*
 * Looks `host` up as Dart does (getaddrinfo with AF_UNSPEC, SOCK_STREAM and
 * AI_ADDRCONFIG, retried without AI_ADDRCONFIG; the first result is used;
 * numeric strings pass through unchanged) and delivers the result on `self`
 * at a later turn, never inside this call. Host names are looked up by the
 * runtime's lookup pool (runtime/base/lookup_pool.h: at most
 * ATOLL_LOOKUP_THREADS threads, ATOLL_LOOKUP_QUEUE waiting lookups), since
 * getaddrinfo blocks and the loop must not. A name longer than 255 bytes
 * fails with ATOLL_E_LOOKUP, delivered like any result.
 * If the isolate exits before the answer, `cb` runs with `dropped` only if
 * the result was already in its inbox; otherwise it never runs (the exiting
 * isolate releases `user` itself). Destroying the runtime with a lookup
 * still in getaddrinfo is safe: the answer is thrown away.
 * Returns 0, or -ENOMEM, -EAGAIN (the pool's queue is full: a resolver this
 * slow, try later) or a negated pthread_create error (no lookup thread
 * could be started); then `cb` will not run.
 * Thread: the isolate `self`.
 */
int atoll__resolve(struct atoll_isolate *self, const char *host, atoll_resolve_fn cb, void *user);

#endif /* ATOLL_ISOLATES_RESOLVER_H */
