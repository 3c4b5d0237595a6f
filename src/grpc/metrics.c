#include "grpc/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const uint64_t metrics_bucket_us[METRICS_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000, 10000000,
};

static unsigned bucket_for(uint64_t latency_ns) {
  unsigned i = 0;
  /* Compare in ns: Prometheus buckets are "<= le", and rounding to us first
   * would move 50.4 us into the 50 us bucket. */
  while (i < METRICS_BUCKETS && latency_ns > metrics_bucket_us[i] * 1000)
    i++;
  return i;
}

void metrics_record_rpc(struct metrics *m, unsigned method, int status, uint64_t latency_ns) {
  if (method >= METRICS_MAX_METHODS || status < 0 || status >= GRPC_STATUS_COUNT)
    return;
  struct method_metrics *mm = &m->methods[method];
  mm->calls[status]++;
  mm->latency_bucket[bucket_for(latency_ns)]++;
  mm->latency_sum_us += latency_ns / 1000;
}

/* ------------------------------------------------------------------ render */

/* Output with a sticky error, so the renderer reads as a list of lines and
 * checks for ENOMEM once at the end. */
struct prom {
  struct strbuf *out;
  int err;
};

__attribute__((format(printf, 2, 3))) static void emit(struct prom *w, const char *fmt, ...) {
  if (w->err)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  uint8_t *dst = n < 0 ? NULL : strbuf_tail(w->out, (size_t)n + 1);
  if (!dst) {
    w->err = n < 0 ? -EINVAL : -ENOMEM;
    return;
  }
  va_start(ap, fmt);
  vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
  va_end(ap);
  strbuf_commit(w->out, (size_t)n);
}

