/* Metrics recording and the Prometheus text exposition. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "grpc/metrics.h"

static const char *const names[] = {
    "/quilt.v1.Quilt/GetSystemInfo",
    "/grpc.health.v1.Health/Check",
    "/quilt.v1.Quilt/Unused",
};

static const char *render(const struct metrics *m, struct strbuf *b) {
  strbuf_reset(b);
  assert_int_equal(metrics_render(m, names, ARRAY_SIZE(names), b), 0);
  return strbuf_cstr(b);
}

/* True when `line` appears as a whole line of text. */
static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return true;
  return false;
}

static void assert_line(const char *text, const char *line) {
  if (!has_line(text, line))
    fail_msg("missing line: %s\n--- text:\n%s", line, text);
}

static struct metrics *new_metrics(void) {
  struct metrics *m = calloc(1, sizeof *m);
  assert_non_null(m);
  return m;
}

static void test_bucket_bounds(void **state) {
  (void)state;
  assert_int_equal(metrics_bucket_us[0], 50);
  for (unsigned i = 1; i < METRICS_BUCKETS; i++)
    assert_true(metrics_bucket_us[i] > metrics_bucket_us[i - 1]);
}

static void test_record(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  metrics_record_rpc(m, 0, GRPC_OK, 50000);      /* exactly 50 us: first bucket */
  metrics_record_rpc(m, 0, GRPC_OK, 50001);      /* just over: second */
  metrics_record_rpc(m, 0, GRPC_NOT_FOUND, 3000000); /* 3 ms */
  metrics_record_rpc(m, 0, GRPC_OK, 20000000000ull); /* 20 s: +Inf */
  assert_int_equal(m->methods[0].calls[GRPC_OK], 3);
  assert_int_equal(m->methods[0].calls[GRPC_NOT_FOUND], 1);
  assert_int_equal(m->methods[0].latency_bucket[0], 1);
  assert_int_equal(m->methods[0].latency_bucket[1], 1);
  assert_int_equal(m->methods[0].latency_bucket[6], 1); /* le 5000 us */
  assert_int_equal(m->methods[0].latency_bucket[METRICS_BUCKETS], 1);
  assert_int_equal(m->methods[0].latency_sum_us, 50 + 50 + 3000 + 20000000);
}

static void test_record_out_of_range(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  cleanup_free struct metrics *zero = new_metrics();
  metrics_record_rpc(m, METRICS_MAX_METHODS, GRPC_OK, 1000);
  metrics_record_rpc(m, UINT32_MAX, GRPC_OK, 1000);
  metrics_record_rpc(m, 0, -1, 1000);
  metrics_record_rpc(m, 0, GRPC_STATUS_COUNT, 1000);
  metrics_record_rpc(m, 0, 1000, 1000);
  assert_memory_equal(m, zero, sizeof *m);
}

static void test_render_scalars(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  m->connections_current = 3;
  m->connections_total = 10;
  m->connections_rejected = 1;
  m->streams_current = 2;
  m->streams_total = 40;
  m->http1_requests = 7;
  m->h2_protocol_errors = 4;
  m->rapid_reset_sheds = 5;
  m->auth_failures = 6;
  m->unknown_method_calls = 6;
  m->connections_evicted = 8;
  m->connections_stalled = 9;
  struct strbuf b = STRBUF_INIT;
  const char *t = render(m, &b);
  assert_line(t, "# TYPE quilt_connections gauge");
  assert_line(t, "quilt_connections 3");
  assert_line(t, "# TYPE quilt_connections_total counter");
  assert_line(t, "quilt_connections_total 10");
  assert_line(t, "quilt_connections_rejected_total 1");
  assert_line(t, "quilt_connections_evicted_total 8");
  assert_line(t, "quilt_connections_stalled_total 9");
  assert_line(t, "# TYPE quilt_streams gauge");
  assert_line(t, "quilt_streams 2");
  assert_line(t, "quilt_streams_total 40");
  assert_line(t, "quilt_http1_requests_total 7");
  assert_line(t, "quilt_h2_protocol_errors_total 4");
  assert_line(t, "quilt_rapid_reset_sheds_total 5");
  assert_line(t, "quilt_auth_failures_total 6");
  assert_line(t, "quilt_grpc_unknown_method_total 6");
  assert_line(t, "# TYPE quilt_grpc_requests_total counter");
  assert_line(t, "# TYPE quilt_grpc_request_duration_seconds histogram");
  /* No calls: no per-method series at all. */
  assert_null(strstr(t, "method=\""));
  strbuf_free(&b);
}

/* Every sample line names a family announced by an earlier # TYPE line, and
 * every # TYPE has a # HELP: the basic shape of the text format. */
