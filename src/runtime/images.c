#include "runtime/images.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <nettle/sha2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "grpc/status.h"
#include "runtime/syscalls.h"

#define DEFAULT_MAX_ENTRIES 1000000
#define MEMO_SLOTS 16
#define CHUNK (1U << 20)

struct image_rec {
  char id[IMAGE_ID_LEN + 1];
  int64_t created_ns;
  uint64_t size_bytes;
  uint64_t entries;
};

struct tag_rec {
  char tag[IMAGE_TAG_MAX];
  char id[IMAGE_ID_LEN + 1];
};

struct tagset {
  struct tag_rec *v;
  size_t n, cap;
};

/* The ids of recently hashed files, keyed by what changes when a file's
 * bytes do (see memo_stable). */
struct memo {
  bool used;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  char id[IMAGE_ID_LEN + 1];
};

struct image_store {
  char dir[PATH_MAX];
  char staging[PATH_MAX];
  char helper[PATH_MAX];
  uint64_t max_bytes, max_entries;
  struct image_rec *imgs;
  size_t n_imgs, cap_imgs;
  struct tagset tags;
  struct memo memo[MEMO_SLOTS];
  unsigned memo_next;
};

struct image_import {
  pid_t pid;
  int pidfd;
  int out_fd;                /* helper's stdout + stderr, read end, non-blocking */
  char staging[PATH_MAX];    /* images/staging/<random>; the tree ends in rootfs/ */
  char work[PATH_MAX];       /* staging/<random>/work: the helper's root */
  struct sha256_ctx sha;
  uint64_t streamed;
  int src_fd;                /* image_import_set_source: a dup, or -1 */
  struct stat src_st;
  struct timespec src_t0;
};

/* ------------------------------------------------------------ small helpers */

static int pathf(char out[PATH_MAX], struct qerr *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pathf(char out[PATH_MAX], struct qerr *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, PATH_MAX, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "path too long");
  return 0;
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

static bool is_id(const char *s) { return strlen(s) == IMAGE_ID_LEN && is_hex(s, IMAGE_ID_LEN); }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hex_digest(struct sha256_ctx *ctx, char out[IMAGE_ID_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_digest(ctx, sizeof d, d);
  for (size_t i = 0; i < sizeof d; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[IMAGE_ID_LEN] = 0;
}

static int random_hex(char *out, size_t bytes) {
  static const char hex[] = "0123456789abcdef";
  uint8_t r[32];
  if (bytes > sizeof r || getrandom(r, bytes, 0) != (ssize_t)bytes)
    return -1;
  for (size_t i = 0; i < bytes; i++) {
    out[2 * i] = hex[r[i] >> 4];
    out[2 * i + 1] = hex[r[i] & 15];
  }
  out[2 * bytes] = 0;
  return 0;
}

/* Writes path atomically: path.tmp, fsync, rename. */
static int write_atomic(const char *path, const char *data, size_t len, struct qerr *err) {
  char tmp[PATH_MAX];
  if (pathf(tmp, err, "%s.tmp", path) < 0)
    return err->code;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return qerr_errno(err, "creating %s", tmp);
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      qerr_errno(err, "writing %s", tmp);
      close(fd);
      unlink(tmp);
      return err->code;
    }
    off += (size_t)n;
  }
  if (fsync(fd) < 0) {
    qerr_errno(err, "syncing %s", tmp);
    close(fd);
    unlink(tmp);
    return err->code;
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    qerr_errno(err, "renaming %s", tmp);
    unlink(tmp);
    return err->code;
  }
  return 0;
}

static void fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Removes a tree; a failure is logged, and staging/ is emptied again at the
 * next open anyway. */
static void discard_tree(const char *path) {
  struct qerr e = QERR_INIT;
  if (rm_rf(path, &e) < 0)
    log_warn("image store: removing %s: %s", path, e.msg);
}

/* ------------------------------------------------------------ tags */

static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > 128)
    return false;
  size_t i = 0;
  for (;;) { /* one '/'-separated component */
    for (;;) { /* [a-z0-9]+ then an optional separator */
      size_t run = i;
      while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
        i++;
      if (i == run)
        return false;
      if (i == n || s[i] == '/')
        break;
      if (s[i] == '.' || (s[i] == '_' && (i + 1 >= n || s[i + 1] != '_')))
        i++;
      else if (s[i] == '_')
        i += 2;
      else if (s[i] == '-')
        while (i < n && s[i] == '-')
          i++;
      else
        return false;
    }
    if (i == n)
      return true;
    i++; /* '/' */
  }
}

static bool tag_part_ok(const char *s, size_t n) {
  if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

int image_tag_canonical(const char *tag, char out[IMAGE_TAG_MAX], struct qerr *err) {
  size_t len = tag ? strnlen(tag, IMAGE_TAG_MAX + 1) : 0;
  const char *colon = tag ? memchr(tag, ':', len) : NULL;
  size_t nlen = colon ? (size_t)(colon - tag) : len;
  const char *t = colon ? colon + 1 : "latest";
  size_t tlen = colon ? len - nlen - 1 : 6;
  if (!tag || len > IMAGE_TAG_MAX - 1 || !name_ok(tag, nlen) || !tag_part_ok(t, tlen) ||
      (nlen == IMAGE_ID_LEN && is_hex(tag, nlen)) || (nlen == 6 && memcmp(tag, "sha256", 6) == 0))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "invalid image tag \"%.300s\": expected name[:tag], lowercase name",
                       tag ? tag : "");
  snprintf(out, IMAGE_TAG_MAX, "%.*s:%.*s", (int)nlen, tag, (int)tlen, t);
  return 0;
}

static struct tag_rec *find_tag(const struct tagset *ts, const char *tag) {
  for (size_t i = 0; i < ts->n; i++)
    if (strcmp(ts->v[i].tag, tag) == 0)
      return &ts->v[i];
  return NULL;
}

static int tagset_put(struct tagset *ts, const char *tag, const char *id) {
  struct tag_rec *t = find_tag(ts, tag);
  if (!t) {
    if (ts->n == ts->cap) {
      size_t cap = ts->cap ? ts->cap * 2 : 16;
      struct tag_rec *v = realloc(ts->v, cap * sizeof *v);
      if (!v)
        return -ENOMEM;
      ts->v = v;
      ts->cap = cap;
    }
    t = &ts->v[ts->n++];
    snprintf(t->tag, sizeof t->tag, "%s", tag);
  }
  snprintf(t->id, sizeof t->id, "%s", id);
  return 0;
}

static int tagset_copy(struct tagset *dst, const struct tagset *src) {
  *dst = (struct tagset){0};
  if (!src->n)
    return 0;
  dst->v = malloc(src->n * sizeof *dst->v);
  if (!dst->v)
    return -ENOMEM;
  memcpy(dst->v, src->v, src->n * sizeof *dst->v);
  dst->n = dst->cap = src->n;
  return 0;
}

static int cmp_tag(const void *a, const void *b) {
  return strcmp(((const struct tag_rec *)a)->tag, ((const struct tag_rec *)b)->tag);
}

