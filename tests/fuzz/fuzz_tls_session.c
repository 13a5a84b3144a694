/*
 * tests/fuzz/fuzz_tls_session.c: libFuzzer target tls_session: TLS input
 * after the handshake. A real wolfSSL client (in memory) completes a
 * handshake with a server connection on the stand-in isolate (standin.c:
 * received bytes go through atoll__net_cqe, the ring's receive path); then
 * the fuzz input is a script of what happens on the wire: the client writes
 * records of chosen sizes, updates its keys, sends close_notify, bytes are
 * injected raw into the stream, delivery is cut into chosen segment sizes,
 * the peer's FIN arrives, the application writes back or reads in small
 * bites. This reaches atoll__tls_pump_input, atoll__tls_read, the
 * application's reads and writes and the close paths with records that
 * decrypt.
 *
 * Checked: the handshake of a correct client succeeds; the application
 * reads exactly the bytes the client wrote, in order (a prefix when bytes
 * were injected or the FIN came early, all of them otherwise); the client
 * reads exactly what the application wrote; nothing is left behind.
 *
 * Input: byte 0: bit 0 TLS 1.2 (else 1.3), bit 1 resume the previous
 * session. Then (op, arg) byte pairs, op & 7:
 *   0 client writes 1 + arg * 37 bytes     1 client KeyUpdate (TLS 1.3)
 *   2 client close_notify                  3 inject the next arg % 64 input bytes raw
 *   4 deliver what is pending in segments of 1 + arg * 4 bytes
 *   5 the peer's FIN                       6 the application writes 1 + arg * 97 bytes
 *   7 the application reads at most 1 + arg * 8 bytes per on_read (255: no limit)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "standin.h"

#define PIPE_CAP  (1u << 20)
#define MAX_WRITE (64u * 1024u) /* plaintext per side and input: keeps runs short */

typedef struct pipe_buf {
    uint8_t data[PIPE_CAP];
    size_t len;
} pipe_buf;

static pipe_buf to_server, to_client;
static struct atoll_server server;
static WOLFSSL_CTX *client_ctx[2]; /* TLS 1.3, TLS 1.2 */
static WOLFSSL_SESSION *saved[2];  /* per version, for resumption */

/* The application's side of the connection, reset per input. */
static struct app {
    struct atoll_conn *c;
    uint64_t received;   /* plaintext read by the application */
    uint64_t sent;       /* plaintext the application's writes took */
    uint64_t client_got; /* plaintext the client read */
    size_t bite;         /* most bytes per on_read (0: no limit) */
    bool delivered, read_closed, closed;
} app;

static uint8_t stream_byte(uint64_t off, uint8_t salt)
{
    return (uint8_t)((off * 131u + (off >> 9) + salt) & 0xff);
}

static void check_stream(const uint8_t *p, size_t n, uint64_t off, uint8_t salt, const char *who)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != stream_byte(off + i, salt)) {
            fprintf(stderr, "fuzz_tls_session: %s read a byte that was never written (offset %llu)\n", who,
                    (unsigned long long)(off + i));
            abort();
        }
    }
}

/* ---- the client: wolfSSL over two in-memory pipes ---------------------------- */

static int client_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl, (void)ctx;
    if (to_server.len + (size_t)sz > PIPE_CAP)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    memcpy(to_server.data + to_server.len, buf, (size_t)sz);
    to_server.len += (size_t)sz;
    return sz;
}

static size_t client_pos; /* bytes of to_client the client has read */

static int client_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl, (void)ctx;
    size_t n = to_client.len - client_pos;
    if (n == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    if (n > (size_t)sz)
        n = (size_t)sz;
    memcpy(buf, to_client.data + client_pos, n);
    client_pos += n;
    return (int)n;
}

/* ---- the application ------------------------------------------------------------ */

static void on_read(atoll_conn *c, void *user)
{
    (void)user;
    uint8_t buf[16384];
    size_t want = app.bite ? app.bite : sizeof(buf);
    ssize_t n = atoll_conn_read(c, buf, want < sizeof(buf) ? want : sizeof(buf));
    while (n > 0) {
        check_stream(buf, (size_t)n, app.received, 0, "the application");
        app.received += (uint64_t)n;
        if (app.bite)
            break; /* level-style: the rest comes at the next dispatch */
        n = atoll_conn_read(c, buf, sizeof(buf));
    }
}

static void on_read_closed(atoll_conn *c, void *user)
{
    (void)c, (void)user;
    app.read_closed = true;
}

static void on_closed(atoll_conn *c, int status, void *user)
{
    (void)c, (void)user;
    app.closed = true;
    standin_outcome("closed", (uint32_t)status, 0);
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = on_read, .on_read_closed = on_read_closed, .on_closed = on_closed};

