/* Blocking gRPC client over nghttp2's client session. The CLI makes one call
 * at a time on one connection, so the design is a plain loop per call:
 * flush what nghttp2 wants to send, poll() for input until the deadline,
 * read(), feed nghttp2, repeat until the stream closes. nghttp2 does the
 * HTTP/2 work (preface, SETTINGS, flow control, HPACK); this file adds gRPC
 * framing, status/trailer handling and error reporting. */
#include "cli/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "grpc/framing.h"
#include "grpc/status.h"

/* Big windows so a large response (logs, listings) does not stall on
 * WINDOW_UPDATE round trips; nghttp2 still replenishes them automatically. */
#define QCLIENT_STREAM_WINDOW (1 << 20)
#define QCLIENT_CONN_WINDOW (1 << 24)
#define QCLIENT_READ_CHUNK 16384

struct qclient {
  int fd;
  nghttp2_session *session;
  char *target;
  char *authorization; /* "Bearer TOKEN", or NULL */
  /* Set after a transport failure: the session state is unknown, so later
   * calls fail at once instead of talking to a half-dead connection. */
  bool broken;
  /* Whether any byte arrived yet; lets us recognise an HTTP/1 server. */
  bool got_bytes;
};

/* State of the one in-flight call; lives on the caller's stack and is the
 * nghttp2 stream user data. */
struct qcall {
  nghttp2_session *session;
  int32_t stream_id;
  const uint8_t *body; /* framed request message (the current one, streaming) */
  size_t body_len, body_off;
  /* Client-streaming requests: where the next message comes from, and the
   * buffer it is framed into. NULL for unary and server-streaming calls. */
  qclient_next_fn next_msg;
  void *next_arg;
  int wake_fd;       /* interactive: next_msg said QCLIENT_LATER; ask again when readable */
  bool waiting;      /* ... and has not been asked again yet */
  uint8_t *req_buf;
  size_t req_cap;

  const ProtobufCMessageDescriptor *desc;
  qclient_msg_fn on_msg; /* NULL for unary calls */
  void *arg;
  ProtobufCMessage *unary_resp;
  struct grpc_deframer deframer;

  int http_status;  /* 0 until :status arrives */
  int grpc_status;  /* -1 until grpc-status arrives */
  bool grpc_ct;     /* content-type was application/grpc[...] */
  char grpc_message[sizeof(((struct qerr *)0)->msg)];
  uint32_t close_code; /* RST_STREAM code the stream closed with */
  bool closed;

  /* A local decision ended the call (bad message, deadline, callback stop):
   * we sent RST_STREAM and `err` already holds the result. */
  bool aborted;
  bool stopped; /* the callback stopped it deliberately: success */
  struct qerr *err;
};

/* ------------------------------------------------------------ errors */

/* errno for a gRPC status, so callers can test err->code without parsing. */
static int errno_for_status(int status) {
  static const int map[GRPC_STATUS_COUNT] = {
      [GRPC_OK] = 0,
      [GRPC_CANCELLED] = ECANCELED,
      [GRPC_UNKNOWN] = EIO,
      [GRPC_INVALID_ARGUMENT] = EINVAL,
      [GRPC_DEADLINE_EXCEEDED] = ETIMEDOUT,
      [GRPC_NOT_FOUND] = ENOENT,
      [GRPC_ALREADY_EXISTS] = EEXIST,
      [GRPC_PERMISSION_DENIED] = EACCES,
      [GRPC_RESOURCE_EXHAUSTED] = ENOSPC,
      [GRPC_FAILED_PRECONDITION] = EBUSY,
      [GRPC_ABORTED] = EAGAIN,
      [GRPC_OUT_OF_RANGE] = ERANGE,
      [GRPC_UNIMPLEMENTED] = ENOSYS,
      [GRPC_INTERNAL] = EPROTO,
      [GRPC_UNAVAILABLE] = ENOTCONN,
      [GRPC_DATA_LOSS] = EIO,
      [GRPC_UNAUTHENTICATED] = EPERM,
  };
  if (status <= 0 || status >= GRPC_STATUS_COUNT)
    return EIO;
  return map[status];
}

