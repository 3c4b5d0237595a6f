#include "runtime/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
 * default in most gRPC libraries): more is asked for with streaming exec. */
#define MAX_OUTPUT_LIMIT (16u << 20)
#define READ_CHUNK 65536

struct exec_stream {
  struct exec_run *run;
  int fd;
  struct qop op;
  struct strbuf data;
  uint8_t buf[READ_CHUNK];
  bool eof;
};

struct exec_run {
  struct quiltd *d;
  struct grpc_call *call;      /* NULL once the client went away */
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
  /* stdin: written once, then closed */
  int in_fd;
  struct qop in_op;
  uint8_t *in_data;
  size_t in_len, in_off;
  unsigned pending;            /* ring operations in flight */
};

static void maybe_done(struct exec_run *r);

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void run_free(struct exec_run *r) {
  close_fd(&r->pidfd);
  close_fd(&r->status_fd);
  close_fd(&r->out.fd);
  close_fd(&r->err.fd);
  close_fd(&r->in_fd);
  strbuf_free(&r->out.data);
  strbuf_free(&r->err.data);
  free(r->in_data);
  r->d->execs_running--;
  free(r);
}

/* ------------------------------------------------------------ output */

static void arm_read(struct exec_stream *s) {
  struct io_uring_sqe *sqe = qring_sqe(&s->run->d->ring);
  io_uring_prep_read(sqe, s->fd, s->buf, sizeof s->buf, (uint64_t)-1);
  qop_bind(sqe, &s->op);
  s->run->pending++;
}

static void on_read(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct exec_stream *s = container_of(op, struct exec_stream, op);
  struct exec_run *r = s->run;
  r->pending--;
  if (res > 0) {
    size_t room = r->limit - strbuf_avail(&s->data);
    size_t keep = (size_t)res < room ? (size_t)res : room;
    if (keep < (size_t)res)
      r->truncated = true; /* the rest is read and dropped: the process must not block */
    if (keep && strbuf_append(&s->data, s->buf, keep) < 0)
      r->truncated = true;
    arm_read(s);
    return;
  }
  if (res == -EINTR || res == -EAGAIN) {
    arm_read(s);
    return;
  }
  s->eof = true;
  close_fd(&s->fd);
  maybe_done(r);
}

/* ------------------------------------------------------------ stdin */

static void arm_write(struct exec_run *r) {
  struct io_uring_sqe *sqe = qring_sqe(&r->d->ring);
  io_uring_prep_write(sqe, r->in_fd, r->in_data + r->in_off, (unsigned)(r->in_len - r->in_off),
                      (uint64_t)-1);
  qop_bind(sqe, &r->in_op);
  r->pending++;
}

static void on_write(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct exec_run *r = container_of(op, struct exec_run, in_op);
  r->pending--;
  if (res > 0)
    r->in_off += (size_t)res;
  if ((res > 0 || res == -EINTR || res == -EAGAIN) && r->in_off < r->in_len) {
    arm_write(r);
    return;
  }
  /* All written, or the process stopped reading (EPIPE): EOF for it. */
  close_fd(&r->in_fd);
  maybe_done(r);
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
  maybe_done(r);
}

static void reply(struct exec_run *r) {
  struct qerr err = QERR_INIT;
  if (r->status_len && spawn_parse_failure(r->status_buf, r->status_len, &err) < 0) {
    grpc_call_fail(r->call, &err); /* never ran: command not found, bad cwd or user */
    return;
  }
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

/* Answers once the process is gone and both pipes said EOF (a background
 * child of it that keeps them open holds the answer back, as with docker
 * exec), and frees once no operation is in flight. */
static void maybe_done(struct exec_run *r) {
  if (r->call && r->exited && r->out.eof && r->err.eof && r->status_done) {
    grpc_call_on_cancel(r->call, NULL, NULL); /* the stream's close runs it even after */
    reply(r);
    r->call = NULL;
  }
  if (r->pending == 0)
    run_free(r);
}

static void on_cancel(struct grpc_call *call, void *arg) {
  (void)call;
  struct exec_run *r = arg;
  r->call = NULL; /* deadline, client cancel, shutdown: the process goes too */
  if (!r->exited && r->pidfd >= 0)
    sys_pidfd_send_signal(r->pidfd, SIGKILL);
}

/* ------------------------------------------------------------ start */

static int make_pipes(int in[2], int out[2], int errp[2], bool want_stdin, struct qerr *err) {
  in[0] = in[1] = out[0] = out[1] = errp[0] = errp[1] = -1;
  if (want_stdin ? pipe2(in, O_CLOEXEC) < 0
                 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    return qerr_errno(err, "creating the exec's stdin");
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the exec's output pipes");
  return 0;
}

static void close_all(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    close_fd(&fds[i]);
}

static struct exec_run *run_new(struct quiltd *d, const Quilt__V1__ExecRequest *req) {
  struct exec_run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->d = d;
  r->pidfd = r->status_fd = r->in_fd = r->out.fd = r->err.fd = -1;
  r->out.run = r->err.run = r;
  r->out.op.fn = r->err.op.fn = on_read;
  r->status_op.fn = on_status;
  r->in_op.fn = on_write;
  r->limit = req->output_limit_bytes ? req->output_limit_bytes : DEFAULT_OUTPUT_LIMIT;
  if (r->limit > MAX_OUTPUT_LIMIT)
    r->limit = MAX_OUTPUT_LIMIT;
  if (req->stdin.len && !(r->in_data = malloc(req->stdin.len))) {
    free(r);
    return NULL;
  }
  if (req->stdin.len)
    memcpy(r->in_data, req->stdin.data, req->stdin.len);
  r->in_len = req->stdin.len;
  d->execs_running++;
  return r;
}

static void start_io(struct exec_run *r) {
  arm_read(&r->out);
  arm_read(&r->err);
  arm_status(r);
  r->pending++;
  qpidwait_arm(&r->wait, &r->d->ring, r->pidfd, on_exited);
  if (r->in_fd >= 0)
    arm_write(r);
}

void exec_rpc(struct grpc_call *call, struct container *c, const Quilt__V1__ExecRequest *req) {
  struct qerr err = QERR_INIT;
  struct quiltd *d = grpc_call_daemon(call);
  int in[2], out[2], errp[2];
  struct exec_run *r = run_new(d, req);
  if (!r) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  struct spawn_result res;
  int child[3] = {-1, -1, -1};
  int rc = make_pipes(in, out, errp, req->stdin.len > 0, &err);
  if (rc == 0) {
    child[0] = in[0], child[1] = out[1], child[2] = errp[1];
    rc = container_exec_spawn(c, req, child, &res, &err);
  }
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&errp[1]);
  if (rc < 0) {
    close_all((int[]){in[1], out[0], errp[0]}, 3);
    run_free(r);
    grpc_call_fail(call, &err);
    return;
  }
  snprintf(r->id, sizeof r->id, "%.12s", c->id);
  r->call = call;
  r->pid = res.pid;
  r->pidfd = res.pidfd;
  r->status_fd = res.status_fd;
  r->in_fd = in[1];
  r->out.fd = out[0];
  r->err.fd = errp[0];
  grpc_call_on_cancel(call, on_cancel, r);
  log_debug("exec in container %s: pid %d", r->id, (int)r->pid);
  start_io(r);
}
