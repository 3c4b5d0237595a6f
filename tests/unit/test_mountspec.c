/* cli/mountspec.c: --mount and -v values, docker's spellings, sizes and
 * the reasons given for bad ones. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/mountspec.h"

static void good(const char *s, bool volume_flag, const char *type, const char *src,
                 const char *dst, bool ro, uint64_t size) {
  struct mountspec m;
  char err[256] = "";
  int rc = volume_flag ? mountspec_parse_volume(s, &m, err, sizeof err)
                       : mountspec_parse(s, &m, err, sizeof err);
  if (rc != 0)
    fail_msg("\"%s\": %s", s, err);
  assert_string_equal(m.type, type);
  assert_string_equal(m.source, src);
  assert_string_equal(m.target, dst);
  assert_int_equal(m.readonly, ro);
  assert_int_equal(m.size_bytes, size);
}

static void bad(const char *s, bool volume_flag, const char *needle) {
  struct mountspec m;
  char err[256] = "";
  int rc = volume_flag ? mountspec_parse_volume(s, &m, err, sizeof err)
                       : mountspec_parse(s, &m, err, sizeof err);
  assert_int_equal(rc, -EINVAL);
  if (!strstr(err, needle))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err, needle);
}

static void test_mount_good(void **state) {
  (void)state;
  good("type=bind,source=/x,target=/y", false, "bind", "/x", "/y", false, 0);
  good("type=bind,source=/x,target=/y,readonly", false, "bind", "/x", "/y", true, 0);
  good("type=bind,src=/x,dst=/y,ro=true", false, "bind", "/x", "/y", true, 0);
  good("type=bind,src=/x,destination=/y,readonly=false", false, "bind", "/x", "/y", false, 0);
  good("type=tmpfs,target=/t", false, "tmpfs", "", "/t", false, 0);
  good("type=tmpfs,target=/t,size=64m", false, "tmpfs", "", "/t", false, 64ull << 20);
  good("type=tmpfs,target=/t,tmpfs-size=4096", false, "tmpfs", "", "/t", false, 4096);
  good("type=tmpfs,dst=/t,size=1GiB,ro=1", false, "tmpfs", "", "/t", true, 1ull << 30);
  good("type=volume,source=data,target=/p", false, "volume", "data", "/p", false, 0);
  good("source=data,target=/p", false, "volume", "data", "/p", false, 0); /* docker's default */
}

static void test_mount_bad(void **state) {
  (void)state;
  bad("", false, "empty mount");
  bad("type=nfs,source=/x,target=/y", false, "unknown mount type 'nfs'");
  bad("type=bind,source=/x", false, "no target");
  bad("type=bind,target=/y", false, "needs source=");
  bad("type=tmpfs,source=/x,target=/t", false, "takes no source");
  bad("type=tmpfs,target=/t,size=0", false, "invalid size '0'");
  bad("type=tmpfs,target=/t,size=12q", false, "invalid size '12q'");
  bad("type=tmpfs,target=/t,size=", false, "invalid size");
  bad("type=tmpfs,target=/t,size=99999999999999999999", false, "invalid size");
  bad("type=bind,source=/x,target=/y,size=1m", false, "size is for tmpfs");
  bad("type=bind,source=/x,target=/y,readonly=maybe", false, "invalid readonly value");
  bad("type=bind,,source=/x,target=/y", false, "empty field");
  bad("type=bind,source=/x,target=/y,", false, "empty field");
  bad("type=bind,source=,target=/y", false, "empty source");
  bad("type=bind,source=/x,target=/y,propagation=shared", false,
      "unknown mount option 'propagation'");
  bad("type", false, "unknown mount type ''");
  bad("type=bind,source=/a,b,target=/y", false, "unknown mount option 'b'"); /* no commas in paths */
}

static void test_volume_flag(void **state) {
  (void)state;
  good("data:/p", true, "volume", "data", "/p", false, 0);
  good("data:/p:ro", true, "volume", "data", "/p", true, 0);
  good("data:/p:rw", true, "volume", "data", "/p", false, 0);
  good("/host/dir:/p", true, "bind", "/host/dir", "/p", false, 0);
  good("/host/dir:/p:ro", true, "bind", "/host/dir", "/p", true, 0);
  bad("data", true, "expected NAME:/PATH");
  bad("/only/one", true, "expected NAME:/PATH");
  bad(":/p", true, "empty source");
  bad("data:", true, "empty target");
  bad("data:/p:rx", true, "unknown volume option 'rx'");
  bad("data:/p:ro:z", true, "unknown volume option 'ro:z'");
}

static void test_size(void **state) {
  (void)state;
  uint64_t b;
  assert_int_equal(mountspec_parse_size("512k", &b), 0);
  assert_int_equal(b, 512 * 1024);
  assert_int_equal(mountspec_parse_size("2G", &b), 0);
  assert_int_equal(b, 2ull << 30);
  assert_int_equal(mountspec_parse_size("10b", &b), 0);
  assert_int_equal(b, 10);
  assert_int_equal(mountspec_parse_size("64mb", &b), 0);
  assert_int_equal(b, 64ull << 20);
  assert_int_equal(mountspec_parse_size("-1", &b), -EINVAL);
  assert_int_equal(mountspec_parse_size("m", &b), -EINVAL);
  assert_int_equal(mountspec_parse_size("1t", &b), -EINVAL);
  assert_int_equal(mountspec_parse_size("17179869184g", &b), -EINVAL); /* 2^64 */
}

static void test_long_fields(void **state) {
  (void)state;
  char s[MOUNTSPEC_PATH_MAX + 64];
  memset(s, 'a', sizeof s);
  memcpy(s, "type=bind,target=/y,source=/", 28);
  s[sizeof s - 1] = 0;
  bad(s, false, "source is too long");
  struct mountspec m;
  assert_int_equal(mountspec_parse(s, &m, NULL, 0), -EINVAL); /* no room for a reason */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mount_good),  cmocka_unit_test(test_mount_bad),
      cmocka_unit_test(test_volume_flag), cmocka_unit_test(test_size),
      cmocka_unit_test(test_long_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
