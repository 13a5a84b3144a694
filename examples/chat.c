/*
 * chat: a line-based chat server on one shared port over several isolates,
 * where a broadcast is a message to each isolate, never shared state.
 *
 * Every pool isolate listens on the same port (atoll_runtime_listen) and
 * owns the connections it accepts: only it reads, writes or lists them. A
 * line received on a connection of isolate A is sent as a port message to
 * every isolate (A included); each writes it to the connections it owns.
 * No lock and no shared list of connections: each isolate knows the others
 * only by their send handles, which the host hands to each one at start-up
 * in a message of its own.
 *
 * A client that does not keep up (its write buffer full) is disconnected
 * rather than buffered for without bound; a line that meets a full port is
 * dropped for that isolate and counted. SIGINT/SIGTERM drains: every client
 * hears "server shutting down" and is closed; exit 0.
 *
 * Plain TCP, to stay short (hello-https shows TLS: pass a security
 * context to atoll_runtime_listen() and nothing else changes).
 *
 * Run:  ./chat [ADDRESS [PORT]]   (default 127.0.0.1, port 0: ephemeral)
 *       then, in two terminals:  nc 127.0.0.1 PORT
 * First line on stdout once every isolate listens: "listening on ADDR:PORT".
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atoll/atoll.h>

#define MAX_ISOLATES 64
#define LINE_MAX_LEN 1024

enum { TAG_DIRECTORY = 1, TAG_LINE = 2 };

typedef struct member member;

/* One isolate's own state: touched only on that isolate's thread. */
typedef struct room {
    atoll_isolate *self;
    atoll_receive_port *port;
    atoll_send_port peers[MAX_ISOLATES]; /* this isolate's copy of the directory */
    uint32_t npeers, next_id;
    unsigned long dropped;
    member *members;
} room;

struct member {
    atoll_conn *conn;
    room *room;
    uint32_t id;
    size_t len;
    char buf[LINE_MAX_LEN];
    member *prev, *next;
};

/* A broadcast line, the payload of a TAG_LINE message (owned by whoever
 * holds the message: freed by the receiver, or by release if dropped). */
typedef struct line {
    uint32_t from_isolate, from_id;
    size_t len;
    char text[];
} line;

static room rooms[MAX_ISOLATES]; /* rooms[i] belongs to isolate i alone */

/* Start-up only: each isolate hands the host its port's send handle. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static atoll_send_port directory[MAX_ISOLATES];
static uint32_t opened, informed;

static void release_payload(void *data, size_t size)
{
    (void)size;
    free(data);
}

static void say(member *m, const char *text, size_t len)
{
    /* Short write: the client's buffer is full, it does not keep up. */
    if (atoll_conn_write(m->conn, text, len) != (ssize_t)len)
        atoll_conn_close(m->conn);
}

static void broadcast(member *from, const char *text, size_t len)
{
    room *r = from->room;
    for (uint32_t i = 0; i < r->npeers; i++) {
        line *l = malloc(sizeof(*l) + len);
        if (!l)
            return;
        *l = (line){atoll_isolate_id(r->self), from->id, len};
        memcpy(l->text, text, len);
        atoll_message msg = {.tag = TAG_LINE, .data = l, .size = sizeof(*l) + len, .release = release_payload};
        int rc = atoll_port_send(atoll_isolate_runtime(r->self), r->peers[i], &msg);
        if (rc < 0) { /* not queued: still ours. Closed: that isolate is draining */
            free(l);
            if (rc == ATOLL_E_PORT_FULL)
                r->dropped++;
        }
    }
}

static void on_message(atoll_receive_port *port, atoll_message *msg, void *user)
{
    room *r = user;
    (void)port;
    if (msg->tag == TAG_DIRECTORY) {
        r->npeers = (uint32_t)(msg->size / sizeof(atoll_send_port));
        memcpy(r->peers, msg->data, msg->size);
        free(msg->data);
        pthread_mutex_lock(&lock);
        informed++;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
        return;
    }
    line *l = msg->data;
    char out[LINE_MAX_LEN + 64];
    int n = snprintf(out, sizeof(out), "[%u.%u] %.*s\n", l->from_isolate, l->from_id, (int)l->len, l->text);
    size_t len = n < (int)sizeof(out) ? (size_t)n : sizeof(out) - 1;
    uint32_t me = atoll_isolate_id(r->self);
    for (member *m = r->members, *next; m; m = next) {
        next = m->next; /* say() may close m (its on_closed runs later) */
        if (me != l->from_isolate || m->id != l->from_id)
            say(m, out, len);
    }
    free(l);
}

static void on_read(atoll_conn *conn, void *user)
{
    member *m = user;
    ssize_t n;
    while ((n = atoll_conn_read(conn, m->buf + m->len, sizeof(m->buf) - m->len)) > 0) {
        m->len += (size_t)n;
        char *start = m->buf, *nl;
        while ((nl = memchr(start, '\n', m->len - (size_t)(start - m->buf)))) {
            size_t len = (size_t)(nl - start);
            if (len > 0 && start[len - 1] == '\r')
                len--;
            broadcast(m, start, len);
            start = nl + 1;
        }
        m->len -= (size_t)(start - m->buf);
        memmove(m->buf, start, m->len);
        if (m->len == sizeof(m->buf)) { /* a line too long: send what fits */
            broadcast(m, m->buf, m->len);
            m->len = 0;
        }
    }
}

