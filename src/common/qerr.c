#include "common/qerr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int neg(int err) { return err > 0 ? -err : (err == 0 ? -EIO : err); }

int qerr_set(struct qerr *e, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = neg(err);
  e->status = 0;
  return e->code;
}

int qerr_status(struct qerr *e, int status, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = neg(err);
  e->status = status;
  return e->code;
}

int qerr_errno(struct qerr *e, const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof e->msg)
    snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(saved));
  e->code = neg(saved);
  e->status = 0;
  return e->code;
}

int qerr_wrap(struct qerr *e, const char *fmt, ...) {
  char prefix[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
  va_end(ap);
  size_t plen = n < 0 ? 0 : strlen(prefix);
  memcpy(prefix + plen, ": ", 3);
  plen += 2;
  /* Shift the old message right to make room, truncating its tail. */
  size_t old = strnlen(e->msg, sizeof e->msg - 1);
  if (plen + old >= sizeof e->msg)
    old = sizeof e->msg - 1 - plen;
  memmove(e->msg + plen, e->msg, old);
  memcpy(e->msg, prefix, plen);
  e->msg[plen + old] = 0;
  if (e->code == 0)
    e->code = -EIO;
  return e->code;
}

void qerr_clear(struct qerr *e) {
  e->code = 0;
  e->status = 0;
  e->msg[0] = 0;
}
