#include "runtime/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "grpc/status.h"
#include "runtime/caps.h"
#include "runtime/seccomp.h"
#include "runtime/syscalls.h"

/* ------------------------------------------------------------ child side
 * Everything below runs in the cloned child, a copy of the single-threaded
 * daemon. A failure is written to the status pipe and the child exits. */

struct child {
  const struct spawn_sandbox *sb;
  int status_fd;     /* write end, close-on-exec */
  int ctl_fd;        /* read end: release byte, exec record */
  int rootfd;        /* O_PATH of the rootfs */
  int cg_procs[SPAWN_MAX_CGROUP_FDS];
  size_t n_cg_procs;
};

__attribute__((noreturn)) static void child_fail(struct child *c, int status, int err,
                                                 const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void child_fail(struct child *c, int status, int err, const char *fmt, ...) {
  struct spawn_failure f = {.err = err, .status = status};
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(f.msg, sizeof f.msg, fmt, ap);
  va_end(ap);
  if (err && n >= 0 && (size_t)n < sizeof f.msg)
    snprintf(f.msg + n, sizeof f.msg - (size_t)n, ": %s", strerror(err));
  ssize_t w = write(c->status_fd, &f, sizeof f);
  (void)w;
  _exit(127);
}

/* Opens `path` inside the rootfs without ever leaving it, even through
 * symlinks planted in the image; creates it (dir or file) when missing. */
static int open_in_root(struct child *c, const char *path, bool dir) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/')
    path++;
  int fd = sys_openat2(c->rootfd, path, &how);
  if (fd >= 0 || errno != ENOENT)
    return fd;
  /* Create the last component in its (safely resolved) parent. */
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", path);
  char *slash = strrchr(parent, '/');
  const char *leaf = slash ? slash + 1 : parent;
  cleanup_fd int pfd = -1;
  if (slash) {
    *slash = 0;
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    pfd = sys_openat2(c->rootfd, parent, &how);
    if (pfd < 0)
      return -1;
  }
  int base = slash ? pfd : c->rootfd;
  if (dir ? mkdirat(base, leaf, 0755) : mknodat(base, leaf, S_IFREG | 0644, 0))
    if (errno != EEXIST)
      return -1;
  how.flags = O_PATH | O_CLOEXEC;
  return sys_openat2(base, leaf, &how);
}

static void mount_in_root(struct child *c, const char *src, const char *target,
                          const char *fstype, unsigned long flags, const char *data,
                          bool dir) {
  cleanup_fd int fd = open_in_root(c, target, dir);
  if (fd < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "mount target %s in the rootfs", target);
  char proc_path[64];
  snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
  if (mount(src, proc_path, fstype, flags, data) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "mounting %s on %s", fstype ? fstype : src, target);
}

/* Binds the host's /dev/<name> over an empty file in the container. */
static void bind_host_dev(struct child *c, const char *name) {
  char host[64], target[64];
  snprintf(host, sizeof host, "/dev/%s", name);
  snprintf(target, sizeof target, "/dev/%s", name);
  mount_in_root(c, host, target, NULL, MS_BIND, NULL, false);
}

/* /dev is a nodev tmpfs: a device node root makes there (CAP_MKNOD is in
 * the default set) cannot be opened, so no host disk is reachable. Its six
 * nodes are binds of the host's, which keep their own mount's rights. */
