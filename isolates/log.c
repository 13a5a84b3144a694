/*
 * isolates/log.c: lines for the host's log callback
 * (atoll_runtime_options.log), formatted on the isolate that saw the event.
 */
#include <stdarg.h>
#include <stdio.h>

#include "isolates/isolate_private.h"

void atoll__log(struct atoll_isolate *iso, atoll_log_level level, const char *fmt, ...)
{
    if (!iso->opts->log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap); /* a longer line is cut, never dropped */
    va_end(ap);
    iso->opts->log(level, line, iso->opts->log_user);
}
