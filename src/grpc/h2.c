#include "grpc/h2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/call_int.h"
#include "io/conn.h"

struct h2_session {
  nghttp2_session *ng;
  struct conn *conn;
  struct quiltd *d;
  struct grpc_call *calls;
  unsigned open_streams;
  /* Rapid-reset accounting (nghttp2 1.52 has no built-in limit). */
  uint64_t reset_window_start;
  unsigned resets_in_window;
  bool shutting_down;
};

nghttp2_session *h2_nghttp2(struct h2_session *s) { return s->ng; }
struct quiltd *h2_daemon(struct h2_session *s) { return s->d; }
struct conn *h2_conn(struct h2_session *s) { return s->conn; }
void h2_wake(struct h2_session *s) { conn_mark_dirty(s->conn); }

static struct grpc_call *call_of(struct h2_session *s, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(s->ng, stream_id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  struct h2_session *s = ud;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  if (s->shutting_down) {
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  struct grpc_call *call = grpc_call_new(s, frame->hd.stream_id);
  if (!call)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  call->next = s->calls;
  if (s->calls)
    s->calls->prev = call;
  s->calls = call;
  s->open_streams++;
  s->d->metrics.streams_current++;
  s->d->metrics.streams_total++;
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, call);
  return 0;
}

static bool eq(const uint8_t *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  return alen == blen && memcmp(a, b, blen) == 0;
}

static char *dup_value(const uint8_t *v, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, v, n);
    p[n] = 0;
  }
  return p;
}

static bool content_type_ok(const uint8_t *v, size_t n) {
  static const char base[] = "application/grpc";
  size_t bl = sizeof base - 1;
  return n >= bl && memcmp(v, base, bl) == 0 && (n == bl || v[bl] == '+' || v[bl] == ';');
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  (void)ng;
  (void)flags;
  struct h2_session *s = ud;
  struct grpc_call *call = call_of(s, frame->hd.stream_id);
  if (!call || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  call->header_bytes += namelen + valuelen + 32;
  if (call->header_bytes > s->d->cfg.max_header_bytes)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  if (call->dispatched || call->half_closed)
    return 0; /* trailers from the client carry nothing we use */
  if (eq(name, namelen, ":path")) {
    call->method = grpc_registry_find(&s->d->registry, (const char *)value, valuelen,
                                      &call->method_index);
  } else if (eq(name, namelen, ":method")) {
    call->is_post = eq(value, valuelen, "POST");
  } else if (eq(name, namelen, "content-type")) {
    call->content_type_ok = content_type_ok(value, valuelen);
  } else if (eq(name, namelen, "grpc-timeout")) {
    if (grpc_timeout_parse((const char *)value, valuelen, &call->timeout_ns) < 0)
      call->bad_timeout = true;
  } else if (eq(name, namelen, "authorization") && !call->authorization) {
    call->authorization = dup_value(value, valuelen);
  }
  return 0;
}

static void count_reset(struct h2_session *s) {
  uint64_t now = clock_mono_ns();
  if (now - s->reset_window_start > 1000000000ull) {
    s->reset_window_start = now;
    s->resets_in_window = 0;
  }
  if (++s->resets_in_window > s->d->cfg.rapid_reset_limit) {
    log_warn("client reset %u streams within a second: closing the connection",
             s->resets_in_window);
    s->d->metrics.rapid_reset_sheds++;
    nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  (void)ng;
  struct h2_session *s = ud;
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    count_reset(s);
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  struct grpc_call *call = call_of(s, frame->hd.stream_id);
  if (!call)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    grpc_call_headers_done(call);
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->half_closed)
    grpc_call_end_of_input(call);
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud) {
  (void)flags;
  struct grpc_call *call = call_of(ud, stream_id);
  if (call)
    grpc_call_data(call, data, len);
  /* Flow control is ours: bytes count as consumed once handled, except for
   * calls that hold their input until they have passed it on (uploads). */
  if (call && call->hold_input)
    call->unconsumed += len;
  else if (call)
    nghttp2_session_consume(ng, stream_id, len);
  else
    nghttp2_session_consume_connection(ng, len);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code,
                           void *ud) {
  struct h2_session *s = ud;
  struct grpc_call *call = call_of(s, stream_id);
  if (!call)
    return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
  if (call->prev)
    call->prev->next = call->next;
  else
    s->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  s->open_streams--;
  s->d->metrics.streams_current--;
  grpc_call_closed(call, error_code);
  return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *ud) {
  (void)ng;
  (void)stream_id;
  (void)ud;
  return grpc_call_read_body(source->ptr, buf, length, data_flags);
}

int h2_submit_headers(struct grpc_call *call, int http_status, bool trailers_only) {
  const char *status_text = http_status == 200 ? "200" : http_status == 405 ? "405" : "415";
  const char *grpc_status = grpc_status_digits(call->status);
  struct strbuf enc = STRBUF_INIT;
  nghttp2_nv nv[6];
  size_t n = 0;
#define NV(k, v, vl) nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, (vl), \
                                            NGHTTP2_NV_FLAG_NONE}
  NV(":status", status_text, strlen(status_text));
  if (http_status == 200) {
    NV("content-type", "application/grpc", 16);
    NV("grpc-accept-encoding", "identity", 8);
  }
  if (trailers_only && http_status == 200) {
    NV("grpc-status", grpc_status, strlen(grpc_status));
    if (call->status_msg && call->status_msg[0] &&
        grpc_percent_encode(&enc, call->status_msg, strlen(call->status_msg)) == 0)
      NV("grpc-message", strbuf_head(&enc), strbuf_avail(&enc));
  }
#undef NV
  int rc;
  if (trailers_only || http_status != 200) {
    rc = nghttp2_submit_response(call->sess->ng, call->stream_id, nv, n, NULL);
  } else {
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = read_body};
    rc = nghttp2_submit_response(call->sess->ng, call->stream_id, nv, n, &prd);
  }
  strbuf_free(&enc);
  h2_wake(call->sess);
  return rc == 0 ? 0 : -EIO;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  (void)ng;
  struct h2_session *s = ud;
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
      frame->goaway.error_code != NGHTTP2_ENHANCE_YOUR_CALM)
    s->d->metrics.h2_protocol_errors++;
  return 0;
}

