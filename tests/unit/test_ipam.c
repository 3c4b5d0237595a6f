/* runtime/ipam.c: subnet parsing, the order addresses are leased in, the
 * reserved addresses, exhaustion, release and reuse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/ipam.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static void test_parse_good(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam_subnet sn;
  assert_int_equal(ipam_parse_subnet("10.88.0.0/16", &sn, &err), 0);
  assert_int_equal(sn.net, IP(10, 88, 0, 0));
  assert_int_equal(sn.prefix, 16);
  assert_int_equal(ipam_gateway(&sn), IP(10, 88, 0, 1));
  assert_int_equal(ipam_broadcast(&sn), IP(10, 88, 255, 255));
  assert_int_equal(ipam_parse_subnet("192.168.7.0/24", &sn, &err), 0);
  assert_int_equal(ipam_broadcast(&sn), IP(192, 168, 7, 255));
  assert_int_equal(ipam_parse_subnet("10.0.0.0/8", &sn, &err), 0);
  assert_int_equal(ipam_parse_subnet("10.213.0.4/30", &sn, &err), 0);
  assert_int_equal(ipam_broadcast(&sn), IP(10, 213, 0, 7));
}

static void expect_bad(const char *cidr, const char *needle) {
  struct qerr err = QERR_INIT;
  struct ipam_subnet sn;
  assert_int_equal(ipam_parse_subnet(cidr, &sn, &err), -EINVAL);
  if (!strstr(err.msg, needle))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cidr, err.msg, needle);
}

static void test_parse_bad(void **state) {
  (void)state;
  expect_bad("10.88.0.0", "not of the form");
  expect_bad("", "not of the form");
  expect_bad("10.88.0/16", "bad IPv4 address");
  expect_bad("10.88.0.256/24", "bad IPv4 address");
  expect_bad("010.88.0.0/16", "bad IPv4 address");
  expect_bad(" 10.88.0.0/16", "bad IPv4 address");
  expect_bad("fd00::/64", "bad IPv4 address");
  expect_bad("10.88.0.0/", "bad prefix length");
  expect_bad("10.88.0.0/+8", "bad prefix length");
  expect_bad("10.88.0.0/16 ", "bad prefix length");
  expect_bad("10.88.0.0/016", "bad prefix length");
  expect_bad("10.88.0.0/0x10", "bad prefix length");
  expect_bad("10.0.0.0/7", "prefix length must be 8 to 30");
  expect_bad("10.88.0.0/31", "prefix length must be 8 to 30");
  expect_bad("10.88.0.0/32", "prefix length must be 8 to 30");
  expect_bad("10.88.0.0/99", "prefix length must be 8 to 30");
  expect_bad("10.88.1.0/16", "host bits set (the network is 10.88.0.0/16)");
  struct qerr err = QERR_INIT;
  struct ipam_subnet sn;
  assert_int_equal(ipam_parse_subnet(NULL, &sn, &err), -EINVAL);
}

static void test_ntoa(void **state) {
  (void)state;
  char buf[IPAM_ADDRSTRLEN];
  ipam_ntoa(IP(255, 255, 255, 255), buf);
  assert_string_equal(buf, "255.255.255.255");
  ipam_ntoa(IP(10, 0, 0, 2), buf);
  assert_string_equal(buf, "10.0.0.2");
}

static uint32_t alloc_ok(struct ipam *a) {
  struct qerr err = QERR_INIT;
  uint32_t addr = 0;
  int r = ipam_alloc(a, &addr, &err);
  if (r != 0)
    fail_msg("ipam_alloc: %d %s", r, err.msg);
  return addr;
}

static void test_order_and_reuse(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  assert_int_equal(ipam_init(&a, "10.88.0.0/16", &err), 0);
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 2)); /* never .0 or .1 */
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 3));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 4));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 5));
  assert_int_equal(ipam_release(&a, IP(10, 88, 0, 3), &err), 0);
  assert_int_equal(ipam_release(&a, IP(10, 88, 0, 5), &err), 0);
  /* Lowest free first: the released .3 before .5, then past the end. */
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 3));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 5));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 6));
  ipam_fini(&a);
}

