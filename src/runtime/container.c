#include "runtime/container.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"
#include "runtime/caps.h"
#include "runtime/cdir.h"
#include "runtime/cgroup.h"
#include "runtime/copy.h"
#include "runtime/image_jobs.h"
#include "runtime/images.h"
#include "runtime/logs.h"
#include "runtime/mounts.h"
#include "runtime/volumes.h"
#include "runtime/netbridge.h"
#include "runtime/pool.h"
#include "runtime/setup.h"
#include "runtime/spawn.h"
#include "runtime/store.h"
#include "runtime/syscalls.h"

#define ST(x) QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_##x
#define EV(x) QUILT__V1__EVENT_TYPE__EVENT_TYPE_##x
#define DEFAULT_STOP_TIMEOUT_S 10
#define DEFAULT_PIDS_LIMIT 1024
#define EVENT_HISTORY 10000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum waiter_kind { W_START, W_STOP, W_WAIT, W_REMOVE };

struct ctr_waiter {
  struct ctr_waiter *prev, *next;
  struct container *c;
  struct grpc_call *call;
  enum waiter_kind kind;
};

static void on_status(struct qop *op, int res, uint32_t flags);
static void maybe_finish(struct container *c);

/* ------------------------------------------------------------ helpers */

bool container_is_active(const struct container *c) {
  return c->pid > 0 && (c->state == ST(RUNNING) || c->state == ST(CREATED) ||
                        c->state == ST(PAUSED));
}

static const char *short_id(const struct container *c, char out[13]) {
  memcpy(out, c->id, 12);
  out[12] = 0;
  return out;
}

static void publish(struct container *c, Quilt__V1__EventType type, const char *detail) {
  struct quiltd *d = c->d;
  Quilt__V1__Event ev = QUILT__V1__EVENT__INIT;
  ev.type = type;
  ev.timestamp_ns = clock_real_ns();
  ev.container_id = c->id;
  ev.container_name = c->name;
  ev.detail = (char *)(detail ? detail : "");
  events_publish(d, &ev);
  if (d->store) {
    struct qerr err = QERR_INIT;
    struct event_record r = {ev.timestamp_ns, (int)type, c->id, c->name, ev.detail};
    if (store_add_event(d->store, &r, &err) < 0)
      log_warn("recording event: %s", err.msg);
    /* The history is bounded: trim now and then, not on every event. */
    if (++d->events_since_trim >= 1024) {
      d->events_since_trim = 0;
      if (store_trim_events(d->store, EVENT_HISTORY, &err) < 0)
        log_warn("trimming events: %s", err.msg);
    }
  }
}

static void persist(struct container *c) {
  if (!c->d->store)
    return;
  size_t len = protobuf_c_message_get_packed_size(&c->spec->base);
  cleanup_free uint8_t *spec = malloc(len ? len : 1);
  if (!spec)
    return;
  protobuf_c_message_pack(&c->spec->base, spec);
  struct container_record r = {
      .id = c->id, .name = c->name, .state = c->state, .spec = spec, .spec_len = len,
      .pid = c->pid, .exit_code = c->exit_code, .exit_signal = c->exit_signal,
      .oom_killed = c->oom_killed, .failure = c->failure ? c->failure : "",
      .created_ns = c->created_ns, .started_ns = c->started_ns, .finished_ns = c->finished_ns,
      .image_id = c->image_id, .rootfs = c->rootfs.merged};
  struct qerr err = QERR_INIT;
  if (store_put_container(c->d->store, &r, &err) < 0)
    log_warn("saving container %.12s: %s", c->id, err.msg);
}

void container_to_pb(const struct container *c, Quilt__V1__Container *out) {
  *out = (Quilt__V1__Container)QUILT__V1__CONTAINER__INIT;
  out->id = (char *)c->id;
  out->name = c->name;
  out->state = c->state;
  out->spec = c->spec;
  out->pid = container_is_active(c) ? c->pid : 0;
  out->exit_code = c->exit_code;
  out->exit_signal = c->exit_signal;
  out->oom_killed = c->oom_killed;
  out->failure_reason = c->failure ? c->failure : (char *)"";
  out->created_at_ns = c->created_ns;
  out->started_at_ns = c->started_ns;
  out->finished_at_ns = c->finished_ns;
  out->image_id = (char *)c->image_id;
  out->ip_address = (char *)c->ip;
  out->setup_layer = (char *)c->setup_key;
  out->setup_reused = c->setup_reused;
}

/* ------------------------------------------------------------ waiters */

static void waiter_unlink(struct ctr_waiter *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->c->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  free(w);
}

static void waiter_cancelled(struct grpc_call *call, void *arg) {
  (void)call;
  waiter_unlink(arg);
}

static int add_waiter(struct container *c, struct grpc_call *call, enum waiter_kind kind) {
  struct ctr_waiter *w = calloc(1, sizeof *w);
  if (!w) {
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return -ENOMEM;
  }
  *w = (struct ctr_waiter){.next = c->waiters, .c = c, .call = call, .kind = kind};
  if (c->waiters)
    c->waiters->prev = w;
  c->waiters = w;
  grpc_call_on_cancel(call, waiter_cancelled, w);
  return 0;
}

static void reply_container(struct grpc_call *call, struct container *c,
                            enum waiter_kind kind) {
  Quilt__V1__Container pb;
  container_to_pb(c, &pb);
  if (kind == W_START) {
    Quilt__V1__CreateContainerResponse r = QUILT__V1__CREATE_CONTAINER_RESPONSE__INIT;
    r.container = &pb;
    grpc_call_reply(call, &r.base); /* Start's response has the same shape */
  } else {
    Quilt__V1__StopContainerResponse r = QUILT__V1__STOP_CONTAINER_RESPONSE__INIT;
    r.container = &pb;
    grpc_call_reply(call, &r.base);
  }
}

static void reply_wait(struct grpc_call *call, struct container *c) {
  if (c->state == ST(FAILED)) {
    grpc_call_finish(call, GRPC_FAILED_PRECONDITION, "container %.12s never started: %s", c->id,
                     c->failure ? c->failure : "unknown reason");
    return;
  }
  Quilt__V1__WaitContainerResponse r = QUILT__V1__WAIT_CONTAINER_RESPONSE__INIT;
  r.exit_code = c->exit_code;
  r.signal = c->exit_signal;
  r.oom_killed = c->oom_killed;
  grpc_call_reply(call, &r.base);
}

/* Answers every waiter of the given kinds; `err` non-NULL answers with it. */
static void wake(struct container *c, unsigned kinds, const struct qerr *err) {
  struct ctr_waiter *w = c->waiters, *next;
  for (; w; w = next) {
    next = w->next;
    if (!(kinds & (1u << w->kind)))
      continue;
    struct grpc_call *call = w->call;
    enum waiter_kind kind = w->kind;
    grpc_call_on_cancel(call, NULL, NULL);
    waiter_unlink(w);
    if (err)
      grpc_call_fail(call, err);
    else if (kind == W_WAIT)
      reply_wait(call, c);
    else if (kind == W_REMOVE)
      grpc_call_reply(call, &(Quilt__V1__RemoveContainerResponse)
                                 QUILT__V1__REMOVE_CONTAINER_RESPONSE__INIT.base);
    else
      reply_container(call, c, kind);
  }
}

/* ------------------------------------------------------------ lookup */

struct container *container_lookup(struct quiltd *d, const char *ref, struct qerr *err) {
  if (!ref || !ref[0]) {
    qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "no container id or name given");
    return NULL;
  }
  size_t len = strlen(ref);
  struct container *match = NULL;
  unsigned matches = 0;
  for (struct container *c = d->containers; c; c = c->next) {
    if (strcmp(c->id, ref) == 0 || strcmp(c->name, ref) == 0)
      return c;
    if (len < sizeof c->id && strncmp(c->id, ref, len) == 0) {
      match = c;
      matches++;
    }
  }
  if (matches == 1)
    return match;
  if (matches > 1)
    qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                "\"%s\" matches %u containers; give more of the id", ref, matches);
  else
    qerr_status(err, GRPC_NOT_FOUND, ENOENT, "no container with id or name \"%s\"", ref);
  return NULL;
}

/* ------------------------------------------------------------ validation */

static bool valid_name(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > 128)
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = n[i];
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
      return false;
  }
  return true;
}

/* ------------------------------------------------------------ setup steps
 * A container with setup steps runs them first, in a sandbox of their own
 * over its image; their upper layer becomes a cached layer keyed by the
 * image, the steps and their sources (setup.h), and the container runs on
 * image + layer. The next container with the same key finds the layer and
 * skips the steps. */

struct setup_run {
  struct quiltd *d;
  struct container *c;
  char key[65];
  bool failed_to_start;            /* its command was never sent */
  char why[512];
  pid_t pid;
  int pidfd, status_fd;
  struct qpidwait wait;
  char dir[PATH_MAX + 8];          /* <container>/setup: upper, work, rootfs */
  struct rootfs_view view;
  int exit_code;
  bool exited;
};

/* The spec's sources over the daemon's. */
static void setup_config_of(const struct quiltd *d, const Quilt__V1__ContainerSpec *s,
                            struct setup_config *cfg) {
  const Quilt__V1__SetupConfig *o = s->setup_config;
  *cfg = d->cfg.setup;
#define PICK(f)                                                                               \
  if (o && o->f && o->f[0])                                                                   \
  cfg->f = o->f
  PICK(npm_registry);
  PICK(pip_index);
  PICK(gem_source);
  PICK(apt_mirror);
  PICK(apk_repository);
  PICK(http_proxy);
  PICK(https_proxy);
  PICK(no_proxy);
#undef PICK
}

/* setup_steps_free frees what the steps hold; the array is ours. */
static void free_steps(struct setup_step *steps, size_t n) {
  setup_steps_free(steps, n);
  free(steps);
}

static int parse_steps(const Quilt__V1__ContainerSpec *s, struct setup_step **out,
                       struct qerr *err) {
  struct setup_step *steps = calloc(s->n_setup, sizeof *steps);
  if (!steps)
    return qerr_set(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < s->n_setup; i++)
    if (setup_parse(s->setup[i], &steps[i], err) < 0) {
      free_steps(steps, i);
      return err->code;
    }
  *out = steps;
  return 0;
}

static int validate_setup(struct quiltd *d, const Quilt__V1__ContainerSpec *s,
                          struct qerr *err) {
  struct setup_step *steps;
  struct setup_config cfg;
  setup_config_of(d, s, &cfg);
  if (s->n_setup > SETUP_STEPS_MAX)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "%zu setup steps: at most %d",
                       s->n_setup, SETUP_STEPS_MAX);
  if (parse_steps(s, &steps, err) < 0)
    return err->code;
  free_steps(steps, s->n_setup);
  if (setup_config_check(&cfg, err) < 0)
    return err->code;
  if (!d->overlay)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ENOTSUP,
                       "setup steps need overlayfs: their result is kept as a layer");
  return 0;
}

/* The capabilities a container keeps; validates the names. */
static int caps_of(const Quilt__V1__ContainerSpec *s, uint64_t *caps, struct qerr *err) {
  const Quilt__V1__Security *sec = s->security;
  if (!sec) {
    *caps = CAPS_DEFAULT;
    return 0;
  }
  return caps_resolve(sec->cap_add, sec->n_cap_add, sec->cap_drop, sec->n_cap_drop, caps, err);
}

