/* Status names, errno mapping, grpc-message percent-encoding, grpc-timeout. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "grpc/status.h"

static void test_names(void **state) {
  (void)state;
  assert_string_equal(grpc_status_name(GRPC_OK), "OK");
  assert_string_equal(grpc_status_name(GRPC_NOT_FOUND), "NOT_FOUND");
  assert_string_equal(grpc_status_name(GRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  assert_string_equal(grpc_status_name(GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
  assert_string_equal(grpc_status_name(-1), "UNKNOWN");
  assert_string_equal(grpc_status_name(GRPC_STATUS_COUNT), "UNKNOWN");
  for (int i = 0; i < GRPC_STATUS_COUNT; i++) {
    assert_non_null(grpc_status_name(i));
    assert_true(strlen(grpc_status_name(i)) > 1);
  }
}

static void test_errno_mapping(void **state) {
  (void)state;
  static const struct {
    int err, status;
  } cases[] = {
      {ENOENT, GRPC_NOT_FOUND},           {ESRCH, GRPC_NOT_FOUND},
      {EINVAL, GRPC_INVALID_ARGUMENT},    {E2BIG, GRPC_INVALID_ARGUMENT},
      {ENAMETOOLONG, GRPC_INVALID_ARGUMENT}, {EEXIST, GRPC_ALREADY_EXISTS},
      {EPERM, GRPC_PERMISSION_DENIED},    {EACCES, GRPC_PERMISSION_DENIED},
      {ENOMEM, GRPC_RESOURCE_EXHAUSTED},  {ENOSPC, GRPC_RESOURCE_EXHAUSTED},
      {EMSGSIZE, GRPC_RESOURCE_EXHAUSTED}, {EMFILE, GRPC_RESOURCE_EXHAUSTED},
      {ENFILE, GRPC_RESOURCE_EXHAUSTED},  {EAGAIN, GRPC_RESOURCE_EXHAUSTED},
      {EBUSY, GRPC_FAILED_PRECONDITION},  {ENOTEMPTY, GRPC_FAILED_PRECONDITION},
      {ECHILD, GRPC_FAILED_PRECONDITION}, {ETIMEDOUT, GRPC_DEADLINE_EXCEEDED},
      {ECANCELED, GRPC_CANCELLED},        {ENOSYS, GRPC_UNIMPLEMENTED},
      {EOPNOTSUPP, GRPC_UNIMPLEMENTED},   {ECONNREFUSED, GRPC_UNAVAILABLE},
      {ESHUTDOWN, GRPC_UNAVAILABLE},      {EIO, GRPC_INTERNAL},
      {EPROTO, GRPC_INTERNAL},            {12345, GRPC_INTERNAL},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    assert_int_equal(grpc_status_from_errno(-cases[i].err), cases[i].status);
    assert_int_equal(grpc_status_from_errno(cases[i].err), cases[i].status);
  }
  assert_int_equal(grpc_status_from_errno(0), GRPC_OK);
}

/* ------------------------------------------------------------ percent */

static const char *encode(struct strbuf *b, const char *s, size_t n) {
  strbuf_reset(b);
  assert_int_equal(grpc_percent_encode(b, s, n), 0);
  return strbuf_cstr(b);
}

static void test_percent_encode(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_string_equal(encode(&b, "plain text ~!", 13), "plain text ~!");
  assert_string_equal(encode(&b, "100%", 4), "100%25");
  assert_string_equal(encode(&b, "a\nb\tc\r", 6), "a%0Ab%09c%0D");
  assert_string_equal(encode(&b, "\x7f\x1f", 2), "%7F%1F");
  assert_string_equal(encode(&b, "\0x", 2), "%00x");
  /* UTF-8 is escaped byte by byte, uppercase hex. */
  assert_string_equal(encode(&b, "caf\xc3\xa9 \xe2\x9c\x93", 9), "caf%C3%A9 %E2%9C%93");
  assert_string_equal(encode(&b, "", 0), "");
  /* Appends rather than replacing. */
  strbuf_reset(&b);
  assert_int_equal(strbuf_append(&b, "x=", 2), 0);
  assert_int_equal(grpc_percent_encode(&b, "%", 1), 0);
  assert_string_equal(strbuf_cstr(&b), "x=%25");
  strbuf_free(&b);
}

static void round_trip(const char *s, size_t n) {
  struct strbuf b = STRBUF_INIT;
  char out[256];
  assert_int_equal(grpc_percent_encode(&b, s, n), 0);
  for (size_t i = 0; i < strbuf_avail(&b); i++)
    assert_true(b.data[i] >= 0x20 && b.data[i] <= 0x7e);
  size_t len = grpc_percent_decode(out, sizeof out, (const char *)strbuf_head(&b),
                                   strbuf_avail(&b));
  assert_int_equal(len, n);
  assert_memory_equal(out, s, n);
  assert_int_equal(out[len], 0);
  strbuf_free(&b);
}

static void test_percent_round_trip(void **state) {
  (void)state;
  static const char *const texts[] = {
      "hello",
      "50% done, 100%% sure",
      "line1\nline2\r\n\ttab\x01\x1b[0m",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e and \xf0\x9f\x98\x80", /* CJK, emoji */
      "%25 is already escaped",
      "trailing %",
  };
  for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
    round_trip(texts[i], strlen(texts[i]));
  char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (char)(255 - i);
  /* Every byte value; 255 of them to leave room for the NUL. */
  round_trip(all, 255);
}