static void test_release_errors(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  assert_int_equal(ipam_init(&a, "10.213.0.0/24", &err), 0);
  assert_int_equal(ipam_release(&a, IP(10, 213, 0, 9), &err), -ENOENT);
  assert_non_null(strstr(err.msg, "10.213.0.9: not leased"));
  assert_int_equal(ipam_release(&a, IP(10, 213, 0, 1), &err), -EINVAL);
  assert_non_null(strstr(err.msg, "reserved"));
  assert_int_equal(ipam_release(&a, IP(10, 213, 0, 0), &err), -EINVAL);
  assert_int_equal(ipam_release(&a, IP(10, 213, 0, 255), &err), -EINVAL);
  assert_int_equal(ipam_release(&a, IP(10, 214, 0, 2), &err), -EINVAL);
  assert_non_null(strstr(err.msg, "not in subnet 10.213.0.0/24"));
  uint32_t x = alloc_ok(&a);
  assert_int_equal(ipam_release(&a, x, &err), 0);
  assert_int_equal(ipam_release(&a, x, &err), -ENOENT); /* twice */
  ipam_fini(&a);
}

/* A /29 has 8 host numbers: .0, .1 and .7 reserved, .2 to .6 leasable. */
static void test_exhaustion(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  assert_int_equal(ipam_init(&a, "10.213.0.8/29", &err), 0);
  for (uint32_t i = 2; i <= 6; i++)
    assert_int_equal(alloc_ok(&a), IP(10, 213, 0, 8 + i));
  uint32_t addr = 0;
  assert_int_equal(ipam_alloc(&a, &addr, &err), -ENOSPC);
  assert_string_equal(err.msg,
                      "subnet 10.213.0.8/29 is exhausted: all 5 container addresses are leased");
  assert_int_equal(ipam_release(&a, IP(10, 213, 0, 12), &err), 0);
  assert_int_equal(alloc_ok(&a), IP(10, 213, 0, 12));
  assert_int_equal(ipam_alloc(&a, &addr, &err), -ENOSPC);
  ipam_fini(&a);
}

static void test_smallest(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  uint32_t addr;
  assert_int_equal(ipam_init(&a, "10.213.0.0/30", &err), 0);
  assert_int_equal(alloc_ok(&a), IP(10, 213, 0, 2)); /* the only one */
  assert_int_equal(ipam_alloc(&a, &addr, &err), -ENOSPC);
  ipam_fini(&a);
}

/* Every address of a /16 once, in order, across the 64-bit words of the
 * bitmap; the broadcast address never comes out. */
static void test_whole_slash16(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  uint32_t addr;
  assert_int_equal(ipam_init(&a, "10.88.0.0/16", &err), 0);
  for (uint32_t n = 2; n < 65535; n++)
    assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 0) + n);
  assert_int_equal(ipam_alloc(&a, &addr, &err), -ENOSPC);
  assert_non_null(strstr(err.msg, "all 65533 container addresses"));
  /* Holes in different words come back lowest first. */
  assert_int_equal(ipam_release(&a, IP(10, 88, 200, 1), &err), 0);
  assert_int_equal(ipam_release(&a, IP(10, 88, 0, 64), &err), 0);
  assert_int_equal(ipam_release(&a, IP(10, 88, 0, 63), &err), 0);
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 63));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 0, 64));
  assert_int_equal(alloc_ok(&a), IP(10, 88, 200, 1));
  ipam_fini(&a);
}

static void test_init_bad(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct ipam a;
  assert_int_equal(ipam_init(&a, "10.88.0.1/16", &err), -EINVAL);
  assert_null(a.used);
  ipam_fini(&a); /* safe after a failed init */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_ntoa),            cmocka_unit_test(test_order_and_reuse),
      cmocka_unit_test(test_release_errors),  cmocka_unit_test(test_exhaustion),
      cmocka_unit_test(test_smallest),        cmocka_unit_test(test_whole_slash16),
      cmocka_unit_test(test_init_bad),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
