#include "runtime/copy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "daemon.h"
#include "extract/copy_wire.h"
#include "grpc/call.h"
#include "grpc/status.h"
#include "io/pidwait.h"
#include "runtime/container.h"
#include "runtime/idmap.h"
#include "runtime/janitor.h"
#include "runtime/mounts.h"
#include "runtime/syscalls.h"

#define READ_CHUNK (64 * 1024)
/* Client bytes waiting for the helper beyond this: take no more (HTTP/2
 * flow control holds the client back). */
#define STDIN_QUEUE_LIMIT (1u << 20)
#define HEADER_MAX (sizeof(struct copy_wire_stat) + 2 * COPY_WIRE_NAME_MAX)
#define MAX_ARGS (32 + 4 * MOUNTS_MAX)

enum copy_kind { COPY_STAT, COPY_OUT, COPY_IN };

struct copy_pipe {
  int fd;
  struct qop op;
  bool armed, eof;
};

struct copy_job {
  struct quiltd *d;
  struct grpc_call *call;          /* NULL once the client went away or was answered */
  struct container *c;             /* NULL once the container was removed */
  struct copy_job *next;           /* c->copies */
  enum copy_kind kind;
  bool offline;                    /* the helper mounts the stopped container's filesystem */
  char id[13];                     /* the container's short id, for messages */
  char work[PATH_MAX];             /* offline overlay: the helper's work dir, ours to remove */
  int pidfd;
  struct qpidwait wait;
  bool exited, killed, removed;
  siginfo_t si;
  unsigned pending;                /* ring operations in flight */
  /* The helper's stdout (stat, out): the stat record, then the archive. */
  struct copy_pipe out;
  uint8_t *buf;
  size_t held;                     /* a chunk the call could not queue yet */
  struct strbuf hdr;
  bool hdr_done;
  /* Its stdin (in): queued bytes written in order. */
  struct copy_pipe in;
  struct strbuf inq, inflight;     /* inflight is what the write in flight points into */
  bool input_done, broken;
  /* Its stderr: the verdict. */
  struct copy_pipe err;
  char errbuf[1024];
  size_t err_len;
  char sink[256];
};

