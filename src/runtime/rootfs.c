#include "runtime/rootfs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "grpc/status.h"
#include "runtime/treecopy.h"

bool rootfs_overlay_supported(void) {
  cleanup_file FILE *f = fopen("/proc/filesystems", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "\toverlay\n"))
      return true;
  return false;
}

const char *rootfs_copy_driver(const char *dir) {
  return treecopy_can_reflink(dir) ? "copy (reflink)" : "copy";
}

static int sub(char *out, const char *dir, const char *name, struct qerr *err) {
  if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "path too long under %s", dir);
  return 0;
}

static int check_dir(const char *image, struct qerr *err) {
  struct stat st;
  if (image[0] != '/')
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "image \"%s\": expected an absolute path to a rootfs directory", image);
  if (stat(image, &st) < 0)
    return qerr_status(err, GRPC_NOT_FOUND, errno, "image %s: %s", image, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, ENOTDIR, "image %s is not a directory",
                       image);
  return 0;
}

/* An overlay's lowerdir may stack a setup layer on the image: "layer:image". */
static int check_image(const char *lower, struct qerr *err) {
  char part[PATH_MAX];
  for (const char *p = lower;;) {
    size_t n = strcspn(p, ":");
    if (n >= sizeof part)
      return qerr_set(err, ENAMETOOLONG, "image path too long");
    memcpy(part, p, n);
    part[n] = 0;
    if (check_dir(part, err) < 0)
      return err->code;
    if (!p[n])
      return 0;
    p += n + 1;
  }
}

static int prepare_overlay(const char *container_dir, struct rootfs_view *out,
                           struct qerr *err) {
  out->overlay = true;
  if (sub(out->upper, container_dir, "upper", err) < 0 ||
      sub(out->work, container_dir, "work", err) < 0)
    return err->code;
  if (mkdir_p(out->upper, 0755, err) < 0 || mkdir_p(out->work, 0700, err) < 0 ||
      mkdir_p(out->merged, 0755, err) < 0)
    return qerr_wrap(err, "preparing the container's rootfs");
  return 0;
}

static int prepare_copy(uid_t id_base, struct rootfs_view *out, struct qerr *err) {
  out->copied = true;
  const struct treecopy_opts opts = {.id_shift = id_base};
  /* A copy left by a crash would make the copy fail (EEXIST): start clean. */
  if (rm_rf(out->merged, err) < 0 || treecopy(out->lower, out->merged, &opts, NULL, err) < 0)
    return qerr_wrap(err, "copying the image into the container's rootfs");
  return 0;
}

int rootfs_prepare_shifted(const char *image, const char *container_dir, enum rootfs_mode mode,
                           uid_t id_base, struct rootfs_view *out, struct qerr *err) {
  if (check_image(image, err) < 0)
    return err->code;
  memset(out, 0, sizeof *out);
  if (snprintf(out->lower, PATH_MAX, "%s", image) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "image path too long");
  if (sub(out->merged, container_dir, "rootfs", err) < 0)
    return err->code;
  int rc = mode == ROOTFS_OVERLAY ? prepare_overlay(container_dir, out, err)
                                  : prepare_copy(id_base, out, err);
  if (rc < 0) {
    struct qerr ignored = QERR_INIT; /* the first failure is the one to report */
    rootfs_release(container_dir, &ignored);
  }
  return rc;
}

int rootfs_prepare(const char *image, const char *container_dir, enum rootfs_mode mode,
                   struct rootfs_view *out, struct qerr *err) {
  return rootfs_prepare_shifted(image, container_dir, mode, 0, out, err);
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

int rootfs_plan(const char *image, const char *container_dir, enum rootfs_mode mode,
                struct rootfs_view *out, struct qerr *err) {
  memset(out, 0, sizeof *out);
  if (snprintf(out->lower, PATH_MAX, "%s", image) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "image path too long");
  if (sub(out->merged, container_dir, "rootfs", err) < 0)
    return err->code;
  if (mode != ROOTFS_OVERLAY) {
    out->copied = true;
    return 0;
  }
  out->overlay = true;
  if (sub(out->upper, container_dir, "upper", err) < 0 ||
      sub(out->work, container_dir, "work", err) < 0)
    return err->code;
  return 0;
}
