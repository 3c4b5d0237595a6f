#include "io/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/cleanup.h"
#include "common/log.h"

#define BUF_COUNT 256
#define BUF_SIZE (16 * 1024)
#define BUF_GROUP 1

/* Kernel versions to the features we use: multishot accept 5.19, buffer
 * rings 5.19, recv multishot 6.0, waitid 6.7. The opcode probe tells about
 * opcodes; flag-level features are inferred from newer opcodes that landed
 * in the same or an earlier release. */
static void probe(struct qring *r) {
  struct qring_features *f = &r->feat;
  struct io_uring_probe *p = io_uring_get_probe_ring(&r->ring);
  if (!p)
    return;
  f->op_read = io_uring_opcode_supported(p, IORING_OP_READ);
  f->op_send = io_uring_opcode_supported(p, IORING_OP_SEND);
  f->op_recv = io_uring_opcode_supported(p, IORING_OP_RECV);
  f->op_accept = io_uring_opcode_supported(p, IORING_OP_ACCEPT);
  f->op_timeout = io_uring_opcode_supported(p, IORING_OP_TIMEOUT);
  f->op_poll = io_uring_opcode_supported(p, IORING_OP_POLL_ADD);
  f->op_cancel = io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL);
  f->timeout_update = io_uring_opcode_supported(p, IORING_OP_TIMEOUT_REMOVE) &&
                      io_uring_opcode_supported(p, IORING_OP_RENAMEAT);
  /* IORING_OP_SOCKET arrived in 5.19 together with multishot accept. */
  f->accept_multishot = io_uring_opcode_supported(p, IORING_OP_SOCKET);
  /* IORING_OP_SEND_ZC (6.0) shipped with multishot recv. */
  f->recv_multishot = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
  /* IORING_OP_WAITID is opcode 50 (6.7); liburing 2.3 predates its name. */
  f->waitid = p->last_op >= 50 && (p->ops[50].flags & IO_URING_OP_SUPPORTED);
  io_uring_free_probe(p);
}

static int setup_bufring(struct qring *r) {
  struct qbufring *b = &r->bufs;
  size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
  void *ringmem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
                       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ringmem == MAP_FAILED)
    return -errno;
  struct io_uring_buf_reg reg = {
      .ring_addr = (uintptr_t)ringmem, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
  int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
  if (rc < 0) {
    munmap(ringmem, ring_bytes);
    return rc;
  }
  /* Anonymous memory: pages are only backed once a recv lands in them. */
  b->mem = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (b->mem == MAP_FAILED) {
    io_uring_unregister_buf_ring(&r->ring, BUF_GROUP);
    munmap(ringmem, ring_bytes);
    return -ENOMEM;
  }
  b->br = ringmem;
  b->count = BUF_COUNT;
  b->size = BUF_SIZE;
  b->mask = io_uring_buf_ring_mask(BUF_COUNT);
  b->group = BUF_GROUP;
  io_uring_buf_ring_init(b->br);
  for (unsigned i = 0; i < BUF_COUNT; i++)
    io_uring_buf_ring_add(b->br, b->mem + (size_t)i * BUF_SIZE, BUF_SIZE, (uint16_t)i, b->mask,
                          (int)i);
  io_uring_buf_ring_advance(b->br, BUF_COUNT);
  return 0;
}

int qring_init(struct qring *r, unsigned entries, bool compat, struct qerr *err) {
  memset(r, 0, sizeof *r);
  struct io_uring_params params = {0};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 8;
  int rc = io_uring_queue_init_params(entries, &r->ring, &params);
  if (rc < 0) {
    /* Kernels without CQSIZE (pre 5.5) get the default CQ size. */
    memset(&params, 0, sizeof params);
    rc = io_uring_queue_init_params(entries, &r->ring, &params);
  }
  if (rc < 0)
    return qerr_set(err, rc, "io_uring_queue_init(%u entries): %s", entries, strerror(-rc));
  probe(r);
  if (compat) {
    r->feat.accept_multishot = r->feat.recv_multishot = r->feat.waitid = false;
    return 0;
  }
  if (setup_bufring(r) == 0) {
    r->have_bufs = true;
    r->feat.buf_ring = true;
  }
  return 0;
}

void qring_exit(struct qring *r) {
  if (r->have_bufs) {
    io_uring_unregister_buf_ring(&r->ring, r->bufs.group);
    munmap(r->bufs.br, r->bufs.count * sizeof(struct io_uring_buf));
    munmap(r->bufs.mem, (size_t)r->bufs.count * r->bufs.size);
    r->have_bufs = false;
  }
  io_uring_queue_exit(&r->ring);
}

struct io_uring_sqe *qring_sqe(struct qring *r) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  while (UNLIKELY(!sqe)) {
    io_uring_submit(&r->ring);
    r->pending = 0;
    sqe = io_uring_get_sqe(&r->ring);
  }
  r->pending++;
  io_uring_sqe_set_data(sqe, NULL);
  return sqe;
}

int qring_run_once(struct qring *r) {
  int rc = io_uring_submit_and_wait(&r->ring, 1);
  r->pending = 0;
  if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY)
    return rc;
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  /* Handlers may queue new SQEs; they are submitted on the next round. */
  io_uring_for_each_cqe(&r->ring, head, cqe) {
    struct qop *op = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    uint32_t flags = cqe->flags;
    n++;
    io_uring_cq_advance(&r->ring, 1);
    if (op)
      op->fn(op, res, flags);
  }
  return (int)n;
}

uint8_t *qring_buf(struct qring *r, uint16_t bid) {
  return r->bufs.mem + (size_t)bid * r->bufs.size;
}

void qring_buf_return(struct qring *r, uint16_t bid) {
  struct qbufring *b = &r->bufs;
  io_uring_buf_ring_add(b->br, qring_buf(r, bid), b->size, bid, b->mask, 0);
  io_uring_buf_ring_advance(b->br, 1);
}

unsigned qring_feature_names(const struct qring *r, const char **out, unsigned max) {
  const struct qring_features *f = &r->feat;
  struct { bool on; const char *name; } all[] = {
      {f->accept_multishot, "accept_multishot"}, {f->recv_multishot, "recv_multishot"},
      {f->buf_ring, "provided_buffer_ring"},     {f->waitid, "waitid"},
      {f->timeout_update, "timeout_update"},     {f->op_send, "send"},
      {f->op_recv, "recv"},                      {f->op_read, "read"},
      {f->op_poll, "poll_add"},                  {f->op_cancel, "async_cancel"},
  };
  unsigned n = 0;
  for (unsigned i = 0; i < ARRAY_SIZE(all) && n < max; i++)
    if (all[i].on)
      out[n++] = all[i].name;
  return n;
}
