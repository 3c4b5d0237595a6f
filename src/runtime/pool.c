#include "runtime/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "daemon.h"
#include "runtime/cdir.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/janitor.h"
#include "runtime/logs.h"
#include "runtime/pool_int.h"
#include "runtime/syscalls.h"

#define BACKOFF_MIN_NS (1000ull * 1000000ull)
#define BACKOFF_MAX_NS (60ull * 1000000000ull)
#define ZYGOTE_ANSWER_NS (2ull * 1000000000ull)
/* Sandboxes built beyond the target while requests wait for them. */
#define POOL_MAX_EXTRA 4

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
  close_fd(&w->log_fd);
}

/* Removes what a sandbox had on the host once its process is gone. The
 * daemon opens a sandbox's cgroup only when it is taken: before that only
 * the sandbox knows it, so look it up by name. */
static void remove_leftovers(struct warm *w) {
  struct quiltd *d = w->pool->d;
  struct qerr err = QERR_INIT;
  close_fds(w);
  close_fd(&w->proc.pidfd);
  if (!w->cg && d->cgm && cgroup_open(d->cgm, w->id, &w->cg, &err) < 0)
    w->cg = NULL;
  if (w->cg && !janitor_take_cgroup(&d->janitor, w->cg)) {
    cgroup_kill_all(w->cg, &err);
    if (cgroup_destroy(w->cg, &err) < 0)
      log_warn("warm sandbox %.12s: %s", w->id, err.msg);
  }
  w->cg = NULL;
  if (w->dir[0] && !w->keep_dir)
    container_remove_files(d, w->id, w->dir);
}

/* ------------------------------------------------------------ building */

/* In the sandbox's own process: its directories, rootfs and cgroup, all of
 * which cost the daemon's loop a millisecond or more (mkdir on the state
 * disk, kernfs files of five v1 hierarchies). w is the child's copy. */
static int setup_in_child(void *arg, int *procs, size_t *n, struct qerr *err) {
  struct warm *w = arg;
  struct quiltd *d = w->pool->d;
  struct rootfs_view view;
  prctl(PR_SET_NAME, "quilt-sandbox"); /* else the name of whoever forked it */
  char layer[PATH_MAX];
  if (cdir_make(w->dir, err) < 0 || scratch_dir(&d->scratch, w->id, layer, err) < 0 ||
      mkdir_p(layer, 0700, err) < 0 ||
      rootfs_prepare(w->rootfs.lower, layer, d->overlay ? ROOTFS_OVERLAY : ROOTFS_COPY, &view,
                     err) < 0)
    return err->code;
  if (!d->cgm)
    return 0;
  struct cgroup *cg;
  if (cgroup_create(d->cgm, w->id, &w->limits, &cg, err) < 0)
    return err->code;
  int k = cgroup_procs_fds(cg, procs + *n, SPAWN_MAX_CGROUP_FDS - *n, err);
  if (k < 0)
    return k;
  *n += (size_t)k;
  return 0;
}

static int open_stdio(struct warm *w, int child[3], struct qerr *err) {
  child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (child[0] < 0)
    return qerr_errno(err, "opening /dev/null");
  return logs_pipes(w->pipes, child + 1, err);
}

/* Clones w's sandbox (in quiltd, or in the zygote with clone_parent). */
static int spawn_warm(struct warm_pool *p, struct warm *w, const int stdio[3], int netns_fd,
                      bool clone_parent, struct spawn_result *res, struct qerr *err) {
  struct spawn_sandbox sb = {
      .rootfs = w->rootfs.merged,
      .overlay_lower = w->rootfs.overlay ? w->rootfs.lower : NULL,
      .overlay_upper = w->rootfs.upper,
      .overlay_work = w->rootfs.work,
      .lower_tree_fd = -1,
      .rootfs_writable = w->rootfs.overlay || w->rootfs.copied,
      .ns_flags = POOL_NS_FLAGS,
      .cgroup_fd = -1,
      .netns_fd = netns_fd,
      .clone_parent = clone_parent,
      .close_in_child = clone_parent ? ZYGOTE_FD : -1,
      .stdio = {stdio[0], stdio[1], stdio[2]},
      .child_setup = setup_in_child,
      .child_arg = w,
      .announce_ready = true,
      .seccomp = &p->d->seccomp,
      .seccomp_early = true,
  };
  return spawn_sandbox(&sb, res, err);
}

