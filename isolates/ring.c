/*
 * isolates/ring.c: an isolate's ring and its eventfd, created on the
 * isolate's own thread (SINGLE_ISSUER ties the ring to its creator).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <stdlib.h>
#include <sys/mman.h>

#include "isolates/net_private.h"
#include "isolates/op.h"
#include "runtime/base/probe.h"
#include "isolates/user_data.h"

int atoll__ring_setup(struct atoll_isolate *iso)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = iso->info->ring_setup_flags | IORING_SETUP_CQSIZE;
    p.cq_entries = iso->opts->cq_entries;
    int ret = io_uring_queue_init_params(iso->opts->sq_entries, &iso->ring, &p);
    if (ret < 0)
        return atoll__uring_setup_error(-ret);
    iso->ring_ready = true;
    iso->ring_fd = iso->ring.ring_fd;
    /* Registered ring fd: io_uring_enter skips the fd lookup each turn.
     * Per thread: the isolate unregisters it before its thread ends. */
    ret = io_uring_register_ring_fd(&iso->ring);
    if (ret < 0)
        return ret;

    iso->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (iso->event_fd < 0)
        return -errno;
    atoll__arm_eventfd(iso);
    return iso->eventfd_armed ? 0 : -EBUSY;
}

void atoll__ring_release(struct atoll_isolate *iso)
{
    if (iso->ring_ready) {
        io_uring_queue_exit(&iso->ring);
        iso->ring_ready = false;
    }
    /* The receive buffers were registered with the ring: free them only
     * now that the ring is gone. */
    atoll_net *net = iso->net_keep ? iso->net_keep : iso->net;
    if (net) {
        if (net->bufs.ready) {
            free(net->bufs.base);
            munmap(net->bufs.br, net->bufs.ring_bytes);
        }
        atoll__files_free(&net->files);
        free(net);
        iso->net = iso->net_keep = NULL;
    }
    if (iso->event_fd >= 0) {
        close(iso->event_fd);
        iso->event_fd = -1;
    }
}

/* Host threads wake the isolate by writing the eventfd; this read, kept
 * armed, turns that into a CQE on the ring. */
void atoll__arm_eventfd(struct atoll_isolate *iso)
{
    struct io_uring_sqe *sqe;
    if (iso->eventfd_armed || atoll__op_reserve(iso, &sqe, 1) < 0)
        return; /* loop.c retries every turn while unarmed */
    io_uring_prep_read(sqe, iso->event_fd, &iso->eventfd_buf, sizeof(iso->eventfd_buf), 0);
    atoll__op_start(iso, sqe, ATOLL_UD_EVENTFD_READ, NULL);
    iso->eventfd_armed = true;
}
