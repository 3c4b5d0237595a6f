#include "runtime/mounts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grpc/status.h"
#include "runtime/volumes.h"

#define BAD(...) qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, __VA_ARGS__)

/* p equals dir or lies beneath it. */
static bool under(const char *p, const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  return strncmp(p, dir, n) == 0 && (p[n] == 0 || p[n] == '/');
}

/* A denied path is compared canonicalised too: /var/run vs /run. */
static bool denied_by(const char *src, const char *deny) {
  char canon[PATH_MAX];
  const char *d = realpath(deny, canon) ? canon : deny;
  return strcmp(d, "/") == 0 ? strcmp(src, "/") == 0 : under(src, d);
}

static const char *denied(const struct mount_policy *pol, const char *src) {
  static const char *const defaults[] = {"/", "/proc", "/sys", "/dev", "/boot"};
  for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
    if (denied_by(src, defaults[i]))
      return defaults[i];
  for (size_t i = 0; i < pol->n_deny; i++)
    if (denied_by(src, pol->deny[i]))
      return pol->deny[i];
  if (pol->root_dir) {
    char root[PATH_MAX];
    const char *r = realpath(pol->root_dir, root) ? root : pol->root_dir;
    if (under(src, r) || under(r, src))
      return pol->root_dir;
  }
  return NULL;
}

static int check_target(const Quilt__V1__Mount *m, struct qerr *err) {
  const char *t = m->target;
  if (!t[0])
    return BAD("mount of \"%s\": no target", m->source);
  if (t[0] != '/')
    return BAD("mount target \"%s\" is not an absolute path", t);
  if (strlen(t) >= 1024)
    return BAD("mount target \"%.64s...\" is too long", t);
  if (t[strspn(t, "/")] == 0)
    return BAD("mount target \"%s\": the container's / cannot be a mount", t);
  for (const char *p = t; (p = strstr(p, "..")); p += 2)
    if (p[-1] == '/' && (p[2] == '/' || p[2] == 0))
      return BAD("mount target \"%s\" contains \"..\"", t);
  /* Over /proc or /sys a mount would undo the masked paths. */
  if (under(t, "/proc") || under(t, "/sys"))
    return BAD("mount target \"%s\": /proc and /sys cannot be mounted over", t);
  return 0;
}

static int check_bind(const struct mount_policy *pol, const Quilt__V1__Mount *m,
                      char canon[PATH_MAX], struct qerr *err) {
  const char *s = m->source;
  if (!s[0])
    return BAD("bind mount on %s: no source", m->target);
  if (s[0] != '/')
    return BAD("bind mount source \"%s\" is not an absolute path", s);
  if (!realpath(s, canon)) {
    int e = errno;
    return qerr_status(err, e == ENOENT ? GRPC_NOT_FOUND : GRPC_FAILED_PRECONDITION, e,
                       "bind mount source %s: %s", s, strerror(e));
  }
  const char *d = denied(pol, canon);
  if (d)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EPERM,
                       "bind mount source %s%s%s is denied (%s is not mountable)", s,
                       strcmp(s, canon) ? " -> " : "", strcmp(s, canon) ? canon : "", d);
  return 0;
}

int mount_check(const struct mount_policy *pol, const Quilt__V1__Mount *m,
                char canon[PATH_MAX], struct qerr *err) {
  int rc = check_target(m, err);
  if (rc < 0)
    return rc;
  if (strcmp(m->type, "bind") == 0)
    return check_bind(pol, m, canon, err);
  if (strcmp(m->type, "tmpfs") == 0) {
    if (m->source[0])
      return BAD("tmpfs mount on %s takes no source (got \"%s\")", m->target, m->source);
    return 0;
  }
  if (strcmp(m->type, "volume") == 0) {
    if (!volume_name_valid(m->source))
      return BAD("volume mount on %s: invalid volume name \"%s\" (expected "
                 "[A-Za-z0-9][A-Za-z0-9_.-]{0,63})", m->target, m->source);
    return 0;
  }
  return BAD("mount on %s: unknown type \"%s\" (expected bind, tmpfs or volume)", m->target,
             m->type);
}

int mounts_validate(const struct mount_policy *pol, Quilt__V1__Mount *const *m, size_t n,
                    struct qerr *err) {
  if (n > MOUNTS_MAX)
    return BAD("%zu mounts: at most %d", n, MOUNTS_MAX);
  for (size_t i = 0; i < n; i++) {
    char canon[PATH_MAX];
    if (mount_check(pol, m[i], canon, err) < 0)
      return err->code;
    for (size_t j = 0; j < i; j++)
      if (strcmp(m[i]->target, m[j]->target) == 0)
        return BAD("two mounts on %s", m[i]->target);
  }
  return 0;
}

int mounts_plan(const struct mount_policy *pol, Quilt__V1__Mount *const *m, size_t n,
                struct mount_plan *plan, struct qerr *err) {
  plan->n = 0;
  if (n > MOUNTS_MAX)
    return BAD("%zu mounts: at most %d", n, MOUNTS_MAX);
  for (size_t i = 0; i < n; i++) {
    struct spawn_mount *sm = &plan->m[i];
    char *src = plan->src[i];
    if (mount_check(pol, m[i], src, err) < 0)
      return err->code;
    bool tmpfs = strcmp(m[i]->type, "tmpfs") == 0;
    char data[PATH_MAX];
    /* Canonical, as a bind source: the child follows no symlink. */
    if (strcmp(m[i]->type, "volume") == 0 &&
        (volume_data_path(pol->root_dir, m[i]->source, data, err) < 0 || !realpath(data, src)))
      return err->code ? err->code : qerr_errno(err, "volume %s", m[i]->source);
    *sm = (struct spawn_mount){
        .tmpfs = tmpfs,
        .source = tmpfs ? NULL : src,
        .target = m[i]->target,
        .readonly = m[i]->readonly,
        .size_bytes = m[i]->size_bytes,
    };
    plan->n++;
  }
  return 0;
}