/* Its directory and the view of `lower` it will mount. */
static int plan(struct warm_pool *p, struct warm *w, const char *lower, struct qerr *err) {
  struct quiltd *d = p->d;
  char layer[PATH_MAX];
  snprintf(w->dir, sizeof w->dir, "%s/containers/%s", d->cfg.root_dir, w->id);
  w->limits = container_default_limits(d);
  if (scratch_dir(&d->scratch, w->id, layer, err) < 0 ||
      rootfs_plan(lower, layer, d->overlay ? ROOTFS_OVERLAY : ROOTFS_COPY, &w->rootfs, err) < 0)
    return err->code;
  return 0;
}

/* In the zygote: the same sandbox, from its request. */
static int zygote_build(void *arg, const struct zygote_req *req, struct spawn_result *res,
                        struct qerr *err) {
  struct warm_pool *p = arg;
  struct warm w = {.pool = p};
  memcpy(w.id, req->id, sizeof w.id);
  if (plan(p, &w, req->lower, err) < 0)
    return err->code;
  return spawn_warm(p, &w, req->stdio, req->netns_fd, true, res, err);
}

/* 0: built; 1: asked of the zygote, whose answer comes on the ring
 * (on_zygote): the fork, and the wait for the zygote to be scheduled on a
 * busy machine, stay off the loop. */
static int clone_sandbox(struct warm_pool *p, struct warm *w, struct qerr *err) {
  int stdio[3] = {-1, -1, -1};
  int netns = p->n_spare_netns ? p->spare_netns[--p->n_spare_netns] : -1;
  int rc = open_stdio(w, stdio, err);
  if (rc == 0 && p->zygote.sock >= 0) {
    struct zygote_req req = {.stdio = {stdio[0], stdio[1], stdio[2]}, .netns_fd = netns};
    memcpy(req.id, w->id, sizeof req.id);
    snprintf(req.lower, sizeof req.lower, "%s", w->rootfs.lower);
    rc = zygote_ask(&p->zygote, &req, err) == 0 ? 1 : -1;
    if (rc < 0 && p->zygote.sock < 0) /* it is gone: fork ourselves */
      rc = spawn_warm(p, w, stdio, netns, false, &w->proc, err);
  } else if (rc == 0) {
    rc = spawn_warm(p, w, stdio, netns, false, &w->proc, err);
  }
  for (int i = 0; i < 3; i++)
    close_fd(&stdio[i]);
  close_fd(&netns); /* the child has its own copy */
  return rc;
}

/* The default view follows the default image (a tag can move); a learned
 * one is fixed. */
static int view_rootfs(struct warm_pool *p, struct warm *w, char lower[PATH_MAX],
                       struct qerr *err) {
  struct pool_view *v = &p->views[w->view];
  if (w->view == 0) {
    if (container_resolve_image(p->d, "", lower, w->image_id, err) < 0)
      return err->code;
    snprintf(v->image_id, sizeof v->image_id, "%s", w->image_id);
    snprintf(v->lower, sizeof v->lower, "%s", lower);
    return 0;
  }
  snprintf(w->image_id, sizeof w->image_id, "%s", v->image_id);
  snprintf(lower, PATH_MAX, "%s", v->lower);
  return 0;
}

static int build(struct warm_pool *p, struct warm *w, struct qerr *err) {
  char lower[PATH_MAX];
  if (view_rootfs(p, w, lower, err) < 0 || container_new_id(w->id, err) < 0)
    return err->code;
  if (plan(p, w, lower, err) < 0)
    return err->code;
  return clone_sandbox(p, w, err);
}

