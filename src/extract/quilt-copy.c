/* quilt-copy: the archive side of CopyIn and CopyOut. quiltd never parses
 * or writes a tar itself; it runs this helper once per copy and moves bytes
 * between it and the client (src/runtime/copy.c, docs/containers.md,
 * "Copying files").
 *
 *   quilt-copy stat|out|in --path PATH ROOT [--follow] [--archive]
 *              [--id-shift BASE:COUNT] [--ppid PID]
 *   ROOT is one of
 *     --join-fd N [--userns]     the mount namespace (and user namespace) of
 *                                the process behind pidfd N: a running container
 *     --overlay LOWER UPPER WORK --at DIR [--userxattr]
 *              [--lower-tree-fd N --lower-at DIR] [--mount SRC TARGET ro|rw]...
 *                                a stopped container's overlay, mounted on DIR
 *                                in a private mount namespace, with its binds
 *     --bind-root DIR [--mount SRC TARGET ro|rw]...
 *                                a stopped container's private copy of its image
 *
 * Every path of the request is then resolved in that root only: the process
 * is chrooted in it (or its mount namespace's root is the container's), and
 * looks paths up with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a
 * symlink in the container such as `escape -> /` leads back into it. Then
 * the sandbox of quilt-extract (extract/sandbox.h) is entered, minus its
 * chroot, before the first archive byte.
 *
 * stdin: the archive (in); stdout: the stat record and the archive (stat,
 * out; extract/copy_wire.h); stderr: one line. The exit status is a gRPC
 * status code. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <grp.h>

#include "extract/diag.h"
#include "extract/copy_tool.h"
#include "extract/sandbox.h"
#include "grpc/status.h"

/* Sanitizer builds: LeakSanitizer cannot run in the sandbox (it needs
 * /proc and ptrace); undefined behaviour must end the run. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

#define MAX_MOUNTS 32

struct bind {
  const char *src, *target;
  bool ro;
};

struct root_opts {
  int join_fd;             /* -1 unless --join-fd */
  bool userns;
  const char *lower, *upper, *work, *at;
  bool userxattr;
  int lower_tree_fd;
  const char *lower_at;
  const char *bind_root;
  struct bind binds[MAX_MOUNTS];
  size_t n_binds;
};

void copy_die(int status, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  size_t len = diag_line(line, sizeof line, fmt, ap);
  va_end(ap);
  ssize_t w = write(2, line, len);
  (void)w;
  _exit(status ? status : GRPC_INTERNAL);
}

int copy_status_of(int err) {
  switch (err) {
  case ENOENT:
    return GRPC_NOT_FOUND;
  case ENOTDIR:
    return GRPC_FAILED_PRECONDITION;
  case EACCES:
  case EPERM:
    return GRPC_PERMISSION_DENIED;
  case ELOOP:
  case ENAMETOOLONG:
    return GRPC_INVALID_ARGUMENT;
  case EROFS:
    return GRPC_FAILED_PRECONDITION;
  case ENOSPC:
  case EDQUOT:
    return GRPC_RESOURCE_EXHAUSTED;
  default:
    return GRPC_INTERNAL;
  }
}

static int parse_fd(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 3 || v > INT_MAX)
    copy_die(GRPC_INTERNAL, "bad fd \"%s\"", s);
  return (int)v;
}

static void parse_shift(const char *s, struct copy_opts *o) {
  unsigned long base, count;
  char colon;
  if (sscanf(s, "%lu%c%lu", &base, &colon, &count) != 3 || colon != ':' || count == 0 ||
      base > UINT32_MAX || count > UINT32_MAX)
    copy_die(GRPC_INTERNAL, "bad --id-shift \"%s\"", s);
  o->id_base = (uid_t)base;
  o->id_count = (unsigned)count;
}

