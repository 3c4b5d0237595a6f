/* CopyOut's archive: the path's stat record, then a pax tar of it written
 * to stdout, named under the path's last component. The tree is walked
 * from directory fds: every entry is looked at with AT_SYMLINK_NOFOLLOW and
 * opened with O_NOFOLLOW relative to its parent, so a symlink is stored as a
 * symlink and never followed (only the path itself with --follow, as
 * `docker cp -L`); FIFOs and devices are stored, never opened; sockets are
 * skipped. A file that changes type or vanishes while we walk is skipped.
 * The kernel's own filesystems (/proc, /sys, /dev/pts, ...) are stored as
 * empty directories, as `docker cp` (which never sees them) would. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extract/copy_tool.h"
#include "extract/copy_wire.h"
#include "grpc/status.h"

#define BUF_SIZE (64 * 1024)
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif
#define OVERFLOW_ID 65534

struct out {
  const struct copy_opts *o;
  struct archive *a;
  struct archive_entry_linkresolver *links;
  char *buf;
  uint64_t bytes, entries;
};

static void write_all(const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(1, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      copy_die(GRPC_CANCELLED, "writing the archive: %s", strerror(errno));
    c += w;
    n -= (size_t)w;
  }
}

static void put_stat(const struct stat *st, const char *name, const char *link) {
  struct copy_wire_stat w = {.magic = COPY_WIRE_MAGIC,
                             .mode = st->st_mode,
                             .size = (uint64_t)st->st_size,
                             .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
                                         st->st_mtim.tv_nsec,
                             .name_len = (uint32_t)strlen(name),
                             .link_len = (uint32_t)strlen(link)};
  memcpy(w.magic, COPY_WIRE_MAGIC, sizeof w.magic);
  write_all(&w, sizeof w);
  write_all(name, w.name_len);
  write_all(link, w.link_len);
}

/* Offline user-namespaced containers: host ids back to the container's. */
static int64_t unshift(const struct copy_opts *o, int64_t id) {
  if (!o->id_count)
    return id;
  if (id < (int64_t)o->id_base || id >= (int64_t)o->id_base + o->id_count)
    return OVERFLOW_ID;
  return id - o->id_base;
}

static void die_archive(struct out *x, const char *what, const char *path) {
  int e = archive_errno(x->a);
  copy_die(e == EPIPE ? GRPC_CANCELLED : GRPC_INTERNAL, "%s %s: %s", what, path,
           archive_error_string(x->a) ? archive_error_string(x->a) : strerror(e));
}

static void put_data(struct out *x, int fd, const struct stat *st, const char *path) {
  uint64_t left = (uint64_t)st->st_size;
  while (left) {
    size_t want = left < BUF_SIZE ? (size_t)left : BUF_SIZE;
    ssize_t n = read(fd, x->buf, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      copy_die(GRPC_INTERNAL, "reading %s: %s", path, strerror(errno));
    if (n == 0) { /* shrank since its stat: the header promised the size */
      memset(x->buf, 0, want);
      n = (ssize_t)want;
    }
    if (archive_write_data(x->a, x->buf, (size_t)n) < 0)
      die_archive(x, "archiving", path);
    left -= (uint64_t)n;
  }
  x->bytes += (uint64_t)st->st_size;
}

static void put_tree(struct out *x, int fd, const struct stat *st, const char *path,
                     const char *link);

/* Files whose sizes and contents are the kernel's state, not the
 * container's: never walked. */
static bool kernel_fs(int fd) {
  static const long magics[] = {PROC_SUPER_MAGIC, SYSFS_MAGIC, DEVPTS_SUPER_MAGIC,
                                MQUEUE_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC,
                                SECURITYFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC,
                                BPF_FS_MAGIC, PSTOREFS_MAGIC, BINFMTFS_MAGIC};
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0)
    return true;
  for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
    if ((long)sf.f_type == magics[i])
      return true;
  return false;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted (the archive does not depend on the
 * order the filesystem returns them in). */
static char **list_dir(int fd, size_t *n, const char *path) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  DIR *d = dup < 0 ? NULL : fdopendir(dup);
  if (!d)
    copy_die(GRPC_INTERNAL, "reading directory %s: %s", path, strerror(errno));
  size_t cap = 16;
  char **names = malloc(cap * sizeof *names);
  *n = 0;
  struct dirent *e;
  while (names && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (*n == cap) {
      char **more = realloc(names, (cap *= 2) * sizeof *names);
      if (!more)
        break;
      names = more;
    }
    if (!(names[*n] = strdup(e->d_name)))
      break;
    (*n)++;
  }
  closedir(d);
  if (!names || e)
    copy_die(GRPC_RESOURCE_EXHAUSTED, "out of memory listing %s", path);
  qsort(names, *n, sizeof *names, by_name);
  return names;
}

