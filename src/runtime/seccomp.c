#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/sched.h>
#include <stddef.h>
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
 * else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, foreign personas) is refused
 * (persona_prefix below). */
#define PER_LINUX32_BITS 0x0008u
#define UNAME26_BITS 0x20000u

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

/* ------------------------------------------------------------ personality
 *
 * personality(2) is checked by a few hand-written instructions in front of
 * libseccomp's program: "anything but these five values" is a union of ~60
 * single comparisons in libseccomp's rule language: 377 of the program's
 * 588 instructions (234 with this instead), and the kernel compiles the
 * program again for every container. */

static const uint32_t persona_ok[] = {0, PER_LINUX32_BITS, UNAME26_BITS,
                                      UNAME26_BITS | PER_LINUX32_BITS, 0xffffffffu};

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#define ARG0_HI (offsetof(struct seccomp_data, args[0]) + 4)
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#define ARG0_HI offsetof(struct seccomp_data, args[0])
#endif

struct persona_call {
  uint32_t arch; /* the audit arch the kernel reports */
  uint32_t nr;
};

/* personality's number on each of the filter's ABIs. */
static size_t persona_calls(const uint32_t *arches, size_t n, struct persona_call *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int nr = seccomp_syscall_resolve_name_arch(arches[i], "personality");
    if (nr < 0)
      continue;
    /* x32 calls arrive as x86_64 ones with bit 30 set in the number. */
    uint32_t arch = arches[i] == SCMP_ARCH_X32 ? SCMP_ARCH_X86_64 : arches[i];
    uint32_t bit = arches[i] == SCMP_ARCH_X32 ? 0x40000000u : 0;
    out[k++] = (struct persona_call){arch, (uint32_t)nr | bit};
  }
  return k;
}

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))

/* For each (arch, nr): 4 instructions that go to the check on a match and
 * on to the next pair otherwise; after the last, past the check. The check
 * answers EPERM unless the (32-bit) argument is one of persona_ok. */
static size_t persona_prefix(const struct persona_call *calls, size_t n,
                             struct sock_filter *out) {
  const size_t n_ok = ARRAY_SIZE(persona_ok), check_len = 3 + n_ok + 2;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    size_t to_check = (n - 1 - i) * 4 + 1; /* the later pairs and the ja */
    out[k++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    out[k++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, calls[i].arch, 0, 2);
    out[k++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    out[k++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, calls[i].nr, (uint8_t)to_check, 0);
  }
  out[k++] = STMT(BPF_JMP | BPF_JA, (uint32_t)check_len); /* not personality */
  /* Jump offsets count from the next instruction. */
  out[k++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_HI);
  out[k++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, (uint8_t)(n_ok + 1)); /* to EPERM */
  out[k++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO);
  for (size_t i = 0; i < n_ok; i++) /* to ALLOW */
    out[k++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, persona_ok[i], (uint8_t)(n_ok - i), 0);
  out[k++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
  out[k++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  return k;
}

/* Puts the personality check in front of prog (jumps are relative: the
 * program after it is unchanged). */
static int prepend_persona(const uint32_t *arches, size_t n_arches, struct sock_fprog *prog,
                           struct qerr *err) {
  struct persona_call calls[4];
  size_t n = persona_calls(arches, n_arches < 4 ? n_arches : 4, calls);
  struct sock_filter pre[4 * 4 + 1 + 3 + ARRAY_SIZE(persona_ok) + 2];
  size_t k = persona_prefix(calls, n, pre);
  if (prog->len + k > BPF_MAXINSNS)
    return qerr_set(err, E2BIG, "seccomp filter of %zu instructions", prog->len + k);
  struct sock_filter *all = malloc((prog->len + k) * sizeof *all);
  if (!all)
    return qerr_set(err, ENOMEM, "out of memory");
  memcpy(all, pre, k * sizeof *all);
  memcpy(all + k, prog->filter, prog->len * sizeof *all);
  free(prog->filter);
  prog->filter = all;
  prog->len = (unsigned short)(prog->len + k);
  return 0;
}

/* The 32-bit ABIs reach the same kernel through other syscall numbers: a
 * filter that knew only the native one would be bypassed with int 0x80. */
static int add_compat_arches(scmp_filter_ctx ctx, uint32_t arches[3], size_t *n) {
  uint32_t native = seccomp_arch_native();
  uint32_t extra[2] = {0, 0};
  if (native == SCMP_ARCH_X86_64) {
    extra[0] = SCMP_ARCH_X86;
    extra[1] = SCMP_ARCH_X32;
  } else if (native == SCMP_ARCH_AARCH64) {
    extra[0] = SCMP_ARCH_ARM;
  }
  arches[(*n)++] = native;
  for (size_t i = 0; i < ARRAY_SIZE(extra) && extra[i]; i++) {
    int rc = seccomp_arch_add(ctx, extra[i]);
    if (rc < 0 && rc != -EEXIST)
      return rc;
    arches[(*n)++] = extra[i];
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
  uint32_t arches[3];
  size_t n_arches = 0;
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (rc == 0)
    rc = add_compat_arches(ctx, arches, &n_arches);
  if (rc == 0)
    rc = deny_list(ctx);
  if (rc == 0)
    rc = deny_new_userns(ctx);
  if (rc < 0)
    qerr_set(err, rc, "building the default seccomp profile: %s", strerror(-rc));
  else
    rc = export_bpf(ctx, out, err);
  seccomp_release(ctx);
  if (rc == 0 && (rc = prepend_persona(arches, n_arches, out, err)) < 0)
    qseccomp_free(out);
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
