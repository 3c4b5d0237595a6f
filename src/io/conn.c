#include "io/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/auth.h"
#include "grpc/h1_session.h"
#include "grpc/h2.h"

#define FALLBACK_RBUF 16384
/* Stop pulling frames out of nghttp2 once this much is waiting for the
 * socket: the rest stays in nghttp2 and in per-call queues, bounded. */
#define PUMP_LIMIT (256 * 1024)
/* Stop reading from a peer that does not read what we send it. */
#define READ_PAUSE_LIMIT (1024 * 1024)

static const char h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void on_recv(struct qop *op, int res, uint32_t flags);
static void on_send(struct qop *op, int res, uint32_t flags);
static void on_idle(struct qtimer *t);
static void on_stall(struct qtimer *t);

static void arm_recv(struct conn *c) {
  struct qring *r = &c->d->ring;
  struct io_uring_sqe *sqe = qring_sqe(r);
  if (r->have_bufs) {
    if (r->feat.recv_multishot) {
      io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
      c->recv_multishot = true;
    } else {
      io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = r->bufs.group;
  } else {
    io_uring_prep_recv(sqe, c->fd, c->rbuf, FALLBACK_RBUF, 0);
  }
  qop_bind(sqe, &c->recv_op);
  c->recv_armed = true;
}

static void arm_idle(struct conn *c, uint64_t after_ns) {
  qtimer_after(&c->d->timers, &c->idle, after_ns, on_idle);
}

/* Connections being torn down still hold their fds; evicting more than
 * this many at once would let a flood of connects outrun the fd budget. */
#define MAX_EVICTING 64

/* The connection that has been quiet longest with no stream open: one that
 * said nothing yet, an idle HTTP/2 keep-alive, or an HTTP/1.1 one. */
static struct conn *quietest(struct quiltd *d) {
  struct conn *victim = NULL;
  unsigned closing = 0;
  for (struct conn *c = d->conns; c; c = c->next) {
    if (c->closing) {
      closing++;
      continue;
    }
    if (c->h2 && !h2_session_idle(c->h2))
      continue;
    if (!victim || c->last_active_ns < victim->last_active_ns)
      victim = c;
  }
  return closing < MAX_EVICTING ? victim : NULL;
}

/* At the limit, 10k sockets that never speak must not lock everyone out:
 * the newcomer replaces the quietest connection, if any is quiet. */
static bool make_room(struct quiltd *d) {
  if (d->n_conns < d->cfg.max_connections)
    return true;
  struct conn *victim = quietest(d);
  if (!victim)
    return false;
  log_debug("connection limit reached: closing the quietest connection");
  d->metrics.connections_evicted++;
  conn_close(victim);
  return true;
}

void conn_accept(struct quiltd *d, int fd, bool is_tcp) {
  if (d->shutting_down || !make_room(d)) {
    d->metrics.connections_rejected++;
    close(fd);
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c || (!d->ring.have_bufs && !(c->rbuf = malloc(FALLBACK_RBUF)))) {
    log_warn("out of memory accepting a connection");
    free(c);
    close(fd);
    return;
  }
  c->d = d;
  c->fd = fd;
  c->is_tcp = is_tcp;
  c->recv_op.fn = on_recv;
  c->send_op.fn = on_send;
  c->last_active_ns = clock_mono_ns();
  c->next = d->conns;
  if (d->conns)
    d->conns->prev = c;
  d->conns = c;
  d->n_conns++;
  d->metrics.connections_current++;
  d->metrics.connections_total++;
  arm_recv(c);
  /* A peer that connects and says nothing is dropped quickly. */
  arm_idle(c, d->cfg.handshake_timeout_ns);
}

void conn_mark_dirty(struct conn *c) {
  if (c->dirty)
    return;
  c->dirty = true;
  c->dirty_next = c->d->dirty;
  c->d->dirty = c;
}

static void conn_free(struct conn *c) {
  struct quiltd *d = c->d;
  if (c->prev)
    c->prev->next = c->next;
  else
    d->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  d->n_conns--;
  d->metrics.connections_current--;
  qtimer_cancel(&d->timers, &c->idle);
  qtimer_cancel(&d->timers, &c->stall);
  close(c->fd);
  strbuf_free(&c->out);
  strbuf_free(&c->inflight);
  free(c->rbuf);
  free(c);
}

static void release_protocol(struct conn *c) {
  if (c->h2) {
    h2_session_free(c->h2);
    c->h2 = NULL;
  }
  if (c->h1) {
    h1_session_free(c->h1);
    c->h1 = NULL;
  }
}

void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  release_protocol(c);
  /* Wakes any pending recv/send so their completions drain promptly. */
  shutdown(c->fd, SHUT_RDWR);
  if (c->recv_armed) {
    struct io_uring_sqe *sqe = qring_sqe(&c->d->ring);
    io_uring_prep_cancel(sqe, &c->recv_op, 0);
  }
  conn_mark_dirty(c);
}