static void make_dev(struct child *c) {
  static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  mount_in_root(c, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME,
                "mode=755,size=65536k", true);
  cleanup_fd int dev = open_in_root(c, "/dev", true);
  cleanup_fd int devdir = openat(dev, ".", O_DIRECTORY | O_CLOEXEC);
  if (devdir < 0)
    child_fail(c, GRPC_INTERNAL, errno, "opening /dev");
  for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
    bind_host_dev(c, nodes[i]);
  static const struct { const char *target, *link; } links[] = {
      {"/proc/self/fd", "fd"},      {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(links); i++)
    if (symlinkat(links[i].target, devdir, links[i].link) < 0)
      child_fail(c, GRPC_INTERNAL, errno, "creating /dev/%s", links[i].link);
  mount_in_root(c, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620", true);
  mount_in_root(c, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k", true);
  mount_in_root(c, "mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                true);
}

static void make_sys(struct child *c) {
  const struct spawn_sandbox *s = c->sb;
  unsigned long ro = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (s->ns_flags & CLONE_NEWNET) {
    mount_in_root(c, "sysfs", "/sys", "sysfs", ro, NULL, true);
    return;
  }
  /* Without a network namespace sysfs cannot be mounted afresh: bind the
   * host's and make the bind read-only. */
  mount_in_root(c, "/sys", "/sys", NULL, MS_BIND | MS_REC, NULL, true);
  mount_in_root(c, NULL, "/sys", NULL, MS_BIND | MS_REMOUNT | ro, NULL, true);
}

/* Opens an existing path in the rootfs, following no symlink at all (these
 * are kernel files); -1 with errno ENOENT when it is not there. */
static int open_existing(struct child *c, const char *path) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};
  while (*path == '/')
    path++;
  return sys_openat2(c->rootfd, path, &how);
}

/* Files that leak host kernel state (memory, keys, timers, firmware) read
 * as empty: /dev/null over a file, an empty read-only tmpfs over a dir. */
static void mask_path(struct child *c, const char *path) {
  cleanup_fd int fd = open_existing(c, path);
  struct stat st;
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return; /* this kernel has no such file */
  if (fd < 0 || fstat(fd, &st) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "opening %s to mask it", path);
  char at[64];
  snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
  int rc = S_ISDIR(st.st_mode)
               ? mount("tmpfs", at, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       "size=0,mode=555")
               : mount("/dev/null", at, NULL, MS_BIND, NULL);
  if (rc < 0)
    child_fail(c, GRPC_INTERNAL, errno, "masking %s", path);
}

/* Knobs of the host kernel (sysctls, sysrq, irq affinity) stay readable
 * but not writable: a read-only bind of each over itself. */
static void read_only_path(struct child *c, const char *path) {
  cleanup_fd int fd = open_existing(c, path);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return;
  if (fd < 0)
    child_fail(c, GRPC_INTERNAL, errno, "opening %s", path);
  char at[64];
  snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
  if (mount(at, at, NULL, MS_BIND | MS_REC, NULL) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "binding %s", path);
  /* The remount must name the new bind, not the fd's mount beneath it. */
  cleanup_fd int top = open_existing(c, path);
  snprintf(at, sizeof at, "/proc/self/fd/%d", top);
  if (top < 0 || mount(NULL, at, NULL,
                       MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       NULL) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "making %s read-only", path);
}

/* Docker's lists; a path this kernel lacks is skipped. */
static void mask_paths(struct child *c) {
  static const char *const masked[] = {
      "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
      "/sys/firmware", "/sys/devices/virtual/powercap",
  };
  static const char *const read_only[] = {
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
  };
  for (size_t i = 0; i < ARRAY_SIZE(masked); i++)
    mask_path(c, masked[i]);
  for (size_t i = 0; i < ARRAY_SIZE(read_only); i++)
    read_only_path(c, read_only[i]);
}

/* mkdir -p of the target's parents and the target itself (a directory, or
 * an empty file for a file source), every step resolved inside the root:
 * a symlink in the image cannot lead the mount out of it. */
static int open_target(struct child *c, const char *target, bool dir) {
  char prefix[4096];
  size_t len = strlen(target);
  if (len >= sizeof prefix) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (size_t i = 1; i < len; i++) {
    if (target[i] != '/')
      continue;
    memcpy(prefix, target, i);
    prefix[i] = 0;
    int fd = open_in_root(c, prefix, true);
    if (fd < 0)
      return -1;
    close(fd);
  }
  return open_in_root(c, target, dir);
}

static void user_tmpfs(struct child *c, const struct spawn_mount *m) {
  char opts[64] = "mode=1777";
  if (m->size_bytes)
    snprintf(opts, sizeof opts, "mode=1777,size=%llu", (unsigned long long)m->size_bytes);
  cleanup_fd int fd = open_target(c, m->target, true);
  if (fd < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "mount target %s in the rootfs", m->target);
  char at[64];
  snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
  if (mount("tmpfs", at, "tmpfs", MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0), opts) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "mounting tmpfs on %s", m->target);
}

/* The flags go on the detached copy, recursively, before it is attached:
 * nothing of it is ever visible writable or with devices. False when the
 * kernel (before 5.12) has no mount_setattr. */
static bool bind_attrs(struct child *c, int tree, const struct spawn_mount *m) {
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                        (m->readonly ? MOUNT_ATTR_RDONLY : 0)};
  if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) == 0)
    return true;
  if (errno != ENOSYS)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "making the bind of %s %s", m->source,
               m->readonly ? "read-only" : "nosuid,nodev");
  return false;
}

/* Older kernels: a remount of the attached bind, its top mount only. */
static void remount_bind(struct child *c, const struct spawn_mount *m) {
  cleanup_fd int top = open_in_root(c, m->target, true);
  char at[64];
  snprintf(at, sizeof at, "/proc/self/fd/%d", top);
  if (top < 0 || mount(NULL, at, NULL,
                       MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV |
                           (m->readonly ? MS_RDONLY : 0),
                       NULL) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "making the bind of %s %s", m->source,
               m->readonly ? "read-only" : "nosuid,nodev");
}

/* open_tree + move_mount: the source is the canonical host path quiltd
 * checked, opened following no symlink (one swapped in since the check
 * fails the start rather than lead elsewhere); the target an fd resolved
 * in the root. */
static void user_bind(struct child *c, const struct spawn_mount *m) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS};
  cleanup_fd int src = sys_openat2(AT_FDCWD, m->source, &how);
  if (src < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "bind mount source %s", m->source);
  cleanup_fd int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                               AT_EMPTY_PATH);
  struct stat st;
  if (tree < 0 || fstat(tree, &st) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "bind mount source %s", m->source);
  bool attrs_set = bind_attrs(c, tree, m);
  cleanup_fd int target = open_target(c, m->target, S_ISDIR(st.st_mode));
  if (target < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "mount target %s in the rootfs", m->target);
  if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "binding %s on %s", m->source, m->target);
  if (!attrs_set)
    remount_bind(c, m);
}

