/* gRPC length-prefix deframer: every split of a stream must yield the same
 * messages, in order, with the same flags. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/framing.h"
#include "grpc/status.h"

#define MAX_SEEN 16

struct seen {
  size_t count;
  size_t len[MAX_SEEN];
  bool compressed[MAX_SEEN];
  uint8_t *data[MAX_SEEN];
  const uint8_t *ptr[MAX_SEEN]; /* where the callback's msg pointed */
  int fail_at;                  /* 1-based message index to fail on, 0 = never */
};

static int record(void *arg, const uint8_t *msg, size_t len, bool compressed) {
  struct seen *s = arg;
  assert_true(s->count < MAX_SEEN);
  assert_non_null(msg);
  s->len[s->count] = len;
  s->compressed[s->count] = compressed;
  s->ptr[s->count] = msg;
  s->data[s->count] = malloc(len ? len : 1);
  memcpy(s->data[s->count], msg, len);
  s->count++;
  return s->fail_at && (size_t)s->fail_at == s->count ? -ECANCELED : 0;
}

static void seen_free(struct seen *s) {
  for (size_t i = 0; i < s->count; i++)
    free(s->data[i]);
  memset(s, 0, sizeof *s);
}

/* Appends flag + length + body to buf at *off. */
static void put_msg(uint8_t *buf, size_t *off, bool compressed, const char *body, size_t len) {
  grpc_frame_header(buf + *off, compressed, (uint32_t)len);
  memcpy(buf + *off + GRPC_FRAME_HEADER, body, len);
  *off += GRPC_FRAME_HEADER + len;
}

/* Three messages: "hello" (plain), "" (compressed), 300 bytes of a pattern. */
static size_t build_stream(uint8_t *buf, char big[300]) {
  size_t off = 0;
  for (int i = 0; i < 300; i++)
    big[i] = (char)('a' + i % 26);
  put_msg(buf, &off, false, "hello", 5);
  put_msg(buf, &off, true, "", 0);
  put_msg(buf, &off, false, big, 300);
  return off;
}

static void check_stream(const struct seen *s, const char big[300]) {
  assert_int_equal(s->count, 3);
  assert_int_equal(s->len[0], 5);
  assert_memory_equal(s->data[0], "hello", 5);
  assert_false(s->compressed[0]);
  assert_int_equal(s->len[1], 0);
  assert_true(s->compressed[1]);
  assert_int_equal(s->len[2], 300);
  assert_memory_equal(s->data[2], big, 300);
  assert_false(s->compressed[2]);
}

static void test_frame_header(void **state) {
  (void)state;
  uint8_t h[GRPC_FRAME_HEADER];
  grpc_frame_header(h, false, 0x01020304);
  assert_memory_equal(h, "\x00\x01\x02\x03\x04", 5);
  grpc_frame_header(h, true, 0xffffffffu);
  assert_memory_equal(h, "\x01\xff\xff\xff\xff", 5);
  grpc_frame_header(h, false, 0);
  assert_memory_equal(h, "\x00\x00\x00\x00\x00", 5);
}

static void test_whole_stream_one_chunk(void **state) {
  (void)state;
  uint8_t buf[512];
  char big[300];
  size_t n = build_stream(buf, big);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, GRPC_DEFAULT_MAX_RECV, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, n, &err), 0);
  check_stream(&s, big);
  /* Whole messages inside the chunk are handed over without a copy. */
  assert_ptr_equal(s.ptr[0], buf + GRPC_FRAME_HEADER);
  assert_ptr_equal(s.ptr[2], buf + n - 300);
  assert_true(grpc_deframer_idle(&d));
  grpc_deframer_free(&d);
  seen_free(&s);
}

/* Two cuts anywhere in the stream: covers every prefix split (even 1 byte
 * at a time around the prefix), bodies split, and chunks ending exactly at a
 * message boundary. */
static void test_every_two_way_and_three_way_split(void **state) {
  (void)state;
  uint8_t buf[512];
  char big[300];
  size_t n = build_stream(buf, big);
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b += (b < 20 || b > n - 20) ? 1 : 7) {
      struct seen s = {0};
      struct grpc_deframer d;
      struct qerr err = QERR_INIT;
      grpc_deframer_init(&d, GRPC_DEFAULT_MAX_RECV, record, &s);
      assert_int_equal(grpc_deframer_feed(&d, buf, a, &err), 0);
      assert_int_equal(grpc_deframer_feed(&d, buf + a, b - a, &err), 0);
      assert_int_equal(grpc_deframer_feed(&d, buf + b, n - b, &err), 0);
      check_stream(&s, big);
      assert_true(grpc_deframer_idle(&d));
      grpc_deframer_free(&d);
      seen_free(&s);
    }
  }
}