void conn_shutdown(struct conn *c) {
  if (c->closing)
    return;
  if (c->h2) {
    c->goaway_sent = true;
    h2_session_shutdown(c->h2);
    conn_mark_dirty(c);
  } else {
    conn_close(c);
  }
}

static int start_protocol(struct conn *c, bool is_h2) {
  struct qerr err = QERR_INIT;
  int rc;
  if (is_h2) {
    c->proto = CONN_H2;
    rc = h2_session_new(c, &c->h2, &err);
  } else {
    c->proto = CONN_HTTP1;
    rc = h1_session_new(c, &c->h1, &err);
  }
  if (rc < 0)
    log_warn("connection setup: %s", err.msg);
  return rc;
}

/* Until 24 bytes have arrived we cannot tell h2c prior knowledge from an
 * HTTP/1.1 request; bytes that diverge from the preface decide at once. */
static int detect(struct conn *c, const uint8_t **p, size_t *n) {
  size_t take = sizeof h2_preface - c->detect_len;
  if (take > *n)
    take = *n;
  memcpy(c->detect + c->detect_len, *p, take);
  c->detect_len += take;
  *p += take;
  *n -= take;
  bool match = memcmp(c->detect, h2_preface, c->detect_len) == 0;
  if (match && c->detect_len < sizeof h2_preface)
    return 0; /* need more */
  if (start_protocol(c, match) < 0)
    return -1;
  return 1;
}

static int feed(struct conn *c, const uint8_t *p, size_t n) {
  if (c->proto == CONN_DETECT) {
    int rc = detect(c, &p, &n);
    if (rc <= 0)
      return rc;
    /* Replay the held bytes to the chosen protocol, then the rest. */
    int frc = c->h2 ? h2_session_recv(c->h2, c->detect, c->detect_len)
                    : h1_session_recv(c->h1, c->detect, c->detect_len);
    if (frc < 0)
      return frc;
    if (c->proto == CONN_H2)
      arm_idle(c, c->d->cfg.idle_timeout_ns);
  }
  if (n == 0)
    return 0;
  if (c->h2)
    return h2_session_recv(c->h2, p, n);
  if (c->h1)
    return h1_session_recv(c->h1, p, n);
  return -1;
}

static void on_recv(struct qop *op, int res, uint32_t flags) {
  struct conn *c = container_of(op, struct conn, recv_op);
  struct qring *r = &c->d->ring;
  if (!(flags & IORING_CQE_F_MORE)) {
    c->recv_armed = false;
    c->recv_multishot = false;
  }
  uint8_t *buf = c->rbuf;
  bool provided = flags & IORING_CQE_F_BUFFER;
  uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
  if (provided)
    buf = qring_buf(r, bid);
  if (!c->closing) {
    if (res > 0) {
      c->last_active_ns = clock_mono_ns();
      /* After a fatal protocol error the rest of the input is ignored. */
      if (!c->close_after_flush && feed(c, buf, (size_t)res) < 0)
        c->close_after_flush = true;
    } else if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -EINTR)) {
      conn_close(c); /* peer closed or reset */
    }
  }
  if (provided)
    qring_buf_return(r, bid);
  conn_mark_dirty(c);
}

static void start_send(struct conn *c) {
  if (c->send_armed || c->closing)
    return;
  if (strbuf_avail(&c->inflight) == 0) {
    if (strbuf_avail(&c->out) == 0)
      return;
    struct strbuf t = c->inflight;
    c->inflight = c->out;
    c->out = t;
  }
  struct io_uring_sqe *sqe = qring_sqe(&c->d->ring);
  io_uring_prep_send(sqe, c->fd, strbuf_head(&c->inflight), strbuf_avail(&c->inflight),
                     MSG_NOSIGNAL);
  qop_bind(sqe, &c->send_op);
  c->send_armed = true;
  if (!c->send_since_ns) { /* output waits from now on */
    c->send_since_ns = clock_mono_ns();
    qtimer_after(&c->d->timers, &c->stall, c->d->cfg.send_timeout_ns, on_stall);
  }
}

static void on_stall(struct qtimer *t) {
  struct conn *c = container_of(t, struct conn, stall);
  if (c->closing || !c->send_since_ns)
    return;
  uint64_t waited = clock_mono_ns() - c->send_since_ns;
  if (waited < c->d->cfg.send_timeout_ns) { /* it read some meanwhile */
    qtimer_after(&c->d->timers, &c->stall, c->d->cfg.send_timeout_ns - waited, on_stall);
    return;
  }
  log_warn("closing a connection whose peer read nothing for %llu s (%zu bytes waiting)",
           (unsigned long long)(waited / 1000000000ull), conn_queued(c));
  c->d->metrics.connections_stalled++;
  conn_close(c); /* a GOAWAY could not get through either */
}

