/* Container cgroups on cgroup v2 (unified) and v1 (legacy/hybrid) behind one
 * interface. Container cgroups are created beneath the daemon's own cgroup
 * (from /proc/self/cgroup) or beneath a configured parent, never at a
 * hierarchy's root. */
#ifndef QUILT_RUNTIME_CGROUP_H
#define QUILT_RUNTIME_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/qerr.h"
#include "runtime/sysinfo.h"

struct cgroup_limits {
  uint64_t memory_bytes;  /* 0: no limit. Swap is disabled where possible. */
  uint32_t cpu_percent;   /* of one CPU, quota over a 100 ms period; 0: no limit */
  int64_t pids;           /* -1 or 0: no limit */
};

struct cgroup_stats {
  uint64_t memory_current, memory_peak, memory_limit; /* bytes; limit 0 = none */
  uint64_t cpu_usage_ns;
  uint64_t pids_current, pids_limit;                  /* limit 0 = none */
};

struct cgroup_manager;
struct cgroup;

/* sysfs_root is normally "/sys/fs/cgroup" (tests may point elsewhere).
 * parent: NULL to nest under the daemon's own cgroup in each hierarchy plus
 * "quilt"; else a path relative to each hierarchy's root. On v2 the daemon
 * may move itself into a leaf so controllers can be enabled for children. */
int cgroup_manager_new(struct cgroup_manager **out, const char *sysfs_root, const char *parent,
                       struct qerr *err);
void cgroup_manager_free(struct cgroup_manager *m);
enum cgroup_mode cgroup_manager_mode(const struct cgroup_manager *m);
/* Human-readable: "unified:/sys/fs/cgroup/x/quilt" or "v1:memory=...,cpu=...". */
const char *cgroup_manager_describe(const struct cgroup_manager *m);

/* Creates the cgroup `name` (a container id) and applies the limits. */
int cgroup_create(struct cgroup_manager *m, const char *name, const struct cgroup_limits *lim,
                  struct cgroup **out, struct qerr *err);
/* Opens an existing cgroup (daemon restart); -ENOENT if none. */
int cgroup_open(struct cgroup_manager *m, const char *name, struct cgroup **out,
                struct qerr *err);
/* v2: an O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP); -1 on v1. Owned by cg. */
int cgroup_fd(const struct cgroup *cg);
/* Moves pid into the cgroup (every v1 hierarchy). */
int cgroup_attach(struct cgroup *cg, pid_t pid, struct qerr *err);
/* Opens cgroup.procs in every directory of the cgroup (each v1 hierarchy,
 * or the v2 one), for a child to write "0" into, joining by itself.
 * Returns how many, or a negative errno. */
int cgroup_procs_fds(const struct cgroup *cg, int *fds, size_t cap, struct qerr *err);
/* The cgroup's directories (borrowed from cg); returns how many. */
size_t cgroup_dirs(const struct cgroup *cg, const char **out, size_t cap);
/* Sets the limits of an existing cgroup (a warm sandbox's, at take time). */
int cgroup_apply(struct cgroup *cg, const struct cgroup_limits *lim, struct qerr *err);
int cgroup_read_stats(struct cgroup *cg, struct cgroup_stats *st, struct qerr *err);
/* Number of OOM kills recorded for this cgroup so far. */
int cgroup_oom_kills(struct cgroup *cg, uint64_t *count, struct qerr *err);
/* Path of the file whose modification signals memory events (v2
 * memory.events; v1: NULL — poll cgroup_oom_kills at exit instead). */
const char *cgroup_events_path(const struct cgroup *cg);
/* SIGKILLs every process in the cgroup (cgroup.kill where available). */
int cgroup_kill_all(struct cgroup *cg, struct qerr *err);
/* Number of processes still in the cgroup. */
int cgroup_nprocs(struct cgroup *cg);
/* Freezes/thaws (v2 cgroup.freeze, v1 freezer). */
int cgroup_freeze(struct cgroup *cg, bool frozen, struct qerr *err);
/* Removes the cgroup directories (every hierarchy) and frees cg. Fails with
 * -EBUSY while processes remain; cg is freed either way. */
int cgroup_destroy(struct cgroup *cg, struct qerr *err);
/* Frees cg without removing anything. */
void cgroup_close(struct cgroup *cg);

/* Pure helpers (unit-tested). */
void cgroup_cpu_quota(uint32_t percent, int64_t *quota_us, uint64_t *period_us);
/* Parses /proc/self/cgroup text: for v2 (controller == NULL) the "0::" line,
 * else the line whose controller list contains `controller`. */
int cgroup_parse_self(const char *text, const char *controller, char *out, size_t cap);

#endif