static void test_one_byte_at_a_time(void **state) {
  (void)state;
  uint8_t buf[512];
  char big[300];
  size_t n = build_stream(buf, big);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, GRPC_DEFAULT_MAX_RECV, record, &s);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(grpc_deframer_feed(&d, buf + i, 1, &err), 0);
    /* Idle exactly at message boundaries. */
    bool boundary = i + 1 == 10 || i + 1 == 15 || i + 1 == n;
    assert_int_equal(grpc_deframer_idle(&d), boundary);
  }
  check_stream(&s, big);
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_many_messages_per_chunk(void **state) {
  (void)state;
  uint8_t buf[20 * 8];
  size_t off = 0;
  for (int i = 0; i < 12; i++) {
    char body[2] = {(char)('A' + i), (char)('a' + i)};
    put_msg(buf, &off, i % 2, body, (size_t)(i % 3));
  }
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 1024, record, &s);
  /* Only MAX_SEEN fit in the recorder; 12 is enough to make the point. */
  assert_int_equal(grpc_deframer_feed(&d, buf, off, &err), 0);
  assert_int_equal(s.count, 12);
  for (int i = 0; i < 12; i++) {
    assert_int_equal(s.len[i], (size_t)(i % 3));
    assert_int_equal(s.compressed[i], i % 2);
    if (i % 3 > 0)
      assert_int_equal(s.data[i][0], 'A' + i);
  }
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_zero_length_message(void **state) {
  (void)state;
  uint8_t buf[GRPC_FRAME_HEADER];
  grpc_frame_header(buf, false, 0);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 16, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, 5, &err), 0);
  assert_int_equal(s.count, 1);
  assert_int_equal(s.len[0], 0);
  assert_true(grpc_deframer_idle(&d));
  /* Feeding nothing is a no-op. */
  assert_int_equal(grpc_deframer_feed(&d, buf, 0, &err), 0);
  assert_int_equal(s.count, 1);
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_oversize(void **state) {
  (void)state;
  uint8_t h[GRPC_FRAME_HEADER];
  grpc_frame_header(h, false, 5000000);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, GRPC_DEFAULT_MAX_RECV, record, &s);
  /* Rejected from the prefix alone, before any body byte or allocation. */
  assert_int_equal(grpc_deframer_feed(&d, h, 3, &err), 0);
  assert_int_equal(grpc_deframer_feed(&d, h + 3, 2, &err), -EMSGSIZE);
  assert_int_equal(err.status, GRPC_RESOURCE_EXHAUSTED);
  assert_string_equal(err.msg, "received message of 5000000 bytes exceeds the limit of 4194304");
  assert_int_equal(s.count, 0);
  assert_null(d.buf);
  grpc_deframer_free(&d);
}

static void test_limit_is_inclusive(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, false, "0123456789", 10);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 10, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, off, &err), 0);
  assert_int_equal(s.count, 1);
  grpc_deframer_free(&d);
  grpc_deframer_init(&d, 9, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, off, &err), -EMSGSIZE);
  assert_string_equal(err.msg, "received message of 10 bytes exceeds the limit of 9");
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_bad_flag(void **state) {
  (void)state;
  const uint8_t buf[] = {0x02, 0, 0, 0, 1, 'x'};
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 64, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, sizeof buf, &err), -EPROTO);
  assert_int_equal(err.status, GRPC_INTERNAL);
  assert_non_null(strstr(err.msg, "0x02"));
  assert_int_equal(s.count, 0);
  grpc_deframer_free(&d);
}

static void test_callback_error_stops(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, false, "one", 3);
  put_msg(buf, &off, false, "two", 3);
  put_msg(buf, &off, false, "three", 5);
  struct seen s = {.fail_at = 2};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 64, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, off, &err), -ECANCELED);
  assert_int_equal(s.count, 2);
  assert_int_equal(err.code, -ECANCELED);
  assert_true(grpc_deframer_idle(&d));
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_callback_error_on_buffered_message(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, false, "buffered", 8);
  struct seen s = {.fail_at = 1};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 64, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, 7, &err), 0);
  assert_non_null(d.buf);
  assert_int_equal(grpc_deframer_feed(&d, buf + 7, off - 7, &err), -ECANCELED);
  assert_null(d.buf); /* freed even though the callback failed (ASan checks) */
  grpc_deframer_free(&d);
  seen_free(&s);
}

static void test_truncated_stream_not_idle(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  put_msg(buf, &off, false, "partial", 7);
  struct seen s = {0};
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  grpc_deframer_init(&d, 64, record, &s);
  assert_int_equal(grpc_deframer_feed(&d, buf, 2, &err), 0);
  assert_false(grpc_deframer_idle(&d));
  assert_int_equal(grpc_deframer_feed(&d, buf + 2, 6, &err), 0);
  assert_false(grpc_deframer_idle(&d));
  assert_int_equal(s.count, 0);
  /* Freeing mid-message releases the partial body. */
  grpc_deframer_free(&d);
  assert_null(d.buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_header),
      cmocka_unit_test(test_whole_stream_one_chunk),
      cmocka_unit_test(test_every_two_way_and_three_way_split),
      cmocka_unit_test(test_one_byte_at_a_time),
      cmocka_unit_test(test_many_messages_per_chunk),
      cmocka_unit_test(test_zero_length_message),
      cmocka_unit_test(test_oversize),
      cmocka_unit_test(test_limit_is_inclusive),
      cmocka_unit_test(test_bad_flag),
      cmocka_unit_test(test_callback_error_stops),
      cmocka_unit_test(test_callback_error_on_buffered_message),
      cmocka_unit_test(test_truncated_stream_not_idle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
