/* What quilt-copy and quiltd agree on besides argv (src/runtime/copy.c is
 * the other end):
 *  - `stat` and `out` write a copy_wire_stat record first on stdout, then
 *    (`out`) the archive. Native byte order: both ends are one host.
 *  - The exit status is a gRPC status code; stderr holds one line, the
 *    reason, or on success "ok bytes=N entries=M". */
#ifndef QUILT_EXTRACT_COPY_WIRE_H
#define QUILT_EXTRACT_COPY_WIRE_H

#include <stdint.h>

#define COPY_WIRE_MAGIC "QCP1"
#define COPY_WIRE_NAME_MAX 4096

struct copy_wire_stat {
  char magic[4];
  uint32_t mode;        /* st_mode: type and permission bits */
  uint64_t size;
  int64_t mtime_ns;
  uint32_t name_len;    /* then name_len bytes of name, link_len of link target */
  uint32_t link_len;
};

#endif
