#include "runtime/cdir.h"

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
#include "common/fsutil.h"

#define SPARE ".spare"

/* dir's parent and its spare directory. */
static int paths_of(const char *dir, char parent[PATH_MAX], char spare[PATH_MAX],
                    const char **base, struct qerr *err) {
  const char *slash = strrchr(dir, '/');
  if (!slash || slash == dir || !slash[1])
    return qerr_set(err, EINVAL, "not a container directory: %s", dir);
  size_t n = (size_t)(slash - dir);
  if (n >= PATH_MAX || (size_t)snprintf(spare, PATH_MAX, "%.*s/" SPARE, (int)n, dir) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "path too long: %s", dir);
  snprintf(parent, PATH_MAX, "%.*s", (int)n, dir);
  *base = slash + 1;
  return 0;
}

/* Renames one spare to dir; false when there is none (or all were taken
 * by others meanwhile: concurrent makers race for them). */
static bool take_spare(const char *spare, const char *parent, const char *base) {
  cleanup_dir DIR *d = opendir(spare);
  if (!d)
    return false;
  cleanup_fd int to = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (to < 0)
    return false;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && renameat(dirfd(d), e->d_name, to, base) == 0)
      return true;
  return false;
}

int cdir_make(const char *dir, struct qerr *err) {
  char parent[PATH_MAX], spare[PATH_MAX];
  const char *base;
  if (paths_of(dir, parent, spare, &base, err) < 0)
    return err->code;
  if (take_spare(spare, parent, base))
    return 0;
  return mkdir_p(dir, 0700, err);
}

/* Leaves only an empty "log" in dir; false when dir holds anything else. */
static bool empty_but_log(const char *dir) {
  cleanup_fd int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  cleanup_dir DIR *d = fdopendir(dup(fd));
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (e->d_type != DT_REG || (strcmp(e->d_name, "log") != 0 && strcmp(e->d_name, "log.1") != 0))
      return false;
  }
  if (!d || (unlinkat(fd, "log.1", 0) < 0 && errno != ENOENT))
    return false;
  cleanup_fd int log = openat(fd, "log", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  return log < 0 ? errno == ENOENT : ftruncate(log, 0) == 0;
}

static unsigned count_entries(const char *path) {
  cleanup_dir DIR *d = opendir(path);
  unsigned n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  return n;
}

int cdir_recycle(const char *dir, struct qerr *err) {
  char parent[PATH_MAX], spare[PATH_MAX], to[PATH_MAX];
  const char *base;
  if (paths_of(dir, parent, spare, &base, err) < 0)
    return err->code;
  if ((size_t)snprintf(to, sizeof to, "%s/%s", spare, base) < sizeof to &&
      (mkdir(spare, 0700) == 0 || errno == EEXIST) && count_entries(spare) < CDIR_SPARES &&
      empty_but_log(dir) && rename(dir, to) == 0)
    return 0;
  return rm_rf(dir, err);
}
