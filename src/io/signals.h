/* SIGTERM/SIGINT (and SIGHUP) arrive through a signalfd read on the ring. */
#ifndef QUILT_IO_SIGNALS_H
#define QUILT_IO_SIGNALS_H

#include <sys/signalfd.h>

#include "common/qerr.h"
#include "io/ring.h"

struct qsignals {
  struct qop op;
  int fd;
  struct signalfd_siginfo info;
  struct qring *ring;
  void (*on_signal)(struct qsignals *s, int signo);
};

int qsignals_init(struct qsignals *s, struct qring *ring,
                  void (*on_signal)(struct qsignals *s, int signo), struct qerr *err);
void qsignals_close(struct qsignals *s);

#endif
