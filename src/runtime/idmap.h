/* Image trees seen through an ID mapping, for containers with a user
 * namespace.
 *
 * Inside a user namespace whose root is host uid BASE, an image's files
 * (owned by host 0) would show up as the overflow id and root could change
 * none of them. An idmapped mount (mount_setattr MOUNT_ATTR_IDMAP, kernel
 * >= 5.12, under overlayfs >= 5.19) shows host id N as BASE + N, so the
 * container sees its image owned by its own root, with nothing copied. The
 * mounts are detached trees (open_tree OPEN_TREE_CLONE), one per image
 * directory, made once and kept as fds; a sandbox inherits the fd and
 * attaches the tree inside its own mount namespace (move_mount) as the
 * overlay's lower layer. The host's mount table never shows them.
 *
 * Where the kernel refuses (or with --no-idmap), a copy of the image with
 * every owner shifted by BASE is made once per image and range, next to
 * the image (<image>-shifted-BASE), and used as the lower layer instead. */
#ifndef QUILT_RUNTIME_IDMAP_H
#define QUILT_RUNTIME_IDMAP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/qerr.h"

#define IDMAP_MAX_TREES 64

struct idmap_tree {
  char dir[PATH_MAX];  /* the image directory */
  int fd;              /* its idmapped detached tree */
};

struct idmap_cache {
  uid_t base;
  unsigned count;
  bool disabled;       /* --no-idmap, or the kernel said no: shifted copies */
  int userns_fd;       /* a namespace with the mapping 0 -> base, count; -1 until needed */
  struct idmap_tree trees[IDMAP_MAX_TREES];
  unsigned n;
};

void idmap_init(struct idmap_cache *m, uid_t base, unsigned count, bool disabled);
/* The lower layer a user-namespaced container of image directory `dir`
 * uses: *fd >= 0 is a fresh copy of the image's idmapped tree for this
 * container to attach (the caller closes it; out is ""), else out is the
 * path of the shifted copy (made now if missing). */
int idmap_lower(struct idmap_cache *m, const char *dir, int *fd, char out[PATH_MAX],
                struct qerr *err);
/* Forgets (closes) the trees of image directories under `prefix`. */
void idmap_forget(struct idmap_cache *m, const char *prefix);
void idmap_free(struct idmap_cache *m);

#endif