static void test_render_well_formed(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  metrics_record_rpc(m, 0, GRPC_OK, 1000);
  metrics_record_rpc(m, 1, GRPC_UNAVAILABLE, 1000);
  struct strbuf b = STRBUF_INIT;
  cleanup_free char *t = strdup(render(m, &b));
  assert_true(t[strlen(t) - 1] == '\n');
  char family[128] = "";
  size_t helps = 0, types = 0;
  for (char *save = NULL, *line = strtok_r(t, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char name[128], type[32];
    if (strncmp(line, "# HELP ", 7) == 0) {
      helps++;
      continue;
    }
    if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
      types++;
      assert_true(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0 ||
                  strcmp(type, "histogram") == 0);
      snprintf(family, sizeof family, "%s", name);
      continue;
    }
    assert_true(line[0] != '#');
    assert_true(strncmp(line, family, strlen(family)) == 0);
    const char *value = strrchr(line, ' ');
    assert_non_null(value);
    char *end;
    strtod(value + 1, &end);
    assert_true(*end == 0 && end > value + 1);
  }
  assert_int_equal(helps, types);
  assert_int_equal(types, 14);
  strbuf_free(&b);
}

static void test_render_requests(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  metrics_record_rpc(m, 0, GRPC_OK, 1000);
  metrics_record_rpc(m, 0, GRPC_OK, 1000);
  metrics_record_rpc(m, 0, GRPC_INVALID_ARGUMENT, 1000);
  metrics_record_rpc(m, 1, GRPC_OK, 1000);
  struct strbuf b = STRBUF_INIT;
  const char *t = render(m, &b);
  assert_line(t, "quilt_grpc_requests_total{method=\"/quilt.v1.Quilt/GetSystemInfo\",code=\"OK\"} 2");
  assert_line(t, "quilt_grpc_requests_total{method=\"/quilt.v1.Quilt/GetSystemInfo\","
                 "code=\"INVALID_ARGUMENT\"} 1");
  assert_line(t, "quilt_grpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"} 1");
  /* Zero series are omitted, and a method with no calls has no histogram. */
  assert_null(strstr(t, "code=\"NOT_FOUND\""));
  assert_null(strstr(t, "/quilt.v1.Quilt/Unused"));
  strbuf_free(&b);
}

static void test_render_histogram(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  /* 40 us, 80 us, 80 us, 3 ms, 30 s. */
  const uint64_t lat_ns[] = {40000, 80000, 80000, 3000000, 30000000000ull};
  for (size_t i = 0; i < ARRAY_SIZE(lat_ns); i++)
    metrics_record_rpc(m, 0, GRPC_OK, lat_ns[i]);
  struct strbuf b = STRBUF_INIT;
  const char *t = render(m, &b);
  static const struct {
    const char *le;
    int count;
  } want[] = {
      {"0.00005", 1}, {"0.0001", 3}, {"0.00025", 3}, {"0.0005", 3}, {"0.001", 3},
      {"0.0025", 3},  {"0.005", 4},  {"0.01", 4},    {"0.025", 4},  {"0.1", 4},
      {"1", 4},       {"10", 4},     {"+Inf", 5},
  };
  assert_int_equal(ARRAY_SIZE(want), METRICS_BUCKETS + 1);
  const char *prev = t;
  for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
    char line[256];
    snprintf(line, sizeof line,
             "quilt_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"%s\"} %d", names[0],
             want[i].le, want[i].count);
    assert_line(t, line);
    /* Buckets are listed in increasing le order. */
    const char *at = strstr(t, line);
    assert_true(at > prev);
    prev = at;
  }
  assert_line(t, "quilt_grpc_request_duration_seconds_sum{method=\"/quilt.v1.Quilt/GetSystemInfo\"} "
                 "30.0032");
  assert_line(t, "quilt_grpc_request_duration_seconds_count{method=\"/quilt.v1.Quilt/GetSystemInfo\"} 5");
  strbuf_free(&b);
}

static void test_render_escapes_labels(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  metrics_record_rpc(m, 0, GRPC_OK, 1000);
  const char *odd[] = {"a\"b\\c\nd"};
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(metrics_render(m, odd, 1, &b), 0);
  assert_line(strbuf_cstr(&b), "quilt_grpc_requests_total{method=\"a\\\"b\\\\c\\nd\",code=\"OK\"} 1");
  strbuf_free(&b);
}

static void test_render_bounds(void **state) {
  (void)state;
  cleanup_free struct metrics *m = new_metrics();
  metrics_record_rpc(m, 1, GRPC_OK, 1000);
  struct strbuf b = STRBUF_INIT;
  /* A NULL name skips that method; NULL names or a huge count are safe. */
  const char *some[] = {"/a", NULL};
  assert_int_equal(metrics_render(m, some, 2, &b), 0);
  assert_null(strstr(strbuf_cstr(&b), "method="));
  strbuf_reset(&b);
  assert_int_equal(metrics_render(m, NULL, 5, &b), 0);
  assert_non_null(strstr(strbuf_cstr(&b), "quilt_connections 0\n"));
  /* Appends after existing content. */
  strbuf_reset(&b);
  assert_int_equal(strbuf_append(&b, "prefix\n", 7), 0);
  assert_int_equal(metrics_render(m, NULL, 0, &b), 0);
  assert_int_equal(strncmp(strbuf_cstr(&b), "prefix\n# HELP", 13), 0);
  strbuf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_bounds),
      cmocka_unit_test(test_record),
      cmocka_unit_test(test_record_out_of_range),
      cmocka_unit_test(test_render_scalars),
      cmocka_unit_test(test_render_well_formed),
      cmocka_unit_test(test_render_requests),
      cmocka_unit_test(test_render_histogram),
      cmocka_unit_test(test_render_escapes_labels),
      cmocka_unit_test(test_render_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
