#include "runtime/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/syscalls.h"

#define REQ_FDS 4   /* stdio, then the network namespace if any */
#define ANSWER_FDS 3 /* pidfd, status, ctl */
#define ANSWER_TIMEOUT_S 2

struct answer {
  int code;       /* 0 or a negative errno */
  int status;     /* the qerr's gRPC status */
  pid_t pid;
  char msg[512];
};

static ssize_t send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n) {
  char ctl[CMSG_SPACE(sizeof(int) * REQ_FDS)] = {0};
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  ssize_t r;
  do
    r = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}

/* One message and up to max fds (*n of them, close-on-exec); -1 and
 * errno, or the length (0: EOF). */
static ssize_t recv_fds(int sock, void *buf, size_t len, int flags, int *fds, size_t max,
                        size_t *n) {
  char ctl[CMSG_SPACE(sizeof(int) * REQ_FDS)];
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                      .msg_controllen = sizeof ctl};
  ssize_t r;
  do
    r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
  while (r < 0 && errno == EINTR);
  *n = 0;
  for (struct cmsghdr *c = r >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*n < max)
        fds[(*n)++] = fd;
      else
        close(fd);
    }
  }
  return r;
}

static void close_all(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

/* Serves one request: the answer, and the sandbox's fds it carries, go
 * back; the zygote keeps nothing. */
static void serve(zygote_build_fn build, void *arg, struct zygote_req *req, int *fds, size_t n) {
  struct answer a = {0};
  struct spawn_result res = {.pid = -1, .pidfd = -1, .status_fd = -1, .ctl_fd = -1};
  struct qerr err = QERR_INIT;
  if (n < 3) {
    a.code = -EBADMSG;
    snprintf(a.msg, sizeof a.msg, "zygote: a request without its stdio");
  } else {
    memcpy(req->stdio, fds, sizeof req->stdio);
    req->netns_fd = n > 3 ? fds[3] : -1;
    req->id[sizeof req->id - 1] = 0;
    req->lower[sizeof req->lower - 1] = 0;
    a.code = build(arg, req, &res, &err);
    if (a.code < 0) {
      a.status = err.status;
      snprintf(a.msg, sizeof a.msg, "%s", err.msg);
    }
    a.pid = res.pid;
  }
  close_all(fds, n);
  int out[ANSWER_FDS] = {res.pidfd, res.status_fd, res.ctl_fd};
  send_fds(ZYGOTE_FD, &a, sizeof a, out, a.code == 0 ? ANSWER_FDS : 0);
  close_all(out, ANSWER_FDS);
}

__attribute__((noreturn)) static void zygote_main(zygote_build_fn build, void *arg) {
  prctl(PR_SET_NAME, "quilt-zygote");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) /* quiltd died before the line above */
    _exit(0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGTERM, SIG_IGN); /* quiltd decides: EOF on the socket */
  signal(SIGINT, SIG_IGN);
  for (;;) {
    struct zygote_req req;
    int fds[REQ_FDS];
    size_t n;
    ssize_t r = recv_fds(ZYGOTE_FD, &req, sizeof req, 0, fds, REQ_FDS, &n);
    if (r <= 0)
      _exit(0);
    if ((size_t)r != sizeof req) {
      close_all(fds, n);
      continue;
    }
    serve(build, arg, &req, fds, n);
  }
}

int zygote_start(struct zygote *z, zygote_build_fn build, void *arg, struct qerr *err) {
  *z = (struct zygote){.pidfd = -1, .sock = -1};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return qerr_errno(err, "creating the zygote's socket");
  int pidfd = -1;
  struct clone_args args = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd,
                            .exit_signal = SIGCHLD};
  long pid = sys_clone3(&args);
  if (pid == 0) {
    /* stdio (for warnings) and the socket; nothing else of quiltd. */
    if (dup2(sv[1], ZYGOTE_FD) < 0)
      _exit(1);
    sys_close_range(ZYGOTE_FD + 1, ~0U, 0);
    zygote_main(build, arg);
  }
  int saved = errno;
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    errno = saved;
    return qerr_errno(err, "starting the zygote");
  }
  struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  *z = (struct zygote){.pid = (pid_t)pid, .pidfd = pidfd, .sock = sv[0]};
  return 0;
}