static nghttp2_session_callbacks *make_callbacks(void) {
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0)
    return NULL;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  return cb;
}

int h2_session_new(struct conn *c, struct h2_session **out, struct qerr *err) {
  struct h2_session *s = calloc(1, sizeof *s);
  if (!s)
    return qerr_set(err, ENOMEM, "allocating an HTTP/2 session");
  s->conn = c;
  s->d = c->d;
  nghttp2_session_callbacks *cb = make_callbacks();
  nghttp2_option *opt = NULL;
  if (!cb || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    free(s);
    return qerr_set(err, ENOMEM, "allocating nghttp2 callbacks");
  }
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rc = nghttp2_session_server_new2(&s->ng, cb, s, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rc != 0) {
    free(s);
    return qerr_set(err, ENOMEM, "nghttp2_session_server_new: %s", nghttp2_strerror(rc));
  }
  const struct quiltd_config *cfg = &c->d->cfg;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1024 * 1024},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_bytes},
  };
  nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
  /* A large connection window lets several big streams flow at once. */
  nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, 8 * 1024 * 1024);
  *out = s;
  return 0;
}

int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t n) {
  ssize_t rc = nghttp2_session_mem_recv(s->ng, p, n);
  if (rc < 0) {
    /* Errors nghttp2 answers with a GOAWAY are counted in on_frame_send;
     * after a fatal one (a flood of CONTINUATION frames, of control frames
     * we would have to answer) it sends nothing more: just close. */
    if (rc == NGHTTP2_ERR_BAD_CLIENT_MAGIC || nghttp2_is_fatal((int)rc))
      s->d->metrics.h2_protocol_errors++;
    log_debug("HTTP/2 input rejected: %s", nghttp2_strerror((int)rc));
    if (rc != NGHTTP2_ERR_BAD_CLIENT_MAGIC && !nghttp2_is_fatal((int)rc))
      nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
    return -1;
  }
  return 0;
}

int h2_session_pump(struct h2_session *s, struct strbuf *out, size_t limit) {
  while (strbuf_avail(out) < limit) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ng, &data);
    if (n < 0) {
      log_debug("nghttp2_session_mem_send: %s", nghttp2_strerror((int)n));
      return -1;
    }
    if (n == 0)
      break;
    if (strbuf_append(out, data, (size_t)n) < 0)
      return -1;
  }
  return 0;
}

bool h2_session_done(struct h2_session *s) {
  return !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng);
}

bool h2_session_idle(struct h2_session *s) { return s->open_streams == 0; }

void h2_session_shutdown(struct h2_session *s) {
  if (s->shutting_down)
    return;
  s->shutting_down = true;
  struct grpc_call *next;
  for (struct grpc_call *call = s->calls; call; call = next) {
    next = call->next;
    grpc_call_shutdown(call);
  }
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
  h2_wake(s);
}

void h2_session_free(struct h2_session *s) {
  /* nghttp2_session_del frees streams without on_stream_close, so the
   * calls are cancelled and freed here first. */
  while (s->calls) {
    struct grpc_call *call = s->calls;
    s->calls = call->next;
    if (s->calls)
      s->calls->prev = NULL;
    nghttp2_session_set_stream_user_data(s->ng, call->stream_id, NULL);
    s->open_streams--;
    s->d->metrics.streams_current--;
    grpc_call_closed(call, NGHTTP2_CANCEL);
  }
  nghttp2_session_del(s->ng);
  free(s);
}
