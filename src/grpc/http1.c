#include "grpc/http1.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"

/* Bytes charged per header line on top of its name and value (": ", CRLF),
 * so a flood of tiny headers cannot dodge the limit. */
#define HEADER_LINE_OVERHEAD 4

static struct http1_parser *parser_of(llhttp_t *lp) {
  return container_of(lp, struct http1_parser, parser);
}

static int on_message_begin(llhttp_t *lp) {
  struct http1_parser *p = parser_of(lp);
  memset(&p->req, 0, sizeof p->req);
  p->path_len = 0;
  p->header_bytes = 0;
  p->path_too_long = false;
  p->field_len = p->auth_len = 0;
  p->in_auth = p->have_auth = p->auth_too_long = false;
  return 0;
}

static int on_url(llhttp_t *lp, const char *at, size_t n) {
  struct http1_parser *p = parser_of(lp);
  /* Keep room for the NUL; the URL is also stopped here rather than at
   * headers-complete so a peer cannot stream an endless request line. */
  if (n >= sizeof p->req.path - p->path_len) {
    p->path_too_long = true;
    return HPE_USER;
  }
  memcpy(p->req.path + p->path_len, at, n);
  p->path_len += n;
  return 0;
}

static int charge_header_bytes(llhttp_t *lp, size_t n) {
  struct http1_parser *p = parser_of(lp);
  p->header_bytes += n;
  return p->header_bytes > HTTP1_MAX_HEADER_BYTES ? HPE_USER : 0;
}

/* Header names may arrive in pieces; only a short one can be Authorization. */
static int on_header_field(llhttp_t *lp, const char *at, size_t n) {
  struct http1_parser *p = parser_of(lp);
  if (p->field_len + n < sizeof p->field)
    memcpy(p->field + p->field_len, at, n);
  p->field_len += n;
  return charge_header_bytes(lp, n);
}

static int on_header_field_complete(llhttp_t *lp) {
  struct http1_parser *p = parser_of(lp);
  static const char name[] = "authorization";
  /* Only the first one counts, as on HTTP/2. */
  p->in_auth = !p->have_auth && p->field_len == sizeof name - 1 &&
               strncasecmp(p->field, name, sizeof name - 1) == 0;
  p->have_auth |= p->in_auth;
  return 0;
}

static int on_header_value(llhttp_t *lp, const char *at, size_t n) {
  struct http1_parser *p = parser_of(lp);
  if (p->in_auth && !p->auth_too_long) {
    if (p->auth_len + n >= sizeof p->req.authorization) {
      p->auth_too_long = true;
    } else {
      memcpy(p->req.authorization + p->auth_len, at, n);
      p->auth_len += n;
    }
  }
  return charge_header_bytes(lp, n);
}

static int on_header_value_complete(llhttp_t *lp) {
  struct http1_parser *p = parser_of(lp);
  if (p->in_auth && p->auth_too_long)
    snprintf(p->req.authorization, sizeof p->req.authorization, "!");
  else if (p->in_auth)
    p->req.authorization[p->auth_len] = 0;
  p->in_auth = false;
  p->field_len = 0;
  return charge_header_bytes(lp, HEADER_LINE_OVERHEAD);
}

/* Routing ignores the query string and fragment. */
static void strip_query(struct http1_request *req, size_t len) {
  req->path[len] = 0;
  req->path[strcspn(req->path, "?#")] = 0;
}

static int on_headers_complete(llhttp_t *lp) {
  struct http1_parser *p = parser_of(lp);
  const char *m = llhttp_method_name((llhttp_method_t)llhttp_get_method(lp));
  snprintf(p->req.method, sizeof p->req.method, "%s", m);
  strip_query(&p->req, p->path_len);
  /* We never switch protocols here; answering and closing is allowed and
   * keeps the bytes after an Upgrade/CONNECT from being parsed as HTTP/1. */
  p->req.keep_alive = llhttp_should_keep_alive(lp) && !llhttp_get_upgrade(lp);
  return 0;
}

/* Pausing hands control back to feed(), which answers the request outside
 * llhttp's stack and can stop before bytes that follow a closing request. */
static int on_message_complete(llhttp_t *lp) {
  (void)lp;
  return HPE_PAUSED;
}

void http1_parser_init(struct http1_parser *p, http1_request_fn fn, void *arg) {
  memset(p, 0, sizeof *p);
  llhttp_settings_init(&p->settings);
  p->settings.on_message_begin = on_message_begin;
  p->settings.on_url = on_url;
  p->settings.on_header_field = on_header_field;
  p->settings.on_header_field_complete = on_header_field_complete;
  p->settings.on_header_value = on_header_value;
  p->settings.on_header_value_complete = on_header_value_complete;
  p->settings.on_headers_complete = on_headers_complete;
  p->settings.on_message_complete = on_message_complete;
  llhttp_init(&p->parser, HTTP_REQUEST, &p->settings);
  p->on_request = fn;
  p->arg = arg;
}