static int save_index(struct image_store *s, struct tagset *ts, struct qerr *err) {
  if (ts->n)
    qsort(ts->v, ts->n, sizeof *ts->v, cmp_tag);
  size_t cap = 64 + ts->n * (IMAGE_TAG_MAX + IMAGE_ID_LEN + 2);
  cleanup_free char *buf = malloc(cap);
  if (!buf)
    return qerr_set(err, ENOMEM, "saving the image tags");
  size_t len = (size_t)snprintf(buf, cap, "# quilt image tags: name:tag image-id\n");
  for (size_t i = 0; i < ts->n; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s %s\n", ts->v[i].tag, ts->v[i].id);
  char path[PATH_MAX];
  if (pathf(path, err, "%s/tags", s->dir) < 0)
    return err->code;
  return write_atomic(path, buf, len, err);
}

/* ------------------------------------------------------------ images */

static struct image_rec *find_image(struct image_store *s, const char *id) {
  for (size_t i = 0; i < s->n_imgs; i++)
    if (strcmp(s->imgs[i].id, id) == 0)
      return &s->imgs[i];
  return NULL;
}

static struct image_rec *add_image(struct image_store *s, const struct image_rec *rec) {
  if (s->n_imgs == s->cap_imgs) {
    size_t cap = s->cap_imgs ? s->cap_imgs * 2 : 16;
    struct image_rec *v = realloc(s->imgs, cap * sizeof *v);
    if (!v)
      return NULL;
    s->imgs = v;
    s->cap_imgs = cap;
  }
  s->imgs[s->n_imgs] = *rec;
  return &s->imgs[s->n_imgs++];
}

static int write_meta(struct image_store *s, const char *image_dir, const struct image_rec *rec,
                      struct qerr *err) {
  char buf[8192];
  size_t len = (size_t)snprintf(buf, sizeof buf,
                                "id %s\ncreated_ns %" PRId64 "\nsize_bytes %" PRIu64
                                "\nentries %" PRIu64 "\n",
                                rec->id, rec->created_ns, rec->size_bytes, rec->entries);
  /* The tags are informational (the index is authoritative) and rebuild
   * the index if it is ever lost; a very long list is cut short. */
  for (size_t i = 0; i < s->tags.n; i++) {
    if (strcmp(s->tags.v[i].id, rec->id) != 0)
      continue;
    int n = snprintf(buf + len, sizeof buf - len, "tag %s\n", s->tags.v[i].tag);
    if (n < 0 || (size_t)n >= sizeof buf - len)
      break;
    len += (size_t)n;
  }
  char path[PATH_MAX];
  if (pathf(path, err, "%s/meta", image_dir) < 0)
    return err->code;
  return write_atomic(path, buf, len, err);
}

/* Rewrites the meta files of the images in ids (their tags changed). */
static void refresh_metas(struct image_store *s, char (*ids)[IMAGE_ID_LEN + 1], size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct image_rec *rec = find_image(s, ids[i]);
    char dir[PATH_MAX];
    struct qerr e = QERR_INIT;
    if (!rec || pathf(dir, &e, "%s/%s", s->dir, rec->id) < 0 || write_meta(s, dir, rec, &e) < 0)
      if (rec)
        log_warn("image store: updating the meta file of %s: %s", rec->id, e.msg);
  }
}

/* Parses a meta file. Tags found are added to meta_tags (may be NULL). */
static int read_meta(const char *image_dir, const char *id, struct image_rec *rec,
                     struct tagset *meta_tags) {
  char path[PATH_MAX];
  struct qerr e = QERR_INIT;
  if (pathf(path, &e, "%s/meta", image_dir) < 0)
    return -1;
  cleanup_file FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  memset(rec, 0, sizeof *rec);
  bool have_id = false, have_created = false, have_size = false;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *val = strchr(line, ' ');
    if (!val)
      continue;
    *val++ = 0;
    if (strcmp(line, "id") == 0) {
      if (strcmp(val, id) != 0)
        return -1;
      have_id = true;
    } else if (strcmp(line, "created_ns") == 0) {
      have_created = sscanf(val, "%" SCNd64, &rec->created_ns) == 1;
    } else if (strcmp(line, "size_bytes") == 0) {
      have_size = sscanf(val, "%" SCNu64, &rec->size_bytes) == 1;
    } else if (strcmp(line, "entries") == 0) {
      sscanf(val, "%" SCNu64, &rec->entries);
    } else if (strcmp(line, "tag") == 0 && meta_tags) {
      char canon[IMAGE_TAG_MAX];
      struct qerr te = QERR_INIT;
      if (image_tag_canonical(val, canon, &te) == 0 && !find_tag(meta_tags, canon))
        tagset_put(meta_tags, canon, id);
    }
  }
  if (!have_id || !have_created || !have_size)
    return -1;
  snprintf(rec->id, sizeof rec->id, "%s", id);
  return 0;
}

/* Moves a directory of images/ into staging/ and deletes it there. */
static void retire_dir(struct image_store *s, const char *name, const char *why) {
  char src[PATH_MAX], dst[PATH_MAX], rnd[17];
  struct qerr e = QERR_INIT;
  if (random_hex(rnd, 8) < 0 || pathf(src, &e, "%s/%s", s->dir, name) < 0 ||
      pathf(dst, &e, "%s/rm-%s", s->staging, rnd) < 0)
    return;
  log_warn("image store: removing %s: %s", src, why);
  if (rename(src, dst) < 0) {
    discard_tree(src);
    return;
  }
  discard_tree(dst);
}

static int load_images(struct image_store *s, struct tagset *meta_tags, struct qerr *err) {
  cleanup_dir DIR *d = opendir(s->dir);
  if (!d)
    return qerr_errno(err, "reading %s", s->dir);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!is_id(de->d_name))
      continue;
    char dir[PATH_MAX], rootfs[PATH_MAX], tmp[PATH_MAX];
    if (pathf(dir, err, "%s/%s", s->dir, de->d_name) < 0 ||
        pathf(rootfs, err, "%s/rootfs", dir) < 0 || pathf(tmp, err, "%s/meta.tmp", dir) < 0)
      return err->code;
    unlink(tmp);
    struct image_rec rec;
    struct stat st;
    if (read_meta(dir, de->d_name, &rec, meta_tags) < 0) {
      retire_dir(s, de->d_name, "no valid meta file (interrupted import?)");
      continue;
    }
    if (lstat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
      retire_dir(s, de->d_name, "no rootfs directory");
      continue;
    }
    if (!add_image(s, &rec))
      return qerr_set(err, ENOMEM, "loading images");
  }
  return 0;
}

