/* CRI log lines: timestamps, F/P entries, long-line splits, binary
 * round trips and rejection of malformed lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/logfmt.h"

#define TS_EXAMPLE 1795924983720123456LL /* 2026-11-29T04:03:03.720123456Z */

static uint64_t rng_state;

static uint64_t rng(void) {
  /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

/* Parses every entry of buf; the buffer must hold whole lines only. */
struct parsed {
  struct log_entry e[4096];
  size_t n;
};

static void parse_all(const uint8_t *buf, size_t len, struct parsed *p) {
  p->n = 0;
  size_t off = 0;
  while (off < len) {
    assert_true(p->n < sizeof p->e / sizeof p->e[0]);
    long r = logfmt_parse(buf + off, len - off, &p->e[p->n]);
    assert_true(r > 0);
    off += (size_t)r;
    p->n++;
  }
  assert_int_equal(off, len);
}

static void expect_encoding_n(enum log_stream stream, const char *in, size_t in_len,
                              const char *want, size_t want_len) {
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(logfmt_encode(&b, stream, TS_EXAMPLE, (const uint8_t *)in, in_len), 0);
  assert_int_equal(strbuf_avail(&b), want_len);
  assert_memory_equal(strbuf_head(&b), want, want_len);
  strbuf_free(&b);
}

/* String literals, which may contain NUL. */
#define expect_encoding(stream, in, want) \
  expect_encoding_n(stream, in, sizeof(in) - 1, want, sizeof(want) - 1)

/* ------------------------------------------------------------ time */

static void test_time_format(void **state) {
  (void)state;
  char buf[32];
  logfmt_time(TS_EXAMPLE, buf);
  assert_string_equal(buf, "2026-11-29T04:03:03.720123456Z");
  logfmt_time(0, buf);
  assert_string_equal(buf, "1970-01-01T00:00:00.000000000Z");
  logfmt_time(1, buf);
  assert_string_equal(buf, "1970-01-01T00:00:00.000000001Z");
  logfmt_time(-1, buf);
  assert_string_equal(buf, "1969-12-31T23:59:59.999999999Z");
  logfmt_time(951782400000000001LL, buf);
  assert_string_equal(buf, "2000-02-29T00:00:00.000000001Z");
  logfmt_time(INT64_MAX, buf);
  assert_string_equal(buf, "2262-04-11T23:47:16.854775807Z");
  logfmt_time(INT64_MIN, buf);
  assert_string_equal(buf, "1677-09-21T00:12:43.145224192Z");
  assert_int_equal(strlen(buf), 30);
}

static void expect_time(const char *s, int64_t want) {
  int64_t ts = 42;
  assert_int_equal(logfmt_parse_time(s, strlen(s), &ts), 0);
  assert_true(ts == want);
}

static void test_time_parse(void **state) {
  (void)state;
  expect_time("2026-11-29T04:03:03.720123456Z", TS_EXAMPLE);
  expect_time("1970-01-01T00:00:00Z", 0);
  expect_time("1970-01-01T00:00:00.000000001Z", 1);
  expect_time("1969-12-31T23:59:59.999999999Z", -1);
  /* Fewer fractional digits. */
  expect_time("2026-11-29T04:03:03.72Z", TS_EXAMPLE - 123456);
  expect_time("2026-11-29T04:03:03.7Z", TS_EXAMPLE - 20123456);
  expect_time("2026-11-29T04:03:03Z", TS_EXAMPLE - 720123456);
  /* Offsets and lower case. */
  expect_time("2026-11-29T04:03:03.720123456+00:00", TS_EXAMPLE);
  expect_time("2026-11-29T06:33:03.720123456+02:30", TS_EXAMPLE);
  expect_time("2026-11-28T23:03:03.720123456-05:00", TS_EXAMPLE);
  expect_time("2026-11-29t04:03:03.720123456z", TS_EXAMPLE);
  /* Leap days. */
  expect_time("2000-02-29T00:00:00.000000001Z", 951782400000000001LL);
  expect_time("2024-02-29T00:00:00Z", 1709164800000000000LL);
  /* The ends of the range. */
  expect_time("2262-04-11T23:47:16.854775807Z", INT64_MAX);
  expect_time("1677-09-21T00:12:43.145224192Z", INT64_MIN);

  static const char *const bad[] = {
      "",
      "2026-11-29",
      "2026-11-29T04:03:03",                   /* no zone */
      "2026-11-29T04:03:03.Z",                 /* empty fraction */
      "2026-11-29T04:03:03.7201234567Z",       /* 10 digits */
      "2026-11-29T04:03:03.720123456Zx",       /* trailing byte */
      "2026-11-29 04:03:03.720123456Z",        /* space separator */
      "2026-13-29T04:03:03Z",                  /* month */
      "2026-00-29T04:03:03Z",
      "2026-11-31T04:03:03Z",                  /* day */
      "2026-11-00T04:03:03Z",
      "2026-02-29T04:03:03Z",                  /* not a leap year */
      "2100-02-29T04:03:03Z",
      "2026-11-29T24:03:03Z",                  /* hour */
      "2026-11-29T04:60:03Z",                  /* minute */
      "2026-11-29T04:03:60Z",                  /* leap second */
      "2026-11-29T04:03:03+0000",              /* offset without colon */
      "2026-11-29T04:03:03+24:00",
      "226-11-29T04:03:03Z",
      "2026-1-29T04:03:03Z",
      "+2026-11-29T04:03:03Z",
      "2026-11-29T04:03:03.72 123Z",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ts = 42;
    int r = logfmt_parse_time(bad[i], strlen(bad[i]), &ts);
    if (r != -EINVAL)
      fail_msg("accepted \"%s\" (%d)", bad[i], r);
    assert_true(ts == 42);
  }
  /* Valid syntax outside the int64 ns range. */
  int64_t ts;
  assert_int_equal(logfmt_parse_time("2262-04-11T23:47:16.854775808Z", 30, &ts), -ERANGE);
  assert_int_equal(logfmt_parse_time("1677-09-21T00:12:43.145224191Z", 30, &ts), -ERANGE);
  assert_int_equal(logfmt_parse_time("9999-12-31T23:59:59Z", 20, &ts), -ERANGE);
  /* Length is honoured: a longer, valid-looking string cut short. */
  assert_int_equal(logfmt_parse_time("2026-11-29T04:03:03.720123456Z", 29, &ts), -EINVAL);
}

static void test_time_roundtrip(void **state) {
  (void)state;
  rng_state = 0x9e3779b97f4a7c15ULL;
  char buf[32];
  for (int i = 0; i < 200000; i++) {
    int64_t ts = (int64_t)rng();
    if (i % 4 == 1) /* near the present, where logs live */
      ts = TS_EXAMPLE + (int64_t)(rng() % (400ULL * 86400 * 1000000000ULL));
    else if (i % 4 == 2) /* around the epoch */
      ts = (int64_t)(rng() % 2000000000000ULL) - 1000000000000LL;
    logfmt_time(ts, buf);
    assert_int_equal(strlen(buf), 30);
    assert_int_equal(buf[29], 'Z');
    int64_t back;
    assert_int_equal(logfmt_parse_time(buf, 30, &back), 0);
    if (back != ts)
      fail_msg("%s: %lld != %lld", buf, (long long)back, (long long)ts);
  }
}

/* ------------------------------------------------------------ encode */

static void test_encode_lines(void **state) {
  (void)state;
  expect_encoding(LOG_STDOUT, "hello\nworld\n",
                  "2026-11-29T04:03:03.720123456Z stdout F hello\n"
                  "2026-11-29T04:03:03.720123456Z stdout F world\n");
  /* A trailing fragment is partial. */
  expect_encoding(LOG_STDERR, "hello\nwor",
                  "2026-11-29T04:03:03.720123456Z stderr F hello\n"
                  "2026-11-29T04:03:03.720123456Z stderr P wor\n");
  /* Empty lines are full entries with no data. */
  expect_encoding(LOG_SETUP, "\n\nx\n",
                  "2026-11-29T04:03:03.720123456Z setup F \n"
                  "2026-11-29T04:03:03.720123456Z setup F \n"
                  "2026-11-29T04:03:03.720123456Z setup F x\n");
  /* \r, NUL and invalid UTF-8 are kept. */
  expect_encoding(LOG_STDOUT, "a\r\n\0b\xff\xfe\n",
                  "2026-11-29T04:03:03.720123456Z stdout F a\r\n"
                  "2026-11-29T04:03:03.720123456Z stdout F \0b\xff\xfe\n");
  /* Nothing in, nothing out. */
  expect_encoding(LOG_STDOUT, "", "");

  /* Appends to what is already there. */
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_append(&b, "prefix|", 7), 0);
  strbuf_consume(&b, 3);
  assert_int_equal(logfmt_encode(&b, LOG_STDOUT, 0, (const uint8_t *)"x", 1), 0);
  assert_string_equal(strbuf_cstr(&b), "fix|1970-01-01T00:00:00.000000000Z stdout P x\n");
  /* Unknown streams are refused and leave the buffer alone. */
  assert_int_equal(logfmt_encode(&b, (enum log_stream)0, 0, (const uint8_t *)"x", 1), -EINVAL);
  assert_int_equal(logfmt_encode(&b, (enum log_stream)4, 0, (const uint8_t *)"x", 1), -EINVAL);
  assert_int_equal(strbuf_avail(&b), 4 + 42);
  strbuf_free(&b);
}

