/**
 * @file
 * atoll/port.h: receive ports and send handles (Dart's ReceivePort and
 * SendPort).
 *
 * An isolate opens a receive port with a callback. The port's send handle
 * (atoll_send_port) is a plain value: copy it anywhere, give it to any
 * isolate or host thread, and send with atoll_port_send() from any thread.
 *
 * Guarantees:
 * - Messages from one sender (one thread) arrive in the order sent.
 * - Sending never blocks. The queue of each port is bounded: a full port
 *   returns ATOLL_E_PORT_FULL and nothing is queued.
 * - Ownership of the payload moves with the message. On success the sender
 *   gives it up; on any error the sender keeps it. A queued message is
 *   either handed to the port's callback (which then owns the payload) or,
 *   when the port closes or the runtime stops first, released by calling its
 *   `release` callback on the port's isolate thread. Nothing leaks.
 * - Wakeups go through the destination's ring: MSG_RING from an isolate,
 *   an eventfd read armed on the ring from host threads. A burst of sends
 *   costs the destination one wakeup.
 */
#ifndef ATOLL_PORT_H
#define ATOLL_PORT_H

#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A receive port, owned by one isolate. Opaque. */
typedef struct atoll_receive_port atoll_receive_port;

/** The send handle of a receive port: a plain value, freely copied. A
 *  zero-initialised handle is valid to send to and reports
 *  ATOLL_E_PORT_CLOSED. */
typedef struct atoll_send_port {
    uint64_t id_private; /**< slot and generation; opaque */
} atoll_send_port;

/** A message. Only the fields below; copied by value into the queue. */
typedef struct atoll_message {
    /** Free for the application (a type, a sequence number, ...). */
    uint64_t tag;
    /** Payload pointer (may be NULL); ownership moves with the message. */
    void *data;
    /** Payload size, for the application and for `release`. */
    size_t size;
    /** Called with (data, size) if the message is dropped unread; may be
     *  NULL when nothing needs releasing. */
    void (*release)(void *data, size_t size);
} atoll_message;

/** Port callback, run on the owning isolate's thread for each message, in
 *  order. The callback owns msg->data from then on; `msg` itself is only
 *  valid during the call. */
typedef void (*atoll_port_fn)(atoll_receive_port *port, atoll_message *msg, void *user);

/** Options for atoll_port_open(). Zero-initialise, then set what you need. */
typedef struct atoll_port_options {
    /** Queue capacity (rounded up to a power of two, at least 2); 0 uses the
     *  runtime's port_capacity. */
    uint32_t capacity;
} atoll_port_options;

/**
 * Opens a receive port on the calling isolate. `opts` may be NULL. An open
 * port keeps a spawned isolate alive.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (fn or out NULL), ATOLL_E_LIMIT
 * (max_ports open), -ENOMEM, ATOLL_E_STOPPED (the isolate is exiting).
 * Thread: the owning isolate's thread.
 */
ATOLL_API int atoll_port_open(atoll_isolate *self, const atoll_port_options *opts, atoll_port_fn fn, void *user,
                              atoll_receive_port **out);

/**
 * The port's send handle.
 * Thread: any thread while the port is open.
 */
ATOLL_API atoll_send_port atoll_port_send_handle(const atoll_receive_port *port);

/**
 * Closes the port: sends to its handle fail with ATOLL_E_PORT_CLOSED from
 * now on, messages still queued are released (their `release` callback runs
 * here, now or within a few turns if a sender is mid-send), the callback is
 * never called again, and the handle `port` must not be used. Allowed inside
 * the port's own callback.
 * Errors: ATOLL_E_WRONG_THREAD, -EINVAL (NULL).
 * Thread: the owning isolate's thread.
 */
ATOLL_API int atoll_port_close(atoll_receive_port *port);

/**
 * Sends a copy of `*msg` (ownership of msg->data moves on success).
 * Errors: ATOLL_E_PORT_FULL, ATOLL_E_PORT_CLOSED, ATOLL_E_STOPPED, -EINVAL
 * (rt or msg NULL). On every error the message was not queued.
 * Thread: any thread (isolate or host).
 */
ATOLL_API int atoll_port_send(atoll_runtime *rt, atoll_send_port to, const atoll_message *msg);

#ifdef __cplusplus
}
#endif
#endif /* ATOLL_PORT_H */
