/* Where a container's root filesystem comes from: a directory on the host
 * (an image of the store, or an unpacked rootfs) that containers must never
 * write into. Each container gets its own view of it:
 *   ROOTFS_OVERLAY  an overlay: the image as the lower layer, a private
 *                   upper and work dir; mounted by the container's setup.
 *   ROOTFS_COPY     where overlayfs is unavailable: a private copy of the
 *                   image (treecopy.h; reflinked where the filesystem can),
 *                   which the container's setup binds writable. */
#ifndef QUILT_RUNTIME_ROOTFS_H
#define QUILT_RUNTIME_ROOTFS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/qerr.h"

/* The values are those of the bool use_overlay this replaced, so a caller
 * still passing that bool keeps its meaning. */
enum rootfs_mode {
  ROOTFS_COPY = 0,
  ROOTFS_OVERLAY = 1,
};

struct rootfs_view {
  bool overlay;              /* mount an overlay of lower/upper/work on merged */
  bool copied;               /* merged is a private copy of lower: bind it writable */
  char lower[PATH_MAX];      /* the image */
  char upper[PATH_MAX];      /* overlay only */
  char work[PATH_MAX];       /* overlay only */
  char merged[PATH_MAX];     /* the container's /: <container_dir>/rootfs */
};

/* True when the kernel lists overlay in /proc/filesystems. */
bool rootfs_overlay_supported(void);
/* How GetSystemInfo should name the copy mode for containers kept under
 * dir: "copy (reflink)" when the filesystem there can clone files, which
 * makes a copy cost little more than its metadata, else "copy". */
const char *rootfs_copy_driver(const char *dir);

/* Prepares a view of `image` (an absolute directory path) for a container
 * whose private directory is `container_dir` (it must exist). In copy
 * mode this copies the whole tree: it costs what the image's metadata
 * (and, without reflinks, its data) costs to write. On failure nothing is
 * left under container_dir. */
int rootfs_prepare(const char *image, const char *container_dir, enum rootfs_mode mode,
                   struct rootfs_view *out, struct qerr *err);
/* The same for a container in a user namespace whose root is host uid and
 * gid id_base: a copy is owned by the shifted ids, as if the image had been
 * extracted in the namespace. Overlay mode ignores id_base (the container
 * owns only its upper layer; own it after this call). */
int rootfs_prepare_shifted(const char *image, const char *container_dir, enum rootfs_mode mode,
                           uid_t id_base, struct rootfs_view *out, struct qerr *err);
/* The view rootfs_prepare would make, without touching the disk: for the
 * daemon, while a warm sandbox's own process does the preparing. */
int rootfs_plan(const char *image, const char *container_dir, enum rootfs_mode mode,
                struct rootfs_view *out, struct qerr *err);
/* Removes what rootfs_prepare created under container_dir (the overlay's
 * directories or the copy). */
int rootfs_release(const char *container_dir, struct qerr *err);

#endif