static void test_partial_lines(void **state) {
  (void)state;
  /* One line arriving in three reads. */
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(logfmt_encode(&b, LOG_STDOUT, 1, (const uint8_t *)"he", 2), 0);
  assert_int_equal(logfmt_encode(&b, LOG_STDOUT, 2, (const uint8_t *)"ll", 2), 0);
  assert_int_equal(logfmt_encode(&b, LOG_STDOUT, 3, (const uint8_t *)"o\nnext", 6), 0);
  struct parsed *p = malloc(sizeof *p);
  assert_non_null(p);
  parse_all(strbuf_head(&b), strbuf_avail(&b), p);
  assert_int_equal(p->n, 4);
  static const char *const data[] = {"he", "ll", "o", "next"};
  static const bool partial[] = {true, true, false, true};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(p->e[i].len, strlen(data[i]));
    assert_memory_equal(p->e[i].data, data[i], p->e[i].len);
    assert_int_equal(p->e[i].partial, partial[i]);
    assert_int_equal(p->e[i].stream, LOG_STDOUT);
  }
  assert_true(p->e[0].ts_ns == 1 && p->e[2].ts_ns == 3 && p->e[3].ts_ns == 3);
  free(p);
  strbuf_free(&b);
}

/* Encodes `n` bytes of 'a'..'z', then the optional newline, and checks the
 * entries' sizes and tags. */