static void user_mounts(struct child *c) {
  const struct spawn_sandbox *s = c->sb;
  for (size_t i = 0; i < s->n_mounts; i++)
    if (s->mounts[i].tmpfs)
      user_tmpfs(c, &s->mounts[i]);
    else
      user_bind(c, &s->mounts[i]);
}

static void setup_mounts(struct child *c) {
  const struct spawn_sandbox *s = c->sb;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "making mounts private");
  if (s->lower_tree_fd >= 0 &&
      syscall(SYS_move_mount, s->lower_tree_fd, "", AT_FDCWD, s->lower_tree_at,
              MOVE_MOUNT_F_EMPTY_PATH) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "attaching the idmapped image at %s",
               s->lower_tree_at);
  /* pivot_root needs the new root to be a mount point. */
  if (s->overlay_lower) {
    char opts[8192];
    /* In a user namespace overlay may not use trusted.* xattrs. "volatile"
     * (5.10+) skips the syncfs at unmount: the writable layer dies with the
     * container, so syncing the whole filesystem at every exit buys nothing. */
    bool userns = s->ns_flags & CLONE_NEWUSER;
    if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s%s,volatile",
                 s->overlay_lower, s->overlay_upper, s->overlay_work,
                 userns ? ",userxattr" : "") >= (int)sizeof opts)
      child_fail(c, GRPC_INVALID_ARGUMENT, ENAMETOOLONG, "overlay options");
    int rc = mount("overlay", s->rootfs, "overlay", MS_NODEV, opts);
    if (rc < 0 && errno == EINVAL) { /* a kernel without "volatile" */
      *strrchr(opts, ',') = 0;
      rc = mount("overlay", s->rootfs, "overlay", MS_NODEV, opts);
    }
    if (rc < 0)
      child_fail(c, GRPC_FAILED_PRECONDITION, errno, "mounting overlay of %s", s->overlay_lower);
  } else if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "binding rootfs %s", s->rootfs);
  } else if (mount(NULL, s->rootfs, NULL,
                   MS_BIND | MS_REMOUNT | MS_NODEV | (s->rootfs_writable ? 0 : MS_RDONLY),
                   NULL) < 0) {
    /* Without an overlay the image itself is the rootfs: never writable, or
     * one container could change every other's files. */
    child_fail(c, GRPC_INTERNAL, errno, "making rootfs %s nodev%s", s->rootfs,
               s->rootfs_writable ? "" : " and read-only");
  }
  c->rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c->rootfd < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "opening rootfs %s", s->rootfs);
  mount_in_root(c, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true);
  make_dev(c);
  make_sys(c);
  if (!s->unmasked)
    mask_paths(c);
  mount_in_root(c, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", true);
  user_mounts(c);
}

static void enter_root(struct child *c) {
  if (fchdir(c->rootfd) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "entering rootfs");
  /* pivot_root(".", ".") stacks the old root on the new one; detaching it
   * leaves only the container's tree, with no directory kept open. */
  if (sys_pivot_root(".", ".") < 0)
    child_fail(c, GRPC_INTERNAL, errno, "pivot_root into %s", c->sb->rootfs);
  if (umount2(".", MNT_DETACH) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "detaching the old root");
  if (chdir("/") < 0)
    child_fail(c, GRPC_INTERNAL, errno, "chdir /");
  close(c->rootfd);
  c->rootfd = -1;
}

/* True when every interface of our network namespace has neither sent nor
 * received a byte: no connection was ever made in it, so no socket state
 * (TIME_WAIT, metrics caches) can remain; without CAP_NET_ADMIN its owner
 * could change nothing else in it. */
static bool netns_pristine(void) {
  cleanup_file FILE *f = fopen("/proc/thread-self/net/dev", "re");
  char line[512];
  unsigned n = 0;
  while (f && fgets(line, sizeof line, f)) {
    if (++n <= 2)
      continue; /* the two header lines */
    unsigned long long rx, tx;
    const char *colon = strchr(line, ':');
    if (!colon || sscanf(colon + 1, "%llu %*u %*u %*u %*u %*u %*u %*u %llu", &rx, &tx) != 2 ||
        rx != 0 || tx != 0)
      return false;
  }
  return f && n > 2;
}

/* Joins the spare network namespace; false (and then in no particular
 * one: the caller makes a new one) when it cannot be used. */
static bool join_spare_netns(int fd) {
  return setns(fd, CLONE_NEWNET) == 0 && netns_pristine();
}

static void loopback_up(struct child *c) {
  cleanup_fd int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "reading flags of lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "bringing lo up");
}

/* Bridge networking names the nameservers. The image's own file, or a
 * symlink in its place, is replaced: we are in the container's root. */
static void write_resolv_conf(struct child *c, const char *text) {
  if (mkdir("/etc", 0755) < 0 && errno != EEXIST)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "creating /etc");
  unlink("/etc/resolv.conf");
  cleanup_fd int fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           0644);
  size_t len = strlen(text);
  if (fd < 0 || write(fd, text, len) != (ssize_t)len)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "writing /etc/resolv.conf");
}

