/* quilt-extract's entry rules (src/extract/extract_check.c), without any
 * archive or filesystem: normalisation, kinds, symlinks, hard links,
 * devices, limits and quoting. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "extract/extract_check.h"

static char norm[PATH_MAX], link_out[PATH_MAX], why[512];
static bool existed;

static enum xc_result check(struct xc_tree *t, const char *path, enum xc_type type,
                            const char *link) {
  struct xc_entry e = {.path = path, .type = type, .link = link, .dev_major = 1, .dev_minor = 3};
  why[0] = 0;
  return xc_check(t, &e, false, norm, link_out, &existed, why, sizeof why);
}

static void test_normalize(void **state) {
  (void)state;
  char out[PATH_MAX];
  assert_null(xc_normalize("./bin//busybox/", out, sizeof out));
  assert_string_equal(out, "bin/busybox");
  assert_null(xc_normalize("./", out, sizeof out));
  assert_string_equal(out, "");
  assert_null(xc_normalize("a/./b/.", out, sizeof out));
  assert_string_equal(out, "a/b");
  assert_null(xc_normalize("..a/b..", out, sizeof out));
  assert_string_equal(out, "..a/b..");
  assert_string_equal(xc_normalize("../etc/passwd", out, sizeof out), "path contains \"..\"");
  assert_string_equal(xc_normalize("a/../../b", out, sizeof out), "path contains \"..\"");
  assert_string_equal(xc_normalize("a/..", out, sizeof out), "path contains \"..\"");
  assert_string_equal(xc_normalize("/etc/passwd", out, sizeof out), "absolute path");
  assert_string_equal(xc_normalize("", out, sizeof out), "empty path");
  char longc[300];
  memset(longc, 'x', 256);
  longc[256] = 0;
  assert_non_null(xc_normalize(longc, out, sizeof out));
  static char longp[PATH_MAX + 10];
  for (size_t i = 0; i < sizeof longp - 1; i += 2)
    memcpy(longp + i, "a/", 2);
  longp[sizeof longp - 1] = 0;
  assert_string_equal(xc_normalize(longp, out, sizeof out), "path longer than 4095 bytes");
}

static void test_kinds(void **state) {
  (void)state;
  struct xc_tree *t = xc_tree_new(0);
  assert_int_equal(check(t, "./", XC_DIR, NULL), XC_OK);
  assert_string_equal(norm, ".");
  assert_true(existed);
  assert_int_equal(check(t, "./bin/busybox", XC_FILE, NULL), XC_OK);
  assert_string_equal(norm, "bin/busybox");
  assert_false(existed);
  assert_int_equal(check(t, "bin", XC_DIR, NULL), XC_OK);          /* implied, then explicit */
  assert_true(existed);
  assert_int_equal(check(t, "bin/busybox", XC_FILE, NULL), XC_OK); /* repeat: last wins */
  assert_int_equal(check(t, "bin/sh", XC_SYMLINK, NULL), XC_OK);
  assert_int_equal(check(t, "bin/sh", XC_FILE, NULL), XC_OK);      /* non-dir over non-dir */
  assert_int_equal(check(t, "bin", XC_FILE, NULL), XC_REJECT);
  assert_string_equal(why, "type conflict: a directory of the same name came earlier");
  assert_int_equal(check(t, "bin/busybox/", XC_DIR, NULL), XC_REJECT);
  assert_string_equal(why, "type conflict: a non-directory of the same name came earlier");
  assert_int_equal(check(t, "bin/busybox/x", XC_FILE, NULL), XC_REJECT);
  assert_string_equal(why, "parent \"bin/busybox\" is not a directory");
  assert_int_equal(check(t, ".", XC_FILE, NULL), XC_REJECT);
  assert_string_equal(why, "the archive root must be a directory");
  assert_int_equal(check(t, "p", XC_FIFO, NULL), XC_OK);
  assert_int_equal(xc_tree_paths(t), 4); /* bin, bin/busybox, bin/sh, p */
  xc_tree_free(t);
}

static void test_symlinks(void **state) {
  (void)state;
  struct xc_tree *t = xc_tree_new(0);
  /* Any target is fine to create; nothing may be written through it. */
  assert_int_equal(check(t, "etc", XC_SYMLINK, NULL), XC_OK);
  assert_int_equal(check(t, "etc/passwd", XC_FILE, NULL), XC_REJECT);
  assert_string_equal(why, "path goes through symlink \"etc\"");
  assert_int_equal(check(t, "etc/x/y", XC_DIR, NULL), XC_REJECT);
  assert_int_equal(check(t, "etc", XC_DIR, NULL), XC_REJECT); /* symlink -> dir: conflict */
  assert_int_equal(check(t, "etc", XC_FILE, NULL), XC_OK);    /* replaced by a file */
  xc_tree_free(t);
}

