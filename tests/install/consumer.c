/*
 * tests/install/consumer.c: a program built out of tree against an
 * installed atoll (tests/test_install.sh builds it twice: with CMake's
 * find_package and with pkg-config). Prints the library's version and the
 * wolfSSL build it runs on, one "key value" per line.
 */
#include <atoll/atoll.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(atoll_version(), ATOLL_VERSION_STRING) != 0) {
        fprintf(stderr, "headers %s, library %s\n", ATOLL_VERSION_STRING, atoll_version());
        return 1;
    }
    atoll_runtime_options o;
    atoll_runtime_options_init(&o);
    o.isolates = 1;
    atoll_runtime *rt;
    int rc = atoll_runtime_create(&o, &rt);
    if (rc < 0) {
        fprintf(stderr, "atoll_runtime_create: %s\n", atoll_strerror(rc));
        return 1;
    }
    atoll_runtime_info info;
    atoll_runtime_info_get(rt, &info);
    printf("version %s\nwolfssl_build %s\nwolfssl_aesni %d\nwolfssl_asm %d\n", atoll_version(), info.wolfssl_build,
           info.wolfssl_aesni, info.wolfssl_asm);
    atoll_runtime_destroy(rt);
    return 0;
}