/* One child of a directory, opened without following a symlink, and only
 * if it is still what fstatat saw. */
static void put_child(struct out *x, int dirfd, const char *name, const char *path) {
  struct stat st, now;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return; /* gone since the listing */
  char link[PATH_MAX] = "";
  int fd = -1;
  if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlinkat(dirfd, name, link, sizeof link - 1);
    if (n < 0)
      return;
    link[n] = 0;
  } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                (S_ISDIR(st.st_mode) ? O_DIRECTORY : O_NONBLOCK);
    fd = openat(dirfd, name, flags);
    if (fd < 0 || fstat(fd, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      if (fd >= 0)
        close(fd);
      return;
    }
    st = now;
  } else if (S_ISSOCK(st.st_mode)) {
    return; /* a tar cannot hold one */
  }
  put_tree(x, fd, &st, path, link);
  if (fd >= 0)
    close(fd);
}

static void put_tree(struct out *x, int fd, const struct stat *st, const char *path,
                     const char *link) {
  struct archive_entry *e = archive_entry_new(), *sparse = NULL;
  if (!e)
    copy_die(GRPC_RESOURCE_EXHAUSTED, "out of memory");
  archive_entry_copy_pathname(e, path);
  archive_entry_copy_stat(e, st);
  archive_entry_set_uid(e, unshift(x->o, st->st_uid));
  archive_entry_set_gid(e, unshift(x->o, st->st_gid));
  if (S_ISLNK(st->st_mode))
    archive_entry_copy_symlink(e, link);
  if (!S_ISREG(st->st_mode))
    archive_entry_set_size(e, 0);
  /* A second name of a file already stored becomes a hard link entry. */
  struct archive_entry *w = e;
  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1)
    archive_entry_linkify(x->links, &w, &sparse);
  if (w) {
    if (archive_write_header(x->a, w) < ARCHIVE_WARN)
      die_archive(x, "archiving", path);
    x->entries++;
    if (S_ISREG(st->st_mode) && !archive_entry_hardlink(w))
      put_data(x, fd, st, path);
  }
  archive_entry_free(e);
  if (!S_ISDIR(st->st_mode) || kernel_fs(fd))
    return;
  size_t n;
  char **names = list_dir(fd, &n, path);
  for (size_t i = 0; i < n; i++) {
    char *child;
    if (asprintf(&child, "%s/%s", path, names[i]) < 0)
      copy_die(GRPC_RESOURCE_EXHAUSTED, "out of memory");
    put_child(x, fd, names[i], child);
    free(child);
    free(names[i]);
  }
  free(names);
}

/* The last component of the path as given, trailing slashes and "/."
 * ignored: what the archive is named under. "." for the root. */
static void base_name(const char *path, char *out, size_t cap, bool *whole) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  size_t len = strlen(tmp);
  *whole = false;
  while (len > 1 && (tmp[len - 1] == '/' ||
                     (tmp[len - 1] == '.' && tmp[len - 2] == '/'))) {
    *whole = true; /* "dir/" and "dir/." name the directory behind any symlink */
    tmp[--len] = 0;
  }
  char *slash = strrchr(tmp, '/');
  const char *b = slash ? slash + 1 : tmp;
  if (!*b || !strcmp(b, ".") || !strcmp(b, "..")) {
    b = ".";
    *whole = true;
  }
  snprintf(out, cap, "%s", b);
}

