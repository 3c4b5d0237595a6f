/* quilt.v1.Quilt image methods: the store is runtime/images.c, imports run
 * on the ring in runtime/image_jobs.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"
#include "runtime/container.h"
#include "runtime/image_jobs.h"
#include "runtime/janitor.h"
#include "runtime/layers.h"
#include "runtime/images.h"

unsigned images_in_use(const struct quiltd *d, const char *image_id) {
  unsigned n = 0;
  for (const struct container *c = d->containers; c; c = c->next)
    n += strcmp(c->image_id, image_id) == 0;
  return n;
}

static bool image_running(const struct quiltd *d, const char *image_id) {
  for (const struct container *c = d->containers; c; c = c->next)
    if (strcmp(c->image_id, image_id) == 0 && container_is_active(c))
      return true;
  return false;
}

static bool have_store(struct grpc_call *call) {
  if (grpc_call_daemon(call)->images)
    return true;
  grpc_call_finish(call, GRPC_FAILED_PRECONDITION, "the image store is not available");
  return false;
}

void rpc_import_image(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__ImportImageRequest *req = (const void *)msg;
  if (have_store(call))
    image_job_import_file(grpc_call_daemon(call), call, req->path, req->tags, req->n_tags);
}

void rpc_upload_image(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__UploadImageChunk *req = (const void *)msg;
  struct image_job *j = grpc_call_data_of(call);
  if (!j) {
    if (!have_store(call))
      return;
    j = image_job_upload_begin(grpc_call_daemon(call), call, req->tags, req->n_tags);
    if (!j)
      return;
    grpc_call_set_data(call, j);
  }
  image_job_upload_data(j, req->data.data, req->data.len);
}

void rpc_upload_image_done(struct grpc_call *call) {
  struct image_job *j = grpc_call_data_of(call);
  if (j)
    image_job_upload_end(j);
  else if (!grpc_call_finished(call))
    grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "the upload carried no data");
}

struct list_ctx {
  const struct quiltd *d;
  Quilt__V1__Image *items;
  Quilt__V1__Image **ptrs;
  char **tag_copies;   /* image_list's infos die after each callback */
  size_t n, cap;
};

static int add_image(void *arg, const struct image_info *img) {
  struct list_ctx *l = arg;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    Quilt__V1__Image *items = realloc(l->items, cap * sizeof *items);
    if (!items)
      return -ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  Quilt__V1__Image *it = &l->items[l->n];
  *it = (Quilt__V1__Image)QUILT__V1__IMAGE__INIT;
  it->id = strdup(img->id);
  it->n_tags = img->n_tags;
  it->tags = img->n_tags ? calloc(img->n_tags, sizeof *it->tags) : NULL;
  for (size_t i = 0; i < img->n_tags && it->tags; i++)
    it->tags[i] = strdup(img->tags[i]);
  it->size_bytes = img->size_bytes;
  it->created_at_ns = img->created_ns;
  it->containers = images_in_use(l->d, img->id);
  l->n++;
  return it->id ? 0 : -ENOMEM;
}

static void free_list(struct list_ctx *l) {
  for (size_t i = 0; i < l->n; i++) {
    for (size_t t = 0; t < l->items[i].n_tags && l->items[i].tags; t++)
      free(l->items[i].tags[t]);
    free(l->items[i].tags);
    free(l->items[i].id);
  }
  free(l->items);
  free(l->ptrs);
}

/* ------------------------------------------------------------ setup layers */

static unsigned layer_users(const struct quiltd *d, const char *key) {
  unsigned n = 0;
  for (const struct container *c = d->containers; c; c = c->next)
    n += strcmp(c->setup_key, key) == 0;
  return n;
}

struct layer_list {
  const struct quiltd *d;
  Quilt__V1__SetupLayer *items;
  Quilt__V1__SetupLayer **ptrs;
  char (*keys)[65];
  size_t n, cap;
  bool unused_only;
};

