/* CopyIn's extraction: the archive on stdin goes into an existing directory
 * of the container, as `docker cp` does: files owned by the container's
 * root unless --archive (then the archive's numeric ids), modes and times
 * kept, existing files replaced.
 *
 * Safety, on top of the root being the container's (quilt-copy.c):
 * libarchive's ARCHIVE_EXTRACT_SECURE_NODOTDOT, _SECURE_NOABSOLUTEPATHS and
 * _SECURE_SYMLINKS refuse `..`, absolute names and any entry (or hard link
 * target) whose path runs through a symlink, the container's own or one an
 * earlier entry made; the directory is entered by fd and every name is
 * relative to it. Device nodes are refused: root of the container could
 * otherwise get one (its rootfs is nodev, but a bind or volume may not be).
 * An entry naming the directory itself ("." or "./") is skipped, so an
 * archive cannot change the owner or mode of, say, the container's /. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extract/copy_tool.h"
#include "grpc/status.h"

#define BLOCK (64 * 1024)

static const char *errstr(struct archive *a) {
  const char *s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

/* Out of space is the container's state; a read-only place the caller's
 * choice; anything else libarchive refuses comes from the archive. */
static int write_status(struct archive *a) {
  switch (archive_errno(a)) {
  case ENOSPC:
  case EDQUOT:
    return GRPC_RESOURCE_EXHAUSTED;
  case EROFS:
    return GRPC_FAILED_PRECONDITION;
  case EIO:
  case ENOMEM:
  case EMFILE:
  case ENFILE:
    return GRPC_INTERNAL;
  default:
    return GRPC_INVALID_ARGUMENT;
  }
}

static void enter_dest(const char *path) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  const char *p = path;
  while (*p == '/')
    p++;
  int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = rootfd < 0 ? -1 : (int)syscall(SYS_openat2, rootfd, *p ? p : ".", &how, sizeof how);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno;
    copy_die(e == ENOENT ? GRPC_NOT_FOUND : copy_status_of(e), "%s: %s", path,
             e == ENOENT ? "no such file or directory" : strerror(e));
  }
  if (!S_ISDIR(st.st_mode))
    copy_die(GRPC_FAILED_PRECONDITION, "%s: not a directory", path);
  if (fchdir(fd) < 0)
    copy_die(GRPC_INTERNAL, "entering %s: %s", path, strerror(errno));
  close(fd);
  close(rootfd);
}

static bool is_dot(const char *p) {
  while (p[0] == '.' && p[1] == '/')
    p += 2;
  while (*p == '/')
    p++;
  return !*p || !strcmp(p, ".");
}

/* Owners as the container will see them: its root, or the archive's ids;
 * offline user-namespaced containers need host ids. */
static void set_owner(const struct copy_opts *o, struct archive_entry *e) {
  int64_t uid = o->archive ? archive_entry_uid(e) : 0;
  int64_t gid = o->archive ? archive_entry_gid(e) : 0;
  if (o->id_count) {
    if (uid < 0 || gid < 0 || uid >= o->id_count || gid >= o->id_count)
      copy_die(GRPC_INVALID_ARGUMENT, "entry %s: owner %lld:%lld is outside the container's ids",
               archive_entry_pathname(e), (long long)uid, (long long)gid);
    uid += o->id_base;
    gid += o->id_base;
  }
  archive_entry_set_uid(e, uid);
  archive_entry_set_gid(e, gid);
  archive_entry_set_uname(e, NULL); /* numeric: the container's passwd is not ours to read */
  archive_entry_set_gname(e, NULL);
}

static void copy_data(struct archive *in, struct archive *out, const char *path) {
  const void *buf;
  size_t size;
  la_int64_t offset;
  int r;
  while ((r = archive_read_data_block(in, &buf, &size, &offset)) == ARCHIVE_OK)
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
      copy_die(write_status(out), "entry %s: %s", path, errstr(out));
  if (r != ARCHIVE_EOF)
    copy_die(GRPC_INVALID_ARGUMENT, "entry %s: %s", path, errstr(in));
}

void copy_in(const struct copy_opts *o) {
  enter_dest(o->path);
  struct archive *in = archive_read_new(), *out = archive_write_disk_new();
  if (!in || !out)
    copy_die(GRPC_RESOURCE_EXHAUSTED, "out of memory");
  archive_read_support_format_tar(in);
  archive_read_support_filter_all(in); /* external decompressors cannot run: seccomp */
  /* Not ARCHIVE_EXTRACT_UNLINK: with it libarchive removes a symlink in the
   * middle of a path and goes on instead of refusing. No xattrs, ACLs or
   * file flags: nothing the container could not set itself is restored. */
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                                          ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                                          ARCHIVE_EXTRACT_TIME);
  if (archive_read_open_fd(in, 0, BLOCK) != ARCHIVE_OK)
    copy_die(GRPC_INVALID_ARGUMENT, "not a tar archive: %s", errstr(in));
  uint64_t bytes = 0, entries = 0;
  struct archive_entry *e;
  int r;
  while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    const char *path = archive_entry_pathname(e);
    if (!path || !*path)
      copy_die(GRPC_INVALID_ARGUMENT, "an entry has no name");
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)
      copy_die(GRPC_INVALID_ARGUMENT, "entry %s: device nodes and sockets cannot be copied into a container", path);
    if (type == AE_IFDIR && is_dot(path))
      continue;
    set_owner(o, e);
    if (archive_write_header(out, e) < ARCHIVE_WARN)
      copy_die(write_status(out), "entry %s: %s", path, errstr(out));
    if (archive_entry_size(e) > 0)
      copy_data(in, out, path);
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
      copy_die(write_status(out), "entry %s: %s", path, errstr(out));
    entries++;
    bytes += (uint64_t)(archive_entry_size(e) > 0 ? archive_entry_size(e) : 0);
  }
  if (r != ARCHIVE_EOF)
    copy_die(GRPC_INVALID_ARGUMENT, "malformed archive: %s", errstr(in));
  /* Directory modes and times are set last (libarchive's fixups). */
  if (archive_write_close(out) < ARCHIVE_WARN)
    copy_die(write_status(out), "finishing: %s", errstr(out));
  archive_write_free(out);
  archive_read_free(in);
  fprintf(stderr, "ok bytes=%llu entries=%llu\n", (unsigned long long)bytes,
          (unsigned long long)entries);
  exit(0);
}
