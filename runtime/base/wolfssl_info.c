/* runtime/base/wolfssl_info.c: which wolfSSL atoll was built against. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "runtime/base/probe.h"
#include "runtime/base/tls_context.h"

#ifndef ATOLL_WOLFSSL_BUILD
#define ATOLL_WOLFSSL_BUILD "system"
#endif

void atoll__wolfssl_info(atoll_runtime_info *info)
{
    info->wolfssl_version = wolfSSL_lib_version();
    info->wolfssl_build = ATOLL_WOLFSSL_BUILD;
    info->tls_cipher_preference = atoll__tls_cipher_preference();
    /* options.h comes from the same prefix as the library we link (CMake
     * picks both), so these describe the code that actually runs. */
#if defined(WOLFSSL_AESNI)
    info->wolfssl_aesni = true;
#else
    info->wolfssl_aesni = false;
#endif
#if defined(WOLFSSL_SP_X86_64_ASM) || defined(WOLFSSL_SP_ARM64_ASM) || defined(USE_INTEL_SPEEDUP)
    info->wolfssl_asm = true;
#else
    info->wolfssl_asm = false;
#endif
}
