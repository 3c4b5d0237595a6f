/* quilt-copy's parts: quilt-copy.c enters the container's root and confines
 * itself, copy_out.c writes an archive of a path, copy_in.c extracts one. */
#ifndef QUILT_EXTRACT_COPY_TOOL_H
#define QUILT_EXTRACT_COPY_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct copy_opts {
  const char *path;       /* in the container: the source, or the destination directory */
  bool follow;            /* out, stat: a symlink at path is followed (that one only) */
  bool archive;           /* in: keep the archive's owners (else root of the container) */
  /* Offline user-namespaced containers: we see host ids, the container
   * sees them minus id_base. 0 count: no shift (the kernel maps them). */
  uid_t id_base;
  unsigned id_count;
};

/* One line on stderr, then exit with a gRPC status code. */
__attribute__((noreturn, format(printf, 2, 3))) void copy_die(int status, const char *fmt, ...);
/* The status an errno of a path lookup stands for. */
int copy_status_of(int err);

/* out (with_archive) and stat: the stat record, then the archive. */
void copy_out(const struct copy_opts *o, bool with_archive);
/* in: the archive on stdin, extracted into the directory at o->path. */
void copy_in(const struct copy_opts *o);

#endif