static int load_tags(struct image_store *s, struct tagset *meta_tags, struct qerr *err) {
  char path[PATH_MAX];
  if (pathf(path, err, "%s/tags", s->dir) < 0)
    return err->code;
  cleanup_file FILE *f = fopen(path, "re");
  bool dirty = false;
  if (!f) {
    if (errno != ENOENT)
      return qerr_errno(err, "reading %s", path);
    /* Lost or never written: the meta files know the tags. */
    for (size_t i = 0; i < meta_tags->n; i++)
      if (find_image(s, meta_tags->v[i].id) && tagset_put(&s->tags, meta_tags->v[i].tag,
                                                          meta_tags->v[i].id) < 0)
        return qerr_set(err, ENOMEM, "loading image tags");
    dirty = true;
  } else {
    char line[IMAGE_TAG_MAX + IMAGE_ID_LEN + 64];
    while (fgets(line, sizeof line, f)) {
      line[strcspn(line, "\n")] = 0;
      if (!line[0] || line[0] == '#')
        continue;
      char *sp = strchr(line, ' ');
      char canon[IMAGE_TAG_MAX];
      struct qerr te = QERR_INIT;
      if (!sp) {
        dirty = true;
        continue;
      }
      *sp = 0;
      if (image_tag_canonical(line, canon, &te) < 0 || !find_image(s, sp + 1) ||
          find_tag(&s->tags, canon)) {
        dirty = true; /* malformed, or its image is gone */
        continue;
      }
      if (tagset_put(&s->tags, canon, sp + 1) < 0)
        return qerr_set(err, ENOMEM, "loading image tags");
    }
  }
  if (dirty && save_index(s, &s->tags, err) < 0)
    return err->code;
  return 0;
}

static void clean_staging(struct image_store *s) {
  cleanup_dir DIR *d = opendir(s->staging);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char path[PATH_MAX];
    struct qerr e = QERR_INIT;
    if (pathf(path, &e, "%s/%s", s->staging, de->d_name) == 0) {
      log_info("image store: removing %s, left by an interrupted import", path);
      discard_tree(path);
    }
  }
}

int image_store_open(struct image_store **out, const char *images_dir,
                     const char *extract_helper_path, uint64_t max_bytes, struct qerr *err) {
  *out = NULL;
  if (!images_dir || images_dir[0] != '/')
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "images directory \"%s\" is not an absolute path",
                       images_dir ? images_dir : "");
  if (!extract_helper_path || access(extract_helper_path, X_OK) < 0) {
    qerr_errno(err, "image extraction helper %s", extract_helper_path ? extract_helper_path : "");
    err->status = GRPC_FAILED_PRECONDITION;
    return err->code;
  }
  struct image_store *s = calloc(1, sizeof *s);
  if (!s)
    return qerr_set(err, ENOMEM, "opening the image store");
  s->max_bytes = max_bytes;
  s->max_entries = DEFAULT_MAX_ENTRIES;
  snprintf(s->helper, sizeof s->helper, "%s", extract_helper_path);
  struct tagset meta_tags = {0};
  int r;
  if ((r = mkdir_p(images_dir, 0700, err)) < 0)
    goto fail;
  if (!realpath(images_dir, s->dir)) {
    r = qerr_errno(err, "resolving %s", images_dir);
    goto fail;
  }
  if ((r = pathf(s->staging, err, "%s/staging", s->dir)) < 0)
    goto fail;
  if (mkdir(s->staging, 0700) < 0 && errno != EEXIST) {
    r = qerr_errno(err, "creating %s", s->staging);
    goto fail;
  }
  clean_staging(s);
  char tmp[PATH_MAX];
  if (pathf(tmp, err, "%s/tags.tmp", s->dir) == 0)
    unlink(tmp);
  if ((r = load_images(s, &meta_tags, err)) < 0 || (r = load_tags(s, &meta_tags, err)) < 0)
    goto fail;
  free(meta_tags.v);
  *out = s;
  return 0;
fail:
  free(meta_tags.v);
  image_store_close(s);
  return qerr_wrap(err, "opening the image store in %s", images_dir);
}

void image_store_close(struct image_store *s) {
  if (!s)
    return;
  free(s->imgs);
  free(s->tags.v);
  free(s);
}

void image_store_set_max_entries(struct image_store *s, uint64_t n) { s->max_entries = n; }

const char *image_store_dir(const struct image_store *s) { return s->dir; }

size_t image_count(const struct image_store *s) { return s->n_imgs; }

void image_info_free(struct image_info *info) {
  if (!info)
    return;
  free(info->tags);
  info->tags = NULL;
  info->n_tags = 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fill_info(struct image_store *s, const struct image_rec *rec, struct image_info *out,
                     struct qerr *err) {
  memset(out, 0, sizeof *out);
  memcpy(out->id, rec->id, sizeof out->id);
  if (pathf(out->rootfs, err, "%s/%s/rootfs", s->dir, rec->id) < 0)
    return err->code;
  out->size_bytes = rec->size_bytes;
  out->created_ns = rec->created_ns;
  size_t n = 0, bytes = 0;
  for (size_t i = 0; i < s->tags.n; i++)
    if (strcmp(s->tags.v[i].id, rec->id) == 0) {
      n++;
      bytes += strlen(s->tags.v[i].tag) + 1;
    }
  if (!n)
    return 0;
  char **v = malloc(n * sizeof *v + bytes);
  if (!v)
    return qerr_set(err, ENOMEM, "listing tags");
  char *p = (char *)(v + n);
  size_t k = 0;
  for (size_t i = 0; i < s->tags.n; i++)
    if (strcmp(s->tags.v[i].id, rec->id) == 0) {
      size_t l = strlen(s->tags.v[i].tag) + 1;
      memcpy(p, s->tags.v[i].tag, l);
      v[k++] = p;
      p += l;
    }
  qsort(v, n, sizeof *v, cmp_str);
  out->tags = v;
  out->n_tags = n;
  return 0;
}

/* Points every tag in canon at id; saves the index and the meta files of
 * the images that gained or lost a tag. */
static int apply_tags(struct image_store *s, const char *id, char (*canon)[IMAGE_TAG_MAX],
                      size_t n, struct qerr *err) {
  struct tagset next;
  if (tagset_copy(&next, &s->tags) < 0)
    return qerr_set(err, ENOMEM, "tagging");
  cleanup_free char(*affected)[IMAGE_ID_LEN + 1] = calloc(n + 1, sizeof *affected);
  size_t n_aff = 0;
  bool changed = false;
  if (!affected) {
    free(next.v);
    return qerr_set(err, ENOMEM, "tagging");
  }
  for (size_t i = 0; i < n; i++) {
    struct tag_rec *t = find_tag(&next, canon[i]);
    if (t && strcmp(t->id, id) == 0)
      continue;
    changed = true;
    if (t)
      memcpy(affected[n_aff++], t->id, IMAGE_ID_LEN + 1);
    if (tagset_put(&next, canon[i], id) < 0) {
      free(next.v);
      return qerr_set(err, ENOMEM, "tagging");
    }
  }
  if (!changed) {
    free(next.v); /* nothing changed: no writes (the fast cached path) */
    return 0;
  }
  if (save_index(s, &next, err) < 0) {
    free(next.v);
    return qerr_wrap(err, "saving the image tags");
  }
  free(s->tags.v);
  s->tags = next;
  memcpy(affected[n_aff++], id, IMAGE_ID_LEN + 1);
  refresh_metas(s, affected, n_aff);
  return 0;
}

static int check_tags(const char *const *tags, size_t n, char (**canon)[IMAGE_TAG_MAX],
                      struct qerr *err) {
  *canon = calloc(n ? n : 1, sizeof **canon);
  if (!*canon)
    return qerr_set(err, ENOMEM, "checking tags");
  for (size_t i = 0; i < n; i++)
    if (image_tag_canonical(tags[i], (*canon)[i], err) < 0)
      return err->code;
  return 0;
}

static int answer(struct image_store *s, const struct image_rec *rec, struct image_info *out,
                  struct qerr *err) {
  return out ? fill_info(s, rec, out, err) : 0;
}


/* ------------------------------------------------------------ image config */

#define CONFIG_MAX (1U << 20)

void image_config_free(struct image_config *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n_env; i++)
    free(c->env[i]);
  for (size_t i = 0; i < c->n_argv; i++)
    free(c->argv[i]);
  for (size_t i = 0; i < c->n_repo_tags; i++)
    free(c->repo_tags[i]);
  free(c->env);
  free(c->argv);
  free(c->repo_tags);
  free(c->workdir);
  free(c->user);
  memset(c, 0, sizeof *c);
}

