#include "runtime/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/status.h"
#include "io/pidwait.h"
#include "runtime/container.h"
#include "runtime/spawn.h"
#include "runtime/syscalls.h"

#define DEFAULT_OUTPUT_LIMIT (1u << 20)
/* A unary answer must fit the client's message size limit (4 MiB by
 * default in most gRPC libraries): more is for ExecStream. */
#define MAX_OUTPUT_LIMIT (16u << 20)
#define READ_CHUNK 65536
/* Streamed stdin waiting for the process beyond this: stop taking more
 * from the client (HTTP/2 flow control holds it back). */
#define STDIN_QUEUE_LIMIT (1u << 20)

struct exec_stream {
  struct exec_run *run;
  int fd;
  bool is_err;
  struct qop op;
  uint8_t buf[READ_CHUNK];
  size_t held;                 /* streaming: a chunk the call could not queue yet */
  bool reading;                /* a read is in flight */
  struct strbuf data;          /* unary: what was captured */
  bool eof;
};

struct exec_run {
  struct quiltd *d;
  struct grpc_call *call;      /* NULL once the client went away or was answered */
  bool streaming, tty;
  char id[13];                 /* the container's short id, for the log */
  pid_t pid;
  int pidfd;
  struct qpidwait wait;
  bool exited;
  int exit_code, signal;
  /* The status pipe: EOF once execve succeeded, else a failure record. */
  int status_fd;
  struct qop status_op;
  uint8_t status_buf[sizeof(struct spawn_failure)];
  size_t status_len;
  bool status_done;
  struct exec_stream out, err;
  size_t limit;
  bool truncated;
  /* stdin: queued bytes written in order; on a terminal it is the pty. */
  int in_fd;
  struct qop in_op;
  struct strbuf inq;           /* waiting */
  struct strbuf in_inflight;   /* what the write in flight hands over: never
                                  touched (or moved by a realloc) meanwhile */
  bool in_armed, in_close;
  struct qtimer tty_grace;     /* after the exit: stop waiting for the terminal */
  unsigned pending;            /* ring operations in flight */
};

static void maybe_done(struct exec_run *r);

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void run_free(struct exec_run *r) {
  qtimer_cancel(&r->d->timers, &r->tty_grace);
  close_fd(&r->pidfd);
  close_fd(&r->status_fd);
  close_fd(&r->out.fd);
  close_fd(&r->err.fd);
  close_fd(&r->in_fd);
  strbuf_free(&r->out.data);
  strbuf_free(&r->err.data);
  strbuf_free(&r->inq);
  strbuf_free(&r->in_inflight);
  r->d->execs_running--;
  free(r);
}

/* ------------------------------------------------------------ output */

static void arm_read(struct exec_stream *s) {
  struct io_uring_sqe *sqe = qring_sqe(&s->run->d->ring);
  io_uring_prep_read(sqe, s->fd, s->buf, sizeof s->buf, (uint64_t)-1);
  qop_bind(sqe, &s->op);
  s->reading = true;
  s->run->pending++;
}

static void capture(struct exec_stream *s, size_t n) {
  struct exec_run *r = s->run;
  size_t room = r->limit - strbuf_avail(&s->data);
  size_t keep = n < room ? n : room;
  if (keep < n)
    r->truncated = true; /* the rest is read and dropped: the process must not block */
  if (keep && strbuf_append(&s->data, s->buf, keep) < 0)
    r->truncated = true;
}

/* Streaming: 0 when the chunk is queued (or nobody listens any more),
 * -EAGAIN when the call's queue is full: hold it until it drains. */
static int forward(struct exec_stream *s, size_t n) {
  struct exec_run *r = s->run;
  if (!r->call)
    return 0;
  Quilt__V1__ExecOutput o = QUILT__V1__EXEC_OUTPUT__INIT;
  ProtobufCBinaryData *b = s->is_err ? &o.stderr : &o.stdout;
  *b = (ProtobufCBinaryData){.data = s->buf, .len = n};
  int rc = grpc_call_send(r->call, &o.base);
  return rc == -EAGAIN ? rc : 0;
}