static bool unmasked(const Quilt__V1__ContainerSpec *s) {
  return s->security && s->security->unmask_paths;
}

/* Warm sandboxes are built as the default security profile has it: masked
 * paths, and the seccomp filter installed before the exec record. */
static bool default_security(const Quilt__V1__ContainerSpec *s) {
  return !unmasked(s) && !(s->security && s->security->seccomp_unconfined);
}

static struct mount_policy policy_of(const struct quiltd *d) {
  return (struct mount_policy){.root_dir = d->cfg.root_dir,
                               .deny = d->cfg.mount_deny,
                               .n_deny = d->cfg.n_mount_deny};
}

static int validate_spec(struct quiltd *d, const Quilt__V1__ContainerSpec *s, struct qerr *err) {
  uint64_t caps;
  if (caps_of(s, &caps, err) < 0)
    return err->code;
#define BAD(...) return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, __VA_ARGS__)
  if (s->n_command > 0 && !s->command[0][0])
    BAD("empty command: argv[0] is an empty string");
  if (s->name[0] && !valid_name(s->name))
    BAD("invalid name \"%s\": use letters, digits, '_', '.', '-' (at most 128)", s->name);
  if (s->name[0])
    for (struct container *c = d->containers; c; c = c->next)
      if (strcmp(c->name, s->name) == 0)
        return qerr_status(err, GRPC_ALREADY_EXISTS, EEXIST,
                           "name \"%s\" is already used by container %.12s", s->name, c->id);
  if (s->hostname[0] && strlen(s->hostname) > 64)
    BAD("hostname \"%s\" is longer than 64 bytes", s->hostname);
  for (size_t i = 0; i < s->n_env; i++)
    if (!strchr(s->env[i], '=') || s->env[i][0] == '=')
      BAD("environment entry \"%s\": expected KEY=VALUE", s->env[i]);
  if (s->pids_limit < -1)
    BAD("pids limit %lld: use -1 (unlimited), 0 (default) or a positive number",
        (long long)s->pids_limit);
  if (s->memory_limit_mib > 0 && s->memory_limit_mib < 4)
    BAD("memory limit %llu MiB is below the 4 MiB minimum",
        (unsigned long long)s->memory_limit_mib);
  if (s->memory_limit_mib > (1ull << 40))
    BAD("memory limit %llu MiB is absurd", (unsigned long long)s->memory_limit_mib);
  if (s->cpu_limit_percent > 100 * 1024)
    BAD("cpu limit %u%% is above 102400%%", s->cpu_limit_percent);
  if (s->n_setup > 0 && validate_setup(d, s, err) < 0)
    return err->code;
  struct mount_policy pol = policy_of(d);
  if (mounts_validate(&pol, s->mounts, s->n_mounts, err) < 0)
    return err->code;
  if (s->n_mounts > 0 && s->namespaces && !s->namespaces->enable_all &&
      s->namespaces->disable_mount)
    BAD("mounts need the mount namespace");
  if (s->network_mode == QUILT__V1__NETWORK_MODE__NETWORK_MODE_BRIDGE && s->namespaces &&
      s->namespaces->disable_network)
    BAD("bridge networking needs the network namespace");
  return 0;
#undef BAD
}

static int ns_flags(const Quilt__V1__ContainerSpec *s) {
  int f = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
  const Quilt__V1__Namespaces *n = s->namespaces;
  if (n && n->enable_all)
    return f | CLONE_NEWCGROUP;
  if (n) {
    if (n->disable_pid) f &= ~CLONE_NEWPID;
    if (n->disable_mount) f &= ~CLONE_NEWNS;
    if (n->disable_uts) f &= ~CLONE_NEWUTS;
    if (n->disable_ipc) f &= ~CLONE_NEWIPC;
    if (n->disable_network) f &= ~CLONE_NEWNET;
    if (n->cgroup) f |= CLONE_NEWCGROUP;
    if (n->user) f |= CLONE_NEWUSER;
  }
  if (s->network_mode == QUILT__V1__NETWORK_MODE__NETWORK_MODE_HOST)
    f &= ~CLONE_NEWNET;
  return f;
}

/* Volumes are created on first use, as docker does; one made for a
 * user-namespaced container belongs to its root. */
static int ensure_volumes(struct quiltd *d, const Quilt__V1__ContainerSpec *s, struct qerr *err) {
  bool userns = ns_flags(s) & CLONE_NEWUSER;
  for (size_t i = 0; i < s->n_mounts; i++) {
    const Quilt__V1__Mount *m = s->mounts[i];
    if (strcmp(m->type, "volume") != 0)
      continue;
    int made = volume_create(d->cfg.root_dir, m->source, NULL, 0, true, err);
    char data[PATH_MAX];
    if (made < 0)
      return qerr_wrap(err, "mount on %s", m->target);
    if (made && userns &&
        (volume_data_path(d->cfg.root_dir, m->source, data, err) < 0 ||
         chown(data, d->cfg.userns_base, d->cfg.userns_base) < 0))
      return err->code ? err->code : qerr_errno(err, "chown %s", data);
  }
  return 0;
}

/* ------------------------------------------------------------ create */

int container_new_id(char out[65], struct qerr *err) {
  uint8_t raw[32];
  if (getrandom(raw, sizeof raw, 0) != sizeof raw)
    return qerr_errno(err, "getrandom");
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(out + 2 * i, 3, "%02x", raw[i]);
  return 0;
}

static void container_free(struct container *c) {
  if (c->netns_fd >= 0)
    close(c->netns_fd);
  if (c->mntns_fd >= 0)
    close(c->mntns_fd);
  if (c->spec)
    protobuf_c_message_free_unpacked(&c->spec->base, NULL);
  free(c->name);
  free(c->failure);
  free(c);
}

static struct container *container_alloc(struct quiltd *d, const Quilt__V1__ContainerSpec *spec,
                                         struct qerr *err) {
  struct container *c = calloc(1, sizeof *c);
  if (!c) {
    qerr_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  c->d = d;
  c->pidfd = c->status_fd = c->log_fd = c->netns_fd = c->mntns_fd = -1;
  c->out.fd = c->err.fd = -1;
  /* A private copy of the spec: the request is freed when the handler returns. */
  size_t len = protobuf_c_message_get_packed_size(&spec->base);
  cleanup_free uint8_t *buf = malloc(len ? len : 1);
  if (buf) {
    protobuf_c_message_pack(&spec->base, buf);
    c->spec = (Quilt__V1__ContainerSpec *)protobuf_c_message_unpack(
        &quilt__v1__container_spec__descriptor, NULL, len, buf);
  }
  c->name = strdup(spec->name ? spec->name : "");
  if (!c->spec || !c->name || container_new_id(c->id, err) < 0) {
    if (!err->code)
      qerr_set(err, ENOMEM, "out of memory");
    container_free(c);
    return NULL;
  }
  c->state = ST(CREATED);
  c->created_ns = clock_real_ns();
  snprintf(c->dir, sizeof c->dir, "%s/containers/%s", d->cfg.root_dir, c->id);
  return c;
}

static void link_container(struct quiltd *d, struct container *c) {
  c->next = d->containers;
  if (d->containers)
    d->containers->prev = c;
  d->containers = c;
  d->n_containers++;
}

static void unlink_container(struct quiltd *d, struct container *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    d->containers = c->next;
  if (c->next)
    c->next->prev = c->prev;
  d->n_containers--;
}

/* Lets the namespace's root (host gid `gid`) search every directory above
 * `path`: directories quiltd owns (under its root dir) get that group and
 * g+x; the image store keeps others out (its trees hold setuid programs).
 * Processes inside never see these paths: only the overlay mount, done
 * before pivot_root, walks them. Anything else must already be o+x. */
static int let_userns_through(struct quiltd *d, const char *path, gid_t gid, struct qerr *err) {
  char p[PATH_MAX + 2];
  size_t rlen = strlen(d->cfg.root_dir);
  snprintf(p, sizeof p, "%s", path);
  for (char *slash = strrchr(p, '/'); slash && slash != p; slash = strrchr(p, '/')) {
    *slash = 0;
    struct stat st;
    if (stat(p, &st) < 0 || (st.st_mode & S_IXOTH))
      continue;
    bool ours = strncmp(p, d->cfg.root_dir, rlen) == 0 && (p[rlen] == '/' || p[rlen] == 0);
    if (!ours)
      return qerr_status(err, GRPC_FAILED_PRECONDITION, EACCES,
                         "user namespaces need %s to be searchable by others (chmod o+x)", p);
    if ((st.st_gid != gid && chown(p, (uid_t)-1, gid) < 0) ||
        ((st.st_mode & S_IXGRP) == 0 && chmod(p, (st.st_mode & 07777) | S_IXGRP) < 0))
      return qerr_errno(err, "opening %s to user-namespaced containers", p);
  }
  return 0;
}

/* In a user namespace the container's root is an unprivileged host id:
 * its writable layer must belong to it, and the way to its layers be open. */
static int own_rootfs(struct container *c, const char *layer, struct qerr *err) {
  uid_t id = c->d->cfg.userns_base;
  if (chmod(layer, 0711) < 0)
    return qerr_errno(err, "chmod %s", layer);
  char probe[PATH_MAX + 2];
  snprintf(probe, sizeof probe, "%s/.", c->rootfs.overlay ? c->rootfs.lower : c->rootfs.merged);
  if (let_userns_through(c->d, layer, id, err) < 0 ||
      let_userns_through(c->d, probe, id, err) < 0)
    return err->code;
  if (!c->rootfs.overlay)
    return 0;
  const char *dirs[] = {c->rootfs.upper, c->rootfs.work, c->rootfs.merged};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (chown(dirs[i], id, id) < 0)
      return qerr_errno(err, "chown %s", dirs[i]);
  return 0;
}

/* Where the container's files come from: an image of the store (by tag,
 * id or prefix), a rootfs directory, or a tarball imported on the spot
 * (cached by digest). No image: the built-in one. */
int container_resolve_image(struct quiltd *d, const char *ref, char rootfs[PATH_MAX],
                            char image_id[65], struct qerr *err) {
  if (!ref[0] && d->cfg.default_rootfs)
    ref = d->cfg.default_rootfs;
  if (!ref[0])
    ref = DEFAULT_IMAGE_TAG;
  struct stat st;
  if (ref[0] == '/' && stat(ref, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(rootfs, PATH_MAX, "%s", ref);
    return 0;
  }
  if (!d->images)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ENOSYS,
                       "image \"%s\": the image store is not available", ref);
  struct image_info info = {0};
  bool cached;
  int rc = ref[0] == '/' ? image_import_file(d->images, ref, NULL, 0, &info, &cached, err)
                         : image_lookup(d->images, ref, &info, err);
  if (rc == 0) {
    snprintf(rootfs, PATH_MAX, "%s", info.rootfs);
    memcpy(image_id, info.id, 65);
  }
  image_info_free(&info);
  return rc;
}

static char **dup_strv(char *const *v, size_t n) {
  char **out = calloc(n + 1, sizeof *out);
  for (size_t i = 0; out && i < n; i++)
    if (!(out[i] = strdup(v[i]))) {
      while (i-- > 0)
        free(out[i]);
      free(out);
      return NULL;
    }
  return out;
}

static bool env_has_key(char *const *env, size_t n, const char *kv) {
  size_t klen = strcspn(kv, "=");
  for (size_t i = 0; i < n; i++)
    if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=')
      return true;
  return false;
}

/* The image's config fills what the spec leaves out: command (Entrypoint +
 * Cmd), environment (the spec's entries win), working directory, user. The
 * container's own spec copy records the result, so GetContainer shows
 * what actually runs. */
static int apply_image_config(struct container *c, struct qerr *err) {
  struct image_config cfg = {0};
  Quilt__V1__ContainerSpec *s = c->spec;
  if (image_config(c->d->images, c->image_id, &cfg, err) < 0)
    return err->code;
  int rc = 0;
  if (s->n_command == 0 && cfg.n_argv > 0) {
    char **argv = dup_strv(cfg.argv, cfg.n_argv);
    if (!argv)
      rc = qerr_set(err, ENOMEM, "out of memory");
    else {
      free(s->command);
      s->command = argv;
      s->n_command = cfg.n_argv;
    }
  }
  size_t extra = 0;
  for (size_t i = 0; i < cfg.n_env; i++)
    extra += !env_has_key(s->env, s->n_env, cfg.env[i]);
  char **env = rc == 0 && extra ? calloc(extra + s->n_env + 1, sizeof *env) : NULL;
  if (env) {
    size_t k = 0;
    for (size_t i = 0; i < cfg.n_env; i++)
      if (!env_has_key(s->env, s->n_env, cfg.env[i]))
        env[k++] = strdup(cfg.env[i]);
    for (size_t i = 0; i < s->n_env; i++)
      env[k++] = s->env[i]; /* moved, not copied */
    free(s->env);
    s->env = env;
    s->n_env = k;
  }
  if (rc == 0 && !s->working_dir[0] && cfg.workdir && cfg.workdir[0]) {
    if (s->working_dir != protobuf_c_empty_string)
      free(s->working_dir);
    s->working_dir = strdup(cfg.workdir);
  }
  if (rc == 0 && !s->user[0] && cfg.user && cfg.user[0]) {
    if (s->user != protobuf_c_empty_string)
      free(s->user);
    s->user = strdup(cfg.user);
  }
  image_config_free(&cfg);
  if (rc == 0 && (!s->working_dir || !s->user))
    rc = qerr_set(err, ENOMEM, "out of memory");
  return rc;
}

/* What the container runs: the image's defaults, and a command. */
static int prepare_command(struct container *c, struct qerr *err) {
  if (c->image_id[0] && apply_image_config(c, err) < 0)
    return err->code;
  if (c->spec->n_command == 0)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL,
                       "empty command: give the program to run (the image has no default)");
  return 0;
}

