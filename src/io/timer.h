/* Timers on the ring: a binary min-heap of deadlines with a single
 * IORING_OP_TIMEOUT armed for the earliest one (absolute CLOCK_MONOTONIC).
 * Thousands of stream deadlines and idle timers cost one in-flight SQE. */
#ifndef QUILT_IO_TIMER_H
#define QUILT_IO_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/ring.h"

struct qtimer;
typedef void (*qtimer_fn)(struct qtimer *t);

struct qtimer {
  uint64_t deadline_ns;  /* CLOCK_MONOTONIC */
  size_t slot;           /* heap index + 1; 0 when not scheduled */
  qtimer_fn fn;
};

struct qtimers {
  struct qring *ring;
  struct qtimer **heap;
  size_t len, cap;
  struct qop op;
  struct __kernel_timespec ts;
  uint64_t armed_ns;   /* deadline of the in-flight TIMEOUT; 0 when none */
  bool in_flight;
};

void qtimers_init(struct qtimers *ts, struct qring *ring);
void qtimers_free(struct qtimers *ts);

/* (Re)schedules t at an absolute monotonic deadline. Returns 0 or -ENOMEM. */
int qtimer_at(struct qtimers *ts, struct qtimer *t, uint64_t deadline_ns, qtimer_fn fn);
int qtimer_after(struct qtimers *ts, struct qtimer *t, uint64_t delay_ns, qtimer_fn fn);
void qtimer_cancel(struct qtimers *ts, struct qtimer *t);
static inline bool qtimer_pending(const struct qtimer *t) { return t->slot != 0; }

#endif
