/* What a gRPC method handler sees of its call.
 *
 * A handler answers at once (grpc_call_reply / grpc_call_finish) or keeps
 * the call and answers later. A handler that keeps a call must register
 * grpc_call_on_cancel: it runs once if the call ends before the handler
 * finished it (client cancel, deadline, connection loss, daemon shutdown),
 * and the call pointer must not be used after it returns. */
#ifndef QUILT_GRPC_CALL_H
#define QUILT_GRPC_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/qerr.h"
#include "grpc/status.h"

struct grpc_call;
struct quiltd;

/* Per-stream outbound queue bound; grpc_call_send refuses beyond it. */
#define GRPC_CALL_QUEUE_LIMIT (1024 * 1024)

typedef void (*grpc_call_fn)(struct grpc_call *call, void *arg);

struct quiltd *grpc_call_daemon(const struct grpc_call *call);

/* Queues one response message. Returns 0, -EAGAIN when the queue is over
 * GRPC_CALL_QUEUE_LIMIT (nothing queued: wait for on_writable), -EPIPE when
 * the call has already finished, or -ENOMEM. */
int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg);
/* Ends the call with a status; the message is printf-formatted. */
void grpc_call_finish(struct grpc_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the call with the status and message recorded in err. */
void grpc_call_fail(struct grpc_call *call, const struct qerr *err);
/* Unary shorthand: one message, then OK. */
void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *msg);

void grpc_call_on_cancel(struct grpc_call *call, grpc_call_fn fn, void *arg);
/* Runs when the outbound queue drained below half the limit, until the
 * call is finished. */
void grpc_call_on_writable(struct grpc_call *call, grpc_call_fn fn, void *arg);
bool grpc_call_finished(const struct grpc_call *call);
/* A handler's own state for the call (streaming requests). */
void grpc_call_set_data(struct grpc_call *call, void *data);
void *grpc_call_data_of(const struct grpc_call *call);
/* Streaming requests: stop returning HTTP/2 flow-control credit for the
 * bytes received until grpc_call_release_input, so a client cannot send
 * faster than the handler passes its data on. */
void grpc_call_hold_input(struct grpc_call *call);
void grpc_call_release_input(struct grpc_call *call);
/* Monotonic deadline in ns from grpc-timeout; 0 when none, UINT64_MAX when
 * too far away to represent (never). */
uint64_t grpc_call_deadline(const struct grpc_call *call);
/* Value of a request header (lower-case name), or NULL. Only headers the
 * layer keeps are available: authorization. */
const char *grpc_call_header(const struct grpc_call *call, const char *name);

#endif
