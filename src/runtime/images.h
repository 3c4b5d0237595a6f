/* The image store: content-addressed root filesystems under
 * <root>/images/ (docs/images.md).
 *
 *   images/<id>/rootfs/   the extracted tree (what containers overlay)
 *   images/<id>/meta      text: id, created_ns, size_bytes, entries, tags
 *   images/staging/       imports in progress; emptied at every open
 *   images/tags           the tag index, "name:tag <id>" per line,
 *                         rewritten atomically (write + fsync + rename)
 *
 * An image's id is the SHA-256 (hex) of the archive bytes exactly as given,
 * compressed or not. Archives are unpacked by the quilt-extract helper in a
 * sandbox (chroot into the staging dir, few capabilities, seccomp, new
 * PID/network/IPC namespaces); a finished tree is renamed into place in one
 * step, so an <id> directory is always complete.
 *
 * Errors follow qerr.h: 0 or a negative errno, with qerr.status set where
 * the gRPC status matters: INVALID_ARGUMENT for a refused archive or a bad
 * reference/tag, NOT_FOUND for an unknown reference or a missing file.
 *
 * Single-threaded, like the daemon: one caller at a time. Imports may
 * overlap (each has its own helper and staging dir). */
#ifndef QUILT_RUNTIME_IMAGES_H
#define QUILT_RUNTIME_IMAGES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

#define IMAGE_ID_LEN 64
/* "name:tag": a name of up to 128 bytes, ':', a tag of up to 128 bytes. */
#define IMAGE_TAG_MAX 258

struct image_info {
  char id[IMAGE_ID_LEN + 1];   /* 64 lowercase hex */
  char rootfs[PATH_MAX];       /* absolute: <images>/<id>/rootfs */
  uint64_t size_bytes;         /* sum of the archive's entry sizes */
  int64_t created_ns;          /* CLOCK_REALTIME at import */
  /* "name:tag" strings, sorted. Filled by image_lookup, the imports and
   * image_list: one allocation (array and strings), released by
   * image_info_free. NULL when n_tags is 0. */
  char **tags;
  size_t n_tags;
};

/* Frees info->tags (safe on a zeroed or already freed info). */
void image_info_free(struct image_info *info);

struct image_store;

/* Opens (creating if needed, mode 0700) the store in images_dir, an
 * absolute path. Empties staging/ (imports a crash interrupted), removes
 * image directories without a valid meta file, loads the tag index
 * (rebuilding it from the meta files when it is missing).
 * extract_helper_path: the quilt-extract binary (must be executable).
 * max_bytes: the most an archive may expand to (sum of entry sizes);
 * 0 means no limit. */
int image_store_open(struct image_store **out, const char *images_dir,
                     const char *extract_helper_path, uint64_t max_bytes, struct qerr *err);
void image_store_close(struct image_store *s);
/* Limits the entries of an archive, and the files and directories it may
 * create, to n (default 1,000,000; 0: no limit). */
void image_store_set_max_entries(struct image_store *s, uint64_t n);
/* The images directory, canonical. */
const char *image_store_dir(const struct image_store *s);

/* ---- asynchronous import, driven by the daemon's ring ----------------
 *
 *   image_import_begin     staging dir + helper started; *stream_fd is the
 *                          write end of the helper's stdin (O_CLOEXEC,
 *                          blocking; set O_NONBLOCK if you want). It is the
 *                          caller's: write the archive, close it at the end.
 *   image_import_update    after each successful write, with those bytes:
 *                          they are what the id is computed from.
 *   image_import_pidfd     poll it / IORING_OP_WAITID it; reap the helper
 *                          with waitid(P_PIDFD, ..., WEXITED).
 *   image_import_finish    with the wait status: commits or cleans up.
 *   image_import_abort     instead of finish: kills, reaps, cleans up.
 *
 * A write that fails with EPIPE means the helper has exited (it refused the
 * archive): stop writing, close stream_fd, wait for the pidfd, call finish
 * to learn why. The helper reads to the end of the stream even after the
 * tar end-of-archive, so a valid archive never sees EPIPE. Its output pipe
 * is non-blocking on its side, so it never waits for the caller. */
struct image_import;

int image_import_begin(struct image_store *s, struct image_import **imp, int *stream_fd,
                       struct qerr *err);
int image_import_pidfd(const struct image_import *imp);
void image_import_update(struct image_import *imp, const void *p, size_t n);

/* Optional, right after begin when the bytes come from a regular file the
 * caller reads itself (to report progress): once the import succeeds, and
 * if the file did not change meanwhile, the store remembers its id, and
 * image_import_try_memo / image_import_file recognise it later without
 * hashing. imp keeps a duplicate of fd until finish or abort. */
int image_import_set_source(struct image_import *imp, int fd, struct qerr *err);
/* Answers at once, without hashing, when fd is a file whose id the store
 * remembers (same device, inode, size, mtime and ctime as when it was
 * imported or hashed) and that image still exists: applies the tags as an
 * import would and fills out. Returns 1 when answered (a cached import),
 * 0 when the file is unknown (import it), or a negative errno. */
int image_import_try_memo(struct image_store *s, int fd, const char *const *tags, size_t n_tags,
                          struct image_info *out, struct qerr *err);

/* Packs a waitid() result (siginfo's si_code and si_status) the way
 * waitpid() would report it: exit code << 8 for CLD_EXITED, the signal
 * number for CLD_KILLED/CLD_DUMPED. */
int image_wait_status(int code, int status);

