#include "runtime/caps.h"

#include <errno.h>
#include <strings.h>

#include "common/cleanup.h"
#include "grpc/status.h"

static const char *const names[] = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

int caps_from_name(const char *name) {
  if (strncasecmp(name, "CAP_", 4) == 0)
    name += 4;
  for (size_t i = 0; i < ARRAY_SIZE(names); i++)
    if (strcasecmp(name, names[i]) == 0)
      return (int)i;
  return -1;
}

const char *caps_name(int cap) {
  return cap >= 0 && (size_t)cap < ARRAY_SIZE(names) ? names[cap] : NULL;
}

static int caps_mask(char *const *list, size_t n, uint64_t *mask, struct qerr *err) {
  *mask = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(list[i], "ALL") == 0) {
      *mask = CAPS_ALL;
      continue;
    }
    int cap = caps_from_name(list[i]);
    if (cap < 0)
      return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                         "unknown capability \"%s\" (names like NET_ADMIN or CAP_NET_ADMIN, "
                         "or ALL)",
                         list[i]);
    *mask |= CAPS_BIT(cap);
  }
  return 0;
}

int caps_resolve(char *const *add, size_t n_add, char *const *drop, size_t n_drop,
                 uint64_t *out, struct qerr *err) {
  uint64_t plus, minus;
  if (caps_mask(add, n_add, &plus, err) < 0 || caps_mask(drop, n_drop, &minus, err) < 0)
    return err->code;
  *out = (CAPS_DEFAULT & ~minus) | plus;
  return 0;
}
