/* The daemon context: the one piece of mutable state in quiltd, passed
 * explicitly to everything that needs it. */
#ifndef QUILT_DAEMON_H
#define QUILT_DAEMON_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "grpc/auth.h"
#include "grpc/metrics.h"
#include "grpc/registry.h"
#include "io/listener.h"
#include "io/ring.h"
#include "io/signals.h"
#include "io/timer.h"
#include "runtime/janitor.h"
#include "runtime/idmap.h"
#include "runtime/pool.h"
#include "runtime/scratch.h"
#include "runtime/setup.h"

struct conn;
struct watcher;
struct container;
struct store;
struct cgroup_manager;
struct image_store;

/* How an auto-removed container ended, kept so a WaitContainer that arrives
 * after the removal still gets its answer. */
struct tombstone {
  char id[65];
  int exit_code, exit_signal;
  bool oom_killed;
};
#define TOMBSTONES 1024
/* The built-in image's tag; containers that name no image use it. */
#define DEFAULT_IMAGE_TAG "busybox:latest"

struct quiltd_config {
  const char *socket_path;     /* Unix listener; NULL or "" to disable */
  const char *listen_addr;     /* "HOST:PORT" for TCP; NULL when not asked */
  const char *auth_token_file; /* bearer token TCP calls must carry */
  bool insecure_no_auth;       /* serve TCP without a token (loud warning) */
  const char *root_dir;
  unsigned max_connections;
  unsigned max_streams;        /* per connection */
  uint32_t max_recv_msg;       /* bytes */
  unsigned max_header_bytes;
  uint64_t idle_timeout_ns;
  uint64_t send_timeout_ns;    /* a peer that takes none of our bytes this long is shed */
  uint64_t handshake_timeout_ns;
  uint64_t shutdown_grace_ns;
  unsigned rapid_reset_limit;  /* client resets tolerated per second */
  bool io_uring_compat;        /* use only what kernel 5.15 offers */
  bool no_overlay;             /* act as if overlayfs were missing */
  bool no_idmap;               /* act as if idmapped mounts were missing */
  bool no_zygote;              /* the pool's sandboxes forked by quiltd itself */
  bool scratch_disk;           /* containers' writable layers on the disk, not a tmpfs */
  const char *scratch_size;    /* the scratch tmpfs's size= ("50%" when NULL) */
  /* Memory limit of containers that ask for none, MiB; 0: none; -1 (the
   * default): half of the host's memory, so no one container can take it all. */
  int64_t default_memory_mib;
  const char *default_rootfs;  /* rootfs directory used when a spec names no image */
  const char *default_image;   /* tarball imported as busybox:latest at first start */
  const char *extract_helper;  /* quilt-extract; NULL: next to quiltd */
  uint64_t image_max_bytes;    /* an archive may expand to at most this much */
  const char *cgroup_parent;   /* NULL: beneath the daemon's own cgroup */
  /* Bind sources refused besides /, /proc, /sys, /dev, /boot and the root
   * (--mount-deny, repeatable). */
  const char *const *mount_deny;
  size_t n_mount_deny;
  uint64_t log_max_bytes;      /* rotate a container log past this size; 0: never */
  uid_t userns_base;           /* user namespaces: container root = this host id */
  unsigned userns_count;       /* ... and this many ids from there */
  unsigned warm_pool;          /* sandboxes kept ready for the default image */
  const char *bridge_name;     /* bridge networking; NULL: the defaults */
  const char *bridge_subnet;
  const char *bridge_dns;
  struct setup_config setup;   /* setup steps' sources; a spec's own win */
};

/* Server-streaming calls that want events (WatchEvents, Health/Watch). */
struct watch_list {
  struct watcher *head;
};

struct quiltd {
  struct quiltd_config cfg;
  struct qring ring;
  struct qtimers timers;
  struct qsignals signals;
  struct listener unix_l, tcp_l;
  struct conn *conns;          /* all live connections */
  struct conn *dirty;          /* connections with output to flush */
  unsigned n_conns;
  struct metrics metrics;
  struct auth auth;            /* the TCP bearer token; none on Unix sockets */
  struct grpc_registry registry;
  struct watch_list watchers;
  struct container *containers;
  unsigned n_containers;
  struct container *deferred;  /* exited; cleanup after the replies left */
  struct warm_pool pool;       /* sandboxes built ahead of requests */
  struct janitor janitor;      /* deletes directory trees off the loop */
  struct idmap_cache idmap;    /* images as user-namespaced containers see them */
  unsigned execs_running;      /* exec'd processes not yet reaped (exec.c) */
  unsigned copies_running;     /* quilt-copy helpers not yet reaped (copy.c) */
  struct netbridge *net;       /* opened by the first bridged container */
  struct store *store;
  unsigned events_since_trim;
  struct tombstone tombstones[TOMBSTONES];
  unsigned next_tombstone;
  struct cgroup_manager *cgm;  /* NULL when cgroups are unusable */
  struct sock_fprog seccomp;   /* containers' default profile, compiled once */
  struct image_store *images;  /* NULL when the store could not open */
  bool overlay;                /* per-container overlay over the image */
  struct scratch scratch;      /* where the overlays' writable layers live */
  const char *rootfs_driver;   /* "overlay", or how the copy is made */
  struct strbuf log_scratch;   /* reused buffer for encoding log lines */
  struct qtimer shutdown_timer;
  uint64_t start_mono_ns;
  bool shutting_down;
  bool grace_over;
  bool done;
  /* Facts computed once at start for GetSystemInfo. */
  char kernel[128];
  char cgroup_mode[16];
  const char *features[16];
  unsigned n_features;
  pid_t pid;
};

void quiltd_default_config(struct quiltd_config *cfg);
int quiltd_init(struct quiltd *d, const struct quiltd_config *cfg, struct qerr *err);
/* Runs until shutdown completes; returns 0 or a negative errno. */
int quiltd_run(struct quiltd *d, struct qerr *err);
void quiltd_free(struct quiltd *d);
/* Begins a graceful shutdown (signal handler, tests). */
void quiltd_shutdown(struct quiltd *d);

#endif
