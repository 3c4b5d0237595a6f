/* The exec record quiltd sends a sandbox over its control pipe: what is
 * packed comes back whole, and anything malformed is refused, since the
 * child trusts nothing else about it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/caps.h"
#include "runtime/spawn.h"

static void pack(const struct spawn_exec *ex, struct strbuf *b) {
  struct qerr err = QERR_INIT;
  assert_int_equal(spawn_exec_pack(ex, b, &err), 0);
  uint32_t len;
  memcpy(&len, b->data, sizeof len);
  assert_int_equal(len, b->len - sizeof len);
}

static void round_trip(void **state) {
  (void)state;
  char *argv[] = {"sh", "-c", "echo $A", NULL};
  char *env[] = {"A=1", "PATH=/bin", "EMPTY=", NULL};
  struct spawn_exec in = {.argv = argv, .env = env, .cwd = "/tmp", .hostname = "box",
                          .user = "1000:1000", .resolv_conf = "nameserver 10.0.0.1\n",
                          .caps = CAPS_DEFAULT | CAPS_BIT(40), .flags = SPAWN_SECCOMP_UNCONFINED};
  struct strbuf b = STRBUF_INIT;
  pack(&in, &b);
  struct spawn_exec out;
  char **vecs = NULL;
  assert_int_equal(spawn_exec_unpack((char *)b.data + 4, b.len - 4, &out, &vecs), 0);
  assert_string_equal(out.hostname, "box");
  assert_string_equal(out.cwd, "/tmp");
  assert_string_equal(out.user, "1000:1000");
  assert_string_equal(out.resolv_conf, "nameserver 10.0.0.1\n");
  /* Both halves of the capability set cross, and the seccomp choice. */
  assert_true(out.caps == (CAPS_DEFAULT | CAPS_BIT(40)));
  assert_int_equal(out.flags, SPAWN_SECCOMP_UNCONFINED);
  for (int i = 0; i < 3; i++) {
    assert_string_equal(out.argv[i], argv[i]);
    assert_string_equal(out.env[i], env[i]);
  }
  assert_null(out.argv[3]);
  assert_null(out.env[3]);
  free(vecs);
  strbuf_free(&b);
}

static void null_fields_become_empty(void **state) {
  (void)state;
  char *argv[] = {"true", NULL};
  struct spawn_exec in = {.argv = argv};
  struct strbuf b = STRBUF_INIT;
  pack(&in, &b);
  struct spawn_exec out;
  char **vecs = NULL;
  assert_int_equal(spawn_exec_unpack((char *)b.data + 4, b.len - 4, &out, &vecs), 0);
  assert_string_equal(out.hostname, "");
  assert_string_equal(out.cwd, "");
  assert_string_equal(out.user, "");
  assert_string_equal(out.resolv_conf, "");
  assert_true(out.caps == 0); /* no capabilities unless asked: never more */
  assert_int_equal(out.flags, 0);
  assert_string_equal(out.argv[0], "true");
  assert_null(out.env[0]);
  free(vecs);
  strbuf_free(&b);
}

static void every_truncation_is_refused(void **state) {
  (void)state;
  char *argv[] = {"ls", "-l", NULL};
  char *env[] = {"K=V", NULL};
  struct spawn_exec in = {.argv = argv, .env = env, .cwd = "/", .hostname = "h", .user = ""};
  struct strbuf b = STRBUF_INIT;
  pack(&in, &b);
  size_t body = b.len - 4;
  for (size_t n = 0; n < body; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, b.data + 4, n);
    struct spawn_exec out;
    char **vecs = NULL;
    assert_int_equal(spawn_exec_unpack(copy, n, &out, &vecs), -EINVAL);
    free(copy);
  }
  strbuf_free(&b);
}

static void bad_headers_are_refused(void **state) {
  (void)state;
  struct spawn_exec out;
  char **vecs = NULL;
  /* argc 0: nothing to exec. */
  char zero[20 + 5] = {0};
  memcpy(zero + 20, "\0\0\0\0x", 5);
  assert_int_equal(spawn_exec_unpack(zero, sizeof zero, &out, &vecs), -EINVAL);
  /* Counts larger than the bytes could hold: refused before allocating. */
  char huge[20 + 8] = {0};
  uint32_t big = 0xffffffffu;
  memcpy(huge, &big, 4);
  memcpy(huge + 4, &big, 4);
  assert_int_equal(spawn_exec_unpack(huge, sizeof huge, &out, &vecs), -EINVAL);
  /* Trailing bytes after the last string. */
  char *argv[] = {"x", NULL};
  struct spawn_exec in = {.argv = argv};
  struct strbuf b = STRBUF_INIT;
  pack(&in, &b);
  strbuf_append(&b, "junk", 4);
  assert_int_equal(spawn_exec_unpack((char *)b.data + 4, b.len - 4, &out, &vecs), -EINVAL);
  strbuf_free(&b);
}

static void oversized_records_are_refused(void **state) {
  (void)state;
  size_t n = SPAWN_EXEC_MAX / 2;
  char *big = malloc(n + 1);
  memset(big, 'a', n);
  big[n] = 0;
  char *argv[] = {big, big, big, NULL};
  struct spawn_exec in = {.argv = argv};
  struct strbuf b = STRBUF_INIT;
  strbuf_append(&b, "keep", 4);
  struct qerr err = QERR_INIT;
  assert_int_equal(spawn_exec_pack(&in, &b, &err), -E2BIG);
  assert_non_null(strstr(err.msg, "command and environment"));
  assert_int_equal(b.len, 4); /* what was there before stays, nothing more */
  strbuf_free(&b);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip),
      cmocka_unit_test(null_fields_become_empty),
      cmocka_unit_test(every_truncation_is_refused),
      cmocka_unit_test(bad_headers_are_refused),
      cmocka_unit_test(oversized_records_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
