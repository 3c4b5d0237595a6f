/* One accepted API connection: receives on the ring (provided buffers,
 * multishot where available), keeps at most one send in flight with the
 * rest coalesced behind it, detects HTTP/2 prior knowledge versus HTTP/1.1
 * from the first bytes, and closes on idle. At the connection limit a new
 * connection takes the place of the quietest one without an open stream; a
 * peer that takes none of our bytes for --send-timeout is shed. */
#ifndef QUILT_IO_CONN_H
#define QUILT_IO_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "io/ring.h"
#include "io/timer.h"

struct quiltd;
struct h2_session;
struct http1_session;

enum conn_proto { CONN_DETECT, CONN_H2, CONN_HTTP1 };

struct conn {
  struct quiltd *d;
  struct conn *prev, *next;    /* d->conns */
  struct conn *dirty_next;     /* d->dirty */
  bool dirty;
  int fd;
  bool is_tcp;                 /* accepted on --listen: calls need the token */
  enum conn_proto proto;
  struct qop recv_op, send_op;
  bool recv_armed, recv_multishot, send_armed;
  bool closing;                /* no more input; free once ops drain */
  bool close_after_flush;      /* close once queued output is sent */
  bool goaway_sent;            /* graceful close begun */
  uint8_t *rbuf;               /* only when the ring has no buffer ring */
  uint8_t detect[24];
  size_t detect_len;
  struct strbuf out;           /* queued, not yet handed to the kernel */
  struct strbuf inflight;      /* the one send in flight */
  struct qtimer idle;
  uint64_t last_active_ns;
  struct qtimer stall;         /* sheds a peer that reads nothing */
  uint64_t send_since_ns;      /* output waiting, no progress since; 0: none waiting */
  struct h2_session *h2;
  struct http1_session *h1;
};

/* Takes ownership of an accepted fd; is_tcp says which listener took it. */
void conn_accept(struct quiltd *d, int fd, bool is_tcp);
/* Queues the connection for an output flush after this completion batch. */
void conn_mark_dirty(struct conn *c);
/* Flushes every dirty connection; called by the loop after each batch. */
void conn_flush_dirty(struct quiltd *d);
/* Starts closing: stops input, tears down the protocol session. */
void conn_close(struct conn *c);
/* Graceful shutdown of one connection (GOAWAY, end streaming calls). */
void conn_shutdown(struct conn *c);
/* May this request run? Unix-socket peers always may (the socket's mode
 * decides who connects); TCP peers need the daemon's bearer token unless
 * quiltd runs without one. A refusal is counted and logged, rate-limited,
 * with the peer's address; `what` names the request for the log. */
bool conn_authorize(struct conn *c, const char *authorization, const char *what,
                    const char **why);
/* Bytes queued for the peer (backpressure signal for protocol sessions). */
static inline size_t conn_queued(const struct conn *c) {
  return strbuf_avail(&c->out) + strbuf_avail(&c->inflight);
}

#endif
