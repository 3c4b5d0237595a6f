#include "extract/manifest.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_check.h"

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return -1;
}

/* Loads and parses path; NULL with why set. */
static json_t *load_json(mf_load_fn load, void *arg, const char *path, const char *what,
                         char *why, size_t whylen) {
  char sub[512];
  size_t len;
  char *text = load(arg, path, &len, sub, sizeof sub);
  if (!text) {
    fail(why, whylen, "%s: %s", what, sub);
    return NULL;
  }
  json_error_t je;
  json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!j) {
    char q[256];
    xc_quote(path, q, sizeof q);
    fail(why, whylen, "%s %s is not valid JSON: %s (line %d)", what, q, je.text, je.line);
  }
  return j;
}

static char *xstrdup(const char *s) {
  char *r = strdup(s);
  if (!r) {
    fputs("out of memory\n", stderr);
    exit(1);
  }
  return r;
}

static void push(char ***v, size_t *n, const char *s) {
  char **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv) {
    fputs("out of memory\n", stderr);
    exit(1);
  }
  *v = nv;
  nv[(*n)++] = xstrdup(s);
}

void mf_plan_free(struct mf_plan *p) {
  free(p->config);
  for (size_t i = 0; i < p->n_layers; i++)
    free(p->layers[i]);
  free(p->layers);
  for (size_t i = 0; i < p->n_repo_tags; i++)
    free(p->repo_tags[i]);
  free(p->repo_tags);
  memset(p, 0, sizeof *p);
}

static int read_docker(mf_load_fn load, void *arg, struct mf_plan *out, char *why,
                       size_t whylen) {
  json_t *root = load_json(load, arg, "manifest.json", "manifest", why, whylen);
  if (!root)
    return -1;
  int r = -1;
  json_t *img = json_is_array(root) ? json_array_get(root, 0) : NULL;
  if (!json_is_object(img)) {
    fail(why, whylen, "manifest.json: expected an array of image objects");
    goto out;
  }
  json_t *cfg = json_object_get(img, "Config"), *layers = json_object_get(img, "Layers"),
         *tags = json_object_get(img, "RepoTags");
  if (!json_is_string(cfg)) {
    fail(why, whylen, "manifest.json: \"Config\" is missing or not a string");
    goto out;
  }
  if (!json_is_array(layers)) {
    fail(why, whylen, "manifest.json: \"Layers\" is missing or not an array");
    goto out;
  }
  out->config = xstrdup(json_string_value(cfg));
  size_t i;
  json_t *v;
  json_array_foreach(layers, i, v) {
    if (!json_is_string(v)) {
      fail(why, whylen, "manifest.json: layer %zu is not a string", i + 1);
      goto out;
    }
    push(&out->layers, &out->n_layers, json_string_value(v));
  }
  if (json_is_array(tags))
    json_array_foreach(tags, i, v) if (json_is_string(v))
        push(&out->repo_tags, &out->n_repo_tags, json_string_value(v));
  r = 0;
out:
  json_decref(root);
  return r;
}

