/* cgroup pure helpers: CPU quota arithmetic and /proc/self/cgroup parsing,
 * plus the argument checks cgroup_manager_new makes before touching any
 * cgroup file. The manager itself is tested live in tests/runtime. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "runtime/cgroup.h"

static void test_cpu_quota(void **state) {
  (void)state;
  static const struct {
    uint32_t percent;
    int64_t quota;
  } cases[] = {
      {0, -1},          {1, 1000},        {50, 50000},           {100, 100000},
      {150, 150000},    {400, 400000},    {UINT32_MAX, 4294967295000LL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t q = 0;
    uint64_t p = 0;
    cgroup_cpu_quota(cases[i].percent, &q, &p);
    assert_int_equal(p, 100000);
    assert_true(q == cases[i].quota);
  }
}

/* What this project's CI host shows: cpu and cpuacct separate, memory
 * nested, a name=systemd line and the hybrid 0:: line. */
static const char hybrid_text[] = "9:name=systemd:/\n"
                                  "8:pids:/\n"
                                  "7:blkio:/\n"
                                  "6:freezer:/\n"
                                  "5:devices:/\n"
                                  "4:memory:/process_api/c0a8afc89c91a19f3ef2ef90a7628aa1\n"
                                  "3:cpuset:/\n"
                                  "2:cpuacct:/\n"
                                  "1:cpu:/\n"
                                  "0::/\n";

/* A systemd legacy host: co-mounted cpu,cpuacct, no 0:: line. */
static const char legacy_text[] = "12:cpuset:/\n"
                                   "11:cpu,cpuacct:/system.slice/quiltd.service\n"
                                   "10:memory:/system.slice/quiltd.service\n"
                                   "9:net_cls,net_prio:/\n"
                                   "4:pids:/system.slice/quiltd.service\n"
                                   "3:freezer:/\n"
                                   "1:name=systemd:/system.slice/quiltd.service";

static const char unified_text[] = "0::/system.slice/quiltd.service\n";

static void expect(const char *text, const char *ctrl, const char *want) {
  char out[256];
  assert_int_equal(cgroup_parse_self(text, ctrl, out, sizeof out), 0);
  assert_string_equal(out, want);
}

static void test_parse_v1(void **state) {
  (void)state;
  expect(legacy_text, "cpu", "/system.slice/quiltd.service");
  expect(legacy_text, "cpuacct", "/system.slice/quiltd.service");
  expect(legacy_text, "memory", "/system.slice/quiltd.service");
  expect(legacy_text, "cpuset", "/");
  expect(legacy_text, "freezer", "/");
  /* The last line has no newline; named hierarchies match by full name. */
  expect(legacy_text, "name=systemd", "/system.slice/quiltd.service");
  char out[64];
  assert_int_equal(cgroup_parse_self(legacy_text, "systemd", out, sizeof out), -ENOENT);
  assert_int_equal(cgroup_parse_self(legacy_text, "net", out, sizeof out), -ENOENT);
  expect(legacy_text, "net_prio", "/");
  /* No 0:: line on a pure v1 host. */
  assert_int_equal(cgroup_parse_self(legacy_text, NULL, out, sizeof out), -ENOENT);
}

static void test_parse_hybrid(void **state) {
  (void)state;
  /* "cpu" must match neither "cpuset" (listed first) nor "cpuacct". */
  expect(hybrid_text, "cpu", "/");
  expect(hybrid_text, "memory", "/process_api/c0a8afc89c91a19f3ef2ef90a7628aa1");
  expect(hybrid_text, "pids", "/");
  expect(hybrid_text, NULL, "/");
  expect(hybrid_text, "name=systemd", "/");
  char out[64];
  assert_int_equal(cgroup_parse_self(hybrid_text, "hugetlb", out, sizeof out), -ENOENT);
}

static void test_parse_v2(void **state) {
  (void)state;
  char out[64];
  expect(unified_text, NULL, "/system.slice/quiltd.service");
  assert_int_equal(cgroup_parse_self(unified_text, "memory", out, sizeof out), -ENOENT);
  /* An empty controller list on a non-zero hierarchy is not the v2 line. */
  assert_int_equal(cgroup_parse_self("1::/odd\n", NULL, out, sizeof out), -ENOENT);
}

static void test_parse_edge(void **state) {
  (void)state;
  char small[8];
  /* Only the first two colons separate fields. */
  expect("5:pids:/a:b\n", "pids", "/a:b");
  expect("0::/with space\n", NULL, "/with space");
  assert_int_equal(cgroup_parse_self(unified_text, NULL, small, sizeof small), -ENAMETOOLONG);
  assert_int_equal(cgroup_parse_self("", NULL, small, sizeof small), -ENOENT);
  assert_int_equal(cgroup_parse_self("garbage\nno colons here\n", "memory", small, sizeof small),
                   -ENOENT);
}

static void test_manager_bad_args(void **state) {
  (void)state;
  struct cgroup_manager *m = (struct cgroup_manager *)1;
  struct qerr e = QERR_INIT;
  /* A parent must stay inside the hierarchy and not be its root. */
  assert_int_equal(cgroup_manager_new(&m, "/sys/fs/cgroup", "a/../../etc", &e), -EINVAL);
  assert_null(m);
  assert_non_null(strstr(e.msg, ".."));
  assert_int_equal(cgroup_manager_new(&m, "/sys/fs/cgroup", "/", &e), -EINVAL);
  assert_null(m);
}

static void test_manager_no_cgroupfs(void **state) {
  (void)state;
  char dir[] = "/tmp/quilt-cg-unit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  struct cgroup_manager *m = NULL;
  struct qerr e = QERR_INIT;
  /* An empty directory is no cgroup mount, whatever filesystem holds it. */
  assert_int_equal(cgroup_manager_new(&m, dir, NULL, &e), -ENODEV);
  assert_null(m);
  assert_non_null(strstr(e.msg, dir));
  rmdir(dir);
}

int main(void) {
  qlog_set_level(QLOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_quota),    cmocka_unit_test(test_parse_v1),
      cmocka_unit_test(test_parse_hybrid), cmocka_unit_test(test_parse_v2),
      cmocka_unit_test(test_parse_edge),   cmocka_unit_test(test_manager_bad_args),
      cmocka_unit_test(test_manager_no_cgroupfs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
