/* WatchEvents: server-streaming subscribers with filters and heartbeats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"

#define DEFAULT_HEARTBEAT_S 5

struct watcher {
  struct watcher *prev, *next;
  struct grpc_call *call;
  struct quiltd *d;
  struct qtimer heartbeat;
  uint64_t interval_ns;
  uint32_t type_mask;   /* bit per EventType; 0 = all */
  char *container_id;
};

static void unlink_watcher(struct watcher *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->d->watchers.head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  qtimer_cancel(&w->d->timers, &w->heartbeat);
  free(w->container_id);
  free(w);
}

static void on_cancel(struct grpc_call *call, void *arg) {
  (void)call;
  unlink_watcher(arg);
}

static bool wants(const struct watcher *w, const Quilt__V1__Event *ev) {
  if (ev->type == QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT)
    return true;
  if (w->type_mask && !(w->type_mask & (1u << ev->type)))
    return false;
  /* The filter names a container as every RPC does: id, id prefix or name
   * (also for containers created after the subscription). */
  if (w->container_id) {
    const char *id = ev->container_id ? ev->container_id : "";
    const char *name = ev->container_name ? ev->container_name : "";
    if (strncmp(id, w->container_id, strlen(w->container_id)) != 0 &&
        strcmp(name, w->container_id) != 0)
      return false;
  }
  return true;
}

/* A subscriber too slow to take events is cut off rather than letting its
 * queue grow without bound; heartbeats are simply skipped. */
static void deliver(struct watcher *w, const Quilt__V1__Event *ev) {
  int rc = grpc_call_send(w->call, &ev->base);
  if (rc == -EAGAIN && ev->type != QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT) {
    struct grpc_call *call = w->call;
    unlink_watcher(w);
    grpc_call_on_cancel(call, NULL, NULL);
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED,
                     "event subscriber fell too far behind; re-subscribe");
  }
}

static void on_heartbeat(struct qtimer *t) {
  struct watcher *w = container_of(t, struct watcher, heartbeat);
  Quilt__V1__Event ev = QUILT__V1__EVENT__INIT;
  ev.type = QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT;
  ev.timestamp_ns = clock_real_ns();
  qtimer_after(&w->d->timers, &w->heartbeat, w->interval_ns, on_heartbeat);
  deliver(w, &ev);
}

void events_publish(struct quiltd *d, const Quilt__V1__Event *ev) {
  struct watcher *next;
  for (struct watcher *w = d->watchers.head; w; w = next) {
    next = w->next;
    if (wants(w, ev))
      deliver(w, ev);
  }
}

void events_watch(struct grpc_call *call, const ProtobufCMessage *msg) {
  const Quilt__V1__WatchEventsRequest *req = (const Quilt__V1__WatchEventsRequest *)msg;
  struct quiltd *d = grpc_call_daemon(call);
  struct watcher *w = calloc(1, sizeof *w);
  if (!w) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  w->d = d;
  for (size_t i = 0; i < req->n_types; i++)
    if (req->types[i] > 0 && req->types[i] < 32)
      w->type_mask |= 1u << req->types[i];
  if (req->container_id && req->container_id[0] && !(w->container_id = strdup(req->container_id))) {
    free(w);
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  unsigned secs = req->heartbeat_seconds ? req->heartbeat_seconds : DEFAULT_HEARTBEAT_S;
  w->interval_ns = (uint64_t)secs * 1000000000ull;
  w->next = d->watchers.head;
  if (w->next)
    w->next->prev = w;
  d->watchers.head = w;
  grpc_call_on_cancel(call, on_cancel, w);
  /* The first heartbeat goes out at once so clients see the stream is up. */
  Quilt__V1__Event ev = QUILT__V1__EVENT__INIT;
  ev.type = QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT;
  ev.timestamp_ns = clock_real_ns();
  qtimer_after(&d->timers, &w->heartbeat, w->interval_ns, on_heartbeat);
  deliver(w, &ev);
}