/* Consumes imp, always. wait_status: see image_wait_status. On success the
 * tree becomes <id>/rootfs, or, when an image with that id exists already,
 * is discarded and *cached is true; then each tag ("name[:tag]", ":latest"
 * implied) is pointed at the image, moving it from any other image. out may
 * be NULL; otherwise release it with image_info_free. On failure nothing
 * is left behind; a refused archive gives INVALID_ARGUMENT and the helper's
 * line (naming the entry), a helper that died or failed INTERNAL. */
int image_import_finish(struct image_store *s, struct image_import *imp, int wait_status,
                        const char *const *tags, size_t n_tags, struct image_info *out,
                        bool *cached, struct qerr *err);
/* Kills the helper (SIGKILL), reaps it, removes the staging dir, frees imp.
 * Blocks only until the helper is gone. Do not reap it yourself first. */
void image_import_abort(struct image_store *s, struct image_import *imp);

/* ---- synchronous import of a file --------------------------------------
 * Hashes the file first: an id that exists already is answered at once
 * (tags added, *cached true) without extracting. Re-importing the same,
 * unchanged file (same device, inode, size, mtime and ctime) skips even the
 * hash: the store remembers the ids of the last files it hashed. Otherwise
 * the file is streamed into the helper and hashed again on the way; if the
 * two hashes differ (the file changed meanwhile) the import fails with
 * ABORTED. A path that is not a regular file: INVALID_ARGUMENT; a missing
 * one: NOT_FOUND. Blocks until the helper is done. */
int image_import_file(struct image_store *s, const char *path, const char *const *tags,
                      size_t n_tags, struct image_info *out, bool *cached, struct qerr *err);

/* ---- queries and changes ---------------------------------------------
 * A reference is, in this order:
 *   "sha256:<hex>"   a full id or a unique prefix of at least 4 hex digits
 *   "name:tag"       a tag
 *   64 hex digits    a full id
 *   "name"           the tag "name:latest", if it exists
 *   4-63 hex digits  a unique id prefix (ambiguous: INVALID_ARGUMENT)
 * Unknown: NOT_FOUND. Malformed: INVALID_ARGUMENT. */
int image_lookup(struct image_store *s, const char *ref, struct image_info *out,
                 struct qerr *err);
/* Calls fn for every image, oldest first; info is valid during the call
 * only (do not free it). A non-zero return from fn stops the walk and is
 * returned. */
int image_list(struct image_store *s, int (*fn)(void *arg, const struct image_info *img),
               void *arg, struct qerr *err);
size_t image_count(const struct image_store *s);
/* Removes the image ref resolves to and all its tags. The caller checks
 * that no container uses it first. The directory is renamed into staging/
 * before it is deleted, so a crash midway is finished at the next open. */
int image_remove(struct image_store *s, const char *ref, struct qerr *err);
/* What removing ref means, by `docker rmi`'s rules (the caller checks the
 * containers, which the store does not know):
 *   IMAGE_RM_UNTAG   ref is a tag ("name" meaning name:latest) of an image
 *                    that has other tags: only that tag goes
 *                    (image_untag(tag)); containers do not matter.
 *   IMAGE_RM_DELETE  ref is the image's last tag, or names it by id: the
 *                    image goes with its tags (image_remove(info->id)).
 * An id, prefix or sha256:<id> of an image with several tags is refused
 * with FAILED_PRECONDITION ("image ID is tagged A, B: remove the tags or
 * use force") unless force. Fills info (release with image_info_free) and
 * tag: the tag ref named, canonical, or "" when ref is an id. Returns the
 * action or a negative errno (lookup errors as image_lookup). Changes
 * nothing. */
enum image_rm_action {
  IMAGE_RM_DELETE = 0,
  IMAGE_RM_UNTAG = 1,
};
int image_remove_plan(struct image_store *s, const char *ref, bool force,
                      struct image_info *info, char tag[IMAGE_TAG_MAX], struct qerr *err);
/* Points tag ("name[:tag]") at the image ref resolves to. */
int image_tag(struct image_store *s, const char *ref, const char *tag, struct qerr *err);
/* Removes one tag; the image stays. NOT_FOUND when no image has it. */
int image_untag(struct image_store *s, const char *tag, struct qerr *err);

/* ---- image config defaults -------------------------------------------
 * What an OCI or `docker save` image's config asks of its containers,
 * kept in <id>/config (docs/images.md, "Config defaults"). A plain rootfs
 * tarball has none: everything empty. */
struct image_config {
  char **env;          /* "K=V", in order (NULL-terminated when n_env > 0) */
  size_t n_env;
  char **argv;         /* Entrypoint followed by Cmd (NULL-terminated when n_argv > 0) */
  size_t n_argv;
  char *workdir;       /* WorkingDir, or NULL */
  char *user;          /* User ("uid", "uid:gid", "name", ...), or NULL */
  char **repo_tags;    /* a docker save archive's RepoTags, as recorded */
  size_t n_repo_tags;
};

/* Fills out (release with image_config_free) for the image ref resolves
 * to; see image_lookup for references. */
int image_config(struct image_store *s, const char *ref, struct image_config *out,
                 struct qerr *err);
/* Safe on a zeroed or already freed config. */
void image_config_free(struct image_config *c);

/* Validates and canonicalises a tag: "name" -> "name:latest". A name is
 * 1-128 bytes: components separated by '/', each runs of [a-z0-9] joined
 * by '.', '_', "__" or one or more '-' (Docker's grammar, without a
 * registry host); it may not be 64 hex digits or "sha256". A tag is 1-128
 * bytes of [A-Za-z0-9_.-], not starting with '.' or '-'. */
int image_tag_canonical(const char *tag, char out[IMAGE_TAG_MAX], struct qerr *err);

#endif
