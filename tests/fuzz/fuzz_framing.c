/* libFuzzer harness: the gRPC message deframer (src/grpc/framing.c).
 *
 * Input: byte 0 picks the message size limit, byte 1 seeds how the rest is
 * cut into chunks; the rest is the stream. The same stream is fed once
 * whole and once in chunks: both must deliver the same messages (lengths
 * and contents) and end in the same state, since message boundaries have
 * nothing to do with how the bytes arrive. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/framing.h"

#define MAX_MSGS 64

struct record {
  size_t n;
  size_t len[MAX_MSGS];
  uint64_t sum[MAX_MSGS];
  bool compressed[MAX_MSGS];
};

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* Stops after MAX_MSGS so a handler error is exercised too. */
static int on_msg(void *arg, const uint8_t *msg, size_t len, bool compressed) {
  struct record *r = arg;
  if (r->n == MAX_MSGS)
    return -E2BIG;
  r->len[r->n] = len;
  r->sum[r->n] = fnv1a(msg, len);
  r->compressed[r->n] = compressed;
  r->n++;
  return 0;
}

struct outcome {
  struct record rec;
  int rc;
  bool idle;
};

static void run(const uint8_t *p, size_t n, size_t max_len, uint8_t seed, bool whole,
                struct outcome *o) {
  struct grpc_deframer d;
  struct qerr err = QERR_INIT;
  memset(o, 0, sizeof *o);
  grpc_deframer_init(&d, max_len, on_msg, &o->rec);
  size_t off = 0;
  while (off < n && o->rc == 0) {
    size_t k = whole ? n - off : (size_t)(seed % 7) + 1;
    seed = (uint8_t)(seed * 33 + 7);
    if (k > n - off)
      k = n - off;
    o->rc = grpc_deframer_feed(&d, p + off, k, &err);
    off += k;
  }
  o->idle = grpc_deframer_idle(&d);
  grpc_deframer_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  static const size_t limits[] = {0, 1, 5, 16, 100, 4096, 65536};
  size_t max_len = limits[data[0] % (sizeof limits / sizeof limits[0])];
  uint8_t seed = data[1];
  data += 2;
  size -= 2;
  struct outcome whole, chunked;
  run(data, size, max_len, seed, true, &whole);
  run(data, size, max_len, seed, false, &chunked);
  if (whole.rc != chunked.rc || whole.rec.n != chunked.rec.n)
    abort();
  if (whole.rc == 0 && whole.idle != chunked.idle)
    abort();
  size_t limit = max_len ? max_len : GRPC_DEFAULT_MAX_RECV;
  for (size_t i = 0; i < whole.rec.n; i++)
    if (whole.rec.len[i] != chunked.rec.len[i] || whole.rec.sum[i] != chunked.rec.sum[i] ||
        whole.rec.compressed[i] != chunked.rec.compressed[i] || whole.rec.len[i] > limit)
      abort();
  return 0;
}
