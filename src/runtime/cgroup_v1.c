/* cgroup v1 (legacy and hybrid hosts): one directory per container in each
 * of the memory, cpu, cpuacct, pids and freezer hierarchies. cpu and cpuacct
 * are often co-mounted ("cpu,cpuacct"); they then share one directory. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/cgroup_int.h"

/* memory.limit_in_bytes reads back as PAGE_COUNTER_MAX pages when unset
 * (9223372036854771712 on x86-64); anything this large means "no limit". */
#define V1_UNLIMITED (UINT64_C(1) << 62)

/* ------------------------------------------------------------ setup */

static bool is_cgroup_mount(const char *dir) {
  struct statfs st;
  return statfs(dir, &st) == 0 && st.f_type == CGROUP_SUPER_MAGIC;
}

/* Finds where controller c is mounted and our own cgroup in it. The mount is
 * <root>/<name> (a directory or a symlink to the co-mounted one) or else
 * <root>/<controller list>, e.g. "cpu,cpuacct". */
static int find_mount(const char *root, const char *self, enum cg_ctrl c, char *mount,
                      char *own, size_t cap) {
  char list[256], cand[PATH_MAX];
  if (cg_parse_self_line(self, cg_ctrl_names[c], list, sizeof list, own, cap) < 0)
    return -ENOENT;
  const char *names[] = {cg_ctrl_names[c], list};
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    int n = snprintf(cand, sizeof cand, "%s/%s", root, names[i]);
    if (n > 0 && (size_t)n < sizeof cand && is_cgroup_mount(cand) &&
        realpath(cand, mount) != NULL)
      return 0;
  }
  return -ENOENT;
}

/* The directory containers go in: <mount>/<own cgroup>/quilt by default, so
 * Quilt never writes outside its own subtree; else <mount>/<parent>. */
static int make_parent(const char *mount, const char *own, const char *parent, char **out,
                       struct qerr *err) {
  cleanup_free char *base = parent ? NULL : cg_join(mount, own);
  char *dir = parent ? cg_join(mount, parent) : base ? cg_join(base, "quilt") : NULL;
  if (dir == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  int r = parent ? cg_mkdir_p(mount, parent, err) : cg_mkdir(dir, true, err);
  if (r < 0) {
    free(dir);
    return r;
  }
  *out = dir;
  return 0;
}

/* Adds controller c to the hierarchy mounted at `mount`, creating the entry
 * on first sight. mounts[] holds the canonical mount of each hierarchy. */
static int add_ctrl(struct cgroup_manager *m, char mounts[][PATH_MAX], enum cg_ctrl c,
                    const char *mount, const char *own, const char *parent, struct qerr *err) {
  for (size_t i = 0; i < m->nhier; i++) {
    if (strcmp(mounts[i], mount) == 0) {
      m->hier[i].ctrls |= CG_BIT(c);
      return 0;
    }
  }
  int r = make_parent(mount, own, parent, &m->hier[m->nhier].parent, err);
  if (r < 0)
    return r;
  snprintf(mounts[m->nhier], PATH_MAX, "%s", mount);
  m->hier[m->nhier++].ctrls = CG_BIT(c);
  return 0;
}

static const char *hier_dir(const struct cg_hier *h, size_t n, enum cg_ctrl c) {
  for (size_t i = 0; i < n; i++)
    if ((h[i].ctrls & CG_BIT(c)) && h[i].parent)
      return h[i].parent;
  return NULL;
}

/* "v1:memory=/sys/fs/cgroup/memory/x/quilt,cpu=... (unavailable: freezer)" */
static int describe(struct cgroup_manager *m) {
  char buf[4096], missing[128] = "";
  size_t len = (size_t)snprintf(buf, sizeof buf, "v1:");
  for (int c = 0; c < CG_NCTRL; c++) {
    const char *dir = hier_dir(m->hier, m->nhier, (enum cg_ctrl)c);
    if (dir == NULL) {
      size_t ml = strlen(missing);
      snprintf(missing + ml, sizeof missing - ml, "%s%s", ml ? "," : "", cg_ctrl_names[c]);
    } else if (len < sizeof buf) {
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s=%s", len > 3 ? "," : "",
                              cg_ctrl_names[c], dir);
    }
  }
  if (*missing && len < sizeof buf)
    snprintf(buf + len, sizeof buf - len, " (unavailable: %s)", missing);
  m->describe = strdup(buf);
  return m->describe ? 0 : -ENOMEM;
}

