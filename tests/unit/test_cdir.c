/* Recycled container directories (cdir.h): a removed container's directory
 * holding only its log goes to the spares emptied, the next one is renamed
 * out of them (same inode: nothing allocated), anything else is deleted,
 * and the spares are capped. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "common/fsutil.h"
#include "runtime/cdir.h"

static char root[256];

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof root, "/tmp/quilt-test-cdir-XXXXXX");
  return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  return rm_rf(root, &err);
}

static void path(char *out, const char *name) { snprintf(out, PATH_MAX, "%s/%s", root, name); }

static void put(const char *dir, const char *name, const char *text) {
  char p[PATH_MAX + 64];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct qerr err = QERR_INIT;
  assert_int_equal(write_file(p, text, strlen(text), &err), 0);
}

static unsigned spares(void) {
  char p[PATH_MAX];
  path(p, ".spare");
  unsigned n = 0;
  for (unsigned i = 0; i < 1000; i++) {
    char q[PATH_MAX + 16];
    snprintf(q, sizeof q, "%s/c%u", p, i);
    n += access(q, F_OK) == 0;
  }
  return n;
}

static void log_only_dir_is_reused(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  char a[PATH_MAX], b[PATH_MAX], log[PATH_MAX + 8];
  path(a, "c0");
  path(b, "c1");
  assert_int_equal(cdir_make(a, &err), 0);
  struct stat st;
  assert_int_equal(stat(a, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  ino_t ino = st.st_ino;
  put(a, "log", "2026-01-01T00:00:00Z stdout F secret\n");
  put(a, "log.1", "older\n");
  assert_int_equal(cdir_recycle(a, &err), 0);
  assert_int_equal(access(a, F_OK), -1);
  assert_int_equal(spares(), 1);
  assert_int_equal(cdir_make(b, &err), 0);
  assert_int_equal(spares(), 0);
  assert_int_equal(stat(b, &st), 0);
  assert_int_equal(st.st_ino, ino); /* renamed, not made */
  snprintf(log, sizeof log, "%s/log", b);
  assert_int_equal(stat(log, &st), 0);
  assert_int_equal(st.st_size, 0); /* nothing of the last container's */
  snprintf(log, sizeof log, "%s/log.1", b);
  assert_int_equal(access(log, F_OK), -1);
  assert_int_equal(cdir_recycle(b, &err), 0);
}

static void anything_else_is_deleted(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  char a[PATH_MAX], sub[PATH_MAX + 8];
  path(a, "c2");
  assert_int_equal(cdir_make(a, &err), 0);
  unsigned before = spares();
  put(a, "log", "x\n");
  snprintf(sub, sizeof sub, "%s/upper", a);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(cdir_recycle(a, &err), 0);
  assert_int_equal(access(a, F_OK), -1);
  assert_int_equal(spares(), before);
}

static void spares_are_capped(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  char d[PATH_MAX];
  for (unsigned i = 10; i < 10 + CDIR_SPARES + 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%u", i);
    path(d, name);
    assert_int_equal(mkdir(d, 0700), 0);
    put(d, "log", "x\n");
    assert_int_equal(cdir_recycle(d, &err), 0);
    assert_int_equal(access(d, F_OK), -1);
  }
  assert_int_equal(spares(), CDIR_SPARES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(log_only_dir_is_reused),
      cmocka_unit_test(anything_else_is_deleted),
      cmocka_unit_test(spares_are_capped),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
