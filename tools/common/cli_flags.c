/*
 * tools/common/cli_flags.c: the usage error and the "--flag=value" split of
 * the tools' option loops (cli_flags.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli_flags.h"

void cli_usage_error(const char *prog, const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n%s", usage);
    va_end(ap);
    exit(2);
}

const char *cli_split_flag(const char *arg, char buf[CLI_FLAG_BUF], const char **val)
{
    *val = NULL;
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (eq == NULL || (size_t)(eq - arg) >= CLI_FLAG_BUF)
        return arg;
    memcpy(buf, arg, (size_t)(eq - arg));
    buf[eq - arg] = '\0';
    *val = eq + 1;
    return buf;
}