static char *read_small_file(const char *path) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap + 1);
  ssize_t n;
  while (buf && len < cap && (n = read(fd, buf + len, cap - len)) > 0)
    len += (size_t)n;
  if (buf)
    buf[len] = 0;
  return buf;
}

static void switch_user(struct child *c, const char *user) {
  if (!user || !user[0])
    return;
  cleanup_free char *passwd = read_small_file("/etc/passwd");
  struct qerr err = QERR_INIT;
  uid_t uid;
  gid_t gid;
  if (spawn_parse_user(user, passwd, &uid, &gid, &err) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, 0, "%s", err.msg);
  if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "switching to user %s (%u:%u)", user, uid, gid);
}

/* What a container's processes may keep: by default the set Docker gives
 * (caps.h), changed by --cap-add/--cap-drop. Everything else (SYS_ADMIN,
 * SYS_MODULE, SYS_PTRACE, NET_ADMIN, ...) leaves the bounding set, so not
 * even a setuid binary gets it back.
 * Before the user switch: dropping from the bounding set needs SETPCAP. */
static void drop_bounding_caps(struct child *c, uint64_t kept_caps) {
  for (int cap = 0; cap < 64; cap++) {
    if (kept_caps & CAPS_BIT(cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
      continue;
    if (errno == EINVAL) /* past the kernel's last capability */
      break;
    child_fail(c, GRPC_INTERNAL, errno, "dropping capability %d", cap);
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* After it: root keeps the default set; another user has none left. */
static void limit_caps(struct child *c, uint64_t kept_caps) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "reading capabilities");
  for (int i = 0; i < 2; i++) {
    uint32_t keep = (uint32_t)(kept_caps >> (32 * i));
    data[i].effective &= keep;
    data[i].permitted &= keep;
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &hdr, data) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "limiting capabilities");
}

static void set_rlimits(void) {
  /* Within the hard limit we were given: never try to raise it. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t want = 65536;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* The ignored signals (execve keeps them ignored; handlers it resets), from
 * /proc/self/status: one read instead of a sigaction per signal. */
static uint64_t ignored_signals(void) {
  char buf[2048];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return ~0ull; /* unknown: reset them all */
  buf[n] = 0;
  const char *p = strstr(buf, "\nSigIgn:\t");
  return p ? strtoull(p + 9, NULL, 16) : ~0ull;
}

static void reset_signals(void) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  uint64_t ign = ignored_signals();
  for (int sig = 1; sig < NSIG && sig <= 64; sig++)
    if (ign & (1ull << (sig - 1)))
      signal(sig, SIG_DFL);
}

static const char *env_path(char *const *env) {
  for (char *const *e = env; e && *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0)
      return *e + 5;
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* execvpe would search the daemon's PATH; the container's env decides. */
static void exec_command(struct child *c, const struct spawn_exec *ex) {
  const char *cmd = ex->argv[0];
  if (strchr(cmd, '/')) {
    execve(cmd, ex->argv, ex->env);
    int e = errno;
    child_fail(c, e == ENOENT ? GRPC_NOT_FOUND : GRPC_FAILED_PRECONDITION, e, "executing %s",
               cmd);
  }
  const char *path = env_path(ex->env);
  int last = ENOENT;
  while (*path) {
    const char *colon = strchrnul(path, ':');
    char full[4096];
    snprintf(full, sizeof full, "%.*s/%s", (int)(colon - path), path, cmd);
    execve(full, ex->argv, ex->env);
    if (errno != ENOENT && errno != ENOTDIR)
      last = errno;
    path = *colon ? colon + 1 : colon;
  }
  if (last == ENOENT)
    child_fail(c, GRPC_NOT_FOUND, 0, "command not found in the container: %s", cmd);
  child_fail(c, GRPC_FAILED_PRECONDITION, last, "executing %s", cmd);
}

/* The same last steps for a container's process and an exec'd one: its
 * capabilities, user, directory, limits, no_new_privs, no daemon fds, the
 * seccomp filter, then execve. */
__attribute__((noreturn)) static void harden_and_exec(struct child *c, const struct spawn_exec *ex,
                                                      const struct sock_fprog *seccomp) {
  drop_bounding_caps(c, ex->caps);
  switch_user(c, ex->user);
  limit_caps(c, ex->caps);
  const char *cwd = ex->cwd && ex->cwd[0] ? ex->cwd : "/";
  if (chdir(cwd) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "working directory %s", cwd);
  set_rlimits();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "setting no_new_privs");
  /* Nothing of the daemon may leak into the container. */
  if (sys_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "marking fds close-on-exec");
  /* Last: the filter must let through only what remains, execve and the
   * writes that report a failure. */
  int rc = seccomp && !(ex->flags & SPAWN_SECCOMP_UNCONFINED) ? qseccomp_install(seccomp) : 0;
  if (rc < 0)
    child_fail(c, GRPC_INTERNAL, -rc, "installing the seccomp filter");
  exec_command(c, ex);
  _exit(127);
}

static void read_ctl(struct child *c, void *buf, size_t n, const char *what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(c->ctl_fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      child_fail(c, GRPC_INTERNAL, r < 0 ? errno : 0, "quiltd abandoned the start (%s)", what);
    got += (size_t)r;
  }
}

/* v1: move ourselves; the write may wait for an RCU grace period. */
static void join_cgroups(struct child *c) {
  const struct spawn_sandbox *s = c->sb;
  memcpy(c->cg_procs, s->cgroup_procs, s->n_cgroup_procs * sizeof *c->cg_procs);
  c->n_cg_procs = s->n_cgroup_procs;
  struct qerr err = QERR_INIT;
  if (s->child_setup && s->child_setup(s->child_arg, c->cg_procs, &c->n_cg_procs, &err) < 0)
    child_fail(c, err.status ? err.status : GRPC_INTERNAL, 0, "%s", err.msg);
  for (size_t i = 0; i < c->n_cg_procs; i++) {
    if (write(c->cg_procs[i], "0", 1) != 1)
      child_fail(c, GRPC_INTERNAL, errno, "joining the container's cgroup");
    close(c->cg_procs[i]);
  }
}

/* Blocks until quiltd says what to run: at once for a cold start, when a
 * request takes this sandbox for a warm one. */
static void receive_exec(struct child *c, struct spawn_exec *ex) {
  uint32_t len;
  read_ctl(c, &len, sizeof len, "waiting for the command");
  if (len > SPAWN_EXEC_MAX)
    child_fail(c, GRPC_INTERNAL, 0, "exec record of %u bytes", len);
  char *buf = malloc(len ? len : 1);
  if (!buf)
    child_fail(c, GRPC_RESOURCE_EXHAUSTED, ENOMEM, "receiving the command");
  read_ctl(c, buf, len, "reading the command");
  close(c->ctl_fd);
  c->ctl_fd = -1;
  char **vecs;
  if (spawn_exec_unpack(buf, len, ex, &vecs) < 0)
    child_fail(c, GRPC_INTERNAL, EINVAL, "malformed exec record");
}

__attribute__((noreturn)) static void child_main(struct child *c) {
  const struct spawn_sandbox *s = c->sb;
  if (s->close_in_child >= 0)
    close(s->close_in_child);
  /* In a new user namespace we still carry the daemon's host ids, which
   * are unmapped there: once the maps are written, become the namespace's
   * root (the mapped range). */
  if (s->ns_flags & CLONE_NEWUSER) {
    char go;
    read_ctl(c, &go, 1, "waiting for the id maps");
    if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
      child_fail(c, GRPC_INTERNAL, errno, "becoming root in the user namespace");
  }
  join_cgroups(c);
  /* Built here rather than by clone3: the network namespace alone costs
   * ~0.5 ms of CPU, now spent in the child instead of the daemon's loop;
   * and a cgroup namespace made after joining is rooted at our cgroup. */
  int later = s->ns_flags & ~(CLONE_NEWPID | CLONE_NEWUSER | s->clone_ns);
  if ((later & CLONE_NEWNET) && s->netns_fd >= 0 && join_spare_netns(s->netns_fd))
    later &= ~CLONE_NEWNET;
  if (later && unshare(later) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "creating the container's namespaces");
  reset_signals();
  setsid();
  for (int i = 0; i < 3; i++)
    if (dup2(s->stdio[i], i) < 0)
      child_fail(c, GRPC_INTERNAL, errno, "setting up fd %d", i);
  if (s->ns_flags & CLONE_NEWNS) {
    setup_mounts(c);
    enter_root(c);
  } else if (chroot(s->rootfs) < 0 || chdir("/") < 0) {
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "chroot %s", s->rootfs);
  }
  if (s->ns_flags & CLONE_NEWNET)
    loopback_up(c);
  int rc = s->seccomp_early && s->seccomp ? qseccomp_install(s->seccomp) : 0;
  if (rc < 0)
    child_fail(c, GRPC_INTERNAL, -rc, "installing the seccomp filter");
  if (s->announce_ready && write(c->status_fd, (char[]){SPAWN_READY}, 1) != 1)
    _exit(127);
  struct spawn_exec ex;
  receive_exec(c, &ex);
  if (s->seccomp_early && (ex.flags & SPAWN_SECCOMP_UNCONFINED))
    child_fail(c, GRPC_INTERNAL, 0, "this sandbox has its seccomp filter already");
  if ((s->ns_flags & CLONE_NEWUTS) && ex.hostname[0] &&
      sethostname(ex.hostname, strlen(ex.hostname)))
    child_fail(c, GRPC_INTERNAL, errno, "setting hostname %s", ex.hostname);
  if (ex.resolv_conf[0])
    write_resolv_conf(c, ex.resolv_conf);
  harden_and_exec(c, &ex, s->seccomp_early ? NULL : s->seccomp);
}

