#include "daemon.h"
#include "runtime/netbridge.h"

#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "io/conn.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/images.h"
#include "runtime/logs.h"
#include "runtime/rootfs.h"
#include "runtime/seccomp.h"
#include "runtime/store.h"
#include "runtime/sysinfo.h"
#include "runtime/volumes.h"

#define RING_ENTRIES 1024

void quiltd_default_config(struct quiltd_config *cfg) {
  *cfg = (struct quiltd_config){
      .socket_path = "/run/quilt/quiltd.sock",
      .listen_addr = NULL,
      .root_dir = "/var/lib/quilt",
      .max_connections = 4096,
      .max_streams = 128,
      .max_recv_msg = 4u * 1024 * 1024,
      .max_header_bytes = 16 * 1024,
      .idle_timeout_ns = 300ull * 1000000000ull,
      .send_timeout_ns = 30ull * 1000000000ull,
      .handshake_timeout_ns = 10ull * 1000000000ull,
      .shutdown_grace_ns = 10ull * 1000000000ull,
      .rapid_reset_limit = 200,
#ifdef QUILT_DEFAULT_IMAGE
      .default_image = QUILT_DEFAULT_IMAGE,
#endif
      .image_max_bytes = 16ull << 30,
      .log_max_bytes = 256ull * 1024 * 1024,
      .userns_base = 100000,
      .userns_count = 65536,
      .warm_pool = 2,
      .default_memory_mib = -1,
  };
}

/* Never more connections than fds we may open, whatever was configured. */
static void clamp_connections(struct quiltd_config *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    rlim_t room = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : rl.rlim_cur / 2;
    if (cfg->max_connections > room)
      cfg->max_connections = (unsigned)room;
  }
}

/* Raise the soft fd limit to the hard one: we never touch the hard limit. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Token rotation without a restart; a bad new file must not lock everyone
 * out, so the old token stays until a valid one is read. */
static void reload_token(struct quiltd *d) {
  if (!d->auth.token) {
    log_info("SIGHUP: no token file to reload");
    return;
  }
  struct qerr err = QERR_INIT;
  if (auth_reload(&d->auth, d->cfg.auth_token_file, &err) < 0)
    log_error("SIGHUP: %s; the previous token stays in force", err.msg);
  else
    log_info("SIGHUP: reloaded the token from %s", d->cfg.auth_token_file);
}

static void on_signal(struct qsignals *s, int signo) {
  struct quiltd *d = container_of(s, struct quiltd, signals);
  if (signo == SIGHUP) {
    reload_token(d);
    return;
  }
  log_info("%s: shutting down", strsignal(signo));
  quiltd_shutdown(d);
}

static void on_accept(struct listener *l, int fd) {
  struct quiltd *d = l->is_unix ? container_of(l, struct quiltd, unix_l)
                                : container_of(l, struct quiltd, tcp_l);
  conn_accept(d, fd, !l->is_unix);
}

static int open_listeners(struct quiltd *d, struct qerr *err) {
  const struct quiltd_config *cfg = &d->cfg;
  if (cfg->socket_path && cfg->socket_path[0]) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg->socket_path);
    if (mkdir_p(dirname(dir), 0755, err) < 0)
      return err->code;
    if (listener_open_unix(&d->unix_l, cfg->socket_path, err) < 0)
      return err->code;
  }
  if (cfg->listen_addr && listener_open_tcp(&d->tcp_l, cfg->listen_addr, err) < 0)
    return err->code;
  if (d->unix_l.fd < 0 && d->tcp_l.fd < 0)
    return qerr_set(err, EINVAL, "nothing to listen on: give --socket or --listen");
  return 0;
}

/* TCP is reachable by anyone who can route to it, so it needs the token
 * unless the operator said, explicitly, that it must not. */
static int open_auth(struct quiltd *d, struct qerr *err) {
  const struct quiltd_config *cfg = &d->cfg;
  if (cfg->auth_token_file && auth_load(&d->auth, cfg->auth_token_file, err) < 0)
    return err->code;
  if (cfg->listen_addr && !d->auth.token && !cfg->insecure_no_auth)
    return qerr_set(err, EINVAL, "--listen needs --auth-token-file PATH (or "
                    "--insecure-no-auth to serve TCP without authentication)");
  return 0;
}

static void warn_insecure(const struct quiltd *d) {
  if (d->tcp_l.fd < 0 || d->auth.token)
    return;
  log_warn("!!! --insecure-no-auth: TCP %s serves the whole API WITHOUT AUTHENTICATION !!!",
           d->cfg.listen_addr);
  log_warn("!!! anyone who can reach %s can run containers as root on this host !!!",
           d->cfg.listen_addr);
}

