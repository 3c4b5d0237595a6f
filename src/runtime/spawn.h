/* Starting a container's init process: clone3 into new namespaces (and,
 * on cgroup v2, straight into its cgroup), then in the child: mounts,
 * pivot_root, hostname, loopback, user, working directory, exec. A failure
 * before exec is reported to the parent over a close-on-exec pipe, so the
 * caller learns "command not found" instead of a bare exit 127. */
#ifndef QUILT_RUNTIME_SPAWN_H
#define QUILT_RUNTIME_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/qerr.h"

struct spawn_spec {
  const char *rootfs;      /* absolute directory; the container's / */
  /* When set, rootfs is the mount point of an overlay of these, mounted in
   * the container's own mount namespace (gone when the container is). */
  const char *overlay_lower, *overlay_upper, *overlay_work;
  char *const *argv;       /* NULL-terminated, argv[0] resolved via env PATH */
  char *const *env;        /* NULL-terminated KEY=VALUE */
  const char *cwd;         /* "" or NULL: "/" */
  const char *hostname;    /* set when a UTS namespace is created */
  const char *user;        /* "", "uid[:gid]" or a name from /etc/passwd */
  int ns_flags;            /* CLONE_NEW*; with CLONE_NEWUSER set the id map */
  uid_t userns_base;       /* host id that root in the container maps to */
  unsigned userns_count;   /* ids mapped, from container id 0 */
  int cgroup_fd;           /* v2 cgroup dir for CLONE_INTO_CGROUP, or -1 */
  int stdio[3];            /* fds that become 0, 1, 2 */
  bool readonly_sys;       /* mount /sys read-only (always true today) */
};

struct spawn_result {
  pid_t pid;
  int pidfd;
  int status_fd;           /* read end: EOF once exec succeeded */
};

/* Clones the child, which waits until spawn_release(). Between the two, the
 * caller attaches v1 cgroups. On success the caller owns pidfd and
 * status_fd. */
int spawn_start(const struct spawn_spec *spec, struct spawn_result *res, int *release_fd,
                struct qerr *err);
/* Writes the child's uid/gid maps (user namespace only). */
int spawn_map_ids(pid_t pid, uid_t base, unsigned count, struct qerr *err);
/* Lets the child go on to set up and exec; closes release_fd. */
int spawn_release(int release_fd, struct qerr *err);

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
