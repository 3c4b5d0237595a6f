/* quilt-extract's confinement, entered before the first archive byte is
 * parsed (docs/images.md, "The sandbox"):
 *  - the staging directory becomes the root (chroot) and the working
 *    directory; it must be empty; no other fd than 0, 1 and 2 stays open;
 *  - no_new_privs, not dumpable, no core files;
 *  - every capability dropped from the bounding, ambient, effective,
 *    permitted and inheritable sets except CHOWN, DAC_OVERRIDE, FOWNER,
 *    FSETID, SETFCAP (and MKNOD with allow_devices); securebits locked so
 *    nothing can give them back;
 *  - rlimits: 64 fds, the largest file max_file_bytes, 4 GiB of address
 *    space (not under ASan, which reserves terabytes);
 *  - a seccomp filter (libseccomp) that refuses with EPERM: exec, fork and
 *    clone, ptrace, signals to other processes, mounts and namespaces,
 *    sockets, new executable mappings (no dlopen: an extracted file can never
 *    become code in the helper), io_uring, bpf, keyrings, module loading and
 *    other administration calls. */
#ifndef QUILT_EXTRACT_SANDBOX_H
#define QUILT_EXTRACT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sandbox_opts {
  bool allow_devices;
  uint64_t max_file_bytes;   /* 0: no RLIMIT_FSIZE */
  unsigned max_fds;          /* RLIMIT_NOFILE; 0: 64 */
};

/* Returns 0, or -1 with a reason in why (errno kept). */
int sandbox_enter(const char *staging, const struct sandbox_opts *o, char *why, size_t whylen);
/* Everything sandbox_enter does but the chroot, for a caller that chose
 * its root itself (quilt-copy: a container's root filesystem). */
int sandbox_confine(const struct sandbox_opts *o, char *why, size_t whylen);

/* One line describing the confinement as seen from inside, for
 * quilt-extract --check-sandbox (tests). */
void sandbox_describe(char *out, size_t cap);

#endif
