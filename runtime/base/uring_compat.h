/*
 * runtime/base/uring_compat.h: the few io_uring names that liburing 2.3 (Debian
 * bookworm) and its bundled kernel headers lack. Only constants and tiny
 * helpers; never a copy of liburing.
 */
#ifndef ATOLL_ISOLATES_URING_COMPAT_H
#define ATOLL_ISOLATES_URING_COMPAT_H

#include <liburing.h>
#include <stdint.h>
#include <string.h>

/* Kernel 6.1 names; liburing 2.3's headers may predate them. */
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_FEAT_NODROP
#define IORING_FEAT_NODROP (1U << 1)
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)
#endif
#ifndef IORING_SQ_CQ_OVERFLOW
#define IORING_SQ_CQ_OVERFLOW (1U << 1)
#endif

/* IORING_OP_URING_CMD on a socket (Linux 6.7), which liburing 2.3 lacks. */
#define ATOLL_SOCKET_URING_OP_SETSOCKOPT 3

/* Prepares a setsockopt through the ring. The kernel reads *optval when the
 * SQE is issued (at submit), so it must live until then. */
static inline void atoll_prep_setsockopt(struct io_uring_sqe *sqe, int fd, int level, int optname, const void *optval,
                                         int optlen)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = ATOLL_SOCKET_URING_OP_SETSOCKOPT;
    /* The kernel's view of `addr` here is struct { u32 level, optname; }. */
    struct {
        uint32_t level, optname;
    } lo = {(uint32_t)level, (uint32_t)optname};
    memcpy(&sqe->addr, &lo, sizeof(lo));
    sqe->file_index = (uint32_t)optlen;       /* `optlen` shares this word */
    sqe->addr3 = (uint64_t)(uintptr_t)optval; /* `optval` */
}

/* Reads the SQ ring flags the kernel shares with us (CQ overflow, taskrun). */
static inline unsigned atoll_uring_sq_flags(const struct io_uring *ring)
{
    return __atomic_load_n(ring->sq.kflags, __ATOMIC_ACQUIRE);
}

#endif /* ATOLL_ISOLATES_URING_COMPAT_H */
