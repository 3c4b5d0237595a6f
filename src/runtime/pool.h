/* The warm pool: sandboxes built before anyone asks for them.
 *
 * Creating namespaces, a cgroup, an overlay and the mounts of a container
 * costs milliseconds (most of it the kernel's); a request that finds a
 * ready sandbox pays only for a pipe write and an execve. Each sandbox is a
 * process already in its cgroup and its namespaces, pivoted into an overlay
 * of the default image, blocked on its control pipe (spawn.h). The pool
 * holds `--warm-pool` of them for the default image and the default
 * namespaces. It also learns: a container of another image, or of an image
 * plus a cached setup layer, that found no sandbox makes that rootfs a
 * "view" the pool keeps `--warm-pool` sandboxes of too, up to
 * POOL_MAX_VIEWS - 1 learned views, each forgotten after POOL_VIEW_IDLE_NS
 * without a container (or for a newer one, least recently used first).
 * Other namespaces start cold. Refills happen after the loop has sent the
 * replies of its turn, one sandbox per turn, so they overlap the taken
 * container's exec instead of delaying an answer. */
#ifndef QUILT_RUNTIME_POOL_H
#define QUILT_RUNTIME_POOL_H

#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/pidwait.h"
#include "io/timer.h"
#include "runtime/cgroup.h"
#include "runtime/rootfs.h"
#include "common/strbuf.h"
#include "runtime/spawn.h"
#include "runtime/zygote.h"

struct quiltd;
struct cgroup;
struct watch;

struct warm {
  struct warm *next;
  unsigned view;               /* index in warm_pool.views */
  char id[65];                 /* the container id it will have */
  char image_id[65];           /* "" when built from a rootfs directory */
  char dir[PATH_MAX];          /* <root>/containers/<id> */
  struct rootfs_view rootfs;
  struct cgroup *cg;           /* opened once ready; a taker applies its limits */
  struct cgroup_limits limits; /* on its cgroup already: the default ones */
  int log_fd;                  /* its log file, opened once ready; -1 */
  struct spawn_result proc;    /* pid, pidfd, status_fd, ctl_fd */
  int pipes[2];                /* read ends of the child's stdout, stderr */
  struct qpidwait reap;        /* discarded: waiting for it to die */
  bool keep_dir;               /* discarded, but its files are a container's */
  bool ready_seen;             /* it said it is built (spawn_poll_ready) */
  bool stale;                  /* asked of the zygote, then unwanted */
  struct watch *watch;         /* still building: the ring tells when it is ready */
  struct warm_pool *pool;
};

#define POOL_MAX_VIEWS 4
#define POOL_SPARE_NETNS 4
#define POOL_VIEW_IDLE_NS (600ull * 1000000000ull)

/* A rootfs the pool builds sandboxes of: an image, maybe under a setup
 * layer. views[0] is the default image, whatever it resolves to now. */
struct pool_view {
  bool used;
  char image_id[65];           /* "" when a rootfs directory */
  char lower[PATH_MAX];        /* the overlay's lowerdir: [layer:]image */
  unsigned n_ready;            /* its sandboxes in the pool */
  uint64_t last_use_ns;        /* learned views: when one was last asked for */
};

struct warm_pool {
  struct quiltd *d;
  unsigned target;             /* sandboxes to keep ready per view; 0: no pool */
  struct warm *ready;
  unsigned n_ready;            /* in the pool, built or still building */
  unsigned n_reaping;          /* discarded, not yet reaped */
  struct pool_view views[POOL_MAX_VIEWS];
  unsigned next_view;          /* round robin of the refills */
  struct qtimer wake;          /* refill later: after a failure, or idle */
  struct qtimer expire;        /* forgets idle learned views */
  uint64_t backoff_ns;         /* 0 while builds succeed */
  bool stopped;
  struct zygote zygote;        /* forks the sandboxes; none: quiltd does */
  struct warm *pending;        /* asked of the zygote; its answer is awaited */
  struct qop zygote_op;        /* POLL_ADD on the zygote's socket */
  struct qtimer zygote_late;   /* gives up on an answer */
  struct qpidwait zygote_reap; /* a zygote given up on */
  struct pool_waiter *waiters; /* requests waiting for a sandbox being built */
  unsigned n_watches;          /* polls in flight on building sandboxes */
  int spare_netns[POOL_SPARE_NETNS]; /* see pool_give_netns */
  unsigned n_spare_netns;
  uint64_t hits, misses, built, build_failures, views_learned, netns_given, waited;
};

