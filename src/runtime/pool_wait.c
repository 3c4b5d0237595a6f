/* The warm pool's waiters: requests that missed while a sandbox of their
 * rootfs was on its way (pool.h pool_wait). */
#include "runtime/pool.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon.h"
#include "runtime/pool_int.h"

/* Requests waiting for a sandbox of view i, up to `max`. */
unsigned pool_waiting_for(const struct warm_pool *p, unsigned i, unsigned max) {
  unsigned n = 0;
  const struct pool_view *v = &p->views[i];
  for (const struct pool_waiter *pw = p->waiters; pw && n < max; pw = pw->next)
    n += strcmp(pw->image_id, v->image_id) == 0 && strcmp(pw->lower, v->lower) == 0;
  return n;
}

/* A poll on a building sandbox's status pipe, which fires when it is ready
 * (or dies). Apart from the warm: a take or a discard may be done with
 * the warm before the completion comes. */
struct watch {
  struct qop op;
  struct warm_pool *p;
  struct warm *w; /* NULL once it left the pool */
};

static void on_watch(struct qop *op, int res, uint32_t flags);

void pool_watch_building(struct warm_pool *p, struct warm *w) {
  if (w->ready_seen || w->watch || w->proc.status_fd < 0 || !p->d->ring.feat.op_poll)
    return;
  struct watch *wa = calloc(1, sizeof *wa);
  if (!wa)
    return; /* a waiter times out and starts cold */
  *wa = (struct watch){.op.fn = on_watch, .p = p, .w = w};
  w->watch = wa;
  p->n_watches++;
  struct io_uring_sqe *sqe = qring_sqe(&p->d->ring);
  io_uring_prep_poll_add(sqe, w->proc.status_fd, POLLIN);
  qop_bind(sqe, &wa->op);
}

void pool_unwatch(struct warm *w) {
  if (w->watch)
    w->watch->w = NULL;
  w->watch = NULL;
}

static bool waits_for(const struct pool_waiter *pw, const struct warm *w) {
  return pool_same_rootfs(w, pw->image_id, pw->lower);
}

/* Is a sandbox pw could have on its way (asked of the zygote, or built and
 * watched until it says it is ready)? */
static bool coming_for(const struct warm_pool *p, const struct pool_waiter *pw) {
  if (p->stopped)
    return false;
  if (p->pending && !p->pending->stale && waits_for(pw, p->pending))
    return true;
  for (const struct warm *w = p->ready; w; w = w->next)
    if (w->watch && waits_for(pw, w))
      return true;
  /* None on its way yet: one will be while the pool builds that view and
   * its builds succeed (view_short counts the waiters). */
  return pool_view_of(p, pw->image_id, pw->lower) < POOL_MAX_VIEWS && !p->backoff_ns;
}

static void unqueue(struct warm_pool *p, struct pool_waiter *pw) {
  for (struct pool_waiter **pp = &p->waiters; *pp; pp = &(*pp)->next)
    if (*pp == pw) {
      *pp = pw->next;
      pw->next = NULL;
      return;
    }
}

/* Waiters for whom nothing is coming any more go on without (cold). */
void pool_settle_waiters(struct warm_pool *p) {
  struct pool_waiter **pp = &p->waiters;
  while (*pp) {
    struct pool_waiter *pw = *pp;
    if (coming_for(p, pw)) {
      pp = &pw->next;
      continue;
    }
    *pp = pw->next;
    pw->next = NULL;
    pw->fn(pw, NULL);
    pp = &p->waiters; /* fn may have queued or dropped others */
  }
}

static struct warm **link_to(struct warm_pool *p, const struct warm *w) {
  for (struct warm **pp = &p->ready; *pp; pp = &(*pp)->next)
    if (*pp == w)
      return pp;
  return NULL;
}

static void on_watch(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct watch *wa = container_of(op, struct watch, op);
  struct warm_pool *p = wa->p;
  struct warm *w = wa->w;
  p->n_watches--;
  free(wa);
  if (!w)
    return;
  w->watch = NULL;
  struct pool_waiter *pw = p->waiters;
  while (pw && !waits_for(pw, w))
    pw = pw->next;
  struct warm **pp = link_to(p, w);
  if (!pp || res < 0) { /* a take will look at it */
    pool_settle_waiters(p);
    return;
  }
  /* Ready: what a take would do first is done now, off its path (its
   * cgroup and log file opened). */
  enum spawn_state st = pool_check(p, w);
  if (st == SPAWN_BUILDING) { /* woken early: watch on */
    pool_watch_building(p, w);
    return;
  }
  if (st == SPAWN_GONE) {
    pool_unlink_ready(p, pp);
    pool_discard(p, w);
    pool_settle_waiters(p);
    return;
  }
  if (!pw) /* primed; the next take has it */
    return;
  pool_unlink_ready(p, pp);
  unqueue(p, pw);
  p->waited++;
  pw->fn(pw, w);
}

bool pool_wait(struct warm_pool *p, struct pool_waiter *pw, const char *image_id,
               const char *lower) {
  snprintf(pw->image_id, sizeof pw->image_id, "%s", image_id);
  snprintf(pw->lower, sizeof pw->lower, "%s", lower);
  pw->next = NULL;
  if (!coming_for(p, pw))
    return false;
  struct pool_waiter **pp = &p->waiters;
  while (*pp)
    pp = &(*pp)->next;
  *pp = pw; /* first come, first served */
  return true;
}

void pool_unwait(struct warm_pool *p, struct pool_waiter *pw) { unqueue(p, pw); }

void pool_return(struct warm_pool *p, struct warm *w) {
  if (p->stopped) {
    pool_discard(p, w);
    return;
  }
  pool_push_ready(p, w);
}

