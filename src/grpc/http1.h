/* HTTP/1.1 on the API listener: llhttp parses requests (pipelined or split
 * across reads), and a tiny router answers health, metrics and 404. */
#ifndef QUILT_GRPC_HTTP1_H
#define QUILT_GRPC_HTTP1_H

#include <stdbool.h>
#include <stddef.h>

#include <llhttp.h>

#include "common/qerr.h"
#include "common/strbuf.h"

#define HTTP1_MAX_PATH 2048
#define HTTP1_MAX_HEADER_BYTES (16 * 1024)
/* Longer Authorization values cannot hold a token and are kept as invalid. */
#define HTTP1_MAX_AUTHORIZATION 1024

struct http1_request {
  char method[16];
  char path[HTTP1_MAX_PATH];
  bool keep_alive;
  /* The first Authorization header, "" when none; a value too long to keep
   * is replaced by "!" so it can never match a token. */
  char authorization[HTTP1_MAX_AUTHORIZATION];
};

/* Called once per complete request, in order; returns 0 or a negative errno. */
typedef int (*http1_request_fn)(void *arg, const struct http1_request *req);

struct http1_parser {
  llhttp_t parser;
  llhttp_settings_t settings;
  struct http1_request req;
  size_t path_len;
  size_t header_bytes;
  char field[16];          /* the current header's name, while it is short */
  size_t field_len;
  size_t auth_len;         /* bytes of req.authorization so far */
  bool in_auth, have_auth, auth_too_long;
  bool path_too_long;
  http1_request_fn on_request;
  void *arg;
};

void http1_parser_init(struct http1_parser *p, http1_request_fn fn, void *arg);
/* Feeds bytes. Returns 0 (more may come), 1 when the peer asked to close
 * after the last response, or a negative errno for malformed input, with
 * err->msg set (the caller answers 400 and closes). */
int http1_parser_feed(struct http1_parser *p, const char *data, size_t n, struct qerr *err);

/* Writes a complete response with Content-Length. */
int http1_write_response(struct strbuf *out, int status, const char *content_type,
                         const void *body, size_t len, bool keep_alive);
/* 401 with a Bearer challenge, for a request that lacks the daemon's token. */
int http1_write_unauthorized(struct strbuf *out, const char *why, bool keep_alive);

/* The routes a caller can serve without I/O: GET/HEAD /healthz → 200 "ok",
 * GET /metrics → the caller's text, anything else 404 (405 for a known path
 * with another method). `metrics_text` may be NULL when not requested. */
enum http1_route { HTTP1_ROUTE_HEALTH, HTTP1_ROUTE_METRICS, HTTP1_ROUTE_NOT_FOUND,
                   HTTP1_ROUTE_BAD_METHOD };
enum http1_route http1_route(const struct http1_request *req);

#endif