/* The status gRPC prescribes for a non-200 HTTP answer. */
static int status_for_http(int http) {
  switch (http) {
  case 400:
    return GRPC_INTERNAL;
  case 401:
    return GRPC_UNAUTHENTICATED;
  case 403:
    return GRPC_PERMISSION_DENIED;
  case 404:
    return GRPC_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return GRPC_UNAVAILABLE;
  default:
    return GRPC_UNKNOWN;
  }
}

/* Ends the call from our side: records the first error (later ones are
 * consequences) and resets the stream so the server stops working on it. */
__attribute__((format(printf, 3, 4))) static void call_abort(struct qcall *call, int status,
                                                               const char *fmt, ...) {
  if (call->aborted || call->closed)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->err->msg, sizeof call->err->msg, fmt, ap);
  va_end(ap);
  call->err->status = status;
  call->err->code = status == GRPC_OK ? 0 : -errno_for_status(status);
  call->aborted = true;
  nghttp2_submit_rst_stream(call->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
}

/* A broken connection: no further call can use it. */
__attribute__((format(printf, 5, 6))) static int conn_fail(struct qclient *c, struct qerr *err,
                                                             int status, int errnum,
                                                             const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->status = status;
  err->code = errnum > 0 ? -errnum : -EIO;
  c->broken = true;
  return err->code;
}

/* ------------------------------------------------------------ socket I/O */

static int send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    /* MSG_NOSIGNAL: a daemon that went away must give EPIPE, not kill us. */
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static bool looks_like_http1(const uint8_t *p, size_t n) {
  return n >= 5 && memcmp(p, "HTTP/", 5) == 0;
}

static int http1_error(struct qclient *c, struct qerr *err) {
  return conn_fail(c, err, GRPC_UNAVAILABLE, EPROTO,
                   "%s answered with HTTP/1, not gRPC over HTTP/2", c->target);
}

/* A write failed: an HTTP/1 server rejects our preface as a bad request and
 * hangs up, so look at what it left unread before blaming the connection. */
static int send_error(struct qclient *c, int errnum, struct qerr *err) {
  uint8_t peek[5];
  ssize_t n = recv(c->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  if (!c->got_bytes && n > 0 && looks_like_http1(peek, (size_t)n))
    return http1_error(c, err);
  return conn_fail(c, err, GRPC_UNAVAILABLE, errnum, "connection to quiltd at %s lost: %s",
                   c->target, strerror(errnum));
}

/* Writes everything nghttp2 has queued (frames, preface, our DATA). */
static int flush(struct qclient *c, struct qerr *err) {
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0)
      return conn_fail(c, err, GRPC_INTERNAL, EPROTO, "HTTP/2 error: %s",
                       nghttp2_strerror((int)n));
    if (n == 0)
      return 0;
    int r = send_all(c->fd, data, (size_t)n);
    if (r < 0)
      return send_error(c, -r, err);
  }
}

/* 1 when fd is readable, 2 when wake (if >= 0) is, 0 when the deadline
 * (monotonic ns, 0 = none) passed. */
static int wait_readable(int fd, int wake, uint64_t deadline) {
  for (;;) {
    int ms = -1;
    if (deadline) {
      uint64_t now = clock_mono_ns();
      if (now >= deadline)
        return 0;
      ms = (int)((deadline - now + 999999) / 1000000); /* round up: never spin */
    }
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = wake, .events = POLLIN}};
    int r = poll(p, wake >= 0 ? 2 : 1, ms);
    if (r > 0)
      return p[0].revents ? 1 : 2;
    if (r < 0 && errno != EINTR)
      return -errno;
  }
}

