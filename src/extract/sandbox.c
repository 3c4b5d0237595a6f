#include "extract/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t whylen, const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  if (saved && n >= 0 && (size_t)n < whylen)
    snprintf(why + n, whylen - (size_t)n, ": %s", strerror(saved));
  errno = saved ? saved : EPERM;
  return -1;
}

static int dir_is_empty(int fd) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0)
    return -1;
  DIR *d = fdopendir(dup);
  if (!d) {
    close(dup);
    return -1;
  }
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

static int enter_root(const char *staging, char *why, size_t whylen) {
  int fd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return fail(why, whylen, "opening staging directory %s", staging);
  int empty = dir_is_empty(fd);
  if (empty <= 0) {
    close(fd);
    if (empty < 0)
      return fail(why, whylen, "reading staging directory %s", staging);
    errno = 0;
    return fail(why, whylen, "staging directory %s is not empty", staging);
  }
  if (fchdir(fd) < 0 || chroot(".") < 0 || chdir("/") < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return fail(why, whylen, "entering staging directory %s", staging);
  }
  close(fd);
  return 0;
}

static int drop_caps(bool allow_devices, char *why, size_t whylen) {
  uint64_t keep = (1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_FOWNER) |
                  (1ULL << CAP_FSETID) | (1ULL << CAP_SETFCAP);
  if (allow_devices)
    keep |= 1ULL << CAP_MKNOD;
  /* Lock root's special treatment away first (needs CAP_SETPCAP). */
  if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                                   SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
            0, 0, 0) < 0)
    return fail(why, whylen, "setting securebits");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return fail(why, whylen, "clearing ambient capabilities");
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL)
        break; /* past the kernel's last capability */
      return fail(why, whylen, "dropping capability %d from the bounding set", cap);
    }
  }
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  data[0].effective = data[0].permitted = (uint32_t)keep;
  data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
  if (syscall(SYS_capset, &hdr, data) < 0)
    return fail(why, whylen, "capset");
  return 0;
}

static int set_limits(uint64_t max_file_bytes, unsigned max_fds, char *why, size_t whylen) {
  struct rlimit rl = {max_fds ? max_fds : 64, max_fds ? max_fds : 64};
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    return fail(why, whylen, "setting RLIMIT_NOFILE");
  rl = (struct rlimit){0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) < 0)
    return fail(why, whylen, "setting RLIMIT_CORE");
  if (max_file_bytes) {
    /* Writes past the limit fail with EFBIG instead of killing us. */
    signal(SIGXFSZ, SIG_IGN);
    rl = (struct rlimit){max_file_bytes, max_file_bytes};
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
      return fail(why, whylen, "setting RLIMIT_FSIZE");
  }
#if !defined(__SANITIZE_ADDRESS__)
  rl = (struct rlimit){4ULL << 30, 4ULL << 30};
  if (setrlimit(RLIMIT_AS, &rl) < 0)
    return fail(why, whylen, "setting RLIMIT_AS");
#endif
  return 0;
}

static const char *const denied_syscalls[] = {
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at",
    "socket", "socketpair",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "personality", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "iopl", "ioperm", "memfd_create", "memfd_secret",
};

static int install_seccomp(char *why, size_t whylen) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    errno = ENOMEM;
    return fail(why, whylen, "seccomp_init");
  }
  int rc = 0;
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (size_t i = 0; i < sizeof denied_syscalls / sizeof denied_syscalls[0] && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(denied_syscalls[i]);
    if (nr == __NR_SCMP_ERROR)
      continue; /* not on this architecture */
    rc = seccomp_rule_add(ctx, deny, nr, 0);
  }
  /* Signals only to ourselves: the daemon shares our uid. */
  scmp_datum_t self = (scmp_datum_t)getpid();
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_NE, self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(tkill), 1, SCMP_A0(SCMP_CMP_NE, self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_NE, self));
  /* No new code: every library we need was mapped at exec time. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(mmap), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(mprotect), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, deny, SCMP_SYS(pkey_mprotect), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
  if (rc == 0)
    rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc < 0) {
    errno = -rc;
    return fail(why, whylen, "installing the seccomp filter");
  }
  return 0;
}

int sandbox_enter(const char *staging, const struct sandbox_opts *o, char *why, size_t whylen) {
  if (enter_root(staging, why, whylen) < 0)
    return -1;
  umask(022);
  return sandbox_confine(o, why, whylen);
}

int sandbox_confine(const struct sandbox_opts *o, char *why, size_t whylen) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return fail(why, whylen, "setting no_new_privs");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    return fail(why, whylen, "clearing the dumpable flag");
  if (drop_caps(o->allow_devices, why, whylen) < 0 ||
      set_limits(o->max_file_bytes, o->max_fds, why, whylen) < 0 || install_seccomp(why, whylen) < 0)
    return -1;
  return 0;
}

static const char *try_errno(int rc) {
  if (rc >= 0)
    return "ALLOWED";
  const char *name = strerrorname_np(errno);
  return name ? name : "?";
}

void sandbox_describe(char *out, size_t cap) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  syscall(SYS_capget, &hdr, data);
  unsigned long long eff = data[0].effective | ((unsigned long long)data[1].effective << 32);
  unsigned long long prm = data[0].permitted | ((unsigned long long)data[1].permitted << 32);
  int bset_sys_admin = prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0);
  int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  int seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  struct rlimit nofile;
  getrlimit(RLIMIT_NOFILE, &nofile);
  char cwd[256];
  if (!getcwd(cwd, sizeof cwd))
    snprintf(cwd, sizeof cwd, "?");
  /* Each of these must fail. */
  const char *chroot_r = try_errno(chroot("/"));
  const char *mount_r = try_errno(mount("none", "/", "tmpfs", 0, NULL));
  char *const argv[] = {"/bin/true", NULL};
  const char *exec_r = try_errno(execve("/bin/true", argv, argv + 1));
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  const char *socket_r = try_errno(s);
  const char *kill_r = try_errno(kill(getpid() + 1, 0));
  int m = mknod("quilt-sandbox-null", S_IFCHR | 0600, makedev(1, 3));
  const char *mknod_r = try_errno(m);
  if (m == 0)
    unlink("quilt-sandbox-null");
  void *x = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const char *mmap_r = try_errno(x == MAP_FAILED ? -1 : 0);
  snprintf(out, cap,
           "sandbox cwd=%s caps_eff=%#llx caps_prm=%#llx bset_sys_admin=%d nnp=%d seccomp=%d "
           "nofile=%llu chroot=%s mount=%s execve=%s socket=%s kill_other=%s mknod_chr=%s "
           "mmap_exec=%s",
           cwd, eff, prm, bset_sys_admin, nnp, seccomp, (unsigned long long)nofile.rlim_cur,
           chroot_r, mount_r, exec_r, socket_r, kill_r, mknod_r, mmap_r);
}
