/* A daemon context for the protocol harnesses: enough of struct quiltd for
 * an HTTP/1.1 or HTTP/2 session on one fake connection, with no listener,
 * store or runtime behind it. */
#ifndef QUILT_FUZZ_DAEMON_H
#define QUILT_FUZZ_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "io/conn.h"

struct fuzz_ctx {
  struct quiltd *d;
  struct conn conn;
};

/* Default configuration, the daemon's own method table, a small io_uring
 * (stream deadlines arm a TIMEOUT on it; nothing is ever reaped). 0 or -1. */
int fuzz_ctx_init(struct fuzz_ctx *f);
void fuzz_ctx_free(struct fuzz_ctx *f);

/* The daemon's loop would send c->out; the fuzzer's peer reads it all. */
void fuzz_ctx_drain(struct fuzz_ctx *f);

/* Splits input into chunks whose sizes come from a seed, like reads. */
size_t fuzz_chunk_len(uint32_t *seed, size_t left);

#endif
