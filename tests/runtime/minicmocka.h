/* The subset of cmocka's API that test_cgroup_live.c uses, for builds where
 * cmocka cannot be linked: Debian ships no static libcmocka, and the v2 VM
 * test (tests/runtime/v2-vm/run) needs a static binary. Same semantics:
 * a failed assertion ends the test (longjmp) and the runner goes on; the
 * group teardown always runs. Prints cmocka-like lines and a closing
 * "N passed, N failed" line. Header-only, for one translation unit. */
#ifndef QUILT_MINICMOCKA_H
#define QUILT_MINICMOCKA_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*mc_test_fn)(void **state);
typedef int (*mc_fixture_fn)(void **state);

struct CMUnitTest {
  const char *name;
  mc_test_fn test_func;
  mc_fixture_fn setup_func;
  mc_fixture_fn teardown_func;
  void *initial_state;
};

static jmp_buf mc_jmp;
static int mc_skipped_flag;

#define cmocka_unit_test(f) {#f, f, NULL, NULL, NULL}
#define cmocka_unit_test_setup_teardown(f, s, t) {#f, f, s, t, NULL}
#define cmocka_unit_test_teardown(f, t) {#f, f, NULL, t, NULL}

__attribute__((noreturn, format(printf, 3, 4))) static void mc_fail(const char *file, int line,
                                                                   const char *fmt, ...);
static void mc_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[   ERROR  ] ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n[   LINE   ] --- %s:%d\n", file, line);
  va_end(ap);
  longjmp(mc_jmp, 1);
}

#define assert_true(c)                                                         \
  do {                                                                         \
    if (!(c))                                                                  \
      mc_fail(__FILE__, __LINE__, "%s", #c);                                   \
  } while (0)
#define assert_false(c) assert_true(!(c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_null(p) assert_true((p) == NULL)
#define assert_int_equal(a, b)                                                 \
  do {                                                                         \
    intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                           \
    if (a_ != b_)                                                              \
      mc_fail(__FILE__, __LINE__, "%jd != %jd", a_, b_);                       \
  } while (0)
#define assert_int_not_equal(a, b)                                             \
  do {                                                                         \
    intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                           \
    if (a_ == b_)                                                              \
      mc_fail(__FILE__, __LINE__, "%jd == %jd", a_, b_);                       \
  } while (0)
#define assert_in_range(v, lo, hi)                                             \
  do {                                                                         \
    uintmax_t v_ = (uintmax_t)(v), lo_ = (uintmax_t)(lo), hi_ = (uintmax_t)(hi); \
    if (v_ < lo_ || v_ > hi_)                                                  \
      mc_fail(__FILE__, __LINE__, "%ju is not within the range [%ju, %ju]", v_, lo_, hi_); \
  } while (0)
#define assert_string_equal(a, b)                                              \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (strcmp(a_, b_) != 0)                                                   \
      mc_fail(__FILE__, __LINE__, "\"%s\" != \"%s\"", a_, b_);                 \
  } while (0)
#define fail_msg(...) mc_fail(__FILE__, __LINE__, __VA_ARGS__)
#define print_message(...) printf(__VA_ARGS__)
#define skip()                                                                 \
  do {                                                                         \
    mc_skipped_flag = 1;                                                       \
    longjmp(mc_jmp, 1);                                                        \
  } while (0)

/* 0 passed, 1 failed, 2 skipped. */
static int mc_run_one(const struct CMUnitTest *t, void **state) {
  volatile int failed = 0;
  mc_skipped_flag = 0;
  if (t->setup_func && t->setup_func(state) != 0)
    return 1;
  if (setjmp(mc_jmp) == 0)
    t->test_func(state);
  else
    failed = 1;
  if (t->teardown_func && t->teardown_func(state) != 0)
    failed = 1;
  return mc_skipped_flag ? 2 : failed;
}

static int mc_run_group(const struct CMUnitTest *tests, size_t n, mc_fixture_fn setup,
                        mc_fixture_fn teardown) {
  void *state = NULL;
  int counts[3] = {0, 0, 0};
  printf("[==========] tests: Running %zu test(s).\n", n);
  if (setup && setup(&state) != 0) {
    printf("[  ERROR   ] group setup failed\n0 passed, %zu failed\n", n);
    return (int)n;
  }
  for (size_t i = 0; i < n; i++) {
    printf("[ RUN      ] %s\n", tests[i].name);
    fflush(stdout);
    int r = mc_run_one(&tests[i], &state);
    static const char *const tags[] = {"[       OK ]", "[  FAILED  ]", "[  SKIPPED ]"};
    printf("%s %s\n", tags[r], tests[i].name);
    counts[r]++;
  }
  if (teardown && teardown(&state) != 0)
    counts[1]++;
  printf("[==========] tests: %zu test(s) run.\n", n);
  printf("%d passed, %d failed, %d skipped\n", counts[0], counts[1], counts[2]);
  fflush(stdout);
  return counts[1];
}

#define cmocka_run_group_tests(tests, setup, teardown)                         \
  mc_run_group(tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

#endif
