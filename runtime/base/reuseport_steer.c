/*
 * runtime/base/reuseport_steer.c: builds and attaches the classic BPF program
 * that picks a SO_REUSEPORT group member for each new connection.
 *
 * What the kernel hands a reuseport cBPF program (verified on 6.18, see
 * docs/listening.md): the SYN's skb with its data pulled *past* the TCP
 * header (run_bpf_filter pulls doff bytes), so skb->len is 0 and any load
 * at a non-negative offset fails (a failed load returns 0, i.e. index 0).
 * The headers are therefore read relative to the network header
 * (SKF_NET_OFF), which always works: IPv4 or IPv6, whatever the group's
 * family (a dual-stack [::] group receives IPv4 SYNs too).
 */
#include "runtime/base/reuseport_steer.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

/* 2^32 / phi: a multiplicative hash that spreads arithmetic progressions
 * (Linux hands out connect() ports in steps of 2) evenly. */
#define STEER_GOLDEN 0x9e3779b1u

#define NET(off) ((uint32_t)SKF_NET_OFF + (uint32_t)(off))

int atoll__steer_build(const uint32_t *indices, unsigned n, const atoll_steer_local *local, unsigned nlocal,
                       struct sock_filter *insns, unsigned cap)
{
    if (n > ATOLL_STEER_MAX_CANDIDATES || nlocal > ATOLL_STEER_MAX_LOCAL)
        return -E2BIG;
    if (n <= 1) {
        if (cap < 1)
            return -E2BIG;
        insns[0] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, n == 1 ? indices[0] : ATOLL_STEER_NONE);
        return 1;
    }

    static const struct sock_filter prologue[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(0)), /* IP version */
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 5, 0), /* -> 8 */
        /* IPv4: X = header length; source address at 12, port at X */
        /* 3 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, NET(0)),
        /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(12)),
        /* 5 */ BPF_STMT(BPF_ST, 0),
        /* 6 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, NET(0)),
        /* 7 */ BPF_STMT(BPF_JMP | BPF_JA, 3), /* -> 11 */
                                               /* IPv6: low word of the source address; port right after the fixed
                                                * header (a SYN with extension headers only hashes other bytes) */
        /* 8 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(20)),
        /* 9 */ BPF_STMT(BPF_ST, 0),
        /* 10 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, NET(40)),
        /* 11: hash = ((saddr * G + sport) * G) >> 16 */
        BPF_STMT(BPF_ST, 1),
        BPF_STMT(BPF_LD | BPF_MEM, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, STEER_GOLDEN),
        BPF_STMT(BPF_LDX | BPF_MEM, 1),
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, STEER_GOLDEN),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
    };
    unsigned np = sizeof(prologue) / sizeof(prologue[0]);
    unsigned nl = nlocal ? 1 + 2 * nlocal : 0;
    unsigned len = nl + np + 1 + 2 * (n - 1) + 1;
    if (len > cap)
        return -E2BIG;

    unsigned k = 0;
    if (nlocal) {
        /* The CPU processing the SYN: on a NIC with RSS the flow's queue
         * CPU, on loopback the connecting thread's CPU. */
        insns[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_AD_OFF + SKF_AD_CPU);
        for (unsigned i = 0; i < nlocal; i++) {
            insns[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, local[i].cpu, 0, 1);
            insns[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, local[i].index);
        }
    }
    for (unsigned i = 0; i < np; i++)
        insns[k++] = prologue[i];
    insns[k++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n);
    /* The table: cBPF has no indirect jump, so compare and return; each
     * jump skips one instruction, far within the 8-bit jump range. */
    for (unsigned i = 0; i + 1 < n; i++) {
        insns[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, i, 0, 1);
        insns[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, indices[i]);
    }
    insns[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, indices[n - 1]);
    return (int)k;
}

int atoll__steer_drop_syns(int fd)
{
    /* Headers relative to the network header, as above; TCP flags are
     * byte 13 of the TCP header. */
    struct sock_filter prog[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(0)),
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 3, 0), /* -> 6 */
        /* 3 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, NET(0)),
        /* 4 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, NET(13)),
        /* 5 */ BPF_STMT(BPF_JMP | BPF_JA, 1), /* -> 7 */
        /* 6 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(40 + 13)),
        /* 7 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12), /* SYN | ACK */
        /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
        /* 9 */ BPF_STMT(BPF_RET | BPF_K, 0),            /* a new connection: dropped */
        /* 10 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* anything else: kept whole */
    };
    struct sock_fprog fprog = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) == 0 ? 0 : -errno;
}

int atoll__steer_attach(int fd, const uint32_t *indices, unsigned n, const atoll_steer_local *local, unsigned nlocal)
{
    if (n > ATOLL_STEER_MAX_CANDIDATES || nlocal > ATOLL_STEER_MAX_LOCAL)
        return -E2BIG;
    unsigned cap = 32u + 2u * nlocal + 2u * n;
    struct sock_filter *insns = malloc(cap * sizeof(*insns));
    if (!insns)
        return -ENOMEM;
    int len = atoll__steer_build(indices, n, local, nlocal, insns, cap);
    int rc = 0;
    if (len < 0) {
        rc = len;
    } else {
        struct sock_fprog prog = {.len = (unsigned short)len, .filter = insns};
        if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0)
            rc = -errno;
    }
    free(insns);
    return rc;
}