static int strv_add(char ***v, size_t *n, char *str) {
  char **nv = realloc(*v, (*n + 2) * sizeof *nv);
  if (!nv) {
    free(str);
    return -1;
  }
  nv[(*n)++] = str;
  nv[*n] = NULL;
  *v = nv;
  return 0;
}

/* Parses the line format (docs/images.md, "Config defaults"). */
static int config_parse(const char *text, size_t len, struct image_config *c) {
  memset(c, 0, sizeof *c);
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *eq = memchr(p, '=', (size_t)(le - p));
    if (eq) {
      char *val = malloc((size_t)(le - eq));
      if (!val)
        goto nomem;
      size_t o = 0;
      for (const char *q = eq + 1; q < le; q++) {
        if (*q == '\\' && q + 1 < le) {
          q++;
          val[o++] = *q == 'n' ? '\n' : *q;
        } else {
          val[o++] = *q;
        }
      }
      val[o] = 0;
      size_t kl = (size_t)(eq - p);
      int r = 0;
      if (kl == 3 && !memcmp(p, "env", 3))
        r = strv_add(&c->env, &c->n_env, val);
      else if (kl == 3 && !memcmp(p, "arg", 3))
        r = strv_add(&c->argv, &c->n_argv, val);
      else if (kl == 3 && !memcmp(p, "tag", 3))
        r = strv_add(&c->repo_tags, &c->n_repo_tags, val);
      else if (kl == 7 && !memcmp(p, "workdir", 7)) {
        free(c->workdir);
        c->workdir = val;
      } else if (kl == 4 && !memcmp(p, "user", 4)) {
        free(c->user);
        c->user = val;
      } else
        free(val);
      if (r < 0)
        goto nomem;
    }
    p = le + 1;
  }
  return 0;
nomem:
  image_config_free(c);
  return -ENOMEM;
}

static void put_line(struct strbuf *b, const char *key, const char *val) {
  strbuf_printf(b, "%s=", key);
  for (const char *q = val; *q; q++) {
    if (*q == '\\')
      strbuf_printf(b, "\\\\");
    else if (*q == '\n')
      strbuf_printf(b, "\\n");
    else
      strbuf_printf(b, "%c", *q);
  }
  strbuf_printf(b, "\n");
}

/* Reads a config file without following a symlink; *c zeroed when absent. */
static int config_read(const char *path, struct image_config *c, struct qerr *err) {
  memset(c, 0, sizeof *c);
  cleanup_fd int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : qerr_errno(err, "opening %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "inspecting %s", path);
  if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CONFIG_MAX)
    return qerr_status(err, GRPC_INTERNAL, EIO, "%s is not a config file", path);
  cleanup_free char *buf = malloc((size_t)st.st_size + 1);
  if (!buf)
    return qerr_set(err, ENOMEM, "reading %s", path);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return qerr_errno(err, "reading %s", path);
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (config_parse(buf, got, c) < 0)
    return qerr_set(err, ENOMEM, "parsing %s", path);
  return 0;
}

/* Takes the helper's results out of work/: the tree (a real directory)
 * into staging/<rnd>/rootfs, the config re-serialised by the store into
 * staging/<rnd>/config; then work/ goes. Nothing else the helper left is
 * trusted or kept. */
static int adopt_tree(struct image_import *imp, struct qerr *err) {
  char src[PATH_MAX], dst[PATH_MAX], cpath[PATH_MAX];
  if (pathf(src, err, "%s/rootfs", imp->work) < 0 ||
      pathf(dst, err, "%s/rootfs", imp->staging) < 0 ||
      pathf(cpath, err, "%s/.quilt-config", imp->work) < 0)
    return err->code;
  struct stat st;
  if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode))
    return qerr_status(err, GRPC_INTERNAL, EIO, "quilt-extract left no rootfs directory");
  if (rename(src, dst) < 0)
    return qerr_errno(err, "moving %s", src);
  struct image_config c;
  if (config_read(cpath, &c, err) < 0)
    return err->code;
  bool any = c.n_env || c.n_argv || c.workdir || c.user || c.n_repo_tags ||
             access(cpath, F_OK) == 0;
  int r = 0;
  if (any) {
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "format=1\n");
    for (size_t i = 0; i < c.n_env; i++)
      put_line(&b, "env", c.env[i]);
    for (size_t i = 0; i < c.n_argv; i++)
      put_line(&b, "arg", c.argv[i]);
    if (c.workdir)
      put_line(&b, "workdir", c.workdir);
    if (c.user)
      put_line(&b, "user", c.user);
    for (size_t i = 0; i < c.n_repo_tags; i++)
      put_line(&b, "tag", c.repo_tags[i]);
    char out[PATH_MAX];
    r = pathf(out, err, "%s/config", imp->staging);
    if (r == 0)
      r = write_atomic(out, strbuf_cstr(&b) ? strbuf_cstr(&b) : "", strbuf_avail(&b), err);
    strbuf_free(&b);
  }
  image_config_free(&c);
  if (r < 0)
    return err->code;
  discard_tree(imp->work);
  return 0;
}

/* Applies canon plus the RepoTags recorded in the image's config (a
 * `docker save` archive's; the invalid ones are skipped), then answers. */
static int tag_and_answer(struct image_store *s, const char *id, char (*canon)[IMAGE_TAG_MAX],
                          size_t n_tags, struct image_info *out, struct qerr *err) {
  char path[PATH_MAX];
  struct image_config c = {0};
  struct qerr ce = QERR_INIT;
  if (pathf(path, err, "%s/%s/config", s->dir, id) < 0)
    return err->code;
  if (config_read(path, &c, &ce) < 0)
    log_warn("image store: %s", ce.msg);
  cleanup_free char(*all)[IMAGE_TAG_MAX] = calloc(n_tags + c.n_repo_tags + 1, sizeof *all);
  if (!all) {
    image_config_free(&c);
    return qerr_set(err, ENOMEM, "tagging");
  }
  size_t n = 0;
  for (size_t i = 0; i < n_tags; i++)
    memcpy(all[n++], canon[i], IMAGE_TAG_MAX);
  for (size_t i = 0; i < c.n_repo_tags; i++) {
    struct qerr te = QERR_INIT;
    if (image_tag_canonical(c.repo_tags[i], all[n], &te) == 0)
      n++;
    else
      log_info("image store: %s: ignoring RepoTag \"%.200s\": %s", id, c.repo_tags[i], te.msg);
  }
  image_config_free(&c);
  if (apply_tags(s, id, all, n, err) < 0)
    return err->code;
  return answer(s, find_image(s, id), out, err);
}