/* ------------------------------------------------------------ parent side */

/* Only what cannot be unshared later is created by clone: a PID namespace
 * (unshare would place only our children in it) and a user namespace
 * (the parent writes its id maps before the child goes on). */
static long clone_child(const struct spawn_sandbox *sb, int *pidfd) {
  uint64_t ns = (uint64_t)sb->ns_flags & (CLONE_NEWPID | CLONE_NEWUSER | (unsigned)sb->clone_ns);
  uint64_t parent = sb->clone_parent ? CLONE_PARENT : 0;
  struct clone_args args = {
      .flags = ns | parent | CLONE_PIDFD,
      .pidfd = (uint64_t)(uintptr_t)pidfd,
      /* With CLONE_PARENT the kernel uses the caller's own exit signal. */
      .exit_signal = parent ? 0 : SIGCHLD,
  };
  if (sb->cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)sb->cgroup_fd;
  }
  long pid = sys_clone3(&args);
  if (pid >= 0 || errno != ENOSYS || sb->cgroup_fd >= 0)
    return pid;
  /* Kernels before 5.3: clone() with CLONE_PIDFD returns the pidfd in the
   * parent_tid slot. */
  return syscall(SYS_clone, (unsigned long)(ns | parent) | CLONE_PIDFD | (parent ? 0 : SIGCHLD),
                 NULL, pidfd, NULL, 0);
}