static void expect_split(size_t n, bool newline, const size_t *sizes, const char *tags) {
  size_t len = n + newline;
  uint8_t *in = malloc(len);
  assert_non_null(in);
  for (size_t i = 0; i < n; i++)
    in[i] = (uint8_t)('a' + i % 26);
  if (newline)
    in[n] = '\n';
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(logfmt_encode(&b, LOG_STDERR, TS_EXAMPLE, in, len), 0);
  struct parsed *p = malloc(sizeof *p);
  assert_non_null(p);
  parse_all(strbuf_head(&b), strbuf_avail(&b), p);
  assert_int_equal(p->n, strlen(tags));
  size_t off = 0;
  for (size_t i = 0; i < p->n; i++) {
    assert_int_equal(p->e[i].len, sizes[i]);
    assert_int_equal(p->e[i].partial, tags[i] == 'P');
    assert_memory_equal(p->e[i].data, in + off, sizes[i]);
    off += sizes[i];
  }
  assert_int_equal(off, n);
  free(p);
  strbuf_free(&b);
  free(in);
}

static void test_long_lines(void **state) {
  (void)state;
  const size_t M = LOGFMT_MAX_LINE;
  expect_split(M, true, (size_t[]){M}, "F");
  expect_split(M, false, (size_t[]){M}, "P");
  expect_split(M - 1, true, (size_t[]){M - 1}, "F");
  expect_split(M + 1, true, (size_t[]){M, 1}, "PF");
  expect_split(M + 1, false, (size_t[]){M, 1}, "PP");
  expect_split(2 * M, true, (size_t[]){M, M}, "PF");
  expect_split(2 * M + 5, false, (size_t[]){M, M, 5}, "PPP");
  expect_split(3 * M + 7, true, (size_t[]){M, M, M, 7}, "PPPF");

  /* A long line between short ones. */
  size_t len = 3 + (M + 10) + 1 + 2;
  uint8_t *in = malloc(len);
  assert_non_null(in);
  memcpy(in, "ab\n", 3);
  memset(in + 3, 'x', M + 10);
  in[3 + M + 10] = '\n';
  memcpy(in + 4 + M + 10, "cd", 2);
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(logfmt_encode(&b, LOG_STDOUT, 0, in, len), 0);
  struct parsed *p = malloc(sizeof *p);
  assert_non_null(p);
  parse_all(strbuf_head(&b), strbuf_avail(&b), p);
  assert_int_equal(p->n, 4);
  assert_int_equal(p->e[0].len, 2);
  assert_false(p->e[0].partial);
  assert_int_equal(p->e[1].len, M);
  assert_true(p->e[1].partial);
  assert_int_equal(p->e[2].len, 10);
  assert_false(p->e[2].partial);
  assert_int_equal(p->e[3].len, 2);
  assert_true(p->e[3].partial);
  free(p);
  free(in);
  strbuf_free(&b);
}