static void on_send(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct conn *c = container_of(op, struct conn, send_op);
  c->send_armed = false;
  if (res < 0) {
    if (res != -EINTR && res != -EAGAIN) {
      strbuf_reset(&c->inflight);
      strbuf_reset(&c->out);
      conn_close(c);
    }
  } else {
    strbuf_consume(&c->inflight, (size_t)res);
    if (res > 0 || conn_queued(c) == 0)
      c->send_since_ns = conn_queued(c) ? clock_mono_ns() : 0;
    /* Idle connections should not pin large buffers. */
    strbuf_shrink(&c->inflight, 64 * 1024);
  }
  conn_mark_dirty(c);
}

static bool want_close(struct conn *c) {
  if (c->close_after_flush)
    return conn_queued(c) == 0 && !c->send_armed;
  if (c->h2 && h2_session_done(c->h2))
    return conn_queued(c) == 0 && !c->send_armed;
  return false;
}

static void flush_one(struct conn *c) {
  if (c->closing) {
    if (!c->recv_armed && !c->send_armed)
      conn_free(c);
    return;
  }
  if (c->h2 && !c->close_after_flush && conn_queued(c) < PUMP_LIMIT) {
    if (h2_session_pump(c->h2, &c->out, PUMP_LIMIT) < 0)
      c->close_after_flush = true;
  }
  start_send(c);
  if (want_close(c)) {
    conn_close(c);
    if (!c->recv_armed && !c->send_armed)
      conn_free(c);
    return;
  }
  if (!c->recv_armed && !c->close_after_flush && conn_queued(c) < READ_PAUSE_LIMIT)
    arm_recv(c);
}

void conn_flush_dirty(struct quiltd *d) {
  /* Flushing can dirty connections again (send completions are async, so
   * not here), but handlers may mark others: loop until the list is empty. */
  while (d->dirty) {
    struct conn *c = d->dirty;
    d->dirty = c->dirty_next;
    c->dirty = false;
    c->dirty_next = NULL;
    flush_one(c);
  }
}

static void on_idle(struct qtimer *t) {
  struct conn *c = container_of(t, struct conn, idle);
  if (c->closing)
    return;
  uint64_t now = clock_mono_ns();
  if (c->proto == CONN_DETECT || c->goaway_sent) {
    log_debug("closing connection: no request, or GOAWAY not honoured");
    conn_close(c);
    return;
  }
  bool busy = c->h2 && !h2_session_idle(c->h2);
  uint64_t quiet_until = c->last_active_ns + c->d->cfg.idle_timeout_ns;
  if (busy || now < quiet_until) {
    arm_idle(c, busy ? c->d->cfg.idle_timeout_ns : quiet_until - now);
    return;
  }
  log_debug("closing idle connection");
  conn_shutdown(c);
  if (c->h2)
    arm_idle(c, c->d->cfg.handshake_timeout_ns); /* hard stop if GOAWAY stalls */
}

/* "203.0.113.7:51234" or "[2001:db8::1]:51234"; only wanted for a log line. */
static void peer_name(int fd, char *out, size_t cap) {
  struct sockaddr_storage ss = {0};
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN];
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
    snprintf(out, cap, "an unknown peer");
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_in *in = (const void *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(in->sin_port));
  }
}

static const char *failure_word(enum auth_result r) {
  return r == AUTH_MISSING ? "no token" : r == AUTH_NOT_BEARER ? "not a bearer token"
                                                                : "wrong token";
}

bool conn_authorize(struct conn *c, const char *authorization, const char *what,
                    const char **why) {
  struct quiltd *d = c->d;
  if (!c->is_tcp || !d->auth.token)
    return true;
  enum auth_result r = auth_check(&d->auth, authorization);
  if (r == AUTH_OK)
    return true;
  *why = auth_result_text(r);
  d->metrics.auth_failures++;
  /* A scanner must not be able to flood the log. */
  unsigned dropped;
  if (auth_log_allow(&d->auth.log, clock_mono_ns(), &dropped)) {
    char peer[INET6_ADDRSTRLEN + 16], more[64] = "";
    peer_name(c->fd, peer, sizeof peer);
    if (dropped)
      snprintf(more, sizeof more, " (%u earlier refusals not logged)", dropped);
    log_warn("refused unauthenticated %s from %s: %s%s", what, peer, failure_word(r), more);
  }
  return false;
}