/* A zygote that failed to talk is stopped for good: quiltd forks itself. */
static int gone(struct zygote *z, int e, const char *what, struct qerr *err) {
  z->failures++;
  log_warn("the zygote failed (%s: %s): quiltd forks sandboxes itself from now on", what,
           strerror(e));
  zygote_stop(z);
  return qerr_set(err, e, "asking the zygote for a sandbox");
}

int zygote_ask(struct zygote *z, const struct zygote_req *req, struct qerr *err) {
  if (z->sock < 0)
    return qerr_set(err, ENOTCONN, "no zygote");
  int fds[REQ_FDS] = {req->stdio[0], req->stdio[1], req->stdio[2], req->netns_fd};
  size_t nfds = req->netns_fd >= 0 ? 4 : 3;
  ssize_t r = send_fds(z->sock, req, sizeof *req, fds, nfds);
  if (r == (ssize_t)sizeof *req)
    return 0;
  return gone(z, r < 0 ? errno : EPROTO, "sending it a request", err);
}

int zygote_answer(struct zygote *z, bool wait, struct spawn_result *res, struct qerr *err) {
  if (z->sock < 0)
    return qerr_set(err, ENOTCONN, "no zygote");
  struct answer a;
  int got[ANSWER_FDS];
  size_t n = 0;
  ssize_t r = recv_fds(z->sock, &a, sizeof a, wait ? 0 : MSG_DONTWAIT, got, ANSWER_FDS, &n);
  if (r < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK))
    return -EAGAIN;
  if (r != (ssize_t)sizeof a) {
    close_all(got, n);
    return gone(z, r < 0 ? errno : r == 0 ? ECONNRESET : EPROTO, "reading its answer", err);
  }
  if (a.code < 0 || n != ANSWER_FDS) {
    close_all(got, n);
    z->failures++;
    a.msg[sizeof a.msg - 1] = 0;
    return qerr_status(err, a.status, a.code < 0 ? -a.code : EPROTO, "%s",
                       a.code < 0 ? a.msg : "zygote: an answer without the sandbox's fds");
  }
  z->spawned++;
  *res = (struct spawn_result){.pid = a.pid, .pidfd = got[0], .status_fd = got[1],
                               .ctl_fd = got[2]};
  return 0;
}

void zygote_stop(struct zygote *z) {
  if (z->sock >= 0)
    close(z->sock);
  z->sock = -1;
  if (z->pidfd >= 0) {
    /* It exits at EOF, within a request at most; one that hangs is killed.
     * The reaping never blocks the loop: one stuck in the kernel is left
     * (a zombie until quiltd exits) rather than waited for. */
    struct pollfd pfd = {.fd = z->pidfd, .events = POLLIN};
    if (poll(&pfd, 1, ANSWER_TIMEOUT_S * 1000) <= 0) {
      sys_pidfd_send_signal(z->pidfd, SIGKILL);
      poll(&pfd, 1, ANSWER_TIMEOUT_S * 1000);
    }
    siginfo_t si;
    waitid(P_PIDFD, (id_t)z->pidfd, &si, WEXITED | WNOHANG);
    close(z->pidfd);
  }
  z->pidfd = -1;
  z->pid = 0;
}

int zygote_abandon(struct zygote *z) {
  if (z->sock >= 0)
    close(z->sock);
  z->sock = -1;
  int pidfd = z->pidfd;
  if (pidfd >= 0)
    sys_pidfd_send_signal(pidfd, SIGKILL);
  z->pidfd = -1;
  z->pid = 0;
  return pidfd;
}