static int add_layer(void *arg, const struct layer_info *info) {
  struct layer_list *l = arg;
  unsigned users = layer_users(l->d, info->key);
  if (l->unused_only && users)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    Quilt__V1__SetupLayer *items = realloc(l->items, cap * sizeof *items);
    char(*keys)[65] = items ? realloc(l->keys, cap * sizeof *keys) : NULL;
    if (items)
      l->items = items;
    if (!keys)
      return -ENOMEM;
    l->keys = keys;
    l->cap = cap;
  }
  memcpy(l->keys[l->n], info->key, 65);
  Quilt__V1__SetupLayer *it = &l->items[l->n++];
  *it = (Quilt__V1__SetupLayer)QUILT__V1__SETUP_LAYER__INIT;
  it->size_bytes = info->size_bytes;
  it->created_at_ns = info->created_ns;
  it->containers = users;
  return 0;
}

/* Pointers only once the arrays stopped moving. */
static bool layer_ptrs(struct layer_list *l) {
  l->ptrs = calloc(l->n + 1, sizeof *l->ptrs);
  for (size_t i = 0; l->ptrs && i < l->n; i++) {
    l->items[i].key = l->keys[i];
    l->ptrs[i] = &l->items[i];
  }
  return l->ptrs != NULL;
}

void rpc_list_images(struct grpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  if (!have_store(call))
    return;
  struct quiltd *d = grpc_call_daemon(call);
  struct list_ctx l = {.d = d};
  struct qerr err = QERR_INIT;
  int rc = image_list(d->images, add_image, &l, &err);
  if (rc == 0 && !(l.ptrs = calloc(l.n + 1, sizeof *l.ptrs)))
    rc = qerr_set(&err, ENOMEM, "out of memory");
  if (rc < 0) {
    if (!err.code)
      qerr_set(&err, rc, "listing images");
    grpc_call_fail(call, &err);
    free_list(&l);
    return;
  }
  for (size_t i = 0; i < l.n; i++)
    l.ptrs[i] = &l.items[i];
  Quilt__V1__ListImagesResponse resp = QUILT__V1__LIST_IMAGES_RESPONSE__INIT;
  resp.n_images = l.n;
  resp.images = l.ptrs;
  struct layer_list ll = {.d = d};
  if (layers_list(d->cfg.root_dir, add_layer, &ll, &err) < 0 || !layer_ptrs(&ll)) {
    grpc_call_fail(call, err.code ? &err : &(struct qerr){-ENOMEM, 0, "out of memory"});
    free_list(&l);
    free(ll.items);
    free(ll.keys);
    free(ll.ptrs);
    return;
  }
  resp.n_setup_layers = ll.n;
  resp.setup_layers = ll.ptrs;
  grpc_call_reply(call, &resp.base);
  free_list(&l);
  free(ll.items);
  free(ll.keys);
  free(ll.ptrs);
}

/* Today's rules for removing a whole image: never under a running
 * container, under stopped ones only when forced. */
/* What holds an image's files open besides containers: the pool's
 * sandboxes and the idmapped trees of user-namespaced containers. */
static void release_image(struct quiltd *d, const char *id) {
  char dir[PATH_MAX];
  pool_drop_image(&d->pool, id);
  if (snprintf(dir, sizeof dir, "%s/images/%s/", d->cfg.root_dir, id) < (int)sizeof dir)
    idmap_forget(&d->idmap, dir);
}

static int check_unused(struct quiltd *d, const char *id, bool force, struct qerr *err) {
  unsigned users = images_in_use(d, id);
  if (image_running(d, id))
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EBUSY,
                       "image %.12s is used by a running container; stop it first", id);
  if (users && !force)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EBUSY,
                       "image %.12s is used by %u container(s); remove them or force", id,
                       users);
  return 0;
}

/* Untags or deletes (image_remove_plan), and says which in resp: the
 * strings point into info and tag, which must outlive the reply. */
