#include "io/signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

static void arm(struct qsignals *s) {
  struct io_uring_sqe *sqe = qring_sqe(s->ring);
  io_uring_prep_read(sqe, s->fd, &s->info, sizeof s->info, 0);
  qop_bind(sqe, &s->op);
}

static void on_read(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct qsignals *s = container_of(op, struct qsignals, op);
  if (res == -ECANCELED || s->fd < 0)
    return;
  if (res == (int)sizeof s->info)
    s->on_signal(s, (int)s->info.ssi_signo);
  else if (res < 0 && res != -EINTR && res != -EAGAIN)
    log_warn("reading signalfd: %s", strerror(-res));
  if (s->fd >= 0)
    arm(s);
}

int qsignals_init(struct qsignals *s, struct qring *ring,
                  void (*on_signal)(struct qsignals *s, int signo), struct qerr *err) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
    return qerr_errno(err, "blocking signals");
  /* A peer closing mid-write must not kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
  s->fd = signalfd(-1, &set, SFD_CLOEXEC);
  if (s->fd < 0)
    return qerr_errno(err, "signalfd");
  s->ring = ring;
  s->on_signal = on_signal;
  s->op.fn = on_read;
  arm(s);
  return 0;
}

void qsignals_close(struct qsignals *s) {
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
}
