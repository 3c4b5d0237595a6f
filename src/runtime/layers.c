#include "runtime/layers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Allocated bytes under dirfd; never follows symlinks. */
static uint64_t tree_size(int dirfd, unsigned depth) {
  DIR *dir = depth < 64 ? fdopendir(dirfd) : NULL;
  if (!dir) {
    close(dirfd);
    return 0;
  }
  uint64_t total = 0;
  struct dirent *de;
  while ((de = readdir(dir))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat st;
    if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    total += (uint64_t)st.st_blocks * 512;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0)
        total += tree_size(sub, depth + 1);
    }
  }
  closedir(dir);
  return total;
}

static bool is_key(const char *name) {
  if (strlen(name) != 64)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

int layers_list(const char *root_dir, int (*fn)(void *arg, const struct layer_info *l),
                void *arg, struct qerr *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/layers", root_dir);
  cleanup_dir DIR *dir = opendir(path);
  if (!dir)
    return errno == ENOENT ? 0 : qerr_errno(err, "listing %s", path);
  struct dirent *de;
  while ((de = readdir(dir))) {
    struct stat st;
    if (!is_key(de->d_name) || fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISDIR(st.st_mode))
      continue;
    struct layer_info l = {.created_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
                                         st.st_mtim.tv_nsec};
    memcpy(l.key, de->d_name, 65);
    int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    l.size_bytes = fd >= 0 ? tree_size(fd, 0) : 0;
    int rc = fn(arg, &l);
    if (rc < 0)
      return qerr_set(err, rc, "listing setup layers");
  }
  return 0;
}
