#include "runtime/volumes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "grpc/status.h"
#include "runtime/janitor.h"

bool volume_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > VOLUME_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!alnum && (i == 0 || !strchr("_.-", ch)))
      return false;
  }
  return true;
}

static int vol_path(const char *root, const char *name, const char *leaf, char out[PATH_MAX],
                    struct qerr *err) {
  if (snprintf(out, PATH_MAX, "%s/volumes/%s%s%s", root, name, leaf[0] ? "/" : "", leaf) >=
      PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "volume path too long under %s", root);
  return 0;
}

int volume_data_path(const char *root, const char *name, char out[PATH_MAX], struct qerr *err) {
  return vol_path(root, name, "data", out, err);
}

bool volume_exists(const char *root, const char *name) {
  char p[PATH_MAX];
  struct qerr ignore = QERR_INIT;
  struct stat st;
  return vol_path(root, name, "data", p, &ignore) == 0 && stat(p, &st) == 0;
}

static int write_meta(const char *dir, const struct volume_label *labels, size_t n,
                      struct qerr *err) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/meta", dir) >= (int)sizeof path)
    return qerr_set(err, ENAMETOOLONG, "path too long: %s/meta", dir);
  FILE *f = fopen(path, "we");
  if (!f)
    return qerr_errno(err, "creating %s", path);
  fprintf(f, "created %" PRId64 "\n", clock_real_ns());
  for (size_t i = 0; i < n; i++)
    fprintf(f, "label %s=%s\n", labels[i].key, labels[i].value);
  if (fclose(f) != 0)
    return qerr_errno(err, "writing %s", path);
  return 0;
}

static int check_labels(const struct volume_label *labels, size_t n, struct qerr *err) {
  if (n > VOLUME_LABELS_MAX)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "%zu labels: at most %d", n,
                       VOLUME_LABELS_MAX);
  for (size_t i = 0; i < n; i++)
    if (!labels[i].key[0] || strpbrk(labels[i].key, "=\n") || strchr(labels[i].value, '\n'))
      return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                         "volume label \"%s\": a key must be non-empty without '=' or newlines",
                         labels[i].key);
  return 0;
}

int volume_create(const char *root, const char *name, const struct volume_label *labels,
                  size_t n_labels, bool exist_ok, struct qerr *err) {
  if (!volume_name_valid(name))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "invalid volume name \"%s\" (expected [A-Za-z0-9][A-Za-z0-9_.-]{0,63})",
                       name);
  if (check_labels(labels, n_labels, err) < 0)
    return err->code;
  char dir[PATH_MAX], data[PATH_MAX];
  if (vol_path(root, "", "", dir, err) < 0 || mkdir_p(dir, 0700, err) < 0)
    return err->code;
  if (vol_path(root, name, "", dir, err) < 0 || vol_path(root, name, "data", data, err) < 0)
    return err->code;
  if (mkdir(dir, 0700) < 0) {
    if (errno != EEXIST)
      return qerr_errno(err, "creating volume %s", name);
    if (exist_ok && volume_exists(root, name))
      return 0;
    return qerr_status(err, GRPC_ALREADY_EXISTS, EEXIST, "volume %s already exists", name);
  }
  /* data is made last: its presence is what says the volume exists. */
  if (write_meta(dir, labels, n_labels, err) < 0 || mkdir(data, 0755) < 0) {
    int rc = err->code ? err->code : qerr_errno(err, "creating %s", data);
    struct qerr ignore = QERR_INIT;
    rm_rf(dir, &ignore);
    return rc;
  }
  return 1;
}

void volume_info_free(struct volume_info *v) {
  for (size_t i = 0; i < v->n_labels; i++)
    free(v->labels[i]);
  v->n_labels = 0;
}

static void read_meta(const char *dir, struct volume_info *v) {
  char path[PATH_MAX], line[4096];
  if (snprintf(path, sizeof path, "%s/meta", dir) >= (int)sizeof path)
    return;
  FILE *f = fopen(path, "re");
  if (!f)
    return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (strncmp(line, "created ", 8) == 0)
      v->created_ns = strtoll(line + 8, NULL, 10);
    else if (strncmp(line, "label ", 6) == 0 && v->n_labels < VOLUME_LABELS_MAX &&
             (v->labels[v->n_labels] = strdup(line + 6)))
      v->n_labels++;
  }
  fclose(f);
}

/* Bytes allocated under dirfd (which it closes), not crossing mounts. */
static uint64_t tree_size_at(int dirfd, dev_t dev, int depth) {
  cleanup_dir DIR *d = fdopendir(dirfd);
  if (!d) {
    close(dirfd);
    return 0;
  }
  uint64_t total = 0;
  struct dirent *e;
  struct stat st;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
        fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
      continue;
    total += (uint64_t)st.st_blocks * 512;
    int sub = S_ISDIR(st.st_mode) && depth < 256
                  ? openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                  : -1;
    if (sub >= 0)
      total += tree_size_at(sub, dev, depth + 1);
  }
  return total;
}

static uint64_t tree_size(const char *dir) {
  struct stat st;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return 0;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return 0;
  }
  return tree_size_at(fd, st.st_dev, 0);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int listed(const struct dirent *e) {
  return volume_name_valid(e->d_name);
}

int volumes_list(const char *root, int (*fn)(void *arg, const struct volume_info *v), void *arg,
                 struct qerr *err) {
  char dir[PATH_MAX];
  if (vol_path(root, "", "", dir, err) < 0)
    return err->code;
  struct dirent **names;
  int n = scandir(dir, &names, listed, by_name);
  if (n < 0)
    return errno == ENOENT ? 0 : qerr_errno(err, "listing %s", dir);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    struct volume_info v = {0};
    snprintf(v.name, sizeof v.name, "%.*s", VOLUME_NAME_MAX, names[i]->d_name);
    char vdir[PATH_MAX], data[PATH_MAX];
    if (rc == 0 && volume_exists(root, v.name) && vol_path(root, v.name, "", vdir, err) == 0 &&
        vol_path(root, v.name, "data", data, err) == 0) {
      read_meta(vdir, &v);
      v.size_bytes = tree_size(data);
      rc = fn(arg, &v);
    }
    volume_info_free(&v);
    free(names[i]);
  }
  free(names);
  return rc;
}

int volume_remove(struct janitor *j, const char *root, const char *name, struct qerr *err) {
  char dir[PATH_MAX], trash[PATH_MAX];
  if (!volume_name_valid(name) || !volume_exists(root, name))
    return qerr_status(err, GRPC_NOT_FOUND, ENOENT, "no such volume: %s", name);
  if (vol_path(root, name, "", dir, err) < 0)
    return err->code;
  if (snprintf(trash, sizeof trash, "%s/volumes/.trash-%s-%" PRId64, root, name,
               clock_real_ns()) >= (int)sizeof trash)
    return qerr_set(err, ENAMETOOLONG, "volume path too long under %s", root);
  if (rename(dir, trash) < 0)
    return qerr_errno(err, "removing volume %s", name);
  return janitor_remove(j, trash, err);
}

void volumes_sweep(struct janitor *j, const char *root) {
  char dir[PATH_MAX], path[PATH_MAX];
  struct qerr ignore = QERR_INIT;
  if (vol_path(root, "", "", dir, &ignore) < 0)
    return;
  cleanup_dir DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, ".trash-", 7) == 0 &&
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
      janitor_remove(j, path, &ignore);
}