/* Its directory and rootfs view, and, in a user namespace, ownership the
 * mapped root can use. */
static int prepare_files(struct container *c, const char *rootfs, struct qerr *err) {
  /* A copy for a user namespace is owned by the ids root maps to. */
  bool userns = ns_flags(c->spec) & CLONE_NEWUSER;
  char layer[PATH_MAX];
  if (cdir_make(c->dir, err) < 0 || scratch_dir(&c->d->scratch, c->id, layer, err) < 0 ||
      mkdir_p(layer, 0700, err) < 0 ||
      rootfs_prepare_shifted(rootfs, layer, c->d->overlay ? ROOTFS_OVERLAY : ROOTFS_COPY,
                             userns ? c->d->cfg.userns_base : 0, &c->rootfs, err) < 0)
    return err->code;
  if (userns && own_rootfs(c, layer, err) < 0)
    return err->code;
  return 0;
}

void container_remove_files(struct quiltd *d, const char *id, const char *dir) {
  char layer[PATH_MAX];
  struct qerr err = QERR_INIT;
  if (janitor_recycle_dir(&d->janitor, dir, &err) < 0)
    log_warn("removing container %.12s: %s", id, err.msg);
  if (scratch_dir(&d->scratch, id, layer, &err) == 0 && strcmp(layer, dir) != 0 &&
      janitor_remove(&d->janitor, layer, &err) < 0)
    log_warn("removing container %.12s's layer: %s", id, err.msg);
}

/* A warm sandbox's files become the container's, under the sandbox's id. */
static void adopt_files(struct container *c, const struct warm *w) {
  memcpy(c->id, w->id, sizeof c->id);
  memcpy(c->dir, w->dir, sizeof c->dir);
  c->rootfs = w->rootfs;
}

static int start(struct container *c, struct warm *w, struct qerr *err);
static struct warm *take_sandbox(struct quiltd *d, struct container *c, const char *rootfs,
                                 struct warm *given);
static bool pool_lower(struct container *c, const char *rootfs, char lower[PATH_MAX],
                       char key[65]);

static void create_from(struct quiltd *d, struct grpc_call *call,
                        const Quilt__V1__CreateContainerRequest *req, const char *rootfs,
                        const char *image_id, struct warm *given, bool may_wait);

/* A CreateContainer waiting for its image archive to be imported. */
struct pending_create {
  struct quiltd *d;
  struct grpc_call *call;                    /* NULL once the client went away */
  Quilt__V1__CreateContainerRequest *req;    /* a copy: the call's is freed */
};

static void pending_cancelled(struct grpc_call *call, void *arg) {
  (void)call;
  ((struct pending_create *)arg)->call = NULL; /* the import goes on: it is cached */
}

/* A create that waited (for its image, or for a sandbox) goes on: its
 * spec is checked again, as a name may have been taken meanwhile. */
static void resume_create(struct quiltd *d, struct grpc_call *call,
                          const Quilt__V1__CreateContainerRequest *req, const char *rootfs,
                          const char *image_id, struct warm *given, bool may_wait) {
  struct qerr err = QERR_INIT;
  grpc_call_on_cancel(call, NULL, NULL);
  if (req->spec && validate_spec(d, req->spec, &err) < 0) {
    if (given)
      pool_return(&d->pool, given);
    grpc_call_fail(call, &err);
    return;
  }
  create_from(d, call, req, rootfs, image_id, given, may_wait);
}

static void on_image_imported(void *arg, const struct image_info *info, const struct qerr *err) {
  struct pending_create *pc = arg;
  if (pc->call && err) {
    grpc_call_on_cancel(pc->call, NULL, NULL);
    grpc_call_fail(pc->call, err);
  } else if (pc->call) {
    resume_create(pc->d, pc->call, pc->req, info->rootfs, info->id, NULL, true);
  }
  protobuf_c_message_free_unpacked(&pc->req->base, NULL);
  free(pc);
}

/* An archive named by path is imported on the ring, not while the loop
 * waits: the request is kept and goes on once the image is there. */
/* A request kept past its handler (the call's copy is freed then). */
static Quilt__V1__CreateContainerRequest *
copy_request(const Quilt__V1__CreateContainerRequest *req) {
  size_t len = protobuf_c_message_get_packed_size(&req->base);
  cleanup_free uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(&req->base, buf);
  return quilt__v1__create_container_request__unpack(NULL, len, buf);
}