static void on_read(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct exec_stream *s = container_of(op, struct exec_stream, op);
  struct exec_run *r = s->run;
  r->pending--;
  s->reading = false;
  if (res == -EINTR || res == -EAGAIN) {
    arm_read(s);
    return;
  }
  if (res > 0) {
    if (!r->streaming)
      capture(s, (size_t)res);
    else if (forward(s, (size_t)res) == -EAGAIN) {
      s->held = (size_t)res; /* read on once the call's queue drained */
      return;
    }
    arm_read(s);
    return;
  }
  s->eof = true; /* EOF, or EIO from a pty whose last holder went away */
  if (!r->tty || s != &r->out)
    close_fd(&s->fd);
  maybe_done(r);
}

/* The call's queue drained: send what was held and read on. */
static void on_writable(struct grpc_call *call, void *arg) {
  (void)call;
  struct exec_run *r = arg;
  struct exec_stream *ss[] = {&r->out, &r->err};
  for (size_t i = 0; i < 2; i++) {
    struct exec_stream *s = ss[i];
    if (!s->held)
      continue;
    if (forward(s, s->held) == -EAGAIN)
      return;
    s->held = 0;
    arm_read(s);
  }
  maybe_done(r);
}

/* ------------------------------------------------------------ stdin */

static void arm_write(struct exec_run *r) {
  if (strbuf_avail(&r->in_inflight) == 0) {
    struct strbuf t = r->in_inflight;
    r->in_inflight = r->inq;
    r->inq = t;
  }
  struct io_uring_sqe *sqe = qring_sqe(&r->d->ring);
  io_uring_prep_write(sqe, r->in_fd, strbuf_head(&r->in_inflight),
                      (unsigned)strbuf_avail(&r->in_inflight), (uint64_t)-1);
  qop_bind(sqe, &r->in_op);
  r->in_armed = true;
  r->pending++;
}

/* Writes what is queued; at the end of stdin, EOF for the process: its
 * pipe closed, or on a terminal the end-of-file character. */
static void pump_stdin(struct exec_run *r) {
  if (r->in_armed || r->in_fd < 0)
    return;
  size_t queued = strbuf_avail(&r->inq) + strbuf_avail(&r->in_inflight);
  /* The client's bytes are credited (HTTP/2 flow control) only while
   * little waits here: a process that reads slowly slows the client. */
  if (r->streaming && r->call && queued < STDIN_QUEUE_LIMIT)
    grpc_call_release_input(r->call);
  if (queued) {
    arm_write(r);
    return;
  }
  if (r->in_close && !r->tty)
    close_fd(&r->in_fd);
}

static void on_write(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct exec_run *r = container_of(op, struct exec_run, in_op);
  r->pending--;
  r->in_armed = false;
  if (res > 0)
    strbuf_consume(&r->in_inflight, (size_t)res);
  else if (res != -EINTR && res != -EAGAIN) {
    strbuf_reset(&r->inq); /* the process stopped reading (EPIPE): drop the rest */
    strbuf_reset(&r->in_inflight);
    r->in_close = true;
    if (!r->tty)
      close_fd(&r->in_fd);
  }
  pump_stdin(r);
  maybe_done(r);
}

static void queue_stdin(struct exec_run *r, const void *p, size_t n) {
  if (r->in_fd < 0 || r->in_close || !n)
    return;
  if (strbuf_append(&r->inq, p, n) < 0) {
    log_warn("exec in %s: out of memory queueing stdin", r->id);
    return;
  }
  pump_stdin(r);
}

static void end_stdin(struct exec_run *r) {
  if (r->in_close)
    return;
  if (r->tty)
    queue_stdin(r, "\x04", 1);
  r->in_close = true;
  pump_stdin(r);
}

/* ------------------------------------------------------------ status, exit */

static void arm_status(struct exec_run *r) {
  struct io_uring_sqe *sqe = qring_sqe(&r->d->ring);
  io_uring_prep_read(sqe, r->status_fd, r->status_buf + r->status_len,
                     (unsigned)(sizeof r->status_buf - r->status_len), (uint64_t)-1);
  qop_bind(sqe, &r->status_op);
  r->pending++;
}

