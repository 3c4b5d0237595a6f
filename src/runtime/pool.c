#include "runtime/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "daemon.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/logs.h"
#include "runtime/syscalls.h"

#define BACKOFF_MIN_NS (1000ull * 1000000ull)
#define BACKOFF_MAX_NS (60ull * 1000000000ull)

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void close_fds(struct warm *w) {
  close_fd(&w->proc.status_fd);
  close_fd(&w->proc.ctl_fd);
  close_fd(&w->pipes[0]);
  close_fd(&w->pipes[1]);
}

/* Removes what a sandbox had on the host once its process is gone. */
static void remove_leftovers(struct warm *w) {
  struct qerr err = QERR_INIT;
  close_fds(w);
  close_fd(&w->proc.pidfd);
  if (w->cg) {
    cgroup_kill_all(w->cg, &err);
    if (cgroup_destroy(w->cg, &err) < 0)
      log_warn("warm sandbox %.12s: %s", w->id, err.msg);
    w->cg = NULL;
  }
  if (w->dir[0] && !w->keep_dir && janitor_remove(&w->pool->d->janitor, w->dir, &err) < 0)
    log_warn("warm sandbox %.12s: %s", w->id, err.msg);
}

/* ------------------------------------------------------------ building */

static int open_stdio(struct warm *w, int child[3], struct qerr *err) {
  child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (child[0] < 0)
    return qerr_errno(err, "opening /dev/null");
  return logs_pipes(w->pipes, child + 1, err);
}

static int clone_sandbox(struct warm_pool *p, struct warm *w, struct qerr *err) {
  struct quiltd *d = p->d;
  struct spawn_sandbox sb = {
      .rootfs = w->rootfs.merged,
      .overlay_lower = w->rootfs.overlay ? w->rootfs.lower : NULL,
      .overlay_upper = w->rootfs.upper,
      .overlay_work = w->rootfs.work,
      .rootfs_writable = w->rootfs.overlay,
      .ns_flags = POOL_NS_FLAGS,
      .userns_base = d->cfg.userns_base,
      .userns_count = d->cfg.userns_count,
      .cgroup_fd = w->cg ? cgroup_fd(w->cg) : -1,
      .stdio = {-1, -1, -1},
  };
  int rc = open_stdio(w, sb.stdio, err);
  int n = rc == 0 && w->cg ? cgroup_procs_fds(w->cg, sb.cgroup_procs, SPAWN_MAX_CGROUP_FDS, err)
                           : 0;
  if (rc == 0 && n < 0)
    rc = n;
  sb.n_cgroup_procs = n > 0 ? (size_t)n : 0;
  if (rc == 0)
    rc = spawn_sandbox(&sb, &w->proc, err);
  for (size_t i = 0; i < sb.n_cgroup_procs; i++)
    close(sb.cgroup_procs[i]);
  for (int i = 0; i < 3; i++)
    close_fd(&sb.stdio[i]);
  return rc;
}

static int build(struct warm_pool *p, struct warm *w, struct qerr *err) {
  struct quiltd *d = p->d;
  static const struct cgroup_limits none = {0, 0, -1};
  char lower[PATH_MAX];
  if (container_resolve_image(d, "", lower, w->image_id, err) < 0 ||
      container_new_id(w->id, err) < 0)
    return err->code;
  snprintf(w->dir, sizeof w->dir, "%s/containers/%s", d->cfg.root_dir, w->id);
  if (mkdir_p(w->dir, 0700, err) < 0 ||
      rootfs_prepare(lower, w->dir, d->overlay, &w->rootfs, err) < 0)
    return err->code;
  if (d->cgm && cgroup_create(d->cgm, w->id, &none, &w->cg, err) < 0)
    return err->code;
  return clone_sandbox(p, w, err);
}

static struct warm *warm_new(struct warm_pool *p) {
  struct warm *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->pool = p;
  w->proc = (struct spawn_result){.pid = -1, .pidfd = -1, .status_fd = -1, .ctl_fd = -1};
  w->pipes[0] = w->pipes[1] = -1;
  return w;
}

static void on_wake(struct qtimer *t) {
  struct warm_pool *p = container_of(t, struct warm_pool, wake);
  (void)p; /* the loop's post-turn refill does the work */
}

static void build_failed(struct warm_pool *p, const char *msg) {
  p->build_failures++;
  if (!p->backoff_ns)
    log_warn("warm pool: %s; containers start cold until a sandbox can be built", msg);
  p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : BACKOFF_MIN_NS;
  if (p->backoff_ns > BACKOFF_MAX_NS)
    p->backoff_ns = BACKOFF_MAX_NS;
  qtimer_cancel(&p->d->timers, &p->wake);
  qtimer_after(&p->d->timers, &p->wake, p->backoff_ns, on_wake);
}

bool pool_wants(const struct warm_pool *p) {
  return !p->stopped && p->n_ready < p->target &&
         !(p->backoff_ns && qtimer_pending(&p->wake));
}

void pool_refill(struct warm_pool *p) {
  if (!pool_wants(p))
    return;
  struct qerr err = QERR_INIT;
  struct warm *w = warm_new(p);
  if (!w) {
    build_failed(p, "out of memory");
    return;
  }
  if (build(p, w, &err) < 0) {
    if (w->proc.pid > 0)
      pool_discard(p, w);
    else {
      remove_leftovers(w);
      free(w);
    }
    build_failed(p, err.msg);
    return;
  }
  if (p->backoff_ns)
    log_info("warm pool: building sandboxes again");
  p->backoff_ns = 0;
  p->built++;
  w->next = p->ready;
  p->ready = w;
  p->n_ready++;
  /* Still short: make sure the loop comes round again even if idle. */
  if (pool_wants(p) && !qtimer_pending(&p->wake))
    qtimer_after(&p->d->timers, &p->wake, 0, on_wake);
}

