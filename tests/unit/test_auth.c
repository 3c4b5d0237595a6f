/* The TCP bearer token: reading the file, comparing, checking the header,
 * exempt methods and the log rate limit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "grpc/auth.h"

#define TOKEN "0123456789abcdef-token"

struct tmpdir {
  char path[64];
};

static int setup(void **state) {
  struct tmpdir *t = calloc(1, sizeof *t);
  snprintf(t->path, sizeof t->path, "/tmp/quilt-test-auth-XXXXXX");
  assert_non_null(mkdtemp(t->path));
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct tmpdir *t = *state;
  struct qerr err = QERR_INIT;
  rm_rf(t->path, &err);
  free(t);
  return 0;
}

/* Writes `text` to DIR/token with `mode` and loads it. */
static int load(struct tmpdir *t, const char *text, mode_t mode, char **tok, size_t *len,
                struct qerr *err) {
  char path[128];
  snprintf(path, sizeof path, "%s/token", t->path);
  unlink(path);
  struct qerr werr = QERR_INIT;
  assert_int_equal(write_file(path, text, strlen(text), &werr), 0);
  assert_int_equal(chmod(path, mode), 0);
  return auth_read_token_file(path, tok, len, err);
}

static void test_read_token(void **state) {
  struct qerr err = QERR_INIT;
  char *tok;
  size_t len;
  assert_int_equal(load(*state, TOKEN "\n", 0600, &tok, &len, &err), 0);
  assert_string_equal(tok, TOKEN);
  assert_int_equal(len, strlen(TOKEN));
  free(tok);
  assert_int_equal(load(*state, TOKEN "\r\n \n", 0400, &tok, &len, &err), 0);
  assert_string_equal(tok, TOKEN);
  free(tok);
}

