/*
 * atoll/error.h: error codes shared by every atoll function.
 *
 * Every function that can fail returns 0 on success or a negative code:
 * either a negated errno value (-EINVAL, -ENOMEM, -EADDRINUSE, ...) passed
 * through from the kernel or libc, or one of atoll's own codes below, which
 * sit in a range no errno uses. atoll_strerror() names all of them.
 */
#ifndef ATOLL_ERROR_H
#define ATOLL_ERROR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** atoll's own error codes (all negative, below -4000: no errno collides). */
enum atoll_error {
    /** io_uring is disabled: kernel.io_uring_disabled sysctl or a seccomp
     *  filter (container runtimes' default profiles) refused io_uring_setup. */
    ATOLL_E_URING_DISABLED = -4001,
    /** The kernel has no io_uring (ENOSYS): kernel too old or built without. */
    ATOLL_E_URING_NOSYS = -4002,
    /** Ring memory could not be locked (ENOMEM): RLIMIT_MEMLOCK too low. */
    ATOLL_E_URING_MEMLOCK = -4003,
    /** io_uring works but lacks a feature atoll needs (see
     *  atoll_runtime_info.missing_feature for which). */
    ATOLL_E_URING_FEATURE = -4004,
    /** The call is not allowed in the object's current lifecycle state
     *  (e.g. start twice, destroy while running, join before stop). */
    ATOLL_E_STATE = -4005,
    /** The runtime is stopping or stopped: no new isolates, messages or work. */
    ATOLL_E_STOPPED = -4006,
    /** The destination port's queue is full. The message was not queued and
     *  its ownership stays with the sender. Retry later or drop it. */
    ATOLL_E_PORT_FULL = -4007,
    /** The destination port is closed (or never existed). The message was not
     *  queued and its ownership stays with the sender. */
    ATOLL_E_PORT_CLOSED = -4008,
    /** The call must be made on the owning isolate's thread and was not. */
    ATOLL_E_WRONG_THREAD = -4009,
    /** Waiting here would deadlock (e.g. join from an isolate thread). */
    ATOLL_E_DEADLOCK = -4010,
    /** A table has no free slot (isolates or ports at their configured cap). */
    ATOLL_E_LIMIT = -4011,
    /** A queued task was dropped without running (its isolate stopped). */
    ATOLL_E_CANCELED = -4012,
    /** A deadline passed before the operation completed. */
    ATOLL_E_TIMEDOUT = -4013,
};

/**
 * Returns a static, human-readable description of `code`: one of atoll's
 * codes, a negated errno, or 0 ("success"). io_uring errors carry the action
 * that fixes them. Never returns NULL.
 * Thread: any thread.
 */
ATOLL_API const char *atoll_strerror(int code);

/**
 * Returns the symbolic name of `code` ("ATOLL_E_PORT_FULL", "EINVAL", ...),
 * or "UNKNOWN" for a code atoll does not know. Never returns NULL.
 * Thread: any thread.
 */
ATOLL_API const char *atoll_error_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_ERROR_H */