void pool_init(struct warm_pool *p, struct quiltd *d, unsigned target) {
  *p = (struct warm_pool){.d = d, .target = target};
  if (target)
    qtimer_after(&d->timers, &p->wake, 0, on_wake);
}

/* ------------------------------------------------------------ taking */

/* A sandbox whose status pipe is readable died or failed while it waited:
 * say why, and treat it like a failed build. */
static bool still_alive(struct warm_pool *p, struct warm *w) {
  struct pollfd pfd = {.fd = w->proc.status_fd, .events = POLLIN};
  if (poll(&pfd, 1, 0) == 0)
    return true;
  struct spawn_failure f;
  ssize_t n = read(w->proc.status_fd, &f, sizeof f);
  struct qerr err = QERR_INIT;
  if (n > 0)
    spawn_parse_failure(&f, (size_t)n, &err);
  else
    qerr_set(&err, EIO, "sandbox %.12s exited while waiting", w->id);
  build_failed(p, err.msg);
  return false;
}

struct warm *pool_take(struct warm_pool *p, const char *image_id, const char *lower,
                       int ns_flags) {
  struct warm **pp = &p->ready;
  while (*pp && ns_flags == POOL_NS_FLAGS) {
    struct warm *w = *pp;
    bool match = image_id[0] ? strcmp(w->image_id, image_id) == 0
                             : !w->image_id[0] && strcmp(w->rootfs.lower, lower) == 0;
    if (!match) {
      pp = &w->next;
      continue;
    }
    *pp = w->next;
    p->n_ready--;
    w->next = NULL;
    if (still_alive(p, w)) {
      p->hits++;
      return w;
    }
    pool_discard(p, w);
  }
  p->misses++;
  log_debug("warm pool: no sandbox for image %.12s%s (flags %#x, %u ready)", image_id,
            image_id[0] ? "" : lower, (unsigned)ns_flags, p->n_ready);
  return NULL;
}

/* ------------------------------------------------------------ discarding */

static void on_reaped(struct qpidwait *pw, const siginfo_t *si, int err) {
  (void)si;
  (void)err;
  struct warm *w = container_of(pw, struct warm, reap);
  w->pool->n_reaping--;
  remove_leftovers(w);
  free(w);
}

void pool_discard(struct warm_pool *p, struct warm *w) {
  close_fds(w);
  if (w->proc.pidfd < 0) {
    remove_leftovers(w);
    free(w);
    return;
  }
  sys_pidfd_send_signal(w->proc.pidfd, SIGKILL);
  p->n_reaping++;
  qpidwait_arm(&w->reap, &p->d->ring, w->proc.pidfd, on_reaped);
}

void pool_drop_image(struct warm_pool *p, const char *image_id) {
  struct warm **pp = &p->ready;
  while (*pp) {
    struct warm *w = *pp;
    if (strcmp(w->image_id, image_id) != 0) {
      pp = &w->next;
      continue;
    }
    *pp = w->next;
    p->n_ready--;
    pool_discard(p, w);
  }
}

void pool_shutdown(struct warm_pool *p) {
  p->stopped = true;
  qtimer_cancel(&p->d->timers, &p->wake);
  while (p->ready) {
    struct warm *w = p->ready;
    p->ready = w->next;
    p->n_ready--;
    pool_discard(p, w);
  }
}

bool pool_busy(const struct warm_pool *p) { return p->n_reaping > 0; }

void pool_discard_now(struct warm *w) {
  close_fds(w);
  if (w->proc.pidfd >= 0) {
    siginfo_t si;
    sys_pidfd_send_signal(w->proc.pidfd, SIGKILL);
    waitid(P_PIDFD, (id_t)w->proc.pidfd, &si, WEXITED);
  }
  remove_leftovers(w);
  free(w);
}

void pool_free(struct warm_pool *p) {
  while (p->ready) {
    struct warm *w = p->ready;
    p->ready = w->next;
    pool_discard_now(w);
  }
  p->n_ready = 0;
}

int pool_render_metrics(const struct warm_pool *p, struct strbuf *out) {
  return strbuf_printf(
      out,
      "# HELP quilt_warm_pool_target Sandboxes the warm pool keeps ready.\n"
      "# TYPE quilt_warm_pool_target gauge\nquilt_warm_pool_target %u\n"
      "# HELP quilt_warm_pool_ready Sandboxes ready now.\n"
      "# TYPE quilt_warm_pool_ready gauge\nquilt_warm_pool_ready %u\n"
      "# HELP quilt_warm_pool_hits_total Containers that got a ready sandbox.\n"
      "# TYPE quilt_warm_pool_hits_total counter\nquilt_warm_pool_hits_total %llu\n"
      "# HELP quilt_warm_pool_misses_total Containers built on request instead.\n"
      "# TYPE quilt_warm_pool_misses_total counter\nquilt_warm_pool_misses_total %llu\n"
      "# HELP quilt_warm_pool_built_total Sandboxes built.\n"
      "# TYPE quilt_warm_pool_built_total counter\nquilt_warm_pool_built_total %llu\n"
      "# HELP quilt_warm_pool_failures_total Sandboxes that failed to build or died waiting.\n"
      "# TYPE quilt_warm_pool_failures_total counter\nquilt_warm_pool_failures_total %llu\n",
      p->target, p->n_ready, (unsigned long long)p->hits, (unsigned long long)p->misses,
      (unsigned long long)p->built, (unsigned long long)p->build_failures);
}
