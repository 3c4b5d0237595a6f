#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/auth.h"
#include "grpc/call_int.h"
#include "io/conn.h"

static int on_message(void *arg, const uint8_t *msg, size_t len, bool compressed);
static void on_deadline(struct qtimer *t);

struct grpc_call *grpc_call_new(struct h2_session *s, int32_t stream_id) {
  struct grpc_call *call = calloc(1, sizeof *call);
  if (!call)
    return NULL;
  call->sess = s;
  call->stream_id = stream_id;
  call->start_ns = clock_mono_ns();
  grpc_deframer_init(&call->deframer, h2_daemon(s)->cfg.max_recv_msg, on_message, call);
  return call;
}

struct quiltd *grpc_call_daemon(const struct grpc_call *call) {
  return call->sess ? h2_daemon(call->sess) : NULL;
}

bool grpc_call_finished(const struct grpc_call *call) { return call->finished; }

void grpc_call_set_data(struct grpc_call *call, void *data) { call->user_data = data; }
void *grpc_call_data_of(const struct grpc_call *call) { return call->user_data; }

void grpc_call_hold_input(struct grpc_call *call) { call->hold_input = true; }

void grpc_call_release_input(struct grpc_call *call) {
  if (call->closed || call->unconsumed == 0)
    return;
  nghttp2_session_consume(h2_nghttp2(call->sess), call->stream_id, call->unconsumed);
  call->unconsumed = 0;
  h2_wake(call->sess);
}

uint64_t grpc_call_deadline(const struct grpc_call *call) {
  if (!call->timeout_ns)
    return 0;
  /* grpc_timeout_parse saturates the largest timeouts (99999999H) to
   * UINT64_MAX: the sum must saturate too, or it wraps into the past and
   * the call ends at once with DEADLINE_EXCEEDED. */
  uint64_t at;
  return __builtin_add_overflow(call->start_ns, call->timeout_ns, &at) ? UINT64_MAX : at;
}

const char *grpc_call_header(const struct grpc_call *call, const char *name) {
  if (strcmp(name, "authorization") == 0)
    return call->authorization;
  return NULL;
}

void grpc_call_on_cancel(struct grpc_call *call, grpc_call_fn fn, void *arg) {
  call->on_cancel = fn;
  call->cancel_arg = arg;
}

void grpc_call_on_writable(struct grpc_call *call, grpc_call_fn fn, void *arg) {
  call->on_writable = fn;
  call->writable_arg = arg;
}

/* Runs the handler's cancel hook at most once. */
static void cancel_handler(struct grpc_call *call) {
  grpc_call_fn fn = call->on_cancel;
  call->on_cancel = NULL;
  call->on_writable = NULL;
  if (fn)
    fn(call, call->cancel_arg);
}

static void record(struct grpc_call *call, int status) {
  struct quiltd *d = grpc_call_daemon(call);
  if (!d)
    return;
  if (call->method)
    metrics_record_rpc(&d->metrics, call->method_index, status,
                       clock_mono_ns() - call->start_ns);
  else
    d->metrics.unknown_method_calls++;
}

static void finish(struct grpc_call *call, int status, const char *msg) {
  if (call->finished || call->closed || !call->sess)
    return;
  call->finished = true;
  call->ignore_input = true;
  call->on_writable = NULL;
  call->status = status;
  free(call->status_msg);
  call->status_msg = msg && msg[0] ? strdup(msg) : NULL;
  record(call, status);
  if (qtimer_pending(&call->deadline))
    qtimer_cancel(&h2_daemon(call->sess)->timers, &call->deadline);
  if (!call->headers_sent) {
    call->headers_sent = true;
    h2_submit_headers(call, 200, true); /* Trailers-Only */
    return;
  }
  if (call->deferred) {
    call->deferred = false;
    nghttp2_session_resume_data(h2_nghttp2(call->sess), call->stream_id);
  }
  h2_wake(call->sess);
}

void grpc_call_finish(struct grpc_call *call, int status, const char *fmt, ...) {
  char msg[1024] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  finish(call, status, msg);
}

void grpc_call_fail(struct grpc_call *call, const struct qerr *err) {
  int status = err->status ? err->status : grpc_status_from_errno(err->code);
  finish(call, status, err->msg);
}

