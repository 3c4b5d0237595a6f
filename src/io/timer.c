#include "io/timer.h"

#include <errno.h>
#include <stdlib.h>

#include "common/cleanup.h"
#include "common/clock.h"

static void on_timeout(struct qop *op, int res, uint32_t flags);

void qtimers_init(struct qtimers *ts, struct qring *ring) {
  *ts = (struct qtimers){.ring = ring};
  ts->op.fn = on_timeout;
}

void qtimers_free(struct qtimers *ts) {
  free(ts->heap);
  ts->heap = NULL;
  ts->len = ts->cap = 0;
}

static void place(struct qtimers *ts, size_t i, struct qtimer *t) {
  ts->heap[i] = t;
  t->slot = i + 1;
}

static void sift_up(struct qtimers *ts, size_t i) {
  struct qtimer *t = ts->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (ts->heap[parent]->deadline_ns <= t->deadline_ns)
      break;
    place(ts, i, ts->heap[parent]);
    i = parent;
  }
  place(ts, i, t);
}

static void sift_down(struct qtimers *ts, size_t i) {
  struct qtimer *t = ts->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, best = i;
    uint64_t best_ns = t->deadline_ns;
    if (l < ts->len && ts->heap[l]->deadline_ns < best_ns)
      best = l, best_ns = ts->heap[l]->deadline_ns;
    if (l + 1 < ts->len && ts->heap[l + 1]->deadline_ns < best_ns)
      best = l + 1;
    if (best == i)
      break;
    place(ts, i, ts->heap[best]);
    i = best;
  }
  place(ts, i, t);
}

static void heap_remove(struct qtimers *ts, struct qtimer *t) {
  size_t i = t->slot - 1;
  t->slot = 0;
  struct qtimer *last = ts->heap[--ts->len];
  if (i == ts->len)
    return;
  place(ts, i, last);
  sift_down(ts, i);
  sift_up(ts, last->slot - 1);
}

/* Keeps the single in-flight TIMEOUT at or before the earliest deadline. */
static void arm(struct qtimers *ts) {
  if (ts->len == 0)
    return;
  uint64_t next = ts->heap[0]->deadline_ns;
  if (ts->in_flight && ts->armed_ns <= next)
    return;
  ts->ts.tv_sec = (long long)(next / 1000000000ull);
  ts->ts.tv_nsec = (long long)(next % 1000000000ull);
  struct io_uring_sqe *sqe = qring_sqe(ts->ring);
  if (ts->in_flight && ts->ring->feat.timeout_update) {
    io_uring_prep_timeout_update(sqe, &ts->ts, (uint64_t)(uintptr_t)&ts->op, IORING_TIMEOUT_ABS);
  } else if (ts->in_flight) {
    /* No update op: cancel and re-add; the cancelled one completes with
     * -ECANCELED and is ignored because a newer one is in flight. */
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&ts->op, 0);
    sqe = qring_sqe(ts->ring);
    io_uring_prep_timeout(sqe, &ts->ts, 0, IORING_TIMEOUT_ABS);
    qop_bind(sqe, &ts->op);
  } else {
    io_uring_prep_timeout(sqe, &ts->ts, 0, IORING_TIMEOUT_ABS);
    qop_bind(sqe, &ts->op);
  }
  ts->in_flight = true;
  ts->armed_ns = next;
}

static void on_timeout(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct qtimers *ts = container_of(op, struct qtimers, op);
  if (res == -ECANCELED)
    return; /* superseded by a re-add, which is in flight */
  ts->in_flight = false;
  ts->armed_ns = 0;
  uint64_t now = clock_mono_ns();
  while (ts->len > 0 && ts->heap[0]->deadline_ns <= now) {
    struct qtimer *t = ts->heap[0];
    heap_remove(ts, t);
    t->fn(t); /* may re-schedule itself or others */
  }
  arm(ts);
}

int qtimer_at(struct qtimers *ts, struct qtimer *t, uint64_t deadline_ns, qtimer_fn fn) {
  t->fn = fn;
  t->deadline_ns = deadline_ns;
  if (t->slot) {
    sift_down(ts, t->slot - 1);
    sift_up(ts, t->slot - 1);
  } else {
    if (ts->len == ts->cap) {
      size_t cap = ts->cap ? ts->cap * 2 : 64;
      struct qtimer **h = realloc(ts->heap, cap * sizeof *h);
      if (!h)
        return -ENOMEM;
      ts->heap = h;
      ts->cap = cap;
    }
    place(ts, ts->len++, t);
    sift_up(ts, ts->len - 1);
  }
  arm(ts);
  return 0;
}

int qtimer_after(struct qtimers *ts, struct qtimer *t, uint64_t delay_ns, qtimer_fn fn) {
  return qtimer_at(ts, t, clock_mono_ns() + delay_ns, fn);
}

void qtimer_cancel(struct qtimers *ts, struct qtimer *t) {
  if (t->slot)
    heap_remove(ts, t);
  /* The armed TIMEOUT may now be early; it fires, finds nothing, re-arms. */
}