/* Random chunks with NULs, CRs, high bytes and newlines at various
 * densities, some with runs far longer than the maximum line: every entry
 * parses, no entry exceeds the maximum, and the data reassembles exactly. */
static void test_random_roundtrip(void **state) {
  (void)state;
  rng_state = 0x5eed5eed12345678ULL;
  size_t cap = 4 * LOGFMT_MAX_LINE + 1000;
  uint8_t *chunk = malloc(cap);
  uint8_t *all = malloc(200 * cap);
  uint8_t *back = malloc(200 * cap);
  assert_non_null(chunk);
  assert_non_null(all);
  assert_non_null(back);
  size_t all_len = 0, back_len = 0;
  struct strbuf enc = STRBUF_INIT;
  size_t nchunks = 0;

  for (int c = 0; c < 200; c++) {
    size_t len;
    switch (rng() % 4) {
    case 0: len = rng() % 64; break;
    case 1: len = rng() % 4096; break;
    case 2: len = rng() % cap; break;
    default: len = 1 + rng() % 3; break;
    }
    /* Newline probability 1/den: 1/2 (many empty lines) .. 1/100000. */
    static const unsigned dens[] = {2, 8, 80, 4000, 100000};
    unsigned den = dens[rng() % 5];
    for (size_t i = 0; i < len; i++) {
      uint64_t x = rng();
      if (x % den == 0)
        chunk[i] = '\n';
      else if ((x >> 20) % 16 == 0)
        chunk[i] = 0;
      else if ((x >> 20) % 16 == 1)
        chunk[i] = '\r';
      else {
        chunk[i] = (uint8_t)(x >> 40);
        if (chunk[i] == '\n')
          chunk[i] = 'n';
      }
    }
    enum log_stream stream = (enum log_stream)(1 + rng() % 3);
    assert_int_equal(logfmt_encode(&enc, stream, (int64_t)(rng() >> 2), chunk, len), 0);
    memcpy(all + all_len, chunk, len);
    all_len += len;
    nchunks++;
  }

  /* Parse everything, feeding the parser growing prefixes of the buffer
   * from time to time to check it waits for whole lines. */
  const uint8_t *buf = strbuf_head(&enc);
  size_t len = strbuf_avail(&enc), off = 0, entries = 0;
  while (off < len) {
    struct log_entry e;
    const uint8_t *nl = memchr(buf + off, '\n', len - off);
    assert_non_null(nl);
    size_t line = (size_t)(nl - (buf + off)) + 1;
    if (entries % 7 == 0)
      assert_int_equal(logfmt_parse(buf + off, line - 1, &e), 0);
    long r = logfmt_parse(buf + off, len - off, &e);
    assert_int_equal(r, (long)line);
    assert_true(e.len <= LOGFMT_MAX_LINE);
    assert_true(e.stream >= LOG_STDOUT && e.stream <= LOG_SETUP);
    memcpy(back + back_len, e.data, e.len);
    back_len += e.len;
    if (!e.partial)
      back[back_len++] = '\n';
    off += (size_t)r;
    entries++;
  }
  assert_int_equal(back_len, all_len);
  assert_memory_equal(back, all, all_len);
  assert_true(entries > nchunks);
  strbuf_free(&enc);
  free(chunk);
  free(all);
  free(back);
}

/* Stream and timestamp survive, chunk by chunk. */
static void test_entry_metadata(void **state) {
  (void)state;
  rng_state = 77;
  for (int i = 0; i < 1000; i++) {
    enum log_stream s = (enum log_stream)(1 + rng() % 3);
    int64_t ts = (int64_t)rng();
    uint8_t data[3] = {(uint8_t)rng(), '\n', 'z'};
    if (data[0] == '\n')
      data[0] = 0;
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(logfmt_encode(&b, s, ts, data, sizeof data), 0);
    struct log_entry e;
    long r = logfmt_parse(strbuf_head(&b), strbuf_avail(&b), &e);
    assert_true(r > 0);
    assert_int_equal(e.stream, s);
    assert_true(e.ts_ns == ts);
    assert_false(e.partial);
    assert_int_equal(e.len, 1);
    assert_int_equal(e.data[0], data[0]);
    r = logfmt_parse(strbuf_head(&b) + r, strbuf_avail(&b) - (size_t)r, &e);
    assert_true(r > 0);
    assert_true(e.partial);
    assert_true(e.ts_ns == ts);
    strbuf_free(&b);
  }
}