static struct warm *warm_new(struct warm_pool *p) {
  struct warm *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->pool = p;
  w->proc = (struct spawn_result){.pid = -1, .pidfd = -1, .status_fd = -1, .ctl_fd = -1};
  w->pipes[0] = w->pipes[1] = w->log_fd = -1;
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

/* Short: fewer than the target, plus (a few) more while requests wait, so
 * a burst is served by sandboxes built side by side, not one at a time. */
static bool view_short(const struct warm_pool *p, unsigned i) {
  const struct pool_view *v = &p->views[i];
  return v->used && v->n_ready < p->target + pool_waiting_for(p, i, POOL_MAX_EXTRA);
}

/* The next view short of sandboxes, round robin; POOL_MAX_VIEWS: none. */
static unsigned view_to_build(const struct warm_pool *p) {
  for (unsigned k = 0; k < POOL_MAX_VIEWS; k++) {
    unsigned i = (p->next_view + k) % POOL_MAX_VIEWS;
    if (view_short(p, i))
      return i;
  }
  return POOL_MAX_VIEWS;
}

bool pool_wants(const struct warm_pool *p) {
  return !p->stopped && !p->pending && view_to_build(p) < POOL_MAX_VIEWS &&
         !(p->backoff_ns && qtimer_pending(&p->wake));
}

void pool_push_ready(struct warm_pool *p, struct warm *w) {
  w->next = p->ready;
  p->ready = w;
  p->n_ready++;
  p->views[w->view].n_ready++;
  pool_watch_building(p, w);
}

/* Takes w out of the ready list (pp points at the link to it). */
void pool_unlink_ready(struct warm_pool *p, struct warm **pp) {
  struct warm *w = *pp;
  *pp = w->next;
  w->next = NULL;
  pool_unwatch(w);
  p->n_ready--;
  p->views[w->view].n_ready--;
}

/* The end of a build: w joins the pool, or rc < 0 says why it could not. */
static void built(struct warm_pool *p, struct warm *w, int rc, const struct qerr *err) {
  if (rc < 0) {
    if (w->proc.pid > 0)
      pool_discard(p, w);
    else {
      remove_leftovers(w);
      free(w);
    }
    build_failed(p, err->msg);
    pool_settle_waiters(p);
    return;
  }
  if (p->backoff_ns)
    log_info("warm pool: building sandboxes again");
  p->backoff_ns = 0;
  p->built++;
  pool_push_ready(p, w);
  /* Still short: make sure the loop comes round again even if idle. */
  if (pool_wants(p) && !qtimer_pending(&p->wake))
    qtimer_after(&p->d->timers, &p->wake, 0, on_wake);
}

static void on_zygote(struct qop *op, int res, uint32_t flags);

static void poll_zygote(struct warm_pool *p) {
  struct io_uring_sqe *sqe = qring_sqe(&p->d->ring);
  io_uring_prep_poll_add(sqe, p->zygote.sock, POLLIN);
  qop_bind(sqe, &p->zygote_op);
}

/* A zygote that does not answer is stuck: it is killed, reaped on the
 * ring, and quiltd forks the sandboxes itself. */
static void on_zygote_reaped(struct qpidwait *pw, const siginfo_t *si, int err) {
  (void)pw;
  (void)si;
  (void)err;
}

static void on_zygote_late(struct qtimer *t) {
  struct warm_pool *p = container_of(t, struct warm_pool, zygote_late);
  struct warm *w = take_ptr(p->pending);
  log_warn("the zygote did not answer in %llu s: quiltd forks sandboxes itself from now on",
           ZYGOTE_ANSWER_NS / 1000000000ull);
  int pidfd = zygote_abandon(&p->zygote);
  if (pidfd >= 0)
    qpidwait_arm(&p->zygote_reap, &p->d->ring, pidfd, on_zygote_reaped);
  remove_leftovers(w);
  free(w);
  pool_settle_waiters(p);
  qtimer_after(&p->d->timers, &p->wake, 0, on_wake);
}

static void on_zygote(struct qop *op, int res, uint32_t flags) {
  (void)res;
  (void)flags;
  struct warm_pool *p = container_of(op, struct warm_pool, zygote_op);
  struct warm *w = p->pending;
  if (!w || p->zygote.sock < 0) /* answered at shutdown, or given up on */
    return;
  struct qerr err = QERR_INIT;
  int rc = zygote_answer(&p->zygote, false, &w->proc, &err);
  if (rc == -EAGAIN) {
    poll_zygote(p);
    return;
  }
  p->pending = NULL;
  qtimer_cancel(&p->d->timers, &p->zygote_late);
  if (rc < 0 && p->zygote.sock < 0) { /* it died: build it again ourselves */
    remove_leftovers(w);
    free(w);
    pool_settle_waiters(p);
    qtimer_after(&p->d->timers, &p->wake, 0, on_wake);
    return;
  }
  if (rc == 0 && (w->stale || p->stopped)) {
    pool_discard(p, w);
    pool_settle_waiters(p);
    return;
  }
  built(p, w, rc, &err);
}

/* Shutdown: the answer in flight is read now, so its sandbox is discarded
 * like the others. */
static void settle_pending(struct warm_pool *p) {
  struct warm *w = take_ptr(p->pending);
  if (!w)
    return;
  qtimer_cancel(&p->d->timers, &p->zygote_late);
  struct qerr err = QERR_INIT;
  if (zygote_answer(&p->zygote, true, &w->proc, &err) < 0) {
    remove_leftovers(w);
    free(w);
    return;
  }
  pool_push_ready(p, w);
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
  w->view = view_to_build(p);
  p->next_view = (w->view + 1) % POOL_MAX_VIEWS;
  int rc = build(p, w, &err);
  if (rc == 1) {
    p->pending = w;
    poll_zygote(p);
    qtimer_after(&p->d->timers, &p->zygote_late, ZYGOTE_ANSWER_NS, on_zygote_late);
    return;
  }
  built(p, w, rc, &err);
}

void pool_init(struct warm_pool *p, struct quiltd *d, unsigned target) {
  *p = (struct warm_pool){.d = d, .target = target};
  p->zygote = (struct zygote){.pidfd = -1, .sock = -1};
  p->zygote_op.fn = on_zygote;
  p->views[0].used = target > 0;
  struct qerr err = QERR_INIT;
  if (target && !d->cfg.no_zygote && zygote_start(&p->zygote, zygote_build, p, &err) < 0)
    log_warn("%s: quiltd forks the sandboxes itself", err.msg);
  if (target)
    qtimer_after(&d->timers, &p->wake, 0, on_wake);
}

/* ------------------------------------------------------------ views */

static bool is_view(const struct pool_view *v, const char *image_id, const char *lower) {
  return v->used && strcmp(v->image_id, image_id) == 0 && strcmp(v->lower, lower) == 0;
}

/* The index of the view of that rootfs, or POOL_MAX_VIEWS. */
unsigned pool_view_of(const struct warm_pool *p, const char *image_id, const char *lower) {
  for (unsigned i = 0; i < POOL_MAX_VIEWS; i++)
    if (is_view(&p->views[i], image_id, lower))
      return i;
  return POOL_MAX_VIEWS;
}

/* Discards the ready sandboxes of view i, or of every view when i is
 * POOL_MAX_VIEWS, whose rootfs `keep` says no to. */
static void discard_where(struct warm_pool *p, unsigned i,
                          bool (*keep)(const struct warm *w, const void *arg), const void *arg) {
  struct warm **pp = &p->ready;
  while (*pp) {
    struct warm *w = *pp;
    if ((i < POOL_MAX_VIEWS && w->view != i) || keep(w, arg)) {
      pp = &w->next;
      continue;
    }
    pool_unlink_ready(p, pp);
    pool_discard(p, w);
  }
  struct warm *w = p->pending; /* discarded when its answer comes */
  if (w && !(i < POOL_MAX_VIEWS && w->view != i) && !keep(w, arg))
    w->stale = true;
  pool_settle_waiters(p);
}

static bool keep_none(const struct warm *w, const void *arg) {
  (void)w;
  (void)arg;
  return false;
}

static void forget_view(struct warm_pool *p, unsigned i) {
  log_debug("warm pool: forgetting %.12s (%s)", p->views[i].image_id, p->views[i].lower);
  discard_where(p, i, keep_none, NULL);
  p->views[i] = (struct pool_view){0};
}

static void on_expire(struct qtimer *t) {
  struct warm_pool *p = container_of(t, struct warm_pool, expire);
  uint64_t now = clock_mono_ns();
  bool any = false;
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++) {
    if (p->views[i].used && now - p->views[i].last_use_ns >= POOL_VIEW_IDLE_NS)
      forget_view(p, i);
    any |= p->views[i].used;
  }
  if (any)
    qtimer_after(&p->d->timers, &p->expire, POOL_VIEW_IDLE_NS / 4, on_expire);
}

