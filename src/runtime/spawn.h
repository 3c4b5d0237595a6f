/* Starting a container's init process in two halves.
 *
 * spawn_sandbox() clones the child into a new PID (and, if asked, user)
 * namespace; the child joins its cgroup, unshares the other namespaces,
 * mounts its rootfs, pivots into it, brings up lo, and then blocks on its
 * control pipe. spawn_send_exec() later tells it what to run: hostname,
 * user, working directory, argv, env. The split lets quiltd build sandboxes
 * before anyone asks for them (the warm pool) and hand one out with a pipe
 * write; a cold start just sends the exec record at once.
 *
 * A failure before exec is reported to the parent over a close-on-exec
 * status pipe, so the caller learns "command not found" instead of a bare
 * exit 127: EOF on that pipe means the exec succeeded. */
#ifndef QUILT_RUNTIME_SPAWN_H
#define QUILT_RUNTIME_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/qerr.h"
#include "common/strbuf.h"

#define SPAWN_MAX_CGROUP_FDS 8

struct sock_fprog;

/* A mount of the container's own (mounts.h builds them from its spec). */
struct spawn_mount {
  bool tmpfs;              /* else a recursive bind of source */
  const char *source;      /* absolute host path (a volume's data dir too) */
  const char *target;      /* absolute, resolved inside the rootfs */
  bool readonly;
  uint64_t size_bytes;     /* tmpfs; 0: the kernel's default */
};

/* What the container's world looks like; fixed when it is cloned. */
struct spawn_sandbox {
  const char *rootfs;      /* absolute directory; the container's / */
  /* When set, rootfs is the mount point of an overlay of these, mounted in
   * the container's own mount namespace (gone when the container is). */
  const char *overlay_lower, *overlay_upper, *overlay_work;
  /* A detached (idmapped) tree the child attaches at lower_tree_at, in its
   * own mount namespace, before the overlay mount names it; -1: none. */
  int lower_tree_fd;
  const char *lower_tree_at;
  bool rootfs_writable;    /* no overlay: a private copy (rw) or the image (ro) */
  int ns_flags;            /* CLONE_NEW*; with CLONE_NEWUSER set the id map */
  int clone_ns;            /* those of ns_flags to create at clone time rather
                              than in the child (the caller needs them at once) */
  uid_t userns_base;       /* host id that root in the container maps to */
  unsigned userns_count;   /* ids mapped, from container id 0 */
  int cgroup_fd;           /* v2 cgroup dir for CLONE_INTO_CGROUP, or -1 */
  /* v1: the cgroup.procs files the child writes "0" into, moving itself:
   * the attach (which may wait for an RCU grace period) then blocks the
   * child, never the daemon's loop. */
  int cgroup_procs[SPAWN_MAX_CGROUP_FDS];
  size_t n_cgroup_procs;
  int stdio[3];            /* fds that become 0, 1, 2 */
  /* A network namespace an exited container left (pool.h), joined instead
   * of making one when no packet has crossed it: then nothing of the old
   * container is left in it and it is as good as new, for none of the cost
   * of creating one (and of the kernel's tearing one down). -1: none. */
  int netns_fd;
  /* The child becomes the caller's sibling (CLONE_PARENT): the zygote
   * (zygote.h) builds sandboxes that are quiltd's children. */
  bool clone_parent;
  /* An fd of the caller's the child closes first (the zygote's socket:
   * a sandbox has no business with it); -1: none. */
  int close_in_child;
  /* Runs first in the child: a warm sandbox makes its own directories and
   * cgroup there, off the daemon's loop, adding the cgroup.procs fds to
   * join to procs[*n]. Returns 0 or fills err. */
  int (*child_setup)(void *arg, int *procs, size_t *n, struct qerr *err);
  void *child_arg;
  /* Write SPAWN_READY to the status pipe once built, before waiting for
   * the exec record: how the pool tells a ready sandbox from one still
   * mounting. */
  bool announce_ready;
  /* Install the seccomp filter once built, before waiting for the exec
   * record, instead of just before execve: a warm sandbox pays for it off
   * the request path. The steps left (reading the record, hostname, user,
   * capabilities, execve) are all allowed by the filter; the record may
   * then not ask for SPAWN_SECCOMP_UNCONFINED. */
  bool seccomp_early;
  /* Leave /proc's sensitive files visible and writable: no masked paths
   * (/proc/kcore, /proc/keys, /sys/firmware, ...) and no read-only ones
   * (/proc/sys, /proc/sysrq-trigger, ...). A power user's switch. */
  bool unmasked;
  /* The seccomp filter the command runs under unless its exec record says
   * unconfined; NULL: none. Built once by the daemon (seccomp.h): the child,
   * a copy of the daemon, reads it from its own memory. */
  const struct sock_fprog *seccomp;
  /* The container's mounts, made last, after /proc, /dev, /sys and /tmp. */
  const struct spawn_mount *mounts;
  size_t n_mounts;
};

