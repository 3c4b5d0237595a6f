#include "extract/extract_check.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tree is a hash table of (parent node, component name) -> node, so a
 * path costs one lookup per component and memory grows with the number of
 * distinct components, not with the total length of all paths. */

enum kind { K_NONE = 0, K_DIR, K_FILE, K_SYMLINK };

struct node {
  uint32_t parent;
  uint32_t next;        /* hash chain; 0 ends it (node 0 is the root) */
  uint32_t name_off;
  uint16_t name_len;
  uint8_t kind;
};

struct xc_tree {
  struct node *nodes;
  size_t n_nodes, cap_nodes;
  char *names;
  size_t names_len, names_cap;
  uint32_t *buckets;    /* node index + 1 of the chain head; 0 = empty */
  size_t n_buckets;     /* power of two */
  uint64_t max_paths;
};

static uint64_t hash_of(uint32_t parent, const char *name, size_t len) {
  uint64_t h = 1469598103934665603ULL ^ ((uint64_t)parent * 0x9E3779B97F4A7C15ULL);
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)name[i];
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

struct xc_tree *xc_tree_new(uint64_t max_paths) {
  struct xc_tree *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->max_paths = max_paths;
  t->cap_nodes = 1024;
  t->nodes = calloc(t->cap_nodes, sizeof *t->nodes);
  t->n_buckets = 1024;
  t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
  if (!t->nodes || !t->buckets) {
    xc_tree_free(t);
    return NULL;
  }
  t->nodes[0] = (struct node){.kind = K_DIR};
  t->n_nodes = 1;
  return t;
}

void xc_tree_free(struct xc_tree *t) {
  if (!t)
    return;
  free(t->nodes);
  free(t->names);
  free(t->buckets);
  free(t);
}

uint64_t xc_tree_paths(const struct xc_tree *t) { return t->n_nodes - 1; }

static uint32_t find(const struct xc_tree *t, uint32_t parent, const char *name, size_t len) {
  uint64_t h = hash_of(parent, name, len);
  for (uint32_t i = t->buckets[h & (t->n_buckets - 1)]; i; i = t->nodes[i - 1].next) {
    const struct node *n = &t->nodes[i - 1];
    if (n->parent == parent && n->name_len == len && memcmp(t->names + n->name_off, name, len) == 0)
      return i - 1;
  }
  return 0; /* the root is never anyone's child */
}

static int rehash(struct xc_tree *t) {
  size_t nb = t->n_buckets * 2;
  uint32_t *b = calloc(nb, sizeof *b);
  if (!b)
    return -1;
  for (size_t i = 1; i < t->n_nodes; i++) {
    struct node *n = &t->nodes[i];
    uint64_t h = hash_of(n->parent, t->names + n->name_off, n->name_len);
    n->next = b[h & (nb - 1)];
    b[h & (nb - 1)] = (uint32_t)i + 1;
  }
  free(t->buckets);
  t->buckets = b;
  t->n_buckets = nb;
  return 0;
}

/* Returns the new node's index, 0 on ENOMEM. */
static uint32_t add(struct xc_tree *t, uint32_t parent, const char *name, size_t len,
                    enum kind k) {
  if (t->n_nodes >= UINT32_MAX - 1 || t->names_len + len > UINT32_MAX)
    return 0;
  if (t->n_nodes == t->cap_nodes) {
    struct node *nn = realloc(t->nodes, t->cap_nodes * 2 * sizeof *nn);
    if (!nn)
      return 0;
    t->nodes = nn;
    t->cap_nodes *= 2;
  }
  if (t->names_len + len > t->names_cap) {
    size_t cap = t->names_cap ? t->names_cap : 65536;
    while (cap < t->names_len + len)
      cap *= 2;
    char *nn = realloc(t->names, cap);
    if (!nn)
      return 0;
    t->names = nn;
    t->names_cap = cap;
  }
  if (t->n_nodes * 4 >= t->n_buckets * 3 && rehash(t) < 0)
    return 0;
  uint32_t idx = (uint32_t)t->n_nodes++;
  memcpy(t->names + t->names_len, name, len);
  uint64_t h = hash_of(parent, name, len);
  t->nodes[idx] = (struct node){.parent = parent,
                                .next = t->buckets[h & (t->n_buckets - 1)],
                                .name_off = (uint32_t)t->names_len,
                                .name_len = (uint16_t)len,
                                .kind = (uint8_t)k};
  t->buckets[h & (t->n_buckets - 1)] = idx + 1;
  t->names_len += len;
  return idx;
}

const char *xc_normalize(const char *in, char *out, size_t cap) {
  if (!in || !*in)
    return "empty path";
  if (in[0] == '/')
    return "absolute path";
  size_t o = 0;
  const char *p = in;
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p)
      break;
    const char *q = p;
    while (*q && *q != '/')
      q++;
    size_t len = (size_t)(q - p);
    if (len == 1 && p[0] == '.') {
      p = q;
      continue;
    }
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return "path contains \"..\"";
    if (len > NAME_MAX)
      return "path component longer than 255 bytes";
    if (o + (o ? 1 : 0) + len >= cap || o + (o ? 1 : 0) + len >= PATH_MAX)
      return "path longer than 4095 bytes";
    if (o)
      out[o++] = '/';
    memcpy(out + o, p, len);
    o += len;
    p = q;
  }
  out[o] = 0;
  return NULL;
}