/* A learned view for that rootfs: a free slot, else the least recently
 * used one's. */
static void learn_view(struct warm_pool *p, const char *image_id, const char *lower) {
  if (!p->target || p->stopped || is_view(&p->views[0], image_id, lower))
    return;
  unsigned pick = 1;
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++) {
    if (!p->views[i].used) {
      pick = i;
      break;
    }
    if (p->views[i].last_use_ns < p->views[pick].last_use_ns)
      pick = i;
  }
  if (p->views[pick].used)
    forget_view(p, pick);
  struct pool_view *v = &p->views[pick];
  if (snprintf(v->lower, sizeof v->lower, "%s", lower) >= (int)sizeof v->lower)
    return;
  snprintf(v->image_id, sizeof v->image_id, "%s", image_id);
  v->used = true;
  v->last_use_ns = clock_mono_ns();
  p->views_learned++;
  if (!qtimer_pending(&p->expire))
    qtimer_after(&p->d->timers, &p->expire, POOL_VIEW_IDLE_NS / 4, on_expire);
  if (!qtimer_pending(&p->wake))
    qtimer_after(&p->d->timers, &p->wake, 0, on_wake);
}

/* ------------------------------------------------------------ taking */

bool pool_same_rootfs(const struct warm *w, const char *image_id, const char *lower) {
  return strcmp(w->image_id, image_id) == 0 && strcmp(w->rootfs.lower, lower) == 0;
}

