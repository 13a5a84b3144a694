/*
 * tests/fuzz/fuzz_tls.c: libFuzzer targets tls_ingest and tls_alpn: the
 * fuzz input arrives as the bytes a freshly accepted TLS server connection
 * receives, handed to atoll__net_cqe (the loop's CQE handler for sockets,
 * which calls atoll__conn_recv_cqe: the ring's receive path) as receive
 * completions in provided buffers, then driven by atoll__net_turn
 * (handshake steps, dispatch) as the loop would, on the stand-in isolate
 * of standin.c. After the input comes EOF; then the connection is torn
 * down and every buffer must be back.
 *
 * tls_ingest: the server asks for a client certificate (TLS 1.2 sends it in
 * the clear) and seals session tickets (atoll's ticket callback opens what
 * a ClientHello offers). tls_alpn (-DFUZZ_ALPN): the server offers ALPN h2
 * and http/1.1, and each input runs twice, lenient then strict ALPN, so
 * atoll's ALPN select callback and wolfSSL's strict matching both see it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "standin.h"

static struct atoll_server servers[2];
static unsigned nservers;

static void on_connection(atoll_server *server, atoll_conn *conn, void *user)
{
    (void)server, (void)conn, (void)user; /* torn down with the input */
}

static void setup(void)
{
    standin_setup();
    atoll_security_context *sctx = standin_security_context();
    atoll_server_callbacks cb = {.on_connection = on_connection};
    atoll_server_options opts;
    atoll_server_options_init(&opts);
#ifdef FUZZ_ALPN
    static const uint8_t wire[] = "\x02h2\x08http/1.1";
    standin_server_init(&servers[nservers++], sctx, &opts, wire, sizeof(wire) - 1, &cb, NULL);
    opts.alpn_strict = true;
    standin_server_init(&servers[nservers++], sctx, &opts, wire, sizeof(wire) - 1, &cb, NULL);
#else
    opts.request_client_certificate = true;
    standin_server_init(&servers[nservers++], sctx, &opts, NULL, 0, &cb, NULL);
#endif
    atoll_security_context_release(sctx); /* the wolfSSL contexts hold it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!nservers)
        setup();
    for (unsigned i = 0; i < nservers; i++) {
        struct atoll_server *s = &servers[i];
        struct atoll_conn *c = standin_accept(s);
        size_t taken = standin_feed(c, data, size, 0);
        if (taken == size)
            standin_eof(c);
        standin_settle();
        standin_outcome("end", (uint32_t)c->state, c->out_len / 64u);
        if (standin_debug)
            fprintf(stderr, "fuzz_tls: %zu/%zu bytes taken, %u bytes of output, state %d, status %d (%s)\n", taken,
                    size, c->out_len, (int)c->state, c->close_status, atoll_error_name(c->close_status));
        standin_close(c, s);
    }
    return 0;
}