/* Records why parsing failed and disarms the parser: llhttp errors are
 * sticky, but a failed on_request leaves llhttp merely paused, so on_request
 * is cleared to make every later feed fail too. Our own limits are told apart
 * by parser state: llhttp replaces the reason of non-data callbacks. */
static int parse_error(struct http1_parser *p, struct qerr *err) {
  p->on_request = NULL;
  if (p->path_too_long)
    return qerr_set(err, ENAMETOOLONG, "request URL longer than %d bytes", HTTP1_MAX_PATH - 1);
  if (p->header_bytes > HTTP1_MAX_HEADER_BYTES)
    return qerr_set(err, EMSGSIZE, "request header block larger than %d bytes",
                    HTTP1_MAX_HEADER_BYTES);
  const char *reason = llhttp_get_error_reason(&p->parser);
  if (!reason)
    reason = llhttp_errno_name(llhttp_get_errno(&p->parser));
  return qerr_set(err, EPROTO, "malformed HTTP/1 request: %s", reason);
}

/* Answers the request llhttp paused on; returns 1 when the connection must
 * close after it, leaving llhttp paused so no later byte is parsed. */
static int dispatch(struct http1_parser *p, struct qerr *err) {
  int r = p->on_request(p->arg, &p->req);
  if (r < 0) {
    p->on_request = NULL;
    /* Keep the handler's own message if it recorded this very error. */
    if (err->code != r)
      qerr_set(err, r, "answering %s %s", p->req.method, p->req.path);
    return r;
  }
  if (!p->req.keep_alive)
    return 1;
  llhttp_resume(&p->parser);
  return 0;
}

int http1_parser_feed(struct http1_parser *p, const char *data, size_t n, struct qerr *err) {
  if (!p->on_request)
    return qerr_set(err, EPIPE, "HTTP/1 parser used after an error");
  /* Still paused from a closing request: whatever follows is ignored. */
  if (llhttp_get_errno(&p->parser) == HPE_PAUSED)
    return 1;
  const char *end = data + n;
  while (data < end) {
    llhttp_errno_t e = llhttp_execute(&p->parser, data, (size_t)(end - data));
    if (e == HPE_OK)
      return 0;
    if (e != HPE_PAUSED)
      return parse_error(p, err);
    data = llhttp_get_error_pos(&p->parser);
    int r = dispatch(p, err);
    if (r != 0)
      return r;
  }
  return 0;
}

/* ------------------------------------------------------------------ output */

static const char *reason_phrase(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  default:
    return status >= 500 ? "Error" : "Unknown";
  }
}

static int write_response(struct strbuf *out, int status, const char *extra_header,
                          const char *content_type, const void *body, size_t len,
                          bool keep_alive) {
  /* Unconsumed length, not out->len: strbuf may compact while growing. */
  size_t mark = strbuf_avail(out);
  int r = strbuf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  if (r == 0 && extra_header)
    r = strbuf_printf(out, "%s\r\n", extra_header);
  if (r == 0 && content_type)
    r = strbuf_printf(out, "Content-Type: %s\r\n", content_type);
  if (r == 0)
    r = strbuf_printf(out, "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len,
                      keep_alive ? "keep-alive" : "close");
  if (r == 0)
    r = strbuf_append(out, body, len);
  /* Never leave half a response queued: the peer would misparse the rest. */
  if (r < 0)
    out->len = out->off + mark;
  return r;
}

int http1_write_response(struct strbuf *out, int status, const char *content_type,
                         const void *body, size_t len, bool keep_alive) {
  return write_response(out, status, NULL, content_type, body, len, keep_alive);
}

int http1_write_unauthorized(struct strbuf *out, const char *why, bool keep_alive) {
  char body[512];
  int n = snprintf(body, sizeof body, "unauthorized: %s\n", why);
  size_t len = n < 0 ? 0 : (size_t)n >= sizeof body ? sizeof body - 1 : (size_t)n;
  return write_response(out, 401, "WWW-Authenticate: Bearer realm=\"quiltd\"", "text/plain",
                        body, len, keep_alive);
}

enum http1_route http1_route(const struct http1_request *req) {
  bool get = strcmp(req->method, "GET") == 0;
  if (strcmp(req->path, "/healthz") == 0)
    return get || strcmp(req->method, "HEAD") == 0 ? HTTP1_ROUTE_HEALTH : HTTP1_ROUTE_BAD_METHOD;
  if (strcmp(req->path, "/metrics") == 0)
    return get ? HTTP1_ROUTE_METRICS : HTTP1_ROUTE_BAD_METHOD;
  return HTTP1_ROUTE_NOT_FOUND;
}