void xc_quote(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, n = 0;
  out[o++] = '"';
  for (; *s; s++, n++) {
    unsigned char c = (unsigned char)*s;
    if (n >= 200 || o + 8 >= cap) {
      if (o + 5 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
      }
      break;
    }
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20 || c > 0x7e) {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    } else {
      out[o++] = (char)c;
    }
  }
  if (o + 1 < cap)
    out[o++] = '"';
  out[o] = 0;
}

static const char *kind_name(enum kind k) {
  switch (k) {
  case K_DIR:
    return "directory";
  case K_SYMLINK:
    return "symlink";
  default:
    return "non-directory";
  }
}

static enum xc_result reject(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum xc_result reject(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return XC_REJECT;
}

/* Quotes the first `len` bytes of path. */
static void quote_prefix(const char *path, size_t len, char *out, size_t cap) {
  char tmp[PATH_MAX];
  if (len >= sizeof tmp)
    len = sizeof tmp - 1;
  memcpy(tmp, path, len);
  tmp[len] = 0;
  xc_quote(tmp, out, cap);
}

/* Resolves a hard link target; *kind gets its kind. */
static enum xc_result resolve_link(const struct xc_tree *t, const char *target, enum kind *kind,
                                   char *why, size_t whylen) {
  char q[256], qp[256];
  xc_quote(target, q, sizeof q);
  if (!*target)
    return reject(why, whylen, "hard link to the root");
  uint32_t node = 0;
  const char *p = target;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    uint32_t child = find(t, node, p, len);
    if (!child)
      return reject(why, whylen, "hard link target %s is not an earlier entry of the archive", q);
    enum kind k = t->nodes[child].kind;
    if (!slash) {
      if (k == K_DIR)
        return reject(why, whylen, "hard link target %s is a directory", q);
      *kind = k;
      return XC_OK;
    }
    if (k == K_SYMLINK) {
      quote_prefix(target, (size_t)(slash - target), qp, sizeof qp);
      return reject(why, whylen, "hard link target %s goes through symlink %s", q, qp);
    }
    if (k != K_DIR)
      return reject(why, whylen, "hard link target %s is not an earlier entry of the archive", q);
    node = child;
    p = slash + 1;
  }
}

enum xc_result xc_check(struct xc_tree *t, const struct xc_entry *e, bool allow_devices,
                        char *path_out, char *link_out, bool *existed, char *why,
                        size_t whylen) {
  bool dummy;
  if (!existed)
    existed = &dummy;
  *existed = true;
  const char *reason = xc_normalize(e->path, path_out, PATH_MAX);
  if (reason)
    return reject(why, whylen, "%s", reason);
  switch (e->type) {
  case XC_CHR:
  case XC_BLK:
    if (!allow_devices)
      return reject(why, whylen, "%s device (%u,%u) not allowed",
                    e->type == XC_CHR ? "character" : "block", e->dev_major, e->dev_minor);
    break;
  case XC_OTHER:
    return reject(why, whylen, "unsupported entry type (only files, directories, symlinks, "
                               "hard links, FIFOs and devices)");
  default:
    break;
  }

  enum kind newkind = e->type == XC_DIR ? K_DIR : e->type == XC_SYMLINK ? K_SYMLINK : K_FILE;
  if (e->type == XC_HARDLINK) {
    char q[256];
    reason = xc_normalize(e->link, link_out, PATH_MAX);
    if (reason) {
      xc_quote(e->link ? e->link : "", q, sizeof q);
      return reject(why, whylen, "hard link target %s: %s", q, reason);
    }
    enum xc_result r = resolve_link(t, link_out, &newkind, why, whylen);
    if (r != XC_OK)
      return r;
    if (strcmp(link_out, path_out) == 0)
      return reject(why, whylen, "hard link to itself");
  }

  if (!path_out[0]) {
    if (e->type != XC_DIR)
      return reject(why, whylen, "the archive root must be a directory");
    strcpy(path_out, ".");
    return XC_OK;
  }

  uint32_t node = 0;
  const char *p = path_out;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    uint32_t child = find(t, node, p, len);
    enum kind k = child ? (enum kind)t->nodes[child].kind : K_NONE;
    if (!child) {
      if (t->max_paths && xc_tree_paths(t) >= t->max_paths)
        return reject(why, whylen, "archive creates more than %llu files and directories",
                      (unsigned long long)t->max_paths);
      child = add(t, node, p, len, slash ? K_DIR : newkind);
      if (!child)
        return XC_NOMEM;
      if (!slash)
        *existed = false;
    } else if (slash) {
      if (k != K_DIR) {
        char qp[256];
        quote_prefix(path_out, (size_t)(slash - path_out), qp, sizeof qp);
        if (k == K_SYMLINK)
          return reject(why, whylen, "path goes through symlink %s", qp);
        return reject(why, whylen, "parent %s is not a directory", qp);
      }
    } else if (k == K_DIR || newkind == K_DIR) {
      if (k != newkind)
        return reject(why, whylen, "type conflict: a %s of the same name came earlier",
                      kind_name(k));
    } else {
      t->nodes[child].kind = (uint8_t)newkind; /* a non-directory replaced */
    }
    if (!slash)
      return XC_OK;
    node = child;
    p = slash + 1;
  }
}