/* ------------------------------------------------------------ file memo */

/* A remembered id is trusted only while a change to the file must show in
 * its ctime: the ctime has to predate the start of hashing by more than the
 * filesystem's timestamp granularity (2 s where it looks like whole
 * seconds), or a write in the same tick could leave it unchanged. */
static bool memo_stable(const struct stat *st, const struct timespec *t0) {
  const struct timespec *c = &st->st_ctim;
  if (c->tv_nsec == 0)
    return c->tv_sec + 2 < t0->tv_sec;
  return c->tv_sec < t0->tv_sec || (c->tv_sec == t0->tv_sec && c->tv_nsec < t0->tv_nsec);
}

static bool same_ts(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         same_ts(&a->st_mtim, &b->st_mtim) && same_ts(&a->st_ctim, &b->st_ctim);
}

static const char *memo_get(struct image_store *s, const struct stat *st) {
  for (size_t i = 0; i < MEMO_SLOTS; i++) {
    struct memo *m = &s->memo[i];
    if (m->used && m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
        same_ts(&m->mtime, &st->st_mtim) && same_ts(&m->ctime, &st->st_ctim))
      return m->id;
  }
  return NULL;
}

static void memo_put(struct image_store *s, const struct stat *st, const char *id) {
  struct memo *m = &s->memo[s->memo_next++ % MEMO_SLOTS];
  *m = (struct memo){.used = true, .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                     .mtime = st->st_mtim, .ctime = st->st_ctim};
  memcpy(m->id, id, sizeof m->id);
}

/* ------------------------------------------------------------ import */

__attribute__((noreturn)) static void child_exec(const char *helper, char *const argv[],
                                                 int in_r, int out_w) {
  /* A daemon that dies takes its imports with it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    signal(sig, SIG_DFL);
  setsid();
  int in = fcntl(in_r, F_DUPFD, 10), out = fcntl(out_w, F_DUPFD, 10);
  if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
    _exit(126);
  sys_close_range(3, ~0U, 0);
  char *const envp[] = {NULL};
  execve(helper, argv, envp);
  char msg[PATH_MAX + 128];
  int n = snprintf(msg, sizeof msg, "executing %s: %s\n", helper, strerror(errno));
  if (n > 0 && write(2, msg, (size_t)n) < 0)
    _exit(127);
  _exit(127);
}

static long clone_helper(uint64_t flags, int *pidfd) {
  struct clone_args args = {
      .flags = flags | CLONE_PIDFD,
      .pidfd = (uint64_t)(uintptr_t)pidfd,
      .exit_signal = SIGCHLD,
  };
  long pid = sys_clone3(&args);
  if (pid >= 0 || errno != ENOSYS)
    return pid;
  return syscall(SYS_clone, (unsigned long)flags | CLONE_PIDFD | SIGCHLD, NULL, pidfd, NULL, 0);
}

static int spawn_helper(struct image_store *s, const char *rootfs, int in_r, int out_w,
                        struct image_import *imp, struct qerr *err) {
  char maxb[32], maxe[32];
  snprintf(maxb, sizeof maxb, "%" PRIu64, s->max_bytes);
  snprintf(maxe, sizeof maxe, "%" PRIu64, s->max_entries);
  char *const argv[] = {s->helper,       "--staging", (char *)rootfs, "--rootfs-dir",
                        "rootfs",        "--max-bytes", maxb,       "--max-entries",
                        maxe,            NULL};
  /* Its own PID namespace (it cannot see or signal anything), no network
   * and no SysV IPC. Where namespaces are not allowed the helper still
   * confines itself. */
  static bool no_namespaces;
  uint64_t ns = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC;
  int pidfd = -1;
  long pid = clone_helper(no_namespaces ? 0 : ns, &pidfd);
  if (pid < 0 && !no_namespaces && (errno == EPERM || errno == EINVAL || errno == ENOSPC ||
                                    errno == EUSERS)) {
    log_warn("image store: no namespaces for quilt-extract (%s); running it without",
             strerror(errno));
    no_namespaces = true;
    pid = clone_helper(0, &pidfd);
  }
  if (pid == 0)
    child_exec(s->helper, argv, in_r, out_w);
  if (pid < 0)
    return qerr_errno(err, "starting %s", s->helper);
  imp->pid = (pid_t)pid;
  imp->pidfd = pidfd;
  return 0;
}

static void import_free(struct image_import *imp) {
  if (imp->src_fd >= 0)
    close(imp->src_fd);
  if (imp->pidfd >= 0)
    close(imp->pidfd);
  if (imp->out_fd >= 0)
    close(imp->out_fd);
  free(imp);
}

int image_import_begin(struct image_store *s, struct image_import **impp, int *stream_fd,
                       struct qerr *err) {
  *impp = NULL;
  *stream_fd = -1;
  struct image_import *imp = calloc(1, sizeof *imp);
  if (!imp)
    return qerr_set(err, ENOMEM, "starting an import");
  imp->pidfd = imp->out_fd = imp->src_fd = -1;
  char rnd[17];
  int r = -EEXIST;
  for (int attempt = 0; attempt < 8 && r == -EEXIST; attempt++) {
    if (random_hex(rnd, 8) < 0) {
      free(imp);
      return qerr_errno(err, "getrandom");
    }
    if (pathf(imp->staging, err, "%s/%s", s->staging, rnd) < 0) {
      free(imp);
      return err->code;
    }
    r = mkdir(imp->staging, 0700) < 0 ? -errno : 0;
  }
  if (r < 0) {
    errno = -r;
    qerr_errno(err, "creating %s", imp->staging);
    free(imp);
    return err->code;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1};
  /* The helper is confined to work/ (empty); it leaves the tree in
   * work/rootfs, the image config in work/.quilt-config, and the store
   * takes only those two out of it (adopt_tree). */
  if (pathf(imp->work, err, "%s/work", imp->staging) < 0)
    goto fail;
  if (mkdir(imp->work, 0700) < 0) {
    qerr_errno(err, "creating %s", imp->work);
    goto fail;
  }
  /* The helper's output is non-blocking on both ends: it never waits for
   * us, whatever it prints, and we never wait for it. */
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0) {
    qerr_errno(err, "creating pipes for quilt-extract");
    goto fail;
  }
  fcntl(in[1], F_SETPIPE_SZ, (int)CHUNK);
  if (spawn_helper(s, imp->work, in[0], out[1], imp, err) < 0)
    goto fail;
  close(in[0]);
  close(out[1]);
  imp->out_fd = out[0];
  sha256_init(&imp->sha);
  *stream_fd = in[1];
  *impp = imp;
  return 0;
fail:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (out[i] >= 0)
      close(out[i]);
  }
  discard_tree(imp->staging);
  import_free(imp);
  return err->code;
}