static int v1_setup(struct cgroup_manager *m, const char *root, const char *parent,
                    const char *self, struct qerr *err) {
  char(*mounts)[PATH_MAX] = calloc(CG_NCTRL, PATH_MAX);
  char mount[PATH_MAX], own[PATH_MAX];
  if (mounts == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  int r = 0;
  for (int c = 0; c < CG_NCTRL && r == 0; c++) {
    if (find_mount(root, self, (enum cg_ctrl)c, mount, own, sizeof own) < 0) {
      /* Not mounted or not ours (e.g. no pids controller on an old kernel):
       * run without it; describe() shows it as unavailable. */
      log_warn("cgroup v1 controller %s not found under %s; skipping it", cg_ctrl_names[c],
               root);
      continue;
    }
    r = add_ctrl(m, mounts, (enum cg_ctrl)c, mount, own, parent, err);
  }
  free(mounts);
  if (r < 0)
    return r;
  if (m->nhier == 0)
    return qerr_set(err, ENODEV, "no cgroup v1 controller usable under %s", root);
  return describe(m) < 0 ? qerr_set(err, ENOMEM, "out of memory") : 0;
}

/* ------------------------------------------------------------ per cgroup */

static const char *dir_of(const struct cgroup *cg, enum cg_ctrl c) {
  return hier_dir(cg->dir, cg->nhier, c);
}

/* cgroup.procs of any hierarchy lists the same processes, provided they
 * were attached everywhere; prefer pids and memory, which are always used. */
static const char *procs_dir(const struct cgroup *cg) {
  static const enum cg_ctrl order[] = {CG_PIDS, CG_MEMORY, CG_FREEZER, CG_CPU, CG_CPUACCT};
  for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
    const char *d = dir_of(cg, order[i]);
    if (d)
      return d;
  }
  return NULL;
}

static void remove_dirs(struct cgroup *cg) {
  struct qerr ignored = QERR_INIT;
  for (size_t i = 0; i < cg->nhier; i++)
    if (cg->dir[i].parent)
      (void)cg_rmdir(cg->dir[i].parent, &ignored);
}

static int v1_create(const struct cgroup_manager *m, struct cgroup *cg, bool exists,
                     struct qerr *err) {
  size_t found = 0;
  for (size_t i = 0; i < m->nhier; i++) {
    char *path = cg_join(m->hier[i].parent, cg->name);
    struct stat st;
    if (path == NULL)
      return qerr_set(err, ENOMEM, "out of memory");
    if (exists ? stat(path, &st) < 0 : cg_mkdir(path, false, err) < 0) {
      free(path);
      if (exists)
        continue; /* opened with the hierarchies that have it */
      remove_dirs(cg);
      return err->code;
    }
    cg->dir[i].parent = path;
    cg->dir[i].ctrls = m->hier[i].ctrls;
    cg->nhier = i + 1;
    found++;
  }
  cg->nhier = m->nhier;
  if (found == 0)
    return qerr_set(err, ENOENT, "no cgroup %s in any v1 hierarchy (%s)", cg->name,
                    m->describe);
  return 0;
}

static int set_memory(struct cgroup *cg, uint64_t bytes, struct qerr *err) {
  const char *dir = dir_of(cg, CG_MEMORY);
  char val[32];
  if (dir == NULL) {
    log_warn("cgroup %s: memory controller unavailable; memory limit not applied", cg->name);
    return 0;
  }
  snprintf(val, sizeof val, "%" PRIu64, bytes);
  int r = cg_write(dir, "memory.limit_in_bytes", val, err);
  /* memsw (memory+swap) must be >= the memory limit, hence second; equal
   * values leave no room for swap. Absent without swap accounting. */
  if (r == 0 && cg_file_exists(dir, "memory.memsw.limit_in_bytes"))
    r = cg_write(dir, "memory.memsw.limit_in_bytes", val, err);
  return r;
}

static int set_cpu(struct cgroup *cg, uint32_t percent, struct qerr *err) {
  const char *dir = dir_of(cg, CG_CPU);
  int64_t quota;
  uint64_t period;
  char q[32], p[32];
  if (dir == NULL) {
    log_warn("cgroup %s: cpu controller unavailable; cpu limit not applied", cg->name);
    return 0;
  }
  cgroup_cpu_quota(percent, &quota, &period);
  snprintf(q, sizeof q, "%" PRId64, quota);
  snprintf(p, sizeof p, "%" PRIu64, period);
  /* The period first: the quota is checked against it. */
  int r = cg_write(dir, "cpu.cfs_period_us", p, err);
  return r < 0 ? r : cg_write(dir, "cpu.cfs_quota_us", q, err);
}

static int set_pids(struct cgroup *cg, int64_t max, struct qerr *err) {
  const char *dir = dir_of(cg, CG_PIDS);
  char val[32];
  if (dir == NULL) {
    log_warn("cgroup %s: pids controller unavailable; pids limit not applied", cg->name);
    return 0;
  }
  snprintf(val, sizeof val, "%" PRId64, max);
  return cg_write(dir, "pids.max", val, err);
}

static int v1_apply(struct cgroup *cg, const struct cgroup_limits *lim, struct qerr *err) {
  if (lim->memory_bytes && set_memory(cg, lim->memory_bytes, err) < 0)
    return err->code;
  if (lim->cpu_percent && set_cpu(cg, lim->cpu_percent, err) < 0)
    return err->code;
  if (lim->pids > 0 && set_pids(cg, lim->pids, err) < 0)
    return err->code;
  return 0;
}

