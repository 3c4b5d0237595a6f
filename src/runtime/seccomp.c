#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Denied outright: each needs a capability a container does not keep, or
 * exposes kernel surface (a long history of CVEs) no workload needs. The
 * capability checks would refuse most of them too; the filter also holds
 * for a container given extra capabilities, and shrinks the attack
 * surface of the ones no capability guards (bpf, userfaultfd, keyrings,
 * io_uring). Names unknown to an architecture are skipped. */
static const char *const denied[] = {
    /* mounts, old and new API */
    "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    /* kernel code and the machine itself */
    "init_module", "finit_module", "delete_module", "create_module", "query_module",
    "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "iopl", "ioperm", "vm86", "vm86old",
    /* tracing, BPF, keyrings, kernel memory tricks */
    "bpf", "perf_event_open", "lookup_dcookie", "keyctl", "add_key", "request_key",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* files by handle bypass path checks (the "shocker" escape) */
    "open_by_handle_at", "name_to_handle_at",
    /* namespaces: joining another one; new user namespaces are below */
    "setns",
    /* host-wide state */
    "acct", "quotactl", "quotactl_fd", "nfsservctl", "settimeofday", "stime",
    "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex",
    "syslog", "vhangup", "uselib", "ustat", "sysfs", "_sysctl",
};

/* personality(2) values a program may set: Linux, 32-bit Linux (setarch
 * i386), UNAME26 with either, and 0xffffffff, which only queries. Anything
 * else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, foreign personas) is refused. */
#define PERSONA_OK_BITS 0x20008u

/* clone's flags are its first argument except on s390. */
#if defined(__s390__) || defined(__s390x__)
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

static int deny_list(scmp_filter_ctx ctx) {
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
    int nr = seccomp_syscall_resolve_name(denied[i]);
    if (nr == __NR_SCMP_ERROR)
      continue;
    int rc = seccomp_rule_add(ctx, eperm, nr, 0);
    if (rc < 0 && rc != -EDOM) /* EDOM: not on any of the filter's arches */
      return rc;
  }
  return 0;
}

/* A user namespace gives its creator every capability inside it: the door
 * to most of the kernel's privileged code. clone3 hides its flags in
 * memory a filter cannot read: ENOSYS makes libc fall back to clone. */
static int deny_new_userns(scmp_filter_ctx ctx) {
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  struct scmp_arg_cmp newuser = {CLONE_FLAGS_ARG, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER,
                                 CLONE_NEWUSER};
  int rc = seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1, newuser);
  if (rc == 0)
    rc = seccomp_rule_add(ctx, eperm, SCMP_SYS(unshare), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  return rc;
}

/* A rule may compare an argument once, so "not one of the allowed values"
 * becomes a union of single masked comparisons: with bit 31 clear, any bit
 * outside PERSONA_OK_BITS set; with bit 31 set, any lower bit clear (only
 * the query has them all); or anything above 32 bits. */
static int restrict_personality(scmp_filter_ctx ctx) {
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  int nr = SCMP_SYS(personality);
  int rc = seccomp_rule_add(ctx, eperm, nr, 1, SCMP_A0(SCMP_CMP_GT, 0xffffffffull));
  for (unsigned b = 0; b < 31 && rc == 0; b++) {
    scmp_datum_t bit = 1ull << b, top = 1ull << 31;
    if (!(PERSONA_OK_BITS & bit))
      rc = seccomp_rule_add(ctx, eperm, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit | top, bit));
    if (rc == 0)
      rc = seccomp_rule_add(ctx, eperm, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit | top, top));
  }
  return rc;
}

/* The 32-bit ABIs reach the same kernel through other syscall numbers: a
 * filter that knew only the native one would be bypassed with int 0x80. */
static int add_compat_arches(scmp_filter_ctx ctx) {
  uint32_t native = seccomp_arch_native();
  uint32_t extra[2] = {0, 0};
  if (native == SCMP_ARCH_X86_64) {
    extra[0] = SCMP_ARCH_X86;
    extra[1] = SCMP_ARCH_X32;
  } else if (native == SCMP_ARCH_AARCH64) {
    extra[0] = SCMP_ARCH_ARM;
  }
  for (size_t i = 0; i < ARRAY_SIZE(extra) && extra[i]; i++) {
    int rc = seccomp_arch_add(ctx, extra[i]);
    if (rc < 0 && rc != -EEXIST)
      return rc;
  }
  return 0;
}

/* libseccomp 2.5 exports to an fd: through a memfd, back into memory. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *out, struct qerr *err) {
  cleanup_fd int fd = memfd_create("quilt-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return qerr_errno(err, "memfd for the seccomp filter");
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0)
    return qerr_set(err, rc, "exporting the seccomp filter: %s", strerror(-rc));
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "sizing the seccomp filter");
  size_t n = (size_t)st.st_size / sizeof(struct sock_filter);
  if (n == 0 || n > BPF_MAXINSNS || (size_t)st.st_size % sizeof(struct sock_filter))
    return qerr_set(err, EINVAL, "seccomp filter of %lld bytes", (long long)st.st_size);
  struct sock_filter *insns = malloc((size_t)st.st_size);
  if (!insns)
    return qerr_set(err, ENOMEM, "out of memory");
  if (pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
    free(insns);
    return qerr_errno(err, "reading back the seccomp filter");
  }
  *out = (struct sock_fprog){.len = (unsigned short)n, .filter = insns};
  return 0;
}

int qseccomp_build_default(struct sock_fprog *out, struct qerr *err) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx)
    return qerr_set(err, ENOMEM, "seccomp_init");
  /* A binary tree of syscall numbers: a long deny list would otherwise be
   * a linear scan on every allowed call. */
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (rc == 0)
    rc = add_compat_arches(ctx);
  if (rc == 0)
    rc = deny_list(ctx);
  if (rc == 0)
    rc = deny_new_userns(ctx);
  if (rc == 0)
    rc = restrict_personality(ctx);
  if (rc < 0)
    qerr_set(err, rc, "building the default seccomp profile: %s", strerror(-rc));
  else
    rc = export_bpf(ctx, out, err);
  seccomp_release(ctx);
  return rc;
}

void qseccomp_free(struct sock_fprog *prog) {
  free(prog->filter);
  prog->filter = NULL;
  prog->len = 0;
}

int qseccomp_install(const struct sock_fprog *prog) {
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) == 0)
    return 0;
  if (errno != ENOSYS)
    return -errno;
  /* Kernels before 3.17: the prctl form. */
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) == 0 ? 0 : -errno;
}
