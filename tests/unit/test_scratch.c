/* Where containers' writable layers go (--scratch): the size syntax handed
 * to the tmpfs, the disk layout, and a root already on a tmpfs (no second
 * mount, and nothing of it removed at close). The mount itself is tested
 * with a real quiltd (RestartTest.test_scratch_keeps_layers_across_restart). */
#include <errno.h>
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
#include "runtime/scratch.h"

static void sizes(void **state) {
  (void)state;
  const char *good[] = {"1", "50%", "512m", "8g", "100k", "2G", "64M"};
  const char *bad[] = {"", "%", "m", "50%%", "1.5g", "-1", "8gb", "8 g", "1t", "size=1"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    assert_true(scratch_size_valid(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(scratch_size_valid(bad[i]));
}

static void disk_layout(void **state) {
  (void)state;
  struct scratch s;
  struct qerr err = QERR_INIT;
  char dir[PATH_MAX];
  assert_int_equal(scratch_open(&s, "/var/lib/quilt", false, NULL, &err), 0);
  assert_false(s.tmpfs);
  assert_int_equal(scratch_dir(&s, "abc", dir, &err), 0);
  assert_string_equal(dir, "/var/lib/quilt/containers/abc");
  char long_id[PATH_MAX];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = 0;
  assert_int_equal(scratch_dir(&s, long_id, dir, &err), -ENAMETOOLONG);
}

static void root_already_on_tmpfs(void **state) {
  (void)state;
  char root[] = "/dev/shm/quilt-scratch-XXXXXX";
  if (!mkdtemp(root))
    skip();
  struct scratch s;
  struct qerr err = QERR_INIT;
  assert_int_equal(scratch_open(&s, root, true, "1m", &err), 0);
  assert_true(s.tmpfs);
  char want[PATH_MAX + 16];
  snprintf(want, sizeof want, "%s/scratch", root);
  assert_string_equal(s.root, want);
  struct stat st;
  assert_int_equal(stat(want, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0711);
  scratch_close(&s); /* not a mount of ours: left alone */
  assert_int_equal(stat(want, &st), 0);
  assert_int_equal(rm_rf(root, &err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sizes),
      cmocka_unit_test(disk_layout),
      cmocka_unit_test(root_already_on_tmpfs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