int spawn_sandbox(const struct spawn_sandbox *sb, struct spawn_result *res, struct qerr *err) {
  int status[2], ctl[2];
  if (pipe2(status, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the status pipe");
  if (pipe2(ctl, O_CLOEXEC) < 0) {
    close(status[0]);
    close(status[1]);
    return qerr_errno(err, "creating the control pipe");
  }
  int pidfd = -1;
  long pid = clone_child(sb, &pidfd);
  if (pid == 0) {
    close(status[0]);
    close(ctl[1]);
    struct child c = {.sb = sb, .status_fd = status[1], .ctl_fd = ctl[0], .rootfd = -1};
    child_main(&c);
  }
  int saved = errno;
  close(status[1]);
  close(ctl[0]);
  if (pid < 0) {
    close(status[0]);
    close(ctl[1]);
    errno = saved;
    return qerr_errno(err, "clone3");
  }
  /* The loop must never block on a child that stopped reading. */
  fcntl(ctl[1], F_SETFL, O_NONBLOCK);
  *res = (struct spawn_result){
      .pid = (pid_t)pid, .pidfd = pidfd, .status_fd = status[0], .ctl_fd = ctl[1]};
  return 0;
}

/* In the exec'd child: the container's cgroup (v1), namespaces and ids. */
__attribute__((noreturn)) static void join_main(struct child *c, const struct spawn_join *j,
                                                const struct spawn_exec *ex) {
  for (size_t i = 0; i < j->n_cgroup_procs; i++)
    if (write(j->cgroup_procs[i], "0", 1) != 1)
      child_fail(c, GRPC_INTERNAL, errno, "joining the container's cgroup");
  int ns = j->ns_flags & (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                          CLONE_NEWNET | CLONE_NEWCGROUP);
  if (ns && setns(j->target_pidfd, ns) < 0)
    child_fail(c, GRPC_FAILED_PRECONDITION, errno, "joining the container's namespaces");
  if ((ns & CLONE_NEWUSER) &&
      (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0))
    child_fail(c, GRPC_INTERNAL, errno, "becoming root in the user namespace");
  reset_signals();
  setsid();
  for (int i = 0; i < 3; i++)
    if (dup2(j->stdio[i], i) < 0)
      child_fail(c, GRPC_INTERNAL, errno, "setting up fd %d", i);
  if (j->tty && ioctl(0, TIOCSCTTY, 0) < 0)
    child_fail(c, GRPC_INTERNAL, errno, "making the terminal the controlling one");
  harden_and_exec(c, ex, j->seccomp);
}

/* Children are born into the PID namespace the parent chose for them: the
 * daemon points its own at the container's around the clone. */
static long clone_into(const struct spawn_join *j, int *pidfd, struct qerr *err) {
  cleanup_fd int own = -1;
  if (j->ns_flags & CLONE_NEWPID) {
    own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own < 0)
      return qerr_errno(err, "opening /proc/self/ns/pid");
    if (setns(j->target_pidfd, CLONE_NEWPID) < 0)
      return qerr_status(err, GRPC_FAILED_PRECONDITION, errno,
                         "entering the container's PID namespace: %s", strerror(errno));
  }
  struct clone_args args = {
      .flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)pidfd, .exit_signal = SIGCHLD};
  if (j->cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)j->cgroup_fd;
  }
  long pid = sys_clone3(&args);
  int saved = errno;
  if (pid != 0 && own >= 0 && setns(own, CLONE_NEWPID) < 0)
    abort(); /* every later child would land in the container: never go on */
  if (pid < 0)
    return qerr_status(err, saved == ENOMEM ? GRPC_FAILED_PRECONDITION : GRPC_INTERNAL, saved,
                       "starting the process in the container: %s",
                       saved == ENOMEM ? "the container is exiting" : strerror(saved));
  return pid;
}

