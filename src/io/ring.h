/* The daemon's one io_uring ring. Every submission carries a pointer to a
 * struct qop embedded in the object that owns the operation; its `fn` is the
 * typed completion handler. A NULL user_data marks fire-and-forget ops
 * (cancels, timeout updates) whose completions are dropped. */
#ifndef QUILT_IO_RING_H
#define QUILT_IO_RING_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "common/qerr.h"

struct qop;
/* res is cqe->res, flags cqe->flags (IORING_CQE_F_MORE, buffer ids, ...). */
typedef void (*qop_fn)(struct qop *op, int res, uint32_t flags);

struct qop {
  qop_fn fn;
};

/* What the running kernel offers, probed once at start. */
struct qring_features {
  bool accept_multishot;
  bool recv_multishot;
  bool buf_ring;
  bool waitid;
  bool timeout_update;
  bool op_read, op_send, op_recv, op_accept, op_timeout, op_poll, op_cancel;
};

/* Provided buffers shared by every connection's recv, so an idle connection
 * holds no receive buffer at all. */
struct qbufring {
  struct io_uring_buf_ring *br;
  uint8_t *mem;
  unsigned count, size, mask;
  uint16_t group;
};

struct qring {
  struct io_uring ring;
  struct qring_features feat;
  struct qbufring bufs;
  bool have_bufs;
  unsigned pending;   /* SQEs prepared but not submitted */
};

/* compat: behave as on kernel 5.15 (no multishot accept/recv, no buffer
 * rings, no waitid) whatever this kernel offers, so the fallbacks are tested. */
int qring_init(struct qring *r, unsigned entries, bool compat, struct qerr *err);
void qring_exit(struct qring *r);

/* Returns an SQE, submitting what is queued when the SQ is full. Never NULL
 * for a ring that is alive: it retries after flushing. */
struct io_uring_sqe *qring_sqe(struct qring *r);
static inline void qop_bind(struct io_uring_sqe *sqe, struct qop *op) {
  io_uring_sqe_set_data(sqe, op);
}

/* Submits queued SQEs, waits for at least one completion (or a signal) and
 * dispatches every available CQE. Returns the number handled or -errno. */
int qring_run_once(struct qring *r);

/* Buffer ring: pointer to provided buffer `bid`, and giving it back. */
uint8_t *qring_buf(struct qring *r, uint16_t bid);
void qring_buf_return(struct qring *r, uint16_t bid);

/* Appends the probed feature names ("accept_multishot", ...) to out[],
 * returns how many were written (at most max). */
unsigned qring_feature_names(const struct qring *r, const char **out, unsigned max);

#endif