/* Reads once and hands the bytes to nghttp2 (which runs our callbacks). */
static int receive(struct qclient *c, struct qerr *err) {
  uint8_t buf[QCLIENT_READ_CHUNK];
  ssize_t n;
  do
    n = read(c->fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return conn_fail(c, err, GRPC_UNAVAILABLE, errno, "connection to quiltd at %s lost: %s",
                     c->target, strerror(errno));
  if (n == 0)
    return conn_fail(c, err, GRPC_UNAVAILABLE, ECONNRESET,
                     "quiltd at %s closed the connection", c->target);
  if (!c->got_bytes && looks_like_http1(buf, (size_t)n))
    return http1_error(c, err);
  c->got_bytes = true;
  ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
  if (used < 0)
    return conn_fail(c, err, GRPC_INTERNAL, EPROTO, "invalid HTTP/2 from quiltd: %s",
                     nghttp2_strerror((int)used));
  return 0;
}

/* ------------------------------------------------------------ nghttp2 callbacks */

static struct qcall *stream_call(nghttp2_session *s, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(s, stream_id);
}

static bool has_prefix(const uint8_t *p, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  return n >= k && memcmp(p, prefix, k) == 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* Small non-negative decimal; -1 when malformed. */
static int parse_small_int(const uint8_t *p, size_t n) {
  if (n == 0 || n > 4)
    return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

static bool is_grpc_content_type(const uint8_t *v, size_t n) {
  if (!has_prefix(v, n, "application/grpc"))
    return false;
  /* "application/grpc", "application/grpc+proto", "application/grpc;..." */
  return n == 16 || v[16] == '+' || v[16] == ';';
}

/* Percent-decodes grpc-message; a message cut at our buffer size must not
 * end in half a UTF-8 character. */
static void decode_message(struct qcall *call, const uint8_t *v, size_t n) {
  char *out = call->grpc_message;
  size_t len = grpc_percent_decode(out, sizeof call->grpc_message, (const char *)v, n);
  if (len + 1 < sizeof call->grpc_message)
    return;
  size_t start = len;
  while (start > 0 && ((unsigned char)out[start - 1] & 0xc0) == 0x80)
    start--;
  /* out[start-1] leads the last sequence; drop it if incomplete. */
  if (start > 0 && (unsigned char)out[start - 1] >= 0xc0) {
    unsigned char lead = (unsigned char)out[start - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (len - (start - 1) < need)
      out[start - 1] = 0;
  }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
  (void)flags, (void)user_data;
  struct qcall *call = stream_call(s, frame->hd.stream_id);
  if (!call || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  bool first = frame->headers.cat == NGHTTP2_HCAT_RESPONSE;
  if (first && name_is(name, namelen, ":status"))
    call->http_status = parse_small_int(value, valuelen);
  else if (first && name_is(name, namelen, "content-type"))
    call->grpc_ct = is_grpc_content_type(value, valuelen);
  else if (name_is(name, namelen, "grpc-status")) {
    int st = parse_small_int(value, valuelen);
    /* An unparseable status is still a failure, never OK. */
    call->grpc_status = st < 0 || st >= GRPC_STATUS_COUNT ? GRPC_UNKNOWN : st;
  } else if (name_is(name, namelen, "grpc-message"))
    decode_message(call, value, valuelen);
  return 0;
}

static int deliver_unary(struct qcall *call, ProtobufCMessage *m) {
  if (call->unary_resp) {
    protobuf_c_message_free_unpacked(m, NULL);
    call_abort(call, GRPC_INTERNAL, "quiltd sent more than one message for a unary call");
    return -EPROTO;
  }
  call->unary_resp = m;
  return 0;
}

/* Hands a streamed message to the caller, who may stop the call. */
static int deliver_stream(struct qcall *call, ProtobufCMessage *m) {
  int rc = call->on_msg(call->arg, m);
  protobuf_c_message_free_unpacked(m, NULL);
  if (rc == 0)
    return 0;
  if (rc > 0) {
    call->stopped = true;
    call_abort(call, GRPC_OK, "stopped by caller");
  } else if (call->err->code != 0) {
    /* The callback filled err itself; keep its message, just reset. */
    call->aborted = true;
    nghttp2_submit_rst_stream(call->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
  } else {
    call_abort(call, GRPC_CANCELLED, "call cancelled");
    call->err->code = rc;
  }
  return -ECANCELED;
}

/* One complete response message out of the deframer. */
static int on_grpc_msg(void *arg, const uint8_t *msg, size_t len, bool compressed) {
  struct qcall *call = arg;
  if (compressed) {
    call_abort(call, GRPC_INTERNAL, "quiltd sent a compressed message (not supported)");
    return -EPROTO;
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(call->desc, NULL, len, msg);
  if (!m) {
    call_abort(call, GRPC_INTERNAL, "cannot decode the %s in quiltd's answer", call->desc->name);
    return -EPROTO;
  }
  return call->on_msg ? deliver_stream(call, m) : deliver_unary(call, m);
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data) {
  (void)flags, (void)user_data;
  struct qcall *call = stream_call(s, stream_id);
  /* Data that was already in flight after we reset the stream is dropped. */
  if (!call || call->aborted)
    return 0;
  struct qerr ferr = QERR_INIT;
  int rc = grpc_deframer_feed(&call->deframer, data, len, &ferr);
  if (rc < 0 && !call->aborted)
    call_abort(call, ferr.status ? ferr.status : GRPC_INTERNAL, "bad message from quiltd: %s",
               ferr.msg);
  return 0;
}

/* A streaming request whose answer is complete (the server ended its side,
 * e.g. with an error) while we still have messages to send: nobody will
 * read them, and the server may never open its window again, so stop. */
static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  (void)user_data;
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  struct qcall *call = stream_call(s, frame->hd.stream_id);
  if (call && call->next_msg && !call->aborted &&
      !nghttp2_session_get_stream_local_close(s, frame->hd.stream_id))
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  (void)user_data;
  struct qcall *call = stream_call(s, stream_id);
  if (call) {
    call->closed = true;
    call->close_code = error_code;
  }
  return 0;
}

/* Frames the next request message of a streaming call into req_buf.
 * 1: body points at it; 0: no more; < 0: the call was aborted. */
static int next_request(struct qcall *call) {
  const ProtobufCMessage *m = NULL;
  int rc = call->next_msg(call->next_arg, &m);
  if (rc == 0)
    return 0;
  if (rc == QCLIENT_LATER) {
    call->waiting = true;
    return QCLIENT_LATER;
  }
  if (rc > 0 && !m)
    rc = -EINVAL;
  if (rc < 0) {
    if (call->err->code != 0) {
      /* The callback filled err itself; keep its message, just reset. */
      call->aborted = true;
      nghttp2_submit_rst_stream(call->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                NGHTTP2_CANCEL);
    } else {
      call_abort(call, GRPC_CANCELLED, "call cancelled");
      call->err->code = rc;
    }
    return rc;
  }
  size_t len = protobuf_c_message_get_packed_size(m);
  if (len > UINT32_MAX) {
    call_abort(call, GRPC_INVALID_ARGUMENT, "request message too large");
    call->err->code = -EMSGSIZE;
    return -EMSGSIZE;
  }
  if (GRPC_FRAME_HEADER + len > call->req_cap) {
    uint8_t *p = realloc(call->req_buf, GRPC_FRAME_HEADER + len);
    if (!p) {
      call_abort(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
      call->err->code = -ENOMEM;
      return -ENOMEM;
    }
    call->req_buf = p;
    call->req_cap = GRPC_FRAME_HEADER + len;
  }
  grpc_frame_header(call->req_buf, false, (uint32_t)len);
  protobuf_c_message_pack(m, call->req_buf + GRPC_FRAME_HEADER);
  call->body = call->req_buf;
  call->body_len = GRPC_FRAME_HEADER + len;
  call->body_off = 0;
  return 1;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)s, (void)stream_id, (void)user_data;
  struct qcall *call = source->ptr;
  /* Streaming: produce the next message once the current one is out. The
   * client blocks anyway, so doing it here, as the window allows, is simplest. */
  while (call->next_msg && call->body_off == call->body_len && !call->aborted) {
    int rc = next_request(call);
    if (rc < 0 || rc == QCLIENT_LATER)
      return NGHTTP2_ERR_DEFERRED; /* the stream is being reset, or nothing yet */
    if (rc == 0) {
      call->next_msg = NULL;
      break;
    }
  }
  if (call->aborted)
    return NGHTTP2_ERR_DEFERRED;
  size_t n = call->body_len - call->body_off;
  if (n > length)
    n = length;
  memcpy(buf, call->body + call->body_off, n);
  call->body_off += n;
  if (call->body_off == call->body_len && !call->next_msg)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void free_secret(char *s) {
  if (s)
    explicit_bzero(s, strlen(s));
  free(s);
}

/* ------------------------------------------------------------ connecting */

static int connect_unix(const char *path, const char *target, struct qerr *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qerr_set(err, ENAMETOOLONG, "socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return qerr_errno(err, "socket");
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return qerr_errno(err, "cannot reach quiltd at %s", target);
  return take_fd(&fd);
}

/* Splits "HOST:PORT" / "[V6]:PORT" in place. */
static int split_host_port(char *hp, char **host, char **port) {
  char *colon;
  if (hp[0] == '[') {
    char *close = strchr(hp, ']');
    if (!close || close[1] != ':')
      return -EINVAL;
    *close = 0;
    *host = hp + 1;
    colon = close + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon)
      return -EINVAL;
    *colon = 0;
    *host = hp;
  }
  *port = colon + 1;
  return **host && **port ? 0 : -EINVAL;
}

static int connect_addrs(const struct addrinfo *ai, const char *target, struct qerr *err) {
  int last = ECONNREFUSED;
  for (; ai; ai = ai->ai_next) {
    cleanup_fd int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      /* Requests are small writes we wait on: don't let Nagle delay them. */
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return take_fd(&fd);
    }
    last = errno;
  }
  errno = last;
  return qerr_errno(err, "cannot reach quiltd at %s", target);
}

static int connect_tcp(const char *hostport, const char *target, struct qerr *err) {
  cleanup_free char *hp = strdup(hostport);
  if (!hp)
    return qerr_set(err, ENOMEM, "out of memory");
  char *host, *port;
  if (split_host_port(hp, &host, &port) < 0)
    return qerr_set(err, EINVAL, "bad address '%s': expected tcp://HOST:PORT", target);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int r = getaddrinfo(host, port, &hints, &res);
  if (r != 0)
    return qerr_set(err, EHOSTUNREACH, "cannot reach quiltd at %s: %s", target,
                    gai_strerror(r));
  int fd = connect_addrs(res, target, err);
  freeaddrinfo(res);
  return fd;
}

static int open_socket(const char *target, struct qerr *err) {
  if (strncmp(target, "tcp://", 6) == 0)
    return connect_tcp(target + 6, target, err);
  if (strncmp(target, "unix://", 7) == 0)
    return connect_unix(target + 7, target, err);
  if (strncmp(target, "unix:", 5) == 0)
    return connect_unix(target + 5, target, err);
  if (strstr(target, "://"))
    return qerr_set(err, EINVAL, "unsupported address '%s': use a socket path, unix://PATH or "
                    "tcp://HOST:PORT", target);
  if (!*target)
    return qerr_set(err, EINVAL, "empty socket path");
  return connect_unix(target, target, err);
}

static int new_session(struct qclient *c, struct qerr *err) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return qerr_set(err, ENOMEM, "out of memory");
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  int r = nghttp2_session_client_new(&c->session, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  if (r != 0)
    return qerr_set(err, ENOMEM, "cannot create HTTP/2 session: %s", nghttp2_strerror(r));
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, QCLIENT_STREAM_WINDOW},
  };
  /* nghttp2 puts the client preface in front of this SETTINGS frame. */
  r = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, ARRAY_SIZE(settings));
  if (r == 0)
    r = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              QCLIENT_CONN_WINDOW);
  if (r != 0)
    return qerr_set(err, EPROTO, "HTTP/2 settings: %s", nghttp2_strerror(r));
  return 0;
}

int qclient_connect(struct qclient **out, const char *target, struct qerr *err) {
  *out = NULL;
  struct qclient *c = calloc(1, sizeof *c);
  if (!c)
    return qerr_set(err, ENOMEM, "out of memory");
  c->fd = -1;
  c->target = strdup(target);
  int r = c->target ? 0 : qerr_set(err, ENOMEM, "out of memory");
  if (r == 0)
    r = c->fd = open_socket(target, err);
  if (r >= 0)
    r = new_session(c, err);
  if (r >= 0)
    r = flush(c, err);
  if (r < 0) {
    qclient_close(c);
    return r;
  }
  *out = c;
  return 0;
}

const char *qclient_target(const struct qclient *c) { return c->target; }

int qclient_set_token(struct qclient *c, const char *token, struct qerr *err) {
  char *v = NULL;
  if (asprintf(&v, "Bearer %s", token) < 0)
    return qerr_set(err, ENOMEM, "out of memory");
  free_secret(c->authorization);
  c->authorization = v;
  return 0;
}

void qclient_close(struct qclient *c) {
  if (!c)
    return;
  if (c->session && !c->broken) {
    struct qerr ignored = QERR_INIT;
    /* A polite GOAWAY lets the daemon log a clean close, not a reset. */
    nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
    flush(c, &ignored);
  }
  nghttp2_session_del(c->session);
  if (c->fd >= 0)
    close(c->fd);
  free(c->target);
  free_secret(c->authorization);
  free(c);
}

/* ------------------------------------------------------------ calls */

static int pack_request(const ProtobufCMessage *req, uint8_t **out, size_t *out_len,
                        struct qerr *err) {
  size_t len = protobuf_c_message_get_packed_size(req);
  if (len > UINT32_MAX)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EMSGSIZE, "request too large");
  uint8_t *buf = malloc(GRPC_FRAME_HEADER + len);
  if (!buf)
    return qerr_status(err, GRPC_RESOURCE_EXHAUSTED, ENOMEM, "out of memory");
  grpc_frame_header(buf, false, (uint32_t)len);
  protobuf_c_message_pack(req, buf + GRPC_FRAME_HEADER);
  *out = buf;
  *out_len = GRPC_FRAME_HEADER + len;
  return 0;
}

#define NV(n, v)                                                                      \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

static int submit_call(struct qclient *c, struct qcall *call, const char *path,
                       uint64_t timeout_ns, struct qerr *err) {
  char timeout[16] = "";
  if (timeout_ns)
    grpc_timeout_format(timeout_ns, timeout);
  nghttp2_nv hdrs[9] = {
      NV(":method", "POST"),
      NV(":scheme", "http"),
      NV(":path", path),
      NV(":authority", "localhost"),
      NV("content-type", "application/grpc"),
      NV("te", "trailers"),
      NV("user-agent", "quilt-cli/" QUILT_VERSION),
  };
  size_t n = 7;
  if (timeout_ns)
    hdrs[n++] = (nghttp2_nv)NV("grpc-timeout", timeout);
  if (c->authorization) {
    /* Never into the HPACK dynamic table, where it could be probed. */
    hdrs[n] = (nghttp2_nv)NV("authorization", c->authorization);
    hdrs[n++].flags = NGHTTP2_NV_FLAG_NO_INDEX;
  }
  nghttp2_data_provider body = {.source.ptr = call, .read_callback = read_body};
  int32_t id = nghttp2_submit_request(call->session, NULL, hdrs, n, &body, call);
  if (id < 0)
    return qerr_status(err, GRPC_INTERNAL, EPROTO, "cannot start call %s: %s", path,
                       nghttp2_strerror(id));
  call->stream_id = id;
  return 0;
}

/* Drives the connection until the call's stream closes. */
static int call_loop(struct qclient *c, struct qcall *call, uint64_t timeout_ns,
                     struct qerr *err) {
  uint64_t deadline = timeout_ns ? clock_mono_ns() + timeout_ns : 0;
  while (!call->closed) {
    int r = flush(c, err);
    if (r < 0 || call->closed)
      return r;
    if (!nghttp2_session_want_read(c->session))
      return conn_fail(c, err, GRPC_UNAVAILABLE, ECONNRESET,
                       "quiltd at %s is shutting the connection down", c->target);
    /* After a local abort the RST is out; don't wait on the server again. */
    if (call->aborted && deadline == 0)
      deadline = clock_mono_ns() + QCLIENT_NS_PER_SEC;
    r = wait_readable(c->fd, call->waiting ? call->wake_fd : -1, deadline);
    if (r < 0)
      return conn_fail(c, err, GRPC_UNAVAILABLE, -r, "poll: %s", strerror(-r));
    if (r == 2) { /* the caller has something to send: ask it again */
      call->waiting = false;
      nghttp2_session_resume_data(c->session, call->stream_id);
      continue;
    }
    if (r == 0 && call->aborted) {
      /* The reset never got out: the connection is stuck; keep the error. */
      c->broken = true;
      return err->code;
    }
    if (r == 0) {
      call_abort(call, GRPC_DEADLINE_EXCEEDED, "no answer from quiltd within %gs",
                 (double)timeout_ns / 1e9);
      deadline = clock_mono_ns() + QCLIENT_NS_PER_SEC;
      continue;
    }
    r = receive(c, err);
    if (r < 0)
      return r;
  }
  return 0;
}

static int reset_status(uint32_t code) {
  if (code == NGHTTP2_REFUSED_STREAM)
    return GRPC_UNAVAILABLE;
  if (code == NGHTTP2_CANCEL)
    return GRPC_CANCELLED;
  if (code == NGHTTP2_ENHANCE_YOUR_CALM)
    return GRPC_RESOURCE_EXHAUSTED;
  return GRPC_INTERNAL;
}

/* Turns what the closed stream carried into the call's result. */
static int call_result(const struct qcall *call, struct qerr *err) {
  if (call->aborted)
    return call->stopped ? (qerr_clear(err), 0) : err->code;
  if (call->http_status != 200 && call->http_status > 0) {
    int st = status_for_http(call->http_status);
    return qerr_status(err, st, errno_for_status(st), "quiltd answered HTTP %d instead of gRPC",
                       call->http_status);
  }
  if (call->grpc_status < 0 && call->close_code != NGHTTP2_NO_ERROR) {
    int st = reset_status(call->close_code);
    return qerr_status(err, st, errno_for_status(st), "quiltd reset the call (%s)",
                       nghttp2_http2_strerror(call->close_code));
  }
  if (call->grpc_status < 0)
    return qerr_status(err, GRPC_INTERNAL, EPROTO, "quiltd's answer has no grpc-status");
  if (call->grpc_status != GRPC_OK)
    return qerr_status(err, call->grpc_status, errno_for_status(call->grpc_status), "%s",
                       call->grpc_message);
  if (!call->grpc_ct)
    return qerr_status(err, GRPC_INTERNAL, EPROTO, "quiltd's answer is not application/grpc");
  if (!grpc_deframer_idle(&call->deframer))
    return qerr_status(err, GRPC_INTERNAL, EPROTO, "quiltd's answer ends inside a message");
  if (!call->on_msg && !call->unary_resp)
    return qerr_status(err, GRPC_INTERNAL, EPROTO, "quiltd sent no message for a unary call");
  return 0;
}

static int run_call(struct qclient *c, struct qcall *call, const char *path,
                    const ProtobufCMessage *req, uint64_t timeout_ns, struct qerr *err) {
  qerr_clear(err);
  if (c->broken)
    return qerr_status(err, GRPC_UNAVAILABLE, ENOTCONN, "connection to quiltd at %s is broken",
                       c->target);
  cleanup_free uint8_t *body = NULL;
  int r = req ? pack_request(req, &body, &call->body_len, err) : 0;
  if (r < 0)
    return r;
  call->body = body;
  call->session = c->session;
  call->grpc_status = -1;
  call->err = err;
  grpc_deframer_init(&call->deframer, GRPC_DEFAULT_MAX_RECV, on_grpc_msg, call);
  r = submit_call(c, call, path, timeout_ns, err);
  if (r == 0)
    r = call_loop(c, call, timeout_ns, err);
  if (r == 0)
    r = call_result(call, err);
  grpc_deframer_free(&call->deframer);
  /* The stream may outlive us after a transport error: unhook our stack. */
  if (!call->closed && call->stream_id > 0)
    nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
  free(call->req_buf);
  return r;
}

int qclient_unary(struct qclient *c, const char *method_path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  uint64_t timeout_ns, struct qerr *err) {
  struct qcall call = {.desc = resp_desc};
  *resp = NULL;
  int r = run_call(c, &call, method_path, req, timeout_ns, err);
  if (r < 0) {
    if (call.unary_resp)
      protobuf_c_message_free_unpacked(call.unary_resp, NULL);
    return r;
  }
  *resp = call.unary_resp;
  return 0;
}

int qclient_stream(struct qclient *c, const char *method_path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, qclient_msg_fn on_msg,
                   void *arg, uint64_t timeout_ns, struct qerr *err) {
  struct qcall call = {.desc = resp_desc, .on_msg = on_msg, .arg = arg};
  return run_call(c, &call, method_path, req, timeout_ns, err);
}

int qclient_bidi(struct qclient *c, const char *method_path, qclient_next_fn next_msg,
                 void *next_arg, const ProtobufCMessageDescriptor *resp_desc,
                 qclient_msg_fn on_msg, void *arg, uint64_t timeout_ns, struct qerr *err) {
  return qclient_bidi_wake(c, method_path, next_msg, next_arg, -1, resp_desc, on_msg, arg,
                           timeout_ns, err);
}

int qclient_bidi_wake(struct qclient *c, const char *method_path, qclient_next_fn next_msg,
                      void *next_arg, int wake_fd, const ProtobufCMessageDescriptor *resp_desc,
                      qclient_msg_fn on_msg, void *arg, uint64_t timeout_ns, struct qerr *err) {
  struct qcall call = {.desc = resp_desc, .on_msg = on_msg, .arg = arg,
                       .next_msg = next_msg, .next_arg = next_arg, .wake_fd = wake_fd};
  return run_call(c, &call, method_path, NULL, timeout_ns, err);
}
