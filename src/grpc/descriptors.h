/* Serialized FileDescriptorProtos of the served protos, generated at build
 * time by tools/embed-descriptors.py, for the reflection service. */
#ifndef QUILT_GRPC_DESCRIPTORS_H
#define QUILT_GRPC_DESCRIPTORS_H

#include <stddef.h>

struct proto_file_desc {
  const char *name;              /* "quilt.proto" */
  const unsigned char *bytes;    /* serialized FileDescriptorProto */
  size_t len;
  const char *const *symbols;    /* fully-qualified names defined, NULL-ended */
};

extern const struct proto_file_desc proto_files[];
extern const unsigned proto_files_count;

#endif
