/* gRPC status codes, grpc-message percent-encoding and grpc-timeout parsing:
 * the pure, table-driven parts of the wire protocol. */
#ifndef QUILT_GRPC_STATUS_H
#define QUILT_GRPC_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

enum grpc_status {
  GRPC_OK = 0,
  GRPC_CANCELLED = 1,
  GRPC_UNKNOWN = 2,
  GRPC_INVALID_ARGUMENT = 3,
  GRPC_DEADLINE_EXCEEDED = 4,
  GRPC_NOT_FOUND = 5,
  GRPC_ALREADY_EXISTS = 6,
  GRPC_PERMISSION_DENIED = 7,
  GRPC_RESOURCE_EXHAUSTED = 8,
  GRPC_FAILED_PRECONDITION = 9,
  GRPC_ABORTED = 10,
  GRPC_OUT_OF_RANGE = 11,
  GRPC_UNIMPLEMENTED = 12,
  GRPC_INTERNAL = 13,
  GRPC_UNAVAILABLE = 14,
  GRPC_DATA_LOSS = 15,
  GRPC_UNAUTHENTICATED = 16,
};
#define GRPC_STATUS_COUNT 17

/* The decimal text of a status code ("0".."16") for grpc-status; "2" for
 * out-of-range codes. Static storage: no formatting on the hot path. */
const char *grpc_status_digits(int code);
/* "OK", "NOT_FOUND", ...; "UNKNOWN" for out-of-range codes. */
const char *grpc_status_name(int code);
/* The status a negative errno maps to (ENOENT → NOT_FOUND, ...). */
int grpc_status_from_errno(int err);

/* Percent-encodes per the gRPC spec: bytes outside 0x20..0x7E and '%'. */
int grpc_percent_encode(struct strbuf *out, const char *s, size_t n);
/* Decodes in place into out (NUL-terminated); malformed escapes are kept
 * literally, as the spec asks. Returns the decoded length. */
size_t grpc_percent_decode(char *out, size_t cap, const char *s, size_t n);

/* Parses a grpc-timeout value ("1S", "250m", at most 8 digits + unit H M S m
 * u n) into nanoseconds. Returns 0, or -EINVAL when malformed. */
int grpc_timeout_parse(const char *s, size_t n, uint64_t *ns);
/* Formats a timeout for the grpc-timeout header (client side). */
void grpc_timeout_format(uint64_t ns, char out[16]);

#endif
