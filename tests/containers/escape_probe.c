/* Tries, from inside a container, the system calls an escape would need and
 * that busybox cannot reach, and prints one line per attempt:
 *   NAME=ok            the call succeeded
 *   NAME=EPERM         it failed with that errno
 * Every attempt is harmless even when it succeeds: nothing is loaded,
 * rebooted or changed outside the container (test_escape.py relies on it).
 * Built static so it runs in any image. Usage: escape_probe [HOST_PID]
 *
 * Run on a host as root, the attempts would succeed there (a mount, /proc
 * detached): it refuses to run outside the test image, which holds the
 * marker file /.quilt-escape-image. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static const char *errname(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case ESRCH: return "ESRCH";
  case EACCES: return "EACCES";
  case EFAULT: return "EFAULT";
  case EBUSY: return "EBUSY";
  case EINVAL: return "EINVAL";
  case ENOSYS: return "ENOSYS";
  case EBADF: return "EBADF";
  case EROFS: return "EROFS";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case ENODEV: return "ENODEV";
  case ENOEXEC: return "ENOEXEC";
  case E2BIG: return "E2BIG";
  default: return "EOTHER";
  }
}

static void report(const char *name, long rc) {
  if (rc >= 0)
    printf("%s=ok\n", name);
  else
    printf("%s=%s\n", name, errname(errno));
  fflush(stdout);
}

/* Runs fn in a child so a success (a new namespace, a changed persona)
 * stays there. */
static void in_child(const char *name, long (*fn)(void)) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(fn() < 0 ? errno : 0);
  int st = 0;
  waitpid(pid, &st, 0);
  int e = WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
  errno = e;
  report(name, e ? -1 : 0);
}

static long try_unshare_userns(void) { return unshare(CLONE_NEWUSER); }
static long try_clone_userns(void) {
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
  if (pid == 0)
    _exit(0);
  if (pid > 0)
    waitpid((pid_t)pid, NULL, 0);
  return pid;
}
static long try_personality(void) {
  long p = personality(ADDR_NO_RANDOMIZE);
  if (p >= 0 && (personality(0xffffffff) & ADDR_NO_RANDOMIZE) == 0) {
    errno = EINVAL; /* refused silently */
    return -1;
  }
  return p;
}

int main(int argc, char **argv) {
  if (access("/.quilt-escape-image", F_OK) < 0) {
    fprintf(stderr, "escape_probe: not in the test image; refusing to run\n");
    return 2;
  }
  long host_pid = argc > 1 ? atol(argv[1]) : 1;
  report("mount", mount("none", "/mnt", "tmpfs", 0, NULL));
  report("umount_proc", umount2("/proc", MNT_DETACH));
  report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
  report("init_module", syscall(SYS_init_module, NULL, 0, ""));
  report("finit_module", syscall(SYS_finit_module, -1, "", 0));
  report("delete_module", syscall(SYS_delete_module, "quilt_none", O_NONBLOCK));
  /* In a PID namespace the kernel turns reboot into a signal to its init;
   * CAD_OFF is EINVAL there: nothing happens either way. */
  report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                           LINUX_REBOOT_CMD_CAD_OFF, NULL));
  /* No segments: would only unload a loaded image, and needs CAP_SYS_BOOT. */
  report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xffff0000UL));
  report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
  report("swapon", syscall(SYS_swapon, "/quilt-no-such-swap", 0));
  report("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0));
  report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  /* Keyrings are not namespaced: only look (create = 0), never add. */
  report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
  report("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
  report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY));
  report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  int nsfd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  report("setns", syscall(SYS_setns, nsfd, 0));
  in_child("unshare_userns", try_unshare_userns);
  in_child("clone_userns", try_clone_userns);
  report("clone3", syscall(SYS_clone3, NULL, 0));
  in_child("personality", try_personality);
  report("ptrace_host", ptrace(PTRACE_ATTACH, (pid_t)host_pid, NULL, NULL));
  report("kill_host", kill((pid_t)host_pid, 0));
  /* What must keep working: threads (clone), a fork, the safe personas. */
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  report("fork", pid < 0 ? -1 : waitpid(pid, NULL, 0));
  report("personality_query", personality(0xffffffff));
  report("personality_linux", personality(PER_LINUX));
  return 0;
}
