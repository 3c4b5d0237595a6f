/* libFuzzer harness: protobuf decoding of every message quiltd accepts as a
 * request, i.e. the input type of every method in the daemon's table (the
 * Quilt service's *Request messages and UploadImageChunk, Health,
 * Reflection), with protobuf-c's unpack as call.c runs it.
 *
 * Input: byte 0 picks the method; the rest is the message. A message that
 * decodes must pass protobuf_c_message_check, and re-encoding must be
 * stable: pack(unpack(pack(m))) == pack(m) when the second unpack works. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc/registry.h"

/* Names the message type in the crash log. */
static void fail(const ProtobufCMessageDescriptor *desc, const char *what) {
  fprintf(stderr, "%s: %s\n", desc->name, what);
  abort();
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (!buf || protobuf_c_message_pack(m, buf) != *len)
    abort();
  return buf;
}

static void round_trip(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *m) {
  size_t len1, len2;
  uint8_t *once = pack(m, &len1);
  ProtobufCMessage *again = protobuf_c_message_unpack(desc, NULL, len1, once);
  /* protobuf-c keeps unknown fields it would refuse when they come back
   * minimally encoded (field number 0 behind a padded varint tag, 0x80 0x00):
   * a library quirk that Quilt never sees, since it does not echo requests. */
  if (!again) {
    free(once);
    return;
  }
  uint8_t *twice = pack(again, &len2);
  if (len1 != len2 || memcmp(once, twice, len1) != 0)
    fail(desc, "re-encoding is not stable");
  protobuf_c_message_free_unpacked(again, NULL);
  free(once);
  free(twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct grpc_registry r;
  grpc_registry_init(&r);
  const ProtobufCMessageDescriptor *desc = r.methods[data[0] % r.count]->input;
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
  if (!m)
    return 0;
  if (!protobuf_c_message_check(m))
    fail(desc, "decoded message fails protobuf_c_message_check");
  round_trip(desc, m);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
