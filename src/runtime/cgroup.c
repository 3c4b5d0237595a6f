/* Container cgroups: the public entry points, which validate and dispatch to
 * the v1 or v2 backend, plus the small file helpers both backends share.
 * Design follows crun's cgroup code: one directory per container beneath a
 * parent, limits written as plain text to control files, errors naming the
 * file that failed. */
#include "runtime/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/cgroup_int.h"

const char *const cg_ctrl_names[CG_NCTRL] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

/* ------------------------------------------------------------ pure helpers */

void cgroup_cpu_quota(uint32_t percent, int64_t *quota_us, uint64_t *period_us) {
  /* 100 ms is the kernel's default period; percent of one CPU maps to the
   * share of that period the group may run: 150% -> 150000/100000. */
  *period_us = 100000;
  *quota_us = percent == 0 ? -1 : (int64_t)percent * 1000;
}

/* True if the comma-separated `list` contains `want` as a whole entry, so
 * "cpu" matches "cpu,cpuacct" but not "cpuset" or "cpuacct". */
static bool list_has(const char *list, size_t len, const char *want) {
  size_t wlen = strlen(want);
  const char *end = list + len;
  for (const char *p = list; p < end;) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    if ((size_t)(stop - p) == wlen && memcmp(p, want, wlen) == 0)
      return true;
    p = stop + 1;
  }
  return false;
}

static int copy_field(char *out, size_t cap, const char *s, size_t len) {
  if (out == NULL)
    return 0;
  if (len >= cap)
    return -ENAMETOOLONG;
  memcpy(out, s, len);
  out[len] = 0;
  return 0;
}

/* Lines are "hierarchy-id:controller-list:path"; the path may itself hold
 * colons, so only the first two separate fields. */