/* "sha256:<64 hex>" -> "blobs/sha256/<hex>" (also sha512). */
static int digest_path(json_t *desc, char *out, size_t cap, const char *what, char *why,
                       size_t whylen) {
  json_t *d = json_object_get(desc, "digest");
  if (!json_is_string(d))
    return fail(why, whylen, "%s: descriptor without a \"digest\"", what);
  const char *s = json_string_value(d);
  size_t hexlen = 0;
  const char *hex = NULL;
  if (strncmp(s, "sha256:", 7) == 0)
    hex = s + 7, hexlen = 64;
  else if (strncmp(s, "sha512:", 7) == 0)
    hex = s + 7, hexlen = 128;
  bool ok = hex && strlen(hex) == hexlen;
  for (size_t i = 0; ok && i < hexlen; i++)
    ok = (hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f');
  if (!ok) {
    char q[256];
    xc_quote(s, q, sizeof q);
    return fail(why, whylen, "%s: unsupported digest %s", what, q);
  }
  snprintf(out, cap, "blobs/%.6s/%s", s, hex);
  return 0;
}

static const char *media_type(json_t *desc) {
  json_t *m = json_object_get(desc, "mediaType");
  return json_is_string(m) ? json_string_value(m) : "";
}

static bool is_index_type(const char *mt) {
  return !strcmp(mt, "application/vnd.oci.image.index.v1+json") ||
         !strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json");
}

#if defined(__x86_64__)
#define HOST_ARCH "amd64"
#elif defined(__aarch64__)
#define HOST_ARCH "arm64"
#elif defined(__i386__)
#define HOST_ARCH "386"
#elif defined(__arm__)
#define HOST_ARCH "arm"
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ARCH "riscv64"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ARCH "ppc64le"
#elif defined(__s390x__)
#define HOST_ARCH "s390x"
#else
#define HOST_ARCH "unknown"
#endif

/* 2: no platform given; 1: linux on this architecture; 0: another one. */
static int platform_match(json_t *desc) {
  json_t *p = json_object_get(desc, "platform");
  if (!json_is_object(p))
    return 2;
  json_t *os = json_object_get(p, "os"), *arch = json_object_get(p, "architecture");
  return json_is_string(os) && json_is_string(arch) && !strcmp(json_string_value(os), "linux") &&
         !strcmp(json_string_value(arch), HOST_ARCH);
}

static int read_manifest(mf_load_fn load, void *arg, const char *path, struct mf_plan *out,
                         char *why, size_t whylen) {
  json_t *m = load_json(load, arg, path, "image manifest", why, whylen);
  if (!m)
    return -1;
  int r = -1;
  char p[256];
  json_t *cfg = json_object_get(m, "config"), *layers = json_object_get(m, "layers");
  if (!json_is_object(cfg) || !json_is_array(layers)) {
    fail(why, whylen, "image manifest: \"config\" or \"layers\" missing");
    goto out;
  }
  if (digest_path(cfg, p, sizeof p, "image config", why, whylen) < 0)
    goto out;
  out->config = xstrdup(p);
  size_t i;
  json_t *l;
  json_array_foreach(layers, i, l) {
    char what[64];
    snprintf(what, sizeof what, "layer %zu", i + 1);
    if (!json_is_object(l) || digest_path(l, p, sizeof p, what, why, whylen) < 0) {
      if (!json_is_object(l))
        fail(why, whylen, "%s: not a descriptor", what);
      goto out;
    }
    const char *mt = media_type(l);
    if (*mt && !strstr(mt, ".tar")) {
      char q[256];
      xc_quote(mt, q, sizeof q);
      fail(why, whylen, "%s: unsupported media type %s", what, q);
      goto out;
    }
    push(&out->layers, &out->n_layers, p);
  }
  r = 0;
out:
  json_decref(m);
  return r;
}

static int read_index(mf_load_fn load, void *arg, const char *path, int depth,
                      struct mf_plan *out, char *why, size_t whylen) {
  if (depth > 4)
    return fail(why, whylen, "image index: nested too deeply");
  json_t *idx = load_json(load, arg, path, "image index", why, whylen);
  if (!idx)
    return -1;
  int r = -1;
  json_t *ms = json_object_get(idx, "manifests");
  if (!json_is_array(ms) || json_array_size(ms) == 0) {
    fail(why, whylen, "image index: no \"manifests\"");
    goto out;
  }
  /* This machine's platform first, then one without a platform, then the
   * first entry. */
  json_t *pick = NULL;
  int best = -1;
  size_t i;
  json_t *d;
  json_array_foreach(ms, i, d) {
    if (!json_is_object(d))
      continue;
    int m = platform_match(d);
    int score = m == 1 ? 2 : m == 2 ? 1 : 0;
    if (score > best) {
      best = score;
      pick = d;
    }
  }
  if (!pick) {
    fail(why, whylen, "image index: no manifest descriptor");
    goto out;
  }
  char p[256];
  if (digest_path(pick, p, sizeof p, "image manifest", why, whylen) < 0)
    goto out;
  if (is_index_type(media_type(pick)))
    r = read_index(load, arg, p, depth + 1, out, why, whylen);
  else
    r = read_manifest(load, arg, p, out, why, whylen);
out:
  json_decref(idx);
  return r;
}

int mf_plan_read(bool docker, mf_load_fn load, void *arg, struct mf_plan *out, char *why,
                 size_t whylen) {
  memset(out, 0, sizeof *out);
  int r = docker ? read_docker(load, arg, out, why, whylen)
                 : read_index(load, arg, "index.json", 0, out, why, whylen);
  if (r < 0)
    mf_plan_free(out);
  return r;
}

struct buf {
  char *p;
  size_t len, cap;
};

static void put(struct buf *b, const char *key, const char *val) {
  size_t need = strlen(key) + 2 * strlen(val) + 3;
  if (b->len + need > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + need)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      fputs("out of memory\n", stderr);
      exit(1);
    }
    b->p = np;
    b->cap = cap;
  }
  b->len += (size_t)sprintf(b->p + b->len, "%s=", key);
  for (const char *s = val; *s; s++) {
    if (*s == '\\' || *s == '\n') {
      b->p[b->len++] = '\\';
      b->p[b->len++] = *s == '\n' ? 'n' : '\\';
    } else {
      b->p[b->len++] = *s;
    }
  }
  b->p[b->len++] = '\n';
  b->p[b->len] = 0;
}

static int put_strings(struct buf *b, json_t *c, const char *field, const char *key, char *why,
                       size_t whylen) {
  json_t *a = json_object_get(c, field);
  if (!a || json_is_null(a))
    return 0;
  if (!json_is_array(a))
    return fail(why, whylen, "image config: \"%s\" is not an array", field);
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (!json_is_string(v))
      return fail(why, whylen, "image config: \"%s\" holds a non-string", field);
    put(b, key, json_string_value(v));
  }
  return 0;
}

int mf_config_lines(const char *json, size_t len, char *const *tags, size_t n_tags, char **out,
                    size_t *out_len, char *why, size_t whylen) {
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(why, whylen, "image config is not valid JSON: %s (line %d)", je.text, je.line);
  struct buf b = {0};
  put(&b, "format", "1");
  int r = -1;
  if (!json_is_object(root)) {
    fail(why, whylen, "image config is not a JSON object");
    goto out;
  }
  json_t *c = json_object_get(root, "config");
  if (c && !json_is_null(c)) {
    if (!json_is_object(c)) {
      fail(why, whylen, "image config: \"config\" is not an object");
      goto out;
    }
    if (put_strings(&b, c, "Env", "env", why, whylen) < 0 ||
        put_strings(&b, c, "Entrypoint", "arg", why, whylen) < 0 ||
        put_strings(&b, c, "Cmd", "arg", why, whylen) < 0)
      goto out;
    json_t *wd = json_object_get(c, "WorkingDir"), *user = json_object_get(c, "User");
    if (json_is_string(wd) && *json_string_value(wd))
      put(&b, "workdir", json_string_value(wd));
    if (json_is_string(user) && *json_string_value(user))
      put(&b, "user", json_string_value(user));
  }
  for (size_t i = 0; i < n_tags; i++)
    put(&b, "tag", tags[i]);
  *out = b.p;
  *out_len = b.len;
  b.p = NULL;
  r = 0;
out:
  free(b.p);
  json_decref(root);
  return r;
}
