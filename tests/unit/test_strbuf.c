/* The growable buffer under every connection: growth, compaction, consume. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"

static void test_append_and_cstr(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_string_equal(strbuf_cstr(&b), "");
  assert_int_equal(strbuf_avail(&b), 0);
  assert_int_equal(strbuf_append(&b, "abc", 3), 0);
  assert_int_equal(strbuf_append(&b, NULL, 0), 0);
  assert_int_equal(strbuf_append(&b, "def", 3), 0);
  assert_int_equal(strbuf_avail(&b), 6);
  assert_string_equal(strbuf_cstr(&b), "abcdef");
  /* The NUL is not counted. */
  assert_int_equal(strbuf_avail(&b), 6);
  strbuf_free(&b);
  assert_null(b.data);
  assert_int_equal(b.cap, 0);
}

static void test_growth_keeps_content(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  uint8_t chunk[97];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (uint8_t)i;
  for (int i = 0; i < 200; i++)
    assert_int_equal(strbuf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(strbuf_avail(&b), 200 * sizeof chunk);
  assert_true(b.cap >= b.len);
  for (int i = 0; i < 200; i++)
    assert_memory_equal(strbuf_head(&b) + i * sizeof chunk, chunk, sizeof chunk);
  strbuf_free(&b);
}

static void test_printf(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_printf(&b, "%d-%s", 42, "x"), 0);
  assert_int_equal(strbuf_printf(&b, "%s", ""), 0);
  assert_int_equal(strbuf_printf(&b, "|%05u", 7u), 0);
  assert_string_equal(strbuf_cstr(&b), "42-x|00007");
  /* Longer than the first allocation. */
  char big[1000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(strbuf_printf(&b, "%s", big), 0);
  assert_int_equal(strbuf_avail(&b), 10 + 999);
  assert_int_equal(strbuf_cstr(&b)[1008], 'z');
  strbuf_free(&b);
}

static void test_consume(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_append(&b, "hello world", 11), 0);
  strbuf_consume(&b, 6);
  assert_int_equal(strbuf_avail(&b), 5);
  assert_memory_equal(strbuf_head(&b), "world", 5);
  assert_string_equal(strbuf_cstr(&b), "world");
  /* Consuming everything rewinds to the start of the storage. */
  strbuf_consume(&b, 5);
  assert_int_equal(b.off, 0);
  assert_int_equal(b.len, 0);
  assert_int_equal(strbuf_avail(&b), 0);
  strbuf_free(&b);
}

static void test_compaction_before_growth(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_reserve(&b, 1), 0);
  size_t cap = b.cap;
  uint8_t *data = b.data;
  uint8_t fill[256];
  memset(fill, 'a', sizeof fill);
  assert_int_equal(strbuf_append(&b, fill, cap - 4), 0);
  assert_int_equal(strbuf_append(&b, "tail", 4), 0);
  strbuf_consume(&b, cap - 4);
  /* The consumed front is reused instead of growing. */
  assert_int_equal(strbuf_append(&b, "more", 4), 0);
  assert_int_equal(b.cap, cap);
  assert_ptr_equal(b.data, data);
  assert_int_equal(b.off, 0);
  assert_memory_equal(strbuf_head(&b), "tailmore", 8);
  strbuf_free(&b);
}

static void test_tail_commit(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_append(&b, "ab", 2), 0);
  uint8_t *t = strbuf_tail(&b, 512);
  assert_non_null(t);
  memcpy(t, "cdef", 4);
  strbuf_commit(&b, 3); /* commit fewer than reserved */
  assert_string_equal(strbuf_cstr(&b), "abcde");
  strbuf_free(&b);
}

static void test_reset_and_shrink(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  uint8_t big[4096] = {0};
  assert_int_equal(strbuf_append(&b, big, sizeof big), 0);
  /* Not drained: shrink must keep the data. */
  strbuf_shrink(&b, 1024);
  assert_non_null(b.data);
  assert_int_equal(strbuf_avail(&b), sizeof big);
  strbuf_reset(&b);
  assert_int_equal(strbuf_avail(&b), 0);
  assert_non_null(b.data);
  /* Under the keep threshold: storage stays for reuse. */
  strbuf_shrink(&b, 1 << 20);
  assert_non_null(b.data);
  /* Drained and over the threshold: storage released. */
  strbuf_shrink(&b, 1024);
  assert_null(b.data);
  assert_int_equal(b.cap, 0);
  /* Usable again afterwards. */
  assert_int_equal(strbuf_append(&b, "x", 1), 0);
  assert_string_equal(strbuf_cstr(&b), "x");
  strbuf_free(&b);
  strbuf_free(&b); /* idempotent */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_and_cstr),
      cmocka_unit_test(test_growth_keeps_content),
      cmocka_unit_test(test_printf),
      cmocka_unit_test(test_consume),
      cmocka_unit_test(test_compaction_before_growth),
      cmocka_unit_test(test_tail_commit),
      cmocka_unit_test(test_reset_and_shrink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
