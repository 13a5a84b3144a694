/*
 * tools/common/cli_flags.h: what the hand-written option loops of
 * atoll-serve and atoll-hsbench share: the usage error, "--flag=value" split
 * from its flag, and the tests the loop body makes on a flag. Each tool
 * keeps its own usage text, flags and checks.
 *
 * The macros read the loop's own names, as the loops have always written
 * them: `a` (the flag, from cli_split_flag), `val` (its value, or NULL),
 * `i`, `argc`, `argv`, and the tool's usage_error(fmt, ...).
 */
#ifndef ATOLL_TOOLS_COMMON_CLI_FLAGS_H
#define ATOLL_TOOLS_COMMON_CLI_FLAGS_H

#include <stddef.h>
#include <string.h>

/* Room for a flag split from "--flag=value"; a longer one stays whole. */
#define CLI_FLAG_BUF 64

/*
 * Prints "PROG: <fmt...>", a blank line and the usage text on stderr, and
 * exits 2 (a bad command line). A tool wraps it as its usage_error:
 *   #define usage_error(...) cli_usage_error(PROG, usage_text, __VA_ARGS__)
 */
void cli_usage_error(const char *prog, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/*
 * Splits "--flag=value" (arguments starting with "--" only): copies the
 * flag into buf (CLI_FLAG_BUF bytes) and returns it, *val pointing at the
 * value (possibly empty). Anything else, or a flag too long for buf, is
 * returned as given with *val NULL.
 */
const char *cli_split_flag(const char *arg, char buf[CLI_FLAG_BUF], const char **val);

/* The flag is `name`. */
#define FLAG(name) (strcmp(a, name) == 0)

/* The flag's value: from "--flag=value" or the next argument; none left is
 * a usage error. */
#define NEED_VALUE()                                                                                                   \
    do {                                                                                                               \
        if (!val) {                                                                                                    \
            if (i + 1 >= argc)                                                                                         \
                usage_error("%s needs a value", a);                                                                    \
            val = argv[++i];                                                                                           \
        }                                                                                                              \
    } while (0)

/* NEED_VALUE, and an empty value is a usage error too. */
#define NEED_NONEMPTY_VALUE()                                                                                          \
    do {                                                                                                               \
        NEED_VALUE();                                                                                                  \
        if (!*val)                                                                                                     \
            usage_error("%s needs a non-empty value", a);                                                              \
    } while (0)

/* A switch: "--flag=value" is a usage error. */
#define NO_VALUE()                                                                                                     \
    do {                                                                                                               \
        if (val)                                                                                                       \
            usage_error("%s takes no value", a);                                                                       \
    } while (0)

#endif /* ATOLL_TOOLS_COMMON_CLI_FLAGS_H */