int cg_parse_self_line(const char *text, const char *controller, char *list, size_t lcap,
                       char *path, size_t pcap) {
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    const char *end = nl ? nl : line + strlen(line);
    const char *c1 = memchr(line, ':', (size_t)(end - line));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    if (c2) {
      size_t llen = (size_t)(c2 - c1 - 1);
      bool v2_line = llen == 0 && c1 - line == 1 && line[0] == '0';
      bool match = controller ? list_has(c1 + 1, llen, controller) : v2_line;
      if (match) {
        int r = copy_field(list, lcap, c1 + 1, llen);
        return r < 0 ? r : copy_field(path, pcap, c2 + 1, (size_t)(end - c2 - 1));
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  return -ENOENT;
}

int cgroup_parse_self(const char *text, const char *controller, char *out, size_t cap) {
  return cg_parse_self_line(text, controller, NULL, 0, out, cap);
}

/* ------------------------------------------------------------ file helpers */

char *cg_join(const char *a, const char *b) {
  size_t alen = strlen(a);
  while (alen > 1 && a[alen - 1] == '/')
    alen--;
  while (*b == '/')
    b++;
  char *out = NULL;
  if (*b == 0)
    return strndup(a, alen);
  if (asprintf(&out, "%.*s/%s", (int)alen, a, b) < 0)
    return NULL;
  return out;
}

static int path_of(char *buf, size_t cap, const char *dir, const char *file,
                   struct qerr *err) {
  int n = snprintf(buf, cap, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= cap)
    return qerr_set(err, ENAMETOOLONG, "path too long: %s/%s", dir, file);
  return 0;
}

bool cg_file_exists(const char *dir, const char *file) {
  char p[4096];
  struct stat st;
  int n = snprintf(p, sizeof p, "%s/%s", dir, file);
  return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0;
}

int cg_write(const char *dir, const char *file, const char *val, struct qerr *err) {
  char p[4096];
  int r = path_of(p, sizeof p, dir, file, err);
  if (r < 0)
    return r;
  cleanup_fd int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return qerr_errno(err, "opening %s", p);
  /* Control files take a value in one write; a short write is an error. */
  size_t len = strlen(val);
  /* Some writes (memory.limit_in_bytes) give up with EINTR when anything
   * is pending for the task, io_uring's task work included: retry. */
  ssize_t w;
  int tries = 0;
  do
    w = write(fd, val, len);
  while (w < 0 && errno == EINTR && ++tries < 100);
  /* The file's name, not its path: cgroup paths run long enough to cut
   * the reason off a message, and the caller names the cgroup. */
  if (w < 0)
    return qerr_errno(err, "writing %s to %s", val, file);
  if ((size_t)w != len)
    return qerr_set(err, EIO, "writing %s to %s: short write", val, file);
  return 0;
}

static int read_fd_all(int fd, char **out) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return -ENOMEM;
  for (;;) {
    if (len + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        return -ENOMEM;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      return -e;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  buf[len] = 0;
  *out = buf;
  return (int)len;
}

int cg_read(const char *dir, const char *file, char **out, struct qerr *err) {
  char p[4096];
  int r = path_of(p, sizeof p, dir, file, err);
  if (r < 0)
    return r;
  cleanup_fd int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return qerr_errno(err, "opening %s", p);
  r = read_fd_all(fd, out);
  if (r < 0)
    return qerr_set(err, r, "reading %s: %s", p, strerror(-r));
  return r;
}

static int parse_u64(const char *s, uint64_t *v) {
  while (*s == ' ')
    s++;
  if (strncmp(s, "max", 3) == 0) {
    *v = 0;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-')
    return -EINVAL;
  *v = x;
  return 0;
}

int cg_read_u64(const char *dir, const char *file, bool optional, uint64_t *v,
                struct qerr *err) {
  cleanup_free char *text = NULL;
  *v = 0;
  if (optional && !cg_file_exists(dir, file))
    return 0;
  int r = cg_read(dir, file, &text, err);
  if (r < 0)
    return r;
  if (parse_u64(text, v) < 0)
    return qerr_set(err, EINVAL, "parsing %s/%s: unexpected \"%.40s\"", dir, file, text);
  return 0;
}

int cg_read_key(const char *dir, const char *file, const char *key, bool optional,
                uint64_t *v, struct qerr *err) {
  cleanup_free char *text = NULL;
  size_t klen = strlen(key);
  *v = 0;
  if (optional && !cg_file_exists(dir, file))
    return 0;
  int r = cg_read(dir, file, &text, err);
  if (r < 0)
    return r;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
      if (parse_u64(line + klen + 1, v) < 0)
        return qerr_set(err, EINVAL, "parsing %s/%s: bad \"%s\" line", dir, file, key);
      return 0;
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

int cg_mkdir(const char *path, bool exist_ok, struct qerr *err) {
  if (mkdir(path, 0755) == 0 || (exist_ok && errno == EEXIST))
    return 0;
  return qerr_errno(err, "creating cgroup %s", path);
}

int cg_mkdir_p(const char *base, const char *rel, struct qerr *err) {
  while (*rel == '/')
    rel++;
  cleanup_free char *path = cg_join(base, rel);
  if (path == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  /* Create each component below base in turn, like mkdir -p; rel is the
   * tail of path (cg_join may have trimmed base's slashes). */
  for (char *p = path + strlen(path) - strlen(rel); *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    int r = cg_mkdir(path, true, err);
    *p = '/';
    if (r < 0)
      return r;
  }
  return cg_mkdir(path, true, err);
}

void cg_sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

int cg_read_procs(const char *dir, pid_t **out, struct qerr *err) {
  cleanup_free char *text = NULL;
  *out = NULL;
  int r = cg_read(dir, "cgroup.procs", &text, err);
  if (r < 0)
    return r;
  /* One pid per line: a line count bounds the array. */
  size_t cap = 1;
  for (const char *p = text; *p; p++)
    cap += *p == '\n';
  pid_t *pids = calloc(cap, sizeof *pids);
  if (pids == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  int n = 0;
  for (char *p = text; *p && (size_t)n < cap;) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p)
      break;
    if (pid > 0)
      pids[n++] = (pid_t)pid;
    p = end + strspn(end, "\n");
  }
  *out = pids;
  return n;
}

int cg_count_procs(const char *dir) {
  struct qerr e = QERR_INIT;
  cleanup_free pid_t *pids = NULL;
  return cg_read_procs(dir, &pids, &e);
}

int cg_signal_procs(const char *dir, struct qerr *err) {
  cleanup_free pid_t *pids = NULL;
  int n = cg_read_procs(dir, &pids, err);
  /* ESRCH just means one already exited. */
  for (int i = 0; i < n; i++)
    (void)kill(pids[i], SIGKILL);
  return n;
}

int cg_kill_procs(const char *dir, struct qerr *err) {
  for (unsigned waited = 0;; waited += CG_POLL_MS) {
    int n = cg_signal_procs(dir, err);
    if (n <= 0)
      return n;
    if (waited >= CG_WAIT_MS)
      return qerr_set(err, EBUSY, "killing the processes of %s: %d still listed after %u ms",
                      dir, n, waited);
    cg_sleep_ms(CG_POLL_MS);
  }
}

int cg_wait_empty(const char *dir, struct qerr *err) {
  for (unsigned waited = 0;; waited += CG_POLL_MS) {
    int n = cg_count_procs(dir);
    if (n < 0)
      return qerr_set(err, n, "reading %s/cgroup.procs: %s", dir, strerror(-n));
    if (n == 0)
      return n;
    if (waited >= CG_WAIT_MS)
      return qerr_set(err, EBUSY, "waiting for %s to empty: %d processes after %u ms", dir,
                      n, waited);
    cg_sleep_ms(CG_POLL_MS);
  }
}

int cg_rmdir(const char *path, struct qerr *err) {
  /* rmdir can fail with EBUSY for a moment after the last task exits, while
   * the kernel finishes unlinking it; retry briefly before believing it. */
  enum { TRIES = 10 };
  for (int i = 0; i < TRIES; i++) {
    if (rmdir(path) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY)
      return qerr_errno(err, "removing cgroup %s", path);
    cg_sleep_ms(CG_POLL_MS);
  }
  int n = cg_count_procs(path);
  if (n > 0)
    return qerr_set(err, EBUSY, "removing cgroup %s: %d process(es) still in it", path, n);
  return qerr_set(err, EBUSY, "removing cgroup %s: still busy (child cgroups?)", path);
}

/* ------------------------------------------------------------ manager */

/* A configured parent must stay inside the hierarchy: relative, no "..". */
static int check_parent(const char *parent, struct qerr *err) {
  while (*parent == '/')
    parent++;
  if (*parent == 0)
    return qerr_set(err, EINVAL, "cgroup parent must not be a hierarchy root");
  for (const char *p = parent; *p;) {
    size_t len = strcspn(p, "/");
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return qerr_set(err, EINVAL, "cgroup parent %s must not contain \"..\"", parent);
    p += len;
    while (*p == '/')
      p++;
  }
  return 0;
}

static int read_self(char **text, struct qerr *err) {
  cleanup_fd int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return qerr_errno(err, "opening /proc/self/cgroup");
  int r = read_fd_all(fd, text);
  if (r < 0)
    return qerr_set(err, r, "reading /proc/self/cgroup: %s", strerror(-r));
  return 0;
}

int cgroup_manager_new(struct cgroup_manager **out, const char *sysfs_root, const char *parent,
                       struct qerr *err) {
  const char *root = sysfs_root ? sysfs_root : "/sys/fs/cgroup";
  *out = NULL;
  if (parent && check_parent(parent, err) < 0)
    return err->code;
  enum cgroup_mode mode = cgroup_detect_mode(root);
  if (mode == CGROUP_MODE_UNKNOWN)
    return qerr_set(err, ENODEV, "no cgroup filesystem (cgroup2 or tmpfs of v1) at %s", root);
  cleanup_free char *self = NULL;
  if (read_self(&self, err) < 0)
    return err->code;
  struct cgroup_manager *m = calloc(1, sizeof *m);
  if (m == NULL)
    return qerr_set(err, ENOMEM, "out of memory");
  m->mode = mode;
  m->ops = mode == CGROUP_MODE_UNIFIED ? &cg_v2_ops : &cg_v1_ops;
  if (m->ops->setup(m, root, parent, self, err) < 0) {
    cgroup_manager_free(m);
    return err->code;
  }
  log_info("cgroups: %s", m->describe);
  *out = m;
  return 0;
}

void cgroup_manager_free(struct cgroup_manager *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nhier; i++)
    free(m->hier[i].parent);
  free(m->v2_parent);
  free(m->describe);
  free(m);
}

enum cgroup_mode cgroup_manager_mode(const struct cgroup_manager *m) { return m->mode; }

const char *cgroup_manager_describe(const struct cgroup_manager *m) {
  return m->describe ? m->describe : "";
}

/* ------------------------------------------------------------ cgroups */

static void cg_free(struct cgroup *cg) {
  if (cg == NULL)
    return;
  if (cg->v2_fd >= 0)
    close(cg->v2_fd);
  for (size_t i = 0; i < cg->nhier; i++)
    free(cg->dir[i].parent);
  free(cg->v2_path);
  free(cg->events_path);
  free(cg->name);
  free(cg);
}

/* The name becomes one path component: no slashes, no dot entries. */
static int check_name(const char *name, struct qerr *err) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > 255 || strchr(name, '/') || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0)
    return qerr_set(err, EINVAL, "invalid cgroup name \"%s\"", name ? name : "(null)");
  return 0;
}

static int cg_new(struct cgroup_manager *m, const char *name, bool exists, struct cgroup **out,
                  struct qerr *err) {
  *out = NULL;
  if (check_name(name, err) < 0)
    return err->code;
  struct cgroup *cg = calloc(1, sizeof *cg);
  if (cg == NULL || (cg->name = strdup(name)) == NULL) {
    free(cg);
    return qerr_set(err, ENOMEM, "out of memory");
  }
  cg->ops = m->ops;
  cg->v2_fd = -1;
  if (m->ops->create(m, cg, exists, err) < 0) {
    cg_free(cg);
    return err->code;
  }
  *out = cg;
  return 0;
}

int cgroup_create(struct cgroup_manager *m, const char *name, const struct cgroup_limits *lim,
                  struct cgroup **out, struct qerr *err) {
  static const struct cgroup_limits none = {0, 0, -1};
  struct cgroup *cg;
  if (cg_new(m, name, false, &cg, err) < 0)
    return err->code;
  if (cg->ops->apply(cg, lim ? lim : &none, err) < 0) {
    /* Leave nothing half-configured behind; the directories are empty. */
    struct qerr ignored = QERR_INIT;
    cg->ops->remove(cg, &ignored);
    cg_free(cg);
    return qerr_wrap(err, "creating cgroup %s", name);
  }
  *out = cg;
  return 0;
}

int cgroup_open(struct cgroup_manager *m, const char *name, struct cgroup **out,
                struct qerr *err) {
  return cg_new(m, name, true, out, err);
}

int cgroup_fd(const struct cgroup *cg) { return cg->v2_fd; }

int cgroup_attach(struct cgroup *cg, pid_t pid, struct qerr *err) {
  return cg->ops->attach(cg, pid, err);
}

int cgroup_apply(struct cgroup *cg, const struct cgroup_limits *lim, struct qerr *err) {
  return cg->ops->apply(cg, lim, err);
}

size_t cgroup_dirs(const struct cgroup *cg, const char **out, size_t cap) {
  size_t n = 0;
  if (cg->v2_path && n < cap)
    out[n++] = cg->v2_path;
  for (size_t i = 0; i < cg->nhier && n < cap; i++)
    if (cg->dir[i].parent)
      out[n++] = cg->dir[i].parent;
  return n;
}

int cgroup_procs_fds(const struct cgroup *cg, int *fds, size_t cap, struct qerr *err) {
  const char *dirs[CG_NCTRL + 1];
  size_t ndirs = cgroup_dirs(cg, dirs, ARRAY_SIZE(dirs));
  size_t n = 0;
  for (size_t i = 0; i < ndirs; i++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
    int fd = n < cap ? open(path, O_WRONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
      int e = n < cap ? errno : E2BIG;
      while (n > 0)
        close(fds[--n]);
      errno = e;
      return qerr_errno(err, "opening %s", path);
    }
    fds[n++] = fd;
  }
  return (int)n;
}

int cgroup_read_stats(struct cgroup *cg, struct cgroup_stats *st, struct qerr *err) {
  memset(st, 0, sizeof *st);
  return cg->ops->stats(cg, st, err);
}

int cgroup_oom_kills(struct cgroup *cg, uint64_t *count, struct qerr *err) {
  *count = 0;
  return cg->ops->oom_kills(cg, count, err);
}

const char *cgroup_events_path(const struct cgroup *cg) { return cg->events_path; }

int cgroup_kill_all(struct cgroup *cg, struct qerr *err) {
  /* The usual case at exit: PID 1 took everything with it. Freezing an
   * empty v1 cgroup still costs a kernel text patch, so skip it all. */
  if (cg->ops->nprocs(cg) == 0)
    return 0;
  return cg->ops->kill_all(cg, err);
}

int cgroup_nprocs(struct cgroup *cg) { return cg->ops->nprocs(cg); }

int cgroup_freeze(struct cgroup *cg, bool frozen, struct qerr *err) {
  return cg->ops->freeze(cg, frozen, err);
}

int cgroup_destroy(struct cgroup *cg, struct qerr *err) {
  int r = cg->ops->remove(cg, err);
  cg_free(cg);
  return r;
}

void cgroup_close(struct cgroup *cg) { cg_free(cg); }
