#include "runtime/scratch.h"

#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"

bool scratch_size_valid(const char *size) {
  size_t n = strspn(size, "0123456789");
  if (n == 0)
    return false;
  return size[n] == 0 || (strchr("kmgKMG%", size[n]) && size[n + 1] == 0);
}

/* A tmpfs mounted on that very directory (not merely a directory of one:
 * a root under /dev/shm is no mount of ours). */
static bool is_our_mount(const char *path) {
  struct statfs fs;
  struct stat st, up;
  char parent[PATH_MAX + 4];
  snprintf(parent, sizeof parent, "%s/..", path);
  return statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC && stat(path, &st) == 0 &&
         stat(parent, &up) == 0 && st.st_dev != up.st_dev;
}

static bool on_tmpfs(const char *path) {
  struct statfs fs;
  return statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

static int use_disk(struct scratch *s, const char *root_dir, struct qerr *err) {
  s->tmpfs = false;
  if (snprintf(s->root, sizeof s->root, "%s/containers", root_dir) >= (int)sizeof s->root)
    return qerr_set(err, ENAMETOOLONG, "root directory path too long");
  return 0;
}

int scratch_open(struct scratch *s, const char *root_dir, bool want_tmpfs, const char *size,
                 struct qerr *err) {
  if (!want_tmpfs)
    return use_disk(s, root_dir, err);
  if (snprintf(s->root, sizeof s->root, "%s/scratch", root_dir) >= (int)sizeof s->root)
    return qerr_set(err, ENAMETOOLONG, "root directory path too long");
  /* 0711: a user-namespaced container's root must reach its own layer. */
  if (mkdir_p(s->root, 0711, err) < 0)
    return qerr_wrap(err, "preparing the scratch directory");
  s->tmpfs = true;
  /* A root already on a tmpfs needs no second one; an earlier run's mount
   * holds the layers of its stopped containers. */
  if (on_tmpfs(s->root))
    return 0;
  char opts[64];
  snprintf(opts, sizeof opts, "mode=0711,size=%s", size && size[0] ? size : "50%");
  if (mount("tmpfs", s->root, "tmpfs", 0, opts) < 0) {
    log_warn("mounting a tmpfs on %s: %s: containers' layers stay on the disk", s->root,
             strerror(errno));
    rmdir(s->root);
    return use_disk(s, root_dir, err);
  }
  /* Sandboxes copy the mount table: nothing they do must come back. */
  if (mount(NULL, s->root, NULL, MS_PRIVATE, NULL) < 0)
    log_warn("making %s private: %s", s->root, strerror(errno));
  return 0;
}

int scratch_dir(const struct scratch *s, const char *id, char out[PATH_MAX], struct qerr *err) {
  if (snprintf(out, PATH_MAX, "%s/%s", s->root, id) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "path too long under %s", s->root);
  return 0;
}

static bool empty_dir(const char *path) {
  cleanup_dir DIR *d = opendir(path);
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      return false;
  return d != NULL;
}

void scratch_close(struct scratch *s) {
  if (!s->tmpfs || !is_our_mount(s->root) || !empty_dir(s->root))
    return;
  if (umount2(s->root, MNT_DETACH) < 0)
    log_warn("unmounting %s: %s", s->root, strerror(errno));
  else
    rmdir(s->root);
}
