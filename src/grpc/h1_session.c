#include "grpc/h1_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon.h"
#include "grpc/http1.h"
#include "grpc/registry.h"
#include "io/conn.h"

struct http1_session {
  struct http1_parser parser;
  struct conn *conn;
};

static int on_request(void *arg, const struct http1_request *req) {
  struct http1_session *s = arg;
  struct quiltd *d = s->conn->d;
  struct strbuf *out = &s->conn->out;
  d->metrics.http1_requests++;
  int rc;
  switch (http1_route(req)) {
  case HTTP1_ROUTE_HEALTH: {
    const char *body = d->shutting_down ? "shutting down\n" : "ok\n";
    rc = http1_write_response(out, d->shutting_down ? 503 : 200, "text/plain", body,
                              strcmp(req->method, "HEAD") == 0 ? 0 : strlen(body),
                              req->keep_alive);
    break;
  }
  case HTTP1_ROUTE_METRICS: {
    /* Prometheus sends bearer tokens (authorization.credentials_file). */
    const char *why = NULL;
    if (!conn_authorize(s->conn, req->authorization, "GET /metrics", &why)) {
      rc = http1_write_unauthorized(out, why, req->keep_alive);
      break;
    }
    struct strbuf text = STRBUF_INIT;
    rc = metrics_render(&d->metrics, d->registry.names, d->registry.count, &text);
    if (rc == 0)
      rc = pool_render_metrics(&d->pool, &text);
    if (rc == 0)
      rc = http1_write_response(out, 200, "text/plain; version=0.0.4", strbuf_head(&text),
                                strbuf_avail(&text), req->keep_alive);
    strbuf_free(&text);
    break;
  }
  case HTTP1_ROUTE_BAD_METHOD:
    rc = http1_write_response(out, 405, "text/plain", "method not allowed\n", 19,
                              req->keep_alive);
    break;
  default:
    rc = http1_write_response(out, 404, "text/plain", "not found\n", 10, req->keep_alive);
  }
  conn_mark_dirty(s->conn);
  return rc;
}

int h1_session_new(struct conn *c, struct http1_session **out, struct qerr *err) {
  struct http1_session *s = calloc(1, sizeof *s);
  if (!s)
    return qerr_set(err, ENOMEM, "allocating an HTTP/1.1 session");
  s->conn = c;
  http1_parser_init(&s->parser, on_request, s);
  *out = s;
  return 0;
}

int h1_session_recv(struct http1_session *s, const uint8_t *p, size_t n) {
  struct qerr err = QERR_INIT;
  int rc = http1_parser_feed(&s->parser, (const char *)p, n, &err);
  if (rc == 0)
    return 0;
  if (rc < 0) {
    log_debug("bad HTTP/1.1 request: %s", err.msg);
    char body[600];
    int len = snprintf(body, sizeof body, "bad request: %s\n", err.msg);
    http1_write_response(&s->conn->out, 400, "text/plain", body, (size_t)len, false);
    conn_mark_dirty(s->conn);
  }
  return -1;
}

void h1_session_free(struct http1_session *s) { free(s); }