static void maybe_done(struct copy_job *j);
static void pump_in(struct copy_job *j);

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void unlink_job(struct copy_job *j) {
  if (!j->c)
    return;
  for (struct copy_job **p = &j->c->copies; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  j->c = NULL;
}

static void job_free(struct copy_job *j) {
  unlink_job(j);
  close_fd(&j->pidfd);
  close_fd(&j->out.fd);
  close_fd(&j->in.fd);
  close_fd(&j->err.fd);
  if (j->work[0]) {
    struct qerr err = QERR_INIT;
    if (janitor_remove(&j->d->janitor, j->work, &err) < 0)
      log_warn("removing %s: %s", j->work, err.msg);
  }
  strbuf_free(&j->hdr);
  strbuf_free(&j->inq);
  strbuf_free(&j->inflight);
  free(j->buf);
  j->d->copies_running--;
  free(j);
}

static void kill_helper(struct copy_job *j) {
  if (!j->exited && !j->killed && j->pidfd >= 0)
    sys_pidfd_send_signal(j->pidfd, SIGKILL);
  j->killed = true;
}

/* Ends the call (if still ours) with the helper's verdict or err. */
static void answer_fail(struct copy_job *j, const struct qerr *err) {
  if (!j->call)
    return;
  grpc_call_on_cancel(j->call, NULL, NULL);
  grpc_call_set_data(j->call, NULL);
  grpc_call_fail(j->call, err);
  j->call = NULL;
}

/* ------------------------------------------------------------ pipes */

static void arm_read(struct copy_job *j, struct copy_pipe *p, void *dst, size_t n) {
  struct io_uring_sqe *sqe = qring_sqe(&j->d->ring);
  io_uring_prep_read(sqe, p->fd, dst, (unsigned)n, (uint64_t)-1);
  qop_bind(sqe, &p->op);
  p->armed = true;
  j->pending++;
}

static void arm_err(struct copy_job *j) {
  size_t room = sizeof j->errbuf - 1 - j->err_len;
  /* A verdict longer than the buffer: the rest is read and dropped. */
  arm_read(j, &j->err, room ? j->errbuf + j->err_len : j->sink, room ? room : sizeof j->sink);
}

static void on_err(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct copy_job *j = container_of(op, struct copy_job, err.op);
  j->pending--;
  j->err.armed = false;
  if (res > 0 || res == -EINTR || res == -EAGAIN) {
    if (res > 0 && j->err_len < sizeof j->errbuf - 1)
      j->err_len += (size_t)res;
    arm_err(j);
    return;
  }
  j->err.eof = true;
  close_fd(&j->err.fd);
  maybe_done(j);
}

static void arm_out(struct copy_job *j) { arm_read(j, &j->out, j->buf, READ_CHUNK); }

/* 0 when the chunk is queued (or nobody listens any more), -EAGAIN when
 * the call's queue is full: hold it until it drains. */
static int forward(struct copy_job *j, const uint8_t *p, size_t n) {
  if (!j->call)
    return 0;
  Quilt__V1__CopyChunk m = QUILT__V1__COPY_CHUNK__INIT;
  m.data = (ProtobufCBinaryData){.len = n, .data = (uint8_t *)p};
  return grpc_call_send(j->call, &m.base) == -EAGAIN ? -EAGAIN : 0;
}

static int send_stat(struct copy_job *j) {
  const uint8_t *h = strbuf_head(&j->hdr);
  struct copy_wire_stat w;
  memcpy(&w, h, sizeof w);
  char name[COPY_WIRE_NAME_MAX + 1], link[COPY_WIRE_NAME_MAX + 1];
  memcpy(name, h + sizeof w, w.name_len);
  name[w.name_len] = 0;
  memcpy(link, h + sizeof w + w.name_len, w.link_len);
  link[w.link_len] = 0;
  Quilt__V1__CopyStat st = QUILT__V1__COPY_STAT__INIT;
  st.name = name;
  st.mode = w.mode;
  st.size = w.size;
  st.mtime_ns = w.mtime_ns;
  st.is_dir = S_ISDIR(w.mode);
  st.link_target = link;
  Quilt__V1__CopyChunk m = QUILT__V1__COPY_CHUNK__INIT;
  m.stat = &st;
  return j->call ? grpc_call_send(j->call, &m.base) : 0;
}

/* The stat record's length so far known: the fixed part, then with the
 * names; -1 when malformed. */
static long header_want(const struct copy_job *j) {
  struct copy_wire_stat w;
  if (strbuf_avail(&j->hdr) < sizeof w)
    return (long)sizeof w;
  memcpy(&w, strbuf_head(&j->hdr), sizeof w);
  if (memcmp(w.magic, COPY_WIRE_MAGIC, 4) || w.name_len > COPY_WIRE_NAME_MAX ||
      w.link_len > COPY_WIRE_NAME_MAX)
    return -1;
  return (long)(sizeof w + w.name_len + w.link_len);
}

/* Collects the stat record: how many of the bytes it took, -1 when it is
 * malformed; hdr_done once whole. */
static long take_header(struct copy_job *j, const uint8_t *p, size_t n) {
  size_t used = 0;
  for (;;) {
    long want = header_want(j);
    if (want < 0)
      return -1;
    size_t have = strbuf_avail(&j->hdr);
    if (have >= sizeof(struct copy_wire_stat) && have == (size_t)want) {
      j->hdr_done = true;
      return (long)used;
    }
    if (used == n)
      return (long)used;
    size_t take = (size_t)want - have < n - used ? (size_t)want - have : n - used;
    if (strbuf_append(&j->hdr, p + used, take) < 0)
      return -1;
    used += take;
  }
}

static void on_out(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct copy_job *j = container_of(op, struct copy_job, out.op);
  j->pending--;
  j->out.armed = false;
  if (res == -EINTR || res == -EAGAIN) {
    arm_out(j);
    return;
  }
  if (res <= 0) {
    j->out.eof = true;
    close_fd(&j->out.fd);
    maybe_done(j);
    return;
  }
  const uint8_t *p = j->buf;
  size_t n = (size_t)res;
  if (!j->hdr_done) {
    long used = take_header(j, p, n);
    if (used < 0) {
      kill_helper(j);
      answer_fail(j, &(struct qerr){-EPROTO, GRPC_INTERNAL, "quilt-copy sent a malformed answer"});
    } else if (j->hdr_done && send_stat(j) < 0 && j->call) {
      kill_helper(j);
      answer_fail(j, &(struct qerr){-ENOMEM, GRPC_RESOURCE_EXHAUSTED, "cannot queue the stat"});
    }
    if (used < 0 || !j->hdr_done) {
      arm_out(j);
      return;
    }
    p += used;
    n -= (size_t)used;
  }
  if (n && forward(j, p, n) == -EAGAIN) {
    memmove(j->buf, p, n);
    j->held = n; /* read on once the call's queue drained */
    return;
  }
  arm_out(j);
}

/* The call's queue drained: send what was held and read on. */
static void on_writable(struct grpc_call *call, void *arg) {
  (void)call;
  struct copy_job *j = arg;
  if (!j->held)
    return;
  if (forward(j, j->buf, j->held) == -EAGAIN)
    return;
  j->held = 0;
  arm_out(j);
}

/* ------------------------------------------------------------ stdin */

static void on_in(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct copy_job *j = container_of(op, struct copy_job, in.op);
  j->pending--;
  j->in.armed = false;
  if (res > 0) {
    strbuf_consume(&j->inflight, (size_t)res);
  } else if (res != -EINTR && res != -EAGAIN) {
    /* The helper stopped reading (EPIPE): it refused the archive, its
     * exit says why. */
    j->broken = true;
    strbuf_reset(&j->inq);
    strbuf_reset(&j->inflight);
  }
  pump_in(j);
  maybe_done(j);
}

/* Writes what is queued; at the end of the input (or once the helper or
 * the client gave up), EOF for the helper. */
static void pump_in(struct copy_job *j) {
  if (j->in.armed || j->in.fd < 0)
    return;
  size_t queued = strbuf_avail(&j->inq) + strbuf_avail(&j->inflight);
  if (j->call && queued < STDIN_QUEUE_LIMIT)
    grpc_call_release_input(j->call);
  if (queued && !j->broken) {
    if (strbuf_avail(&j->inflight) == 0) {
      struct strbuf t = j->inflight;
      j->inflight = j->inq;
      j->inq = t;
    }
    struct io_uring_sqe *sqe = qring_sqe(&j->d->ring);
    size_t n = strbuf_avail(&j->inflight);
    io_uring_prep_write(sqe, j->in.fd, strbuf_head(&j->inflight),
                        (unsigned)(n > READ_CHUNK * 4 ? READ_CHUNK * 4 : n), (uint64_t)-1);
    qop_bind(sqe, &j->in.op);
    j->in.armed = true;
    j->pending++;
    return;
  }
  if (j->input_done || j->broken || !j->call)
    close_fd(&j->in.fd);
}

/* ------------------------------------------------------------ the end */

static void on_exited(struct qpidwait *w, const siginfo_t *si, int err) {
  (void)err;
  struct copy_job *j = container_of(w, struct copy_job, wait);
  j->pending--;
  j->exited = true;
  j->si = *si;
  maybe_done(j);
}

/* The helper's last line, without its newline. */
static const char *verdict(struct copy_job *j) {
  j->errbuf[j->err_len] = 0;
  char *nl;
  while (j->err_len && (nl = strrchr(j->errbuf, '\n')) && nl[1] == 0)
    *nl = 0;
  nl = strrchr(j->errbuf, '\n');
  return nl ? nl + 1 : j->errbuf;
}

static void answer(struct copy_job *j) {
  const char *line = verdict(j);
  struct qerr err = QERR_INIT;
  if (j->removed) {
    qerr_status(&err, GRPC_ABORTED, ECANCELED, "container %s was removed during the copy", j->id);
  } else if (j->si.si_code != CLD_EXITED) {
    qerr_status(&err, GRPC_INTERNAL, EIO, "quilt-copy was killed by signal %d", j->si.si_status);
  } else if (j->si.si_status != 0) {
    int status = j->si.si_status < GRPC_STATUS_COUNT ? j->si.si_status : GRPC_INTERNAL;
    qerr_status(&err, status, EIO, "%s%s%s", line[0] ? line : "quilt-copy failed",
                status == GRPC_NOT_FOUND ? " in container " : "",
                status == GRPC_NOT_FOUND ? j->id : "");
  } else if (j->kind != COPY_IN && !j->hdr_done) {
    qerr_status(&err, GRPC_INTERNAL, EPROTO, "quilt-copy ended without an answer");
  }
  if (err.code) {
    answer_fail(j, &err);
    return;
  }
  struct grpc_call *call = j->call;
  grpc_call_on_cancel(call, NULL, NULL);
  grpc_call_set_data(call, NULL);
  j->call = NULL;
  if (j->kind != COPY_IN) {
    grpc_call_finish(call, GRPC_OK, NULL);
    return;
  }
  unsigned long long bytes = 0, entries = 0;
  sscanf(line, "ok bytes=%llu entries=%llu", &bytes, &entries);
  Quilt__V1__CopyInResponse r = QUILT__V1__COPY_IN_RESPONSE__INIT;
  r.bytes = bytes;
  r.entries = entries;
  grpc_call_reply(call, &r.base);
}

/* Answers once the helper is gone and its output read (and queued), and
 * frees once no operation is in flight. */
static void maybe_done(struct copy_job *j) {
  bool over = j->exited && j->err.eof && (j->out.eof || j->kind == COPY_IN);
  if (over && j->call && !j->held)
    answer(j);
  if (j->pending == 0 && over)
    job_free(j);
}

static void on_cancel(struct grpc_call *call, void *arg) {
  struct copy_job *j = arg;
  grpc_call_set_data(call, NULL);
  j->call = NULL;
  kill_helper(j);
  j->broken = true;
  strbuf_reset(&j->inq);
  if (j->held) { /* nowhere to go: read (and drop) the rest */
    j->held = 0;
    arm_out(j);
  }
  pump_in(j);
}

bool copy_holds_rootfs(const struct container *c) {
  for (const struct copy_job *j = c->copies; j; j = j->next)
    if (j->offline)
      return true;
  return false;
}

void copy_container_removed(struct container *c) {
  while (c->copies) {
    struct copy_job *j = c->copies;
    c->copies = j->next;
    j->c = NULL;
    j->removed = true;
    j->broken = true;
    kill_helper(j);
    if (j->call) {
      struct qerr err = QERR_INIT;
      qerr_status(&err, GRPC_ABORTED, ECANCELED, "container %s was removed during the copy",
                  j->id);
      answer_fail(j, &err);
    }
    strbuf_reset(&j->inq);
    if (j->held) {
      j->held = 0;
      arm_out(j);
    }
    pump_in(j);
  }
}

/* ------------------------------------------------------------ start */

struct argv_b {
  char *v[MAX_ARGS + 1];
  char store[8][64];               /* numbers */
  unsigned n, nstore;
};

static void arg(struct argv_b *a, const char *s) {
  if (a->n < MAX_ARGS)
    a->v[a->n++] = (char *)s;
}

static const char *num(struct argv_b *a, const char *fmt, long long x, long long y) {
  char *s = a->store[a->nstore++ % 8];
  snprintf(s, 64, fmt, x, y);
  return s;
}

/* Where the helper finds its root; fills argv and the fds it inherits. */
struct root_plan {
  int join_fd;                     /* borrowed */
  int tree_fd;                     /* ours to close */
  char lower[PATH_MAX], at[PATH_MAX];
  struct rootfs_view view;
  struct mount_plan mounts;
};

static int plan_userns_lower(struct copy_job *j, struct container *c, struct root_plan *rp,
                             struct qerr *err) {
  const char *image = strrchr(rp->view.lower, ':');
  image = image ? image + 1 : rp->view.lower;
  size_t prefix = (size_t)(image - rp->view.lower);
  char copy[PATH_MAX];
  if (idmap_lower(&j->d->idmap, image, &rp->tree_fd, copy, err) < 0)
    return err->code;
  if (rp->tree_fd >= 0) {
    char layer[PATH_MAX];
    if (scratch_dir(&j->d->scratch, c->id, layer, err) < 0)
      return err->code;
    if (snprintf(rp->at, sizeof rp->at, "%s/lower", layer) >= (int)sizeof rp->at)
      return qerr_set(err, ENAMETOOLONG, "path too long under %s", layer);
    if (mkdir(rp->at, 0755) < 0 && errno != EEXIST)
      return qerr_errno(err, "mkdir %s", rp->at);
  }
  if (snprintf(rp->lower, sizeof rp->lower, "%.*s%s", (int)prefix, rp->view.lower,
               rp->tree_fd >= 0 ? rp->at : copy) >= (int)sizeof rp->lower)
    return qerr_set(err, ENAMETOOLONG, "overlay lowerdir too long");
  return 0;
}

static int plan_offline(struct copy_job *j, struct container *c, struct root_plan *rp,
                        struct argv_b *a, struct qerr *err) {
  bool userns = container_ns_flags(c) & CLONE_NEWUSER;
  if (container_rootfs_view(c, &rp->view, err) < 0)
    return err->code;
  struct mount_policy pol = {.root_dir = j->d->cfg.root_dir, .deny = j->d->cfg.mount_deny,
                             .n_deny = j->d->cfg.n_mount_deny};
  if (c->spec->n_mounts &&
      mounts_plan(&pol, c->spec->mounts, c->spec->n_mounts, &rp->mounts, err) < 0)
    return qerr_wrap(err, "the container's mounts");
  if (rp->view.overlay) {
    snprintf(rp->lower, sizeof rp->lower, "%s", rp->view.lower);
    if (userns && plan_userns_lower(j, c, rp, err) < 0)
      return err->code;
    /* Beside the upper dir: overlayfs wants both on one filesystem (the
     * scratch tmpfs, or the disk). */
    char layer[PATH_MAX];
    if (scratch_dir(&j->d->scratch, c->id, layer, err) < 0)
      return err->code;
    if (snprintf(j->work, sizeof j->work, "%s/copy-work-XXXXXX", layer) >= (int)sizeof j->work)
      return qerr_set(err, ENAMETOOLONG, "path too long under %s", layer);
    if (!mkdtemp(j->work)) {
      j->work[0] = 0;
      return qerr_errno(err, "creating a work directory in %s", layer);
    }
    arg(a, "--overlay");
    arg(a, rp->lower);
    arg(a, rp->view.upper);
    arg(a, j->work);
    arg(a, "--at");
    arg(a, rp->view.merged);
    if (userns)
      arg(a, "--userxattr");
    if (rp->tree_fd >= 0) {
      arg(a, "--lower-tree-fd");
      arg(a, num(a, "%lld", rp->tree_fd, 0));
      arg(a, "--lower-at");
      arg(a, rp->at);
    }
  } else {
    arg(a, "--bind-root");
    arg(a, rp->view.merged);
  }
  if (userns) {
    arg(a, "--id-shift");
    arg(a, num(a, "%lld:%lld", j->d->cfg.userns_base, j->d->cfg.userns_count));
  }
  for (size_t i = 0; i < rp->mounts.n; i++) {
    if (rp->mounts.m[i].tmpfs)
      continue; /* empty until the container runs */
    arg(a, "--mount");
    arg(a, rp->mounts.m[i].source);
    arg(a, rp->mounts.m[i].target);
    arg(a, rp->mounts.m[i].readonly ? "ro" : "rw");
  }
  j->offline = true;
  return 0;
}

static int plan_root(struct copy_job *j, struct container *c, struct root_plan *rp,
                     struct argv_b *a, struct qerr *err) {
  int ns = container_ns_flags(c);
  if (c->setup)
    return qerr_status(err, GRPC_UNAVAILABLE, EBUSY,
                       "container %s is running its setup steps; copy once it has started",
                       j->id);
  int pidfd = -1;
  if (container_is_active(c) && c->pidfd >= 0)
    pidfd = c->pidfd;
  else if (c->warm)
    pidfd = c->warm->proc.pidfd; /* its sandbox is built: the overlay is mounted there */
  if (pidfd >= 0 && (ns & CLONE_NEWNS)) {
    rp->join_fd = pidfd;
    arg(a, "--join-fd");
    arg(a, num(a, "%lld", pidfd, 0));
    if (ns & CLONE_NEWUSER)
      arg(a, "--userns");
    return 0;
  }
  if (c->state == QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_CREATED && c->pid > 0)
    return qerr_status(err, GRPC_UNAVAILABLE, EBUSY, "container %s is starting", j->id);
  for (const struct copy_job *o = c->copies; o; o = o->next)
    if (o->offline && (o->kind == COPY_IN || j->kind == COPY_IN))
      return qerr_status(err, GRPC_UNAVAILABLE, EBUSY,
                         "container %s: another copy into its filesystem is in progress",
                         j->id);
  return plan_offline(j, c, rp, a, err);
}

static int make_pipe(int p[2], struct qerr *err) {
  if (pipe2(p, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating a pipe for quilt-copy");
  return 0;
}

/* quilt-copy lives next to quiltd (the build tree, or sbindir). */
static int helper_path(char out[PATH_MAX], struct qerr *err) {
  ssize_t n = readlink("/proc/self/exe", out, PATH_MAX - 16);
  if (n < 0)
    return qerr_errno(err, "finding quiltd's directory");
  out[n] = 0;
  char *slash = strrchr(out, '/');
  strcpy(slash ? slash + 1 : out, "quilt-copy");
  return 0;
}

/* posix_spawn (a vfork and an exec: the daemon's pages are not copied);
 * the child keeps only its pipes as 0-2 and the fds argv names. */
static int spawn(struct copy_job *j, char *const argv[], int child[3], const int keep[2],
                 struct qerr *err) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSID);
  for (int i = 0; i < 3; i++)
    posix_spawn_file_actions_adddup2(&fa, child[i], i);
  for (int i = 0; i < 2; i++)
    if (keep[i] >= 0) /* the same number: its close-on-exec flag is cleared */
      posix_spawn_file_actions_adddup2(&fa, keep[i], keep[i]);
  char *const envp[] = {NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return qerr_errno(err, "starting %s", argv[0]);
  }
  /* Our child: its pid cannot be reused before we reap it. */
  j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (j->pidfd < 0) {
    int e = qerr_errno(err, "pidfd_open of quilt-copy");
    kill(pid, SIGKILL);
    return e;
  }
  return 0;
}

static struct copy_job *job_new(struct quiltd *d, struct grpc_call *call, struct container *c,
                                enum copy_kind kind) {
  struct copy_job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->d = d;
  j->call = call;
  j->kind = kind;
  j->pidfd = j->out.fd = j->in.fd = j->err.fd = -1;
  j->out.op.fn = on_out;
  j->in.op.fn = on_in;
  j->err.op.fn = on_err;
  snprintf(j->id, sizeof j->id, "%.12s", c->id);
  d->copies_running++;
  return j;
}

/* Starts the helper for c; on failure answers nothing and frees j. */
static int start(struct copy_job *j, struct container *c, const char *mode, const char *path,
                 bool follow, bool archive, struct qerr *err) {
  char helper[PATH_MAX];
  struct argv_b a = {.n = 0};
  cleanup_free struct root_plan *rp = calloc(1, sizeof *rp);
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  int child[3] = {-1, -1, -1};
  int rc = 0;
  if (!rp)
    return qerr_set(err, ENOMEM, "out of memory");
  rp->join_fd = rp->tree_fd = -1;
  if (!path || path[0] != '/') {
    rc = qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "give the path in the container as an absolute path");
    goto out;
  }
  if (helper_path(helper, err) < 0) {
    rc = err->code;
    goto out;
  }
  arg(&a, helper);
  arg(&a, mode);
  arg(&a, "--path");
  arg(&a, path);
  if (follow)
    arg(&a, "--follow");
  if (archive)
    arg(&a, "--archive");
  arg(&a, "--ppid");
  arg(&a, num(&a, "%lld", (long long)getpid(), 0));
  if ((rc = plan_root(j, c, rp, &a, err)) < 0)
    goto out;
  if (a.n >= MAX_ARGS) {
    rc = qerr_set(err, E2BIG, "too many arguments for quilt-copy");
    goto out;
  }
  if ((rc = make_pipe(errp, err)) < 0)
    goto out;
  if (j->kind == COPY_IN) {
    if ((rc = make_pipe(in, err)) < 0)
      goto out;
    child[0] = in[0];
    child[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
  } else {
    if ((rc = make_pipe(out, err)) < 0)
      goto out;
    child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    child[1] = out[1];
  }
  child[2] = errp[1];
  if (child[0] < 0 || child[1] < 0) {
    rc = qerr_errno(err, "opening /dev/null");
    goto out;
  }
  int keep[2] = {rp->join_fd, rp->tree_fd};
  if ((rc = spawn(j, a.v, child, keep, err)) < 0)
    goto out;
  j->err.fd = take_fd(&errp[0]);
  j->out.fd = take_fd(&out[0]);
  j->in.fd = take_fd(&in[1]);
out:
  for (int i = 0; i < 2; i++) {
    close_fd(&in[i]);
    close_fd(&out[i]);
    close_fd(&errp[i]);
  }
  if (j->kind == COPY_IN)
    close_fd(&child[1]);
  else
    close_fd(&child[0]);
  close_fd(&rp->tree_fd);
  if (rc < 0)
    return rc;
  j->c = c;
  j->next = c->copies;
  c->copies = j;
  j->buf = j->kind == COPY_IN ? NULL : malloc(READ_CHUNK);
  arm_err(j);
  if (j->kind != COPY_IN) {
    if (!j->buf) { /* the helper is running: let it go */
      kill_helper(j);
      j->out.eof = true;
      close_fd(&j->out.fd);
    } else {
      arm_out(j);
    }
  }
  qpidwait_arm(&j->wait, &j->d->ring, j->pidfd, on_exited);
  j->pending++;
  log_debug("copy %s container %s %s%s", mode, j->id, path, j->offline ? " (stopped)" : "");
  return 0;
}

static void fail_new(struct copy_job *j, struct grpc_call *call, const struct qerr *err) {
  j->call = NULL;
  if (j->work[0])
    rmdir(j->work); /* made, never used */
  j->work[0] = 0;
  job_free(j);
  grpc_call_fail(call, err);
}

void copy_out_rpc(struct grpc_call *call, const Quilt__V1__CopyOutRequest *req) {
  struct quiltd *d = grpc_call_daemon(call);
  struct qerr err = QERR_INIT;
  struct container *c = container_lookup(d, req->container, &err);
  if (!c) {
    grpc_call_fail(call, &err);
    return;
  }
  struct copy_job *j = job_new(d, call, c, req->stat_only ? COPY_STAT : COPY_OUT);
  if (!j) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (start(j, c, req->stat_only ? "stat" : "out", req->path, req->follow_link, false, &err) < 0) {
    fail_new(j, call, &err);
    return;
  }
  grpc_call_on_cancel(call, on_cancel, j);
  grpc_call_on_writable(call, on_writable, j);
}

void copy_in_input(struct grpc_call *call, const Quilt__V1__CopyInChunk *in) {
  struct copy_job *j = grpc_call_data_of(call);
  if (!j) {
    if (grpc_call_finished(call))
      return;
    struct quiltd *d = grpc_call_daemon(call);
    struct qerr err = QERR_INIT;
    if (!in->container[0]) {
      grpc_call_finish(call, GRPC_INVALID_ARGUMENT,
                       "the first CopyInChunk must name the container and the directory");
      return;
    }
    struct container *c = container_lookup(d, in->container, &err);
    if (!c) {
      grpc_call_fail(call, &err);
      return;
    }
    if (!(j = job_new(d, call, c, COPY_IN))) {
      grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    if (start(j, c, "in", in->path, false, in->archive, &err) < 0) {
      fail_new(j, call, &err);
      return;
    }
    grpc_call_set_data(call, j);
    grpc_call_on_cancel(call, on_cancel, j);
    grpc_call_hold_input(call); /* credit returned by pump_in */
  }
  if (!j->call || j->broken || j->input_done || !in->data.len)
    return;
  if (strbuf_append(&j->inq, in->data.data, in->data.len) < 0) {
    kill_helper(j);
    answer_fail(j, &(struct qerr){-ENOMEM, GRPC_RESOURCE_EXHAUSTED, "out of memory"});
  }
  pump_in(j);
}

void copy_in_end(struct grpc_call *call) {
  struct copy_job *j = grpc_call_data_of(call);
  if (j) {
    j->input_done = true;
    pump_in(j);
  } else if (!grpc_call_finished(call)) {
    grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "CopyIn got no message");
  }
}
