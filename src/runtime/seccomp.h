/* The default seccomp profile of containers.
 *
 * A deny list in the spirit of Docker's default profile: the calls that
 * reach kernel surface a container has no business with (mounts, modules,
 * kexec, reboot, swap, bpf, perf, keyrings, handles, userfaultfd, new user
 * namespaces, odd personalities, io_uring, ...) answer EPERM; everything
 * else is allowed, so workloads see the errors they already handle for an
 * unprivileged user instead of being killed.
 *
 * libseccomp compiles it once, at daemon start, for the native architecture
 * and (on x86_64) the x86 and x32 ABIs, so no 32-bit entry point bypasses
 * it; personality's allowed values are checked by a few hand-written
 * instructions in front of libseccomp's program (seccomp.c). The BPF
 * program is kept in the daemon context; a container's child (a copy of
 * the daemon) installs it as its last step before execve, and the kernel
 * compiles it anew each time: its length is a cost per container. */
#ifndef QUILT_RUNTIME_SECCOMP_H
#define QUILT_RUNTIME_SECCOMP_H

#include <linux/filter.h>

#include "common/qerr.h"

/* Compiles the default profile into out (its filter is malloc'd). */
int qseccomp_build_default(struct sock_fprog *out, struct qerr *err);
void qseccomp_free(struct sock_fprog *prog);
/* Installs prog on the calling thread; needs no_new_privs (or
 * CAP_SYS_ADMIN). Returns 0 or a negative errno. */
int qseccomp_install(const struct sock_fprog *prog);

#endif
