/*
 * runtime/base/sock_diag.c: listening sockets on an address and port, from
 * the kernel's inet_diag (see sock_diag.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/base/sock_diag.h"

/* One receive: about a hundred inet_diag_msg records (72 bytes each
 * without attributes); on the stack, called rarely. */
#define ATOLL_DIAG_BUF 8192

static bool atoll_diag_match(const struct inet_diag_msg *d, int family, const uint8_t *addr, uint16_t port)
{
    if (d->idiag_family != family || ntohs(d->id.idiag_sport) != port || d->idiag_state != TCP_LISTEN)
        return false;
    return memcmp(d->id.idiag_src, addr, family == AF_INET ? 4 : 16) == 0;
}

int atoll__sock_diag_listeners(int family, const uint8_t *addr, uint16_t port, uint64_t *inodes, uint32_t max)
{
    if ((family != AF_INET && family != AF_INET6) || !addr)
        return -EINVAL;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nh = {.nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
        .req = {.sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = 1u << TCP_LISTEN},
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int found = 0;
    if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        found = -errno;
        goto out;
    }
    _Alignas(struct nlmsghdr) uint8_t buf[ATOLL_DIAG_BUF];
    for (;;) {
        /* The dump is produced inside the calls: nothing to wait for, so
         * never block (EAGAIN would be a kernel surprise, reported). */
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            found = -errno;
            goto out;
        }
        int len = (int)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                goto out;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                found = h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ? e->error : -EPROTO;
                goto out;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *d = NLMSG_DATA(h);
            if (!atoll_diag_match(d, family, addr, port))
                continue;
            if ((uint32_t)found < max)
                inodes[found] = d->idiag_inode;
            found++;
        }
    }
out:
    close(fd);
    return found;
}