int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg) {
  if (call->finished || call->closed || !call->sess)
    return -EPIPE;
  size_t len = protobuf_c_message_get_packed_size(msg);
  size_t queued = strbuf_avail(&call->outq);
  if (queued > 0 && queued + len > GRPC_CALL_QUEUE_LIMIT)
    return -EAGAIN;
  uint8_t *p = strbuf_tail(&call->outq, GRPC_FRAME_HEADER + len);
  if (!p)
    return -ENOMEM;
  grpc_frame_header(p, false, (uint32_t)len);
  protobuf_c_message_pack(msg, p + GRPC_FRAME_HEADER);
  strbuf_commit(&call->outq, GRPC_FRAME_HEADER + len);
  if (!call->headers_sent) {
    call->headers_sent = true;
    h2_submit_headers(call, 200, false);
  } else if (call->deferred) {
    call->deferred = false;
    nghttp2_session_resume_data(h2_nghttp2(call->sess), call->stream_id);
    h2_wake(call->sess);
  }
  return 0;
}

void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *msg) {
  int rc = grpc_call_send(call, msg);
  if (rc < 0 && rc != -EPIPE)
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "cannot queue the response: %s",
                     strerror(-rc));
  else
    finish(call, GRPC_OK, NULL);
}

ssize_t grpc_call_read_body(struct grpc_call *call, uint8_t *buf, size_t len,
                            uint32_t *data_flags) {
  size_t avail = strbuf_avail(&call->outq);
  size_t n = avail < len ? avail : len;
  if (n > 0) {
    memcpy(buf, strbuf_head(&call->outq), n);
    strbuf_consume(&call->outq, n);
  }
  if (strbuf_avail(&call->outq) == 0) {
    strbuf_shrink(&call->outq, 16 * 1024);
    if (call->finished) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const char *code = grpc_status_digits(call->status);
      struct strbuf enc = STRBUF_INIT;
      nghttp2_nv nv[2] = {{(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code),
                           NGHTTP2_NV_FLAG_NONE}};
      size_t nn = 1;
      if (call->status_msg &&
          grpc_percent_encode(&enc, call->status_msg, strlen(call->status_msg)) == 0)
        nv[nn++] = (nghttp2_nv){(uint8_t *)"grpc-message", (uint8_t *)strbuf_head(&enc), 12,
                                strbuf_avail(&enc), NGHTTP2_NV_FLAG_NONE};
      nghttp2_submit_trailer(h2_nghttp2(call->sess), call->stream_id, nv, nn);
      strbuf_free(&enc);
    } else if (n == 0) {
      call->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  if (call->on_writable && strbuf_avail(&call->outq) < GRPC_CALL_QUEUE_LIMIT / 2)
    call->on_writable(call, call->writable_arg);
  return (ssize_t)n;
}

/* Not a gRPC request at all: a bare HTTP error, counted as `status`. */
static void refuse_http(struct grpc_call *call, int http_status, int status) {
  call->finished = call->headers_sent = call->ignore_input = true;
  record(call, status);
  h2_submit_headers(call, http_status, false);
}

/* Health checks stay reachable without the token so load balancers and
 * orchestrators can probe; everything else, unknown paths included (so an
 * unauthenticated peer learns nothing about them), needs it over TCP. */
static bool authorized(struct grpc_call *call) {
  if (call->method && auth_exempt_method(call->method->path))
    return true;
  const char *why = NULL;
  if (conn_authorize(h2_conn(call->sess), call->authorization, "gRPC call", &why))
    return true;
  grpc_call_finish(call, GRPC_UNAUTHENTICATED, "%s", why);
  return false;
}

/* Validates the request head once all headers are in, before any message. */
void grpc_call_headers_done(struct grpc_call *call) {
  struct quiltd *d = h2_daemon(call->sess);
  if (!call->is_post) {
    refuse_http(call, 405, GRPC_UNIMPLEMENTED);
    return;
  }
  if (!call->content_type_ok) {
    refuse_http(call, 415, GRPC_INTERNAL);
    return;
  }
  if (!authorized(call))
    return;
  if (!call->method) {
    grpc_call_finish(call, GRPC_UNIMPLEMENTED, "unknown method (this is quiltd %s)",
                     QUILT_VERSION);
    return;
  }
  if (call->bad_timeout) {
    grpc_call_finish(call, GRPC_INTERNAL, "malformed grpc-timeout header");
    return;
  }
  uint64_t deadline = grpc_call_deadline(call);
  if (deadline && deadline != UINT64_MAX) /* UINT64_MAX: never */
    qtimer_at(&d->timers, &call->deadline, deadline, on_deadline);
}

static void dispatch(struct grpc_call *call, ProtobufCMessage *msg) {
  call->dispatched = true;
  call->method->on_request(call, msg);
}

static int on_message(void *arg, const uint8_t *msg, size_t len, bool compressed) {
  struct grpc_call *call = arg;
  if (call->ignore_input)
    return 0;
  if (compressed) {
    grpc_call_finish(call, GRPC_UNIMPLEMENTED,
                     "compressed messages are not supported; send with identity encoding");
    return -EPROTO;
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(call->method->input, NULL, len, msg);
  if (!m) {
    grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "cannot decode the request as %s",
                     call->method->input->name);
    return -EBADMSG;
  }
  call->n_requests++;
  enum grpc_kind kind = call->method->kind;
  if (kind == GRPC_CLIENT_STREAM || kind == GRPC_BIDI) {
    dispatch(call, m);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
  }
  if (call->n_requests > 1) {
    protobuf_c_message_free_unpacked(m, NULL);
    grpc_call_finish(call, GRPC_UNIMPLEMENTED, "%s takes exactly one request message",
                     call->method->path);
    return -EPROTO;
  }
  call->request = m;
  return 0;
}

void grpc_call_data(struct grpc_call *call, const uint8_t *p, size_t n) {
  if (call->ignore_input || !call->method)
    return;
  struct qerr err = QERR_INIT;
  int rc = grpc_deframer_feed(&call->deframer, p, n, &err);
  if (rc < 0) {
    if (!call->finished)
      grpc_call_fail(call, &err);
    call->ignore_input = true;
  }
}

void grpc_call_end_of_input(struct grpc_call *call) {
  call->half_closed = true;
  if (call->ignore_input || !call->method)
    return;
  if (!grpc_deframer_idle(&call->deframer)) {
    grpc_call_finish(call, GRPC_INTERNAL, "the request ended inside a message");
    return;
  }
  enum grpc_kind kind = call->method->kind;
  if (kind == GRPC_CLIENT_STREAM || kind == GRPC_BIDI) {
    if (call->method->on_half_close)
      call->method->on_half_close(call);
    return;
  }
  if (!call->request) {
    grpc_call_finish(call, GRPC_UNIMPLEMENTED, "%s takes exactly one request message, got none",
                     call->method->path);
    return;
  }
  ProtobufCMessage *m = call->request;
  call->request = NULL;
  dispatch(call, m);
  protobuf_c_message_free_unpacked(m, NULL);
}

static void on_deadline(struct qtimer *t) {
  struct grpc_call *call = container_of(t, struct grpc_call, deadline);
  if (call->finished)
    return;
  grpc_call_finish(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded after %.3f s",
                   (double)call->timeout_ns / 1e9);
  cancel_handler(call);
}

void grpc_call_shutdown(struct grpc_call *call) {
  if (call->finished)
    return;
  grpc_call_finish(call, GRPC_UNAVAILABLE, "quiltd is shutting down");
  cancel_handler(call);
}

void grpc_call_closed(struct grpc_call *call, uint32_t error_code) {
  (void)error_code;
  struct quiltd *d = grpc_call_daemon(call);
  if (!call->finished)
    record(call, GRPC_CANCELLED);
  call->closed = true;
  cancel_handler(call);
  /* Credit still held by the stream belongs to the connection window. */
  if (call->unconsumed)
    nghttp2_session_consume_connection(h2_nghttp2(call->sess), call->unconsumed);
  if (qtimer_pending(&call->deadline))
    qtimer_cancel(&d->timers, &call->deadline);
  if (call->request)
    protobuf_c_message_free_unpacked(call->request, NULL);
  grpc_deframer_free(&call->deframer);
  strbuf_free(&call->outq);
  free(call->status_msg);
  if (call->authorization) /* a secret: do not leave it in freed memory */
    explicit_bzero(call->authorization, strlen(call->authorization));
  free(call->authorization);
  free(call);
}
