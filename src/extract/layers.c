#include "extract/layers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract/extract_check.h"

int lay_open_dir(int rootfd, const char *rel) {
  int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  const char *p = rel;
  char comp[NAME_MAX + 1];
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || len > NAME_MAX) {
      close(fd);
      return -EINVAL;
    }
    memcpy(comp, p, len);
    comp[len] = 0;
    struct stat st;
    if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
      close(fd);
      return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
    }
    int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (next < 0)
      return -e;
    fd = next;
    p = slash ? slash + 1 : p + len;
  }
  return fd;
}

/* Splits rel into its parent (in parent, PATH_MAX) and its last component. */
static const char *split(const char *rel, char *parent) {
  const char *slash = strrchr(rel, '/');
  if (!slash) {
    parent[0] = 0;
    return rel;
  }
  memcpy(parent, rel, (size_t)(slash - rel));
  parent[slash - rel] = 0;
  return slash + 1;
}

static int remove_path(int rootfd, char *path);

/* path is a PATH_MAX buffer, restored on return. */
static int clear_dir(int rootfd, char *path) {
  int fd = lay_open_dir(rootfd, path);
  if (fd < 0)
    return fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR ? 0 : fd;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return -e;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int r = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) {
        r = -ENOMEM;
        break;
      }
      names = nn;
    }
    if (!(names[n] = strdup(de->d_name))) {
      r = -ENOMEM;
      break;
    }
    n++;
  }
  closedir(d); /* closes fd: no fd is held while descending */
  size_t base = strlen(path);
  for (size_t i = 0; i < n; i++) {
    if (r == 0) {
      int k = snprintf(path + base, PATH_MAX - base, "%s%s", base ? "/" : "", names[i]);
      if (k < 0 || (size_t)k >= PATH_MAX - base)
        r = -ENAMETOOLONG;
      else
        r = remove_path(rootfd, path);
      path[base] = 0;
    }
    free(names[i]);
  }
  free(names);
  return r;
}

static int remove_path(int rootfd, char *path) {
  char parent[PATH_MAX];
  const char *leaf = split(path, parent);
  if (!*leaf)
    return -EINVAL;
  int pfd = lay_open_dir(rootfd, parent);
  if (pfd < 0)
    return pfd == -ENOENT || pfd == -ELOOP || pfd == -ENOTDIR ? 0 : pfd;
  struct stat st;
  int r = 0;
  if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    r = errno == ENOENT ? 0 : -errno;
  } else if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(pfd, leaf, 0) < 0 && errno != ENOENT)
      r = -errno;
  } else {
    close(pfd);
    pfd = -1;
    r = clear_dir(rootfd, path);
    if (r == 0) {
      pfd = lay_open_dir(rootfd, parent);
      if (pfd < 0)
        return pfd;
      if (unlinkat(pfd, leaf, AT_REMOVEDIR) < 0 && errno != ENOENT)
        r = -errno;
    }
  }
  if (pfd >= 0)
    close(pfd);
  return r;
}

int lay_remove(int rootfd, const char *rel) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", rel) >= (int)sizeof path)
    return -ENAMETOOLONG;
  return remove_path(rootfd, path);
}

int lay_clear_dir(int rootfd, const char *rel) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", rel) >= (int)sizeof path)
    return -ENAMETOOLONG;
  return clear_dir(rootfd, path);
}

int lay_prepare(int rootfd, const char *rel, bool is_dir, char *why, size_t whylen) {
  if (!*rel || strcmp(rel, ".") == 0)
    return 0;
  char parent[PATH_MAX];
  const char *leaf = split(rel, parent);
  int pfd = lay_open_dir(rootfd, parent);
  if (pfd == -ENOENT)
    return 0; /* created by this layer */
  if (pfd == -ELOOP || pfd == -ENOTDIR) {
    /* Find the offending component for the message. */
    char prefix[PATH_MAX], q[256] = "\"\"";
    size_t len = strlen(parent);
    memcpy(prefix, parent, len + 1);
    for (;;) {
      int fd = lay_open_dir(rootfd, prefix);
      if (fd >= 0) {
        close(fd);
        break;
      }
      xc_quote(prefix, q, sizeof q);
      char *s = strrchr(prefix, '/');
      if (!s)
        break;
      *s = 0;
    }
    snprintf(why, whylen, pfd == -ELOOP ? "path goes through symlink %s of an earlier layer"
                                        : "parent %s (of an earlier layer) is not a directory",
             q);
    return 1;
  }
  if (pfd < 0)
    return pfd;
  struct stat st;
  int r = 0;
  if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode) && !is_dir) {
      close(pfd);
      return lay_remove(rootfd, rel);
    }
    if (!S_ISDIR(st.st_mode) && is_dir && unlinkat(pfd, leaf, 0) < 0)
      r = -errno;
  } else if (errno != ENOENT) {
    r = -errno;
  }
  close(pfd);
  return r;
}
