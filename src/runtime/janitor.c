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
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "runtime/cgroup.h"
#include "runtime/syscalls.h"

#define QUEUE_FD 3

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
}

/* Jobs arrive as an op byte, a path and a NUL; a read may end in the
 * middle of one. */
__attribute__((noreturn)) static void janitor_main(void) {
  prctl(PR_SET_NAME, "quilt-janitor");
  static char buf[65536 + PATH_MAX];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(QUEUE_FD, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      _exit(0);
    have += (size_t)n;
    size_t start = 0;
    char *nul;
    while ((nul = memchr(buf + start, 0, have - start))) {
      do_job(buf[start], buf + start + 1);
      start = (size_t)(nul - buf) + 1;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof buf) /* no NUL in a full buffer: not ours */
      have = 0;
  }
}

int janitor_start(struct janitor *j, struct qerr *err) {
  *j = (struct janitor){.pidfd = -1, .fd = -1};
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the janitor's pipe");
  int pidfd = -1;
  struct clone_args args = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd,
                            .exit_signal = SIGCHLD};
  long pid = sys_clone3(&args);
  if (pid == 0) {
    /* Keep stdio (for warnings) and the queue; nothing else of the daemon. */
    if (dup2(p[0], QUEUE_FD) < 0)
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
  close(p[0]);
  if (pid < 0) {
    close(p[1]);
    errno = saved;
    return qerr_errno(err, "starting the janitor");
  }
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  *j = (struct janitor){.pid = (pid_t)pid, .pidfd = pidfd, .fd = p[1]};
  return 0;
}

/* A write of at most PIPE_BUF bytes is all or nothing. */
static bool queue(struct janitor *j, char op, const char *path) {
  char rec[PIPE_BUF];
  size_t len = strlen(path);
  if (j->fd < 0 || len + 2 > sizeof rec)
    return false;
  rec[0] = op;
  memcpy(rec + 1, path, len + 1);
  if (write(j->fd, rec, len + 2) != (ssize_t)(len + 2))
    return false;
  j->queued++;
  return true;
}

int janitor_remove(struct janitor *j, const char *path, struct qerr *err) {
  if (queue(j, 'R', path))
    return 0;
  j->inline_done++;
  return rm_rf(path, err);
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
