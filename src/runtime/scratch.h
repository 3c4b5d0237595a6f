/* Where containers' writable layers live: their overlay's upper, work and
 * mount point directories.
 *
 * By default a tmpfs that quiltd mounts at <root>/scratch (like gVisor's
 * memory-backed rootfs overlay). Every container creates and deletes a
 * dozen directories and files there (overlay's work dir and its mount-time
 * checks included); on a disk filesystem that is inode allocation and
 * freeing, journal writes and, with `discard`, a discard per freed block:
 * about a fifth of a short container's CPU. Pages a container writes there
 * are charged to its memory cgroup, so its memory limit bounds its files
 * too. The mount outlives quiltd (the layers of stopped containers survive
 * a restart) but not a reboot; quiltd unmounts it when it stops with no
 * layer left in it.
 *
 * `--scratch disk` keeps them on the disk, in <root>/containers/<id>, with
 * the rest of the container's files. Copies (no overlayfs) always do. */
#ifndef QUILT_RUNTIME_SCRATCH_H
#define QUILT_RUNTIME_SCRATCH_H

#include <limits.h>
#include <stdbool.h>

#include "common/qerr.h"

struct scratch {
  char root[PATH_MAX];  /* <root>/scratch, or <root>/containers on the disk */
  bool tmpfs;           /* root is the tmpfs */
};

/* Sets s up under root_dir: mounts the tmpfs (size: tmpfs's size= syntax,
 * e.g. "50%" or "8g") unless it is there from an earlier run, or, with
 * want_tmpfs false, uses the disk. A failed mount falls back to the disk
 * with a warning. */
int scratch_open(struct scratch *s, const char *root_dir, bool want_tmpfs, const char *size,
                 struct qerr *err);
/* <scratch root>/<id>: the directory holding that container's layer. */
int scratch_dir(const struct scratch *s, const char *id, char out[PATH_MAX], struct qerr *err);
/* True when a size is tmpfs's size= syntax: digits and k, m, g or %. */
bool scratch_size_valid(const char *size);
/* At exit: unmounts the tmpfs when no container's layer is left in it. */
void scratch_close(struct scratch *s);

#endif
