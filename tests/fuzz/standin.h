/*
 * tests/fuzz/standin.h: a stand-in isolate for the TLS fuzz targets: one
 * isolate's networking state with no ring and no socket, its op layer
 * closed (as at teardown) so that every SQE a connection asks for is
 * refused and nothing reaches a kernel. standin.c plays the kernel: it
 * completes receives into the provided-buffer ring (through
 * atoll__net_cqe, the loop's CQE handler for sockets), completes sends out
 * of a connection's output buffer, and runs the loop's network phase.
 */
#ifndef ATOLL_TESTS_FUZZ_STANDIN_H
#define ATOLL_TESTS_FUZZ_STANDIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "isolates/net_private.h"

#define STANDIN_RECV_BUFFERS     8u    /* power of two, as the runtime requires */
#define STANDIN_RECV_BUFFER_SIZE 1024u /* the runtime's smallest: records span buffers */
#define STANDIN_RECV_SHARE       2u    /* the runtime's default per connection */
#define STANDIN_MAX_TURNS        64u   /* most turns standin_settle runs */

extern struct atoll_isolate standin_iso;
/* ATOLL_FUZZ_DEBUG is set: targets print one line per run. */
extern bool standin_debug;

/* Builds the isolate, once per process; makes it the thread's current one. */
void standin_setup(void);

/* A security context with the fuzz certificates (tests/fuzz/certs): the
 * server chain and key, the client authority trusted. */
atoll_security_context *standin_security_context(void);

/* A started server on the stand-in isolate with `opts` (ALPN in wire
 * format, or NULL), its wolfSSL context made by atoll__tls_ctx_for_server.
 * Failed handshakes count as outcomes (standin_outcome). */
void standin_server_init(struct atoll_server *s, atoll_security_context *sctx, const atoll_server_options *opts,
                         const uint8_t *alpn_wire, size_t alpn_len, const atoll_server_callbacks *cb, void *user);

/* A connection accepted by `s`, as server_accept.c makes one; the caller
 * holds a reference until standin_close. */
struct atoll_conn *standin_accept(struct atoll_server *s);

/* Whether atoll__conn_arm_recv would have a receive in the ring now. */
bool standin_recv_armed(const struct atoll_conn *c);

/* Hands `len` bytes to the connection as receive completions of at most
 * `seg` bytes each (0: the buffer size), a loop turn after each, while a
 * receive is armed. Returns the bytes taken. */
size_t standin_feed(struct atoll_conn *c, const uint8_t *data, size_t len, size_t seg);

/* The peer's FIN: a receive completing with 0, then a turn. */
void standin_eof(struct atoll_conn *c);

/* Completes the connection's sends: copies what it has queued (at most
 * `cap` bytes) to `dst` as the kernel would send it, with a SEND
 * completion per contiguous part. Returns the bytes sent. */
size_t standin_send(struct atoll_conn *c, uint8_t *dst, size_t cap);

/* Turns run so far (ATOLL_FUZZ_DEBUG output). */
extern uint64_t standin_turns;

/* One loop turn's network phase and free phase. */
void standin_turn(void);

/* Turns while the isolate has work left, at most STANDIN_MAX_TURNS. */
void standin_settle(void);

/* The isolate exits: tears the connection down as atoll__net_teardown
 * does, drops the caller's reference, and aborts if anything is left
 * behind (the connection, a receive buffer, the server's counts). */
void standin_close(struct atoll_conn *c, struct atoll_server *s);

/* Feedback beyond atoll's own edges (wolfSSL is not instrumented): each
 * distinct (text, a, b) counts as coverage in libFuzzer's extra counters,
 * so inputs reaching new wolfSSL outcomes are kept. */
void standin_outcome(const char *text, uint32_t a, uint32_t b);

#endif /* ATOLL_TESTS_FUZZ_STANDIN_H */
