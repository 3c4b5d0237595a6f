/* Filesystem operations quilt-extract needs to apply image layers on top of
 * each other: whiteouts, opaque directories and type replacements. Every
 * path is relative to a root directory fd, normalised (xc_normalize: no
 * "..", no leading slash; "" is the root), and walked one component at a
 * time with O_NOFOLLOW: a symlink is never followed, so nothing outside the
 * root can be reached or removed, even without the chroot. At most two fds
 * are open at any time, whatever the depth. Errors are negative errnos. */
#ifndef QUILT_EXTRACT_LAYERS_H
#define QUILT_EXTRACT_LAYERS_H

#include <stdbool.h>
#include <stddef.h>

/* Opens the directory rel without following symlinks (-ELOOP when a
 * component is a symlink, -ENOTDIR when it is not a directory). */
int lay_open_dir(int rootfd, const char *rel);

/* Removes rel (a file, or a directory and everything in it). A missing path,
 * or one below a symlink or a non-directory, is nothing to remove: 0. */
int lay_remove(int rootfd, const char *rel);

/* Removes everything inside the directory rel (an opaque directory). 0 when
 * rel is missing or not a real directory. */
int lay_clear_dir(int rootfd, const char *rel);

/* Before an entry of a new layer is written at rel: every existing parent
 * must be a real directory (a symlink or a file put there by an earlier
 * layer is refused, why says so, return 1); an existing rel of the other
 * kind (directory vs non-directory; a symlink counts as a non-directory) is
 * removed so the entry can replace it. 0 when ready, negative errno on I/O
 * failure. */
int lay_prepare(int rootfd, const char *rel, bool is_dir, char *why, size_t whylen);

#endif
