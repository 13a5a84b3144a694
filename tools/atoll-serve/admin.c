/*
 * tools/atoll-serve/admin.c: the admin port (--admin ADDR:PORT): a plain
 * HTTP/1.1 listener on its own host thread, one request per connection,
 * answered in order. It adds and retires isolates (atoll_runtime_add_isolate,
 * atoll_runtime_retire: calls that wait, which is why this is a host thread
 * and not an isolate's loop), pauses and resumes an isolate's listener
 * member, returns the counters line and starts the drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve.h"

#define ADMIN_REQ_MAX 4096
#define ADMIN_IO_S    5 /* a client slower than this is dropped */

static int admin_fd = -1;
static int wake_pipe[2] = {-1, -1};
static pthread_t admin_thread;
static bool admin_running;

int admin_parse(const char *spec, char *host, size_t host_len, int *port)
{
    /* "PORT", "ADDR:PORT" or "[V6]:PORT"; the address defaults to loopback. */
    const char *colon = strrchr(spec, ':');
    const char *p = colon ? colon + 1 : spec;
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    size_t n = colon ? (size_t)(colon - spec) : 0;
    const char *h = spec;
    if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {
        h++;
        n -= 2;
    } else if (n && memchr(spec, ':', n)) {
        return -1; /* an IPv6 address goes in brackets */
    }
    if (!colon || n == 0) {
        h = "127.0.0.1";
        n = strlen(h);
    }
    if (n >= host_len)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

static void reply_typed(int fd, int status, const char *reason, const char *type, const char *body)
{
    char head[256];
    size_t len = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, type, len);
    (void)!send(fd, head, (size_t)n, MSG_NOSIGNAL);
    (void)!send(fd, body, len, MSG_NOSIGNAL);
}

static void reply(int fd, int status, const char *reason, const char *body)
{
    reply_typed(fd, status, reason, "application/json", body);
}

static void reply_error(int fd, int status, const char *reason, const char *what, int rc)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"error\":\"%s\",\"code\":\"%s\"}\n", what, rc ? atoll_error_name(rc) : "");
    reply(fd, status, reason, body);
}

/* The isolate id at the end of "/isolates/N" (N decimal), or -1. */
static long path_id(const char *p, const char **rest)
{
    if (*p < '0' || *p > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(p, &end, 10);
    if (errno || v > UINT32_MAX)
        return -1;
    *rest = end;
    return (long)v;
}

typedef struct pause_req {
    bool pause;
    int rc;
} pause_req;

static void *pause_task(atoll_isolate *self, void *arg)
{
    pause_req *r = arg;
    atoll_server *s = atoll_listener_server(g.listener, atoll_isolate_id(self));
    if (!s)
        r->rc = -ENOENT;
    else
        r->rc = r->pause ? atoll_server_pause(s) : atoll_server_resume(s);
    return NULL;
}

typedef struct task_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
} task_wait;

