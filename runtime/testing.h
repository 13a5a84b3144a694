/*
 * runtime/testing.h: fault-injection hooks, compiled only into the test build
 * of the library (ATOLL_TESTING). Never part of the installed API.
 */
#ifndef ATOLL_RUNTIME_TESTING_H
#define ATOLL_RUNTIME_TESTING_H

#ifdef ATOLL_TESTING

/**
 * Makes the next io_uring probes behave as if io_uring_setup() failed with
 * `setup_errno` (EPERM, ENOSYS, ENOMEM, ...; 0 = no injection), or, when
 * `missing_feature` is non-NULL, as if the kernel lacked that feature (e.g.
 * "IORING_OP_MSG_RING"). Affects atoll_runtime_probe() and therefore
 * atoll_runtime_create(), for the whole process until reset with (0, NULL).
 * Thread: any thread; tests call it before creating a runtime.
 */
void atoll__test_probe_inject(int setup_errno, const char *missing_feature);

#endif
#endif /* ATOLL_RUNTIME_TESTING_H */