int image_import_pidfd(const struct image_import *imp) { return imp->pidfd; }

void image_import_update(struct image_import *imp, const void *p, size_t n) {
  sha256_update(&imp->sha, n, p);
  imp->streamed += n;
}

int image_import_set_source(struct image_import *imp, int fd, struct qerr *err) {
  if (imp->src_fd >= 0)
    return qerr_set(err, EBUSY, "the import has a source already");
  clock_gettime(CLOCK_REALTIME_COARSE, &imp->src_t0);
  if (fstat(fd, &imp->src_st) < 0)
    return qerr_errno(err, "inspecting the archive");
  if (!S_ISREG(imp->src_st.st_mode))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "the archive is not a regular file");
  imp->src_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (imp->src_fd < 0)
    return qerr_errno(err, "duplicating the archive's fd");
  return 0;
}

int image_wait_status(int code, int status) {
  if (code == CLD_EXITED)
    return (status & 0xff) << 8;
  return status & 0x7f;
}

/* Reads what the helper printed; keeps the last line that is not empty in
 * last and the "ok ..." summary in summary. */
static void read_output(struct image_import *imp, char *last, size_t last_cap, char *summary,
                        size_t summary_cap) {
  char buf[8192];
  size_t len = 0;
  last[0] = summary[0] = 0;
  for (;;) {
    if (len == sizeof buf) { /* keep the tail */
      memmove(buf, buf + sizeof buf / 2, sizeof buf / 2);
      len = sizeof buf / 2;
    }
    ssize_t n = read(imp->out_fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && buf[i] != '\n')
      continue;
    size_t l = i - start;
    while (l && (buf[start + l - 1] == '\r' || buf[start + l - 1] == ' '))
      l--;
    if (l) {
      snprintf(last, last_cap, "%.*s", (int)l, buf + start);
      if (l > 3 && memcmp(buf + start, "ok ", 3) == 0)
        snprintf(summary, summary_cap, "%.*s", (int)l, buf + start);
    }
    start = i + 1;
  }
}

static int commit(struct image_store *s, struct image_import *imp, const char *id, uint64_t bytes,
                  uint64_t entries, char (*canon)[IMAGE_TAG_MAX], size_t n_tags,
                  struct image_info *out, bool *cached, struct qerr *err) {
  if (adopt_tree(imp, err) < 0) {
    discard_tree(imp->staging);
    return err->code;
  }
  struct image_rec *rec = find_image(s, id);
  if (rec) {
    discard_tree(imp->staging);
    *cached = true;
  } else {
    struct image_rec nr = {.created_ns = now_ns(), .size_bytes = bytes, .entries = entries};
    memcpy(nr.id, id, sizeof nr.id);
    char dst[PATH_MAX];
    if (pathf(dst, err, "%s/%s", s->dir, id) < 0 || write_meta(s, imp->staging, &nr, err) < 0) {
      discard_tree(imp->staging);
      return qerr_wrap(err, "storing image %s", id);
    }
    if (rename(imp->staging, dst) < 0) {
      int e = errno;
      discard_tree(imp->staging);
      if (e != EEXIST && e != ENOTEMPTY) {
        errno = e;
        return qerr_errno(err, "moving the new image into %s", dst);
      }
      /* Someone else put it there: take theirs. */
      if (read_meta(dst, id, &nr, NULL) < 0)
        return qerr_status(err, GRPC_INTERNAL, EIO, "image %s exists without a valid meta file",
                           dst);
      *cached = true;
    }
    fsync_dir(s->dir);
    rec = add_image(s, &nr);
    if (!rec)
      return qerr_set(err, ENOMEM, "recording image %s", id);
  }
  return tag_and_answer(s, id, canon, n_tags, out, err);
}

static int finish(struct image_store *s, struct image_import *imp, int ws,
                  const char *const *tags, size_t n_tags, const char *expect_id,
                  struct image_info *out, bool *cached, struct qerr *err) {
  bool dummy;
  if (!cached)
    cached = &dummy;
  *cached = false;
  if (out)
    memset(out, 0, sizeof *out);
  char last[1024], summary[256];
  read_output(imp, last, sizeof last, summary, sizeof summary);
  cleanup_free char(*canon)[IMAGE_TAG_MAX] = NULL;
  int r = check_tags(tags, n_tags, &canon, err);
  if (r < 0)
    goto discard;
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 2) {
    r = qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "%s",
                    last[0] ? last : "invalid image archive");
    goto discard;
  }
  if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0) {
    r = qerr_status(err, GRPC_INTERNAL, EIO, "quilt-extract failed (exit status %d): %s",
                    WEXITSTATUS(ws), last[0] ? last : "no message");
    goto discard;
  }
  if (WIFSIGNALED(ws)) {
    r = qerr_status(err, GRPC_INTERNAL, EIO, "quilt-extract was killed by signal %d%s%s",
                    WTERMSIG(ws), last[0] ? ": " : "", last);
    goto discard;
  }
  uint64_t bytes = 0, entries = 0;
  if (!WIFEXITED(ws) ||
      sscanf(summary, "ok bytes=%" SCNu64 " entries=%" SCNu64, &bytes, &entries) != 2) {
    r = qerr_status(err, GRPC_INTERNAL, EIO, "quilt-extract reported no result (status %#x)", ws);
    goto discard;
  }
  char id[IMAGE_ID_LEN + 1];
  hex_digest(&imp->sha, id);
  if (expect_id && strcmp(id, expect_id) != 0) {
    r = qerr_status(err, GRPC_ABORTED, EAGAIN, "the archive changed while it was imported");
    goto discard;
  }
  r = commit(s, imp, id, bytes, entries, canon, n_tags, out, cached, err);
  struct stat after;
  if (r == 0 && imp->src_fd >= 0 && fstat(imp->src_fd, &after) == 0 &&
      same_file(&imp->src_st, &after) && memo_stable(&imp->src_st, &imp->src_t0))
    memo_put(s, &imp->src_st, id);
  import_free(imp);
  return r;
discard:
  discard_tree(imp->staging);
  import_free(imp);
  return r;
}

int image_import_finish(struct image_store *s, struct image_import *imp, int wait_status,
                        const char *const *tags, size_t n_tags, struct image_info *out,
                        bool *cached, struct qerr *err) {
  return finish(s, imp, wait_status, tags, n_tags, NULL, out, cached, err);
}

void image_import_abort(struct image_store *s, struct image_import *imp) {
  (void)s;
  if (imp->pidfd >= 0) {
    sys_pidfd_send_signal(imp->pidfd, SIGKILL);
    siginfo_t si;
    while (waitid(P_PIDFD, (id_t)imp->pidfd, &si, WEXITED) < 0 && errno == EINTR)
      ;
  }
  discard_tree(imp->staging);
  import_free(imp);
}

/* ------------------------------------------------------------ file import */