/* Returns the mode (0 stat, 1 out, 2 in). */
static int parse_args(int argc, char **argv, struct copy_opts *o, struct root_opts *r,
                      pid_t *ppid) {
  static const char *const modes[] = {"stat", "out", "in"};
  int mode = -1;
  for (int i = 0; argc > 1 && i < 3; i++)
    if (strcmp(argv[1], modes[i]) == 0)
      mode = i;
  if (mode < 0)
    copy_die(GRPC_INTERNAL, "usage: quilt-copy stat|out|in --path PATH ROOT-OPTIONS");
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    int left = argc - i - 1;
#define ARG(k) (left >= (k) ? argv[i + (k)] : (copy_die(GRPC_INTERNAL, "%s: missing value", a), ""))
    if (strcmp(a, "--path") == 0) {
      o->path = ARG(1), i++;
    } else if (strcmp(a, "--follow") == 0) {
      o->follow = true;
    } else if (strcmp(a, "--archive") == 0) {
      o->archive = true;
    } else if (strcmp(a, "--id-shift") == 0) {
      parse_shift(ARG(1), o), i++;
    } else if (strcmp(a, "--ppid") == 0) {
      *ppid = (pid_t)atoi(ARG(1)), i++;
    } else if (strcmp(a, "--join-fd") == 0) {
      r->join_fd = parse_fd(ARG(1)), i++;
    } else if (strcmp(a, "--userns") == 0) {
      r->userns = true;
    } else if (strcmp(a, "--overlay") == 0) {
      r->lower = ARG(1), r->upper = ARG(2), r->work = ARG(3), i += 3;
    } else if (strcmp(a, "--at") == 0) {
      r->at = ARG(1), i++;
    } else if (strcmp(a, "--userxattr") == 0) {
      r->userxattr = true;
    } else if (strcmp(a, "--lower-tree-fd") == 0) {
      r->lower_tree_fd = parse_fd(ARG(1)), i++;
    } else if (strcmp(a, "--lower-at") == 0) {
      r->lower_at = ARG(1), i++;
    } else if (strcmp(a, "--bind-root") == 0) {
      r->bind_root = ARG(1), i++;
    } else if (strcmp(a, "--mount") == 0) {
      if (r->n_binds == MAX_MOUNTS)
        copy_die(GRPC_INTERNAL, "more than %d --mount", MAX_MOUNTS);
      r->binds[r->n_binds++] =
          (struct bind){.src = ARG(1), .target = ARG(2), .ro = strcmp(ARG(3), "ro") == 0};
      i += 3;
    } else {
      copy_die(GRPC_INTERNAL, "unknown or incomplete option \"%.100s\"", a);
    }
#undef ARG
  }
  if (!o->path || o->path[0] != '/')
    copy_die(GRPC_INVALID_ARGUMENT, "the path must be absolute");
  int roots = (r->join_fd >= 0) + (r->lower != NULL) + (r->bind_root != NULL);
  if (roots != 1 || (r->lower && !r->at) || ((r->lower_tree_fd >= 0) != (r->lower_at != NULL)))
    copy_die(GRPC_INTERNAL, "give one root: --join-fd, --overlay with --at, or --bind-root");
  return mode;
}

/* Only the fds argv names survive: nothing of quiltd's. */
static void close_others(const struct root_opts *r) {
  int keep[2] = {r->join_fd, r->lower_tree_fd};
  int hi = keep[0] > keep[1] ? keep[0] : keep[1];
  for (int fd = 3; fd <= hi; fd++)
    if (fd != keep[0] && fd != keep[1])
      close(fd);
  syscall(SYS_close_range, (unsigned)hi + 1 < 3 ? 3u : (unsigned)hi + 1, ~0U, 0);
}

/* ------------------------------------------------------------ roots */

/* A running container: its mount namespace's root is the container's /
 * (pivot_root made it so), with its binds and volumes; in a user namespace
 * we become its root, so owners map as the container sees them. */
static void join(const struct root_opts *r) {
  int ns = CLONE_NEWNS | (r->userns ? CLONE_NEWUSER : 0);
  if (setns(r->join_fd, ns) < 0)
    copy_die(errno == ESRCH ? GRPC_FAILED_PRECONDITION : GRPC_INTERNAL,
             "joining the container's mount namespace: %s", strerror(errno));
  close(r->join_fd);
  if (r->userns && (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0))
    copy_die(GRPC_INTERNAL, "becoming root in the container's user namespace: %s",
             strerror(errno));
  if (chdir("/") < 0)
    copy_die(GRPC_INTERNAL, "chdir / in the container: %s", strerror(errno));
}

/* Mounts made from here on must never reach the host: a namespace of our
 * own, every mount in it private before anything is mounted. It dies with
 * this process, and its mounts with it. */
static void private_namespace(void) {
  if (unshare(CLONE_NEWNS) < 0)
    copy_die(GRPC_INTERNAL, "creating a mount namespace: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    copy_die(GRPC_INTERNAL, "making mounts private: %s", strerror(errno));
}

static void mount_overlay(const struct root_opts *r) {
  if (r->lower_tree_fd >= 0) {
    if (move_mount(r->lower_tree_fd, "", AT_FDCWD, r->lower_at, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      copy_die(GRPC_INTERNAL, "attaching the idmapped image at %s: %s", r->lower_at,
               strerror(errno));
    close(r->lower_tree_fd);
  }
  /* Our own work dir (the container's may hold a volatile mount's marker,
   * which the kernel refuses); volatile: nothing to sync at the end. */
  char opts[3 * PATH_MAX + 64];
  if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s%s,volatile", r->lower,
               r->upper, r->work, r->userxattr ? ",userxattr" : "") >= (int)sizeof opts)
    copy_die(GRPC_INTERNAL, "overlay options too long");
  int rc = mount("overlay", r->at, "overlay", MS_NODEV | MS_NOSUID, opts);
  if (rc < 0 && errno == EINVAL) { /* a kernel without "volatile" */
    *strrchr(opts, ',') = 0;
    rc = mount("overlay", r->at, "overlay", MS_NODEV | MS_NOSUID, opts);
  }
  if (rc < 0)
    copy_die(GRPC_FAILED_PRECONDITION, "mounting the container's filesystem: %s",
             strerror(errno));
}

static void bind_root(const char *dir) {
  if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0 ||
      mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_NODEV | MS_NOSUID, NULL) < 0)
    copy_die(GRPC_INTERNAL, "binding the container's filesystem %s: %s", dir, strerror(errno));
}

