/* Capability sets of containers: Docker's default set, and --cap-add /
 * --cap-drop by name. Pure (no system calls); unit-tested. */
#ifndef QUILT_RUNTIME_CAPS_H
#define QUILT_RUNTIME_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

#define CAPS_BIT(c) (1ull << (c))
/* CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
 * NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP. */
#define CAPS_DEFAULT 0xa80425fbull
/* Every capability this header knows (0 .. CHECKPOINT_RESTORE). */
#define CAPS_ALL ((1ull << 41) - 1)

/* The number of a capability named "NET_ADMIN" or "CAP_NET_ADMIN" (any
 * case), or -1. */
int caps_from_name(const char *name);
/* "NET_ADMIN" for 12; NULL for an unknown number. */
const char *caps_name(int cap);
/* The default set with `drop` removed and then `add` added (so naming a
 * capability in both keeps it, as Docker does); "ALL" in either means
 * every capability. An unknown name is INVALID_ARGUMENT naming it. */
int caps_resolve(char *const *add, size_t n_add, char *const *drop, size_t n_drop,
                 uint64_t *out, struct qerr *err);

#endif