static void emit_family(struct prom *w, const char *name, const char *type, const char *help) {
  emit(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void emit_scalar(struct prom *w, const char *name, const char *type, const char *help,
                        uint64_t v) {
  emit_family(w, name, type, help);
  emit(w, "%s %llu\n", name, (unsigned long long)v);
}

/* Microseconds as exact decimal seconds ("0.00005", "2.5", "10"), avoiding
 * the exponent notation %g would pick. */
static void format_seconds(uint64_t us, char out[32]) {
  uint64_t whole = us / 1000000, frac = us % 1000000;
  int n = snprintf(out, 32, "%llu", (unsigned long long)whole);
  if (frac == 0)
    return;
  snprintf(out + n, 32 - (size_t)n, ".%06llu", (unsigned long long)frac);
  for (char *e = out + n + 7; e[-1] == '0'; e--)
    e[-1] = 0;
}

/* Label values may not hold raw '\\', '"' or newlines. */
static void emit_label_value(struct prom *w, const char *s) {
  while (*s) {
    size_t plain = strcspn(s, "\\\"\n");
    emit(w, "%.*s", (int)plain, s);
    s += plain;
    if (!*s)
      break;
    emit(w, "\\%c", *s == '\n' ? 'n' : *s);
    s++;
  }
}

static void emit_method_label(struct prom *w, const char *name, const char *tail) {
  emit(w, "{method=\"");
  emit_label_value(w, name);
  emit(w, "\"%s", tail);
}

static void emit_request_counts(struct prom *w, const struct method_metrics *mm,
                                const char *name) {
  for (int code = 0; code < GRPC_STATUS_COUNT; code++) {
    if (mm->calls[code] == 0)
      continue;
    emit(w, "quilt_grpc_requests_total");
    emit_method_label(w, name, ",code=\"");
    emit(w, "%s\"} %llu\n", grpc_status_name(code), (unsigned long long)mm->calls[code]);
  }
}

static uint64_t method_total(const struct method_metrics *mm) {
  uint64_t total = 0;
  for (unsigned i = 0; i <= METRICS_BUCKETS; i++)
    total += mm->latency_bucket[i];
  return total;
}

static void emit_histogram(struct prom *w, const struct method_metrics *mm, const char *name) {
  const char *h = "quilt_grpc_request_duration_seconds";
  uint64_t cumulative = 0;
  char le[32];
  for (unsigned i = 0; i <= METRICS_BUCKETS; i++) {
    cumulative += mm->latency_bucket[i];
    if (i < METRICS_BUCKETS)
      format_seconds(metrics_bucket_us[i], le);
    else
      snprintf(le, sizeof le, "+Inf");
    emit(w, "%s_bucket", h);
    emit_method_label(w, name, ",le=\"");
    emit(w, "%s\"} %llu\n", le, (unsigned long long)cumulative);
  }
  format_seconds(mm->latency_sum_us, le);
  emit(w, "%s_sum", h);
  emit_method_label(w, name, "}");
  emit(w, " %s\n%s_count", le, h);
  emit_method_label(w, name, "}");
  emit(w, " %llu\n", (unsigned long long)cumulative);
}

static void emit_connection_metrics(struct prom *w, const struct metrics *m) {
  emit_scalar(w, "quilt_connections", "gauge", "Open client connections.",
              m->connections_current);
  emit_scalar(w, "quilt_connections_total", "counter", "Client connections accepted.",
              m->connections_total);
  emit_scalar(w, "quilt_connections_rejected_total", "counter",
              "Client connections refused at the connection limit.", m->connections_rejected);
  emit_scalar(w, "quilt_connections_evicted_total", "counter",
              "Quiet connections closed at the connection limit to let a new one in.",
              m->connections_evicted);
  emit_scalar(w, "quilt_connections_stalled_total", "counter",
              "Connections closed because the peer read nothing for --send-timeout.",
              m->connections_stalled);
  emit_scalar(w, "quilt_streams", "gauge", "Open HTTP/2 streams.", m->streams_current);
  emit_scalar(w, "quilt_streams_total", "counter", "HTTP/2 streams opened.", m->streams_total);
  emit_scalar(w, "quilt_http1_requests_total", "counter", "HTTP/1.1 requests served.",
              m->http1_requests);
  emit_scalar(w, "quilt_h2_protocol_errors_total", "counter",
              "HTTP/2 connections closed for a protocol error.", m->h2_protocol_errors);
  emit_scalar(w, "quilt_rapid_reset_sheds_total", "counter",
              "Connections shed for rapid stream resets.", m->rapid_reset_sheds);
  emit_scalar(w, "quilt_auth_failures_total", "counter",
              "TCP requests refused for a missing or wrong bearer token.", m->auth_failures);
}

static void emit_rpc_metrics(struct prom *w, const struct metrics *m,
                             const char *const *method_names, unsigned n_methods) {
  if (!method_names)
    n_methods = 0;
  if (n_methods > METRICS_MAX_METHODS)
    n_methods = METRICS_MAX_METHODS;
  emit_family(w, "quilt_grpc_requests_total", "counter", "gRPC calls by method and status.");
  for (unsigned i = 0; i < n_methods; i++)
    if (method_names[i])
      emit_request_counts(w, &m->methods[i], method_names[i]);
  emit_scalar(w, "quilt_grpc_unknown_method_total", "counter",
              "gRPC calls to a method the server does not implement.", m->unknown_method_calls);
  emit_family(w, "quilt_grpc_request_duration_seconds", "histogram",
              "gRPC call latency by method.");
  for (unsigned i = 0; i < n_methods; i++)
    if (method_names[i] && method_total(&m->methods[i]) > 0)
      emit_histogram(w, &m->methods[i], method_names[i]);
}

int metrics_render(const struct metrics *m, const char *const *method_names, unsigned n_methods,
                   struct strbuf *out) {
  /* Unconsumed length, not out->len: strbuf may compact while growing. */
  size_t mark = strbuf_avail(out);
  struct prom w = {out, 0};
  emit_connection_metrics(&w, m);
  emit_rpc_metrics(&w, m, method_names, n_methods);
  /* A truncated exposition would be scraped as valid; drop it entirely. */
  if (w.err)
    out->len = out->off + mark;
  return w.err;
}
