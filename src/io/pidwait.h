/* Waiting for a child's exit on the ring through its pidfd:
 * IORING_OP_WAITID where the kernel has it (6.7), else POLL_ADD on the
 * pidfd followed by waitid(P_PIDFD, WNOHANG). Either way the child is reaped
 * and `done` gets its siginfo. */
#ifndef QUILT_IO_PIDWAIT_H
#define QUILT_IO_PIDWAIT_H

#include <signal.h>
#include <stdbool.h>

#include "io/ring.h"

struct qpidwait;
/* err: 0, or a negative errno when waiting failed (si is then synthetic:
 * killed by SIGKILL). */
typedef void (*qpidwait_fn)(struct qpidwait *w, const siginfo_t *si, int err);

struct qpidwait {
  struct qop op;
  struct qring *ring;
  int pidfd;
  siginfo_t info;
  bool by_poll;
  bool armed;
  qpidwait_fn done;
};

void qpidwait_arm(struct qpidwait *w, struct qring *ring, int pidfd, qpidwait_fn done);

#endif
