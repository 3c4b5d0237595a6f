/* quilt.v1.Quilt volume methods; the store is runtime/volumes.c. A volume
 * is in use while any container (in any state) has a mount of it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"
#include "grpc/status.h"
#include "runtime/container.h"
#include "runtime/volumes.h"

typedef Quilt__V1__Volume__LabelsEntry vol_label;

static bool mounts_volume(const struct container *c, const char *name) {
  for (size_t i = 0; i < c->spec->n_mounts; i++)
    if (strcmp(c->spec->mounts[i]->type, "volume") == 0 &&
        strcmp(c->spec->mounts[i]->source, name) == 0)
      return true;
  return false;
}

/* Ids of the containers using the volume, pointing into them; *n their count. */
static char **users_of(const struct quiltd *d, const char *name, size_t *n) {
  *n = 0;
  size_t cap = 1;
  for (struct container *c = d->containers; c; c = c->next)
    cap++;
  char **ids = calloc(cap, sizeof *ids);
  for (struct container *c = d->containers; ids && c; c = c->next)
    if (mounts_volume(c, name))
      ids[(*n)++] = c->id;
  return ids;
}

static void volume_pb_free(Quilt__V1__Volume *v) {
  free(v->name);
  free(v->in_use_by);
  for (size_t i = 0; i < v->n_labels; i++) {
    free(v->labels[i]->key);
    free(v->labels[i]->value);
    free(v->labels[i]);
  }
  free(v->labels);
}

/* A Volume message from info; its strings are owned (volume_pb_free). */
static int volume_pb(const struct quiltd *d, const struct volume_info *info, Quilt__V1__Volume *v) {
  *v = (Quilt__V1__Volume)QUILT__V1__VOLUME__INIT;
  v->name = strdup(info->name);
  v->created_ns = info->created_ns;
  v->size_bytes = info->size_bytes;
  v->in_use_by = users_of(d, info->name, &v->n_in_use_by);
  v->labels = calloc(info->n_labels + 1, sizeof *v->labels);
  if (!v->name || !v->in_use_by || !v->labels)
    return -ENOMEM;
  for (size_t i = 0; i < info->n_labels; i++) {
    const char *kv = info->labels[i];
    vol_label *e = malloc(sizeof *e);
    if (!e)
      return -ENOMEM;
    *e = (vol_label)QUILT__V1__VOLUME__LABELS_ENTRY__INIT;
    v->labels[v->n_labels++] = e;
    size_t klen = strcspn(kv, "=");
    e->key = strndup(kv, klen);
    e->value = strdup(kv[klen] ? kv + klen + 1 : "");
    if (!e->key || !e->value)
      return -ENOMEM;
  }
  return 0;
}

struct vol_list {
  const struct quiltd *d;
  Quilt__V1__Volume *items;
  size_t n, cap;
};

static int collect(void *arg, const struct volume_info *info) {
  struct vol_list *l = arg;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    Quilt__V1__Volume *items = realloc(l->items, cap * sizeof *items);
    if (!items)
      return -ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  return volume_pb(l->d, info, &l->items[l->n++]);
}

static void list_free(struct vol_list *l) {
  for (size_t i = 0; i < l->n; i++)
    volume_pb_free(&l->items[i]);
  free(l->items);
}

static int list_all(struct quiltd *d, struct vol_list *l, struct qerr *err) {
  *l = (struct vol_list){.d = d};
  int rc = volumes_list(d->cfg.root_dir, collect, l, err);
  if (rc < 0 && !err->code)
    qerr_set(err, rc, "out of memory");
  return rc;
}