int image_import_try_memo(struct image_store *s, int fd, const char *const *tags, size_t n_tags,
                          struct image_info *out, struct qerr *err) {
  if (out)
    memset(out, 0, sizeof *out);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "inspecting the archive");
  const char *known = S_ISREG(st.st_mode) ? memo_get(s, &st) : NULL;
  struct image_rec *rec = known ? find_image(s, known) : NULL;
  if (!rec)
    return 0;
  cleanup_free char(*canon)[IMAGE_TAG_MAX] = NULL;
  char id[IMAGE_ID_LEN + 1];
  memcpy(id, rec->id, sizeof id);
  if (check_tags(tags, n_tags, &canon, err) < 0 ||
      tag_and_answer(s, id, canon, n_tags, out, err) < 0)
    return err->code;
  return 1;
}

static int hash_file(int fd, const char *path, char id[IMAGE_ID_LEN + 1], struct qerr *err) {
  cleanup_free uint8_t *buf = malloc(CHUNK);
  if (!buf)
    return qerr_set(err, ENOMEM, "hashing %s", path);
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, CHUNK, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return qerr_errno(err, "reading %s", path);
    if (n == 0)
      break;
    sha256_update(&ctx, (size_t)n, buf);
    off += n;
  }
  hex_digest(&ctx, id);
  return 0;
}

/* Streams the file into the helper. Returns 0 also when the helper stopped
 * reading (it exited: finish will say why). */
static int stream_file(int fd, const char *path, struct image_import *imp, int stream_fd,
                       struct qerr *err) {
  cleanup_free uint8_t *buf = malloc(CHUNK);
  if (!buf)
    return qerr_set(err, ENOMEM, "importing %s", path);
  /* EPIPE instead of SIGPIPE, without touching the process's handlers. */
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int r = 0;
  bool epipe = false;
  off_t off = 0;
  while (!epipe) {
    ssize_t n = pread(fd, buf, CHUNK, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = qerr_errno(err, "reading %s", path);
      break;
    }
    if (n == 0)
      break;
    off += n;
    image_import_update(imp, buf, (size_t)n);
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(stream_fd, buf + done, (size_t)(n - done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && errno == EPIPE) {
        epipe = true;
        break;
      }
      if (w < 0) {
        r = qerr_errno(err, "writing to quilt-extract");
        break;
      }
      done += w;
    }
    if (r < 0)
      break;
  }
  if (epipe && !was_pending) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}

int image_import_file(struct image_store *s, const char *path, const char *const *tags,
                      size_t n_tags, struct image_info *out, bool *cached, struct qerr *err) {
  bool dummy;
  if (!cached)
    cached = &dummy;
  *cached = false;
  if (out)
    memset(out, 0, sizeof *out);
  cleanup_free char(*canon)[IMAGE_TAG_MAX] = NULL;
  if (check_tags(tags, n_tags, &canon, err) < 0)
    return err->code;
  /* O_NONBLOCK: opening a FIFO must not hang. */
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    qerr_errno(err, "image archive %s", path);
    if (errno == ENOENT || errno == ENOTDIR)
      err->status = GRPC_NOT_FOUND;
    return err->code;
  }
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "image archive %s", path);
  if (!S_ISREG(st.st_mode))
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "image archive %s is not a regular file%s", path,
                       S_ISDIR(st.st_mode) ? " (a directory)" : "");
  int known = image_import_try_memo(s, fd, tags, n_tags, out, err);
  if (known != 0) {
    *cached = known > 0;
    return known < 0 ? known : 0;
  }

  struct timespec t0;
  clock_gettime(CLOCK_REALTIME_COARSE, &t0);
  char id[IMAGE_ID_LEN + 1];
  if (hash_file(fd, path, id, err) < 0)
    return err->code;
  struct stat after;
  bool stable = fstat(fd, &after) == 0 && same_file(&st, &after) && memo_stable(&st, &t0);
  struct image_rec *rec = find_image(s, id);
  if (rec) {
    if (stable)
      memo_put(s, &st, id);
    *cached = true;
    return tag_and_answer(s, id, canon, n_tags, out, err);
  }

  struct image_import *imp;
  int stream_fd;
  if (image_import_begin(s, &imp, &stream_fd, err) < 0)
    return err->code;
  int r = image_import_set_source(imp, fd, err);
  if (r == 0)
    r = stream_file(fd, path, imp, stream_fd, err);
  close(stream_fd);
  if (r < 0) {
    image_import_abort(s, imp);
    return err->code;
  }
  siginfo_t si = {0};
  while (waitid(P_PIDFD, (id_t)imp->pidfd, &si, WEXITED) < 0) {
    if (errno != EINTR) {
      qerr_errno(err, "waiting for quilt-extract");
      image_import_abort(s, imp);
      return err->code;
    }
  }
  r = finish(s, imp, image_wait_status(si.si_code, si.si_status), tags, n_tags, id, out, cached,
             err);
  return r < 0 ? qerr_wrap(err, "importing %s", path) : 0;
}

/* ------------------------------------------------------------ queries */

static int by_prefix(struct image_store *s, const char *ref, const char *hex,
                     struct image_rec **out, struct qerr *err) {
  size_t n = strlen(hex);
  struct image_rec *hit = NULL;
  size_t hits = 0;
  for (size_t i = 0; i < s->n_imgs; i++)
    if (strncmp(s->imgs[i].id, hex, n) == 0) {
      hit = &s->imgs[i];
      hits++;
    }
  if (hits == 0)
    return qerr_status(err, GRPC_NOT_FOUND, ENOENT, "image \"%s\" not found", ref);
  if (hits > 1)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "image id prefix \"%s\" is ambiguous (%zu images)", hex, hits);
  *out = hit;
  return 0;
}

/* via_tag (IMAGE_TAG_MAX bytes, or NULL): the canonical tag when ref named
 * the image by one, else "". */
static int resolve_ref(struct image_store *s, const char *ref, struct image_rec **out,
                       char *via_tag, struct qerr *err) {
  *out = NULL;
  if (via_tag)
    via_tag[0] = 0;
  size_t len = ref ? strnlen(ref, 512) : 0;
  if (len == 0 || len >= 512)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "empty or overlong image reference");
  if (strncmp(ref, "sha256:", 7) == 0) {
    const char *hex = ref + 7;
    size_t hl = len - 7;
    if (hl < 4 || hl > IMAGE_ID_LEN || !is_hex(hex, hl))
      return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                         "invalid image id \"%s\": expected 4 to 64 lowercase hex digits", ref);
    return by_prefix(s, ref, hex, out, err);
  }
  if (strchr(ref, ':')) {
    char canon[IMAGE_TAG_MAX];
    if (image_tag_canonical(ref, canon, err) < 0)
      return err->code;
    struct tag_rec *t = find_tag(&s->tags, canon);
    if (!t || !(*out = find_image(s, t->id)))
      return qerr_status(err, GRPC_NOT_FOUND, ENOENT, "image \"%s\" not found", ref);
    if (via_tag)
      memcpy(via_tag, canon, sizeof canon);
    return 0;
  }
  bool hex = is_hex(ref, len);
  if (len == IMAGE_ID_LEN && hex) {
    *out = find_image(s, ref);
    return *out ? 0 : qerr_status(err, GRPC_NOT_FOUND, ENOENT, "image %s not found", ref);
  }
  char canon[IMAGE_TAG_MAX];
  struct qerr te = QERR_INIT;
  bool name = image_tag_canonical(ref, canon, &te) == 0;
  struct tag_rec *t = name ? find_tag(&s->tags, canon) : NULL;
  if (t && (*out = find_image(s, t->id))) {
    if (via_tag)
      memcpy(via_tag, canon, sizeof canon);
    return 0;
  }
  if (hex && len >= 4)
    return by_prefix(s, ref, ref, out, err);
  if (!name)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "invalid image reference \"%s\": expected name[:tag], an id or "
                       "sha256:<id>",
                       ref);
  return qerr_status(err, GRPC_NOT_FOUND, ENOENT, "image \"%s\" not found", ref);
}

