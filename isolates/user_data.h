/*
 * isolates/user_data.h: the encoding of io_uring user_data in atoll.
 *
 * The top 8 bits hold the operation kind, the low 56 bits a payload: an
 * object pointer (Linux user space addresses fit in 48 bits) with an 8-bit
 * tag above it (which of an object's parallel ops, e.g. an accept slot), or
 * an index. Every
 * SQE atoll submits carries one of these; every CQE is dispatched on its
 * kind, and a kind the loop does not know is counted, never ignored.
 */
#ifndef ATOLL_ISOLATES_USER_DATA_H
#define ATOLL_ISOLATES_USER_DATA_H

#include <stdint.h>

enum atoll_ud_kind {
    ATOLL_UD_NONE = 0,         /* never submitted: catches zeroed SQEs */
    ATOLL_UD_WAKE = 1,         /* MSG_RING landing in this ring: a wakeup */
    ATOLL_UD_EVENTFD_READ = 2, /* read armed on the isolate's eventfd */
    ATOLL_UD_WAKE_SENT = 3,    /* MSG_RING we sent (CQE only on failure);
                                  payload: the target struct atoll_isolate * */
    ATOLL_UD_ACCEPT = 4,       /* accept into a direct descriptor; payload:
                                  atoll_server *, tag: its accept slot */
    ATOLL_UD_RECV = 5,         /* recv with buffer selection; payload: atoll_conn * */
    ATOLL_UD_SEND = 6,         /* send of the output buffer; payload: atoll_conn * */
    ATOLL_UD_SHUTDOWN = 7,     /* shutdown(SHUT_WR); payload: atoll_conn * */
    ATOLL_UD_CLOSE = 8,        /* close of the socket; payload: atoll_conn * */
    ATOLL_UD_CANCEL = 9,       /* async cancel; payload: the object whose op is
                                  cancelled (result only counted) */
    ATOLL_UD_CONNECT = 10,     /* connect; payload: atoll_connect_req * */
    ATOLL_UD_SOCKOPT = 11,     /* setsockopt through the ring; payload: atoll_conn * */
    ATOLL_UD_KIND_COUNT
};

#define ATOLL_UD_KIND_SHIFT   56
#define ATOLL_UD_PAYLOAD_MASK ((UINT64_C(1) << ATOLL_UD_KIND_SHIFT) - 1)

static inline uint64_t atoll_ud_make(enum atoll_ud_kind kind, uint64_t payload)
{
    return ((uint64_t)kind << ATOLL_UD_KIND_SHIFT) | (payload & ATOLL_UD_PAYLOAD_MASK);
}

#define ATOLL_UD_PTR_BITS 48
#define ATOLL_UD_PTR_MASK ((UINT64_C(1) << ATOLL_UD_PTR_BITS) - 1)

static inline uint64_t atoll_ud_make_tagged(enum atoll_ud_kind kind, uint64_t ptr, uint8_t tag)
{
    return atoll_ud_make(kind, (ptr & ATOLL_UD_PTR_MASK) | ((uint64_t)tag << ATOLL_UD_PTR_BITS));
}

/* The object pointer of a tagged payload. */
static inline void *atoll_ud_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ATOLL_UD_PTR_MASK);
}

static inline uint8_t atoll_ud_tag(uint64_t ud)
{
    return (uint8_t)((ud & ATOLL_UD_PAYLOAD_MASK) >> ATOLL_UD_PTR_BITS);
}

static inline enum atoll_ud_kind atoll_ud_kind(uint64_t ud)
{
    return (enum atoll_ud_kind)(ud >> ATOLL_UD_KIND_SHIFT);
}

static inline uint64_t atoll_ud_payload(uint64_t ud)
{
    return ud & ATOLL_UD_PAYLOAD_MASK;
}

#endif /* ATOLL_ISOLATES_USER_DATA_H */