void rpc_create_volume(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__CreateVolumeRequest *req = (const void *)msg;
  struct quiltd *d = grpc_call_daemon(call);
  struct qerr err = QERR_INIT;
  cleanup_free struct volume_label *labels = calloc(req->n_labels + 1, sizeof *labels);
  if (!labels) {
    qerr_set(&err, ENOMEM, "out of memory");
    grpc_call_fail(call, &err);
    return;
  }
  for (size_t i = 0; i < req->n_labels; i++)
    labels[i] = (struct volume_label){req->labels[i]->key, req->labels[i]->value};
  struct vol_list l = {0};
  if (volume_create(d->cfg.root_dir, req->name, labels, req->n_labels, false, &err) < 0 ||
      list_all(d, &l, &err) < 0) {
    grpc_call_fail(call, &err);
    list_free(&l);
    return;
  }
  for (size_t i = 0; i < l.n; i++)
    if (strcmp(l.items[i].name, req->name) == 0) {
      grpc_call_reply(call, &l.items[i].base);
      list_free(&l);
      return;
    }
  list_free(&l);
  grpc_call_finish(call, GRPC_INTERNAL, "the new volume is not listed");
}

void rpc_list_volumes(struct grpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  struct qerr err = QERR_INIT;
  struct vol_list l;
  if (list_all(grpc_call_daemon(call), &l, &err) < 0) {
    grpc_call_fail(call, &err);
    list_free(&l);
    return;
  }
  Quilt__V1__ListVolumesResponse resp = QUILT__V1__LIST_VOLUMES_RESPONSE__INIT;
  cleanup_free Quilt__V1__Volume **ptrs = calloc(l.n + 1, sizeof *ptrs);
  if (!ptrs) {
    qerr_set(&err, ENOMEM, "out of memory");
    grpc_call_fail(call, &err);
    list_free(&l);
    return;
  }
  for (size_t i = 0; i < l.n; i++)
    ptrs[i] = &l.items[i];
  resp.volumes = ptrs;
  resp.n_volumes = l.n;
  grpc_call_reply(call, &resp.base);
  list_free(&l);
}

void rpc_remove_volume(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__RemoveVolumeRequest *req = (const void *)msg;
  struct quiltd *d = grpc_call_daemon(call);
  struct qerr err = QERR_INIT;
  size_t n = 0;
  cleanup_free char **users = users_of(d, req->name, &n);
  if (n > 0 && !req->force) {
    qerr_status(&err, GRPC_FAILED_PRECONDITION, EBUSY,
                "volume %s is in use by %zu container%s (%.12s%s); remove %s or use force",
                req->name, n, n == 1 ? "" : "s", users[0], n > 1 ? ", ..." : "",
                n == 1 ? "it" : "them");
    grpc_call_fail(call, &err);
    return;
  }
  if (volume_remove(&d->janitor, d->cfg.root_dir, req->name, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  Quilt__V1__RemoveVolumeResponse resp = QUILT__V1__REMOVE_VOLUME_RESPONSE__INIT;
  grpc_call_reply(call, &resp.base);
}

void rpc_prune_volumes(struct grpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  struct quiltd *d = grpc_call_daemon(call);
  struct qerr err = QERR_INIT;
  struct vol_list l;
  Quilt__V1__PruneVolumesResponse resp = QUILT__V1__PRUNE_VOLUMES_RESPONSE__INIT;
  cleanup_free char **names = NULL;
  if (list_all(d, &l, &err) == 0 && (names = calloc(l.n + 1, sizeof *names))) {
    for (size_t i = 0; i < l.n; i++) {
      if (l.items[i].n_in_use_by > 0)
        continue;
      if (volume_remove(&d->janitor, d->cfg.root_dir, l.items[i].name, &err) < 0)
        break;
      names[resp.n_removed++] = l.items[i].name;
      resp.reclaimed_bytes += l.items[i].size_bytes;
    }
  } else if (!err.code) {
    qerr_set(&err, ENOMEM, "out of memory");
  }
  resp.removed = names;
  if (err.code)
    grpc_call_fail(call, &err);
  else
    grpc_call_reply(call, &resp.base);
  list_free(&l);
}
