#include "io/pidwait.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>

#include "common/cleanup.h"

static void on_cqe(struct qop *op, int res, uint32_t flags);

static void arm(struct qpidwait *w) {
  struct io_uring_sqe *sqe = qring_sqe(w->ring);
  if (w->ring->feat.waitid) {
    /* liburing 2.3 has no helper for IORING_OP_WAITID (50): by hand. */
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = 50;
    sqe->fd = w->pidfd;
    sqe->len = P_PIDFD;
    sqe->addr2 = (uint64_t)(uintptr_t)&w->info;
    sqe->file_index = WEXITED;
    w->by_poll = false;
  } else {
    io_uring_prep_poll_add(sqe, w->pidfd, POLLIN);
    w->by_poll = true;
  }
  qop_bind(sqe, &w->op);
  w->armed = true;
}

void qpidwait_arm(struct qpidwait *w, struct qring *ring, int pidfd, qpidwait_fn done) {
  w->op.fn = on_cqe;
  w->ring = ring;
  w->pidfd = pidfd;
  w->done = done;
  memset(&w->info, 0, sizeof w->info);
  arm(w);
}

static void on_cqe(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct qpidwait *w = container_of(op, struct qpidwait, op);
  w->armed = false;
  siginfo_t si = w->info;
  if (w->by_poll && res >= 0) {
    memset(&si, 0, sizeof si);
    res = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) < 0 ? -errno : 0;
    if (res == 0 && si.si_pid == 0) { /* woken before the exit was reapable */
      arm(w);
      return;
    }
  }
  if (res < 0) {
    memset(&si, 0, sizeof si);
    si.si_code = CLD_KILLED;
    si.si_status = SIGKILL;
  }
  w->done(w, &si, res < 0 ? res : 0);
}
