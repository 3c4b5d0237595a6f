/* A container's mounts (ContainerSpec.mounts): checked at create, turned
 * into what the spawn child mounts (spawn_mount) at each start.
 *
 * A bind source is canonicalised (realpath) and must not be, or lie under,
 * a denied path: /proc, /sys, /dev, /boot, the daemon's root and the
 * --mount-deny paths; "/" itself is denied but not what lies under it, and
 * neither is any ancestor of the daemon's root (binding /var would show
 * the containers of /var/lib/quilt). The check runs again at start: the
 * host may have changed between the two. */
#ifndef QUILT_RUNTIME_MOUNTS_H
#define QUILT_RUNTIME_MOUNTS_H

#include <limits.h>
#include <stddef.h>

#include "common/qerr.h"
#include "quilt.pb-c.h"
#include "runtime/spawn.h"

#define MOUNTS_MAX 32

struct mount_policy {
  const char *root_dir;             /* the daemon's --root */
  const char *const *deny;          /* --mount-deny paths, added to the defaults */
  size_t n_deny;
};

/* Checks every mount of a spec; INVALID_ARGUMENT, NOT_FOUND or
 * FAILED_PRECONDITION with a message naming the mount. */
int mounts_validate(const struct mount_policy *pol, Quilt__V1__Mount *const *m, size_t n,
                    struct qerr *err);

/* One mount checked; for a bind, canon gets the canonical source. */
int mount_check(const struct mount_policy *pol, const Quilt__V1__Mount *m,
                char canon[PATH_MAX], struct qerr *err);

/* The spawn child's list; strings are owned by the plan. */
struct mount_plan {
  struct spawn_mount m[MOUNTS_MAX];
  char src[MOUNTS_MAX][PATH_MAX];
  size_t n;
};

/* Checks again and resolves volumes to <root>/volumes/<name>/data. */
int mounts_plan(const struct mount_policy *pol, Quilt__V1__Mount *const *m, size_t n,
                struct mount_plan *plan, struct qerr *err);

#endif