static void on_status(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct exec_run *r = container_of(op, struct exec_run, status_op);
  r->pending--;
  if (res > 0 && (r->status_len += (size_t)res) < sizeof r->status_buf) {
    arm_status(r);
    return;
  }
  if (res == -EINTR || res == -EAGAIN) {
    arm_status(r);
    return;
  }
  r->status_done = true;
  close_fd(&r->status_fd);
  maybe_done(r);
}

static void on_tty_grace(struct qtimer *t) {
  struct exec_run *r = container_of(t, struct exec_run, tty_grace);
  if (r->out.eof)
    return;
  if (r->out.reading) { /* completes with -ECANCELED: the end of the output */
    struct io_uring_sqe *sqe = qring_sqe(&r->d->ring);
    io_uring_prep_cancel(sqe, &r->out.op, 0);
    return;
  }
  r->out.held = 0; /* held for a full queue: drop it, the stream ends */
  r->out.eof = true;
  maybe_done(r);
}

static void on_exited(struct qpidwait *w, const siginfo_t *si, int err) {
  (void)err;
  struct exec_run *r = container_of(w, struct exec_run, wait);
  r->pending--;
  r->exited = true;
  if (si->si_code == CLD_EXITED) {
    r->exit_code = si->si_status;
  } else {
    r->signal = si->si_status;
    r->exit_code = 128 + si->si_status;
  }
  /* A terminal's output ends when its last holder closes it; a child the
   * command left in the background may hold it: shortly after the exit
   * (what the command printed last is read by then) stop reading. */
  if (r->tty && !r->out.eof)
    qtimer_after(&r->d->timers, &r->tty_grace, 200 * 1000000ull, on_tty_grace);
  maybe_done(r);
}

/* ------------------------------------------------------------ the answer */

static void reply_unary(struct exec_run *r) {
  Quilt__V1__ExecResponse resp = QUILT__V1__EXEC_RESPONSE__INIT;
  resp.exit_code = r->exit_code;
  resp.signal = r->signal;
  resp.stdout.data = (uint8_t *)strbuf_head(&r->out.data);
  resp.stdout.len = strbuf_avail(&r->out.data);
  resp.stderr.data = (uint8_t *)strbuf_head(&r->err.data);
  resp.stderr.len = strbuf_avail(&r->err.data);
  resp.output_truncated = r->truncated;
  grpc_call_reply(r->call, &resp.base);
}

/* 0 when the last message is queued; -EAGAIN: try again once writable. */
static int reply_stream(struct exec_run *r) {
  if (r->out.held || r->err.held)
    return -EAGAIN;
  Quilt__V1__ExecOutput o = QUILT__V1__EXEC_OUTPUT__INIT;
  o.exited = true;
  o.exit_code = r->exit_code;
  o.signal = r->signal;
  int rc = grpc_call_send(r->call, &o.base);
  if (rc == -EAGAIN)
    return rc;
  grpc_call_finish(r->call, GRPC_OK, NULL);
  return 0;
}

/* Answers once the process is gone and its output ended (a background
 * child that keeps the pipes open holds the answer back, as with docker
 * exec), and frees once no operation is in flight. */
static void maybe_done(struct exec_run *r) {
  bool over = r->exited && r->out.eof && r->err.eof && r->status_done;
  if (r->call && over) {
    struct qerr err = QERR_INIT;
    if (r->status_len && spawn_parse_failure(r->status_buf, r->status_len, &err) < 0) {
      grpc_call_on_cancel(r->call, NULL, NULL); /* the stream's close runs it even after */
      grpc_call_fail(r->call, &err); /* never ran: command not found, bad cwd or user */
      grpc_call_set_data(r->call, NULL);
      r->call = NULL;
    } else if (!r->streaming || reply_stream(r) == 0) {
      grpc_call_on_cancel(r->call, NULL, NULL);
      if (!r->streaming)
        reply_unary(r);
      grpc_call_set_data(r->call, NULL); /* its end of input may still come */
      r->call = NULL;
    }
  }
  if (r->pending == 0 && (over || !r->call))
    run_free(r);
}