static void task_done(int status, void *result, void *user)
{
    task_wait *w = user;
    (void)result;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Pauses or resumes isolate `id`'s listener member, on that isolate. */
static int pause_member(uint32_t id, bool pause)
{
    pause_req r = {.pause = pause};
    task_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int rc = atoll_runtime_submit(g.rt, id, pause_task, &r, task_done, &w, NULL);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.status < 0 ? w.status : r.rc;
}

static void handle(int fd, const char *method, const char *path)
{
    char body[128];
    const char *rest = NULL;
    if (!strcmp(path, "/live") || !strcmp(path, "/ready") || !strcmp(path, "/metrics")) {
        if (strcmp(method, "GET")) {
            reply_error(fd, 405, "Method Not Allowed", "GET only", 0);
            return;
        }
        if (!strcmp(path, "/live")) {
            reply_typed(fd, 200, "OK", "text/plain", "live\n"); /* the admin thread answers: the process runs */
        } else if (!strcmp(path, "/ready")) {
            if (atomic_load(&g.draining))
                reply_typed(fd, 503, "Service Unavailable", "text/plain", "draining\n");
            else
                reply_typed(fd, 200, "OK", "text/plain", "ready\n");
        } else {
            char *text = stats_metrics();
            if (!text) {
                reply_error(fd, 500, "Internal Server Error", "out of memory", -ENOMEM);
                return;
            }
            reply_typed(fd, 200, "OK", "text/plain; version=0.0.4", text);
            free(text);
        }
    } else if (!strcmp(path, "/stats")) {
        if (strcmp(method, "GET")) {
            reply_error(fd, 405, "Method Not Allowed", "GET only", 0);
            return;
        }
        char *json = stats_json();
        if (!json) {
            reply_error(fd, 500, "Internal Server Error", "out of memory", -ENOMEM);
            return;
        }
        reply(fd, 200, "OK", json);
        free(json);
    } else if (!strcmp(path, "/drain")) {
        if (strcmp(method, "POST")) {
            reply_error(fd, 405, "Method Not Allowed", "POST only", 0);
            return;
        }
        atomic_store(&g.draining, true); /* /ready says so from now on */
        reply(fd, 202, "Accepted", "{\"draining\":true}\n");
        kill(getpid(), SIGTERM); /* the main thread drains, as on a signal */
    } else if (!strcmp(path, "/isolates")) {
        if (strcmp(method, "POST")) {
            reply_error(fd, 405, "Method Not Allowed", "POST only", 0);
            return;
        }
        uint32_t id;
        int rc = atoll_runtime_add_isolate(g.rt, &id);
        if (rc < 0) {
            reply_error(fd, rc == ATOLL_E_LIMIT ? 507 : 409, rc == ATOLL_E_LIMIT ? "Insufficient Storage" : "Conflict",
                        atoll_strerror(rc), rc);
            return;
        }
        snprintf(body, sizeof(body), "{\"id\":%" PRIu32 "}\n", id);
        reply(fd, 200, "OK", body);
    } else if (!strncmp(path, "/isolates/", 10)) {
        long id = path_id(path + 10, &rest);
        if (id < 0 || (*rest && strcmp(rest, "/pause") && strcmp(rest, "/resume"))) {
            reply_error(fd, 404, "Not Found", "no such resource", 0);
            return;
        }
        int rc;
        bool retire = !*rest;
        if (retire && strcmp(method, "DELETE")) {
            reply_error(fd, 405, "Method Not Allowed", "DELETE only", 0);
            return;
        }
        if (!retire && strcmp(method, "POST")) {
            reply_error(fd, 405, "Method Not Allowed", "POST only", 0);
            return;
        }
        if (retire)
            rc = atoll_runtime_retire(g.rt, (uint32_t)id, g.cfg.drain_timeout_ms);
        else
            rc = pause_member((uint32_t)id, !strcmp(rest, "/pause"));
        if (rc == -ENOENT) {
            reply_error(fd, 404, "Not Found", "no such isolate", rc);
        } else if (rc == ATOLL_E_TIMEDOUT) {
            reply_error(fd, 504, "Gateway Timeout", "still running after the drain timeout", rc);
        } else if (rc < 0) {
            reply_error(fd, 409, "Conflict",
                        rc == ATOLL_E_STATE ? (retire ? "not a serving isolate, or the last one"
                                                      : "not listening, or already in that state")
                                            : atoll_strerror(rc),
                        rc);
        } else {
            snprintf(body, sizeof(body), "{\"id\":%ld,\"%s\":true}\n", id,
                     retire ? "retired" : (!strcmp(rest, "/pause") ? "paused" : "resumed"));
            reply(fd, 200, "OK", body);
        }
    } else {
        reply_error(fd, 404, "Not Found", "no such resource", 0);
    }
}

/* Reads one request head (bounded in size and time) and answers it. */
static void serve_one(int fd)
{
    struct timeval tv = {ADMIN_IO_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[ADMIN_REQ_MAX + 1];
    size_t len = 0;
    while (len < ADMIN_REQ_MAX) {
        ssize_t n = recv(fd, req + len, ADMIN_REQ_MAX - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char method[16], path[256], version[16];
    if (!strstr(req, "\r\n\r\n") || sscanf(req, "%15s %255s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7)) {
        reply_error(fd, 400, "Bad Request", "malformed request", 0);
        return;
    }
    handle(fd, method, path);
}

static void *admin_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = admin_fd, .events = POLLIN}, {.fd = wake_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break; /* admin_stop */
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(admin_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* ECONNABORTED, EMFILE...: the next poll retries */
        serve_one(fd);
        close(fd);
    }
    return NULL;
}

int admin_start(const char *host, int port, char *bound, size_t bound_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, PROG ": --admin %s: not a numeric address: %s\n", host, gai_strerror(rc));
        return -1;
    }
    admin_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (admin_fd < 0 || setsockopt(admin_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(admin_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(admin_fd, 16) != 0) {
        fprintf(stderr, PROG ": --admin %s:%d: %s\n", host, port, strerror(errno));
        freeaddrinfo(ai);
        if (admin_fd >= 0)
            close(admin_fd);
        admin_fd = -1;
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(admin_fd, (struct sockaddr *)&ss, &sl);
    int real = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port);
    bool v6 = strchr(host, ':') != NULL;
    snprintf(bound, bound_len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", real);
    if (pipe2(wake_pipe, O_CLOEXEC) != 0 || pthread_create(&admin_thread, NULL, admin_main, NULL) != 0) {
        fprintf(stderr, PROG ": admin thread: %s\n", strerror(errno));
        close(admin_fd);
        admin_fd = -1;
        return -1;
    }
    admin_running = true;
    return 0;
}

void admin_stop(void)
{
    if (!admin_running)
        return;
    /* A request in progress (a retire) finishes first: the thread checks the
     * pipe only between requests. */
    (void)!write(wake_pipe[1], "x", 1);
    pthread_join(admin_thread, NULL);
    admin_running = false;
    close(admin_fd);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    admin_fd = wake_pipe[0] = wake_pipe[1] = -1;
}