/* A ready sandbox gets its cgroup opened for the taker; one that died or
 * failed while it waited is said why and counted like a failed build. */
enum spawn_state pool_check(struct warm_pool *p, struct warm *w) {
  struct qerr err = QERR_INIT;
  enum spawn_state st = spawn_poll_ready(w->proc.status_fd, &w->ready_seen, &err);
  if (st == SPAWN_WAITING && !w->cg && p->d->cgm &&
      cgroup_open(p->d->cgm, w->id, &w->cg, &err) < 0)
    st = SPAWN_GONE;
  if (st == SPAWN_WAITING && w->log_fd < 0 && (w->log_fd = logs_open_file(w->dir)) < 0) {
    qerr_errno(&err, "opening the log of sandbox %.12s", w->id);
    st = SPAWN_GONE;
  }
  if (st == SPAWN_GONE)
    build_failed(p, err.msg);
  return st;
}

static void used_view(struct warm_pool *p, const char *image_id, const char *lower) {
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++)
    if (is_view(&p->views[i], image_id, lower))
      p->views[i].last_use_ns = clock_mono_ns();
}

struct warm *pool_take(struct warm_pool *p, const char *image_id, const char *lower,
                       int ns_flags) {
  if (ns_flags != POOL_NS_FLAGS) { /* never what the pool builds */
    p->misses++;
    return NULL;
  }
  used_view(p, image_id, lower);
  struct warm **pp = &p->ready;
  while (*pp) {
    struct warm *w = *pp;
    enum spawn_state st = pool_same_rootfs(w, image_id, lower) ? pool_check(p, w) : SPAWN_BUILDING;
    if (st == SPAWN_BUILDING) { /* another rootfs, or still mounting: keep it */
      pp = &w->next;
      continue;
    }
    pool_unlink_ready(p, pp);
    if (st == SPAWN_WAITING) {
      p->hits++;
      return w;
    }
    pool_discard(p, w);
  }
  p->misses++;
  log_debug("warm pool: no sandbox for image %.12s%s (%u in the pool)", image_id,
            image_id[0] ? "" : lower, p->n_ready);
  learn_view(p, image_id, lower);
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

static bool rootfs_is(const struct warm *w, const void *arg) {
  const struct pool_view *v = arg;
  return pool_same_rootfs(w, v->image_id, v->lower);
}

void pool_default_is(struct warm_pool *p, const char *image_id, const char *lower) {
  if (!p->target)
    return;
  struct pool_view now = {.used = true};
  snprintf(now.image_id, sizeof now.image_id, "%s", image_id);
  snprintf(now.lower, sizeof now.lower, "%s", lower);
  discard_where(p, 0, rootfs_is, &now);
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++)
    if (is_view(&p->views[i], image_id, lower))
      forget_view(p, i); /* the default view builds it from now on */
  p->views[0] = now;
  p->views[0].n_ready = 0;
  for (struct warm *w = p->ready; w; w = w->next)
    p->views[0].n_ready += w->view == 0;
}

