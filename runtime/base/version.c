/* runtime/base/version.c: the version of the library linked at run time. */
#include "atoll/version.h"

const char *atoll_version(void)
{
    return ATOLL_VERSION_STRING;
}

unsigned atoll_version_number(void)
{
    return ATOLL_VERSION_NUMBER;
}
