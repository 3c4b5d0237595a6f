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
  char prefix[256], old[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof old);
  snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
  if (e->code == 0)
    e->code = -EIO;
  return e->code;
}

void qerr_clear(struct qerr *e) {
  e->code = 0;
  e->status = 0;
  e->msg[0] = 0;
}