static void test_hardlinks(void **state) {
  (void)state;
  struct xc_tree *t = xc_tree_new(0);
  assert_int_equal(check(t, "a/file", XC_FILE, NULL), XC_OK);
  assert_int_equal(check(t, "b/link", XC_HARDLINK, "./a/file"), XC_OK);
  assert_string_equal(link_out, "a/file");
  assert_int_equal(check(t, "c", XC_HARDLINK, "/etc/passwd"), XC_REJECT);
  assert_string_equal(why, "hard link target \"/etc/passwd\": absolute path");
  assert_int_equal(check(t, "c", XC_HARDLINK, "../outside"), XC_REJECT);
  assert_string_equal(why, "hard link target \"../outside\": path contains \"..\"");
  assert_int_equal(check(t, "c", XC_HARDLINK, "nothere"), XC_REJECT);
  assert_string_equal(why, "hard link target \"nothere\" is not an earlier entry of the archive");
  assert_int_equal(check(t, "c", XC_HARDLINK, "a"), XC_REJECT);
  assert_string_equal(why, "hard link target \"a\" is a directory");
  assert_int_equal(check(t, "s", XC_SYMLINK, NULL), XC_OK);
  assert_int_equal(check(t, "c", XC_HARDLINK, "s/file"), XC_REJECT);
  assert_string_equal(why, "hard link target \"s/file\" goes through symlink \"s\"");
  assert_int_equal(check(t, "a/file", XC_HARDLINK, "a/file"), XC_REJECT);
  assert_string_equal(why, "hard link to itself");
  assert_int_equal(check(t, "c", XC_HARDLINK, "."), XC_REJECT);
  /* A hard link to a symlink is a symlink: nothing goes through it. */
  assert_int_equal(check(t, "s2", XC_HARDLINK, "s"), XC_OK);
  assert_int_equal(check(t, "s2/x", XC_FILE, NULL), XC_REJECT);
  xc_tree_free(t);
}

static void test_devices_and_types(void **state) {
  (void)state;
  struct xc_tree *t = xc_tree_new(0);
  assert_int_equal(check(t, "dev/null", XC_CHR, NULL), XC_REJECT);
  assert_string_equal(why, "character device (1,3) not allowed");
  assert_int_equal(check(t, "dev/sda", XC_BLK, NULL), XC_REJECT);
  assert_string_equal(why, "block device (1,3) not allowed");
  struct xc_entry e = {.path = "dev/null", .type = XC_CHR, .dev_major = 1, .dev_minor = 3};
  assert_int_equal(xc_check(t, &e, true, norm, link_out, NULL, why, sizeof why), XC_OK);
  assert_int_equal(check(t, "sock", XC_OTHER, NULL), XC_REJECT);
  xc_tree_free(t);
}

static void test_limits(void **state) {
  (void)state;
  struct xc_tree *t = xc_tree_new(3);
  assert_int_equal(check(t, "a/b/c", XC_FILE, NULL), XC_OK);
  assert_int_equal(check(t, "a/b/d", XC_FILE, NULL), XC_REJECT);
  assert_string_equal(why, "archive creates more than 3 files and directories");
  xc_tree_free(t);
  /* Many paths: the table grows and still finds everything. */
  t = xc_tree_new(0);
  char p[64];
  for (int i = 0; i < 50000; i++) {
    snprintf(p, sizeof p, "d%d/f%d", i % 97, i);
    assert_int_equal(check(t, p, XC_FILE, NULL), XC_OK);
  }
  assert_int_equal(xc_tree_paths(t), 50000 + 97);
  assert_int_equal(check(t, "d5/f5/x", XC_FILE, NULL), XC_REJECT);
  assert_int_equal(check(t, "d5", XC_FILE, NULL), XC_REJECT);
  xc_tree_free(t);
}

static void test_quote(void **state) {
  (void)state;
  char out[512];
  xc_quote("a\"b\\c\nd\xc3\xa9", out, sizeof out);
  assert_string_equal(out, "\"a\\\"b\\\\c\\x0ad\\xc3\\xa9\"");
  char longs[400];
  memset(longs, 'y', sizeof longs - 1);
  longs[sizeof longs - 1] = 0;
  xc_quote(longs, out, sizeof out);
  assert_true(strlen(out) < 210);
  assert_non_null(strstr(out, "...\""));
  xc_quote(longs, out, 20); /* tiny buffer: still terminated */
  assert_true(strlen(out) < 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize),  cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_symlinks),   cmocka_unit_test(test_hardlinks),
      cmocka_unit_test(test_devices_and_types), cmocka_unit_test(test_limits),
      cmocka_unit_test(test_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
