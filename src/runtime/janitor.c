#include "runtime/janitor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "runtime/cdir.h"
#include "runtime/cgroup.h"
#include "runtime/syscalls.h"

#define QUEUE_FD 3
#define JOB_MAX (PATH_MAX + 2)
/* Room for thousands of queued jobs before the daemon does one inline. */
#define QUEUE_BYTES (4 << 20)

/* An emptied cgroup may stay busy for a moment while its last task is
 * being released: retry briefly. */
static void remove_cgroup(const char *path) {
  for (int i = 0; i < 50; i++) {
    if (rmdir(path) == 0 || errno == ENOENT)
      return;
    if (errno != EBUSY)
      break;
    usleep(20000);
  }
  log_warn("janitor: removing cgroup %s: %s", path, strerror(errno));
}

static void do_job(char op, const char *path) {
  struct qerr err = QERR_INIT;
  if (op == 'D')
    remove_cgroup(path);
  else if (op == 'R' && rm_rf(path, &err) < 0)
    log_warn("janitor: %s", err.msg);
  else if (op == 'S' && cdir_recycle(path, &err) < 0)
    log_warn("janitor: %s", err.msg);
}

/* One job per message: an op byte, a path and a NUL; 'C' carries an fd
 * to close instead of a path. */
__attribute__((noreturn)) static void janitor_main(void) {
  prctl(PR_SET_NAME, "quilt-janitor");
  static char buf[JOB_MAX + 1];
  for (;;) {
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = JOB_MAX};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(QUEUE_FD, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      _exit(0);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm), sizeof fd);
      close(fd); /* 'C': what its last reference held goes with it */
      continue;
    }
    buf[n] = 0;
    do_job(buf[0], buf + 1);
  }
}

int janitor_start(struct janitor *j, struct qerr *err) {
  *j = (struct janitor){.pidfd = -1, .fd = -1};
  int p[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
    return qerr_errno(err, "creating the janitor's socket");
  int pidfd = -1;
  struct clone_args args = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd,
                            .exit_signal = SIGCHLD};
  long pid = sys_clone3(&args);
  if (pid == 0) {
    /* Keep stdio (for warnings) and the queue; nothing else of the daemon. */
    if (dup2(p[1], QUEUE_FD) < 0)
      _exit(1);
    sys_close_range(QUEUE_FD + 1, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_IGN); /* finish the queue; EOF says when */
    signal(SIGINT, SIG_IGN);
    janitor_main();
  }
  int saved = errno;
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    errno = saved;
    return qerr_errno(err, "starting the janitor");
  }
  int bytes = QUEUE_BYTES;
  if (setsockopt(p[0], SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(p[0], SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  *j = (struct janitor){.pid = (pid_t)pid, .pidfd = pidfd, .fd = p[0]};
  return 0;
}

/* A message is queued whole or not at all. */
static bool queue(struct janitor *j, char op, const char *path) {
  char rec[JOB_MAX];
  size_t len = strlen(path);
  if (j->fd < 0 || len + 2 > sizeof rec)
    return false;
  rec[0] = op;
  memcpy(rec + 1, path, len + 1);
  if (send(j->fd, rec, len + 2, MSG_NOSIGNAL) != (ssize_t)(len + 2))
    return false;
  j->queued++;
  return true;
}

bool janitor_close(struct janitor *j, int fd) {
  char op = 'C';
  char ctl[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {.iov_base = &op, .iov_len = 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                      .msg_controllen = sizeof ctl};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  bool sent = j->fd >= 0 && sendmsg(j->fd, &mh, MSG_NOSIGNAL) == 1;
  close(fd); /* the janitor has its own reference now, or we drop ours */
  if (sent)
    j->queued++;
  return sent;
}

int janitor_remove(struct janitor *j, const char *path, struct qerr *err) {
  if (queue(j, 'R', path))
    return 0;
  j->inline_done++;
  return rm_rf(path, err);
}

int janitor_recycle_dir(struct janitor *j, const char *path, struct qerr *err) {
  if (queue(j, 'S', path))
    return 0;
  j->inline_done++;
  return cdir_recycle(path, err);
}

bool janitor_rmdir_cgroup(struct janitor *j, const char *path) {
  return queue(j, 'D', path);
}

void janitor_stop(struct janitor *j) {
  if (j->fd >= 0)
    close(j->fd);
  j->fd = -1;
  if (j->pidfd >= 0) {
    siginfo_t si;
    while (waitid(P_PIDFD, (id_t)j->pidfd, &si, WEXITED) < 0 && errno == EINTR)
      ;
    close(j->pidfd);
  }
  j->pidfd = -1;
  j->pid = 0;
}

bool janitor_take_cgroup(struct janitor *j, struct cgroup *cg) {
  const char *dirs[8];
  size_t n = cgroup_dirs(cg, dirs, sizeof dirs / sizeof dirs[0]);
  if (n == 0 || !janitor_rmdir_cgroup(j, dirs[0]))
    return false;
  /* v1 hierarchies are independent: whatever the queue refuses now is
   * removed here. */
  for (size_t i = 1; i < n; i++)
    if (!janitor_rmdir_cgroup(j, dirs[i]) && rmdir(dirs[i]) < 0)
      log_warn("removing cgroup %s: %s", dirs[i], strerror(errno));
  cgroup_close(cg);
  return true;
}