int spawn_join(const struct spawn_join *j, const struct spawn_exec *ex,
               struct spawn_result *res, struct qerr *err) {
  int status[2];
  if (pipe2(status, O_CLOEXEC) < 0)
    return qerr_errno(err, "creating the status pipe");
  int pidfd = -1;
  long pid = clone_into(j, &pidfd, err);
  if (pid == 0) {
    close(status[0]);
    struct child c = {.status_fd = status[1], .ctl_fd = -1, .rootfd = -1};
    join_main(&c, j, ex);
  }
  close(status[1]);
  if (pid < 0) {
    close(status[0]);
    return err->code;
  }
  *res = (struct spawn_result){
      .pid = (pid_t)pid, .pidfd = pidfd, .status_fd = status[0], .ctl_fd = -1};
  return 0;
}

static int write_map(pid_t pid, const char *file, uid_t base, unsigned count,
                     struct qerr *err) {
  char path[64], line[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  int n = snprintf(line, sizeof line, "0 %u %u\n", (unsigned)base, count);
  cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, line, (size_t)n) != n)
    return qerr_errno(err, "writing %s", path);
  return 0;
}

int spawn_map_ids(pid_t pid, uid_t base, unsigned count, struct qerr *err) {
  if (write_map(pid, "uid_map", base, count, err) < 0 ||
      write_map(pid, "gid_map", base, count, err) < 0)
    return err->code;
  return 0;
}

int spawn_release(int ctl_fd, struct qerr *err) {
  if (write(ctl_fd, "g", 1) != 1)
    return qerr_errno(err, "releasing the container process");
  return 0;
}

static void put_str(struct strbuf *b, const char *s, int *rc) {
  if (*rc == 0)
    *rc = strbuf_append(b, s ? s : "", strlen(s ? s : "") + 1);
}

