#include "runtime/sysinfo.h"

#include <linux/magic.h>
#include <stdio.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

enum cgroup_mode cgroup_detect_mode(const char *root) {
  struct statfs st;
  char path[4096];
  if (statfs(root, &st) < 0)
    return CGROUP_MODE_UNKNOWN;
  if (st.f_type == CGROUP2_SUPER_MAGIC)
    return CGROUP_MODE_UNIFIED;
  if (st.f_type != TMPFS_MAGIC)
    return CGROUP_MODE_UNKNOWN;
  snprintf(path, sizeof path, "%s/unified", root);
  if (statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
    return CGROUP_MODE_HYBRID;
  return CGROUP_MODE_LEGACY;
}

const char *cgroup_mode_name(enum cgroup_mode m) {
  switch (m) {
  case CGROUP_MODE_UNIFIED: return "unified";
  case CGROUP_MODE_HYBRID: return "hybrid";
  case CGROUP_MODE_LEGACY: return "legacy";
  default: return "unknown";
  }
}

void sysinfo_kernel(char *out, size_t cap) {
  struct utsname u;
  if (uname(&u) < 0) {
    snprintf(out, cap, "unknown");
    return;
  }
  snprintf(out, cap, "%s %s %s", u.sysname, u.release, u.machine);
}