static void on_connection(atoll_server *s, atoll_conn *c, void *user)
{
    (void)s, (void)user;
    app.delivered = true;
    atoll_conn_set_callbacks(c, &conn_cb, NULL);
}

/* ---- the wire ------------------------------------------------------------------- */

static size_t server_pos; /* bytes of to_server delivered to the connection */

/* Work per input is bounded, so the fuzzer stays at a useful rate: a
 * delivery takes at most about 256 segments, an input about 4096 turns. */
#define MAX_SEGMENTS 256u
#define MAX_TURNS    4096u

static void deliver(size_t seg)
{
    size_t pending = to_server.len - server_pos;
    if (seg && seg < pending / MAX_SEGMENTS)
        seg = pending / MAX_SEGMENTS;
    /* A receive is re-armed when the application's reads free segments:
     * feed again after the turns that may have done so. */
    for (int i = 0; i < 1024 && server_pos < to_server.len; i++) {
        size_t n = standin_feed(app.c, to_server.data + server_pos, to_server.len - server_pos, seg);
        server_pos += n;
        standin_settle();
        if (n == 0 && !standin_recv_armed(app.c))
            break;
    }
    memmove(to_server.data, to_server.data + server_pos, to_server.len - server_pos);
    to_server.len -= server_pos;
    server_pos = 0;
}

/* The connection's output to the client, and the client reads what it can. */
static void answer(WOLFSSL *cl)
{
    for (int round = 0; round < 8; round++) {
        size_t n = standin_send(app.c, to_client.data + to_client.len, PIPE_CAP - to_client.len);
        to_client.len += n;
        standin_settle();
        if (n == 0)
            break;
    }
    uint8_t buf[16384];
    int r;
    while ((r = wolfSSL_read(cl, buf, sizeof(buf))) > 0) {
        check_stream(buf, (size_t)r, app.client_got, 0x5a, "the client");
        app.client_got += (uint64_t)r;
    }
    memmove(to_client.data, to_client.data + client_pos, to_client.len - client_pos);
    to_client.len -= client_pos;
    client_pos = 0;
}

static void setup(void)
{
    standin_setup();
    atoll_security_context *sctx = standin_security_context();
    atoll_server_callbacks cb = {.on_connection = on_connection};
    atoll_server_options opts;
    atoll_server_options_init(&opts);
    standin_server_init(&server, sctx, &opts, NULL, 0, &cb, NULL);
    atoll_security_context_release(sctx);
    /* One context per version: a TLS 1.3 client limited to 1.2 with
     * wolfSSL_SetVersion takes the server's downgrade sentinel for an attack. */
    client_ctx[0] = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    client_ctx[1] = wolfSSL_CTX_new(wolfTLSv1_2_client_method());
    for (int i = 0; i < 2; i++) {
        if (!client_ctx[i])
            abort();
        wolfSSL_CTX_set_verify(client_ctx[i], WOLFSSL_VERIFY_NONE, NULL);
        /* X25519, the server's first choice, is the cheap key exchange
         * (P-256 without assembly costs milliseconds a handshake). */
        if (wolfSSL_CTX_UseSupportedCurve(client_ctx[i], WOLFSSL_ECC_X25519) != WOLFSSL_SUCCESS)
            abort();
        int groups[] = {WOLFSSL_ECC_X25519};
        if (i == 0 && wolfSSL_CTX_set_groups(client_ctx[i], groups, 1) != WOLFSSL_SUCCESS)
            abort();
        wolfSSL_CTX_SetIORecv(client_ctx[i], client_recv);
        wolfSSL_CTX_SetIOSend(client_ctx[i], client_send);
    }
}

