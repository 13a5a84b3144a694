/* test_probe: io_uring probe results, forced with atoll__test_probe_inject. */
#include "support.h"

#include "runtime/base/testing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static void reset_injection(void)
{
    atoll__test_probe_inject(0, NULL);
}

TestSuite(probe, .fini = reset_injection);

/* Probe and create both fail with `want`, and create hands back nothing. */
static void expect_probe_and_create_fail(int want, atoll_runtime_info *info)
{
    memset(info, 0, sizeof *info);
    int rc = atoll_runtime_probe(info);
    cr_assert_eq(rc, want, "probe: got %d %s, want %d %s", rc, atoll_error_name(rc), want, atoll_error_name(want));
    cr_assert_eq(atoll_runtime_probe(NULL), want, "probe(NULL) must fail the same way");

    atoll_runtime_options o;
    sup_options(&o, 2);
    atoll_runtime *rt = NULL;
    rc = atoll_runtime_create(&o, &rt);
    cr_assert_eq(rc, want, "create: got %d %s, want %s", rc, atoll_error_name(rc), atoll_error_name(want));
    cr_assert_null(rt, "create failed but set *out");
    rc = atoll_runtime_create(NULL, &rt);
    cr_assert_eq(rc, want, "create(NULL opts): got %d %s", rc, atoll_error_name(rc));
    cr_assert_null(rt, "create failed but set *out");
}

Test(probe, eperm_is_uring_disabled, .timeout = 30)
{
    atoll_runtime_info info;
    atoll__test_probe_inject(EPERM, NULL);
    expect_probe_and_create_fail(ATOLL_E_URING_DISABLED, &info);
    const char *msg = atoll_strerror(ATOLL_E_URING_DISABLED);
    cr_assert(strcasestr(msg, "io_uring_disabled") || strcasestr(msg, "seccomp"), "not actionable: '%s'", msg);
}

Test(probe, enosys_is_uring_nosys, .timeout = 30)
{
    atoll_runtime_info info;
    atoll__test_probe_inject(ENOSYS, NULL);
    expect_probe_and_create_fail(ATOLL_E_URING_NOSYS, &info);
    const char *msg = atoll_strerror(ATOLL_E_URING_NOSYS);
    cr_assert(strcasestr(msg, "kernel"), "not actionable: '%s'", msg);
}

Test(probe, enomem_is_uring_memlock, .timeout = 30)
{
    atoll_runtime_info info;
    atoll__test_probe_inject(ENOMEM, NULL);
    expect_probe_and_create_fail(ATOLL_E_URING_MEMLOCK, &info);
    const char *msg = atoll_strerror(ATOLL_E_URING_MEMLOCK);
    cr_assert(strcasestr(msg, "memlock") || strcasestr(msg, "ulimit"), "not actionable: '%s'", msg);
}

Test(probe, missing_msg_ring_is_uring_feature, .timeout = 30)
{
    atoll_runtime_info info;
    atoll__test_probe_inject(0, "IORING_OP_MSG_RING");
    expect_probe_and_create_fail(ATOLL_E_URING_FEATURE, &info);
    cr_assert_not_null(strstr(info.missing_feature, "IORING_OP_MSG_RING"), "missing_feature = '%s'",
                       info.missing_feature);
    cr_assert_not_null(atoll_strerror(ATOLL_E_URING_FEATURE));
}

static void expect_healthy_info(const atoll_runtime_info *info)
{
    cr_assert_gt(strlen(info->kernel_release), 0, "kernel_release empty");
    cr_assert_geq(info->kernel_major, 5, "kernel_major %u from '%s'", info->kernel_major, info->kernel_release);
    cr_assert_gt(strlen(info->ring_mode), 0, "ring_mode empty");
    cr_assert_str_eq(info->missing_feature, "", "missing_feature set on success: '%s'", info->missing_feature);
    cr_assert_not_null(info->wolfssl_version, "wolfssl_version NULL");
    cr_assert_gt(strlen(info->wolfssl_version), 0, "wolfssl_version empty");
    cr_assert_not_null(info->wolfssl_build, "wolfssl_build NULL");
    cr_assert(strcmp(info->wolfssl_build, "system") == 0 || strcmp(info->wolfssl_build, "optimized") == 0,
              "wolfssl_build = '%s'", info->wolfssl_build);
    cr_assert_geq(info->online_cpus, 1);
    if (info->defer_taskrun)
        cr_assert_not_null(strstr(info->ring_mode, "DEFER_TASKRUN"), "defer_taskrun but ring_mode '%s'",
                           info->ring_mode);
}