/* quilt-extract lives next to quiltd (build tree and install alike). */
static void helper_path(char *out, size_t cap) {
  char self[PATH_MAX - 16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = 0;
  char *slash = strrchr(self, '/');
  if (slash)
    *slash = 0;
  snprintf(out, cap, "%s/quilt-extract", self);
}

/* The image store, and the built-in image imported on first start. */
static int open_images(struct quiltd *d, struct qerr *err) {
  char dir[PATH_MAX], helper[PATH_MAX];
  /* The build tree's image, else the installed one. */
  if (d->cfg.default_image && access(d->cfg.default_image, R_OK) < 0 &&
      access(QUILT_INSTALLED_IMAGE, R_OK) == 0)
    d->cfg.default_image = QUILT_INSTALLED_IMAGE;
  snprintf(dir, sizeof dir, "%s/images", d->cfg.root_dir);
  if (d->cfg.extract_helper)
    snprintf(helper, sizeof helper, "%s", d->cfg.extract_helper);
  else
    helper_path(helper, sizeof helper);
  if (image_store_open(&d->images, dir, helper, d->cfg.image_max_bytes, err) < 0)
    return qerr_wrap(err, "opening the image store");
  struct image_info info = {0};
  struct qerr miss = QERR_INIT;
  if (!d->cfg.default_image || image_lookup(d->images, DEFAULT_IMAGE_TAG, &info, &miss) == 0) {
    image_info_free(&info);
    return 0;
  }
  const char *tags[] = {DEFAULT_IMAGE_TAG};
  bool cached;
  struct qerr ierr = QERR_INIT;
  if (image_import_file(d->images, d->cfg.default_image, tags, 1, &info, &cached, &ierr) < 0)
    log_warn("built-in image %s not imported: %s", d->cfg.default_image, ierr.msg);
  else
    log_info("imported the built-in image %s as %.12s", DEFAULT_IMAGE_TAG, info.id);
  image_info_free(&info);
  return 0;
}

/* State, cgroups and the containers a previous run left behind. */
static int open_runtime(struct quiltd *d, struct qerr *err) {
  char path[4096];
  /* 0711: a container's root in a user namespace is an unprivileged host
   * id that must reach its own overlay dirs; listing stays root-only. */
  snprintf(path, sizeof path, "%s/containers", d->cfg.root_dir);
  if (mkdir_p(path, 0711, err) < 0 || chmod(d->cfg.root_dir, 0711) < 0 ||
      chmod(path, 0711) < 0)
    return err->code ? err->code : qerr_errno(err, "chmod %s", path);
  snprintf(path, sizeof path, "%s/state.db", d->cfg.root_dir);
  if (store_open(&d->store, path, err) < 0)
    return err->code;
  store_set_batching(d->store, true);
  struct qerr cgerr = QERR_INIT;
  if (cgroup_manager_new(&d->cgm, "/sys/fs/cgroup", d->cfg.cgroup_parent, &cgerr) < 0) {
    if (d->cfg.cgroup_parent)
      return qerr_set(err, cgerr.code, "%s", cgerr.msg);
    log_warn("cgroups unavailable, containers run without limits: %s", cgerr.msg);
    d->cgm = NULL;
  }
  struct qerr ierr = QERR_INIT;
  if (open_images(d, &ierr) < 0) {
    /* Rootfs directories still work; image references answer clearly. */
    log_warn("%s; images are unavailable", ierr.msg);
    if (d->images)
      image_store_close(d->images);
    d->images = NULL;
  }
  d->overlay = !d->cfg.no_overlay && rootfs_overlay_supported();
  if (d->cfg.default_memory_mib < 0) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    d->cfg.default_memory_mib = pages > 0 && page > 0 ? (int64_t)pages * page / 2 / (1 << 20) : 0;
  }
  idmap_init(&d->idmap, d->cfg.userns_base, d->cfg.userns_count, d->cfg.no_idmap);
  if (scratch_open(&d->scratch, d->cfg.root_dir, d->overlay && !d->cfg.scratch_disk,
                   d->cfg.scratch_size, err) < 0)
    return err->code;
  volumes_sweep(&d->janitor, d->cfg.root_dir);
  snprintf(path, sizeof path, "%s/containers", d->cfg.root_dir);
  d->rootfs_driver = !d->overlay        ? rootfs_copy_driver(path)
                     : d->scratch.tmpfs ? "overlay (layers on tmpfs)"
                                        : "overlay (layers on disk)";
  if (!d->overlay)
    log_warn("overlayfs unavailable: each container gets a %s of its image", d->rootfs_driver);
  return containers_restore(d, err);
}

