/**
 * @file
 * atoll.h: the umbrella header. Include this one.
 *
 * atoll is a C11 runtime for Linux in which every worker thread is an
 * isolate with its own io_uring ring and event loop (see docs/).
 */
#ifndef ATOLL_ATOLL_H
#define ATOLL_ATOLL_H

#include "version.h"
#include "error.h"
#include "isolate.h"
#include "port.h"
#include "runtime.h"
#include "submit.h"
#include "net.h"
#include "tls.h"
#include "conn.h"
#include "server.h"
#include "client.h"

#endif /* ATOLL_ATOLL_H */
