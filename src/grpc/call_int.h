/* The call object shared by the HTTP/2 session (h2.c) and the call API
 * (call.c). Handlers see only grpc/call.h. */
#ifndef QUILT_GRPC_CALL_INT_H
#define QUILT_GRPC_CALL_INT_H

#include <nghttp2/nghttp2.h>

#include "common/strbuf.h"
#include "grpc/call.h"
#include "grpc/framing.h"
#include "grpc/registry.h"
#include "io/timer.h"

struct h2_session;

struct grpc_call {
  struct h2_session *sess;
  struct grpc_call *prev, *next;  /* session's live calls */
  int32_t stream_id;
  const struct grpc_method *method;
  unsigned method_index;
  /* Request side. */
  struct grpc_deframer deframer;
  ProtobufCMessage *request;      /* unary / server streaming */
  unsigned n_requests;
  size_t header_bytes;
  uint64_t timeout_ns;
  char *authorization;
  bool is_post, content_type_ok, bad_timeout;
  bool dispatched, half_closed, ignore_input;
  bool hold_input;                /* DATA is consumed by grpc_call_release_input */
  size_t unconsumed;
  void *user_data;
  /* Response side. */
  struct strbuf outq;
  bool headers_sent, finished, deferred, closed;
  int status;
  char *status_msg;
  uint64_t start_ns;
  struct qtimer deadline;
  grpc_call_fn on_cancel, on_writable;
  void *cancel_arg, *writable_arg;
};

/* call.c, for h2.c */
struct grpc_call *grpc_call_new(struct h2_session *s, int32_t stream_id);
void grpc_call_headers_done(struct grpc_call *call);
void grpc_call_data(struct grpc_call *call, const uint8_t *p, size_t n);
void grpc_call_end_of_input(struct grpc_call *call);
/* The stream is gone: cancel if unfinished, record metrics, free. */
void grpc_call_closed(struct grpc_call *call, uint32_t error_code);
/* The daemon is going away: end a call that is still open. */
void grpc_call_shutdown(struct grpc_call *call);
ssize_t grpc_call_read_body(struct grpc_call *call, uint8_t *buf, size_t len,
                            uint32_t *data_flags);

/* h2.c, for call.c */
nghttp2_session *h2_nghttp2(struct h2_session *s);
struct quiltd *h2_daemon(struct h2_session *s);
struct conn *h2_conn(struct h2_session *s);
void h2_wake(struct h2_session *s);  /* output is pending: flush soon */
int h2_submit_headers(struct grpc_call *call, int http_status, bool trailers_only);

#endif
