#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

int mkdir_p(const char *path, mode_t mode, struct qerr *err) {
  /* Usually only the last component is missing: try that first. */
  if (mkdir(path, mode) == 0 || errno == EEXIST)
    return 0;
  if (errno != ENOENT)
    return qerr_errno(err, "creating %s", path);
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return qerr_set(err, ENAMETOOLONG, "path too long: %s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
      return qerr_errno(err, "creating %s", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST)
    return qerr_errno(err, "creating %s", buf);
  return 0;
}

/* Removes the contents of dirfd, recursively, without following links. */
static int empty_dir(int dirfd, struct qerr *err, const char *top) {
  cleanup_dir DIR *d = fdopendir(dirfd);
  if (!d) {
    close(dirfd);
    return qerr_errno(err, "opening %s", top);
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (unlinkat(dirfd, e->d_name, 0) == 0)
      continue;
    if (errno != EISDIR && errno != EPERM)
      return qerr_errno(err, "removing %s/%s", top, e->d_name);
    int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
      return qerr_errno(err, "opening %s/%s", top, e->d_name);
    if (empty_dir(sub, err, top) < 0)
      return err->code;
    if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0)
      return qerr_errno(err, "removing %s/%s", top, e->d_name);
  }
  return 0;
}

int rm_rf(const char *path, struct qerr *err) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : qerr_errno(err, "inspecting %s", path);
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) < 0 && errno != ENOENT)
      return qerr_errno(err, "removing %s", path);
    return 0;
  }
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return qerr_errno(err, "opening %s", path);
  if (empty_dir(fd, err, path) < 0)
    return err->code;
  if (rmdir(path) < 0 && errno != ENOENT)
    return qerr_errno(err, "removing %s", path);
  return 0;
}

int write_file(const char *path, const void *data, size_t len, struct qerr *err) {
  cleanup_fd int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return qerr_errno(err, "opening %s", path);
  ssize_t n = write(fd, data, len);
  if (n < 0)
    return qerr_errno(err, "writing %s", path);
  if ((size_t)n != len)
    return qerr_set(err, EIO, "short write to %s", path);
  return 0;
}