static bool not_of_image(const struct warm *w, const void *arg) {
  return strcmp(w->image_id, arg) != 0;
}

void pool_drop_image(struct warm_pool *p, const char *image_id) {
  discard_where(p, POOL_MAX_VIEWS, not_of_image, image_id);
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++)
    if (p->views[i].used && strcmp(p->views[i].image_id, image_id) == 0)
      forget_view(p, i);
}

/* A lowerdir "layer:image" starts with the layer's directory and a colon. */
static bool lower_has_layer(const char *lower, const char *layer_dir) {
  size_t n = strlen(layer_dir);
  return strncmp(lower, layer_dir, n) == 0 && lower[n] == ':';
}

static bool not_on_layer(const struct warm *w, const void *arg) {
  return !lower_has_layer(w->rootfs.lower, arg);
}

void pool_drop_layer(struct warm_pool *p, const char *layer_dir) {
  discard_where(p, POOL_MAX_VIEWS, not_on_layer, layer_dir);
  for (unsigned i = 1; i < POOL_MAX_VIEWS; i++)
    if (p->views[i].used && lower_has_layer(p->views[i].lower, layer_dir))
      forget_view(p, i);
}

void pool_give_netns(struct warm_pool *p, int fd) {
  if (p->target == 0 || p->stopped || p->n_spare_netns == POOL_SPARE_NETNS) {
    close(fd);
    return;
  }
  p->spare_netns[p->n_spare_netns++] = fd;
  p->netns_given++;
}

static void close_spares(struct warm_pool *p) {
  while (p->n_spare_netns)
    close(p->spare_netns[--p->n_spare_netns]);
}

void pool_shutdown(struct warm_pool *p) {
  close_spares(p);
  settle_pending(p);
  zygote_stop(&p->zygote);
  p->stopped = true;
  qtimer_cancel(&p->d->timers, &p->wake);
  qtimer_cancel(&p->d->timers, &p->expire);
  discard_where(p, POOL_MAX_VIEWS, keep_none, NULL);
}

