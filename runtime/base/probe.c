/*
 * runtime/base/probe.c: the one-time io_uring probe and the facts of runtime info.
 *
 * The probe creates a small ring with the flags the isolates will use and
 * turns each way that can fail into its own error code, so the host can tell
 * an operator what to fix (sysctl, seccomp, memlock, kernel version).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "runtime/base/uring_compat.h"
#include "runtime/base/probe.h"
#include "runtime/base/testing.h"

#ifdef ATOLL_TESTING
static _Atomic int atoll_inject_errno;
static char atoll_inject_feature[64];
static _Atomic int atoll_inject_has_feature;

void atoll__test_probe_inject(int setup_errno, const char *missing_feature)
{
    atomic_store(&atoll_inject_errno, setup_errno);
    atomic_store(&atoll_inject_has_feature, 0);
    if (missing_feature) {
        snprintf(atoll_inject_feature, sizeof(atoll_inject_feature), "%s", missing_feature);
        atomic_store(&atoll_inject_has_feature, 1);
    }
}
#endif

/* Maps io_uring_setup()'s errno to atoll's codes (shared with ring.c's
 * per-isolate setup through atoll__uring_setup_error()). */
int atoll__uring_setup_error(int err)
{
    switch (err) {
    case EPERM:
        return ATOLL_E_URING_DISABLED;
    case ENOSYS:
        return ATOLL_E_URING_NOSYS;
    case ENOMEM:
        return ATOLL_E_URING_MEMLOCK;
    default:
        return -err;
    }
}

static void atoll_probe_kernel(atoll_runtime_info *info)
{
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(info->kernel_release, sizeof(info->kernel_release), "%s", u.release);
        if (sscanf(u.release, "%u.%u", &info->kernel_major, &info->kernel_minor) != 2)
            info->kernel_major = info->kernel_minor = 0;
    }
    /* Socket options through the ring (IORING_OP_URING_CMD with
     * SOCKET_URING_OP_SETSOCKOPT) came with Linux 6.7; no probe opcode tells. */
    info->ring_sockopt = info->kernel_major > 6 || (info->kernel_major == 6 && info->kernel_minor >= 7);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->online_cpus = n > 0 ? (uint32_t)n : 1;
}

static void atoll_ring_mode(atoll_runtime_info *info, uint32_t flags)
{
    info->ring_setup_flags = flags;
    info->defer_taskrun = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    snprintf(info->ring_mode, sizeof(info->ring_mode), "%s%s%s",
             (flags & IORING_SETUP_SINGLE_ISSUER) ? "SINGLE_ISSUER|" : "",
             info->defer_taskrun ? "DEFER_TASKRUN" : "COOP_TASKRUN",
             (flags & IORING_SETUP_TASKRUN_FLAG) ? "|TASKRUN_FLAG" : "");
}

/* The flag sets tried, best first: DEFER_TASKRUN needs SINGLE_ISSUER (6.1);
 * COOP_TASKRUN is the documented fallback (5.19). */
static const uint32_t atoll_flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
};

static const struct {
    int op;
    const char *name;
} atoll_required_ops[] = {
    {IORING_OP_MSG_RING, "IORING_OP_MSG_RING"}, {IORING_OP_READ, "IORING_OP_READ"},
    {IORING_OP_WRITE, "IORING_OP_WRITE"},       {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
    {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},     {IORING_OP_RECV, "IORING_OP_RECV"},
    {IORING_OP_SEND, "IORING_OP_SEND"},         {IORING_OP_SHUTDOWN, "IORING_OP_SHUTDOWN"},
    {IORING_OP_CLOSE, "IORING_OP_CLOSE"},       {IORING_OP_PROVIDE_BUFFERS, "IORING_OP_PROVIDE_BUFFERS"},
};

static int atoll_missing(atoll_runtime_info *info, const char *what)
{
    snprintf(info->missing_feature, sizeof(info->missing_feature), "%s", what);
    return ATOLL_E_URING_FEATURE;
}

int atoll__probe(atoll_runtime_info *info, uint32_t *ring_flags)
{
    memset(info, 0, sizeof(*info));
    atoll_probe_kernel(info);
    atoll__wolfssl_info(info);
#ifdef ATOLL_TESTING
    int inj = atomic_load(&atoll_inject_errno);
    if (inj)
        return atoll__uring_setup_error(inj);
#endif
    struct io_uring ring;
    int ret = -EINVAL;
    uint32_t flags = 0;
    for (size_t i = 0; i < sizeof(atoll_flag_sets) / sizeof(atoll_flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = atoll_flag_sets[i];
        ret = io_uring_queue_init_params(8, &ring, &p);
        if (ret == 0) {
            flags = atoll_flag_sets[i];
            info->ring_features = p.features;
            break;
        }
        if (ret != -EINVAL)
            break; /* EPERM, ENOSYS, ENOMEM: no flag set will do better */
    }
    if (ret < 0)
        return ret == -EINVAL ? atoll_missing(info, "IORING_SETUP_COOP_TASKRUN") : atoll__uring_setup_error(-ret);
    atoll_ring_mode(info, flags);
    if (ring_flags)
        *ring_flags = flags;

    ret = 0;
    if (!(info->ring_features & IORING_FEAT_NODROP))
        ret = atoll_missing(info, "IORING_FEAT_NODROP");
    else if (!(info->ring_features & IORING_FEAT_EXT_ARG))
        ret = atoll_missing(info, "IORING_FEAT_EXT_ARG");
    struct io_uring_probe *probe = ret == 0 ? io_uring_get_probe_ring(&ring) : NULL;
    if (ret == 0 && !probe)
        ret = atoll_missing(info, "IORING_REGISTER_PROBE");
    for (size_t i = 0; ret == 0 && i < sizeof(atoll_required_ops) / sizeof(atoll_required_ops[0]); i++)
        if (!io_uring_opcode_supported(probe, atoll_required_ops[i].op))
            ret = atoll_missing(info, atoll_required_ops[i].name);
#ifdef ATOLL_TESTING
    if (ret == 0 && atomic_load(&atoll_inject_has_feature))
        ret = atoll_missing(info, atoll_inject_feature);
#endif
    if (probe)
        io_uring_free_probe(probe);
    io_uring_queue_exit(&ring);
    return ret;
}

int atoll_runtime_probe(atoll_runtime_info *info)
{
    atoll_runtime_info local;
    int ret = atoll__probe(info ? info : &local, NULL);
    return ret;
}
