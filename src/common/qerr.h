/* One error convention for all of Quilt.
 *
 * A fallible function returns 0 (or a non-negative value) on success and a
 * negative errno on failure, after filling a caller-provided struct qerr with
 * a message naming what failed. Callers add context with qerr_wrap(). The
 * struct lives on the caller's stack: no allocation, nothing to free. */
#ifndef QUILT_QERR_H
#define QUILT_QERR_H

#include <stddef.h>

struct qerr {
  int code;        /* negative errno; 0 when no error was recorded */
  int status;      /* gRPC status to answer with; 0 lets status.c derive it */
  char msg[512];
};

#define QERR_INIT {0, 0, {0}}

/* Records -err (err given as a positive or negative errno) and a message;
 * returns the negative errno so callers can `return qerr_set(...)`. */
int qerr_set(struct qerr *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like qerr_set, with an explicit gRPC status (see grpc/status.h). */
int qerr_status(struct qerr *e, int status, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records the current errno and appends strerror(errno) to the message. */
int qerr_errno(struct qerr *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes context ("creating cgroup: <old message>"); returns e->code. */
int qerr_wrap(struct qerr *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void qerr_clear(struct qerr *e);

#endif
