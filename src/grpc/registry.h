/* The table of served gRPC methods, looked up by :path. */
#ifndef QUILT_GRPC_REGISTRY_H
#define QUILT_GRPC_REGISTRY_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct grpc_call;

enum grpc_kind { GRPC_UNARY, GRPC_SERVER_STREAM, GRPC_CLIENT_STREAM, GRPC_BIDI };

struct grpc_method {
  const char *path;  /* "/quilt.v1.Quilt/GetSystemInfo" */
  enum grpc_kind kind;
  const ProtobufCMessageDescriptor *input;
  /* Unary and server streaming: once, with the one request message.
   * Client streaming and bidi: once per message as it arrives. The message
   * is freed when the handler returns; copy what you keep. */
  void (*on_request)(struct grpc_call *call, const ProtobufCMessage *req);
  /* Client streaming and bidi: the client has sent its last message. */
  void (*on_half_close)(struct grpc_call *call);
};

struct grpc_service {
  const struct grpc_method *methods;
  unsigned count;
};

struct grpc_registry {
  const struct grpc_method *methods[64];
  const char *names[64];
  unsigned count;
};

/* Builds the table from the daemon's services (Quilt, Health, Reflection). */
void grpc_registry_init(struct grpc_registry *r);
/* Returns the method and its index, or NULL. */
const struct grpc_method *grpc_registry_find(const struct grpc_registry *r, const char *path,
                                             size_t len, unsigned *index);

extern const struct grpc_service svc_quilt, svc_health, svc_reflection;

#endif
