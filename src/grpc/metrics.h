/* Daemon counters and the Prometheus text exposition of them. */
#ifndef QUILT_GRPC_METRICS_H
#define QUILT_GRPC_METRICS_H

#include <stdint.h>

#include "common/strbuf.h"
#include "grpc/status.h"

#define METRICS_MAX_METHODS 64
/* Latency bucket upper bounds in microseconds (+Inf is implicit). */
#define METRICS_BUCKETS 12

struct method_metrics {
  uint64_t calls[GRPC_STATUS_COUNT];
  uint64_t latency_bucket[METRICS_BUCKETS + 1]; /* non-cumulative */
  uint64_t latency_sum_us;
};

struct metrics {
  uint64_t connections_current;
  uint64_t connections_total;
  uint64_t connections_rejected;
  uint64_t connections_evicted;
  uint64_t connections_stalled;
  uint64_t streams_current;
  uint64_t streams_total;
  uint64_t http1_requests;
  uint64_t h2_protocol_errors;
  uint64_t rapid_reset_sheds;
  uint64_t auth_failures;       /* TCP calls and scrapes refused for want of the token */
  struct method_metrics methods[METRICS_MAX_METHODS];
  uint64_t unknown_method_calls;
};

extern const uint64_t metrics_bucket_us[METRICS_BUCKETS];

void metrics_record_rpc(struct metrics *m, unsigned method, int status, uint64_t latency_ns);
/* Appends the Prometheus text format; method_names[i] names methods[i]. */
int metrics_render(const struct metrics *m, const char *const *method_names, unsigned n_methods,
                   struct strbuf *out);

#endif