static void handshake(WOLFSSL *cl)
{
    int r = WOLFSSL_FAILURE;
    for (int i = 0; i < 16 && !(r == WOLFSSL_SUCCESS && app.delivered); i++) {
        if (r != WOLFSSL_SUCCESS)
            r = wolfSSL_connect(cl);
        deliver(0);
        answer(cl);
    }
    if (r != WOLFSSL_SUCCESS || !app.delivered || app.c->state != ATOLL_CONN_OPEN) {
        fprintf(stderr, "fuzz_tls_session: a correct client's handshake failed: client %d (%d), server state %d (%s)\n",
                r, wolfSSL_get_error(cl, r), (int)app.c->state, atoll_error_name(app.c->close_status));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!client_ctx[0])
        setup();
    if (size == 0)
        return 0;
    int v = data[0] & 1;
    memset(&app, 0, sizeof(app));
    to_server.len = to_client.len = server_pos = client_pos = 0;

    app.c = standin_accept(&server);
    WOLFSSL *cl = wolfSSL_new(client_ctx[v]);
    if (!cl)
        abort();
    if ((data[0] & 2) && saved[v])
        wolfSSL_set_session(cl, saved[v]);
    handshake(cl);
    if (standin_debug)
        fprintf(stderr, "fuzz_tls_session: handshake done at turn %llu\n", (unsigned long long)standin_turns);
    if (!saved[v])
        saved[v] = wolfSSL_get1_session(cl); /* after the TLS 1.3 ticket was read */

    uint64_t written = 0;
    bool injected = false, cut = false, notified = false;
    uint64_t turns_at_start = standin_turns;
    for (size_t i = 1; i + 1 < size; i += 2) {
        if (standin_turns - turns_at_start > MAX_TURNS) {
            cut = true; /* the rest of the script is dropped: no count to compare */
            break;
        }
        unsigned op = data[i] & 7u, arg = data[i + 1];
        switch (op) {
        case 0: {
            /* Records after close_notify are not data (RFC 8446 6.1). */
            if (written > MAX_WRITE || notified)
                break;
            uint8_t buf[1u + 255u * 37u];
            size_t n = 1u + arg * 37u;
            for (size_t k = 0; k < n; k++)
                buf[k] = stream_byte(written + k, 0);
            int r = wolfSSL_write(cl, buf, (int)n);
            if (r > 0)
                written += (uint64_t)r;
            break;
        }
        case 1:
            wolfSSL_update_keys(cl);
            break;
        case 2:
            wolfSSL_shutdown(cl);
            notified = true;
            break;
        case 3: {
            size_t n = arg % 64u;
            if (n > size - (i + 2))
                n = size - (i + 2);
            if (to_server.len + n <= PIPE_CAP) {
                memcpy(to_server.data + to_server.len, data + i + 2, n);
                to_server.len += n;
            }
            injected = true;
            i += n;
            break;
        }
        case 4:
            deliver(1u + arg * 4u);
            break;
        case 5:
            deliver(0);
            standin_eof(app.c);
            cut = true;
            break;
        case 6:
            if (app.c->state == ATOLL_CONN_OPEN && app.sent <= MAX_WRITE) {
                uint8_t buf[1u + 255u * 97u];
                size_t n = 1u + arg * 97u;
                for (size_t k = 0; k < n; k++)
                    buf[k] = stream_byte(app.sent + k, 0x5a);
                ssize_t w = atoll_conn_write(app.c, buf, n);
                if (w > 0)
                    app.sent += (uint64_t)w;
            }
            break;
        case 7:
            app.bite = arg == 255 ? 0 : 1u + arg * 8u;
            break;
        }
        standin_settle();
        answer(cl);
    }
    /* The rest of the stream, read without limit. */
    app.bite = 0;
    deliver(0);
    answer(cl);
    if (app.c->state == ATOLL_CONN_OPEN && !injected && !cut && app.received != written) {
        fprintf(stderr,
                "fuzz_tls_session: the client wrote %llu bytes, the application read %llu (%zu bytes undelivered, "
                "%u segments of %zu bytes held, %d decrypted pending, receive %s)\n",
                (unsigned long long)written, (unsigned long long)app.received, to_server.len, app.c->seg_count,
                atoll__conn_seg_bytes(app.c), wolfSSL_pending(app.c->ssl),
                standin_recv_armed(app.c) ? "armed" : "not armed");
        abort();
    }
    if (app.c->state == ATOLL_CONN_OPEN && !injected && !cut && !notified && app.client_got != app.sent) {
        fprintf(stderr, "fuzz_tls_session: the application wrote %llu bytes, the client read %llu\n",
                (unsigned long long)app.sent, (unsigned long long)app.client_got);
        abort();
    }
    standin_eof(app.c);
    standin_settle();
    answer(cl);
    standin_outcome("end", (uint32_t)app.c->state, (uint32_t)(app.received > 0) << 1 | app.read_closed);
    if (standin_debug)
        fprintf(stderr,
                "fuzz_tls_session: TLS 1.%d%s: client wrote %llu, app read %llu; app wrote %llu, client read %llu; "
                "state %d (%s), %llu turns\n",
                v ? 2 : 3, wolfSSL_session_reused(cl) ? " resumed" : "", (unsigned long long)written,
                (unsigned long long)app.received, (unsigned long long)app.sent, (unsigned long long)app.client_got,
                (int)app.c->state, atoll_error_name(app.c->close_status), (unsigned long long)standin_turns);
    wolfSSL_free(cl);
    standin_close(app.c, &server);
    return 0;
}
