#include "runtime/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "grpc/status.h"
#include "runtime/spawn.h"
#include "runtime/treecopy.h"

void idmap_init(struct idmap_cache *m, uid_t base, unsigned count, bool disabled) {
  *m = (struct idmap_cache){.base = base, .count = count, .disabled = disabled, .userns_fd = -1};
}

/* A user namespace with the containers' mapping, held by an fd: a child
 * unshares one, says so, gets the mapping written, and is gone again. */
static int make_userns(struct idmap_cache *m, struct qerr *err) {
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) < 0)
    return qerr_errno(err, "pipe");
  if (pipe2(hold, O_CLOEXEC) < 0) {
    close(ready[0]);
    close(ready[1]);
    return qerr_errno(err, "pipe");
  }
  pid_t pid = fork();
  if (pid == 0) {
    char b;
    close(hold[1]); /* or the read below never sees EOF */
    int ok = unshare(CLONE_NEWUSER) == 0;
    _exit(write(ready[1], ok ? "y" : "n", 1) != 1 || read(hold[0], &b, 1) < 0 || !ok);
  }
  close(ready[1]);
  close(hold[0]);
  char b = 'n', path[64];
  int rc = 0;
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
  if (pid < 0)
    rc = qerr_errno(err, "fork");
  else if (read(ready[0], &b, 1) != 1 || b != 'y')
    rc = qerr_set(err, EPERM, "unsharing a user namespace failed");
  else if (spawn_map_ids(pid, m->base, m->count, err) < 0)
    rc = err->code;
  else if ((m->userns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    rc = qerr_errno(err, "opening %s", path);
  close(ready[0]);
  close(hold[1]); /* the child reads EOF and exits */
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return rc;
}

static int make_tree(struct idmap_cache *m, const char *dir, struct qerr *err) {
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir,
                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0)
    return qerr_errno(err, "open_tree %s", dir);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)m->userns_fd};
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    int e = qerr_errno(err, "idmapping %s", dir);
    close(fd);
    return e;
  }
  return fd;
}

static int cached_tree(struct idmap_cache *m, const char *dir) {
  for (unsigned i = 0; i < m->n; i++)
    if (strcmp(m->trees[i].dir, dir) == 0)
      return m->trees[i].fd;
  return -1;
}

/* An idmapped tree of dir, or a negative errno (the kernel cannot). */
static int tree_for(struct idmap_cache *m, const char *dir, struct qerr *err) {
  int fd = cached_tree(m, dir);
  if (fd >= 0)
    return fd;
  if (m->n == IDMAP_MAX_TREES)
    idmap_forget(m, m->trees[0].dir); /* the oldest: a later container reopens it */
  if ((m->userns_fd < 0 && make_userns(m, err) < 0) || (fd = make_tree(m, dir, err)) < 0)
    return err->code;
  struct idmap_tree *t = &m->trees[m->n++];
  snprintf(t->dir, sizeof t->dir, "%s", dir);
  t->fd = fd;
  return fd;
}

/* The image with every owner shifted by base, made once: a copy into a
 * scratch name, renamed into place when complete. */
static int shifted_copy(struct idmap_cache *m, const char *dir, char out[PATH_MAX],
                        struct qerr *err) {
  struct stat st;
  if (snprintf(out, PATH_MAX, "%s-shifted-%u", dir, (unsigned)m->base) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "image path too long: %s", dir);
  if (stat(out, &st) == 0)
    return 0;
  char tmp[PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid());
  const struct treecopy_opts opts = {.id_shift = m->base};
  if (rm_rf(tmp, err) < 0 || treecopy(dir, tmp, &opts, NULL, err) < 0)
    return qerr_wrap(err, "making a copy of %s owned by user namespace ids", dir);
  if (rename(tmp, out) < 0) {
    int e = qerr_errno(err, "rename %s", out);
    struct qerr ignore = QERR_INIT;
    rm_rf(tmp, &ignore);
    return e;
  }
  log_info("image %s: made a copy owned by ids from %u (no idmapped mounts)", dir,
           (unsigned)m->base);
  return 0;
}

int idmap_lower(struct idmap_cache *m, const char *dir, int *fd, char out[PATH_MAX],
                struct qerr *err) {
  *fd = -1;
  out[0] = 0;
  if (!m->disabled) {
    struct qerr why = QERR_INIT;
    int rc = tree_for(m, dir, &why);
    /* A tree attached once is no longer detached: each container attaches
     * a copy of it (idmapping included). */
    if (rc >= 0 && (rc = (int)syscall(SYS_open_tree, rc, "",
                                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
                                          AT_RECURSIVE)) < 0)
      rc = qerr_errno(&why, "copying the idmapped tree of %s", dir);
    if (rc >= 0) {
      *fd = rc;
      return 0;
    }
    log_warn("idmapped mounts unavailable (%s): user-namespaced containers get shifted "
             "copies of their images", why.msg);
    m->disabled = true;
  }
  return shifted_copy(m, dir, out, err);
}

void idmap_forget(struct idmap_cache *m, const char *prefix) {
  size_t n = strlen(prefix);
  unsigned k = 0;
  for (unsigned i = 0; i < m->n; i++) {
    if (strncmp(m->trees[i].dir, prefix, n) == 0) {
      close(m->trees[i].fd);
      continue;
    }
    m->trees[k++] = m->trees[i];
  }
  m->n = k;
}

void idmap_free(struct idmap_cache *m) {
  idmap_forget(m, "");
  if (m->userns_fd >= 0)
    close(m->userns_fd);
  m->userns_fd = -1;
}
