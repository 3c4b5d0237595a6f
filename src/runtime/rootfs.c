#include "runtime/rootfs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "grpc/status.h"

bool rootfs_overlay_supported(void) {
  cleanup_file FILE *f = fopen("/proc/filesystems", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "\toverlay\n"))
      return true;
  return false;
}

static int sub(char *out, const char *dir, const char *name, struct qerr *err) {
  if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "path too long under %s", dir);
  return 0;
}

int rootfs_prepare(const char *image, const char *container_dir, bool use_overlay,
                   struct rootfs_view *out, struct qerr *err) {
  struct stat st;
  if (image[0] != '/')
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "image \"%s\": expected an absolute path to a rootfs directory", image);
  if (stat(image, &st) < 0)
    return qerr_status(err, GRPC_NOT_FOUND, errno, "image %s: %s", image, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, ENOTDIR, "image %s is not a directory",
                       image);
  memset(out, 0, sizeof *out);
  if (snprintf(out->lower, PATH_MAX, "%s", image) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "image path too long");
  if (!use_overlay) {
    memcpy(out->merged, out->lower, sizeof out->merged);
    return 0;
  }
  out->overlay = true;
  if (sub(out->upper, container_dir, "upper", err) < 0 ||
      sub(out->work, container_dir, "work", err) < 0 ||
      sub(out->merged, container_dir, "rootfs", err) < 0)
    return err->code;
  if (mkdir_p(out->upper, 0755, err) < 0 || mkdir_p(out->work, 0700, err) < 0 ||
      mkdir_p(out->merged, 0755, err) < 0)
    return qerr_wrap(err, "preparing the container's rootfs");
  return 0;
}

int rootfs_release(const char *container_dir, struct qerr *err) {
  static const char *const parts[] = {"upper", "work", "rootfs"};
  char path[PATH_MAX];
  for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
    if (sub(path, container_dir, parts[i], err) < 0 || rm_rf(path, err) < 0)
      return err->code;
  }
  return 0;
}
