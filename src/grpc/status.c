#include "grpc/status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static const char *const status_names[GRPC_STATUS_COUNT] = {
    [GRPC_OK] = "OK",
    [GRPC_CANCELLED] = "CANCELLED",
    [GRPC_UNKNOWN] = "UNKNOWN",
    [GRPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [GRPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [GRPC_NOT_FOUND] = "NOT_FOUND",
    [GRPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [GRPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [GRPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [GRPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [GRPC_ABORTED] = "ABORTED",
    [GRPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [GRPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [GRPC_INTERNAL] = "INTERNAL",
    [GRPC_UNAVAILABLE] = "UNAVAILABLE",
    [GRPC_DATA_LOSS] = "DATA_LOSS",
    [GRPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *grpc_status_name(int code) {
  if (code < 0 || code >= GRPC_STATUS_COUNT)
    return "UNKNOWN";
  return status_names[code];
}

/* A switch rather than a table indexed by errno: errno values are sparse and
 * some are aliases of each other (EOPNOTSUPP/ENOTSUP, EAGAIN/EWOULDBLOCK). */
int grpc_status_from_errno(int err) {
  switch (err < 0 ? -err : err) {
  case 0:
    return GRPC_OK;
  case ENOENT:
  case ESRCH:
    return GRPC_NOT_FOUND;
  case EINVAL:
  case E2BIG:
  case ENAMETOOLONG:
    return GRPC_INVALID_ARGUMENT;
  case EEXIST:
    return GRPC_ALREADY_EXISTS;
  case EPERM:
  case EACCES:
    return GRPC_PERMISSION_DENIED;
  case ENOMEM:
  case ENOSPC:
  case EMSGSIZE:
  case EMFILE:
  case ENFILE:
  case EAGAIN:
    return GRPC_RESOURCE_EXHAUSTED;
  case EBUSY:
  case ENOTEMPTY:
  case ECHILD:
    return GRPC_FAILED_PRECONDITION;
  case ETIMEDOUT:
    return GRPC_DEADLINE_EXCEEDED;
  case ECANCELED:
    return GRPC_CANCELLED;
  case ENOSYS:
  case EOPNOTSUPP:
    return GRPC_UNIMPLEMENTED;
  case ECONNREFUSED:
  case ESHUTDOWN:
    return GRPC_UNAVAILABLE;
  default:
    return GRPC_INTERNAL;
  }
}

/* ------------------------------------------------------------------ percent */

static const char hex_upper[] = "0123456789ABCDEF";

static bool needs_escape(unsigned char c) { return c < 0x20 || c > 0x7e || c == '%'; }

int grpc_percent_encode(struct strbuf *out, const char *s, size_t n) {
  /* Worst case triples the input; reserving once keeps the loop branch-free
   * of allocation failures. */
  if (n > SIZE_MAX / 3)
    return -ENOMEM;
  uint8_t *dst = strbuf_tail(out, n * 3);
  if (!dst)
    return -ENOMEM;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!needs_escape(c)) {
      dst[w++] = c;
      continue;
    }
    dst[w++] = '%';
    dst[w++] = (uint8_t)hex_upper[c >> 4];
    dst[w++] = (uint8_t)hex_upper[c & 0xf];
  }
  strbuf_commit(out, w);
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Returns the escaped byte at s[i] ("%XX"), or -1 when it is not a complete,
 * well-formed escape and must be kept literally. */
static int escape_at(const char *s, size_t n, size_t i) {
  if (s[i] != '%' || n - i < 3)
    return -1;
  int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
  if (hi < 0 || lo < 0)
    return -1;
  return hi << 4 | lo;
}

/* The write index never passes the read index, so out may alias s. */
size_t grpc_percent_decode(char *out, size_t cap, const char *s, size_t n) {
  if (cap == 0)
    return 0;
  size_t w = 0;
  for (size_t i = 0; i < n && w + 1 < cap; i++) {
    int b = escape_at(s, n, i);
    if (b < 0) {
      out[w++] = s[i];
      continue;
    }
    out[w++] = (char)b;
    i += 2;
  }
  out[w] = 0;
  return w;
}

/* ------------------------------------------------------------------ timeout */

#define TIMEOUT_MAX_DIGITS 8

static uint64_t unit_ns(char unit) {
  switch (unit) {
  case 'H':
    return 3600ull * 1000000000ull;
  case 'M':
    return 60ull * 1000000000ull;
  case 'S':
    return 1000000000ull;
  case 'm':
    return 1000000ull;
  case 'u':
    return 1000ull;
  case 'n':
    return 1ull;
  default:
    return 0;
  }
}

int grpc_timeout_parse(const char *s, size_t n, uint64_t *ns) {
  if (n < 2 || n > TIMEOUT_MAX_DIGITS + 1)
    return -EINVAL;
  uint64_t mult = unit_ns(s[n - 1]);
  if (mult == 0)
    return -EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < n - 1; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  /* 99999999H is ~3.6e20 ns, past uint64: saturate so a huge timeout stays
   * huge instead of wrapping into a short one. */
  if (__builtin_mul_overflow(v, mult, ns))
    *ns = UINT64_MAX;
  return 0;
}

/* Largest value that fits the 8 digits the spec allows. */
#define TIMEOUT_MAX_VALUE 99999999ull

void grpc_timeout_format(uint64_t ns, char out[16]) {
  static const char units[] = "numSMH";
  for (size_t i = 0; i < sizeof units - 1; i++) {
    uint64_t div = unit_ns(units[i]);
    /* Round up: the peer's deadline must never be shorter than ours. */
    uint64_t v = ns / div + (ns % div != 0);
    if (v <= TIMEOUT_MAX_VALUE || units[i] == 'H') {
      snprintf(out, 16, "%llu%c", (unsigned long long)v, units[i]);
      return;
    }
  }
}

const char *grpc_status_digits(int code) {
  static const char *const digits[GRPC_STATUS_COUNT] = {
      "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"};
  return code >= 0 && code < GRPC_STATUS_COUNT ? digits[code] : digits[GRPC_UNKNOWN];
}
