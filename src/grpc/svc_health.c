/* grpc.health.v1.Health: the daemon is SERVING while it accepts calls. */
#include <string.h>

#include "common/cleanup.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/registry.h"
#include "health.pb-c.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_t;

/* "" is the server as a whole; otherwise a service we serve. */
static bool known_service(const char *name) {
  static const char *const names[] = {"", "quilt.v1.Quilt", "grpc.health.v1.Health",
                                      "grpc.reflection.v1alpha.ServerReflection"};
  for (size_t i = 0; i < ARRAY_SIZE(names); i++)
    if (strcmp(name, names[i]) == 0)
      return true;
  return false;
}

static serving_t status_of(struct quiltd *d) {
  return d->shutting_down ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static void check(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
  const char *svc = req->service ? req->service : "";
  if (!known_service(svc)) {
    grpc_call_finish(call, GRPC_NOT_FOUND, "unknown service \"%s\"", svc);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = status_of(grpc_call_daemon(call));
  grpc_call_reply(call, &resp.base);
}

/* Sends the current status and keeps the stream open; the call layer ends
 * it on cancel or shutdown, so no state is kept here. */
static void watch(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = known_service(req->service ? req->service : "")
                    ? status_of(grpc_call_daemon(call))
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  grpc_call_send(call, &resp.base);
}

static const struct grpc_method methods[] = {
    {"/grpc.health.v1.Health/Check", GRPC_UNARY, &grpc__health__v1__health_check_request__descriptor,
     check, NULL},
    {"/grpc.health.v1.Health/Watch", GRPC_SERVER_STREAM,
     &grpc__health__v1__health_check_request__descriptor, watch, NULL},
};

const struct grpc_service svc_health = {methods, ARRAY_SIZE(methods)};
