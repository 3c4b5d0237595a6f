/* Kubernetes CRI log format: "<RFC 3339 nano UTC> <stream> <F|P> <bytes>\n".
 *
 * logfmt_encode is on the output path of every container, so it scans each
 * chunk with memchr, reserves the output once, formats the timestamp once
 * and copies each entry header with a fixed-size memcpy. */
#include "runtime/logfmt.h"

#include <errno.h>
#include <string.h>

#define NS_PER_SEC 1000000000LL
#define SECS_PER_DAY 86400LL

/* "2026-11-29T04:03:03.720123456Z" */
#define TIME_LEN 30
/* TIME_LEN + ' ' + "stdout" + ' ' + tag + ' ' */
#define HDR_MAX (TIME_LEN + 1 + 6 + 1 + 1 + 1)
/* Headers are copied with this fixed size; the output reserves that much
 * slack past the last entry so the over-copy never leaves the buffer. */
#define HDR_COPY 48

_Static_assert(HDR_MAX <= HDR_COPY, "entry header fits the fixed copy");

/* ------------------------------------------------------------ time */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for every year an int64 of ns can reach. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static inline void put_digits(char *p, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

void logfmt_time(int64_t ts_ns, char out[32]) {
  /* Floor division so times before 1970 still get a fraction in [0, 1e9). */
  int64_t secs = ts_ns / NS_PER_SEC, frac = ts_ns % NS_PER_SEC;
  if (frac < 0) {
    frac += NS_PER_SEC;
    secs--;
  }
  int64_t days = secs / SECS_PER_DAY, sod = secs % SECS_PER_DAY;
  if (sod < 0) {
    sod += SECS_PER_DAY;
    days--;
  }
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  /* An int64 of ns spans 1677..2262: always four digits. */
  put_digits(out, (unsigned)y, 4);
  out[4] = '-';
  put_digits(out + 5, mo, 2);
  out[7] = '-';
  put_digits(out + 8, d, 2);
  out[10] = 'T';
  put_digits(out + 11, (unsigned)(sod / 3600), 2);
  out[13] = ':';
  put_digits(out + 14, (unsigned)(sod / 60 % 60), 2);
  out[16] = ':';
  put_digits(out + 17, (unsigned)(sod % 60), 2);
  out[19] = '.';
  put_digits(out + 20, (unsigned)frac, 9);
  out[29] = 'Z';
  out[30] = 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads exactly n digits at s[*i]; false if any is not a digit. */
static bool get_digits(const char *s, size_t len, size_t *i, int n, unsigned *v) {
  if (len - *i < (size_t)n)
    return false;
  unsigned r = 0;
  for (int k = 0; k < n; k++) {
    char c = s[*i + (size_t)k];
    if (!is_digit(c))
      return false;
    r = r * 10 + (unsigned)(c - '0');
  }
  *i += (size_t)n;
  *v = r;
  return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c) {
  if (*i >= len || s[*i] != c)
    return false;
  (*i)++;
  return true;
}

static unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return dm[m - 1];
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM). 'T' and 'Z'
 * may be lower case. Leap seconds (:60) are rejected. */
int logfmt_parse_time(const char *s, size_t n, int64_t *ts_ns) {
  size_t i = 0;
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0;
  if (!get_digits(s, n, &i, 4, &y) || !expect(s, n, &i, '-') ||
      !get_digits(s, n, &i, 2, &mo) || !expect(s, n, &i, '-') ||
      !get_digits(s, n, &i, 2, &d))
    return -EINVAL;
  if (i >= n || (s[i] != 'T' && s[i] != 't'))
    return -EINVAL;
  i++;
  if (!get_digits(s, n, &i, 2, &h) || !expect(s, n, &i, ':') ||
      !get_digits(s, n, &i, 2, &mi) || !expect(s, n, &i, ':') ||
      !get_digits(s, n, &i, 2, &sec))
    return -EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
    return -EINVAL;
  if (i < n && s[i] == '.') {
    i++;
    int digits = 0;
    while (i < n && is_digit(s[i])) {
      if (++digits > 9)
        return -EINVAL;
      frac = frac * 10 + (unsigned)(s[i] - '0');
      i++;
    }
    if (digits == 0)
      return -EINVAL;
    for (; digits < 9; digits++)
      frac *= 10;
  }
  int64_t offset = 0;
  if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < n && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i] == '-' ? -1 : 1;
    unsigned oh = 0, om = 0;
    i++;
    if (!get_digits(s, n, &i, 2, &oh) || !expect(s, n, &i, ':') ||
        !get_digits(s, n, &i, 2, &om) || oh > 23 || om > 59)
      return -EINVAL;
    offset = sign * (int64_t)(oh * 3600 + om * 60);
  } else {
    return -EINVAL;
  }
  if (i != n)
    return -EINVAL;

  /* Local time minus offset is UTC. Years are 0..9999 here, so seconds fit
   * easily; only the conversion to ns can overflow. */
  int64_t secs = days_from_civil(y, mo, d) * SECS_PER_DAY + (int64_t)(h * 3600 + mi * 60 + sec) -
                 offset;
  int64_t ns, fns = (int64_t)frac;
  /* Near INT64_MIN, secs * 1e9 alone would overflow: borrow a second. */
  if (secs < 0 && fns > 0) {
    secs++;
    fns -= NS_PER_SEC;
  }
  if (__builtin_mul_overflow(secs, NS_PER_SEC, &ns) ||
      __builtin_add_overflow(ns, fns, &ns))
    return -ERANGE;
  *ts_ns = ns;
  return 0;
}