static int resolve(struct image_store *s, const char *ref, struct image_rec **out,
                   struct qerr *err) {
  return resolve_ref(s, ref, out, NULL, err);
}

int image_config(struct image_store *s, const char *ref, struct image_config *out,
                 struct qerr *err) {
  memset(out, 0, sizeof *out);
  struct image_rec *rec;
  char path[PATH_MAX];
  if (resolve(s, ref, &rec, err) < 0 || pathf(path, err, "%s/%s/config", s->dir, rec->id) < 0)
    return err->code;
  return config_read(path, out, err);
}

int image_lookup(struct image_store *s, const char *ref, struct image_info *out,
                 struct qerr *err) {
  memset(out, 0, sizeof *out);
  struct image_rec *rec;
  if (resolve(s, ref, &rec, err) < 0)
    return err->code;
  return fill_info(s, rec, out, err);
}

static int cmp_created(const void *a, const void *b) {
  const struct image_rec *x = *(struct image_rec *const *)a, *y = *(struct image_rec *const *)b;
  if (x->created_ns != y->created_ns)
    return x->created_ns < y->created_ns ? -1 : 1;
  return strcmp(x->id, y->id);
}

int image_list(struct image_store *s, int (*fn)(void *arg, const struct image_info *img),
               void *arg, struct qerr *err) {
  if (!s->n_imgs)
    return 0;
  cleanup_free struct image_rec **order = malloc(s->n_imgs * sizeof *order);
  if (!order)
    return qerr_set(err, ENOMEM, "listing images");
  for (size_t i = 0; i < s->n_imgs; i++)
    order[i] = &s->imgs[i];
  qsort(order, s->n_imgs, sizeof *order, cmp_created);
  size_t n = s->n_imgs;
  for (size_t i = 0; i < n; i++) {
    struct image_info info;
    if (fill_info(s, order[i], &info, err) < 0)
      return err->code;
    int r = fn(arg, &info);
    image_info_free(&info);
    if (r)
      return r;
  }
  return 0;
}

int image_remove(struct image_store *s, const char *ref, struct qerr *err) {
  struct image_rec *rec;
  if (resolve(s, ref, &rec, err) < 0)
    return err->code;
  char id[IMAGE_ID_LEN + 1];
  memcpy(id, rec->id, sizeof id);
  /* Tags first: a crash after this leaves an untagged image, never a tag
   * pointing at nothing. */
  struct tagset next = {0};
  if (tagset_copy(&next, &s->tags) < 0)
    return qerr_set(err, ENOMEM, "removing image %s", id);
  size_t k = 0;
  for (size_t i = 0; i < next.n; i++)
    if (strcmp(next.v[i].id, id) != 0)
      next.v[k++] = next.v[i];
  if (k != next.n) {
    next.n = k;
    if (save_index(s, &next, err) < 0) {
      free(next.v);
      return qerr_wrap(err, "removing image %s", id);
    }
  }
  free(s->tags.v);
  s->tags = next;
  char src[PATH_MAX], dst[PATH_MAX], rnd[17];
  if (random_hex(rnd, 8) < 0)
    return qerr_errno(err, "getrandom");
  if (pathf(src, err, "%s/%s", s->dir, id) < 0 ||
      pathf(dst, err, "%s/rm-%s-%s", s->staging, id, rnd) < 0)
    return err->code;
  if (rename(src, dst) < 0)
    return qerr_errno(err, "removing image %s", id);
  size_t idx = (size_t)(rec - s->imgs);
  s->imgs[idx] = s->imgs[--s->n_imgs];
  for (size_t i = 0; i < MEMO_SLOTS; i++)
    if (s->memo[i].used && strcmp(s->memo[i].id, id) == 0)
      s->memo[i].used = false;
  discard_tree(dst);
  return 0;
}

/* "a, b, c" into out, cut with ", ..." where it does not fit. */
static void join_tags(const struct image_info *info, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; i < info->n_tags; i++) {
    int n = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", info->tags[i]);
    if (n < 0 || (size_t)n >= cap - len) {
      snprintf(out + (len < cap - 6 ? len : cap - 6), 6, ", ...");
      return;
    }
    len += (size_t)n;
  }
}

int image_remove_plan(struct image_store *s, const char *ref, bool force,
                      struct image_info *info, char tag[IMAGE_TAG_MAX], struct qerr *err) {
  memset(info, 0, sizeof *info);
  struct image_rec *rec;
  if (resolve_ref(s, ref, &rec, tag, err) < 0 || fill_info(s, rec, info, err) < 0)
    return err->code;
  if (tag[0])
    return info->n_tags > 1 ? IMAGE_RM_UNTAG : IMAGE_RM_DELETE;
  if (info->n_tags <= 1 || force)
    return IMAGE_RM_DELETE;
  char list[300];
  join_tags(info, list, sizeof list);
  qerr_status(err, GRPC_FAILED_PRECONDITION, EBUSY,
              "image %.12s is tagged %s: remove the tags or use force", info->id, list);
  image_info_free(info);
  return err->code;
}

int image_tag(struct image_store *s, const char *ref, const char *tag, struct qerr *err) {
  char canon[1][IMAGE_TAG_MAX];
  if (image_tag_canonical(tag, canon[0], err) < 0)
    return err->code;
  struct image_rec *rec;
  if (resolve(s, ref, &rec, err) < 0)
    return err->code;
  char id[IMAGE_ID_LEN + 1];
  memcpy(id, rec->id, sizeof id);
  return apply_tags(s, id, canon, 1, err);
}

int image_untag(struct image_store *s, const char *tag, struct qerr *err) {
  char canon[IMAGE_TAG_MAX];
  if (image_tag_canonical(tag, canon, err) < 0)
    return err->code;
  struct tag_rec *t = find_tag(&s->tags, canon);
  if (!t)
    return qerr_status(err, GRPC_NOT_FOUND, ENOENT, "no image is tagged %s", canon);
  char id[1][IMAGE_ID_LEN + 1];
  memcpy(id[0], t->id, sizeof id[0]);
  struct tagset next;
  if (tagset_copy(&next, &s->tags) < 0)
    return qerr_set(err, ENOMEM, "untagging");
  size_t idx = (size_t)(t - s->tags.v);
  next.v[idx] = next.v[--next.n];
  if (save_index(s, &next, err) < 0) {
    free(next.v);
    return qerr_wrap(err, "untagging %s", canon);
  }
  free(s->tags.v);
  s->tags = next;
  refresh_metas(s, id, 1);
  return 0;
}