static void on_cancel(struct grpc_call *call, void *arg) {
  struct exec_run *r = arg;
  grpc_call_set_data(call, NULL);
  r->call = NULL; /* deadline, client cancel, shutdown: the process goes too */
  if (!r->exited && r->pidfd >= 0)
    sys_pidfd_send_signal(r->pidfd, SIGKILL);
  /* Held chunks have nowhere to go: read (and drop) the rest. */
  struct exec_stream *ss[] = {&r->out, &r->err};
  for (size_t i = 0; i < 2; i++)
    if (ss[i]->held) {
      ss[i]->held = 0;
      arm_read(ss[i]);
    }
}

/* ------------------------------------------------------------ start */

static struct exec_run *run_new(struct quiltd *d, const Quilt__V1__ExecRequest *req,
                                bool streaming) {
  struct exec_run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->d = d;
  r->streaming = streaming;
  r->tty = streaming && req->tty;
  r->pidfd = r->status_fd = r->in_fd = r->out.fd = r->err.fd = -1;
  r->out.run = r->err.run = r;
  r->err.is_err = true;
  r->out.op.fn = r->err.op.fn = on_read;
  r->status_op.fn = on_status;
  r->in_op.fn = on_write;
  r->limit = req->output_limit_bytes ? req->output_limit_bytes : DEFAULT_OUTPUT_LIMIT;
  if (r->limit > MAX_OUTPUT_LIMIT)
    r->limit = MAX_OUTPUT_LIMIT;
  d->execs_running++;
  return r;
}

/* A terminal of the container's own devpts: the master for us, its peer
 * (opened through the master, never by a path the container controls) for
 * the process. */
static int open_pty(struct container *c, const Quilt__V1__ExecRequest *req, int *master,
                    int *slave, struct qerr *err) {
  *slave = -1;
  char root[64];
  snprintf(root, sizeof root, "/proc/%d/root", (int)c->pid);
  cleanup_fd int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct open_how how = {.flags = O_RDWR | O_NOCTTY | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  *master = rootfd < 0 ? -1 : sys_openat2(rootfd, "dev/pts/ptmx", &how);
  if (*master < 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, errno,
                       "container %.12s has no terminal devices (/dev/pts/ptmx): %s", c->id,
                       strerror(errno));
  int unlock = 0;
  *slave = ioctl(*master, TIOCSPTLCK, &unlock) < 0
               ? -1
               : ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) {
    int e = qerr_errno(err, "opening a terminal in container %.12s", c->id);
    close_fd(master);
    return e;
  }
  const Quilt__V1__TerminalSize *sz = req->terminal_size;
  struct winsize ws = {.ws_row = sz && sz->rows ? (unsigned short)sz->rows : 24,
                       .ws_col = sz && sz->cols ? (unsigned short)sz->cols : 80};
  ioctl(*master, TIOCSWINSZ, &ws);
  return 0;
}