static int remove_image(struct quiltd *d, const Quilt__V1__RemoveImageRequest *req,
                        struct image_info *info, char tag[IMAGE_TAG_MAX],
                        Quilt__V1__RemoveImageResponse *resp, struct qerr *err) {
  int action = image_remove_plan(d->images, req->id, req->force, info, tag, err);
  if (action < 0)
    return action;
  if (action == IMAGE_RM_UNTAG) {
    if (image_untag(d->images, tag, err) < 0)
      return err->code;
    resp->n_untagged = 1;
    return 0;
  }
  if (check_unused(d, info->id, req->force, err) < 0)
    return err->code;
  release_image(d, info->id);
  if (image_remove(d->images, info->id, err) < 0)
    return err->code;
  resp->n_untagged = info->n_tags;
  resp->n_deleted = 1;
  return 0;
}

void rpc_remove_image(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__RemoveImageRequest *req = (const void *)msg;
  if (!have_store(call))
    return;
  struct image_info info = {0};
  char tag[IMAGE_TAG_MAX] = "";
  struct qerr err = QERR_INIT;
  Quilt__V1__RemoveImageResponse resp = QUILT__V1__REMOVE_IMAGE_RESPONSE__INIT;
  char *untagged_one[1] = {tag}, *deleted[1] = {info.id};
  if (remove_image(grpc_call_daemon(call), req, &info, tag, &resp, &err) < 0) {
    grpc_call_fail(call, &err);
  } else {
    resp.untagged = resp.n_deleted ? info.tags : untagged_one;
    resp.deleted = deleted;
    grpc_call_reply(call, &resp.base);
  }
  image_info_free(&info);
}

/* Unused images, but never the built-in one: containers that name no image
 * need it. */
static int collect_unused(void *arg, const struct image_info *img) {
  struct list_ctx *l = arg;
  for (size_t i = 0; i < img->n_tags; i++)
    if (strcmp(img->tags[i], DEFAULT_IMAGE_TAG) == 0)
      return 0;
  return images_in_use(l->d, img->id) ? 0 : add_image(arg, img);
}

void rpc_prune_images(struct grpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  if (!have_store(call))
    return;
  struct quiltd *d = grpc_call_daemon(call);
  struct list_ctx l = {.d = d};
  struct qerr err = QERR_INIT;
  Quilt__V1__PruneImagesResponse resp = QUILT__V1__PRUNE_IMAGES_RESPONSE__INIT;
  cleanup_free char **ids = NULL;
  if (image_list(d->images, collect_unused, &l, &err) == 0 &&
      (ids = calloc(l.n + 1, sizeof *ids))) {
    for (size_t i = 0; i < l.n; i++) {
      release_image(d, l.items[i].id);
      if (image_remove(d->images, l.items[i].id, &err) < 0)
        break;
      ids[resp.n_removed_ids++] = l.items[i].id;
      resp.reclaimed_bytes += l.items[i].size_bytes;
    }
  }
  resp.removed_ids = ids;
  struct layer_list ll = {.d = d, .unused_only = true};
  cleanup_free char **keys = NULL;
  if (!err.code && layers_list(d->cfg.root_dir, add_layer, &ll, &err) == 0 &&
      (keys = calloc(ll.n + 1, sizeof *keys))) {
    for (size_t i = 0; i < ll.n; i++) {
      char path[PATH_MAX];
      snprintf(path, sizeof path, "%s/layers/%s", d->cfg.root_dir, ll.keys[i]);
      pool_drop_layer(&d->pool, path); /* its sandboxes mount it */
      if (janitor_remove(&d->janitor, path, &err) < 0)
        break;
      keys[resp.n_removed_layers++] = ll.keys[i];
      resp.reclaimed_bytes += ll.items[i].size_bytes;
    }
    resp.removed_layers = keys;
  }
  if (err.code)
    grpc_call_fail(call, &err);
  else
    grpc_call_reply(call, &resp.base);
  free_list(&l);
  free(ll.items);
  free(ll.keys);
}
