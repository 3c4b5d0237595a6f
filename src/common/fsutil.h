/* Small filesystem helpers. */
#ifndef QUILT_FSUTIL_H
#define QUILT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "common/qerr.h"

/* mkdir -p; existing directories are fine. The last component gets mode. */
int mkdir_p(const char *path, mode_t mode, struct qerr *err);
/* rm -rf that never follows symlinks and stays on one filesystem tree.
 * A missing path is not an error. */
int rm_rf(const char *path, struct qerr *err);
/* Writes a whole file (O_TRUNC); for small control files. */
int write_file(const char *path, const void *data, size_t len, struct qerr *err);

#endif
