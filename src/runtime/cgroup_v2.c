/* cgroup v2 (unified): one directory per container beneath a parent whose
 * cgroup.subtree_control enables memory, cpu and pids for it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/cgroup_int.h"

/* What v2 enables explicitly; cpu.stat and cgroup.freeze are core files. */
static const enum cg_ctrl v2_wanted[] = {CG_MEMORY, CG_CPU, CG_PIDS};

/* ------------------------------------------------------------ setup */

/* Parses a space-separated controller list ("cpu io memory pids"). */
static unsigned parse_ctrls(const char *text) {
  unsigned bits = 0;
  for (const char *p = text; *p;) {
    size_t len = strcspn(p, " \n");
    for (size_t i = 0; i < ARRAY_SIZE(v2_wanted); i++) {
      const char *name = cg_ctrl_names[v2_wanted[i]];
      if (len == strlen(name) && strncmp(p, name, len) == 0)
        bits |= CG_BIT(v2_wanted[i]);
    }
    p += len;
    p += strspn(p, " \n");
  }
  return bits;
}

static int read_ctrls(const char *dir, const char *file, unsigned *bits, struct qerr *err) {
  cleanup_free char *text = NULL;
  int r = cg_read(dir, file, &text, err);
  if (r < 0)
    return r;
  *bits = parse_ctrls(text);
  return 0;
}

/* Enables for dir's children whichever wanted controllers dir has. A
 * controller that cannot be enabled (not delegated to us, or dir has
 * processes) is logged and left out; the caller reads what took effect. */
static int enable_ctrls(const char *dir, struct qerr *err) {
  unsigned avail, on;
  if (read_ctrls(dir, "cgroup.controllers", &avail, err) < 0 ||
      read_ctrls(dir, "cgroup.subtree_control", &on, err) < 0)
    return err->code;
  for (size_t i = 0; i < ARRAY_SIZE(v2_wanted); i++) {
    enum cg_ctrl c = v2_wanted[i];
    char val[16];
    struct qerr e = QERR_INIT;
    if ((on & CG_BIT(c)) || !(avail & CG_BIT(c)))
      continue;
    snprintf(val, sizeof val, "+%s", cg_ctrl_names[c]);
    if (cg_write(dir, "cgroup.subtree_control", val, &e) < 0)
      log_warn("cgroup v2: cannot enable %s: %s", cg_ctrl_names[c], e.msg);
  }
  return 0;
}

/* The no-internal-process rule: a non-root cgroup with processes cannot
 * enable controllers for children. Move everything in own_dir into the
 * leaf own_dir/supervisor. Repeated, as processes may fork meanwhile. */