static void test_refused_token_files(void **state) {
  static const struct {
    const char *text;
    mode_t mode;
    int code;
    const char *msg;
  } cases[] = {
      {TOKEN, 0644, -EPERM, "must not be accessible by group or others"},
      {TOKEN, 0640, -EPERM, "mode 0640"},
      {TOKEN, 0602, -EPERM, "chmod 600"},
      {"0123456789abcde\n", 0600, -EINVAL, "at least 16"},
      {"\n", 0600, -EINVAL, "is 0 bytes"},
      {"0123456789 abcdef\n", 0600, -EINVAL, "byte 10"},
      {"0123456789abcdef\nsecond line\n", 0600, -EINVAL, "non-printable"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    struct qerr err = QERR_INIT;
    char *tok = (char *)1;
    size_t len;
    assert_int_equal(load(*state, cases[i].text, cases[i].mode, &tok, &len, &err),
                     cases[i].code);
    assert_null(tok);
    if (!strstr(err.msg, cases[i].msg))
      fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
  }
}

static void test_refused_paths(void **state) {
  struct tmpdir *t = *state;
  struct qerr err = QERR_INIT;
  char *tok;
  size_t len;
  char path[128];
  snprintf(path, sizeof path, "%s/missing", t->path);
  assert_int_equal(auth_read_token_file(path, &tok, &len, &err), -ENOENT);
  assert_non_null(strstr(err.msg, path));
  /* A directory is not a token file, whatever its mode. */
  assert_int_equal(chmod(t->path, 0700), 0);
  assert_int_equal(auth_read_token_file(t->path, &tok, &len, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file"));
  /* Too large. */
  char *big = malloc(AUTH_TOKEN_MAX + 2);
  memset(big, 'a', AUTH_TOKEN_MAX + 1);
  big[AUTH_TOKEN_MAX + 1] = 0;
  assert_int_equal(load(t, big, 0600, &tok, &len, &err), -EFBIG);
  free(big);
}

/* A rotation that fails keeps the token in force; one that works replaces it. */
static void test_reload(void **state) {
  struct tmpdir *t = *state;
  struct qerr err = QERR_INIT;
  char path[128];
  snprintf(path, sizeof path, "%s/token", t->path);
  char *tok;
  size_t len;
  assert_int_equal(load(t, TOKEN "\n", 0600, &tok, &len, &err), 0);
  free(tok);
  struct auth a = {0};
  assert_int_equal(auth_load(&a, path, &err), 0);
  a.log.logged = 3;
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(auth_reload(&a, path, &err), -EPERM);
  assert_int_equal(auth_check(&a, "Bearer " TOKEN), AUTH_OK);
  assert_int_equal(load(t, "a-brand-new-token-0123\n", 0600, &tok, &len, &err), 0);
  free(tok);
  assert_int_equal(auth_reload(&a, path, &err), 0);
  assert_int_equal(auth_check(&a, "Bearer " TOKEN), AUTH_BAD_TOKEN);
  assert_int_equal(auth_check(&a, "Bearer a-brand-new-token-0123"), AUTH_OK);
  assert_int_equal(a.log.logged, 3); /* the log limit carries over */
  auth_free(&a);
  assert_null(a.token);
}

static void test_token_equal(void **state) {
  (void)state;
  const char *e = TOKEN;
  size_t n = strlen(e);
  assert_true(auth_token_equal(e, n, TOKEN, n));
  assert_false(auth_token_equal(e, n, "1123456789abcdef-token", n)); /* first byte */
  assert_false(auth_token_equal(e, n, "0123456789abcdef-tokeN", n)); /* last byte */
  assert_false(auth_token_equal(e, n, TOKEN, n - 1));                /* a prefix */
  assert_false(auth_token_equal(e, n, TOKEN "x", n + 1));            /* longer */
  /* A candidate that repeats to the expected bytes is still too short. */
  assert_false(auth_token_equal("abababababababab", 16, "ab", 2));
  assert_false(auth_token_equal(e, n, "", 0));
  assert_false(auth_token_equal("", 0, "", 0)); /* no token never matches */
}

static void test_check_header(void **state) {
  (void)state;
  struct auth a = {.token = TOKEN, .token_len = strlen(TOKEN)};
  assert_int_equal(auth_check(&a, "Bearer " TOKEN), AUTH_OK);
  assert_int_equal(auth_check(&a, "bearer " TOKEN), AUTH_OK);
  assert_int_equal(auth_check(&a, "BEARER   " TOKEN " "), AUTH_OK);
  assert_int_equal(auth_check(&a, NULL), AUTH_MISSING);
  assert_int_equal(auth_check(&a, ""), AUTH_MISSING);
  assert_int_equal(auth_check(&a, TOKEN), AUTH_NOT_BEARER);
  assert_int_equal(auth_check(&a, "Basic " TOKEN), AUTH_NOT_BEARER);
  assert_int_equal(auth_check(&a, "Bearer" TOKEN), AUTH_NOT_BEARER);
  assert_int_equal(auth_check(&a, "Bearer "), AUTH_BAD_TOKEN);
  assert_int_equal(auth_check(&a, "Bearer x" TOKEN), AUTH_BAD_TOKEN);
  assert_non_null(strstr(auth_result_text(AUTH_MISSING), "authorization: Bearer"));
  assert_string_equal(auth_result_text(AUTH_BAD_TOKEN), "invalid bearer token");
}

static void test_exempt(void **state) {
  (void)state;
  assert_true(auth_exempt_method("/grpc.health.v1.Health/Check"));
  assert_true(auth_exempt_method("/grpc.health.v1.Health/Watch"));
  assert_false(auth_exempt_method("/grpc.health.v1.Health/CheckX"));
  assert_false(auth_exempt_method("/grpc.reflection.v1alpha.ServerReflection/"
                                  "ServerReflectionInfo"));
  assert_false(auth_exempt_method("/quilt.v1.Quilt/GetSystemInfo"));
}

static void test_log_limit(void **state) {
  (void)state;
  struct auth_log_limit l = {0};
  unsigned dropped = 99;
  uint64_t t0 = 5 * AUTH_LOG_WINDOW_NS;
  for (int i = 0; i < AUTH_LOG_BURST; i++) {
    assert_true(auth_log_allow(&l, t0 + (uint64_t)i, &dropped));
    assert_int_equal(dropped, 0);
  }
  for (int i = 0; i < 7; i++)
    assert_false(auth_log_allow(&l, t0 + 100, &dropped));
  /* The next window logs again and says how many were dropped. */
  assert_true(auth_log_allow(&l, t0 + AUTH_LOG_WINDOW_NS, &dropped));
  assert_int_equal(dropped, 7);
  assert_true(auth_log_allow(&l, t0 + AUTH_LOG_WINDOW_NS + 1, &dropped));
  assert_int_equal(dropped, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_token_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
      cmocka_unit_test(test_token_equal),
      cmocka_unit_test(test_check_header),
      cmocka_unit_test(test_exempt),
      cmocka_unit_test(test_log_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
