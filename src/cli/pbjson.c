#include "cli/pbjson.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

/* Storage size of one value of a field (one element of a repeated field). */
static size_t value_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return sizeof(int64_t);
  case PROTOBUF_C_TYPE_FLOAT:
    return sizeof(float);
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  default: /* 32-bit integers and enums */
    return sizeof(int32_t);
  }
}

static void json_enum(struct json_out *j, const char *key, const ProtobufCFieldDescriptor *fd,
                      int v) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
  if (ev)
    json_string(j, key, ev->name);
  else
    json_int(j, key, v); /* a value newer than our copy of the proto */
}

/* Floating point never occurs in quilt.proto; kept exact as a string. */
static void json_float(struct json_out *j, const char *key, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  json_string(j, key, buf);
}

static void json_value(struct json_out *j, const char *key, const ProtobufCFieldDescriptor *fd,
                       const void *p) {
  const ProtobufCMessage *m;
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    json_int(j, key, *(const int32_t *)p);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    json_uint(j, key, *(const uint32_t *)p);
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    json_int(j, key, *(const int64_t *)p);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    json_uint(j, key, *(const uint64_t *)p);
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    json_float(j, key, *(const float *)p);
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    json_float(j, key, *(const double *)p);
    break;
  case PROTOBUF_C_TYPE_BOOL:
    json_bool(j, key, *(const protobuf_c_boolean *)p);
    break;
  case PROTOBUF_C_TYPE_ENUM:
    json_enum(j, key, fd, *(const int *)p);
    break;
  case PROTOBUF_C_TYPE_STRING:
    json_string(j, key, *(char *const *)p);
    break;
  case PROTOBUF_C_TYPE_BYTES:
    json_string_n(j, key, (const char *)((const ProtobufCBinaryData *)p)->data,
                  ((const ProtobufCBinaryData *)p)->len);
    break;
  case PROTOBUF_C_TYPE_MESSAGE:
    m = *(const ProtobufCMessage *const *)p;
    if (m)
      json_message(j, key, m);
    else
      json_null(j, key);
    break;
  }
}

/* protobuf-c has no map flag: a map is a repeated FooEntry {key, value}. */
static bool is_map(const ProtobufCFieldDescriptor *fd) {
  if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE)
    return false;
  const ProtobufCMessageDescriptor *d = fd->descriptor;
  size_t n = strlen(d->short_name);
  return d->n_fields == 2 && n > 5 && strcmp(d->short_name + n - 5, "Entry") == 0 &&
         strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static void json_map_entry(struct json_out *j, const ProtobufCMessage *e) {
  const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0];
  const ProtobufCFieldDescriptor *vf = &e->descriptor->fields[1];
  const char *kp = (const char *)e + kf->offset;
  char num[32];
  const char *key = num;
  if (kf->type == PROTOBUF_C_TYPE_STRING)
    key = *(char *const *)kp ? *(char *const *)kp : "";
  else if (value_size(kf->type) == sizeof(int64_t))
    snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)kp);
  else
    snprintf(num, sizeof num, "%" PRId32, *(const int32_t *)kp);
  json_value(j, key, vf, (const char *)e + vf->offset);
}

static void json_repeated(struct json_out *j, const ProtobufCMessage *m,
                          const ProtobufCFieldDescriptor *fd) {
  size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
  const char *items = *(char *const *)((const char *)m + fd->offset);
  bool map = is_map(fd);
  if (map)
    json_begin_object(j, fd->name);
  else
    json_begin_array(j, fd->name);
  for (size_t i = 0; i < n; i++) {
    const void *p = items + i * value_size(fd->type);
    if (map)
      json_map_entry(j, *(const ProtobufCMessage *const *)p);
    else
      json_value(j, NULL, fd, p);
  }
  if (map)
    json_end_object(j);
  else
    json_end_array(j);
}

/* A oneof member that is not the chosen one is left out. */
static bool oneof_unset(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd) {
  return (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
         *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id;
}

void json_message(struct json_out *j, const char *key, const ProtobufCMessage *m) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  json_begin_object(j, key);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
      json_repeated(j, m, fd);
    else if (!oneof_unset(m, fd))
      json_value(j, fd->name, fd, (const char *)m + fd->offset);
  }
  json_end_object(j);
}

void json_print_message(FILE *f, const ProtobufCMessage *m, bool pretty) {
  struct json_out j;
  json_init(&j, f, pretty);
  json_message(&j, NULL, m);
  json_finish(&j);
}
