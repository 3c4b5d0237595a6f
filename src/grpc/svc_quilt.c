/* quilt.v1.Quilt: the method table and the handlers that need no runtime. */
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/registry.h"
#include "grpc/services.h"
#include "runtime/container.h"
#include "runtime/images.h"

static void get_system_info(struct grpc_call *call, const ProtobufCMessage *req) {
  (void)req;
  struct quiltd *d = grpc_call_daemon(call);
  Quilt__V1__SystemInfo info = QUILT__V1__SYSTEM_INFO__INIT;
  info.version = (char *)QUILT_VERSION;
  info.kernel = d->kernel;
  info.cgroup_mode = d->cgroup_mode;
  info.n_io_uring_features = d->n_features;
  info.io_uring_features = (char **)d->features;
  info.uptime_seconds = (clock_mono_ns() - d->start_mono_ns) / 1000000000ull;
  info.root_dir = (char *)(d->cfg.root_dir ? d->cfg.root_dir : "");
  info.pid = (uint32_t)d->pid;
  info.rootfs_driver = (char *)d->rootfs_driver;
  info.containers_total = d->n_containers;
  info.images = d->images ? (uint32_t)image_count(d->images) : 0;
  for (const struct container *c = d->containers; c; c = c->next)
    info.containers_running += container_is_active(c);
  grpc_call_reply(call, &info.base);
}

#define M(name, kind, in, fn)                                                  \
  {"/quilt.v1.Quilt/" name, kind, &quilt__v1__##in##__descriptor, fn, NULL}

static const struct grpc_method methods[] = {
    M("CreateContainer", GRPC_UNARY, create_container_request, rpc_create),
    M("StartContainer", GRPC_UNARY, start_container_request, rpc_start),
    M("GetContainer", GRPC_UNARY, get_container_request, rpc_get),
    M("ListContainers", GRPC_UNARY, list_containers_request, rpc_list),
    M("StopContainer", GRPC_UNARY, stop_container_request, rpc_stop),
    M("KillContainer", GRPC_UNARY, kill_container_request, rpc_kill),
    M("PauseContainer", GRPC_UNARY, pause_container_request, rpc_pause),
    M("ResumeContainer", GRPC_UNARY, resume_container_request, rpc_resume),
    M("RemoveContainer", GRPC_UNARY, remove_container_request, rpc_remove),
    M("WaitContainer", GRPC_UNARY, wait_container_request, rpc_wait),
    M("StreamLogs", GRPC_SERVER_STREAM, stream_logs_request, rpc_logs),
    M("WatchEvents", GRPC_SERVER_STREAM, watch_events_request, events_watch),
    M("GetStats", GRPC_UNARY, get_stats_request, rpc_stats),
    M("Exec", GRPC_UNARY, exec_request, rpc_exec),
    {"/quilt.v1.Quilt/ExecStream", GRPC_BIDI, &quilt__v1__exec_input__descriptor,
     rpc_exec_stream, rpc_exec_stream_done},
    M("CopyOut", GRPC_SERVER_STREAM, copy_out_request, rpc_copy_out),
    {"/quilt.v1.Quilt/CopyIn", GRPC_CLIENT_STREAM, &quilt__v1__copy_in_chunk__descriptor,
     rpc_copy_in, rpc_copy_in_done},
    M("ImportImage", GRPC_SERVER_STREAM, import_image_request, rpc_import_image),
    {"/quilt.v1.Quilt/UploadImage", GRPC_BIDI, &quilt__v1__upload_image_chunk__descriptor,
     rpc_upload_image, rpc_upload_image_done},
    M("ListImages", GRPC_UNARY, list_images_request, rpc_list_images),
    M("RemoveImage", GRPC_UNARY, remove_image_request, rpc_remove_image),
    M("PruneImages", GRPC_UNARY, prune_images_request, rpc_prune_images),
    M("CreateVolume", GRPC_UNARY, create_volume_request, rpc_create_volume),
    M("ListVolumes", GRPC_UNARY, list_volumes_request, rpc_list_volumes),
    M("RemoveVolume", GRPC_UNARY, remove_volume_request, rpc_remove_volume),
    M("PruneVolumes", GRPC_UNARY, prune_volumes_request, rpc_prune_volumes),
    M("GetSystemInfo", GRPC_UNARY, get_system_info_request, get_system_info),
};

const struct grpc_service svc_quilt = {methods, ARRAY_SIZE(methods)};
