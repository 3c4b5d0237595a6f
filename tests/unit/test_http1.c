/* HTTP/1.1 request parsing (llhttp), response writing and routing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "grpc/http1.h"

#define MAX_REQS 8

struct seen {
  size_t count;
  struct http1_request req[MAX_REQS];
  int fail_with; /* returned from on_request when non-zero */
};

static int record(void *arg, const struct http1_request *req) {
  struct seen *s = arg;
  assert_true(s->count < MAX_REQS);
  s->req[s->count++] = *req;
  return s->fail_with;
}

/* Heap-allocated: the parser embeds a 2 KiB path and must not move after
 * init (llhttp keeps a pointer to the settings inside it). */
static struct http1_parser *new_parser(struct seen *s) {
  struct http1_parser *p = malloc(sizeof *p);
  assert_non_null(p);
  http1_parser_init(p, record, s);
  return p;
}

static int feed_str(struct http1_parser *p, const char *s, struct qerr *err) {
  return http1_parser_feed(p, s, strlen(s), err);
}

/* Parses one complete request and returns its route. */
static enum http1_route route_of(const char *raw) {
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, raw, &err), 0);
  assert_int_equal(s.count, 1);
  return http1_route(&s.req[0]);
}

static void test_routes(void **state) {
  (void)state;
  assert_int_equal(route_of("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP1_ROUTE_HEALTH);
  assert_int_equal(route_of("HEAD /healthz HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_HEALTH);
  assert_int_equal(route_of("GET /healthz?probe=1 HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_HEALTH);
  assert_int_equal(route_of("GET /metrics HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_METRICS);
  assert_int_equal(route_of("GET /metrics#frag HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_METRICS);
  assert_int_equal(route_of("GET / HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_NOT_FOUND);
  assert_int_equal(route_of("GET /healthzz HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_NOT_FOUND);
  assert_int_equal(route_of("GET /metrics/ HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_NOT_FOUND);
  assert_int_equal(route_of("POST /quilt.v1.Quilt/GetSystemInfo HTTP/1.1\r\n"
                            "Content-Length: 0\r\n\r\n"),
                   HTTP1_ROUTE_NOT_FOUND);
  assert_int_equal(route_of("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
                   HTTP1_ROUTE_BAD_METHOD);
  assert_int_equal(route_of("HEAD /metrics HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_BAD_METHOD);
  assert_int_equal(route_of("DELETE /metrics HTTP/1.1\r\n\r\n"), HTTP1_ROUTE_BAD_METHOD);
}

static void test_request_fields(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, "OPTIONS /a/b?c=d&e HTTP/1.1\r\nHost: h\r\n\r\n", &err), 0);
  assert_int_equal(s.count, 1);
  assert_string_equal(s.req[0].method, "OPTIONS");
  assert_string_equal(s.req[0].path, "/a/b");
  assert_true(s.req[0].keep_alive);
}

static const char pipelined[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                                "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                "GET /metrics?x HTTP/1.1\r\nUser-Agent: t\r\n\r\n";

static void check_pipelined(const struct seen *s) {
  assert_int_equal(s->count, 3);
  assert_string_equal(s->req[0].method, "GET");
  assert_string_equal(s->req[0].path, "/healthz");
  assert_string_equal(s->req[1].method, "POST");
  assert_string_equal(s->req[1].path, "/x");
  assert_string_equal(s->req[2].method, "GET");
  assert_string_equal(s->req[2].path, "/metrics");
  for (size_t i = 0; i < 3; i++)
    assert_true(s->req[i].keep_alive);
}

static void test_pipelined_one_buffer(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(http1_parser_feed(p, pipelined, sizeof pipelined - 1, &err), 0);
  check_pipelined(&s);
}

static void test_byte_by_byte(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  for (size_t i = 0; i < sizeof pipelined - 1; i++)
    assert_int_equal(http1_parser_feed(p, pipelined + i, 1, &err), 0);
  check_pipelined(&s);
}

static void test_every_split(void **state) {
  (void)state;
  for (size_t cut = 0; cut < sizeof pipelined; cut++) {
    struct seen s = {0};
    struct qerr err = QERR_INIT;
    cleanup_free struct http1_parser *p = new_parser(&s);
    assert_int_equal(http1_parser_feed(p, pipelined, cut, &err), 0);
    assert_int_equal(http1_parser_feed(p, pipelined + cut, sizeof pipelined - 1 - cut, &err), 0);
    check_pipelined(&s);
  }
}

static void test_keep_alive_default(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, "GET /healthz HTTP/1.1\r\n\r\n", &err), 0);
  assert_int_equal(feed_str(p, "GET /healthz HTTP/1.1\r\n\r\n", &err), 0);
  assert_int_equal(s.count, 2);
  assert_true(s.req[1].keep_alive);
}

static void test_connection_close(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  /* The request after the closing one is never delivered. */
  assert_int_equal(feed_str(p,
                            "GET /healthz HTTP/1.1\r\n\r\n"
                            "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"
                            "GET /healthz HTTP/1.1\r\n\r\n",
                            &err),
                   1);
  assert_int_equal(s.count, 2);
  assert_true(s.req[0].keep_alive);
  assert_false(s.req[1].keep_alive);
  /* Still closing, whatever arrives. */
  assert_int_equal(feed_str(p, "GET /healthz HTTP/1.1\r\n\r\n", &err), 1);
  assert_int_equal(s.count, 2);
}

static void test_http10(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, "GET /healthz HTTP/1.0\r\n\r\n", &err), 1);
  assert_int_equal(s.count, 1);
  assert_false(s.req[0].keep_alive);

  struct seen s2 = {0};
  cleanup_free struct http1_parser *p2 = new_parser(&s2);
  assert_int_equal(feed_str(p2, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &err),
                   0);
  assert_int_equal(s2.count, 1);
  assert_true(s2.req[0].keep_alive);
}

static void test_upgrade_closes(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p,
                            "GET /healthz HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
                            "\x00\x00\x00\x04",
                            &err),
                   1);
  assert_int_equal(s.count, 1);
  assert_false(s.req[0].keep_alive);
}

/* Appends `count` copies of a header line to buf. */
static char *request_with_headers(size_t count, const char *line) {
  size_t cap = 64 + count * strlen(line);
  char *buf = malloc(cap);
  assert_non_null(buf);
  strcpy(buf, "GET /healthz HTTP/1.1\r\n");
  for (size_t i = 0; i < count; i++)
    strcat(buf, line);
  strcat(buf, "\r\n");
  return buf;
}

static void test_header_limit(void **state) {
  (void)state;
  /* Under the limit: 200 lines of 57 + 4 counted bytes = 12200. */
  cleanup_free char *ok = request_with_headers(200, "X-Pad: 0123456789012345678901234567890123456789012345678901\r\n");
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, ok, &err), 0);
  assert_int_equal(s.count, 1);

  /* The count restarts per request: a second large block is fine too. */
  assert_int_equal(feed_str(p, ok, &err), 0);
  assert_int_equal(s.count, 2);
}

static void test_header_limit_exceeded(void **state) {
  (void)state;
  /* One huge value. */
  char *line = malloc(HTTP1_MAX_HEADER_BYTES + 32);
  assert_non_null(line);
  strcpy(line, "X-Big: ");
  memset(line + 7, 'a', HTTP1_MAX_HEADER_BYTES);
  strcpy(line + 7 + HTTP1_MAX_HEADER_BYTES, "\r\n");
  cleanup_free char *big = request_with_headers(1, line);
  free(line);
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, big, &err), -EMSGSIZE);
  assert_string_equal(err.msg, "request header block larger than 16384 bytes");
  assert_int_equal(s.count, 0);

  /* Many tiny headers, fed in small pieces, hit the same limit. */
  cleanup_free char *many = request_with_headers(5000, "a:\r\n");
  struct seen s2 = {0};
  struct qerr err2 = QERR_INIT;
  cleanup_free struct http1_parser *p2 = new_parser(&s2);
  int r = 0;
  for (size_t off = 0; r == 0 && off < strlen(many); off += 7)
    r = http1_parser_feed(p2, many + off, strlen(many + off) < 7 ? strlen(many + off) : 7, &err2);
  assert_int_equal(r, -EMSGSIZE);
  assert_int_equal(s2.count, 0);
}

static void test_url_limit(void **state) {
  (void)state;
  static char req[HTTP1_MAX_PATH + 64];
  /* Longest URL that fits with its NUL. */
  strcpy(req, "GET /");
  memset(req + 5, 'p', HTTP1_MAX_PATH - 2);
  strcpy(req + 5 + HTTP1_MAX_PATH - 2, " HTTP/1.1\r\n\r\n");
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, req, &err), 0);
  assert_int_equal(s.count, 1);
  assert_int_equal(strlen(s.req[0].path), HTTP1_MAX_PATH - 1);

  /* One byte more. */
  memset(req + 5, 'p', HTTP1_MAX_PATH - 1);
  strcpy(req + 5 + HTTP1_MAX_PATH - 1, " HTTP/1.1\r\n\r\n");
  assert_int_equal(feed_str(p, req, &err), -ENAMETOOLONG);
  assert_true(p->path_too_long);
  assert_string_equal(err.msg, "request URL longer than 2047 bytes");
  assert_int_equal(s.count, 1);
}

static void test_garbage(void **state) {
  (void)state;
  static const char *const inputs[] = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
      "HELLO WORLD\r\n\r\n",
      "GET /healthz HTTP/9.9\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
  };
  for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
    struct seen s = {0};
    struct qerr err = QERR_INIT;
    cleanup_free struct http1_parser *p = new_parser(&s);
    int r = feed_str(p, inputs[i], &err);
    assert_true(r < 0);
    assert_int_equal(err.code, r);
    assert_true(strlen(err.msg) > strlen("malformed HTTP/1 request: "));
    assert_int_equal(s.count, 0);
    /* A failed parser stays failed, even for a valid request. */
    struct qerr err2 = QERR_INIT;
    assert_true(feed_str(p, "GET /healthz HTTP/1.1\r\n\r\n", &err2) < 0);
    assert_int_equal(s.count, 0);
  }
}

static void test_garbage_reason_from_llhttp(void **state) {
  (void)state;
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, "\x16\x03\x01\x02\x00", &err), -EPROTO);
  assert_string_equal(err.msg, "malformed HTTP/1 request: Invalid method encountered");
}

static void test_handler_error(void **state) {
  (void)state;
  struct seen s = {.fail_with = -EIO};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  assert_int_equal(feed_str(p, pipelined, &err), -EIO);
  assert_int_equal(s.count, 1);
  assert_int_equal(err.code, -EIO);
  s.fail_with = 0;
  assert_int_equal(feed_str(p, "GET /healthz HTTP/1.1\r\n\r\n", &err), -EPIPE);
  assert_int_equal(s.count, 1);
}

static void test_write_response(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(http1_write_response(&b, 200, "text/plain", "ok\n", 3, true), 0);
  assert_string_equal(strbuf_cstr(&b), "HTTP/1.1 200 OK\r\n"
                                       "Content-Type: text/plain\r\n"
                                       "Content-Length: 3\r\n"
                                       "Connection: keep-alive\r\n"
                                       "\r\n"
                                       "ok\n");
  strbuf_reset(&b);
  assert_int_equal(http1_write_response(&b, 404, "text/plain", "not found\n", 10, false), 0);
  assert_string_equal(strbuf_cstr(&b), "HTTP/1.1 404 Not Found\r\n"
                                       "Content-Type: text/plain\r\n"
                                       "Content-Length: 10\r\n"
                                       "Connection: close\r\n"
                                       "\r\n"
                                       "not found\n");
  strbuf_reset(&b);
  assert_int_equal(http1_write_response(&b, 405, "text/plain", NULL, 0, true), 0);
  assert_non_null(strstr(strbuf_cstr(&b), "HTTP/1.1 405 Method Not Allowed\r\n"));
  assert_non_null(strstr(strbuf_cstr(&b), "Content-Length: 0\r\n"));
  /* Appends after whatever is already queued. */
  size_t before = strbuf_avail(&b);
  assert_int_equal(http1_write_response(&b, 400, "text/plain", "bad", 3, false), 0);
  assert_memory_equal(strbuf_head(&b) + before, "HTTP/1.1 400 Bad Request\r\n", 26);
  strbuf_free(&b);
}

/* The first Authorization header is kept, whatever its case or however the
 * bytes are split; others are not; one too long to keep can never match. */
static void test_authorization(void **state) {
  (void)state;
  static const char raw[] = "GET /metrics HTTP/1.1\r\nX-Authorization: no\r\n"
                            "AUTHORIZATION: Bearer abc\r\nauthorization: Bearer second\r\n\r\n"
                            "GET /metrics HTTP/1.1\r\n\r\n";
  struct seen s = {0};
  struct qerr err = QERR_INIT;
  cleanup_free struct http1_parser *p = new_parser(&s);
  for (size_t i = 0; i < sizeof raw - 1; i++)
    assert_int_equal(http1_parser_feed(p, raw + i, 1, &err), 0);
  assert_int_equal(s.count, 2);
  assert_string_equal(s.req[0].authorization, "Bearer abc");
  assert_string_equal(s.req[1].authorization, "");

  size_t n = HTTP1_MAX_AUTHORIZATION + 10;
  char *big = malloc(n + 64);
  int len = snprintf(big, 64, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer ");
  memset(big + len, 'a', n);
  memcpy(big + len + n, "\r\n\r\n", 5);
  assert_int_equal(feed_str(p, big, &err), 0);
  free(big);
  assert_int_equal(s.count, 3);
  assert_string_equal(s.req[2].authorization, "!");
}

static void test_write_unauthorized(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(http1_write_unauthorized(&b, "invalid bearer token", true), 0);
  const char *text = strbuf_cstr(&b);
  assert_non_null(strstr(text, "HTTP/1.1 401 Unauthorized\r\n"));
  assert_non_null(strstr(text, "WWW-Authenticate: Bearer realm=\"quiltd\"\r\n"));
  assert_non_null(strstr(text, "\r\n\r\nunauthorized: invalid bearer token\n"));
  strbuf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_authorization),
      cmocka_unit_test(test_write_unauthorized),
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_request_fields),
      cmocka_unit_test(test_pipelined_one_buffer),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_every_split),
      cmocka_unit_test(test_keep_alive_default),
      cmocka_unit_test(test_connection_close),
      cmocka_unit_test(test_http10),
      cmocka_unit_test(test_upgrade_closes),
      cmocka_unit_test(test_header_limit),
      cmocka_unit_test(test_header_limit_exceeded),
      cmocka_unit_test(test_url_limit),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_garbage_reason_from_llhttp),
      cmocka_unit_test(test_handler_error),
      cmocka_unit_test(test_write_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