static size_t vec_len(char *const *v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

/* Body: u32 argc, u32 envc, u32 flags, u64 caps (two u32, low first), then
 * NUL-terminated hostname, cwd, user, resolv.conf, argv, env; preceded on
 * the wire by its u32 length. */
#define EXEC_HDR_WORDS 5
int spawn_exec_pack(const struct spawn_exec *ex, struct strbuf *out, struct qerr *err) {
  size_t start = out->len;
  uint32_t hdr[1 + EXEC_HDR_WORDS] = {0, (uint32_t)vec_len(ex->argv), (uint32_t)vec_len(ex->env),
                                      ex->flags, (uint32_t)ex->caps,
                                      (uint32_t)(ex->caps >> 32)};
  int rc = strbuf_append(out, hdr, sizeof hdr);
  put_str(out, ex->hostname, &rc);
  put_str(out, ex->cwd, &rc);
  put_str(out, ex->user, &rc);
  put_str(out, ex->resolv_conf, &rc);
  for (uint32_t i = 0; i < hdr[1]; i++)
    put_str(out, ex->argv[i], &rc);
  for (uint32_t i = 0; i < hdr[2]; i++)
    put_str(out, ex->env[i], &rc);
  if (rc < 0)
    return qerr_set(err, ENOMEM, "out of memory");
  size_t body = out->len - start - sizeof(uint32_t);
  if (body > SPAWN_EXEC_MAX) {
    out->len = start;
    return qerr_status(err, GRPC_INVALID_ARGUMENT, E2BIG,
                       "command and environment take %zu bytes; at most %u are allowed", body,
                       SPAWN_EXEC_MAX);
  }
  uint32_t len32 = (uint32_t)body;
  memcpy(out->data + start, &len32, sizeof len32);
  return 0;
}

/* The next NUL-terminated string at *pos, or NULL when none fits. */
static char *take_str(char *buf, size_t len, size_t *pos) {
  if (*pos >= len)
    return NULL;
  char *s = buf + *pos;
  char *nul = memchr(s, 0, len - *pos);
  if (!nul)
    return NULL;
  *pos = (size_t)(nul - buf) + 1;
  return s;
}

int spawn_exec_unpack(char *buf, size_t len, struct spawn_exec *ex, char ***vecs) {
  uint32_t hdr[EXEC_HDR_WORDS];
  if (len < sizeof hdr)
    return -EINVAL;
  memcpy(hdr, buf, sizeof hdr);
  uint32_t argc = hdr[0], envc = hdr[1];
  size_t pos = sizeof hdr;
  /* Every string takes at least its NUL: bounds the allocation. */
  if (argc == 0 || (uint64_t)argc + envc + 4 > len - pos)
    return -EINVAL;
  char **v = calloc((size_t)argc + envc + 2, sizeof *v);
  if (!v)
    return -ENOMEM;
  const char *head[4];
  for (int i = 0; i < 4; i++)
    head[i] = take_str(buf, len, &pos);
  for (uint32_t i = 0; i < argc; i++)
    v[i] = take_str(buf, len, &pos);
  for (uint32_t i = 0; i < envc; i++)
    v[argc + 1 + i] = take_str(buf, len, &pos);
  bool ok = head[0] && head[1] && head[2] && head[3] && pos == len;
  for (uint32_t i = 0; ok && i < argc; i++)
    ok = v[i] != NULL;
  for (uint32_t i = 0; ok && i < envc; i++)
    ok = v[argc + 1 + i] != NULL;
  if (!ok) {
    free(v);
    return -EINVAL;
  }
  *ex = (struct spawn_exec){.argv = v, .env = v + argc + 1, .hostname = head[0],
                            .cwd = head[1], .user = head[2], .resolv_conf = head[3],
                            .caps = hdr[3] | (uint64_t)hdr[4] << 32, .flags = hdr[2]};
  *vecs = v;
  return 0;
}

int spawn_send_exec(int ctl_fd, const struct spawn_exec *ex, struct qerr *err) {
  cleanup_fd int fd = ctl_fd;
  struct strbuf b = STRBUF_INIT;
  if (spawn_exec_pack(ex, &b, err) < 0) {
    strbuf_free(&b);
    return err->code;
  }
  /* A release byte may still sit in the pipe, in a page of its own. */
  int rc = 0;
  if (b.len > 32768 && fcntl(fd, F_SETPIPE_SZ, (int)b.len + 8192) < 0)
    rc = qerr_errno(err, "growing the control pipe to %zu bytes", b.len);
  ssize_t n = rc ? -1 : write(fd, b.data, b.len);
  if (rc == 0 && n != (ssize_t)b.len)
    rc = n < 0 && errno == EPIPE
             ? qerr_status(err, GRPC_INTERNAL, EPIPE, "the container process exited before its command was sent")
             : qerr_errno(err, "sending the command to the container process");
  strbuf_free(&b);
  return rc;
}

enum spawn_state spawn_poll_ready(int status_fd, bool *ready_seen, struct qerr *err) {
  struct pollfd pfd = {.fd = status_fd, .events = POLLIN};
  if (poll(&pfd, 1, 0) == 0)
    return *ready_seen ? SPAWN_WAITING : SPAWN_BUILDING;
  char buf[1 + sizeof(struct spawn_failure)];
  ssize_t n = read(status_fd, buf, sizeof buf);
  const char *rec = buf;
  if (!*ready_seen && n >= 1 && buf[0] == SPAWN_READY) {
    *ready_seen = true;
    rec++;
    n--;
    /* Ready, unless it died since: then the pipe is at EOF as well. */
    if (n == 0 && poll(&pfd, 1, 0) == 0)
      return SPAWN_WAITING;
    if (n == 0)
      n = read(status_fd, buf, sizeof buf - 1), rec = buf;
  }
  if (n > 0)
    spawn_parse_failure(rec, (size_t)n, err);
  else
    qerr_set(err, EIO, "the sandbox process exited while it waited");
  return SPAWN_GONE;
}

int spawn_parse_failure(const void *buf, size_t n, struct qerr *err) {
  struct spawn_failure f;
  if (n != sizeof f)
    return qerr_status(err, GRPC_INTERNAL, EIO, "container init failed before exec (%zu bytes)",
                       n);
  memcpy(&f, buf, sizeof f);
  f.msg[sizeof f.msg - 1] = 0;
  return qerr_status(err, f.status ? f.status : GRPC_INTERNAL, f.err ? f.err : EIO, "%s",
                     f.msg);
}

static int parse_id(const char *s, size_t n, unsigned *out) {
  if (n == 0 || n > 10)
    return -1;
  unsigned long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 0xfffffffeUL)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* Finds `name` in passwd text: "name:x:uid:gid:...". */
static int passwd_lookup(const char *passwd, const char *name, unsigned *uid, unsigned *gid) {
  size_t nl = strlen(name);
  for (const char *line = passwd; line && *line;) {
    const char *end = strchrnul(line, '\n');
    if ((size_t)(end - line) > nl && strncmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *f = line + nl + 1;                      /* password */
      const char *u = memchr(f, ':', (size_t)(end - f));  /* :uid */
      const char *g = u ? memchr(u + 1, ':', (size_t)(end - u - 1)) : NULL;
      const char *g_end = g ? memchr(g + 1, ':', (size_t)(end - g - 1)) : NULL;
      if (!g)
        return -1;
      if (!g_end)
        g_end = end;
      if (parse_id(u + 1, (size_t)(g - u - 1), uid) < 0 ||
          parse_id(g + 1, (size_t)(g_end - g - 1), gid) < 0)
        return -1;
      return 0;
    }
    line = *end ? end + 1 : end;
  }
  return -1;
}

int spawn_parse_user(const char *user, const char *passwd, uid_t *uid, gid_t *gid,
                     struct qerr *err) {
  const char *colon = strchr(user, ':');
  size_t ulen = colon ? (size_t)(colon - user) : strlen(user);
  unsigned u, g;
  if (parse_id(user, ulen, &u) == 0) {
    g = u;
    if (colon && parse_id(colon + 1, strlen(colon + 1), &g) < 0)
      return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "bad group in user \"%s\"", user);
    *uid = u;
    *gid = g;
    return 0;
  }
  if (colon)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "user \"%s\": expected uid[:gid] or a user name", user);
  if (!passwd || passwd_lookup(passwd, user, &u, &g) < 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ENOENT,
                       "user \"%s\" not found in the container's /etc/passwd", user);
  *uid = u;
  *gid = g;
  return 0;
}