static int open_in_root(int rootfd, const char *path, int flags) {
  struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/')
    path++;
  return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
}

/* The source, opened with `flags`: the parent's path followed inside the
 * root, the last component only with --follow (or a path that names a
 * directory: "dir/", "dir/."). */
static int open_source(int rootfd, const struct copy_opts *o, const char *name, bool whole,
                       int flags) {
  if (o->follow || whole)
    return open_in_root(rootfd, o->path, flags);
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", o->path);
  *strrchr(parent, '/') = 0;
  int pfd = open_in_root(rootfd, parent, O_PATH | O_DIRECTORY);
  int fd = pfd < 0 ? -1 : openat(pfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
  int saved = errno;
  if (pfd >= 0)
    close(pfd);
  errno = saved;
  return fd;
}

void copy_out(const struct copy_opts *o, bool with_archive) {
  int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    copy_die(GRPC_INTERNAL, "opening the container's root: %s", strerror(errno));
  char name[PATH_MAX], link[PATH_MAX] = "";
  bool whole;
  base_name(o->path, name, sizeof name, &whole);
  struct stat st;
  int fd = open_source(rootfd, o, name, whole, O_PATH);
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno, status = copy_status_of(e);
    copy_die(status == GRPC_FAILED_PRECONDITION ? GRPC_NOT_FOUND : status, "%s: %s", o->path,
             e == ENOENT || e == ENOTDIR ? "no such file or directory" : strerror(e));
  }
  if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlinkat(fd, "", link, sizeof link - 1);
    if (n < 0)
      copy_die(GRPC_INTERNAL, "reading the link %s: %s", o->path, strerror(errno));
    link[n] = 0;
  }
  if (whole && !S_ISDIR(st.st_mode) && o->path[strlen(o->path) - 1] == '/')
    copy_die(GRPC_FAILED_PRECONDITION, "%s: not a directory", o->path);
  put_stat(&st, name, link);
  if (!with_archive)
    _exit(0);
  /* Opened again to be read, and only if it is still what we stat'ed:
   * FIFOs and devices are never opened. */
  int rfd = -1;
  if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
    struct stat now;
    rfd = open_source(rootfd, o, name, whole,
                      O_RDONLY | O_NOCTTY | (S_ISDIR(st.st_mode) ? O_DIRECTORY : O_NONBLOCK));
    if (rfd < 0 || fstat(rfd, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
      copy_die(GRPC_ABORTED, "%s changed while it was being copied", o->path);
  }
  close(fd);
  close(rootfd);
  struct out x = {.o = o, .a = archive_write_new(), .links = archive_entry_linkresolver_new(),
                  .buf = malloc(BUF_SIZE)};
  if (!x.a || !x.links || !x.buf)
    copy_die(GRPC_RESOURCE_EXHAUSTED, "out of memory");
  archive_write_set_format_pax_restricted(x.a);
  archive_entry_linkresolver_set_strategy(x.links, archive_format(x.a));
  archive_write_set_bytes_in_last_block(x.a, 1);
  if (archive_write_open_fd(x.a, 1) != ARCHIVE_OK)
    die_archive(&x, "starting the archive of", o->path);
  put_tree(&x, rfd, &st, name, link);
  if (archive_write_close(x.a) != ARCHIVE_OK)
    die_archive(&x, "finishing the archive of", o->path);
  archive_write_free(x.a);
  archive_entry_linkresolver_free(x.links);
  free(x.buf);
  fprintf(stderr, "ok bytes=%llu entries=%llu\n", (unsigned long long)x.bytes,
          (unsigned long long)x.entries);
  exit(0);
}
