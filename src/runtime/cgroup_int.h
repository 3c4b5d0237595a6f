/* Internals shared by cgroup.c (public entry points, file helpers) and the
 * two backends, cgroup_v1.c and cgroup_v2.c. Not part of the API. */
#ifndef QUILT_RUNTIME_CGROUP_INT_H
#define QUILT_RUNTIME_CGROUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/cgroup.h"

/* The controllers Quilt uses. On v2 only memory, cpu and pids are enabled
 * explicitly: cpu accounting (cpu.stat) and the freezer are core files. */
enum cg_ctrl { CG_MEMORY, CG_CPU, CG_CPUACCT, CG_PIDS, CG_FREEZER, CG_NCTRL };
#define CG_BIT(c) (1u << (c))

/* How long freeze waits for the kernel to report the state, and how long
 * kill_all waits for the cgroup to empty. */
#define CG_WAIT_MS 1000
#define CG_POLL_MS 10

/* One v1 hierarchy; cpu and cpuacct share one when co-mounted. */
struct cg_hier {
  char *parent;   /* absolute directory container cgroups are created in */
  unsigned ctrls; /* CG_BIT()s of the controllers mounted there */
};

struct cg_ops;

struct cgroup_manager {
  enum cgroup_mode mode;
  const struct cg_ops *ops;
  char *describe;
  char *v2_parent;   /* v2: absolute directory of the parent */
  unsigned v2_ctrls; /* v2: controllers enabled for the parent's children */
  struct cg_hier hier[CG_NCTRL]; /* v1 */
  size_t nhier;
};

/* A cgroup copies what it needs from its manager, so it may outlive it. */
struct cgroup {
  const struct cg_ops *ops;
  char *name;
  char *v2_path;     /* v2: absolute directory */
  int v2_fd;         /* v2: O_PATH fd of v2_path; -1 on v1 */
  char *events_path; /* v2: memory.events when the memory controller is on */
  unsigned v2_ctrls;
  struct cg_hier dir[CG_NCTRL]; /* v1: per hierarchy; parent = our dir or NULL */
  size_t nhier;
};

/* A backend. `create` makes (or, with `exists`, finds) the directories and
 * fills the backend fields of cg; the rest mirror the public functions. */
struct cg_ops {
  int (*setup)(struct cgroup_manager *m, const char *root, const char *parent,
               const char *self, struct qerr *err);
  int (*create)(const struct cgroup_manager *m, struct cgroup *cg, bool exists,
                struct qerr *err);
  int (*apply)(struct cgroup *cg, const struct cgroup_limits *lim, struct qerr *err);
  int (*attach)(struct cgroup *cg, pid_t pid, struct qerr *err);
  int (*stats)(struct cgroup *cg, struct cgroup_stats *st, struct qerr *err);
  int (*oom_kills)(struct cgroup *cg, uint64_t *count, struct qerr *err);
  int (*kill_all)(struct cgroup *cg, struct qerr *err);
  int (*nprocs)(struct cgroup *cg);
  int (*freeze)(struct cgroup *cg, bool frozen, struct qerr *err);
  int (*remove)(struct cgroup *cg, struct qerr *err);
};

extern const struct cg_ops cg_v1_ops;
extern const struct cg_ops cg_v2_ops;

extern const char *const cg_ctrl_names[CG_NCTRL];

/* ---- helpers in cgroup.c; all take absolute directories. */

/* "a/b" without doubled slashes; NULL on ENOMEM. */
char *cg_join(const char *a, const char *b);
/* Like cgroup_parse_self, also returning the line's controller list. */
int cg_parse_self_line(const char *text, const char *controller, char *list, size_t lcap,
                       char *path, size_t pcap);
bool cg_file_exists(const char *dir, const char *file);
int cg_write(const char *dir, const char *file, const char *val, struct qerr *err);
/* Whole file, NUL-terminated, in *out (caller frees). */
int cg_read(const char *dir, const char *file, char **out, struct qerr *err);
/* A number or "max" (→ 0); a missing file reads as 0 when `optional`. */
int cg_read_u64(const char *dir, const char *file, bool optional, uint64_t *v,
                struct qerr *err);
/* The value of the "key N" line of a flat-keyed file; 0 if the key is absent. */
int cg_read_key(const char *dir, const char *file, const char *key, bool optional,
                uint64_t *v, struct qerr *err);
/* mkdir; EEXIST is success when exist_ok. */
int cg_mkdir(const char *path, bool exist_ok, struct qerr *err);
/* mkdir -p of `rel` beneath the existing directory `base`. */
int cg_mkdir_p(const char *base, const char *rel, struct qerr *err);
/* The pids in dir/cgroup.procs: returns the count, *out malloc'd. */
int cg_read_procs(const char *dir, pid_t **out, struct qerr *err);
/* Counts the pids in dir/cgroup.procs (negative errno on failure). */
int cg_count_procs(const char *dir);
/* One pass of SIGKILL over dir/cgroup.procs; returns how many were listed. */
int cg_signal_procs(const char *dir, struct qerr *err);
/* SIGKILLs what dir/cgroup.procs lists, again until it is empty or
 * CG_WAIT_MS passed (new children may appear between reads). */
int cg_kill_procs(const char *dir, struct qerr *err);
/* Waits until dir/cgroup.procs is empty, up to CG_WAIT_MS; -EBUSY after. */
int cg_wait_empty(const char *dir, struct qerr *err);
/* rmdir with a few retries for the transient EBUSY right after the last
 * process exits; ENOENT counts as success. */
int cg_rmdir(const char *path, struct qerr *err);
void cg_sleep_ms(unsigned ms);

#endif
