/* Container logs in the Kubernetes CRI format, one entry per line:
 *   2026-11-29T04:03:03.720123456Z stdout F hello world
 * "F" marks a full line (the newline is implied), "P" a partial one (output
 * that did not end in a newline before the read ended, or a line split at
 * the maximum entry size). Any byte other than '\n' is kept as is, so binary
 * output survives a round trip. */
#ifndef QUILT_RUNTIME_LOGFMT_H
#define QUILT_RUNTIME_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

enum log_stream { LOG_STDOUT = 1, LOG_STDERR = 2, LOG_SETUP = 3 };

/* Lines longer than this are split into P entries. */
#define LOGFMT_MAX_LINE (16 * 1024)

/* Appends CRI entries for a chunk of output read from `stream` at time ts
 * (Unix ns). Complete lines become F entries; a trailing fragment becomes a P
 * entry. Returns 0 or -ENOMEM. */
int logfmt_encode(struct strbuf *out, enum log_stream stream, int64_t ts_ns, const uint8_t *data,
                  size_t len);

struct log_entry {
  int64_t ts_ns;
  enum log_stream stream;
  bool partial;
  const uint8_t *data;  /* points into the parsed buffer; no trailing '\n' */
  size_t len;
};

/* Parses one entry at the start of buf (which must contain the whole line up
 * to and including '\n'). Returns the bytes consumed, 0 if no complete line
 * is present yet, or -EINVAL for a malformed line. */
long logfmt_parse(const uint8_t *buf, size_t len, struct log_entry *e);

/* RFC 3339 with nanoseconds, UTC: 30 bytes + NUL. */
void logfmt_time(int64_t ts_ns, char out[32]);
int logfmt_parse_time(const char *s, size_t n, int64_t *ts_ns);

#endif
