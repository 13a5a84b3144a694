/* runtime/base/error.c: names and descriptions of every error code. */
#include <errno.h>
#include <string.h>

#include "atoll/error.h"

typedef struct atoll_error_entry {
    int code;
    const char *name;
    const char *text;
} atoll_error_entry;

static const atoll_error_entry atoll_errors[] = {
    {ATOLL_E_URING_DISABLED, "ATOLL_E_URING_DISABLED",
     "io_uring is disabled: io_uring_setup() returned EPERM. Either the sysctl kernel.io_uring_disabled is 1 or 2 "
     "(set it to 0: sysctl -w kernel.io_uring_disabled=0), or a seccomp filter blocks io_uring (container "
     "runtimes' default profiles do: run with a profile that allows io_uring_setup, io_uring_enter and "
     "io_uring_register)"},
    {ATOLL_E_URING_NOSYS, "ATOLL_E_URING_NOSYS",
     "io_uring is not available: io_uring_setup() returned ENOSYS. The kernel is too old or built without "
     "CONFIG_IO_URING; atoll needs Linux >= 6.1"},
    {ATOLL_E_URING_MEMLOCK, "ATOLL_E_URING_MEMLOCK",
     "io_uring ring memory could not be allocated (ENOMEM): the locked-memory limit is too low. Raise it "
     "(ulimit -l unlimited, LimitMEMLOCK= in systemd, --ulimit memlock=-1 in containers) or lower "
     "sq_entries/cq_entries"},
    {ATOLL_E_URING_FEATURE, "ATOLL_E_URING_FEATURE",
     "io_uring lacks a feature atoll needs (see atoll_runtime_info.missing_feature); atoll needs Linux >= 6.1"},
    {ATOLL_E_STATE, "ATOLL_E_STATE", "operation not allowed in the object's current lifecycle state"},
    {ATOLL_E_STOPPED, "ATOLL_E_STOPPED", "the runtime or isolate is stopping or stopped"},
    {ATOLL_E_PORT_FULL, "ATOLL_E_PORT_FULL",
     "the destination queue is full; the message was not sent and still belongs to the sender"},
    {ATOLL_E_PORT_CLOSED, "ATOLL_E_PORT_CLOSED",
     "the destination port is closed; the message was not sent and still belongs to the sender"},
    {ATOLL_E_WRONG_THREAD, "ATOLL_E_WRONG_THREAD", "must be called on the owning isolate's thread"},
    {ATOLL_E_DEADLOCK, "ATOLL_E_DEADLOCK", "waiting here would deadlock (called from an isolate thread)"},
    {ATOLL_E_LIMIT, "ATOLL_E_LIMIT", "a configured limit was reached (isolates, ports or hooks)"},
    {ATOLL_E_CANCELED, "ATOLL_E_CANCELED", "the task was dropped without running: its isolate stopped"},
    {ATOLL_E_TIMEDOUT, "ATOLL_E_TIMEDOUT", "the deadline passed before the operation completed"},
    {ATOLL_E_TLS_MATERIAL, "ATOLL_E_TLS_MATERIAL",
     "certificate or key material is not valid (encoding, password, or key not matching the certificate)"},
    {ATOLL_E_SHARED_MISMATCH, "ATOLL_E_SHARED_MISMATCH",
     "The shared flag to bind() needs to be `true` if binding multiple times on the same (address, port) "
     "combination."},
    {ATOLL_E_V6ONLY_MISMATCH, "ATOLL_E_V6ONLY_MISMATCH",
     "The v6Only flag to bind() needs to be the same if binding multiple times on the same (address, port) "
     "combination."},
    {ATOLL_E_LOOKUP, "ATOLL_E_LOOKUP", "Failed host lookup: the host name could not be resolved"},
    {ATOLL_E_HANDSHAKE, "ATOLL_E_HANDSHAKE", "the TLS handshake failed"},
    {ATOLL_E_HANDSHAKE_TIMEOUT, "ATOLL_E_HANDSHAKE_TIMEOUT", "the TLS handshake did not complete in time"},
    {ATOLL_E_PEER_CLOSED, "ATOLL_E_PEER_CLOSED", "Connection terminated during handshake"},
    {ATOLL_E_CERTIFICATE, "ATOLL_E_CERTIFICATE", "the peer certificate is missing or failed verification"},
    {ATOLL_E_CLOSED, "ATOLL_E_CLOSED", "reading from or writing to a closed socket"},
    {ATOLL_E_ALPN, "ATOLL_E_ALPN", "no application protocol in common (ALPN, strict mode)"},
    {ATOLL_E_CONN_CAP, "ATOLL_E_CONN_CAP",
     "the isolate's connection cap is reached (raise conns_per_isolate and RLIMIT_NOFILE)"},
    {ATOLL_E_PROXY_HEADER, "ATOLL_E_PROXY_HEADER", "PROXY protocol: missing, malformed or oversized header"},
    {ATOLL_E_PROXY_DENIED, "ATOLL_E_PROXY_DENIED", "PROXY protocol: the source is not in the server's allow-list"},
};

static const atoll_error_entry *atoll_error_find(int code)
{
    for (size_t i = 0; i < sizeof(atoll_errors) / sizeof(atoll_errors[0]); i++)
        if (atoll_errors[i].code == code)
            return &atoll_errors[i];
    return NULL;
}

const char *atoll_strerror(int code)
{
    if (code == 0)
        return "success";
    const atoll_error_entry *e = atoll_error_find(code);
    if (e)
        return e->text;
    if (code < 0 && code > -4000) {
        /* strerrordesc_np is thread-safe and returns static text (glibc). */
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

const char *atoll_error_name(int code)
{
    if (code == 0)
        return "OK";
    const atoll_error_entry *e = atoll_error_find(code);
    if (e)
        return e->name;
    if (code < 0 && code > -4000) {
        const char *s = strerrorname_np(-code);
        if (s)
            return s;
    }
    return "UNKNOWN";
}