static void create_after_import(struct quiltd *d, struct grpc_call *call,
                                const Quilt__V1__CreateContainerRequest *req) {
  struct pending_create *pc = calloc(1, sizeof *pc);
  if (pc)
    pc->req = copy_request(req);
  if (!pc || !pc->req) {
    free(pc);
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  *pc = (struct pending_create){.d = d, .call = call, .req = pc->req};
  grpc_call_on_cancel(call, pending_cancelled, pc);
  image_job_import_for(d, pc->req->spec->image, on_image_imported, pc);
}

static bool is_archive_path(const char *ref) {
  struct stat st;
  return ref[0] == '/' && stat(ref, &st) == 0 && S_ISREG(st.st_mode);
}

void container_create(struct quiltd *d, struct grpc_call *call,
                      const Quilt__V1__CreateContainerRequest *req) {
  struct qerr err = QERR_INIT;
  Quilt__V1__ContainerSpec empty = QUILT__V1__CONTAINER_SPEC__INIT;
  const Quilt__V1__ContainerSpec *spec = req->spec ? req->spec : &empty;
  if (validate_spec(d, spec, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  if (d->images && is_archive_path(spec->image)) {
    create_after_import(d, call, req);
    return;
  }
  char rootfs[PATH_MAX], image_id[65] = "";
  if (container_resolve_image(d, spec->image, rootfs, image_id, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  create_from(d, call, req, rootfs, image_id, NULL, true);
}

/* A CreateContainer (with start) that found no ready sandbox while one of
 * its rootfs was being built: it waits for that one rather than build its
 * own cold, which costs twice the CPU and blocks the loop meanwhile. */
struct sandbox_wait {
  struct pool_waiter pw;
  struct quiltd *d;
  struct grpc_call *call;
  Quilt__V1__CreateContainerRequest *req; /* a copy: the call's is freed */
  char rootfs[PATH_MAX];
  char image_id[65];
  struct qtimer late;
};

/* Far longer than a build (ms); a stuck one is not waited for. A request
 * on the zygote is given up on sooner (2 s), which ends the wait too. */
#define SANDBOX_WAIT_NS (3000ull * 1000000ull)

static void sandbox_wait_free(struct sandbox_wait *sw) {
  qtimer_cancel(&sw->d->timers, &sw->late);
  protobuf_c_message_free_unpacked(&sw->req->base, NULL);
  free(sw);
}

/* The create goes on, with w or cold. */
static void sandbox_wait_end(struct sandbox_wait *sw, struct warm *w) {
  resume_create(sw->d, sw->call, sw->req, sw->rootfs, sw->image_id, w, false);
  sandbox_wait_free(sw);
}

static void on_sandbox_ready(struct pool_waiter *pw, struct warm *w) {
  sandbox_wait_end(container_of(pw, struct sandbox_wait, pw), w);
}

static void on_sandbox_late(struct qtimer *t) {
  struct sandbox_wait *sw = container_of(t, struct sandbox_wait, late);
  pool_unwait(&sw->d->pool, &sw->pw);
  sandbox_wait_end(sw, NULL);
}

static void sandbox_wait_cancelled(struct grpc_call *call, void *arg) {
  (void)call;
  struct sandbox_wait *sw = arg;
  pool_unwait(&sw->d->pool, &sw->pw);
  sandbox_wait_free(sw);
}

/* True when the create was queued for a sandbox being built. */
static bool wait_for_sandbox(struct quiltd *d, struct grpc_call *call,
                             const Quilt__V1__CreateContainerRequest *req, const char *rootfs,
                             const char *image_id, const char *lower) {
  struct sandbox_wait *sw = calloc(1, sizeof *sw);
  if (!sw)
    return false;
  *sw = (struct sandbox_wait){.d = d, .call = call, .pw.fn = on_sandbox_ready};
  snprintf(sw->rootfs, sizeof sw->rootfs, "%s", rootfs);
  snprintf(sw->image_id, sizeof sw->image_id, "%s", image_id);
  if (!(sw->req = copy_request(req)) || !pool_wait(&d->pool, &sw->pw, image_id, lower)) {
    if (sw->req)
      protobuf_c_message_free_unpacked(&sw->req->base, NULL);
    free(sw);
    return false;
  }
  qtimer_after(&d->timers, &sw->late, SANDBOX_WAIT_NS, on_sandbox_late);
  grpc_call_on_cancel(call, sandbox_wait_cancelled, sw);
  return true;
}

/* The rest of a create, once the image is known. */
static void create_from(struct quiltd *d, struct grpc_call *call,
                        const Quilt__V1__CreateContainerRequest *req, const char *rootfs,
                        const char *image_id, struct warm *given, bool may_wait) {
  struct qerr err = QERR_INIT;
  Quilt__V1__ContainerSpec empty = QUILT__V1__CONTAINER_SPEC__INIT;
  const Quilt__V1__ContainerSpec *spec = req->spec ? req->spec : &empty;
  struct container *c = ensure_volumes(d, spec, &err) == 0 ? container_alloc(d, spec, &err) : NULL;
  if (!c) {
    if (given)
      pool_return(&d->pool, given);
    grpc_call_fail(call, &err);
    return;
  }
  snprintf(c->image_id, sizeof c->image_id, "%s", image_id);
  struct warm *w = NULL;
  char lower[PATH_MAX], key[65];
  int rc = prepare_command(c, &err);
  /* Another security profile, or mounts of its own: not a pool sandbox. */
  if (rc == 0 && default_security(spec) && spec->n_mounts == 0 &&
      pool_lower(c, rootfs, lower, key)) {
    w = take_sandbox(d, c, lower, take_ptr(given));
    if (!w && may_wait && !req->no_start && ns_flags(spec) == POOL_NS_FLAGS &&
        wait_for_sandbox(d, call, req, rootfs, image_id, lower)) {
      container_free(c);
      return;
    }
  }
  if (given)
    pool_return(&d->pool, given);
  if (w) {
    adopt_files(c, w);
    snprintf(c->setup_key, sizeof c->setup_key, "%s", key); /* its layer is mounted */
  } else if (rc == 0)
    rc = prepare_files(c, rootfs, &err);
  if (rc < 0) {
    container_remove_files(d, c->id, c->dir); /* whatever prepare_files got to make */
    container_free(c);
    grpc_call_fail(call, &err);
    return;
  }
  link_container(d, c);
  persist(c);
  publish(c, EV(CREATED), NULL);
  if (req->no_start) {
    c->warm = w; /* waits, built, for StartContainer */
    reply_container(call, c, W_START);
    return;
  }
  if (add_waiter(c, call, W_START) < 0) {
    if (w)
      pool_discard(&d->pool, w);
    return;
  }
  if (start(c, w, &err) < 0)
    wake(c, 1u << W_START, &err);
}

/* ------------------------------------------------------------ start */

/* NULL-terminated env: defaults, then the spec's entries replacing them. */
static char **build_env(const struct container *c, const char *hostname) {
  const Quilt__V1__ContainerSpec *s = c->spec;
  size_t n = 4 + s->n_env + 1;
  char **env = calloc(n, sizeof *env);
  if (!env)
    return NULL;
  size_t k = 0;
  char host[128];
  snprintf(host, sizeof host, "HOSTNAME=%s", hostname);
  const char *defaults[] = {"PATH=" DEFAULT_PATH, "HOME=/root", "TERM=xterm", host};
  for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
    size_t klen = strchr(defaults[i], '=') - defaults[i] + 1;
    bool overridden = false;
    for (size_t j = 0; j < s->n_env; j++)
      overridden |= strncmp(s->env[j], defaults[i], klen) == 0;
    if (!overridden)
      env[k++] = strdup(defaults[i]);
  }
  for (size_t j = 0; j < s->n_env; j++)
    env[k++] = strdup(s->env[j]);
  return env;
}

static void free_env(char **env) {
  for (char **e = env; e && *e; e++)
    free(*e);
  free(env);
}

static struct cgroup_limits limits_of(const struct quiltd *d, const Quilt__V1__ContainerSpec *s) {
  uint64_t mib = s->memory_limit_mib ? s->memory_limit_mib : (uint64_t)d->cfg.default_memory_mib;
  return (struct cgroup_limits){
      .memory_bytes = mib * 1024 * 1024,
      .cpu_percent = s->cpu_limit_percent,
      .pids = s->pids_limit == 0 ? DEFAULT_PIDS_LIMIT : s->pids_limit,
  };
}

struct cgroup_limits container_default_limits(const struct quiltd *d) {
  Quilt__V1__ContainerSpec none = QUILT__V1__CONTAINER_SPEC__INIT;
  return limits_of(d, &none);
}

static void arm_status(struct container *c) {
  struct io_uring_sqe *sqe = qring_sqe(&c->d->ring);
  io_uring_prep_read(sqe, c->status_fd, c->status_buf, sizeof c->status_buf, 0);
  qop_bind(sqe, &c->status_op);
  c->busy = true;
}

/* In a user namespace the image (the last lower layer; setup layers were
 * written through the namespace and are owned right already) is seen
 * through an ID mapping: an idmapped tree attached at <layer dir>/lower, or a
 * copy with shifted owners. Fills sb's lower and, for a tree, its fd. */
static int userns_lower(struct container *c, const struct rootfs_view *view,
                        struct spawn_sandbox *sb, char lower[PATH_MAX], char at[PATH_MAX],
                        struct qerr *err) {
  const char *image = strrchr(view->lower, ':');
  image = image ? image + 1 : view->lower;
  size_t prefix = (size_t)(image - view->lower);
  char copy[PATH_MAX];
  if (idmap_lower(&c->d->idmap, image, &sb->lower_tree_fd, copy, err) < 0)
    return err->code;
  if (sb->lower_tree_fd >= 0) {
    char layer[PATH_MAX];
    if (scratch_dir(&c->d->scratch, c->id, layer, err) < 0)
      return err->code;
    if (snprintf(at, PATH_MAX, "%s/lower", layer) >= PATH_MAX)
      return qerr_set(err, ENAMETOOLONG, "path too long under %s", layer);
    if (mkdir(at, 0755) < 0 && errno != EEXIST)
      return qerr_errno(err, "mkdir %s", at);
    sb->lower_tree_at = at;
  }
  if (snprintf(lower, PATH_MAX, "%.*s%s", (int)prefix, view->lower,
               sb->lower_tree_fd >= 0 ? at : copy) >= PATH_MAX)
    return qerr_set(err, ENAMETOOLONG, "overlay lowerdir too long");
  sb->overlay_lower = lower;
  return 0;
}

/* Cold: a sandbox built for this container alone over `view`, with its
 * cgroup (made here unless there) and log pipes. *res is filled as soon as
 * the child exists, even if a later step fails. */
static int spawn_cold(struct container *c, const struct rootfs_view *view, int ns, int clone_ns,
                      const struct mount_plan *plan, struct spawn_result *res,
                      struct qerr *err) {
  struct quiltd *d = c->d;
  struct cgroup_limits lim = limits_of(c->d, c->spec);
  struct spawn_sandbox sb = {
      .rootfs = view->merged,
      .overlay_lower = view->overlay ? view->lower : NULL,
      .overlay_upper = view->upper,
      .overlay_work = view->work,
      .lower_tree_fd = -1,
      .rootfs_writable = view->overlay || view->copied,
      .ns_flags = ns,
      .clone_ns = clone_ns,
      .userns_base = d->cfg.userns_base,
      .userns_count = d->cfg.userns_count,
      .cgroup_fd = -1,
      .netns_fd = -1,
      .close_in_child = -1,
      .stdio = {-1, -1, -1},
      .unmasked = unmasked(c->spec),
      .seccomp = &d->seccomp,
      .mounts = plan ? plan->m : NULL,
      .n_mounts = plan ? plan->n : 0,
  };
  res->pid = 0;
  char lower[PATH_MAX], at[PATH_MAX];
  if ((ns & CLONE_NEWUSER) && view->overlay && userns_lower(c, view, &sb, lower, at, err) < 0) {
    if (sb.lower_tree_fd >= 0)
      close(sb.lower_tree_fd);
    return err->code;
  }
  int rc = d->cgm && !c->cg ? cgroup_create(d->cgm, c->id, &lim, &c->cg, err) : 0;
  if (rc == 0)
    rc = logs_open(c, sb.stdio + 1, err);
  if (rc == 0 && (sb.stdio[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    rc = qerr_errno(err, "opening /dev/null");
  sb.cgroup_fd = c->cg ? cgroup_fd(c->cg) : -1;
  /* v2: CLONE_INTO_CGROUP; v1: the child joins by itself. */
  int n = rc == 0 && c->cg && sb.cgroup_fd < 0
              ? cgroup_procs_fds(c->cg, sb.cgroup_procs, SPAWN_MAX_CGROUP_FDS, err)
              : 0;
  if (rc == 0 && n < 0)
    rc = n;
  sb.n_cgroup_procs = n > 0 ? (size_t)n : 0;
  if (rc == 0 && (rc = spawn_sandbox(&sb, res, err)) == 0 && (ns & CLONE_NEWUSER) &&
      (spawn_map_ids(res->pid, sb.userns_base, sb.userns_count, err) < 0 ||
       spawn_release(res->ctl_fd, err) < 0))
    rc = err->code;
  for (size_t i = 0; i < sb.n_cgroup_procs; i++)
    close(sb.cgroup_procs[i]);
  for (int i = 0; i < 3; i++)
    if (sb.stdio[i] >= 0)
      close(sb.stdio[i]);
  if (sb.lower_tree_fd >= 0)
    close(sb.lower_tree_fd);
  return rc;
}

static int bridged(const Quilt__V1__NetworkMode m) {
  return m == QUILT__V1__NETWORK_MODE__NETWORK_MODE_BRIDGE;
}

/* Its volumes, made again if removed (force) since the create; in a user
 * namespace the child opens them by path as the namespace's root. */
static int open_volumes(struct container *c, struct qerr *err) {
  char data[PATH_MAX + 2];
  if (ensure_volumes(c->d, c->spec, err) < 0)
    return err->code;
  if (!(ns_flags(c->spec) & CLONE_NEWUSER))
    return 0;
  for (size_t i = 0; i < c->spec->n_mounts; i++)
    if (strcmp(c->spec->mounts[i]->type, "volume") == 0 &&
        (volume_data_path(c->d->cfg.root_dir, c->spec->mounts[i]->source, data, err) < 0 ||
         let_userns_through(c->d, strcat(data, "/."), c->d->cfg.userns_base, err) < 0))
      return err->code;
  return 0;
}

/* The container's own cold sandbox. */
static int start_cold(struct container *c, int *ctl_fd, struct qerr *err) {
  struct spawn_result res = {.pid = 0};
  if (open_volumes(c, err) < 0)
    return err->code;
  /* Checked again: a source may have become a symlink to a denied path. */
  struct mount_policy pol = policy_of(c->d);
  cleanup_free struct mount_plan *plan = c->spec->n_mounts ? malloc(sizeof *plan) : NULL;
  if (c->spec->n_mounts && !plan)
    return qerr_set(err, ENOMEM, "out of memory");
  if (plan && mounts_plan(&pol, c->spec->mounts, c->spec->n_mounts, plan, err) < 0)
    return err->code;
  /* A bridge is attached right after the clone: its namespace must exist. */
  int rc = spawn_cold(c, &c->rootfs, ns_flags(c->spec),
                      bridged(c->spec->network_mode) ? CLONE_NEWNET : 0, plan, &res, err);
  if (res.pid > 0) {
    c->pid = res.pid;
    c->pidfd = res.pidfd;
    c->status_fd = res.status_fd;
    *ctl_fd = res.ctl_fd;
  }
  return rc;
}

/* Warm: the pool built the sandbox; the container takes its process,
 * cgroup (limits already applied) and pipes. */
/* A pool sandbox's network namespace can serve another one after this
 * container, unless it can reconfigure it (pool.h). Opened now: an exited
 * process has none any more. */
/* An fd on a namespace of pid ("net", "mnt"); -1 and errno. */
static int open_ns(pid_t pid, const char *name) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
  return open(path, O_RDONLY | O_CLOEXEC);
}

static void keep_netns(struct container *c) {
  uint64_t caps = 0;
  struct qerr ignore = QERR_INIT;
  const uint64_t admin = 1ull << CAP_NET_ADMIN | 1ull << CAP_SYS_ADMIN;
  if (!c->cg || bridged(c->spec->network_mode) || caps_of(c->spec, &caps, &ignore) < 0 ||
      (caps & admin))
    return;
  c->netns_fd = open_ns(c->pid, "net");
}

/* An auto-remove container's mount namespace is held until its exit has
 * been answered, then released by the janitor: unmounting its twenty-odd
 * mounts (and the overlay's teardown, with its RCU waits) otherwise runs
 * in the exiting process, before its parent hears of the exit: ~0.3 ms of
 * every WaitContainer. Only auto-remove ones: a stopped container's files
 * may be copied out or started again, which mounts its upper and work
 * dirs anew, and the kernel refuses that while the old overlay lives. */
static void hold_mntns(struct container *c) {
  if (!c->spec->auto_remove)
    return;
  c->mntns_fd = open_ns(c->pid, "mnt");
}

static int adopt_sandbox(struct container *c, struct warm *w, int *ctl_fd, struct qerr *err) {
  c->cg = take_ptr(w->cg);
  c->pid = w->proc.pid;
  keep_netns(c);
  hold_mntns(c);
  c->pidfd = take_fd(&w->proc.pidfd);
  c->status_fd = take_fd(&w->proc.status_fd);
  *ctl_fd = take_fd(&w->proc.ctl_fd);
  c->log_fd = take_fd(&w->log_fd); /* the pool opened it: -1 if not */
  int rc = logs_adopt(c, w->pipes, err);
  free(w);
  return rc;
}

/* A ready sandbox for c, with c's limits, or NULL: start cold. */
static struct warm *take_sandbox(struct quiltd *d, struct container *c, const char *rootfs,
                                 struct warm *given) {
  /* A container of the default image tells the pool what that is now (a
   * tag can move to another image). */
  if (!c->spec->image[0])
    pool_default_is(&d->pool, c->image_id, rootfs);
  struct warm *w = given;
  if (w && (strcmp(w->image_id, c->image_id) != 0 || strcmp(w->rootfs.lower, rootfs) != 0)) {
    pool_return(&d->pool, w); /* its view changed while it waited */
    w = NULL;
  }
  if (!given)
    w = pool_take(&d->pool, c->image_id, rootfs, ns_flags(c->spec));
  struct cgroup_limits lim = limits_of(c->d, c->spec);
  struct qerr err = QERR_INIT;
  bool as_built = w && lim.memory_bytes == w->limits.memory_bytes &&
                  lim.cpu_percent == w->limits.cpu_percent && lim.pids == w->limits.pids;
  if (w && w->cg && !as_built && cgroup_apply(w->cg, &lim, &err) < 0) {
    log_info("warm sandbox %.12s refused the limits (%s): starting cold", w->id, err.msg);
    pool_discard(&d->pool, w);
    return NULL;
  }
  return w;
}

/* The bridge opens with the first container that asks for it. */
static struct netbridge *bridge_of(struct quiltd *d, struct qerr *err) {
  if (d->net)
    return d->net;
  struct netbridge_config cfg = {.bridge = d->cfg.bridge_name,
                                 .subnet = d->cfg.bridge_subnet,
                                 .dns = d->cfg.bridge_dns};
  if (netbridge_open(&d->net, &cfg, err) < 0)
    return NULL;
  struct qerr ignore = QERR_INIT;
  netbridge_sweep(d->net, &ignore); /* veths a crashed daemon left */
  return d->net;
}

/* Bridge networking: eth0 in the sandbox's namespace, before its command
 * runs; resolv gets the text of its /etc/resolv.conf. */
static int attach_bridge(struct container *c, pid_t pid, char *resolv, size_t cap,
                         struct qerr *err) {
  struct netbridge *net = bridge_of(c->d, err);
  if (!net)
    return err->code;
  cleanup_fd int fd = open_ns(pid, "net");
  if (fd < 0)
    return qerr_errno(err, "opening the network namespace of container %.12s", c->id);
  struct net_lease lease;
  if (netbridge_attach(net, c->id, fd, &lease, err) < 0)
    return err->code;
  snprintf(c->ip, sizeof c->ip, "%s", lease.addr);
  if (netbridge_resolv_conf(net, resolv, cap) < 0)
    resolv[0] = 0;
  return 0;
}

static void detach_bridge(struct container *c) {
  struct qerr err = QERR_INIT;
  if (c->ip[0] && c->d->net && netbridge_detach(c->d->net, c->id, &err) < 0)
    log_warn("container %.12s: %s", c->id, err.msg);
  c->ip[0] = 0;
}

static int send_exec(struct container *c, int ctl_fd, char **env, const char *hostname,
                     const char *resolv, struct qerr *err) {
  const Quilt__V1__ContainerSpec *s = c->spec;
  /* protobuf-c's repeated strings are not NULL-terminated; execve needs it. */
  cleanup_free char **argv = calloc(s->n_command + 1, sizeof *argv);
  if (!argv) {
    close(ctl_fd);
    return qerr_set(err, ENOMEM, "out of memory");
  }
  memcpy(argv, s->command, s->n_command * sizeof *argv);
  struct spawn_exec ex = {.argv = argv, .env = env, .cwd = s->working_dir,
                          .hostname = hostname, .user = s->user, .resolv_conf = resolv};
  if (s->security && s->security->seccomp_unconfined)
    ex.flags |= SPAWN_SECCOMP_UNCONFINED;
  if (caps_of(s, &ex.caps, err) < 0) { /* validated at create: only a stored spec */
    close(ctl_fd);
    return err->code;
  }
  return spawn_send_exec(ctl_fd, &ex, err);
}

/* Nothing was started: undo and record why. */
static void start_failed(struct container *c, const struct qerr *err) {
  logs_close(c);
  if (c->cg) {
    struct qerr ignore = QERR_INIT;
    cgroup_destroy(c->cg, &ignore);
    c->cg = NULL;
  }
  log_info("container %.12s failed to start: %s", c->id, err->msg);
  c->state = ST(FAILED);
  c->failure = strdup(err->msg);
  c->finished_ns = clock_real_ns();
  persist(c);
  publish(c, EV(FAILED), err->msg);
}

/* ------------------------------------------------------------ setup run */

static void layer_path(const struct quiltd *d, const char *key, char out[PATH_MAX]) {
  snprintf(out, PATH_MAX, "%s/layers/%s", d->cfg.root_dir, key);
}

/* The container runs on image + layer from now on. */
static void apply_layer(struct container *c, const char *key) {
  char layer[PATH_MAX], lower[PATH_MAX];
  layer_path(c->d, key, layer);
  if (snprintf(lower, sizeof lower, "%s:%s", layer, c->rootfs.lower) < (int)sizeof lower)
    memcpy(c->rootfs.lower, lower, sizeof lower);
  snprintf(c->setup_key, sizeof c->setup_key, "%s", key);
}

/* The cache key of c's steps (c has some). */
static int setup_key_of(struct container *c, char key[65], struct qerr *err) {
  const Quilt__V1__ContainerSpec *s = c->spec;
  if (!c->image_id[0])
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EINVAL,
                       "setup steps need an image of the store: their layer is kept per image");
  struct setup_step *steps;
  struct setup_config cfg;
  setup_config_of(c->d, s, &cfg);
  if (parse_steps(s, &steps, err) < 0)
    return err->code;
  /* Files a user-namespaced setup writes are owned by shifted ids: its
   * layer is of no use to other containers, nor theirs to it. */
  char base[96];
  snprintf(base, sizeof base, "%s%s", c->image_id,
           ns_flags(s) & CLONE_NEWUSER ? ":userns" : "");
  int rc = setup_cache_key(base, steps, s->n_setup, &cfg, key, err);
  free_steps(steps, s->n_setup);
  return rc;
}

static bool layer_present(const struct quiltd *d, const char *key) {
  char layer[PATH_MAX];
  struct stat st;
  layer_path(d, key, layer);
  return stat(layer, &st) == 0;
}

static void setup_reused(struct container *c, const char *key) {
  c->setup_reused = true;
  char detail[80];
  snprintf(detail, sizeof detail, "reused %s", key);
  publish(c, EV(SETUP_DONE), detail);
}

/* 1: no steps, or their layer is there (applied); 0: they must run, with
 * key filled; <0: error. */
static int setup_lookup(struct container *c, char key[65], struct qerr *err) {
  if (c->spec->n_setup == 0 || c->setup_key[0])
    return 1;
  if (setup_key_of(c, key, err) < 0)
    return err->code;
  if (!layer_present(c->d, key))
    return 0;
  apply_layer(c, key);
  setup_reused(c, key);
  return 1;
}

/* The rootfs a pooled sandbox of c must have: the image's, under the
 * layer of c's steps when that is cached; false when steps must run. */
static bool pool_lower(struct container *c, const char *rootfs, char lower[PATH_MAX],
                       char key[65]) {
  key[0] = 0;
  if (c->spec->n_setup == 0)
    return snprintf(lower, PATH_MAX, "%s", rootfs) < PATH_MAX;
  struct qerr ignore = QERR_INIT; /* start() says it again, as a status */
  char layer[PATH_MAX];
  if (setup_key_of(c, key, &ignore) < 0 || !layer_present(c->d, key))
    return false;
  layer_path(c->d, key, layer);
  return snprintf(lower, PATH_MAX, "%s:%s", layer, rootfs) < PATH_MAX;
}

/* The script goes into the setup sandbox's upper layer, removed again
 * before that layer is kept: a command line could not hold a long one. */
static int write_script(struct container *c, const struct setup_run *run, struct qerr *err) {
  struct setup_step *steps;
  struct setup_config cfg;
  struct strbuf b = STRBUF_INIT;
  setup_config_of(c->d, c->spec, &cfg);
  if (parse_steps(c->spec, &steps, err) < 0)
    return err->code;
  int rc = setup_script(steps, c->spec->n_setup, &cfg, &b, err);
  free_steps(steps, c->spec->n_setup);
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/.quilt-setup", run->view.upper);
  if (rc == 0)
    rc = write_file(path, b.data, b.len, err);
  strbuf_free(&b);
  return rc;
}

static int setup_ns(const struct container *c, int *clone_ns) {
  int ns = ns_flags(c->spec);
  Quilt__V1__NetworkMode m = c->spec->setup_network;
  if (m == QUILT__V1__NETWORK_MODE__NETWORK_MODE_UNSPECIFIED)
    m = c->spec->network_mode;
  *clone_ns = bridged(m) ? CLONE_NEWNET : 0;
  if (m == QUILT__V1__NETWORK_MODE__NETWORK_MODE_HOST)
    return ns & ~CLONE_NEWNET;
  return ns | CLONE_NEWNET;
}

static void on_setup_exit(struct qpidwait *w, const siginfo_t *si, int err);

/* Sends the sandbox its command: sh running the script, as root, with a
 * fixed environment (the cache key covers nothing else). */
static int setup_exec(struct container *c, struct setup_run *run, int ctl_fd, bool bridge,
                      struct qerr *err) {
  char resolv[1024] = "";
  int rc = 0;
  if (bridge)
    rc = attach_bridge(c, run->pid, resolv, sizeof resolv, err);
  else if (c->spec->setup_network == QUILT__V1__NETWORK_MODE__NETWORK_MODE_HOST ||
           c->spec->network_mode == QUILT__V1__NETWORK_MODE__NETWORK_MODE_HOST) {
    cleanup_fd int fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, resolv, sizeof resolv - 1) : -1;
    resolv[n > 0 ? n : 0] = 0;
  }
  if (rc < 0) {
    close(ctl_fd);
    return rc;
  }
  char *argv[] = {"/bin/sh", "/.quilt-setup", NULL};
  char *env[] = {"PATH=" DEFAULT_PATH, "HOME=/root", "TERM=xterm", NULL};
  struct spawn_exec ex = {.argv = argv, .env = env, .cwd = "/", .hostname = c->id,
                          .user = "", .resolv_conf = resolv, .caps = CAPS_DEFAULT};
  return spawn_send_exec(ctl_fd, &ex, err);
}

/* Starts the steps; the container's start goes on when they are done. */
static int setup_launch(struct container *c, const char *key, struct qerr *err) {
  struct setup_run *run = calloc(1, sizeof *run);
  if (!run)
    return qerr_set(err, ENOMEM, "out of memory");
  *run = (struct setup_run){.d = c->d, .c = c, .pidfd = -1, .status_fd = -1};
  snprintf(run->key, sizeof run->key, "%s", key);
  snprintf(run->dir, sizeof run->dir, "%s/setup", c->dir);
  c->setup = run;
  int clone_ns, ns = setup_ns(c, &clone_ns);
  struct spawn_result res = {0};
  int rc = mkdir_p(run->dir, 0700, err);
  if (rc == 0)
    rc = rootfs_prepare(c->rootfs.lower, run->dir, ROOTFS_OVERLAY, &run->view, err);
  if (rc == 0)
    rc = write_script(c, run, err);
  if (rc == 0)
    rc = spawn_cold(c, &run->view, ns, clone_ns, NULL, &res, err);
  c->out.stream = c->err.stream = LOG_SETUP;
  if (res.pid > 0) {
    run->pid = res.pid;
    run->pidfd = res.pidfd;
    run->status_fd = res.status_fd;
    int e = rc == 0 ? setup_exec(c, run, res.ctl_fd, clone_ns != 0, err) : (close(res.ctl_fd), rc);
    /* Started or not, the child ends: its exit finishes the setup. */
    run->failed_to_start = e < 0;
    if (e < 0)
      snprintf(run->why, sizeof run->why, "%s", err->msg);
    qpidwait_arm(&run->wait, &c->d->ring, run->pidfd, on_setup_exit);
    logs_start(c);
    c->busy = true;
    publish(c, EV(SETUP_STARTED), key);
    return 0;
  }
  c->setup = NULL;
  struct qerr ignore = QERR_INIT;
  rm_rf(run->dir, &ignore);
  free(run);
  return rc;
}

/* The layer goes into the store of layers; another container may have
 * stored the same one meanwhile: then that one is used. */
static int commit_layer(struct container *c, struct setup_run *run, struct qerr *err) {
  char layer[PATH_MAX], script[PATH_MAX + 16];
  snprintf(script, sizeof script, "%s/.quilt-setup", run->view.upper);
  unlink(script);
  layer_path(c->d, run->key, layer);
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/layers", c->d->cfg.root_dir);
  if (mkdir_p(dir, 0700, err) < 0)
    return err->code;
  if (rename(run->view.upper, layer) < 0 && errno != EEXIST && errno != ENOTEMPTY)
    return qerr_errno(err, "keeping the setup layer %s", layer);
  apply_layer(c, run->key);
  publish(c, EV(SETUP_DONE), run->key);
  return 0;
}

/* "setup step 2/3 (pip: flask) failed with exit code 1: <last lines>",
 * from what the script wrote to the log. */
static void failure_text(struct container *c, int code, struct qerr *err) {
  char path[PATH_MAX + 8], buf[4096], step[256] = "", lines[5][200] = {{0}};
  snprintf(path, sizeof path, "%s/log", c->dir);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  ssize_t n = fd >= 0 && fstat(fd, &st) == 0
                  ? pread(fd, buf, sizeof buf - 1, st.st_size > 4095 ? st.st_size - 4095 : 0)
                  : 0;
  buf[n > 0 ? n : 0] = 0;
  unsigned k = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char *text = line; /* "<time> <stream> <F|P> <text>" */
    for (int i = 0; i < 3 && text; i++)
      text = strchr(text, ' ') ? strchr(text, ' ') + 1 : NULL;
    if (!text)
      continue;
    if (strncmp(text, "quilt-setup: step ", 18) == 0 && !strstr(text, " failed: exit code"))
      snprintf(step, sizeof step, "%s", text + 13);
    snprintf(lines[k++ % 5], sizeof lines[0], "%s", text);
  }
  char tail[1100] = "";
  for (unsigned i = k > 5 ? k - 5 : 0; i < k; i++)
    snprintf(tail + strlen(tail), sizeof tail - strlen(tail), "%s%s", tail[0] ? " | " : "",
             lines[i % 5]);
  qerr_status(err, GRPC_FAILED_PRECONDITION, EIO, "setup %s failed with exit code %d: %s",
              step[0] ? step : "script", code, tail[0] ? tail : "(no output)");
}

/* The steps ended and their output is in the log: keep the layer and
 * start the command, or fail the container with why. */
static void setup_end(struct container *c) {
  struct setup_run *run = c->setup;
  struct qerr err = QERR_INIT;
  c->setup = NULL;
  c->busy = false;
  detach_bridge(c);
  char buf[sizeof(struct spawn_failure)];
  ssize_t n = run->status_fd >= 0 ? read(run->status_fd, buf, sizeof buf) : 0;
  int rc;
  if (run->failed_to_start)
    rc = qerr_status(&err, GRPC_FAILED_PRECONDITION, EIO, "starting the setup steps: %s",
                     run->why);
  else if (n > 0)
    rc = spawn_parse_failure(buf, (size_t)n, &err);
  else if (run->exit_code != 0) {
    failure_text(c, run->exit_code, &err);
    rc = err.code;
  } else
    rc = commit_layer(c, run, &err);
  if (run->status_fd >= 0)
    close(run->status_fd);
  struct qerr ignore = QERR_INIT;
  janitor_remove(&c->d->janitor, run->dir, &ignore);
  free(run);
  if (rc == 0 && start(c, NULL, &err) == 0)
    return;
  if (rc < 0) {
    logs_note(c, err.msg);
    start_failed(c, &err);
  }
  wake(c, 1u << W_START, &err);
  maybe_finish(c);
}

static void on_setup_exit(struct qpidwait *w, const siginfo_t *si, int err) {
  struct setup_run *run = container_of(w, struct setup_run, wait);
  struct container *c = run->c;
  (void)err;
  close(run->pidfd);
  run->pidfd = -1;
  run->exited = true;
  run->exit_code = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
  if (logs_drained(c))
    setup_end(c);
}

static int start(struct container *c, struct warm *w, struct qerr *err) {
  char sid[13], hostname[72], key[65];
  const Quilt__V1__ContainerSpec *s = c->spec;
  int need = w ? 1 : setup_lookup(c, key, err);
  if (w && c->setup_key[0])
    setup_reused(c, c->setup_key);
  if (need == 0 && (need = setup_launch(c, key, err)) == 0)
    return 0; /* the steps run; the start goes on when they are done */
  if (need < 0) {
    start_failed(c, err);
    return need;
  }
  snprintf(hostname, sizeof hostname, "%s",
           s->hostname[0] ? s->hostname : c->name[0] ? c->name : short_id(c, sid));
  char **env = build_env(c, hostname);
  int ctl_fd = -1, rc = 0;
  if (!env) {
    rc = qerr_set(err, ENOMEM, "out of memory");
    if (w)
      pool_discard(&c->d->pool, w);
  } else {
    rc = w ? adopt_sandbox(c, w, &ctl_fd, err) : start_cold(c, &ctl_fd, err);
  }
  char resolv[1024] = "";
  if (rc == 0 && s->network_mode == QUILT__V1__NETWORK_MODE__NETWORK_MODE_BRIDGE)
    rc = attach_bridge(c, c->pid, resolv, sizeof resolv, err);
  if (rc == 0)
    rc = send_exec(c, take_fd(&ctl_fd), env, hostname, resolv, err);
  if (ctl_fd >= 0)
    close(ctl_fd); /* a child left waiting reads EOF and gives up */
  free_env(env);
  c->status_op.fn = on_status;
  if (rc < 0 && c->pid > 0) {
    /* The child exists: it reports a failure on the status pipe; keep the
     * real reason for the record. */
    c->failure = strdup(err->msg);
    rc = 0;
  }
  if (rc < 0) {
    start_failed(c, err);
    return rc;
  }
  logs_start(c);
  if (c->setup_reused) {
    char note[96];
    snprintf(note, sizeof note, "reused layer %s", c->setup_key);
    logs_setup_note(c, note);
  }
  arm_status(c); /* a failure shows up as a failure record or EOF + exit */
  return 0;
}

void container_start_rpc(struct quiltd *d, struct grpc_call *call, struct container *c) {
  (void)d;
  if (c->state != ST(CREATED) || c->pid > 0) {
    grpc_call_finish(call, GRPC_FAILED_PRECONDITION, "container %.12s was already started",
                     c->id);
    return;
  }
  /* Its overlay is mounted by the copy: a second mount of the same upper
   * and work dirs is refused by the kernel, or worse. */
  if (copy_holds_rootfs(c)) {
    grpc_call_finish(call, GRPC_UNAVAILABLE,
                     "container %.12s: a copy from its filesystem is in progress; start it "
                     "once that ends", c->id);
    return;
  }
  if (add_waiter(c, call, W_START) < 0)
    return;
  struct qerr err = QERR_INIT;
  if (start(c, take_ptr(c->warm), &err) < 0)
    wake(c, 1u << W_START, &err);
}

/* ------------------------------------------------------------ running */

static void on_exit_wait(struct qpidwait *w, const siginfo_t *si, int err);

static void arm_wait(struct container *c) {
  qpidwait_arm(&c->exit_wait, &c->d->ring, c->pidfd, on_exit_wait);
  c->busy = true;
}

static void on_status(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct container *c = container_of(op, struct container, status_op);
  close(c->status_fd);
  c->status_fd = -1;
  arm_wait(c);
  if (res == 0) {
    c->state = ST(RUNNING);
    c->started_ns = clock_real_ns();
    persist(c);
    publish(c, EV(STARTED), NULL);
    wake(c, 1u << W_START, NULL);
    return;
  }
  struct qerr err = QERR_INIT;
  if (res < 0)
    qerr_set(&err, res, "reading the container's start status: %s", strerror(-res));
  else
    spawn_parse_failure(c->status_buf, (size_t)res, &err);
  if (c->failure) /* the daemon's own reason beats the child's "abandoned" */
    qerr_status(&err, GRPC_INTERNAL, EIO, "%s", c->failure);
  log_info("container %.12s failed to start: %s", c->id, err.msg);
  c->state = ST(FAILED);
  free(c->failure);
  c->failure = strdup(err.msg);
  c->finished_ns = clock_real_ns();
  logs_note(c, err.msg);
  persist(c);
  publish(c, EV(FAILED), err.msg);
  wake(c, 1u << W_START, &err);
}

static void record_exit(struct container *c, const siginfo_t *si) {
  if (si->si_code == CLD_EXITED) {
    c->exit_code = si->si_status;
  } else {
    c->exit_signal = si->si_status;
    c->exit_code = 128 + si->si_status;
  }
  uint64_t ooms = 0;
  struct qerr err = QERR_INIT;
  if (c->cg && cgroup_oom_kills(c->cg, &ooms, &err) == 0 && ooms > 0)
    c->oom_killed = true;
}

/* True when no process was left in it. */
static bool release_cgroup(struct container *c) {
  if (!c->cg)
    return false;
  struct qerr err = QERR_INIT;
  bool empty = cgroup_nprocs(c->cg) == 0;
  if (empty && janitor_take_cgroup(&c->d->janitor, c->cg)) {
    c->cg = NULL; /* the janitor removes the (empty) directories */
    return true;
  }
  cgroup_kill_all(c->cg, &err);
  if (cgroup_destroy(c->cg, &err) < 0)
    log_warn("container %.12s: %s", c->id, err.msg);
  c->cg = NULL;
  return empty;
}

static void on_exit_wait(struct qpidwait *w, const siginfo_t *si, int err) {
  struct container *c = container_of(w, struct container, exit_wait);
  if (err < 0)
    log_error("waiting for container %.12s: %s", c->id, strerror(-err));
  close(c->pidfd);
  c->pidfd = -1;
  qtimer_cancel(&c->d->timers, &c->stop_timer);
  bool was_failed = c->state == ST(FAILED);
  if (!was_failed) {
    record_exit(c, si);
    c->state = ST(EXITED);
    c->finished_ns = clock_real_ns();
  }
  if (!was_failed) {
    persist(c);
    char detail[32];
    snprintf(detail, sizeof detail, "%d", c->exit_code);
    if (c->oom_killed)
      publish(c, EV(OOM), NULL);
    publish(c, EV(EXITED), detail);
  }
  wake(c, 1u << W_STOP | 1u << W_WAIT, NULL);
  /* The answers go out first; removing the cgroup (and an auto-remove's
   * files) waits until they are submitted: containers_run_deferred. */
  c->defer_next = c->d->deferred;
  c->d->deferred = c;
}

void containers_run_deferred(struct quiltd *d) {
  while (d->deferred) {
    struct container *c = d->deferred;
    d->deferred = c->defer_next;
    c->defer_next = NULL;
    if (c->mntns_fd >= 0)
      janitor_close(&d->janitor, take_fd(&c->mntns_fd));
    bool empty = release_cgroup(c);
    if (c->netns_fd >= 0 && empty)
      pool_give_netns(&d->pool, take_fd(&c->netns_fd));
    detach_bridge(c);
    c->busy = false;
    maybe_finish(c);
  }
}

/* ------------------------------------------------------------ stop, kill */

static int set_frozen(struct container *c, bool frozen, struct qerr *err) {
  if (!c->cg)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EOPNOTSUPP,
                       "container %.12s has no cgroup to freeze (cgroups unavailable)", c->id);
  if (cgroup_freeze(c->cg, frozen, err) < 0)
    return qerr_wrap(err, "%s container %.12s", frozen ? "pausing" : "resuming", c->id);
  c->state = frozen ? ST(PAUSED) : ST(RUNNING);
  persist(c);
  publish(c, frozen ? EV(PAUSED) : EV(RESUMED), NULL);
  return 0;
}

int container_pause(struct container *c, struct qerr *err) {
  if (c->state == ST(PAUSED))
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EALREADY,
                       "container %.12s is already paused", c->id);
  if (c->state != ST(RUNNING) || c->pidfd < 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ESRCH, "container %.12s is not running",
                       c->id);
  if (c->setup)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EBUSY,
                       "container %.12s is running its setup steps", c->id);
  return set_frozen(c, true, err);
}

