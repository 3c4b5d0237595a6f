/* Named volumes: <root>/volumes/<name>/data, the directory containers
 * mount, and <root>/volumes/<name>/meta (creation time, labels; lines
 * "created NS" and "label K=V"). They live on disk only: a daemon restart
 * finds them where they were. A removal renames the volume to
 * <root>/volumes/.trash-* (the name is free at once) and hands that to the
 * janitor; leftovers are swept at the next start. */
#ifndef QUILT_RUNTIME_VOLUMES_H
#define QUILT_RUNTIME_VOLUMES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

struct janitor;

#define VOLUME_NAME_MAX 64
#define VOLUME_LABELS_MAX 64

bool volume_name_valid(const char *name);
/* <root>/volumes/<name>/data */
int volume_data_path(const char *root, const char *name, char out[PATH_MAX], struct qerr *err);

struct volume_label {
  const char *key, *value;
};

/* 1 when made, 0 when it was there and exist_ok; else ALREADY_EXISTS. */
int volume_create(const char *root, const char *name, const struct volume_label *labels,
                  size_t n_labels, bool exist_ok, struct qerr *err);
bool volume_exists(const char *root, const char *name);

struct volume_info {
  char name[VOLUME_NAME_MAX + 1];
  int64_t created_ns;
  uint64_t size_bytes;
  char *labels[VOLUME_LABELS_MAX]; /* "K=V", malloc'd */
  size_t n_labels;
};
void volume_info_free(struct volume_info *v);

/* Calls fn for every volume, sorted by name (size computed: walks its
 * files). fn's info is freed after the call. */
int volumes_list(const char *root, int (*fn)(void *arg, const struct volume_info *v), void *arg,
                 struct qerr *err);
/* NOT_FOUND when missing. */
int volume_remove(struct janitor *j, const char *root, const char *name, struct qerr *err);
/* Hands leftovers of removals to the janitor (daemon start). */
void volumes_sweep(struct janitor *j, const char *root);

#endif