static int move_to_supervisor(const char *own_dir, struct qerr *err) {
  cleanup_free char *sup = cg_join(own_dir, "supervisor");
  if (sup == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  for (int round = 0; round < 10; round++) {
    cleanup_free pid_t *pids = NULL;
    int n = cg_read_procs(own_dir, &pids, err);
    if (n <= 0)
      return n;
    if (round == 0 && cg_mkdir(sup, true, err) < 0)
      return err->code;
    for (int i = 0; i < n; i++) {
      char val[16];
      snprintf(val, sizeof val, "%d", (int)pids[i]);
      if (cg_write(sup, "cgroup.procs", val, err) < 0 && err->code != -ESRCH)
        return err->code;
    }
    log_info("cgroup v2: moved %d processes from %s into %s", n, own_dir, sup);
  }
  return qerr_set(err, EBUSY, "moving processes out of %s: it keeps gaining new ones",
                  own_dir);
}

/* Default parent: <own cgroup>/quilt. We may already sit in the leaf we
 * made on an earlier start; its parent is then our own cgroup, so restarts
 * find the same containers. */
static int setup_own(struct cgroup_manager *m, const char *root, const char *self,
                     struct qerr *err) {
  char own[4096];
  if (cg_parse_self_line(self, NULL, NULL, 0, own, sizeof own) < 0)
    return qerr_set(err, ENOENT, "no cgroup v2 entry (0::) in /proc/self/cgroup");
  size_t len = strlen(own);
  if (len > 11 && strcmp(own + len - 11, "/supervisor") == 0)
    own[len - 11] = 0;
  cleanup_free char *own_dir = cg_join(root, own);
  if (own_dir == NULL || (m->v2_parent = cg_join(own_dir, "quilt")) == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  /* The root cgroup is exempt from the rule (and holds kernel threads). */
  if (strcmp(own, "/") != 0 && move_to_supervisor(own_dir, err) < 0)
    return err->code;
  if (enable_ctrls(own_dir, err) < 0 || cg_mkdir(m->v2_parent, true, err) < 0)
    return err->code;
  return enable_ctrls(m->v2_parent, err);
}

/* Configured parent: create it below the root, enabling controllers on the
 * way down so they reach it. */
static int setup_parent(struct cgroup_manager *m, const char *root, const char *parent,
                        struct qerr *err) {
  while (*parent == '/')
    parent++;
  if ((m->v2_parent = cg_join(root, parent)) == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  cleanup_free char *path = strdup(m->v2_parent);
  if (path == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  /* p walks the separators: enable on the directory above it, then create
   * the component after it. */
  for (char *p = path + strlen(path) - strlen(parent) - 1; p;) {
    *p = 0;
    int r = enable_ctrls(path, err);
    *p = '/';
    char *next = strchr(p + 1, '/');
    if (next)
      *next = 0;
    if (r < 0 || cg_mkdir(path, true, err) < 0)
      return err->code;
    if (next)
      *next = '/';
    p = next;
  }
  return enable_ctrls(m->v2_parent, err);
}

static int describe(struct cgroup_manager *m) {
  char missing[64] = "";
  for (size_t i = 0; i < ARRAY_SIZE(v2_wanted); i++) {
    size_t ml = strlen(missing);
    if (!(m->v2_ctrls & CG_BIT(v2_wanted[i])))
      snprintf(missing + ml, sizeof missing - ml, "%s%s", ml ? "," : "",
               cg_ctrl_names[v2_wanted[i]]);
  }
  int n = *missing ? asprintf(&m->describe, "unified:%s (unavailable: %s)", m->v2_parent,
                              missing)
                   : asprintf(&m->describe, "unified:%s", m->v2_parent);
  if (n < 0)
    m->describe = NULL;
  return n < 0 ? -ENOMEM : 0;
}

static int v2_setup(struct cgroup_manager *m, const char *root, const char *parent,
                    const char *self, struct qerr *err) {
  int r = parent ? setup_parent(m, root, parent, err) : setup_own(m, root, self, err);
  if (r < 0 || read_ctrls(m->v2_parent, "cgroup.subtree_control", &m->v2_ctrls, err) < 0)
    return err->code;
  for (size_t i = 0; i < ARRAY_SIZE(v2_wanted); i++)
    if (!(m->v2_ctrls & CG_BIT(v2_wanted[i])))
      log_warn("cgroup v2 controller %s not available in %s; skipping it",
               cg_ctrl_names[v2_wanted[i]], m->v2_parent);
  return describe(m) < 0 ? qerr_set(err, ENOMEM, "out of memory") : 0;
}

/* ------------------------------------------------------------ per cgroup */

static int v2_create(const struct cgroup_manager *m, struct cgroup *cg, bool exists,
                     struct qerr *err) {
  struct stat st;
  if ((cg->v2_path = cg_join(m->v2_parent, cg->name)) == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  if (exists && stat(cg->v2_path, &st) < 0)
    return qerr_errno(err, "opening cgroup %s", cg->v2_path);
  if (!exists && cg_mkdir(cg->v2_path, false, err) < 0)
    return err->code;
  /* O_PATH suffices for clone3(CLONE_INTO_CGROUP) and openat. */
  cg->v2_fd = open(cg->v2_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cg->v2_fd < 0) {
    qerr_errno(err, "opening cgroup %s", cg->v2_path);
    if (!exists)
      (void)rmdir(cg->v2_path);
    return err->code;
  }
  cg->v2_ctrls = m->v2_ctrls;
  if ((cg->v2_ctrls & CG_BIT(CG_MEMORY)) &&
      (cg->events_path = cg_join(cg->v2_path, "memory.events")) == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  return 0;
}

/* A limit the parent cannot enforce is skipped with a warning, not failed:
 * the host decides what is delegated to us. */
static bool have(const struct cgroup *cg, enum cg_ctrl c) {
  if (cg->v2_ctrls & CG_BIT(c))
    return true;
  log_warn("cgroup %s: %s controller unavailable; %s limit not applied", cg->name,
           cg_ctrl_names[c], cg_ctrl_names[c]);
  return false;
}

static int set_memory(struct cgroup *cg, uint64_t bytes, struct qerr *err) {
  char val[32];
  snprintf(val, sizeof val, "%" PRIu64, bytes);
  if (cg_write(cg->v2_path, "memory.max", val, err) < 0)
    return err->code;
  /* memory.swap.max is absent when swap accounting is off. */
  if (cg_file_exists(cg->v2_path, "memory.swap.max"))
    return cg_write(cg->v2_path, "memory.swap.max", "0", err);
  return 0;
}

static int set_cpu(struct cgroup *cg, uint32_t percent, struct qerr *err) {
  int64_t quota;
  uint64_t period;
  char val[64];
  cgroup_cpu_quota(percent, &quota, &period);
  snprintf(val, sizeof val, "%" PRId64 " %" PRIu64, quota, period);
  return cg_write(cg->v2_path, "cpu.max", val, err);
}

static int v2_apply(struct cgroup *cg, const struct cgroup_limits *lim, struct qerr *err) {
  char val[32];
  if (lim->memory_bytes && have(cg, CG_MEMORY) && set_memory(cg, lim->memory_bytes, err) < 0)
    return err->code;
  if (lim->cpu_percent && have(cg, CG_CPU) && set_cpu(cg, lim->cpu_percent, err) < 0)
    return err->code;
  snprintf(val, sizeof val, "%" PRId64, lim->pids);
  if (lim->pids > 0 && have(cg, CG_PIDS) && cg_write(cg->v2_path, "pids.max", val, err) < 0)
    return err->code;
  return 0;
}

static int v2_attach(struct cgroup *cg, pid_t pid, struct qerr *err) {
  char val[16];
  snprintf(val, sizeof val, "%d", (int)pid);
  return cg_write(cg->v2_path, "cgroup.procs", val, err);
}

static int v2_stats(struct cgroup *cg, struct cgroup_stats *st, struct qerr *err) {
  const char *d = cg->v2_path;
  uint64_t usec = 0;
  /* Files of a controller that is not enabled are absent: they read as 0. */
  if (cg_read_u64(d, "memory.current", true, &st->memory_current, err) < 0 ||
      cg_read_u64(d, "memory.peak", true, &st->memory_peak, err) < 0 ||
      cg_read_u64(d, "memory.max", true, &st->memory_limit, err) < 0 ||
      cg_read_key(d, "cpu.stat", "usage_usec", true, &usec, err) < 0 ||
      cg_read_u64(d, "pids.current", true, &st->pids_current, err) < 0 ||
      cg_read_u64(d, "pids.max", true, &st->pids_limit, err) < 0)
    return err->code;
  st->cpu_usage_ns = usec * 1000;
  return 0;
}

static int v2_oom_kills(struct cgroup *cg, uint64_t *count, struct qerr *err) {
  return cg_read_key(cg->v2_path, "memory.events", "oom_kill", true, count, err);
}

static int v2_kill_all(struct cgroup *cg, struct qerr *err) {
  /* cgroup.kill (Linux 5.14) kills the whole subtree atomically, racing no
   * fork; before it, kill what is listed until nothing is. */
  if (cg_file_exists(cg->v2_path, "cgroup.kill")) {
    if (cg_write(cg->v2_path, "cgroup.kill", "1", err) < 0)
      return err->code;
    return cg_wait_empty(cg->v2_path, err);
  }
  return cg_kill_procs(cg->v2_path, err);
}

static int v2_nprocs(struct cgroup *cg) { return cg_count_procs(cg->v2_path); }

static int v2_freeze(struct cgroup *cg, bool frozen, struct qerr *err) {
  const char *d = cg->v2_path;
  if (cg_write(d, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
    return err->code;
  /* Freezing is asynchronous; cgroup.events says when it took effect. */
  for (unsigned waited = 0;; waited += CG_POLL_MS) {
    uint64_t state;
    if (cg_read_key(d, "cgroup.events", "frozen", false, &state, err) < 0)
      return err->code;
    if (state == (frozen ? 1 : 0))
      return 0;
    if (waited >= CG_WAIT_MS) {
      struct qerr ignored = QERR_INIT;
      if (frozen)
        (void)cg_write(d, "cgroup.freeze", "0", &ignored);
      return qerr_set(err, ETIMEDOUT, "%s %s: cgroup.events not \"frozen %d\" after %u ms",
                      frozen ? "freezing" : "thawing", d, frozen, waited);
    }
    cg_sleep_ms(CG_POLL_MS);
  }
}

static int v2_remove(struct cgroup *cg, struct qerr *err) { return cg_rmdir(cg->v2_path, err); }

const struct cg_ops cg_v2_ops = {
    .setup = v2_setup,
    .create = v2_create,
    .apply = v2_apply,
    .attach = v2_attach,
    .stats = v2_stats,
    .oom_kills = v2_oom_kills,
    .kill_all = v2_kill_all,
    .nprocs = v2_nprocs,
    .freeze = v2_freeze,
    .remove = v2_remove,
};