int quiltd_init(struct quiltd *d, const struct quiltd_config *cfg, struct qerr *err) {
  memset(d, 0, sizeof *d);
  d->cfg = *cfg;
  d->unix_l.fd = d->tcp_l.fd = -1;
  d->signals.fd = -1;
  d->start_mono_ns = clock_mono_ns();
  /* First, while the daemon holds nothing the helper could inherit. */
  struct qerr jerr = QERR_INIT;
  if (janitor_start(&d->janitor, &jerr) < 0)
    log_warn("%s: container directories are removed inline", jerr.msg);
  if (open_auth(d, err) < 0) {
    janitor_stop(&d->janitor);
    return err->code;
  }
  raise_nofile();
  clamp_connections(&d->cfg);
  grpc_registry_init(&d->registry);
  sysinfo_kernel(d->kernel, sizeof d->kernel);
  snprintf(d->cgroup_mode, sizeof d->cgroup_mode, "%s",
           cgroup_mode_name(cgroup_detect_mode("/sys/fs/cgroup")));
  if (cfg->root_dir && mkdir_p(cfg->root_dir, 0700, err) < 0)
    return qerr_wrap(err, "preparing root directory");
  if (qseccomp_build_default(&d->seccomp, err) < 0)
    return err->code;
  if (qring_init(&d->ring, RING_ENTRIES, cfg->io_uring_compat, err) < 0)
    return err->code;
  if (open_runtime(d, err) < 0) {
    quiltd_free(d);
    return err->code;
  }
  qtimers_init(&d->timers, &d->ring);
  pool_init(&d->pool, d, cfg->warm_pool);
  d->n_features = qring_feature_names(&d->ring, d->features, ARRAY_SIZE(d->features));
  d->pid = getpid();
  if (qsignals_init(&d->signals, &d->ring, on_signal, err) < 0 || open_listeners(d, err) < 0) {
    quiltd_free(d);
    return err->code;
  }
  if (d->unix_l.fd >= 0)
    listener_start(&d->unix_l, &d->ring, on_accept);
  if (d->tcp_l.fd >= 0)
    listener_start(&d->tcp_l, &d->ring, on_accept);
  warn_insecure(d);
  return 0;
}

static void on_grace_expired(struct qtimer *t) {
  struct quiltd *d = container_of(t, struct quiltd, shutdown_timer);
  log_warn("shutdown grace period over: closing %u connection(s)", d->n_conns);
  for (struct conn *c = d->conns; c; c = c->next)
    conn_close(c);
  d->grace_over = true;
}

void quiltd_shutdown(struct quiltd *d) {
  if (d->shutting_down)
    return;
  d->shutting_down = true;
  listener_close(&d->unix_l);
  listener_close(&d->tcp_l);
  for (struct conn *c = d->conns; c; c = c->next)
    conn_shutdown(c);
  containers_shutdown(d);
  qtimer_after(&d->timers, &d->shutdown_timer, d->cfg.shutdown_grace_ns, on_grace_expired);
}

/* Containers still exiting or being cleaned up keep the loop alive. */
static bool runtime_busy(const struct quiltd *d) {
  for (const struct container *c = d->containers; c; c = c->next)
    if (container_is_active(c) || c->busy || !logs_idle(c))
      return true;
  return d->execs_running > 0 || d->copies_running > 0 || pool_busy(&d->pool);
}

/* One transaction per loop turn, committed before its replies leave. */
static void commit_state(struct quiltd *d) {
  struct qerr err = QERR_INIT;
  if (d->store && store_commit(d->store, &err) < 0)
    log_error("%s", err.msg);
}

int quiltd_run(struct quiltd *d, struct qerr *err) {
  while (!d->done) {
    int rc = qring_run_once(&d->ring);
    if (rc < 0)
      return qerr_set(err, rc, "io_uring wait: %s", strerror(-rc));
    commit_state(d);
    conn_flush_dirty(d);
    if (d->deferred || pool_wants(&d->pool)) {
      /* Replies and exec records first, then the slow work: cleanup, and
       * building a sandbox while the one just taken runs its exec. */
      io_uring_submit(&d->ring.ring);
      containers_run_deferred(d);
      pool_refill(&d->pool);
      commit_state(d);
      conn_flush_dirty(d);
    }
    if (d->shutting_down && d->n_conns == 0 && (d->grace_over || !runtime_busy(d)))
      d->done = true;
  }
  return 0;
}

void quiltd_free(struct quiltd *d) {
  /* quiltd_run returns only once every connection is gone. */
  pool_free(&d->pool);
  idmap_free(&d->idmap);
  containers_free(d);
  if (d->store)
    commit_state(d);
  if (d->store)
    store_close(d->store);
  d->store = NULL;
  if (d->cgm)
    cgroup_manager_free(d->cgm);
  d->cgm = NULL;
  if (d->images)
    image_store_close(d->images);
  d->images = NULL;
  strbuf_free(&d->log_scratch);
  qseccomp_free(&d->seccomp);
  listener_close(&d->unix_l);
  listener_close(&d->tcp_l);
  qsignals_close(&d->signals);
  qtimers_free(&d->timers);
  if (d->ring.ring.ring_fd > 0)
    qring_exit(&d->ring);
  netbridge_close(d->net, true);
  d->net = NULL;
  janitor_stop(&d->janitor);
  /* After the janitor: it may still have been deleting layers. */
  if (d->scratch.root[0])
    scratch_close(&d->scratch);
  auth_free(&d->auth);
}