int container_resume(struct container *c, struct qerr *err) {
  if (c->state != ST(PAUSED))
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EINVAL, "container %.12s is not paused",
                       c->id);
  return set_frozen(c, false, err);
}

int container_kill(struct container *c, int sig, struct qerr *err) {
  if (!container_is_active(c) || c->pidfd < 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ESRCH, "container %.12s is not running",
                       c->id);
  if (sig <= 0 || sig >= NSIG)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "invalid signal %d", sig);
  if (sys_pidfd_send_signal(c->pidfd, sig) < 0 && errno != ESRCH)
    return qerr_errno(err, "signalling container %.12s", c->id);
  /* A frozen process acts on no signal (v1 holds even SIGKILL): thaw it,
   * as docker does for stop and kill of a paused container. */
  if (c->state == ST(PAUSED))
    return set_frozen(c, false, err);
  return 0;
}

static void on_stop_timeout(struct qtimer *t) {
  struct container *c = container_of(t, struct container, stop_timer);
  struct qerr err = QERR_INIT;
  log_info("container %.12s did not stop in time: SIGKILL", c->id);
  container_kill(c, SIGKILL, &err);
}

void container_stop_rpc(struct quiltd *d, struct grpc_call *call, struct container *c,
                        unsigned timeout_s) {
  if (!container_is_active(c)) {
    reply_container(call, c, W_STOP);
    return;
  }
  struct qerr err = QERR_INIT;
  if (container_kill(c, SIGTERM, &err) < 0) {
    grpc_call_fail(call, &err);
    return;
  }
  uint64_t secs = timeout_s ? timeout_s : DEFAULT_STOP_TIMEOUT_S;
  if (!qtimer_pending(&c->stop_timer) ||
      c->stop_timer.deadline_ns > clock_mono_ns() + secs * 1000000000ull)
    qtimer_after(&d->timers, &c->stop_timer, secs * 1000000000ull, on_stop_timeout);
  add_waiter(c, call, W_STOP);
}

