/* Facts about the host the daemon runs on. */
#ifndef QUILT_RUNTIME_SYSINFO_H
#define QUILT_RUNTIME_SYSINFO_H

#include <stddef.h>

enum cgroup_mode { CGROUP_MODE_UNIFIED, CGROUP_MODE_HYBRID, CGROUP_MODE_LEGACY,
                   CGROUP_MODE_UNKNOWN };

/* Detects the cgroup layout as crun does: statfs of `root` (normally
 * /sys/fs/cgroup): cgroup2 → unified; tmpfs with a cgroup2 `unified/` →
 * hybrid; tmpfs otherwise → legacy. */
enum cgroup_mode cgroup_detect_mode(const char *root);
const char *cgroup_mode_name(enum cgroup_mode m);
/* "Linux 6.1.0-18-amd64 x86_64". */
void sysinfo_kernel(char *out, size_t cap);

#endif