/* ------------------------------------------------------------ encode */

static const char *stream_name(enum log_stream s, size_t *n) {
  switch (s) {
  case LOG_STDOUT:
    *n = 6;
    return "stdout";
  case LOG_STDERR:
    *n = 6;
    return "stderr";
  case LOG_SETUP:
    *n = 5;
    return "setup";
  }
  return NULL;
}

/* One entry: header (tag patched in), data, '\n'. */
static inline uint8_t *put_entry(uint8_t *p, const char *hdr, size_t hlen, char tag,
                                 const uint8_t *data, size_t n) {
  memcpy(p, hdr, HDR_COPY);
  p[hlen - 2] = (uint8_t)tag;
  p += hlen;
  memcpy(p, data, n);
  p += n;
  *p++ = '\n';
  return p;
}

int logfmt_encode(struct strbuf *out, enum log_stream stream, int64_t ts_ns, const uint8_t *data,
                  size_t len) {
  size_t slen;
  const char *sname = stream_name(stream, &slen);
  if (!sname)
    return -EINVAL;
  if (len == 0)
    return 0;
  if (len > SIZE_MAX / 64)
    return -ENOMEM;

  char hdr[HDR_COPY];
  memset(hdr, 0, sizeof hdr);
  logfmt_time(ts_ns, hdr);
  size_t hlen = TIME_LEN;
  hdr[hlen++] = ' ';
  memcpy(hdr + hlen, sname, slen);
  hlen += slen;
  hdr[hlen++] = ' ';
  hdr[hlen++] = 'F';
  hdr[hlen++] = ' ';

  /* Pass 1: count the newlines. Every entry either ends at one of them, is
   * the trailing fragment, or is a split of a line longer than the maximum,
   * which bounds the entry count without looking at line lengths. */
  const uint8_t *end = data + len;
  size_t nl = 0;
  for (const uint8_t *q = data; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
    nl++;
  size_t entries_max = nl + 1 + len / LOGFMT_MAX_LINE;
  size_t cap = entries_max * (hlen + 1) + (len - nl) + HDR_COPY;
  uint8_t *o = strbuf_tail(out, cap);
  if (!o)
    return -ENOMEM;
  uint8_t *start = o;

  /* Pass 2: write. */
  const uint8_t *p = data;
  while (p < end) {
    const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((e ? e : end) - p);
    /* Longer than the maximum: P pieces of the maximum size; the last
     * piece (possibly a full one) is F if the line was complete. */
    while (__builtin_expect(n > LOGFMT_MAX_LINE, 0)) {
      o = put_entry(o, hdr, hlen, 'P', p, LOGFMT_MAX_LINE);
      p += LOGFMT_MAX_LINE;
      n -= LOGFMT_MAX_LINE;
    }
    if (!e) {
      o = put_entry(o, hdr, hlen, 'P', p, n);
      break;
    }
    o = put_entry(o, hdr, hlen, 'F', p, n);
    p = e + 1;
  }
  strbuf_commit(out, (size_t)(o - start));
  return 0;
}

/* ------------------------------------------------------------ parse */

long logfmt_parse(const uint8_t *buf, size_t len, struct log_entry *e) {
  if (len == 0)
    return 0;
  const uint8_t *nl = memchr(buf, '\n', len);
  if (!nl)
    return 0;
  const uint8_t *end = nl;

  const uint8_t *sp = memchr(buf, ' ', (size_t)(end - buf));
  if (!sp)
    return -EINVAL;
  int64_t ts;
  if (logfmt_parse_time((const char *)buf, (size_t)(sp - buf), &ts) < 0)
    return -EINVAL;

  const uint8_t *s = sp + 1;
  sp = memchr(s, ' ', (size_t)(end - s));
  if (!sp)
    return -EINVAL;
  size_t slen = (size_t)(sp - s);
  enum log_stream stream;
  if (slen == 6 && memcmp(s, "stdout", 6) == 0)
    stream = LOG_STDOUT;
  else if (slen == 6 && memcmp(s, "stderr", 6) == 0)
    stream = LOG_STDERR;
  else if (slen == 5 && memcmp(s, "setup", 5) == 0)
    stream = LOG_SETUP;
  else
    return -EINVAL;

  const uint8_t *t = sp + 1;
  if (end - t < 2 || (t[0] != 'F' && t[0] != 'P') || t[1] != ' ')
    return -EINVAL;

  e->ts_ns = ts;
  e->stream = stream;
  e->partial = t[0] == 'P';
  e->data = t + 2;
  e->len = (size_t)(end - (t + 2));
  return (long)(nl - buf) + 1;
}