/* Pipes (or a terminal) for the process; child[] are its ends. */
static int make_stdio(struct exec_run *r, struct container *c, const Quilt__V1__ExecRequest *req,
                      bool want_stdin, int child[3], struct qerr *err) {
  if (r->tty) {
    int master = -1, slave = -1;
    if (open_pty(c, req, &master, &slave, err) < 0)
      return err->code;
    r->out.fd = master;
    r->in_fd = dup(master); /* its own fd: the reads and writes close apart */
    child[0] = slave;
    child[1] = dup(slave);
    child[2] = dup(slave);
    r->err.eof = true; /* a terminal has one output */
    return r->in_fd < 0 || child[1] < 0 || child[2] < 0 ? qerr_errno(err, "dup") : 0;
  }
  int p[2];
  if (want_stdin) {
    if (pipe2(p, O_CLOEXEC) < 0)
      return qerr_errno(err, "creating the exec's stdin");
    child[0] = p[0];
    r->in_fd = p[1];
  } else if ((child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    return qerr_errno(err, "opening /dev/null");
  }
  if (pipe2(p, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the exec's stdout");
  r->out.fd = p[0], child[1] = p[1];
  if (pipe2(p, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the exec's stderr");
  r->err.fd = p[0], child[2] = p[1];
  return 0;
}

static void start_io(struct exec_run *r) {
  arm_read(&r->out);
  if (!r->err.eof)
    arm_read(&r->err);
  arm_status(r);
  r->pending++;
  qpidwait_arm(&r->wait, &r->d->ring, r->pidfd, on_exited);
  pump_stdin(r);
}

static struct exec_run *start(struct grpc_call *call, struct container *c,
                              const Quilt__V1__ExecRequest *req, bool streaming) {
  struct qerr err = QERR_INIT;
  struct exec_run *r = run_new(grpc_call_daemon(call), req, streaming);
  if (!r) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  struct spawn_result res;
  int child[3] = {-1, -1, -1};
  int rc = make_stdio(r, c, req, streaming || req->stdin.len > 0, child, &err);
  if (rc == 0)
    rc = container_exec_spawn(c, req, child, r->tty, &res, &err);
  for (int i = 0; i < 3; i++)
    close_fd(&child[i]);
  if (rc < 0) {
    run_free(r);
    grpc_call_fail(call, &err);
    return NULL;
  }
  snprintf(r->id, sizeof r->id, "%.12s", c->id);
  r->call = call;
  r->pid = res.pid;
  r->pidfd = res.pidfd;
  r->status_fd = res.status_fd;
  grpc_call_on_cancel(call, on_cancel, r);
  if (streaming) {
    grpc_call_on_writable(call, on_writable, r);
    grpc_call_hold_input(call); /* credit returned by pump_stdin */
  }
  log_debug("exec in container %s: pid %d%s", r->id, (int)r->pid, r->tty ? " (tty)" : "");
  return r;
}

void exec_rpc(struct grpc_call *call, struct container *c, const Quilt__V1__ExecRequest *req) {
  struct exec_run *r = start(call, c, req, false);
  if (!r)
    return;
  if (req->stdin.len) {
    queue_stdin(r, req->stdin.data, req->stdin.len);
    end_stdin(r);
  } else {
    r->in_close = true;
  }
  start_io(r);
}

/* ------------------------------------------------------------ streaming */

static void resize(struct exec_run *r, const Quilt__V1__TerminalSize *sz) {
  struct winsize ws = {.ws_row = (unsigned short)sz->rows, .ws_col = (unsigned short)sz->cols};
  if (r->tty && r->out.fd >= 0 && sz->rows && sz->cols)
    ioctl(r->out.fd, TIOCSWINSZ, &ws);
}

void exec_stream_input(struct grpc_call *call, const Quilt__V1__ExecInput *in) {
  struct exec_run *r = grpc_call_data_of(call);
  if (!r) {
    if (grpc_call_finished(call))
      return;
    if (!in->start) {
      grpc_call_finish(call, GRPC_INVALID_ARGUMENT,
                       "the first ExecInput must say what to run (start)");
      return;
    }
    struct qerr err = QERR_INIT;
    struct container *c = container_lookup(grpc_call_daemon(call), in->start->id, &err);
    if (!c) {
      grpc_call_fail(call, &err);
      return;
    }
    if (!(r = start(call, c, in->start, true)))
      return;
    grpc_call_set_data(call, r);
    start_io(r);
  }
  if (!r->call)
    return;
  queue_stdin(r, in->stdin.data, in->stdin.len);
  if (in->resize)
    resize(r, in->resize);
  if (in->signal > 0 && in->signal < NSIG && !r->exited)
    sys_pidfd_send_signal(r->pidfd, in->signal);
  if (in->close_stdin)
    end_stdin(r);
}

void exec_stream_end(struct grpc_call *call) {
  struct exec_run *r = grpc_call_data_of(call);
  if (r && r->call)
    end_stdin(r);
  else if (!r && !grpc_call_finished(call))
    grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "ExecStream got no start message");
}