static int v1_attach(struct cgroup *cg, pid_t pid, struct qerr *err) {
  char val[16];
  snprintf(val, sizeof val, "%d", (int)pid);
  for (size_t i = 0; i < cg->nhier; i++)
    if (cg->dir[i].parent && cg_write(cg->dir[i].parent, "cgroup.procs", val, err) < 0)
      return err->code;
  return 0;
}

static int read_opt(const char *dir, const char *file, uint64_t *v, struct qerr *err) {
  if (dir == NULL)
    return 0;
  return cg_read_u64(dir, file, true, v, err);
}

static int v1_stats(struct cgroup *cg, struct cgroup_stats *st, struct qerr *err) {
  const char *mem = dir_of(cg, CG_MEMORY), *pids = dir_of(cg, CG_PIDS);
  if (read_opt(mem, "memory.usage_in_bytes", &st->memory_current, err) < 0 ||
      read_opt(mem, "memory.max_usage_in_bytes", &st->memory_peak, err) < 0 ||
      read_opt(mem, "memory.limit_in_bytes", &st->memory_limit, err) < 0 ||
      read_opt(dir_of(cg, CG_CPUACCT), "cpuacct.usage", &st->cpu_usage_ns, err) < 0 ||
      read_opt(pids, "pids.current", &st->pids_current, err) < 0 ||
      read_opt(pids, "pids.max", &st->pids_limit, err) < 0)
    return err->code;
  if (st->memory_limit >= V1_UNLIMITED)
    st->memory_limit = 0;
  return 0;
}

static int v1_oom_kills(struct cgroup *cg, uint64_t *count, struct qerr *err) {
  const char *dir = dir_of(cg, CG_MEMORY);
  /* The oom_kill line exists from Linux 4.13 on; older kernels report 0. */
  return dir ? cg_read_key(dir, "memory.oom_control", "oom_kill", false, count, err) : 0;
}

/* Writes the state, then polls until the kernel reports it: freezing is
 * asynchronous and can stall in FREEZING, which a rewrite retries. */
static int freezer_set(const char *dir, bool frozen, struct qerr *err) {
  const char *want = frozen ? "FROZEN" : "THAWED";
  for (unsigned waited = 0;; waited += CG_POLL_MS) {
    cleanup_free char *state = NULL;
    if (cg_write(dir, "freezer.state", want, err) < 0 ||
        cg_read(dir, "freezer.state", &state, err) < 0)
      return err->code;
    if (strncmp(state, want, strlen(want)) == 0)
      return 0;
    if (waited >= CG_WAIT_MS) {
      struct qerr ignored = QERR_INIT;
      (void)cg_write(dir, "freezer.state", "THAWED", &ignored);
      return qerr_set(err, ETIMEDOUT, "setting %s/freezer.state to %s: still %.*s after %u ms",
                      dir, want, (int)strcspn(state, "\n"), state, waited);
    }
    cg_sleep_ms(CG_POLL_MS);
  }
}

static int v1_freeze(struct cgroup *cg, bool frozen, struct qerr *err) {
  const char *dir = dir_of(cg, CG_FREEZER);
  if (dir == NULL)
    return qerr_set(err, EOPNOTSUPP, "cgroup %s: freezer controller not available", cg->name);
  return freezer_set(dir, frozen, err);
}

static int v1_kill_all(struct cgroup *cg, struct qerr *err) {
  const char *dir = procs_dir(cg), *fz = dir_of(cg, CG_FREEZER);
  struct qerr ferr = QERR_INIT;
  if (dir == NULL)
    return 0;
  /* v1 has no cgroup.kill. Frozen, nothing can fork between reading
   * cgroup.procs and the kills; the SIGKILLs take effect on thaw. */
  bool frozen = fz && freezer_set(fz, true, &ferr) == 0;
  if (fz && !frozen)
    log_warn("cgroup %s: killing without freezing: %s", cg->name, ferr.msg);
  int r = cg_signal_procs(dir, err);
  if (frozen && freezer_set(fz, false, &ferr) < 0)
    log_warn("cgroup %s: %s", cg->name, ferr.msg);
  if (r < 0)
    return r;
  return cg_kill_procs(dir, err);
}

static int v1_nprocs(struct cgroup *cg) {
  const char *dir = procs_dir(cg);
  return dir ? cg_count_procs(dir) : 0;
}

static int v1_remove(struct cgroup *cg, struct qerr *err) {
  int first = 0;
  /* Try every hierarchy so one busy directory does not strand the rest. */
  for (size_t i = 0; i < cg->nhier; i++) {
    struct qerr e = QERR_INIT;
    if (cg->dir[i].parent && cg_rmdir(cg->dir[i].parent, &e) < 0 && first == 0) {
      *err = e;
      first = e.code;
    }
  }
  return first;
}

const struct cg_ops cg_v1_ops = {
    .setup = v1_setup,
    .create = v1_create,
    .apply = v1_apply,
    .attach = v1_attach,
    .stats = v1_stats,
    .oom_kills = v1_oom_kills,
    .kill_all = v1_kill_all,
    .nprocs = v1_nprocs,
    .freeze = v1_freeze,
    .remove = v1_remove,
};
