/* A small blocking gRPC client for quilt-cli: one HTTP/2 (h2c, prior
 * knowledge) connection per invocation, one call at a time.
 *
 * Every function follows common/qerr.h: 0 on success, a negative errno on
 * failure with `err` filled. Once connected, every call failure also sets
 * err->status to a gRPC code, so callers can print it uniformly:
 *   - the server's grpc-status, and its percent-decoded grpc-message as
 *     err->msg (empty when the server sent none);
 *   - DEADLINE_EXCEEDED when timeout_ns passes with no answer;
 *   - UNAVAILABLE when the connection breaks;
 *   - INTERNAL/UNKNOWN/... when the answer is not valid gRPC (non-200
 *     :status, no grpc-status, bad message), with a message saying so.
 * err->code is a negative errno matching the status (NOT_FOUND -> -ENOENT,
 * ALREADY_EXISTS -> -EEXIST, ...) so code can test for "no such container"
 * without string matching.
 *
 * Method paths are "/package.Service/Method", e.g. QCLIENT_QUILT("GetSystemInfo"). */
#ifndef QUILT_CLI_CLIENT_H
#define QUILT_CLI_CLIENT_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/qerr.h"

#define QCLIENT_QUILT(method) "/quilt.v1.Quilt/" method
#define QCLIENT_HEALTH(method) "/grpc.health.v1.Health/" method

#define QCLIENT_NS_PER_SEC 1000000000ull

struct qclient;

/* `target` is a Unix socket path ("/run/quilt/quiltd.sock"), "unix:PATH",
 * "unix://PATH" or "tcp://HOST:PORT" (HOST may be a name, an IPv4 address or
 * a bracketed IPv6 address). A refused or missing socket fails with
 * -ECONNREFUSED / -ENOENT and err->msg "cannot reach quiltd at TARGET: ...";
 * err->status stays 0 because no gRPC call was made. */
int qclient_connect(struct qclient **c, const char *target, struct qerr *err);

/* Every later call carries "authorization: Bearer TOKEN" (quiltd wants it
 * over TCP). The token is copied; -ENOMEM is the only failure. */
int qclient_set_token(struct qclient *c, const char *token, struct qerr *err);

/* The target as given to qclient_connect, for messages. */
const char *qclient_target(const struct qclient *c);

/* A unary call. On success *resp is a message of type resp_desc, to free
 * with protobuf_c_message_free_unpacked(*resp, NULL). timeout_ns 0 means no
 * deadline; otherwise it is sent as grpc-timeout and enforced locally. */
int qclient_unary(struct qclient *c, const char *method_path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  uint64_t timeout_ns, struct qerr *err);

/* Called once per response message of a server-streaming call. `msg` is
 * freed by the client when the callback returns (copy what you keep).
 * Return 0 to go on. A non-zero return cancels the call (RST_STREAM CANCEL):
 * a positive value is a deliberate stop and qclient_stream returns 0; a
 * negative value is an error that qclient_stream returns (fill `err` via
 * `arg` if you want your own message, otherwise it reads "call cancelled"). */
typedef int (*qclient_msg_fn)(void *arg, ProtobufCMessage *msg);

/* A server-streaming call; returns 0 once the server ends the stream with
 * grpc-status OK, or when the callback stopped it with a positive value. */
int qclient_stream(struct qclient *c, const char *method_path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, qclient_msg_fn on_msg,
                   void *arg, uint64_t timeout_ns, struct qerr *err);

/* Supplies the request messages of a client- or bidi-streaming call, called
 * as HTTP/2 flow control lets the client send more. Return 1 with *msg set
 * (the caller's: it is packed at once and need only stay valid until the
 * callback is called again or the call ends), 0 when there are no more (the
 * client then half-closes the stream), or a negative value to cancel the
 * call (RST_STREAM CANCEL), which qclient_bidi returns; fill `err` via `arg`
 * for your own message, otherwise it reads "call cancelled". */
typedef int (*qclient_next_fn)(void *arg, const ProtobufCMessage **msg);

/* A bidirectional (or client-streaming) call: requests come from next_msg,
 * responses go to on_msg as in qclient_stream. Returns 0 once the server
 * ends the stream with grpc-status OK, or when on_msg stopped it with a
 * positive value. If the server ends the call before next_msg said there
 * are no more, the rest is not sent (the stream is reset with NO_ERROR) and
 * the server's status is the result. */
int qclient_bidi(struct qclient *c, const char *method_path, qclient_next_fn next_msg,
                 void *next_arg, const ProtobufCMessageDescriptor *resp_desc,
                 qclient_msg_fn on_msg, void *arg, uint64_t timeout_ns, struct qerr *err);

/* The same for interactive input: next_msg may also return QCLIENT_LATER,
 * nothing to send yet; it is asked again once wake_fd is readable (e.g.
 * stdin, or a self-pipe a signal handler writes to), while responses keep
 * arriving. */
#define QCLIENT_LATER 2
int qclient_bidi_wake(struct qclient *c, const char *method_path, qclient_next_fn next_msg,
                      void *next_arg, int wake_fd, const ProtobufCMessageDescriptor *resp_desc,
                      qclient_msg_fn on_msg, void *arg, uint64_t timeout_ns, struct qerr *err);

/* Sends GOAWAY (best effort), closes the socket and frees everything.
 * NULL is fine. */
void qclient_close(struct qclient *c);

#endif