/* A request that missed while a sandbox of its rootfs was being built. */
struct pool_waiter {
  struct pool_waiter *next;
  char image_id[65];
  char lower[PATH_MAX];
  /* Called once, from the loop: with the sandbox (ready, the caller's now),
   * or NULL when none is coming (it failed, was discarded, the pool stops). */
  void (*fn)(struct pool_waiter *pw, struct warm *w);
};

/* The namespaces a pooled sandbox has: the default set. */
#define POOL_NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

void pool_init(struct warm_pool *p, struct quiltd *d, unsigned target);
/* One refill step: builds at most one sandbox while short of the target.
 * The loop calls it after each turn's replies were submitted. */
void pool_refill(struct warm_pool *p);
/* True when a refill step would build something now. */
bool pool_wants(const struct warm_pool *p);
/* A live ready sandbox of that image (id, or rootfs directory when the
 * id is "") whose overlay lowerdir is `lower` (the image's rootfs, or a
 * setup layer and it), with those namespaces, or NULL (a miss: the pool
 * learns the view for the next one). The caller owns it. */
struct warm *pool_take(struct warm_pool *p, const char *image_id, const char *lower,
                       int ns_flags);
/* After a miss: when a sandbox of that rootfs is being built, queues pw
 * for it and returns true; a cold start costs twice the wait. */
bool pool_wait(struct warm_pool *p, struct pool_waiter *pw, const char *image_id,
               const char *lower);
/* Takes pw out of the queue (it gave up); no call follows. */
void pool_unwait(struct warm_pool *p, struct pool_waiter *pw);
/* Gives back a ready sandbox pool_wait handed over and nobody used. */
void pool_return(struct warm_pool *p, struct warm *w);
/* The default image is now `image_id` (or the directory `lower`): sandboxes
 * of any other are stale; they are discarded (and the pool refills). */
void pool_default_is(struct warm_pool *p, const char *image_id, const char *lower);
/* Kills a sandbox nobody will use, then (once reaped) removes its cgroup
 * and directory. */
void pool_discard(struct warm_pool *p, struct warm *w);
/* Discards the ready sandboxes built from an image about to be removed,
 * and forgets its views. */
void pool_drop_image(struct warm_pool *p, const char *image_id);
/* The same for a setup layer (its directory) about to be removed. */
void pool_drop_layer(struct warm_pool *p, const char *layer_dir);
/* Takes fd, the network namespace of a container that has exited (no
 * process left in it), which never had more than the sandbox's default
 * capabilities over it (no CAP_NET_ADMIN or CAP_SYS_ADMIN: it could not
 * reconfigure it) and no bridge. The next sandbox joins it instead of
 * creating one, if no packet crossed it (spawn.h): creating and destroying
 * a network namespace is ~15% of a short container's CPU. Kept at most
 * POOL_SPARE_NETNS; closed when unwanted. */
void pool_give_netns(struct warm_pool *p, int fd);
/* Daemon shutdown: discards everything and stops refilling. */
void pool_shutdown(struct warm_pool *p);
/* True while discarded sandboxes are still being reaped. */
bool pool_busy(const struct warm_pool *p);
/* Appends the pool's Prometheus metrics; 0 or -ENOMEM. */
int pool_render_metrics(struct warm_pool *p, struct strbuf *out);
/* The same, synchronously: for when the loop is gone. */
void pool_discard_now(struct warm *w);
/* Last resort when the loop is gone: discards the ready ones now. */
void pool_free(struct warm_pool *p);

#endif