Test(probe, reset_injection_probes_ok, .timeout = 30)
{
    atoll_runtime_info info;
    atoll__test_probe_inject(EPERM, NULL);
    cr_assert_eq(atoll_runtime_probe(NULL), ATOLL_E_URING_DISABLED);
    atoll__test_probe_inject(0, "IORING_OP_MSG_RING");
    cr_assert_eq(atoll_runtime_probe(&info), ATOLL_E_URING_FEATURE);
    atoll__test_probe_inject(0, NULL);

    memset(&info, 0x5a, sizeof info);
    int rc = atoll_runtime_probe(&info);
    cr_assert_eq(rc, 0, "probe after reset: %d %s (%s)", rc, atoll_error_name(rc), atoll_strerror(rc));
    expect_healthy_info(&info);
    cr_assert_eq(atoll_runtime_probe(NULL), 0, "probe(NULL)");
}

Test(probe, runtime_info_get_on_created_runtime, .timeout = 30)
{
    atoll_runtime_info probed, got;
    cr_assert_eq(atoll_runtime_probe(&probed), 0);
    atoll_runtime_options o;
    sup_options(&o, 3);
    atoll_runtime *rt = NULL;
    int rc = atoll_runtime_create(&o, &rt);
    cr_assert_eq(rc, 0, "create: %d %s", rc, atoll_error_name(rc));
    memset(&got, 0, sizeof got);
    atoll_runtime_info_get(rt, &got);
    expect_healthy_info(&got);
    cr_assert_eq(got.isolates, 3, "info.isolates = %u", got.isolates);
    cr_assert_str_eq(got.kernel_release, probed.kernel_release);
    cr_assert_str_eq(got.ring_mode, probed.ring_mode);
    cr_assert_eq(got.online_cpus, probed.online_cpus);
    cr_assert_eq(atoll_runtime_destroy(rt), 0, "destroy of created runtime");
}

Test(probe, runtime_info_get_on_started_runtime, .timeout = 30)
{
    atoll_runtime *rt = sup_start_n(2);
    atoll_runtime_info got;
    memset(&got, 0, sizeof got);
    atoll_runtime_info_get(rt, &got);
    expect_healthy_info(&got);
    cr_assert_eq(got.isolates, 2);
    sup_shutdown(rt);
}

Test(probe, create_after_failed_create_works, .timeout = 30)
{
    atoll_runtime *rt = NULL;
    atoll__test_probe_inject(ENOMEM, NULL);
    cr_assert_eq(atoll_runtime_create(NULL, &rt), ATOLL_E_URING_MEMLOCK);
    atoll__test_probe_inject(0, NULL);
    atoll_runtime_options o;
    sup_options(&o, 2);
    int rc = atoll_runtime_create(&o, &rt);
    cr_assert_eq(rc, 0, "create after reset: %d %s", rc, atoll_error_name(rc));
    cr_assert_eq(atoll_runtime_start(rt), 0);
    sup_shutdown(rt);
}

Test(probe, create_rejects_bad_options, .timeout = 30)
{
    atoll_runtime_options o;
    atoll_runtime *rt = NULL;

    sup_options(&o, 4);
    o.max_isolates = 2;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "isolates > max_isolates");
    cr_assert_null(rt);

    sup_options(&o, 2);
    o.sq_entries = 0;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "sq_entries 0");
    cr_assert_null(rt);

    sup_options(&o, 2);
    o.cq_entries = 0;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "cq_entries 0");
    cr_assert_null(rt);

    sup_options(&o, 2);
    o.port_capacity = 0;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "port_capacity 0");
    cr_assert_null(rt);

    sup_options(&o, 2);
    o.task_capacity = 0;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "task_capacity 0");
    cr_assert_null(rt);

    sup_options(&o, 2);
    o.max_ports = 0;
    cr_assert_eq(atoll_runtime_create(&o, &rt), -EINVAL, "max_ports 0");
    cr_assert_null(rt);
}

Test(probe, options_init_defaults, .timeout = 10)
{
    atoll_runtime_options o;
    memset(&o, 0xff, sizeof o);
    atoll_runtime_options_init(&o);
    cr_assert_geq(o.isolates, 1);
    /* The library leaves 0 here ("isolates + 64, resolved by create"). */
    cr_assert_eq(o.max_isolates, 0, "max_isolates default (0 = isolates + 64) is %u", o.max_isolates);
    cr_assert_eq(o.sq_entries, 256);
    cr_assert_eq(o.cq_entries, 8192);
    cr_assert_eq(o.max_ports, 65536);
    cr_assert_eq(o.port_capacity, 4096);
    cr_assert_eq(o.task_capacity, 65536);
    cr_assert_eq(o.pin_cpus, false);
    cr_assert_null(o.entry);
    cr_assert_null(o.on_exit);
}