static int open_in_root(int rootfd, const char *path) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/')
    path++;
  return (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
}

/* mkdir -p of a mount target (an empty file for a file source), every step
 * resolved inside the root, as the container's start would make it. */
static int make_target(int rootfd, const char *target, bool dir) {
  char prefix[PATH_MAX];
  size_t len = strlen(target);
  if (len >= sizeof prefix) {
    errno = ENAMETOOLONG;
    return -1;
  }
  size_t made = 0; /* where we last created something: opened next, or give up */
  for (size_t i = 1; i <= len; i++) {
    if (i < len && target[i] != '/')
      continue;
    memcpy(prefix, target, i);
    prefix[i] = 0;
    int fd = open_in_root(rootfd, prefix);
    if (fd >= 0) {
      if (i == len)
        return fd;
      close(fd);
      continue;
    }
    if (errno != ENOENT || made == i) /* e.g. a dangling symlink in the way */
      return -1;
    made = i;
    char *slash = strrchr(prefix, '/');
    *slash = 0;
    int pfd = open_in_root(rootfd, prefix);
    if (pfd < 0)
      return -1;
    bool last_dir = i < len || dir;
    int rc = last_dir ? mkdirat(pfd, slash + 1, 0755)
                      : mknodat(pfd, slash + 1, S_IFREG | 0644, 0);
    close(pfd);
    if (rc < 0 && errno != EEXIST)
      return -1;
    i--; /* open it now that it exists */
  }
  errno = EINVAL;
  return -1;
}

/* What the container would see at that path when it runs: its bind or
 * volume, attached (nodev, nosuid, read-only as asked) on a target made and
 * resolved inside the root. */
static void bind_in_root(int rootfd, const struct bind *b) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS};
  int src = (int)syscall(SYS_openat2, AT_FDCWD, b->src, &how, sizeof how);
  struct stat st;
  if (src < 0 || fstat(src, &st) < 0)
    copy_die(GRPC_FAILED_PRECONDITION, "the container's mount source %s: %s", b->src,
             strerror(errno));
  int target = make_target(rootfd, b->target, S_ISDIR(st.st_mode));
  if (target < 0)
    copy_die(GRPC_FAILED_PRECONDITION, "mount target %s in the container: %s", b->target,
             strerror(errno));
  int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                        (b->ro ? MOUNT_ATTR_RDONLY : 0)};
  if (tree < 0 || mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0 ||
      move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    copy_die(GRPC_FAILED_PRECONDITION, "mounting %s on %s: %s", b->src, b->target,
             strerror(errno));
  close(tree);
  close(target);
  close(src);
}

/* A stopped container: its filesystem as it would be mounted at start,
 * in a namespace of ours; chrooted in it. */
static void offline(const struct root_opts *r) {
  private_namespace();
  const char *dir = r->bind_root ? r->bind_root : r->at;
  if (r->bind_root)
    bind_root(r->bind_root);
  else
    mount_overlay(r);
  int rootfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0)
    copy_die(GRPC_INTERNAL, "opening %s: %s", dir, strerror(errno));
  for (size_t i = 0; i < r->n_binds; i++)
    bind_in_root(rootfd, &r->binds[i]);
  if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
    copy_die(GRPC_INTERNAL, "entering the container's filesystem: %s", strerror(errno));
  close(rootfd);
}

int main(int argc, char **argv) {
  struct copy_opts o = {0};
  struct root_opts r = {.join_fd = -1, .lower_tree_fd = -1};
  pid_t ppid = 0;
  int mode = parse_args(argc, argv, &o, &r, &ppid);
  /* A daemon that dies takes its copies with it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (ppid > 0 && getppid() != ppid)
    copy_die(GRPC_CANCELLED, "quiltd is gone");
  signal(SIGPIPE, SIG_IGN); /* a reader that went away is an EPIPE to report */
  close_others(&r);
  /* Before the root changes: libarchive must never reach for locale files
   * or NSS modules the container planted. */
  setlocale(LC_ALL, "C.UTF-8");
  if (r.join_fd >= 0)
    join(&r);
  else
    offline(&r);
  umask(022);
  char why[512];
  struct sandbox_opts so = {.max_fds = 4096};
  if (sandbox_confine(&so, why, sizeof why) < 0)
    copy_die(GRPC_INTERNAL, "%s", why);
  if (mode == 2)
    copy_in(&o);
  else
    copy_out(&o, mode == 1);
  return 0;
}
