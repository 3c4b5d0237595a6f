#include "fuzz_daemon.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int fuzz_ctx_init(struct fuzz_ctx *f) {
  memset(f, 0, sizeof *f);
  struct quiltd *d = calloc(1, sizeof *d);
  if (!d)
    return -1;
  /* Warnings (rapid resets, bad requests) would flood the fuzzer log. */
  qlog_set_level(QLOG_ERROR);
  quiltd_default_config(&d->cfg);
  grpc_registry_init(&d->registry);
  /* Eight entries: qring_sqe submits when full, so pending TIMEOUTs stay
   * bounded; closing the ring cancels them. */
  if (io_uring_queue_init(8, &d->ring.ring, 0) < 0) {
    free(d);
    return -1;
  }
  qtimers_init(&d->timers, &d->ring);
  f->d = d;
  f->conn.d = d;
  f->conn.fd = -1;
  return 0;
}

void fuzz_ctx_free(struct fuzz_ctx *f) {
  strbuf_free(&f->conn.out);
  strbuf_free(&f->conn.inflight);
  qtimers_free(&f->d->timers);
  io_uring_queue_exit(&f->d->ring.ring);
  free(f->d);
  f->d = NULL;
}

void fuzz_ctx_drain(struct fuzz_ctx *f) {
  strbuf_consume(&f->conn.out, strbuf_avail(&f->conn.out));
  f->d->dirty = NULL;
  f->conn.dirty = false;
}

size_t fuzz_chunk_len(uint32_t *seed, size_t left) {
  *seed = *seed * 1103515245u + 12345u;
  /* Mostly small reads, sometimes a big one: both paths of every parser. */
  size_t k = (*seed >> 16) % 8 == 0 ? 4096 : ((*seed >> 16) % 61) + 1;
  return k < left ? k : left;
}
