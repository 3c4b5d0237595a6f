/* The error convention: negative errno returns, messages, context. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/qerr.h"
#include "grpc/status.h"

static void test_set(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  assert_int_equal(qerr_set(&e, ENOENT, "no container %s", "web"), -ENOENT);
  assert_int_equal(e.code, -ENOENT);
  assert_int_equal(e.status, 0);
  assert_string_equal(e.msg, "no container web");
  /* Negative errno is accepted as is; 0 is not an error code, so it becomes
   * EIO rather than a "failure" that reads as success. */
  assert_int_equal(qerr_set(&e, -EBUSY, "busy"), -EBUSY);
  assert_int_equal(qerr_set(&e, 0, "zero"), -EIO);
}

static void test_status(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  assert_int_equal(qerr_status(&e, GRPC_FAILED_PRECONDITION, EINVAL, "state %d", 3), -EINVAL);
  assert_int_equal(e.status, GRPC_FAILED_PRECONDITION);
  assert_string_equal(e.msg, "state 3");
  /* A later plain qerr_set clears the explicit status. */
  qerr_set(&e, EINVAL, "again");
  assert_int_equal(e.status, 0);
}

static void test_errno(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  errno = EACCES;
  assert_int_equal(qerr_errno(&e, "opening %s", "/x"), -EACCES);
  assert_int_equal(e.code, -EACCES);
  char want[128];
  snprintf(want, sizeof want, "opening /x: %s", strerror(EACCES));
  assert_string_equal(e.msg, want);
}

static void test_wrap(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  qerr_set(&e, ENOSPC, "writing state");
  assert_int_equal(qerr_wrap(&e, "creating %s", "c1"), -ENOSPC);
  assert_string_equal(e.msg, "creating c1: writing state");
  assert_int_equal(qerr_wrap(&e, "rpc"), -ENOSPC);
  assert_string_equal(e.msg, "rpc: creating c1: writing state");
  /* Wrapping an empty error still yields a failure code. */
  struct qerr empty = QERR_INIT;
  assert_int_equal(qerr_wrap(&empty, "ctx"), -EIO);
}

static void test_truncation(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  char long_text[2000];
  memset(long_text, 'x', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = 0;
  qerr_set(&e, EINVAL, "%s", long_text);
  assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
  qerr_wrap(&e, "prefix");
  assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
  assert_int_equal(strncmp(e.msg, "prefix: xxx", 11), 0);
  errno = EPERM;
  qerr_errno(&e, "%s", long_text);
  assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
}

static void test_clear(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  qerr_status(&e, GRPC_INTERNAL, EIO, "boom");
  qerr_clear(&e);
  assert_int_equal(e.code, 0);
  assert_int_equal(e.status, 0);
  assert_string_equal(e.msg, "");
}

/* What call.c does with a qerr: an explicit status wins, otherwise the errno
 * decides. */
static void test_status_derivation(void **state) {
  (void)state;
  struct qerr e = QERR_INIT;
  qerr_set(&e, ENOENT, "gone");
  assert_int_equal(e.status ? e.status : grpc_status_from_errno(e.code), GRPC_NOT_FOUND);
  qerr_status(&e, GRPC_ABORTED, ENOENT, "raced");
  assert_int_equal(e.status ? e.status : grpc_status_from_errno(e.code), GRPC_ABORTED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set),
      cmocka_unit_test(test_status),
      cmocka_unit_test(test_errno),
      cmocka_unit_test(test_wrap),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_clear),
      cmocka_unit_test(test_status_derivation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
