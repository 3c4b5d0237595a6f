#include "grpc/framing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "grpc/status.h"

void grpc_deframer_init(struct grpc_deframer *d, size_t max_len, grpc_msg_fn fn, void *arg) {
  memset(d, 0, sizeof *d);
  /* 0 would reject every non-empty message; treat it as "no opinion". */
  d->max_len = max_len ? max_len : GRPC_DEFAULT_MAX_RECV;
  d->on_msg = fn;
  d->arg = arg;
}

/* Back to "expecting a prefix". The caller owns whatever d->buf held. */
static void reset_message(struct grpc_deframer *d) {
  d->hdr_len = 0;
  d->buf = NULL;
  d->msg_len = 0;
  d->got = 0;
}

static void drop_message(struct grpc_deframer *d) {
  free(d->buf);
  reset_message(d);
}

/* Validates the complete 5-byte prefix and records the message length. */
static int parse_prefix(struct grpc_deframer *d, struct qerr *err) {
  uint8_t flag = d->hdr[0];
  uint32_t len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
                 (uint32_t)d->hdr[3] << 8 | (uint32_t)d->hdr[4];
  if (flag > 1) {
    reset_message(d);
    return qerr_status(err, GRPC_INTERNAL, EPROTO,
                       "invalid compressed flag 0x%02x in message prefix", flag);
  }
  if (len > d->max_len) {
    reset_message(d);
    return qerr_status(err, GRPC_RESOURCE_EXHAUSTED, EMSGSIZE,
                       "received message of %u bytes exceeds the limit of %zu", len, d->max_len);
  }
  d->msg_len = len;
  return 0;
}

/* Hands a complete message to the callback. State is reset first so the
 * deframer is consistent even if the callback fails. */
static int deliver(struct grpc_deframer *d, const uint8_t *msg) {
  bool compressed = d->hdr[0] == 1;
  size_t len = d->msg_len;
  reset_message(d);
  return d->on_msg(d->arg, msg, len, compressed);
}

static int deliver_buffered(struct grpc_deframer *d) {
  cleanup_free uint8_t *buf = d->buf;
  return deliver(d, buf);
}

/* Consumes prefix bytes; returns how many were taken. */
static size_t take_prefix(struct grpc_deframer *d, const uint8_t *p, size_t n) {
  size_t k = GRPC_FRAME_HEADER - d->hdr_len;
  if (k > n)
    k = n;
  memcpy(d->hdr + d->hdr_len, p, k);
  d->hdr_len += k;
  return k;
}

/* Consumes body bytes into d->buf; allocated once, at the announced size. */
static int take_body(struct grpc_deframer *d, const uint8_t *p, size_t n, size_t *used,
                     struct qerr *err) {
  if (!d->buf) {
    d->buf = malloc(d->msg_len);
    if (!d->buf) {
      size_t len = d->msg_len;
      reset_message(d);
      return qerr_status(err, GRPC_RESOURCE_EXHAUSTED, ENOMEM,
                         "allocating %zu bytes for a message", len);
    }
  }
  size_t k = d->msg_len - d->got;
  if (k > n)
    k = n;
  memcpy(d->buf + d->got, p, k);
  d->got += k;
  *used = k;
  return 0;
}

/* A negative callback return is passed through; the error is recorded
 * unless the callback already did so through this same qerr. */
static int callback_failed(int r, struct qerr *err) {
  if (r < 0 && err->code != r)
    qerr_set(err, r, "message handler failed");
  return r;
}

static int step_prefix(struct grpc_deframer *d, const uint8_t *p, size_t n, size_t *used,
                       struct qerr *err) {
  *used = take_prefix(d, p, n);
  if (d->hdr_len < GRPC_FRAME_HEADER)
    return 0;
  int r = parse_prefix(d, err);
  if (r == 0 && d->msg_len == 0)
    r = callback_failed(deliver(d, (const uint8_t *)""), err);
  return r;
}

/* One step of the state machine at p[0..n): consumes *used bytes. */
static int step(struct grpc_deframer *d, const uint8_t *p, size_t n, size_t *used,
                struct qerr *err) {
  if (d->hdr_len < GRPC_FRAME_HEADER)
    return step_prefix(d, p, n, used, err);
  /* Zero-copy: the whole body is in this chunk and nothing was buffered. */
  if (d->got == 0 && n >= d->msg_len) {
    *used = d->msg_len;
    return callback_failed(deliver(d, p), err);
  }
  int r = take_body(d, p, n, used, err);
  if (r == 0 && d->got == d->msg_len)
    r = callback_failed(deliver_buffered(d), err);
  return r;
}

int grpc_deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n, struct qerr *err) {
  size_t off = 0;
  while (off < n) {
    size_t used = 0;
    int r = step(d, p + off, n - off, &used, err);
    if (r < 0)
      return r;
    off += used;
  }
  return 0;
}

bool grpc_deframer_idle(const struct grpc_deframer *d) { return d->hdr_len == 0; }

void grpc_deframer_free(struct grpc_deframer *d) { drop_message(d); }

void grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER], bool compressed, uint32_t len) {
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}
