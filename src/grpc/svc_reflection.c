/* grpc.reflection.v1alpha.ServerReflection: lists services and serves the
 * FileDescriptorProtos embedded at build time (grpc/descriptors.h). */
#include <string.h>

#include "common/cleanup.h"
#include "grpc/call.h"
#include "grpc/descriptors.h"
#include "grpc/registry.h"
#include "reflection.pb-c.h"

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse resp_t;

static const char *const services[] = {"quilt.v1.Quilt", "grpc.health.v1.Health",
                                       "grpc.reflection.v1alpha.ServerReflection"};

static const struct proto_file_desc *by_name(const char *name) {
  for (unsigned i = 0; i < proto_files_count; i++)
    if (strcmp(proto_files[i].name, name) == 0)
      return &proto_files[i];
  return NULL;
}

static const struct proto_file_desc *by_symbol(const char *sym) {
  for (unsigned i = 0; i < proto_files_count; i++)
    for (const char *const *s = proto_files[i].symbols; *s; s++)
      if (strcmp(*s, sym) == 0)
        return &proto_files[i];
  return NULL;
}

static void send_error(struct grpc_call *call, resp_t *resp, int code, const char *msg) {
  Grpc__Reflection__V1alpha__ErrorResponse e = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  e.error_code = code;
  e.error_message = (char *)msg;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = &e;
  grpc_call_send(call, &resp->base);
}

static void send_file(struct grpc_call *call, resp_t *resp, const struct proto_file_desc *f) {
  Grpc__Reflection__V1alpha__FileDescriptorResponse fd =
      GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  ProtobufCBinaryData bytes = {f->len, (uint8_t *)f->bytes};
  fd.n_file_descriptor_proto = 1;
  fd.file_descriptor_proto = &bytes;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = &fd;
  grpc_call_send(call, &resp->base);
}

static void send_services(struct grpc_call *call, resp_t *resp) {
  Grpc__Reflection__V1alpha__ServiceResponse items[ARRAY_SIZE(services)];
  Grpc__Reflection__V1alpha__ServiceResponse *ptrs[ARRAY_SIZE(services)];
  for (size_t i = 0; i < ARRAY_SIZE(services); i++) {
    items[i] = (Grpc__Reflection__V1alpha__ServiceResponse)
        GRPC__REFLECTION__V1ALPHA__SERVICE_RESPONSE__INIT;
    items[i].name = (char *)services[i];
    ptrs[i] = &items[i];
  }
  Grpc__Reflection__V1alpha__ListServiceResponse list =
      GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  list.n_service = ARRAY_SIZE(services);
  list.service = ptrs;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  resp->list_services_response = &list;
  grpc_call_send(call, &resp->base);
}

static void on_request(struct grpc_call *call, const ProtobufCMessage *msg) {
  const req_t *req = (const req_t *)msg;
  resp_t resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  resp.valid_host = req->host;
  resp.original_request = (req_t *)req;
  const struct proto_file_desc *f;
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    send_services(call, &resp);
    return;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    if ((f = by_name(req->file_by_filename)))
      send_file(call, &resp, f);
    else
      send_error(call, &resp, GRPC_NOT_FOUND, "no such file");
    return;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    if ((f = by_symbol(req->file_containing_symbol)))
      send_file(call, &resp, f);
    else
      send_error(call, &resp, GRPC_NOT_FOUND, "no such symbol");
    return;
  default:
    send_error(call, &resp, GRPC_UNIMPLEMENTED, "extensions are not supported");
  }
}

static void on_half_close(struct grpc_call *call) { grpc_call_finish(call, GRPC_OK, NULL); }

static const struct grpc_method methods[] = {
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", GRPC_BIDI,
     &grpc__reflection__v1alpha__server_reflection_request__descriptor, on_request,
     on_half_close},
};

const struct grpc_service svc_reflection = {methods, ARRAY_SIZE(methods)};
