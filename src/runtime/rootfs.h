/* Where a container's root filesystem comes from. Today: a directory on
 * the host (an unpacked rootfs), viewed through a per-container overlay so
 * containers never write into it. The image store (content-addressed,
 * extracted tarballs) slots in behind the same two calls. */
#ifndef QUILT_RUNTIME_ROOTFS_H
#define QUILT_RUNTIME_ROOTFS_H

#include <limits.h>
#include <stdbool.h>

#include "common/qerr.h"

struct rootfs_view {
  bool overlay;              /* false: rootfs is `lower` itself, bound */
  char lower[PATH_MAX];
  char upper[PATH_MAX];
  char work[PATH_MAX];
  char merged[PATH_MAX];     /* the container's / */
};

/* True when the kernel lists overlay in /proc/filesystems. */
bool rootfs_overlay_supported(void);

/* Prepares a view of `image` (an absolute directory path) for a container
 * whose private directory is `container_dir`. */
int rootfs_prepare(const char *image, const char *container_dir, bool use_overlay,
                   struct rootfs_view *out, struct qerr *err);
/* Removes what rootfs_prepare created under container_dir. */
int rootfs_release(const char *container_dir, struct qerr *err);

#endif
