/* gRPC length-prefixed messages: a 1-byte compressed flag, a 4-byte
 * big-endian length, then the message. Message boundaries have nothing to do
 * with HTTP/2 DATA frames: a prefix may be split across frames and one frame
 * may carry several messages, so the decoder is a byte-at-a-time state
 * machine with a zero-copy path for messages that arrive whole. */
#ifndef QUILT_GRPC_FRAMING_H
#define QUILT_GRPC_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

#define GRPC_FRAME_HEADER 5
#define GRPC_DEFAULT_MAX_RECV (4u * 1024 * 1024)

/* Called once per complete message; `msg` is valid only during the call.
 * A negative return stops decoding and is returned by grpc_deframer_feed. */
typedef int (*grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len, bool compressed);

struct grpc_deframer {
  uint8_t hdr[GRPC_FRAME_HEADER];
  size_t hdr_len;     /* prefix bytes held so far */
  uint8_t *buf;       /* partial message body, when it spans chunks */
  size_t msg_len;     /* announced length of the current message */
  size_t got;         /* body bytes held so far */
  size_t max_len;     /* larger messages fail with RESOURCE_EXHAUSTED */
  grpc_msg_fn on_msg;
  void *arg;
};

void grpc_deframer_init(struct grpc_deframer *d, size_t max_len, grpc_msg_fn fn, void *arg);
/* Feeds bytes; returns 0, the callback's negative value, or -EMSGSIZE
 * (err->status = RESOURCE_EXHAUSTED) for an oversize message. */
int grpc_deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n, struct qerr *err);
/* True when no partial message is pending (a clean end of stream). */
bool grpc_deframer_idle(const struct grpc_deframer *d);
void grpc_deframer_free(struct grpc_deframer *d);

/* Writes the 5-byte prefix for a message of `len` bytes. */
void grpc_frame_header(uint8_t out[GRPC_FRAME_HEADER], bool compressed, uint32_t len);

#endif