bool pool_busy(const struct warm_pool *p) { return p->n_reaping > 0 || p->n_watches > 0; }

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
  close_spares(p);
  settle_pending(p);
  zygote_stop(&p->zygote);
  while (p->ready) {
    struct warm *w = p->ready;
    p->ready = w->next;
    pool_unwatch(w);
    pool_discard_now(w);
  }
  p->n_ready = 0;
}

/* Sandboxes built and waiting; a dead one is left for pool_take to drop. */
static unsigned count_built(struct warm_pool *p) {
  unsigned n = 0;
  for (struct warm *w = p->ready; w; w = w->next) {
    struct qerr ignore = QERR_INIT;
    n += spawn_poll_ready(w->proc.status_fd, &w->ready_seen, &ignore) == SPAWN_WAITING;
  }
  return n;
}

static unsigned count_views(const struct warm_pool *p) {
  unsigned n = 0;
  for (unsigned i = 0; i < POOL_MAX_VIEWS; i++)
    n += p->views[i].used;
  return n;
}

int pool_render_metrics(struct warm_pool *p, struct strbuf *out) {
  return strbuf_printf(
      out,
      "# HELP quilt_warm_pool_target Sandboxes the warm pool keeps ready.\n"
      "# TYPE quilt_warm_pool_target gauge\nquilt_warm_pool_target %u\n"
      "# HELP quilt_warm_pool_size Sandboxes in the pool, built or being built.\n"
      "# TYPE quilt_warm_pool_size gauge\nquilt_warm_pool_size %u\n"
      "# HELP quilt_warm_pool_ready Sandboxes built and waiting for a container.\n"
      "# TYPE quilt_warm_pool_ready gauge\nquilt_warm_pool_ready %u\n"
      "# HELP quilt_warm_pool_hits_total Containers that got a ready sandbox.\n"
      "# TYPE quilt_warm_pool_hits_total counter\nquilt_warm_pool_hits_total %llu\n"
      "# HELP quilt_warm_pool_misses_total Containers that found no ready sandbox.\n"
      "# TYPE quilt_warm_pool_misses_total counter\nquilt_warm_pool_misses_total %llu\n"
      "# HELP quilt_warm_pool_waited_total Misses that waited for a sandbox being built "
      "instead of starting cold.\n"
      "# TYPE quilt_warm_pool_waited_total counter\nquilt_warm_pool_waited_total %llu\n"
      "# HELP quilt_warm_pool_built_total Sandboxes started.\n"
      "# TYPE quilt_warm_pool_built_total counter\nquilt_warm_pool_built_total %llu\n"
      "# HELP quilt_warm_pool_failures_total Sandboxes that failed to build or died waiting.\n"
      "# TYPE quilt_warm_pool_failures_total counter\nquilt_warm_pool_failures_total %llu\n"
      "# HELP quilt_warm_pool_views Rootfs views the pool keeps sandboxes of.\n"
      "# TYPE quilt_warm_pool_views gauge\nquilt_warm_pool_views %u\n"
      "# HELP quilt_warm_pool_views_learned_total Views learned from containers that missed.\n"
      "# TYPE quilt_warm_pool_views_learned_total counter\n"
      "quilt_warm_pool_views_learned_total %llu\n"
      "# HELP quilt_warm_pool_netns_given_total Network namespaces of exited containers "
      "kept for sandboxes to reuse (if no packet crossed them).\n"
      "# TYPE quilt_warm_pool_netns_given_total counter\n"
      "quilt_warm_pool_netns_given_total %llu\n"
      "# HELP quilt_warm_pool_netns_spare Network namespaces kept for the next sandboxes.\n"
      "# TYPE quilt_warm_pool_netns_spare gauge\nquilt_warm_pool_netns_spare %u\n",
      p->target, p->n_ready, count_built(p), (unsigned long long)p->hits,
      (unsigned long long)p->misses, (unsigned long long)p->waited, (unsigned long long)p->built,
      (unsigned long long)p->build_failures, count_views(p),
      (unsigned long long)p->views_learned, (unsigned long long)p->netns_given,
      p->n_spare_netns);
}
