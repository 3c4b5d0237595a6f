/* The janitor: a small helper process that deletes directory trees for the
 * daemon. Removing a container's directory costs a few milliseconds on a
 * disk mounted with `discard` (every freed directory block is discarded
 * synchronously, ~0.2 ms each), and the event loop must not wait for that.
 * The daemon queues absolute paths over a socket and goes on; the janitor,
 * forked at start before anything else, works through them in order and
 * exits once the daemon closes the socket (at exit or when it dies), after
 * finishing what was queued. A leftover is swept at the next start. */
#ifndef QUILT_RUNTIME_JANITOR_H
#define QUILT_RUNTIME_JANITOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/qerr.h"

struct janitor {
  pid_t pid;       /* 0: none (removals are done inline) */
  int pidfd;
  int fd;          /* write end of the queue, non-blocking */
  unsigned long queued, inline_done;
};

int janitor_start(struct janitor *j, struct qerr *err);
/* Removes `path` (rm -rf) soon: queued, or at once when there is no
 * janitor or its queue is full. 0, or the inline removal's error. */
int janitor_remove(struct janitor *j, const char *path, struct qerr *err);
/* A removed container's directory: kept for another (cdir.h) or removed;
 * soon, as janitor_remove. */
int janitor_recycle_dir(struct janitor *j, const char *path, struct qerr *err);
/* Queues the rmdir of an emptied cgroup directory (removing a v1 memory
 * cgroup can take milliseconds); false when it could not be queued. */
bool janitor_rmdir_cgroup(struct janitor *j, const char *path);
/* Hands an emptied cgroup to the janitor and frees cg; false (cg
 * untouched) when it cannot be queued. */
struct cgroup;
bool janitor_take_cgroup(struct janitor *j, struct cgroup *cg);
/* Closes fd in the janitor: when it is the last reference to something
 * costly to release (a mount namespace and its mounts), the release
 * happens there, not in the daemon's loop. false: closed here instead. */
bool janitor_close(struct janitor *j, int fd);
/* Closes the queue and waits until the janitor has emptied it. */
void janitor_stop(struct janitor *j);

#endif
