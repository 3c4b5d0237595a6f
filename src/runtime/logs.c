#include "runtime/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/call.h"
#include "runtime/container.h"
#include "runtime/logfmt.h"

#define PIPE_BUF_FALLBACK (64 * 1024)
#define READ_CHUNK (64 * 1024)
#define MAX_CHUNK_DATA (64 * 1024)
/* Room for the container dir plus "/log.1". */
#define LOG_PATH_MAX (PATH_MAX + 8)

struct log_follower {
  struct log_follower *prev, *next;
  struct container *c;
  struct grpc_call *call;
  int fd;
  off_t off;
  unsigned gen;
  bool follow;
  int filter;             /* 0: every stream */
  int64_t since_ns;
  bool blocked;           /* waiting for the call's queue to drain */
  struct strbuf pending;  /* bytes read from the file, not yet sent */
};

static void pump(struct log_follower *f);

static void log_path(const struct container *c, char *out, size_t cap, bool rotated) {
  snprintf(out, cap, "%s/log%s", c->dir, rotated ? ".1" : "");
}

int logs_open_file(const char *dir) {
  char path[PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s/log", dir) >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* ------------------------------------------------------------ writing */

static void notify(struct container *c) {
  struct log_follower *f = c->followers, *next;
  for (; f; f = next) {
    next = f->next;
    if (!f->blocked)
      pump(f);
  }
}

/* Keeps one rotated file: log.1. Followers holding the old file finish it
 * and then move on to the new one. */
static void rotate(struct container *c) {
  char cur[LOG_PATH_MAX], old[LOG_PATH_MAX];
  log_path(c, cur, sizeof cur, false);
  log_path(c, old, sizeof old, true);
  if (rename(cur, old) < 0) {
    log_warn("rotating %s: %s", cur, strerror(errno));
    return;
  }
  close(c->log_fd);
  c->log_fd = open(cur, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  c->log_size = 0;
  c->log_generation++;
}

static void append(struct container *c, enum log_stream stream, const uint8_t *p, size_t n) {
  if (c->log_fd < 0)
    return;
  struct strbuf *b = &c->d->log_scratch;
  strbuf_reset(b);
  if (logfmt_encode(b, stream, clock_real_ns(), p, n) < 0)
    return;
  size_t len = strbuf_avail(b);
  const uint8_t *data = strbuf_head(b);
  while (len > 0) {
    ssize_t w = write(c->log_fd, data, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      log_warn("writing log of %.12s: %s", c->id, strerror(errno));
      break;
    }
    data += w;
    len -= (size_t)w;
    c->log_size += (uint64_t)w;
  }
  strbuf_shrink(b, 1024 * 1024);
  uint64_t cap = c->d->cfg.log_max_bytes;
  if (cap && c->log_size >= cap)
    rotate(c);
  notify(c);
}

void logs_note(struct container *c, const char *text) {
  char line[1024];
  int n = snprintf(line, sizeof line, "quilt: %s\n", text);
  if (n > 0)
    append(c, LOG_STDERR, (const uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line);
}

void logs_setup_note(struct container *c, const char *text) {
  char line[1024];
  int n = snprintf(line, sizeof line, "quilt-setup: %s\n", text);
  if (n > 0)
    append(c, LOG_SETUP, (const uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line);
}

/* ------------------------------------------------------------ pipes */

static void arm_pipe(struct log_pipe *p) {
  struct qring *r = &p->c->d->ring;
  struct io_uring_sqe *sqe = qring_sqe(r);
  if (r->have_bufs && !p->buf) {
    io_uring_prep_read(sqe, p->fd, NULL, r->bufs.size, (uint64_t)-1);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = r->bufs.group;
  } else {
    io_uring_prep_read(sqe, p->fd, p->buf, PIPE_BUF_FALLBACK, (uint64_t)-1);
  }
  qop_bind(sqe, &p->op);
  p->armed = true;
}

static void pipe_done(struct log_pipe *p) {
  close(p->fd);
  p->fd = -1;
  free(p->buf);
  p->buf = NULL;
  if (logs_drained(p->c))
    container_logs_drained(p->c);
}

static void on_pipe(struct qop *op, int res, uint32_t flags) {
  struct log_pipe *p = container_of(op, struct log_pipe, op);
  struct qring *r = &p->c->d->ring;
  p->armed = false;
  bool provided = flags & IORING_CQE_F_BUFFER;
  uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
  if (res > 0) {
    append(p->c, p->stream, provided ? qring_buf(r, bid) : p->buf, (size_t)res);
  } else if (res == -ENOBUFS && !p->buf) {
    /* The shared pool ran dry: this pipe gets a buffer of its own. */
    p->buf = malloc(PIPE_BUF_FALLBACK);
  }
  if (provided)
    qring_buf_return(r, bid);
  if (res == 0 || (res < 0 && res != -EINTR && res != -EAGAIN && res != -ENOBUFS)) {
    pipe_done(p);
    return;
  }
  arm_pipe(p);
}

static int open_log_file(struct container *c, struct qerr *err) {
  if (c->log_fd >= 0) /* setup steps wrote to it first */
    return 0;
  char path[LOG_PATH_MAX];
  log_path(c, path, sizeof path, false);
  c->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (c->log_fd < 0)
    return qerr_errno(err, "opening log %s", path);
  struct stat st;
  c->log_size = fstat(c->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  return 0;
}

static int adopt_pipe(struct container *c, int i, int fd, struct qerr *err) {
  struct log_pipe *p = i ? &c->err : &c->out;
  *p = (struct log_pipe){.c = c, .fd = fd, .stream = i ? LOG_STDERR : LOG_STDOUT};
  p->op.fn = on_pipe;
  /* Without a provided-buffer ring each pipe reads into its own buffer. */
  if (!c->d->ring.have_bufs && !(p->buf = malloc(PIPE_BUF_FALLBACK)))
    return qerr_set(err, ENOMEM, "allocating a log buffer");
  return 0;
}

int logs_adopt(struct container *c, int read_fds[2], struct qerr *err) {
  for (int i = 0; i < 2; i++) {
    int fd = read_fds[i];
    read_fds[i] = -1;
    if (adopt_pipe(c, i, fd, err) < 0)
      return err->code;
  }
  return open_log_file(c, err);
}

int logs_pipes(int read_fds[2], int write_fds[2], struct qerr *err) {
  for (int i = 0; i < 2; i++) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
      int e = errno;
      for (int j = 0; j < i; j++) {
        close(read_fds[j]);
        close(write_fds[j]);
      }
      errno = e;
      return qerr_errno(err, "creating the %s pipe", i ? "stderr" : "stdout");
    }
    /* A roomier pipe lets a chatty container run ahead of the daemon. */
    fcntl(fds[1], F_SETPIPE_SZ, 1024 * 1024);
    read_fds[i] = fds[0];
    write_fds[i] = fds[1];
  }
  return 0;
}

int logs_open(struct container *c, int child_fds[2], struct qerr *err) {
  int rd[2];
  if (logs_pipes(rd, child_fds, err) < 0)
    return err->code;
  return logs_adopt(c, rd, err);
}

void logs_start(struct container *c) {
  if (c->out.fd >= 0)
    arm_pipe(&c->out);
  if (c->err.fd >= 0)
    arm_pipe(&c->err);
}

bool logs_idle(const struct container *c) { return !c->out.armed && !c->err.armed; }

bool logs_drained(const struct container *c) {
  return c->out.fd < 0 && c->err.fd < 0 && !c->out.armed && !c->err.armed;
}

static void finish_follower(struct log_follower *f, int status, const char *msg);

void logs_close(struct container *c) {
  struct log_pipe *pipes[2] = {&c->out, &c->err};
  for (int i = 0; i < 2; i++) {
    if (pipes[i]->fd >= 0 && !pipes[i]->armed) {
      close(pipes[i]->fd);
      pipes[i]->fd = -1;
    }
    free(pipes[i]->buf);
    pipes[i]->buf = NULL;
  }
  if (c->log_fd >= 0)
    close(c->log_fd);
  c->log_fd = -1;
  while (c->followers)
    finish_follower(c->followers, GRPC_OK, NULL);
}

void logs_complete(struct container *c) {
  if (c->log_fd >= 0) {
    close(c->log_fd);
    c->log_fd = -1;
  }
  notify(c);
}

/* ------------------------------------------------------------ followers */

static void unlink_follower(struct log_follower *f) {
  if (f->c) {
    if (f->prev)
      f->prev->next = f->next;
    else
      f->c->followers = f->next;
    if (f->next)
      f->next->prev = f->prev;
  }
  if (f->fd >= 0)
    close(f->fd);
  strbuf_free(&f->pending);
  free(f);
}

static void finish_follower(struct log_follower *f, int status, const char *msg) {
  struct grpc_call *call = f->call;
  grpc_call_on_cancel(call, NULL, NULL);
  unlink_follower(f);
  if (msg)
    grpc_call_finish(call, status, "%s", msg);
  else
    grpc_call_finish(call, status, NULL);
}

static void on_follower_cancel(struct grpc_call *call, void *arg) {
  (void)call;
  unlink_follower(arg);
}

static void on_writable(struct grpc_call *call, void *arg) {
  (void)call;
  struct log_follower *f = arg;
  if (f->blocked) {
    f->blocked = false;
    pump(f);
  }
}

/* The source is finished once the container exited and its pipes closed. */
static bool source_done(const struct container *c) {
  bool ended = c->state == QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_EXITED ||
               c->state == QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_FAILED;
  return ended && logs_drained(c) && c->log_fd < 0;
}

/* Sends the complete entries in f->pending as few LogChunks as possible.
 * Returns 1 when blocked by backpressure, 0 otherwise. */
static int send_pending(struct log_follower *f) {
  struct strbuf data = STRBUF_INIT;
  for (;;) {
    size_t avail = strbuf_avail(&f->pending), used = 0;
    if (avail == 0)
      break;
    const uint8_t *p = strbuf_head(&f->pending);
    struct log_entry e;
    Quilt__V1__LogChunk chunk = QUILT__V1__LOG_CHUNK__INIT;
    strbuf_reset(&data);
    long n = 0;
    while (strbuf_avail(&data) < MAX_CHUNK_DATA &&
           (n = logfmt_parse(p + used, avail - used, &e)) > 0) {
      bool wanted = (!f->filter || (int)e.stream == f->filter) && e.ts_ns >= f->since_ns;
      /* One stream and one read (timestamp) per chunk, so --timestamps
       * stays exact while bursts still travel in few messages. */
      if (wanted && strbuf_avail(&data) > 0 &&
          ((int)e.stream != (int)chunk.stream || e.ts_ns != chunk.timestamp_ns))
        break;
      used += (size_t)n;
      if (!wanted)
        continue;
      if (strbuf_avail(&data) == 0) {
        chunk.stream = (Quilt__V1__LogStream)e.stream;
        chunk.timestamp_ns = e.ts_ns;
      }
      strbuf_append(&data, e.data, e.len);
      if (!e.partial)
        strbuf_append(&data, "\n", 1);
      chunk.complete = !e.partial;
    }
    if (n < 0 && used == 0) {
      /* A corrupt line: skip to the next newline rather than stall. */
      const uint8_t *nl = memchr(p, '\n', avail);
      strbuf_consume(&f->pending, nl ? (size_t)(nl - p) + 1 : avail);
      continue;
    }
    if (used == 0)
      break;
    if (strbuf_avail(&data) > 0) {
      chunk.data.data = (uint8_t *)strbuf_head(&data);
      chunk.data.len = strbuf_avail(&data);
      int rc = grpc_call_send(f->call, &chunk.base);
      if (rc == -EAGAIN) {
        f->blocked = true;
        strbuf_free(&data);
        return 1;
      }
    }
    strbuf_consume(&f->pending, used);
  }
  strbuf_free(&data);
  return 0;
}

static int reopen_current(struct log_follower *f) {
  char path[LOG_PATH_MAX];
  log_path(f->c, path, sizeof path, false);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  close(f->fd);
  f->fd = fd;
  f->off = 0;
  f->gen = f->c->log_generation;
  return 0;
}

static void pump(struct log_follower *f) {
  for (unsigned round = 0; round < 64; round++) {
    if (send_pending(f))
      return;
    uint8_t *dst = strbuf_tail(&f->pending, READ_CHUNK);
    ssize_t n = dst ? pread(f->fd, dst, READ_CHUNK, f->off) : -1;
    if (n > 0) {
      strbuf_commit(&f->pending, (size_t)n);
      f->off += n;
      continue;
    }
    if (n < 0) {
      finish_follower(f, GRPC_INTERNAL, "reading the log failed");
      return;
    }
    if (f->gen != f->c->log_generation && reopen_current(f) == 0)
      continue;
    if (!f->follow || source_done(f->c))
      finish_follower(f, GRPC_OK, NULL);
    return; /* caught up: notify() resumes us */
  }
  /* Bounded work per turn; the queue drained callback or the next write
   * brings us back. */
  f->blocked = true;
}

/* Offset where the last `n` entries of the file begin. */
static off_t tail_offset(int fd, unsigned n) {
  struct stat st;
  if (fstat(fd, &st) < 0 || n == 0)
    return 0;
  off_t pos = st.st_size;
  uint8_t buf[8192];
  unsigned seen = 0;
  bool first = true;
  while (pos > 0) {
    size_t len = pos < (off_t)sizeof buf ? (size_t)pos : sizeof buf;
    pos -= (off_t)len;
    if (pread(fd, buf, len, pos) != (ssize_t)len)
      return 0;
    for (size_t i = len; i-- > 0;) {
      if (buf[i] != '\n')
        continue;
      if (first && pos + (off_t)i == st.st_size - 1) {
        first = false; /* the final newline ends the last entry */
        continue;
      }
      if (++seen == n)
        return pos + (off_t)i + 1;
    }
    first = false;
  }
  return 0;
}

void logs_stream_rpc(struct grpc_call *call, struct container *c,
                     const Quilt__V1__StreamLogsRequest *req) {
  char path[LOG_PATH_MAX];
  /* A full replay starts with the rotated generation when there is one;
   * reaching its end moves the follower on to the current file. */
  log_path(c, path, sizeof path, true);
  int fd = req->tail ? -1 : open(path, O_RDONLY | O_CLOEXEC);
  bool rotated = fd >= 0;
  if (!rotated) {
    log_path(c, path, sizeof path, false);
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 && errno != ENOENT) {
    grpc_call_finish(call, GRPC_INTERNAL, "opening %s: %s", path, strerror(errno));
    return;
  }
  if (fd < 0 && (!req->follow || source_done(c))) {
    grpc_call_finish(call, GRPC_OK, NULL); /* never produced output */
    return;
  }
  bool missing = fd < 0;
  if (missing) /* not written yet: read nothing until the file appears */
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  struct log_follower *f = calloc(1, sizeof *f);
  if (!f) {
    close(fd);
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  *f = (struct log_follower){.c = c, .call = call, .fd = fd, .follow = req->follow,
                             .filter = req->stream, .since_ns = req->since_ns,
                             .gen = c->log_generation - (missing || rotated ? 1 : 0)};
  f->off = tail_offset(fd, req->tail);
  f->next = c->followers;
  if (c->followers)
    c->followers->prev = f;
  c->followers = f;
  grpc_call_on_cancel(call, on_follower_cancel, f);
  grpc_call_on_writable(call, on_writable, f);
  pump(f);
}
