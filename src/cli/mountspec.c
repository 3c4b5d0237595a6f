#include "cli/mountspec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

int mountspec_parse_size(const char *s, uint64_t *bytes) {
  if (!(s[0] >= '0' && s[0] <= '9'))
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno)
    return -EINVAL;
  int shift = 0;
  switch (*end | 0x20) {
  case 'k': shift = 10; break;
  case 'm': shift = 20; break;
  case 'g': shift = 30; break;
  default: break;
  }
  if (shift) {
    end++;
    if (strcasecmp(end, "b") == 0 || strcasecmp(end, "ib") == 0)
      end += strlen(end);
  } else if (strcasecmp(end, "b") == 0) {
    end++;
  }
  if (*end || v > (UINT64_MAX >> shift))
    return -EINVAL;
  *bytes = (uint64_t)v << shift;
  return 0;
}

static int copy_field(char *dst, size_t cap, const char *v, size_t len, const char *what,
                      char *err, size_t errlen) {
  if (len == 0)
    return fail(err, errlen, "empty %s", what);
  if (len >= cap)
    return fail(err, errlen, "%s is too long", what);
  memcpy(dst, v, len);
  dst[len] = 0;
  return 0;
}

/* "true"/"false" and "1"/"0" as docker takes them; a bare key is true. */
static int parse_bool(const char *v, size_t len, bool *out) {
  if (len == 0 || (len == 4 && !strncasecmp(v, "true", 4)) || (len == 1 && v[0] == '1'))
    *out = true;
  else if ((len == 5 && !strncasecmp(v, "false", 5)) || (len == 1 && v[0] == '0'))
    *out = false;
  else
    return -EINVAL;
  return 0;
}

static bool key_is(const char *k, size_t klen, const char *a) {
  return strlen(a) == klen && strncmp(k, a, klen) == 0;
}

/* One key[=value] of --mount. */
static int mount_field(struct mountspec *m, const char *f, size_t len, char *err,
                       size_t errlen) {
  size_t klen = strcspn(f, "=");
  if (klen > len)
    klen = len;
  const char *v = klen < len ? f + klen + 1 : f + len;
  size_t vlen = klen < len ? len - klen - 1 : 0;
  bool has_value = klen < len;
  if (key_is(f, klen, "type")) {
    if (!has_value || !((vlen == 4 && !strncmp(v, "bind", 4)) ||
                        (vlen == 5 && !strncmp(v, "tmpfs", 5)) ||
                        (vlen == 6 && !strncmp(v, "volume", 6))))
      return fail(err, errlen, "unknown mount type '%.*s' (expected bind, tmpfs or volume)",
                  (int)vlen, v);
    memcpy(m->type, v, vlen);
    m->type[vlen] = 0;
    return 0;
  }
  if (key_is(f, klen, "source") || key_is(f, klen, "src"))
    return copy_field(m->source, sizeof m->source, v, vlen, "source", err, errlen);
  if (key_is(f, klen, "target") || key_is(f, klen, "dst") || key_is(f, klen, "destination"))
    return copy_field(m->target, sizeof m->target, v, vlen, "target", err, errlen);
  if (key_is(f, klen, "readonly") || key_is(f, klen, "ro")) {
    if (parse_bool(v, vlen, &m->readonly) < 0)
      return fail(err, errlen, "invalid readonly value '%.*s'", (int)vlen, v);
    return 0;
  }
  if (key_is(f, klen, "size") || key_is(f, klen, "tmpfs-size")) {
    char num[32];
    if (!has_value || vlen >= sizeof num)
      return fail(err, errlen, "invalid size '%.*s'", (int)vlen, v);
    memcpy(num, v, vlen);
    num[vlen] = 0;
    if (mountspec_parse_size(num, &m->size_bytes) < 0 || m->size_bytes == 0)
      return fail(err, errlen, "invalid size '%s' (expected bytes, or e.g. 64m, 1g)", num);
    return 0;
  }
  return fail(err, errlen, "unknown mount option '%.*s'", (int)klen, f);
}

static int check_mount(const struct mountspec *m, char *err, size_t errlen) {
  if (!m->target[0])
    return fail(err, errlen, "no target (give target=/path)");
  bool tmpfs = strcmp(m->type, "tmpfs") == 0;
  if (tmpfs && m->source[0])
    return fail(err, errlen, "a tmpfs mount takes no source");
  if (!tmpfs && !m->source[0])
    return fail(err, errlen, "a %s mount needs source=", m->type);
  if (!tmpfs && m->size_bytes)
    return fail(err, errlen, "size is for tmpfs mounts");
  return 0;
}

int mountspec_parse(const char *s, struct mountspec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  strcpy(out->type, "volume"); /* docker's default */
  if (!s[0])
    return fail(err, errlen, "empty mount");
  for (const char *p = s;;) {
    size_t len = strcspn(p, ",");
    if (len == 0)
      return fail(err, errlen, "empty field in '%s'", s);
    int rc = mount_field(out, p, len, err, errlen);
    if (rc < 0)
      return rc;
    if (!p[len])
      break;
    p += len + 1;
  }
  return check_mount(out, err, errlen);
}

int mountspec_parse_volume(const char *s, struct mountspec *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  size_t slen = strcspn(s, ":");
  if (!s[slen])
    return fail(err, errlen, "'%s': expected NAME:/PATH or /HOST/PATH:/PATH[:ro]", s);
  const char *t = s + slen + 1;
  size_t tlen = strcspn(t, ":");
  const char *opts = t[tlen] ? t + tlen + 1 : NULL;
  strcpy(out->type, s[0] == '/' ? "bind" : "volume");
  if (copy_field(out->source, sizeof out->source, s, slen, "source", err, errlen) < 0 ||
      copy_field(out->target, sizeof out->target, t, tlen, "target", err, errlen) < 0)
    return -EINVAL;
  if (opts) {
    if (strcmp(opts, "ro") == 0)
      out->readonly = true;
    else if (strcmp(opts, "rw") != 0)
      return fail(err, errlen, "unknown volume option '%s' (expected ro or rw)", opts);
  }
  return 0;
}