/* ------------------------------------------------------------ wait, remove */

void container_wait_rpc(struct quiltd *d, struct grpc_call *call, struct container *c) {
  (void)d;
  if (c->state == ST(EXITED) || c->state == ST(FAILED)) {
    reply_wait(call, c);
    return;
  }
  add_waiter(c, call, W_WAIT);
}

static void bury(struct container *c) {
  struct quiltd *d = c->d;
  struct tombstone *t = &d->tombstones[d->next_tombstone++ % TOMBSTONES];
  memcpy(t->id, c->id, sizeof t->id);
  t->exit_code = c->exit_code;
  t->exit_signal = c->exit_signal;
  t->oom_killed = c->oom_killed;
}

bool container_wait_removed(struct quiltd *d, struct grpc_call *call, const char *ref) {
  size_t len = strlen(ref);
  for (unsigned i = 0; i < TOMBSTONES && len > 0; i++) {
    const struct tombstone *t = &d->tombstones[i];
    if (t->id[0] && strncmp(t->id, ref, len) == 0) {
      Quilt__V1__WaitContainerResponse r = QUILT__V1__WAIT_CONTAINER_RESPONSE__INIT;
      r.exit_code = t->exit_code;
      r.signal = t->exit_signal;
      r.oom_killed = t->oom_killed;
      grpc_call_reply(call, &r.base);
      return true;
    }
  }
  return false;
}

