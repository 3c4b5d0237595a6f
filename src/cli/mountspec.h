/* Mount flags of `run`/`create`, parsed without I/O (unit-tested; a fuzz
 * target may call them):
 *   --mount type=bind,source=/x,target=/y[,readonly]
 *   --mount type=tmpfs,target=/t[,size=64m]     (also tmpfs-size=)
 *   --mount type=volume,source=NAME,target=/p[,readonly]
 *   -v NAME:/path[:ro|rw]   a named volume
 *   -v /host/path:/path[:ro|rw]   a bind (an absolute source, as docker)
 * Keys as docker spells them too: src, dst, destination, ro, readonly=true.
 * The daemon does the real checks (paths, deny list, volume names). */
#ifndef QUILT_CLI_MOUNTSPEC_H
#define QUILT_CLI_MOUNTSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOUNTSPEC_PATH_MAX 4096

struct mountspec {
  char type[8];                   /* "bind", "tmpfs" or "volume" */
  char source[MOUNTSPEC_PATH_MAX];
  char target[MOUNTSPEC_PATH_MAX];
  bool readonly;
  uint64_t size_bytes;            /* tmpfs; 0: the kernel's default */
};

/* --mount's value. 0, or -EINVAL with a one-line reason in err. */
int mountspec_parse(const char *s, struct mountspec *out, char *err, size_t errlen);
/* -v/--volume's value. 0, or -EINVAL with a one-line reason in err. */
int mountspec_parse_volume(const char *s, struct mountspec *out, char *err, size_t errlen);
/* "64m", "1g", "4096", "512k" (binary units); 0 or -EINVAL. */
int mountspec_parse_size(const char *s, uint64_t *bytes);

#endif