static void on_read_closed(atoll_conn *conn, void *user)
{
    (void)user;
    atoll_conn_close(conn);
}

static void on_closed(atoll_conn *conn, int status, void *user)
{
    member *m = user;
    (void)conn;
    (void)status;
    if (m->prev)
        m->prev->next = m->next;
    else
        m->room->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    free(m);
}

/* The runtime drains: say goodbye and close (close flushes the goodbye). */
static void on_conn_drain(atoll_conn *conn, void *user)
{
    say(user, "server shutting down\n", 21);
    atoll_conn_close(conn);
}

static const atoll_conn_callbacks conn_cb = {
    .on_read = on_read,
    .on_read_closed = on_read_closed,
    .on_closed = on_closed,
    .on_drain = on_conn_drain,
};

static void on_connection(atoll_server *server, atoll_conn *conn, void *user)
{
    (void)user;
    room *r = &rooms[atoll_isolate_id(atoll_server_isolate(server))];
    member *m = calloc(1, sizeof(*m));
    if (!m) {
        atoll_conn_close(conn);
        return;
    }
    *m = (member){.conn = conn, .room = r, .id = ++r->next_id, .next = r->members};
    if (r->members)
        r->members->prev = m;
    r->members = m;
    atoll_conn_set_callbacks(conn, &conn_cb, m);
    char hello[64];
    int n = snprintf(hello, sizeof(hello), "welcome [%u.%u]\n", atoll_isolate_id(r->self), m->id);
    say(m, hello, (size_t)n); /* once read, the client is in the room */
}

/* Drain hook: the open port would keep the isolate alive; close it. */
static void on_isolate_drain(atoll_isolate *self, void *user)
{
    room *r = user;
    if (r->dropped)
        fprintf(stderr, "chat: isolate %u dropped %lu lines\n", atoll_isolate_id(self), r->dropped);
    atoll_port_close(r->port);
}

static int isolate_main(atoll_isolate *self, void *arg)
{
    (void)arg;
    uint32_t me = atoll_isolate_id(self);
    room *r = &rooms[me];
    r->self = self;
    int rc = atoll_port_open(self, NULL, on_message, r, &r->port);
    if (rc == 0 && (rc = atoll_isolate_on_drain(self, on_isolate_drain, r)) < 0)
        atoll_port_close(r->port);
    pthread_mutex_lock(&lock);
    directory[me] = rc == 0 ? atoll_port_send_handle(r->port) : (atoll_send_port){0};
    opened++;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return rc; /* an error ends this isolate: main sees a closed port */
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "chat: %s: %s (%s)\n", what, atoll_strerror(rc), atoll_error_name(rc));
    return 1;
}

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 0, rc;
    sigset_t sigs; /* blocked before the isolates start: they inherit it */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    atoll_runtime_options ro;
    atoll_runtime_options_init(&ro);
    ro.isolates = ro.isolates < 2 ? 2 : ro.isolates > MAX_ISOLATES ? MAX_ISOLATES : ro.isolates;
    ro.entry = isolate_main;
    atoll_runtime *rt;
    if ((rc = atoll_runtime_create(&ro, &rt)) < 0)
        return fail("creating the runtime", rc);
    int status = 1;
    atoll_listener *listener = NULL;
    if ((rc = atoll_runtime_start(rt)) < 0) {
        fail("starting the runtime", rc);
        goto out;
    }
    /* Wait for every port, then give each isolate its own directory copy
     * and wait until all have it: from then on they only talk by messages. */
    pthread_mutex_lock(&lock);
    while (opened < ro.isolates)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    for (uint32_t i = 0; i < ro.isolates; i++) {
        atoll_send_port *copy = malloc(sizeof(directory[0]) * ro.isolates);
        if (!copy) {
            fail("directory", -ENOMEM);
            goto out;
        }
        memcpy(copy, directory, sizeof(directory[0]) * ro.isolates);
        atoll_message msg = {TAG_DIRECTORY, copy, sizeof(directory[0]) * ro.isolates, release_payload};
        if ((rc = atoll_port_send(rt, directory[i], &msg)) < 0) {
            free(copy);
            fail("sending the directory", rc);
            goto out;
        }
    }
    pthread_mutex_lock(&lock);
    while (informed < ro.isolates)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    atoll_server_options so;
    atoll_server_options_init(&so);
    static const atoll_server_callbacks scb = {.on_connection = on_connection};
    if ((rc = atoll_runtime_listen(rt, address, port, &so, NULL /* plain TCP */, &scb, NULL, &listener)) < 0) {
        fail("listening", rc);
        goto out;
    }
    printf("listening on %s:%u\n", address, (unsigned)atoll_listener_port(listener));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    rc = atoll_runtime_drain(rt, 2000);
    printf("signal %d: drained%s\n", sig, rc == 0 ? "" : " (deadline passed)");
    if ((rc = atoll_listener_close(listener)) < 0)
        fail("closing the listener", rc);
    status = 0;
out:
    atoll_runtime_stop(rt);
    atoll_runtime_join(rt);
    atoll_runtime_destroy(rt);
    return status;
}
