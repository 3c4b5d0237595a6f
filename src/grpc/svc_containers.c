/* quilt.v1.Quilt container methods: request checks and lookups here, the
 * lifecycle in runtime/container.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/exec.h"
#include "runtime/logs.h"

/* Resolves the request's id; answers the call itself when that fails. */
static struct container *lookup(struct grpc_call *call, const char *id) {
  struct qerr err = QERR_INIT;
  struct container *c = container_lookup(grpc_call_daemon(call), id, &err);
  if (!c)
    grpc_call_fail(call, &err);
  return c;
}

void rpc_create(struct grpc_call *call, const ProtobufCMessage *msg) {
  container_create(grpc_call_daemon(call), call, (const void *)msg);
}

void rpc_start(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__StartContainerRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (c)
    container_start_rpc(grpc_call_daemon(call), call, c);
}

void rpc_get(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__GetContainerRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (!c)
    return;
  Quilt__V1__Container pb;
  container_to_pb(c, &pb);
  grpc_call_reply(call, &pb.base);
}

static bool labels_match(const struct container *c, const Quilt__V1__ListContainersRequest *req) {
  for (size_t i = 0; i < req->n_label_filter; i++) {
    bool found = false;
    for (size_t j = 0; j < c->spec->n_labels && !found; j++)
      found = strcmp(c->spec->labels[j]->key, req->label_filter[i]->key) == 0 &&
              strcmp(c->spec->labels[j]->value, req->label_filter[i]->value) == 0;
    if (!found)
      return false;
  }
  return true;
}

void rpc_list(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__ListContainersRequest *req = (const void *)msg;
  struct quiltd *d = grpc_call_daemon(call);
  cleanup_free Quilt__V1__Container *items = calloc(d->n_containers + 1, sizeof *items);
  cleanup_free Quilt__V1__Container **ptrs = calloc(d->n_containers + 1, sizeof *ptrs);
  if (!items || !ptrs) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t n = 0;
  /* The list is newest first; answer oldest first like `docker ps`. */
  const struct container *last = d->containers;
  while (last && last->next)
    last = last->next;
  for (const struct container *c = last; c; c = c->prev) {
    bool live = c->state != QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_EXITED &&
                c->state != QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_FAILED;
    if ((!req->all && !live) || !labels_match(c, req))
      continue;
    container_to_pb(c, &items[n]);
    ptrs[n] = &items[n];
    n++;
  }
  Quilt__V1__ListContainersResponse resp = QUILT__V1__LIST_CONTAINERS_RESPONSE__INIT;
  resp.n_containers = n;
  resp.containers = ptrs;
  grpc_call_reply(call, &resp.base);
}

void rpc_stop(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__StopContainerRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (c)
    container_stop_rpc(grpc_call_daemon(call), call, c, req->timeout_seconds);
}

void rpc_kill(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__KillContainerRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (!c)
    return;
  struct qerr err = QERR_INIT;
  if (container_kill(c, req->signal ? req->signal : 9, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  Quilt__V1__KillContainerResponse resp = QUILT__V1__KILL_CONTAINER_RESPONSE__INIT;
  grpc_call_reply(call, &resp.base);
}

/* Pause and Resume answer with the container, as Stop does. */
static void freeze_rpc(struct grpc_call *call, const char *id, bool pause) {
  struct container *c = lookup(call, id);
  if (!c)
    return;
  struct qerr err = QERR_INIT;
  if ((pause ? container_pause(c, &err) : container_resume(c, &err)) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  Quilt__V1__Container pb;
  container_to_pb(c, &pb);
  Quilt__V1__PauseContainerResponse resp = QUILT__V1__PAUSE_CONTAINER_RESPONSE__INIT;
  resp.container = &pb;
  grpc_call_reply(call, &resp.base);
}

void rpc_pause(struct grpc_call *call, const ProtobufCMessage *msg) {
  freeze_rpc(call, ((const Quilt__V1__PauseContainerRequest *)msg)->id, true);
}

void rpc_resume(struct grpc_call *call, const ProtobufCMessage *msg) {
  freeze_rpc(call, ((const Quilt__V1__ResumeContainerRequest *)msg)->id, false);
}

void rpc_exec(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__ExecRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (c)
    exec_rpc(call, c, req);
}

void rpc_exec_stream(struct grpc_call *call, const ProtobufCMessage *msg) {
  exec_stream_input(call, (const void *)msg);
}

void rpc_exec_stream_done(struct grpc_call *call) { exec_stream_end(call); }

void rpc_remove(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__RemoveContainerRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (c)
    container_remove_rpc(grpc_call_daemon(call), call, c, req->force);
}

void rpc_wait(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__WaitContainerRequest *req = (const void *)msg;
  struct quiltd *d = grpc_call_daemon(call);
  struct qerr err = QERR_INIT;
  struct container *c = container_lookup(d, req->id, &err);
  if (c)
    container_wait_rpc(d, call, c);
  else if (err.status != GRPC_NOT_FOUND || !container_wait_removed(d, call, req->id))
    grpc_call_fail(call, &err);
}

void rpc_logs(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__StreamLogsRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (c)
    logs_stream_rpc(call, c, req);
}

void rpc_stats(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__GetStatsRequest *req = (const void *)msg;
  struct container *c = lookup(call, req->id);
  if (!c)
    return;
  if (!c->cg) {
    grpc_call_finish(call, GRPC_FAILED_PRECONDITION,
                     "container %.12s is not running: no live statistics", c->id);
    return;
  }
  struct cgroup_stats st;
  struct qerr err = QERR_INIT;
  if (cgroup_read_stats(c->cg, &st, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  Quilt__V1__Stats resp = QUILT__V1__STATS__INIT;
  resp.memory_current_bytes = st.memory_current;
  resp.memory_peak_bytes = st.memory_peak;
  resp.memory_limit_bytes = st.memory_limit;
  resp.cpu_usage_ns = st.cpu_usage_ns;
  resp.pids_current = st.pids_current;
  resp.pids_limit = st.pids_limit;
  grpc_call_reply(call, &resp.base);
}
