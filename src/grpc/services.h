/* Entry points the service handlers share with the rest of the daemon. */
#ifndef QUILT_GRPC_SERVICES_H
#define QUILT_GRPC_SERVICES_H

#include "quilt.pb-c.h"

struct quiltd;
struct grpc_call;

/* Streams an event to every WatchEvents subscriber whose filter matches. */
void events_publish(struct quiltd *d, const Quilt__V1__Event *ev);
/* Quilt.WatchEvents handler (svc_events.c). */
void events_watch(struct grpc_call *call, const ProtobufCMessage *req);

/* Container methods (svc_containers.c). */
void rpc_create(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_start(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_get(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_list(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_stop(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_kill(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_pause(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_exec(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_exec_stream(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_exec_stream_done(struct grpc_call *call);
void rpc_resume(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_remove(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_wait(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_logs(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_stats(struct grpc_call *call, const ProtobufCMessage *req);

/* File methods (svc_copy.c). */
void rpc_copy_out(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_copy_in(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_copy_in_done(struct grpc_call *call);

/* Image methods (svc_images.c). */
void rpc_import_image(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_upload_image(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_upload_image_done(struct grpc_call *call);
void rpc_list_images(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_remove_image(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_prune_images(struct grpc_call *call, const ProtobufCMessage *req);
/* Volume methods (svc_volumes.c). */
void rpc_create_volume(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_list_volumes(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_remove_volume(struct grpc_call *call, const ProtobufCMessage *req);
void rpc_prune_volumes(struct grpc_call *call, const ProtobufCMessage *req);
/* Containers (any state) created from the image. */
unsigned images_in_use(const struct quiltd *d, const char *image_id);

#endif
