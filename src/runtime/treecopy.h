/* A private, writable copy of a directory tree: the rootfs of a container
 * where overlayfs is unavailable (rootfs.c, ROOTFS_COPY).
 *
 * What `cp -a --reflink=auto` would do, from file descriptors: the walk
 * opens every directory with O_NOFOLLOW relative to its parent and stats
 * every entry with AT_SYMLINK_NOFOLLOW, so a symlink in the source (even
 * one pointing at ../../etc/passwd) is copied as a symlink and never
 * followed, and nothing outside `src` is ever read or written.
 *
 * Copied: directories, regular files (FICLONE reflink first, then
 * copy_file_range, then read/write; holes kept), symlinks, FIFOs, sockets
 * and device nodes; hard links between copied files (by device and inode);
 * owners (numeric, optionally shifted), modes including setuid/setgid/
 * sticky (set after the owner, which would clear them), access and
 * modification times, and the extended attributes of files and
 * directories (not of symlinks). ACLs come along as xattrs.
 *
 * Needs the privileges to chown and mknod (the daemon runs as root). On
 * failure the partial copy is left for the caller to remove (rm_rf); the
 * message names the path that failed. */
#ifndef QUILT_RUNTIME_TREECOPY_H
#define QUILT_RUNTIME_TREECOPY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/qerr.h"

struct treecopy_opts {
  /* Added to every uid and gid: a container in a user namespace whose root
   * is host id id_shift gets a tree its root owns. 0: owners as they are. */
  uid_t id_shift;
};

struct treecopy_stats {
  uint64_t dirs;
  uint64_t files;       /* regular files whose data was copied or cloned */
  uint64_t reflinked;   /* ... of which shared their blocks (FICLONE) */
  uint64_t bytes;       /* apparent size of those files */
  uint64_t symlinks;
  uint64_t hardlinks;   /* extra names of an already copied inode */
  uint64_t specials;    /* FIFOs, sockets, device nodes */
};

/* Copies the directory src (an existing directory; a symlink there is
 * refused) to dst, which must not exist and is created. opts and stats may
 * be NULL. Returns 0 or a negative errno with err naming the path. */
int treecopy(const char *src, const char *dst, const struct treecopy_opts *opts,
             struct treecopy_stats *stats, struct qerr *err);

/* True when a file in directory dir can be cloned with FICLONE (btrfs,
 * XFS with reflink, bcachefs...). Leaves nothing behind. */
bool treecopy_can_reflink(const char *dir);

#endif