static void do_remove(struct container *c) {
  struct quiltd *d = c->d;
  struct qerr err = QERR_INIT;
  if (c->state == ST(EXITED))
    bury(c);
  logs_close(c);
  release_cgroup(c);
  copy_container_removed(c);
  if (c->warm) /* never started: the pool removes its files once it is dead */
    pool_discard(&d->pool, take_ptr(c->warm));
  else
    container_remove_files(d, c->id, c->dir);
  if (d->store && store_delete_container(d->store, c->id, &err) < 0)
    log_warn("forgetting container %.12s: %s", c->id, err.msg);
  publish(c, EV(REMOVED), NULL);
  wake(c, 1u << W_REMOVE, NULL);
  /* Anyone still waiting learns the container is gone. */
  qerr_status(&err, GRPC_NOT_FOUND, ENOENT, "container %.12s was removed", c->id);
  wake(c, ~0u, &err);
  unlink_container(d, c);
  container_free(c);
}

/* Once exited and drained: complete the logs, then auto-remove. */
static void maybe_finish(struct container *c) {
  if (container_is_active(c) || c->busy || !logs_drained(c))
    return;
  logs_complete(c);
  if (c->removing || (c->spec->auto_remove && c->state != ST(CREATED)))
    do_remove(c);
}

void container_remove_rpc(struct quiltd *d, struct grpc_call *call, struct container *c,
                          bool force) {
  (void)d;
  struct qerr err = QERR_INIT;
  if (container_is_active(c) && !force) {
    grpc_call_finish(call, GRPC_FAILED_PRECONDITION,
                     "container %.12s is running: stop it first or remove with force", c->id);
    return;
  }
  if (add_waiter(c, call, W_REMOVE) < 0)
    return;
  c->removing = true;
  if (c->setup && c->setup->pidfd >= 0) /* its end fails the start, then removes */
    sys_pidfd_send_signal(c->setup->pidfd, SIGKILL);
  if (container_is_active(c))
    container_kill(c, SIGKILL, &err);
  if (c->state == ST(CREATED) && c->pid <= 0)
    c->busy = false;
  maybe_finish(c);
}

void container_logs_drained(struct container *c) {
  if (c->setup) {
    if (c->setup->exited)
      setup_end(c);
    return;
  }
  maybe_finish(c);
}

/* ------------------------------------------------------------ restart */

/* A container created but never started gets its rootfs view back, so a
 * StartContainer after the restart finds the image under its overlay. */
static void restore_view(struct container *c) {
  char rootfs[PATH_MAX], image_id[65] = "";
  struct qerr err = QERR_INIT;
  const char *ref = c->image_id[0] ? c->image_id : c->spec->image;
  char layer[PATH_MAX], work[PATH_MAX + 8];
  if (scratch_dir(&c->d->scratch, c->id, layer, &err) < 0) {
    log_warn("container %.12s cannot start any more: %s", c->id, err.msg);
    return;
  }
  /* An overlay refuses a work dir a volatile mount used: start it afresh. */
  snprintf(work, sizeof work, "%s/work", layer);
  if (rm_rf(work, &err) < 0 ||
      container_resolve_image(c->d, ref, rootfs, image_id, &err) < 0 ||
      rootfs_prepare(rootfs, layer, c->d->overlay ? ROOTFS_OVERLAY : ROOTFS_COPY, &c->rootfs,
                     &err) < 0)
    log_warn("container %.12s cannot start any more: %s", c->id, err.msg);
}

