/* Containers and their lifecycle inside the daemon: create, start (clone,
 * exec result read on the ring), exit (pidfd wait on the ring), stop/kill,
 * remove, persistence and events. Service handlers call these. */
#ifndef QUILT_RUNTIME_CONTAINER_H
#define QUILT_RUNTIME_CONTAINER_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/qerr.h"
#include "io/pidwait.h"
#include "io/ring.h"
#include "io/timer.h"
#include "quilt.pb-c.h"
#include "runtime/logfmt.h"
#include "runtime/rootfs.h"

struct quiltd;
struct cgroup;
struct grpc_call;
struct log_follower;
struct ctr_waiter;
struct setup_run;

typedef Quilt__V1__ContainerState ctr_state;

struct log_pipe {
  struct qop op;
  struct container *c;
  int fd;
  enum log_stream stream;
  bool armed;
  uint8_t *buf;       /* when the ring has no provided buffers */
};

struct container {
  struct container *prev, *next;   /* d->containers */
  struct quiltd *d;
  char id[65];
  char image_id[65];               /* "" for a rootfs directory */
  char *name;                      /* "" when none */
  Quilt__V1__ContainerSpec *spec;  /* owned, unpacked */
  ctr_state state;
  pid_t pid;
  int pidfd;
  int exit_code, exit_signal;
  bool oom_killed;
  char *failure;
  int64_t created_ns, started_ns, finished_ns;
  char dir[PATH_MAX];              /* <root>/containers/<id> */
  struct rootfs_view rootfs;
  struct cgroup *cg;
  /* start: the child's exec result */
  struct qop status_op;
  int status_fd;
  uint8_t status_buf[512];
  /* exit: waitid on the pidfd */
  struct qpidwait exit_wait;
  /* logs */
  struct log_pipe out, err;
  int log_fd;
  uint64_t log_size;
  unsigned log_generation;         /* bumped at each rotation */
  struct log_follower *followers;
  /* calls waiting on this container (start, stop, wait, remove) */
  struct ctr_waiter *waiters;
  struct qtimer stop_timer;
  bool removing;                   /* remove once exited */
  bool busy;                       /* an operation holds it: do not free */
  struct container *defer_next;    /* d->deferred: exit cleanup pending */
  struct warm *warm;               /* created from the warm pool, not started yet */
  int netns_fd;                    /* its network namespace, for the pool to reuse; -1 */
  int mntns_fd;                    /* its mount namespace, released after its exit; -1 */
  char ip[16];                     /* bridge networking: "" when not attached */
  /* setup steps */
  char setup_key[65];              /* their layer, once known ("" before/none) */
  bool setup_reused;               /* the layer was there: the steps did not run */
  struct setup_run *setup;         /* while the steps run */
  struct copy_job *copies;         /* CopyIn/CopyOut in progress (copy.c) */
};

/* Validates the spec, records the container (state created) and, unless
 * no_start, starts it; the call is answered when the outcome is known. */
void container_create(struct quiltd *d, struct grpc_call *call,
                      const Quilt__V1__CreateContainerRequest *req);
void container_start_rpc(struct quiltd *d, struct grpc_call *call, struct container *c);
void container_stop_rpc(struct quiltd *d, struct grpc_call *call, struct container *c,
                        unsigned timeout_s);
/* Signals the main process; a paused container is thawed after the signal
 * was sent, so that it can act on it. */
int container_kill(struct container *c, int sig, struct qerr *err);
/* Starts an exec'd process in a running container (its namespaces,
 * cgroup, user, environment and security settings, ExecRequest's on top),
 * with stdio as its fds 0, 1, 2 (with tty, a terminal that becomes its
 * controlling terminal). */
struct spawn_result;
int container_exec_spawn(struct container *c, const Quilt__V1__ExecRequest *req,
                         const int stdio[3], bool tty, struct spawn_result *res,
                         struct qerr *err);
/* Freezes every process of a running container (state paused) / thaws a
 * paused one (running again). */
int container_pause(struct container *c, struct qerr *err);
int container_resume(struct container *c, struct qerr *err);
void container_remove_rpc(struct quiltd *d, struct grpc_call *call, struct container *c,
                          bool force);
void container_wait_rpc(struct quiltd *d, struct grpc_call *call, struct container *c);
/* Answers a WaitContainer for a container already removed (auto-remove
 * races a client's Wait); false when `ref` (full id or prefix) is unknown. */
bool container_wait_removed(struct quiltd *d, struct grpc_call *call, const char *ref);

/* A fresh random container id (64 hex digits). */
int container_new_id(char out[65], struct qerr *err);
/* Queues the removal of a container's files (or a warm sandbox's): its
 * directory and, when its writable layer lives apart (scratch.h), that. */
void container_remove_files(struct quiltd *d, const char *id, const char *dir);
/* Where a container's files come from: an image of the store (tag, id or
 * prefix), a rootfs directory, or a tarball imported on the spot; "" means
 * the default. Fills the rootfs directory and the image id ("" for a
 * directory). */
int container_resolve_image(struct quiltd *d, const char *ref, char rootfs[PATH_MAX],
                            char image_id[65], struct qerr *err);

/* The limits a container gets when its spec sets none: what the warm pool
 * applies to a sandbox's cgroup ahead of its container. */
struct cgroup_limits container_default_limits(const struct quiltd *d);

/* The namespaces the container's processes have (CLONE_NEW* flags). */
int container_ns_flags(const struct container *c);
/* Its rootfs view, also for an exited container the daemon restored
 * after a restart (only the merged dir is stored: the rest is found again,
 * its setup layer included). For copies out of a stopped container. */
int container_rootfs_view(struct container *c, struct rootfs_view *out, struct qerr *err);

/* Finds by full id, name, or unique id prefix; NOT_FOUND / ambiguous
 * errors are recorded in err. */
struct container *container_lookup(struct quiltd *d, const char *ref, struct qerr *err);
/* Fills a Container message whose strings point into c (valid until the
 * container changes); free nothing. */
void container_to_pb(const struct container *c, Quilt__V1__Container *out);
bool container_is_active(const struct container *c);
/* The log reader saw both pipes close (logs.c → container.c). */
void container_logs_drained(struct container *c);

/* Daemon start: loads stored containers, marks those lost while the daemon
 * was away, and cleans their cgroups. */
int containers_restore(struct quiltd *d, struct qerr *err);
/* Daemon stop: kills running containers (SIGTERM, then SIGKILL), removing
 * the auto-remove ones. Returns true when none is left running. */
bool containers_shutdown(struct quiltd *d);
void containers_free(struct quiltd *d);
/* Cleanup postponed until the loop has submitted the replies it queued. */
void containers_run_deferred(struct quiltd *d);

#endif