/* ------------------------------------------------------------ parse */

static void test_parse(void **state) {
  (void)state;
  struct log_entry e;
  const char *two = "2026-11-29T04:03:03.720123456Z stderr P a b  c\n"
                    "2026-11-29T04:03:04Z stdout F \n";
  long r = logfmt_parse((const uint8_t *)two, strlen(two), &e);
  assert_int_equal(r, 47);
  assert_int_equal(e.stream, LOG_STDERR);
  assert_true(e.partial);
  assert_true(e.ts_ns == TS_EXAMPLE);
  assert_int_equal(e.len, 6);
  assert_memory_equal(e.data, "a b  c", 6);
  r = logfmt_parse((const uint8_t *)two + 47, strlen(two) - 47, &e);
  assert_int_equal(r, (long)strlen(two) - 47);
  assert_int_equal(e.stream, LOG_STDOUT);
  assert_false(e.partial);
  assert_int_equal(e.len, 0);
  assert_true(e.ts_ns == TS_EXAMPLE - 720123456 + 1000000000);

  /* No complete line yet. */
  assert_int_equal(logfmt_parse((const uint8_t *)two, 46, &e), 0);
  assert_int_equal(logfmt_parse((const uint8_t *)two, 0, &e), 0);
  assert_int_equal(logfmt_parse((const uint8_t *)"garbage", 7, &e), 0);

  /* \r before the newline is data. */
  const char *crlf = "2026-11-29T04:03:03.720123456Z setup F x\r\n";
  assert_int_equal(logfmt_parse((const uint8_t *)crlf, strlen(crlf), &e), (long)strlen(crlf));
  assert_int_equal(e.stream, LOG_SETUP);
  assert_int_equal(e.len, 2);
  assert_memory_equal(e.data, "x\r", 2);
}

static void test_parse_malformed(void **state) {
  (void)state;
  static const char *const bad[] = {
      "\n",
      "2026-11-29T04:03:03.720123456Z\n",
      "2026-11-29T04:03:03.720123456Z stdout\n",
      "2026-11-29T04:03:03.720123456Z stdout F\n",     /* no space after the tag */
      "2026-11-29T04:03:03.720123456Z stdout \n",
      "2026-11-29T04:03:03.720123456Z stdout  x\n",
      "2026-11-29T04:03:03.720123456Z stdout X x\n",   /* tag */
      "2026-11-29T04:03:03.720123456Z stdout f x\n",
      "2026-11-29T04:03:03.720123456Z stdout FF x\n",
      "2026-11-29T04:03:03.720123456Z stdout F:x x\n",
      "2026-11-29T04:03:03.720123456Z stdin F x\n",    /* stream */
      "2026-11-29T04:03:03.720123456Z STDOUT F x\n",
      "2026-11-29T04:03:03.720123456Z stdoutt F x\n",
      "2026-11-29T04:03:03.720123456Z  stdout F x\n",
      "2026-11-29T04:03:03.720123456 stdout F x\n",    /* timestamp */
      "2026-11-29 04:03:03.720123456Z stdout F x\n",
      "2026-02-30T04:03:03.720123456Z stdout F x\n",
      "yesterday stdout F x\n",
      " 2026-11-29T04:03:03.720123456Z stdout F x\n",
      "hello world\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct log_entry e;
    long r = logfmt_parse((const uint8_t *)bad[i], strlen(bad[i]), &e);
    if (r != -EINVAL)
      fail_msg("accepted \"%s\" (%ld)", bad[i], r);
  }
  /* A good line after a bad one still needs the caller to skip the bad one;
   * the parser looks only at the first line. */
  const char *mixed = "junk\n2026-11-29T04:03:03.720123456Z stdout F x\n";
  struct log_entry e;
  assert_int_equal(logfmt_parse((const uint8_t *)mixed, strlen(mixed), &e), -EINVAL);
  assert_int_equal(logfmt_parse((const uint8_t *)mixed + 5, strlen(mixed) - 5, &e),
                   (long)strlen(mixed) - 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_time_format),     cmocka_unit_test(test_time_parse),
      cmocka_unit_test(test_time_roundtrip),  cmocka_unit_test(test_encode_lines),
      cmocka_unit_test(test_partial_lines),   cmocka_unit_test(test_long_lines),
      cmocka_unit_test(test_random_roundtrip), cmocka_unit_test(test_entry_metadata),
      cmocka_unit_test(test_parse),           cmocka_unit_test(test_parse_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