#define SPAWN_READY 'R'
enum spawn_state { SPAWN_BUILDING, SPAWN_WAITING, SPAWN_GONE };
/* Reads a warm sandbox's state from its status pipe without blocking:
 * consumes the ready byte (noting it in *ready_seen); GONE when it died or
 * failed (err says why). */
enum spawn_state spawn_poll_ready(int status_fd, bool *ready_seen, struct qerr *err);

/* What runs in it. */
struct spawn_exec {
  char *const *argv;       /* NULL-terminated, argv[0] resolved via env PATH */
  char *const *env;        /* NULL-terminated KEY=VALUE */
  const char *cwd;         /* "" or NULL: "/" */
  const char *hostname;    /* set when a UTS namespace was created */
  const char *user;        /* "", "uid[:gid]" or a name from /etc/passwd */
  const char *resolv_conf; /* "" or NULL: leave /etc/resolv.conf; else its text */
  uint64_t caps;           /* capabilities kept (caps.h), e.g. CAPS_DEFAULT */
  unsigned flags;          /* SPAWN_* below */
};

/* A process started inside a running container (exec): it joins the
 * namespaces of the container's main process through its pidfd and its
 * cgroup, then is hardened like the main process (spawn_exec's caps and
 * flags, the seccomp filter) before its execve. */
struct spawn_join {
  int target_pidfd;        /* the container's main process */
  int ns_flags;            /* the container's namespaces (CLONE_NEW*) */
  int cgroup_fd;           /* v2 cgroup dir for CLONE_INTO_CGROUP, or -1 */
  int cgroup_procs[SPAWN_MAX_CGROUP_FDS]; /* v1: cgroup.procs files to join */
  size_t n_cgroup_procs;
  int stdio[3];            /* fds that become 0, 1, 2 */
  bool tty;                /* stdio is a terminal: make it the controlling one */
  const struct sock_fprog *seccomp; /* NULL: none */
};

/* Run without the sandbox's seccomp filter. */
#define SPAWN_SECCOMP_UNCONFINED 1u

struct spawn_result {
  pid_t pid;
  int pidfd;
  int status_fd;           /* read end: EOF once exec succeeded */
  int ctl_fd;              /* write end (non-blocking): release, then the exec record */
};

/* Starts ex in the container; res gets pid, pidfd and the status pipe
 * (EOF once execve succeeded, else a spawn_failure); ctl_fd is -1. */
int spawn_join(const struct spawn_join *j, const struct spawn_exec *ex,
               struct spawn_result *res, struct qerr *err);

/* Clones the child. With CLONE_NEWUSER it waits for spawn_release() (after
 * spawn_map_ids()); otherwise it builds its sandbox at once. On success the
 * caller owns the three fds of res. */
int spawn_sandbox(const struct spawn_sandbox *sb, struct spawn_result *res, struct qerr *err);
/* Writes the child's uid/gid maps (user namespace only). */
int spawn_map_ids(pid_t pid, uid_t base, unsigned count, struct qerr *err);
/* Lets a user-namespaced child go on to build its sandbox. */
int spawn_release(int ctl_fd, struct qerr *err);
/* Sends what to run and closes ctl_fd (in every case). Never blocks: the
 * pipe is grown to hold the record, which may be up to 1 MiB. */
int spawn_send_exec(int ctl_fd, const struct spawn_exec *ex, struct qerr *err);

/* The exec record on the wire (pure; unit-tested). pack appends to out. */
#define SPAWN_EXEC_MAX (1u << 20)
int spawn_exec_pack(const struct spawn_exec *ex, struct strbuf *out, struct qerr *err);
/* Parses a record body (after its 4-byte length) in place: the strings
 * point into buf; *vecs (argv then env, both NULL-terminated) is malloc'd. */
int spawn_exec_unpack(char *buf, size_t len, struct spawn_exec *ex, char ***vecs);

/* What the child writes to the status pipe when it fails before exec. */
struct spawn_failure {
  int err;                 /* positive errno */
  int status;              /* gRPC status to answer with */
  char msg[480];
};

/* Parses a failure record read from status_fd (n bytes). */
int spawn_parse_failure(const void *buf, size_t n, struct qerr *err);

/* Resolves "uid[:gid]" or a user name against an /etc/passwd text. Pure. */
int spawn_parse_user(const char *user, const char *passwd, uid_t *uid, gid_t *gid,
                     struct qerr *err);

#endif