static void test_percent_decode_malformed(void **state) {
  (void)state;
  char out[64];
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"%41%42", "AB"},   {"%4a%4A", "JJ"},     {"%", "%"},   {"%4", "%4"},
      {"%zz", "%zz"},     {"%4g1", "%4g1"},     {"a%", "a%"}, {"%%41", "%A"},
      {"100%", "100%"},   {"%G0ok", "%G0ok"},   {"", ""},     {"%E2%9C%93", "\xe2\x9c\x93"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    size_t n = grpc_percent_decode(out, sizeof out, cases[i].in, strlen(cases[i].in));
    assert_string_equal(out, cases[i].want);
    assert_int_equal(n, strlen(cases[i].want));
  }
}

static void test_percent_decode_bounds(void **state) {
  (void)state;
  char out[4];
  assert_int_equal(grpc_percent_decode(out, sizeof out, "abcdef", 6), 3);
  assert_string_equal(out, "abc");
  assert_int_equal(grpc_percent_decode(out, 1, "abc", 3), 0);
  assert_string_equal(out, "");
  assert_int_equal(grpc_percent_decode(out, 0, "abc", 3), 0);
  /* Stops at n, not at a NUL. */
  assert_int_equal(grpc_percent_decode(out, sizeof out, "%41%42", 3), 1);
  assert_string_equal(out, "A");
  /* In place. */
  char buf[] = "a%20b%2";
  assert_int_equal(grpc_percent_decode(buf, sizeof buf, buf, strlen(buf)), 5);
  assert_string_equal(buf, "a b%2");
}

/* ------------------------------------------------------------ timeout */

#define SEC 1000000000ull

static void test_timeout_parse_valid(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t ns;
  } cases[] = {
      {"1S", SEC},
      {"250m", 250 * 1000000ull},
      {"0n", 0},
      {"0H", 0},
      {"7u", 7000},
      {"99999999n", 99999999},
      {"2M", 120 * SEC},
      {"3H", 3 * 3600 * SEC},
      {"00000001S", SEC},
      {"99999999S", 99999999 * SEC},
      {"5124095H", 5124095ull * 3600 * SEC}, /* largest hour count below 2^64 ns */
      {"5124096H", UINT64_MAX},              /* first one past it saturates */
      {"99999999H", UINT64_MAX},
      {"99999999M", 99999999ull * 60 * SEC}, /* ~6e18: still fits */
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    uint64_t ns = 42;
    assert_int_equal(grpc_timeout_parse(cases[i].s, strlen(cases[i].s), &ns), 0);
    assert_int_equal(ns, cases[i].ns);
  }
}

static void test_timeout_parse_invalid(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",    "S",     "1",    "123456789S", "1s",  "1h",  "1 S", " 1S", "1S ",
      "+1S", "-1S",   "1.5S", "1x",         "S1",  "0x1S", "1SS", "\xd9\xa1S",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    uint64_t ns = 42;
    assert_int_equal(grpc_timeout_parse(bad[i], strlen(bad[i]), &ns), -EINVAL);
    assert_true(ns == 42);
  }
  /* The length bounds the parse: "1S" inside a longer buffer. */
  uint64_t ns = 0;
  assert_int_equal(grpc_timeout_parse("1Sjunk", 2, &ns), 0);
  assert_true(ns == SEC);
}

static void test_timeout_format(void **state) {
  (void)state;
  static const struct {
    uint64_t ns;
    const char *want;
  } cases[] = {
      {0, "0n"},
      {1, "1n"},
      {99999999, "99999999n"},
      {100000000, "100000u"},
      {100000001, "100001u"}, /* rounded up, never shorter */
      {SEC, "1000000u"},
      {100 * SEC, "100000m"},
      {100000 * SEC, "100000S"},
      {100000 * SEC + 1, "100001S"},
      {200000000 * SEC, "3333334M"},
      {UINT64_MAX, "5124096H"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char out[16];
    grpc_timeout_format(cases[i].ns, out);
    assert_string_equal(out, cases[i].want);
  }
}

/* Formatting then parsing gives back at least the original deadline, and
 * never more than one unit of rounding on top. */
static void test_timeout_format_parse(void **state) {
  (void)state;
  for (unsigned i = 0; i < 64; i++) {
    uint64_t v = (1ull << i) + i * 12345;
    char out[16];
    uint64_t back = 0;
    grpc_timeout_format(v, out);
    assert_true(strlen(out) <= 9);
    assert_int_equal(grpc_timeout_parse(out, strlen(out), &back), 0);
    assert_true(back >= v);
    /* A unit is at most 1000x the previous one, which could not hold v in
     * 8 digits, so rounding adds under v / 99999. */
    assert_true(back - v <= v / 99999 + 1 || back == UINT64_MAX);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_errno_mapping),
      cmocka_unit_test(test_percent_encode),
      cmocka_unit_test(test_percent_round_trip),
      cmocka_unit_test(test_percent_decode_malformed),
      cmocka_unit_test(test_percent_decode_bounds),
      cmocka_unit_test(test_timeout_parse_valid),
      cmocka_unit_test(test_timeout_parse_invalid),
      cmocka_unit_test(test_timeout_format),
      cmocka_unit_test(test_timeout_format_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