static int restore_one(void *arg, const struct container_record *r) {
  struct quiltd *d = arg;
  Quilt__V1__ContainerSpec *spec = (Quilt__V1__ContainerSpec *)protobuf_c_message_unpack(
      &quilt__v1__container_spec__descriptor, NULL, r->spec_len, r->spec);
  struct container *c = calloc(1, sizeof *c);
  if (!spec || !c) {
    log_warn("skipping stored container %.12s: unreadable spec", r->id);
    if (spec)
      protobuf_c_message_free_unpacked(&spec->base, NULL);
    free(c);
    return 0;
  }
  c->d = d;
  c->spec = spec;
  c->pidfd = c->status_fd = c->log_fd = c->netns_fd = c->mntns_fd = -1;
  c->out.fd = c->err.fd = -1;
  snprintf(c->id, sizeof c->id, "%s", r->id);
  snprintf(c->image_id, sizeof c->image_id, "%s", r->image_id);
  c->name = strdup(r->name);
  c->state = r->state;
  c->exit_code = r->exit_code;
  c->exit_signal = r->exit_signal;
  c->oom_killed = r->oom_killed;
  c->failure = r->failure[0] ? strdup(r->failure) : NULL;
  c->created_ns = r->created_ns;
  c->started_ns = r->started_ns;
  c->finished_ns = r->finished_ns;
  snprintf(c->dir, sizeof c->dir, "%s/containers/%s", d->cfg.root_dir, c->id);
  snprintf(c->rootfs.merged, sizeof c->rootfs.merged, "%s", r->rootfs);
  if (c->state == ST(RUNNING) || c->state == ST(CREATED) || c->state == ST(PAUSED)) {
    /* Its processes outlived a daemon that can no longer wait for them:
     * kill what is left through its cgroup and record the loss. */
    struct cgroup *cg = NULL;
    struct qerr err = QERR_INIT;
    if (d->cgm && cgroup_open(d->cgm, c->id, &cg, &err) == 0) {
      cgroup_kill_all(cg, &err);
      cgroup_destroy(cg, &err);
    }
    bool started = c->state != ST(CREATED) || r->pid > 0;
    c->state = started ? ST(EXITED) : ST(CREATED);
    if (started) {
      c->exit_code = 137;
      c->exit_signal = SIGKILL;
      c->finished_ns = clock_real_ns();
      free(c->failure);
      c->failure = strdup("quiltd restarted while the container ran");
    }
  }
  if (c->state == ST(CREATED))
    restore_view(c);
  link_container(d, c);
  persist(c);
  return 0;
}

/* Directories under containers/ that no record claims: sandboxes of a warm
 * pool (or a create cut short) when the daemon died. Their processes died
 * with it (they wait on a pipe from us); the cgroups and files remain. */
static void sweep_dir(struct quiltd *d, const char *parent) {
  char path[PATH_MAX];
  cleanup_dir DIR *dir = opendir(parent);
  struct dirent *de;
  while (dir && (de = readdir(dir))) {
    struct qerr err = QERR_INIT;
    if (de->d_name[0] == '.' || strlen(de->d_name) != 64 ||
        container_lookup(d, de->d_name, &err))
      continue;
    struct cgroup *cg = NULL;
    if (d->cgm && cgroup_open(d->cgm, de->d_name, &cg, &err) == 0) {
      cgroup_kill_all(cg, &err);
      cgroup_destroy(cg, &err);
    }
    snprintf(path, sizeof path, "%s/%s", parent, de->d_name);
    if (rootfs_release(path, &err) < 0 || rm_rf(path, &err) < 0)
      log_warn("removing leftover %s: %s", path, err.msg);
    else
      log_info("removed leftover sandbox %.12s", de->d_name);
  }
}

static void sweep_orphans(struct quiltd *d) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/containers", d->cfg.root_dir);
  sweep_dir(d, path);
  if (strcmp(d->scratch.root, path) != 0)
    sweep_dir(d, d->scratch.root);
}

int containers_restore(struct quiltd *d, struct qerr *err) {
  if (!d->store)
    return 0;
  if (store_load_containers(d->store, restore_one, d, err) < 0)
    return err->code;
  sweep_orphans(d);
  return 0;
}

bool containers_shutdown(struct quiltd *d) {
  bool any = false;
  pool_shutdown(&d->pool);
  struct qerr err = QERR_INIT;
  for (struct container *c = d->containers; c; c = c->next) {
    if (c->setup && c->setup->pidfd >= 0)
      sys_pidfd_send_signal(c->setup->pidfd, SIGKILL);
    if (c->warm) { /* created, not started: it starts cold after a restart */
      c->warm->keep_dir = true;
      pool_discard(&d->pool, take_ptr(c->warm));
    }
    if (!container_is_active(c))
      continue;
    any = true;
    container_kill(c, SIGKILL, &err);
  }
  return !any;
}

void containers_free(struct quiltd *d) {
  while (d->containers) {
    struct container *c = d->containers;
    logs_close(c);
    if (c->cg)
      cgroup_close(c->cg);
    if (c->pidfd >= 0)
      close(c->pidfd);
    if (c->status_fd >= 0)
      close(c->status_fd);
    if (c->warm) {
      c->warm->keep_dir = true;
      pool_discard_now(take_ptr(c->warm));
    }
    unlink_container(d, c);
    container_free(c);
  }
}

/* ------------------------------------------------------------ copies */

int container_ns_flags(const struct container *c) { return ns_flags(c->spec); }

int container_rootfs_view(struct container *c, struct rootfs_view *out, struct qerr *err) {
  if (c->rootfs.lower[0] || c->rootfs.copied) {
    *out = c->rootfs;
    return 0;
  }
  char image[PATH_MAX], image_id[65] = "", layer_dir[PATH_MAX], upper[PATH_MAX + 8];
  struct stat st;
  if (scratch_dir(&c->d->scratch, c->id, layer_dir, err) < 0)
    return err->code;
  snprintf(upper, sizeof upper, "%s/upper", layer_dir);
  if (lstat(upper, &st) < 0) {
    /* A copy: merged is all there is. Neither: the scratch tmpfs it was
     * on did not survive a reboot. */
    if (lstat(c->rootfs.merged, &st) < 0 || !S_ISDIR(st.st_mode))
      return qerr_status(err, GRPC_FAILED_PRECONDITION, ENOENT,
                         "container %.12s's files are gone (its writable layer was on the "
                         "scratch tmpfs, which a reboot empties)", c->id);
    if (rootfs_plan(c->rootfs.merged, layer_dir, ROOTFS_COPY, out, err) < 0)
      return err->code;
    snprintf(out->merged, sizeof out->merged, "%s", c->rootfs.merged);
    out->copied = true;
    return 0;
  }
  const char *ref = c->image_id[0] ? c->image_id : c->spec->image;
  if (container_resolve_image(c->d, ref, image, image_id, err) < 0 ||
      rootfs_plan(image, layer_dir, ROOTFS_OVERLAY, out, err) < 0)
    return err->code;
  char key[65];
  struct qerr ignore = QERR_INIT;
  if (c->spec->n_setup && setup_key_of(c, key, &ignore) == 0 && layer_present(c->d, key)) {
    char layer[PATH_MAX], lower[PATH_MAX];
    layer_path(c->d, key, layer);
    if (snprintf(lower, sizeof lower, "%s:%s", layer, out->lower) >= (int)sizeof lower)
      return qerr_set(err, ENAMETOOLONG, "overlay lowerdir too long");
    memcpy(out->lower, lower, sizeof lower);
  }
  return 0;
}

/* ------------------------------------------------------------ exec */

/* The container's environment under the exec's own entries (theirs win). */
static char **exec_env(const struct container *c, const Quilt__V1__ExecRequest *req,
                       const char *hostname) {
  char **base = build_env(c, hostname);
  size_t nb = 0;
  while (base && base[nb])
    nb++;
  char **env = base ? calloc(nb + req->n_env + 1, sizeof *env) : NULL;
  if (!env) {
    free_env(base);
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < req->n_env; i++)
    env[k++] = strdup(req->env[i]);
  for (size_t i = 0; i < nb; i++) {
    size_t klen = strcspn(base[i], "=") + 1;
    bool overridden = false;
    for (size_t j = 0; j < req->n_env; j++)
      overridden |= strncmp(req->env[j], base[i], klen) == 0;
    if (overridden)
      free(base[i]);
    else
      env[k++] = base[i];
  }
  free(base);
  return env;
}

static int exec_check(const struct container *c, const Quilt__V1__ExecRequest *req,
                      struct qerr *err) {
  if (req->n_command == 0)
    return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "empty command: give the program to run");
  if (c->state == ST(PAUSED))
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EBUSY,
                       "container %.12s is paused: resume it first", c->id);
  if (c->state != ST(RUNNING) || c->pidfd < 0 || c->setup)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, ESRCH, "container %.12s is not running",
                       c->id);
  return 0;
}

int container_exec_spawn(struct container *c, const Quilt__V1__ExecRequest *req,
                         const int stdio[3], bool tty, struct spawn_result *res,
                         struct qerr *err) {
  const Quilt__V1__ContainerSpec *s = c->spec;
  if (exec_check(c, req, err) < 0)
    return err->code;
  char sid[13], hostname[72];
  snprintf(hostname, sizeof hostname, "%s",
           s->hostname[0] ? s->hostname : c->name[0] ? c->name : short_id(c, sid));
  cleanup_free char **argv = calloc(req->n_command + 1, sizeof *argv);
  char **env = exec_env(c, req, hostname);
  if (!argv || !env) {
    free_env(env);
    return qerr_set(err, ENOMEM, "out of memory");
  }
  memcpy(argv, req->command, req->n_command * sizeof *argv);
  struct spawn_exec ex = {.argv = argv, .env = env,
                          .cwd = req->working_dir[0] ? req->working_dir : s->working_dir,
                          .user = req->user[0] ? req->user : s->user};
  if (s->security && s->security->seccomp_unconfined)
    ex.flags |= SPAWN_SECCOMP_UNCONFINED;
  struct spawn_join j = {.target_pidfd = c->pidfd, .ns_flags = ns_flags(s),
                         .cgroup_fd = c->cg ? cgroup_fd(c->cg) : -1,
                         .stdio = {stdio[0], stdio[1], stdio[2]}, .tty = tty,
                         .seccomp = &c->d->seccomp};
  int n = c->cg && j.cgroup_fd < 0
              ? cgroup_procs_fds(c->cg, j.cgroup_procs, SPAWN_MAX_CGROUP_FDS, err)
              : 0;
  int rc = n < 0 ? n : caps_of(s, &ex.caps, err);
  j.n_cgroup_procs = n > 0 ? (size_t)n : 0;
  if (rc == 0)
    rc = spawn_join(&j, &ex, res, err);
  for (size_t i = 0; i < j.n_cgroup_procs; i++)
    close(j.cgroup_procs[i]);
  free_env(env);
  return rc;
}
