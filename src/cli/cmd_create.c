/* `create` and `run`: a ContainerSpec from docker-like flags, then create,
 * start, follow the output and wait for the exit code. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/ctr.h"
#include "cli/mountspec.h"
#include "cli/pbjson.h"
#include "cli/progress.h"
#include "grpc/status.h"

/* docker's exit codes for `run` failures before the command ran. */
enum { RUN_EXIT_FAILED = 125, RUN_EXIT_CANNOT_EXEC = 126, RUN_EXIT_NOT_FOUND = 127,
       RUN_EXIT_INTERRUPTED = 130 };

typedef Quilt__V1__ContainerSpec__LabelsEntry label_entry;

struct spec_build {
  Quilt__V1__ContainerSpec spec;
  Quilt__V1__Namespaces ns;
  Quilt__V1__SetupConfig setup_cfg;
  Quilt__V1__Security sec;
  char *sh_argv[3];
  /* Each has room for argc entries: every flag use takes an argument. */
  char **env, **setup, **cap_add, **cap_drop;
  label_entry *label_items;
  label_entry **labels;
  Quilt__V1__Mount *mount_items;
  Quilt__V1__Mount **mounts;
  char **owned; /* strings we allocated; freed with the build */
  size_t n_owned;
  const char *command; /* --command */
  bool is_run, detach, start, no_start;
};

static void spec_free(struct spec_build *b) {
  for (size_t i = 0; i < b->n_owned; i++)
    free(b->owned[i]);
  free(b->owned);
  free(b->env);
  free(b->setup);
  free(b->cap_add);
  free(b->cap_drop);
  free(b->label_items);
  free(b->labels);
  free(b->mount_items);
  free(b->mounts);
}

static int spec_init(struct spec_build *b, int argc) {
  size_t n = (size_t)argc + 1;
  *b = (struct spec_build){.spec = QUILT__V1__CONTAINER_SPEC__INIT,
                           .ns = QUILT__V1__NAMESPACES__INIT,
                           .setup_cfg = QUILT__V1__SETUP_CONFIG__INIT,
                           .sec = QUILT__V1__SECURITY__INIT};
  b->env = calloc(n, sizeof *b->env);
  b->setup = calloc(n, sizeof *b->setup);
  b->cap_add = calloc(n, sizeof *b->cap_add);
  b->cap_drop = calloc(n, sizeof *b->cap_drop);
  b->label_items = calloc(n, sizeof *b->label_items);
  b->labels = calloc(n, sizeof *b->labels);
  b->mount_items = calloc(n, sizeof *b->mount_items);
  b->mounts = calloc(n, sizeof *b->mounts);
  b->owned = calloc(2 * n, sizeof *b->owned);
  if (b->env && b->setup && b->cap_add && b->cap_drop && b->label_items && b->labels &&
      b->mount_items && b->mounts && b->owned)
    return 0;
  spec_free(b);
  return -ENOMEM;
}

static char *own(struct spec_build *b, char *s) {
  if (s)
    b->owned[b->n_owned++] = s;
  return s;
}

/* ------------------------------------------------------------ flag values */

static int oom(struct cli_ctx *ctx) {
  struct qerr err = QERR_INIT;
  qerr_set(&err, ENOMEM, "out of memory");
  return cli_error(ctx->cmd->name, &err);
}

/* -e KEY=VALUE, or -e KEY to pass this shell's value (skipped when unset). */
static int add_env(struct cli_ctx *ctx, struct spec_build *b, char *v) {
  if (!v[0] || v[0] == '=')
    return cli_cmd_usage_error(ctx, "invalid --env '%s' (expected KEY=VALUE or KEY)", v);
  if (strchr(v, '=')) {
    b->env[b->spec.n_env++] = v;
    return -1;
  }
  const char *val = getenv(v);
  if (!val)
    return -1;
  char *kv = NULL;
  if (asprintf(&kv, "%s=%s", v, val) < 0 || !own(b, kv))
    return oom(ctx);
  b->env[b->spec.n_env++] = kv;
  return -1;
}

/* --label KEY=VALUE or KEY (empty value); a repeated key takes the last value. */
static int add_label(struct cli_ctx *ctx, struct spec_build *b, const char *v) {
  size_t klen = strcspn(v, "=");
  if (klen == 0)
    return cli_cmd_usage_error(ctx, "invalid --label '%s' (expected KEY=VALUE)", v);
  char *key = own(b, strndup(v, klen));
  char *val = own(b, strdup(v[klen] ? v + klen + 1 : ""));
  if (!key || !val)
    return oom(ctx);
  for (size_t i = 0; i < b->spec.n_labels; i++)
    if (strcmp(b->labels[i]->key, key) == 0) {
      b->labels[i]->value = val;
      return -1;
    }
  label_entry *e = &b->label_items[b->spec.n_labels];
  *e = (label_entry)QUILT__V1__CONTAINER_SPEC__LABELS_ENTRY__INIT;
  e->key = key;
  e->value = val;
  b->labels[b->spec.n_labels++] = e;
  return -1;
}

/* --mount SPEC or -v/--volume SPEC (cli/mountspec.h). */
static int add_mount(struct cli_ctx *ctx, struct spec_build *b, bool volume_flag, const char *v) {
  struct mountspec *ms = malloc(sizeof *ms);
  if (!own(b, (char *)ms))
    return oom(ctx);
  char why[256];
  int rc = volume_flag ? mountspec_parse_volume(v, ms, why, sizeof why)
                       : mountspec_parse(v, ms, why, sizeof why);
  if (rc < 0)
    return cli_cmd_usage_error(ctx, "invalid --%s '%s': %s", volume_flag ? "volume" : "mount", v,
                               why);
  Quilt__V1__Mount *m = &b->mount_items[b->spec.n_mounts];
  *m = (Quilt__V1__Mount)QUILT__V1__MOUNT__INIT;
  m->type = ms->type;
  m->source = ms->source;
  m->target = ms->target;
  m->readonly = ms->readonly;
  m->size_bytes = ms->size_bytes;
  b->mounts[b->spec.n_mounts++] = m;
  return -1;
}

/* MiB, or with a unit: 512M, 512MiB, 2G, 2GiB. */
static int parse_mib(const char *s, uint64_t *mib) {
  char *end;
  errno = 0;
  unsigned long long v = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
  if (errno || !(s[0] >= '0' && s[0] <= '9'))
    return -EINVAL;
  uint64_t mult = !*end || !strcasecmp(end, "m") || !strcasecmp(end, "mib") ? 1
                  : !strcasecmp(end, "g") || !strcasecmp(end, "gib")        ? 1024
                                                                            : 0;
  if (mult == 0 || v > (1ull << 40) / mult)
    return -EINVAL;
  *mib = v * mult;
  return 0;
}

static int numeric_option(struct cli_ctx *ctx, struct spec_build *b, const char *name,
                          const char *v) {
  uint64_t u;
  int64_t i;
  if (strcmp(name, "memory-limit") == 0) {
    if (parse_mib(v, &b->spec.memory_limit_mib) < 0)
      return cli_cmd_usage_error(ctx, "invalid --memory-limit '%s' (expected MiB, e.g. 64, "
                                 "512M or 2G; 0: no limit)", v);
  } else if (strcmp(name, "cpu-limit") == 0) {
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)strcspn(v, "%"), v);
    if (strspn(v + strlen(num), "%") > 1 || parse_u64(num, 102400, &u) < 0)
      return cli_cmd_usage_error(ctx, "invalid --cpu-limit '%s' (expected percent of one CPU, "
                                 "e.g. 50 or 150; 0: no limit)", v);
    b->spec.cpu_limit_percent = (uint32_t)u;
  } else {
    if (parse_i64(v, -1, INT64_MAX, &i) < 0)
      return cli_cmd_usage_error(ctx, "invalid --pids-limit '%s' (expected a number; -1: "
                                 "unlimited, 0: the daemon's default)", v);
    b->spec.pids_limit = i;
  }
  return -1;
}

enum {
  OPT_IMAGE = 0x200, OPT_NAME, OPT_COMMAND, OPT_SETUP, OPT_CPU, OPT_PIDS, OPT_ALL_NS, OPT_USERNS,
  OPT_HOSTNAME, OPT_NETWORK, OPT_RM, OPT_START, OPT_NO_START, OPT_SETUP_NETWORK,
  OPT_NPM_REGISTRY, OPT_PIP_INDEX, OPT_GEM_SOURCE, OPT_APT_MIRROR, OPT_APK_REPO, OPT_HTTP_PROXY,
  OPT_HTTPS_PROXY, OPT_NO_PROXY, OPT_CAP_ADD, OPT_CAP_DROP, OPT_SECURITY_OPT, OPT_MOUNT,
};

/* --security-opt: docker's spellings of the switches quiltd has. */
static int security_option(struct cli_ctx *ctx, struct spec_build *b, const char *v) {
  if (strcmp(v, "seccomp=unconfined") == 0)
    b->sec.seccomp_unconfined = true;
  else if (strcmp(v, "systempaths=unconfined") == 0)
    b->sec.unmask_paths = true;
  else if (strcmp(v, "no-new-privileges") != 0 && strcmp(v, "no-new-privileges=true") != 0)
    return cli_cmd_usage_error(ctx, "invalid --security-opt '%s' (expected seccomp=unconfined, "
                               "systempaths=unconfined or no-new-privileges)", v);
  return -1;
}

static int parse_network(const char *v, Quilt__V1__NetworkMode *out) {
  if (strcmp(v, "none") == 0)
    *out = QUILT__V1__NETWORK_MODE__NETWORK_MODE_NONE;
  else if (strcmp(v, "host") == 0)
    *out = QUILT__V1__NETWORK_MODE__NETWORK_MODE_HOST;
  else if (strcmp(v, "bridge") == 0)
    *out = QUILT__V1__NETWORK_MODE__NETWORK_MODE_BRIDGE;
  else
    return -1;
  return 0;
}

static int network_option(struct cli_ctx *ctx, struct spec_build *b, int c, const char *v) {
  bool setup = c == OPT_SETUP_NETWORK;
  if (parse_network(v, setup ? &b->spec.setup_network : &b->spec.network_mode) < 0)
    return cli_cmd_usage_error(ctx, "invalid --%snetwork '%s' (expected none, host or bridge)",
                               setup ? "setup-" : "", v);
  return -1;
}

/* ------------------------------------------------------------ options */


static const struct option create_opts[] = {
    {"image", required_argument, NULL, OPT_IMAGE},
    {"name", required_argument, NULL, OPT_NAME},
    {"command", required_argument, NULL, OPT_COMMAND},
    {"env", required_argument, NULL, 'e'},
    {"setup", required_argument, NULL, OPT_SETUP},
    {"memory-limit", required_argument, NULL, 'm'},
    {"cpu-limit", required_argument, NULL, OPT_CPU},
    {"pids-limit", required_argument, NULL, OPT_PIDS},
    {"enable-all-namespaces", no_argument, NULL, OPT_ALL_NS},
    {"userns", no_argument, NULL, OPT_USERNS},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"label", required_argument, NULL, 'l'},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"setup-network", required_argument, NULL, OPT_SETUP_NETWORK},
    {"npm-registry", required_argument, NULL, OPT_NPM_REGISTRY},
    {"pip-index", required_argument, NULL, OPT_PIP_INDEX},
    {"gem-source", required_argument, NULL, OPT_GEM_SOURCE},
    {"apt-mirror", required_argument, NULL, OPT_APT_MIRROR},
    {"apk-repository", required_argument, NULL, OPT_APK_REPO},
    {"http-proxy", required_argument, NULL, OPT_HTTP_PROXY},
    {"https-proxy", required_argument, NULL, OPT_HTTPS_PROXY},
    {"no-proxy", required_argument, NULL, OPT_NO_PROXY},
    {"cap-add", required_argument, NULL, OPT_CAP_ADD},
    {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
    {"security-opt", required_argument, NULL, OPT_SECURITY_OPT},
    {"mount", required_argument, NULL, OPT_MOUNT},
    {"volume", required_argument, NULL, 'v'},
    {"rm", no_argument, NULL, OPT_RM},
    {"start", no_argument, NULL, OPT_START},
    {"no-start", no_argument, NULL, OPT_NO_START},
    {"detach", no_argument, NULL, 'd'},
    {NULL, 0, NULL, 0},
};

/* Flags that only set a string or a switch. Returns false for others. */
static bool simple_option(struct spec_build *b, int c, char *v) {
  switch (c) {
  case OPT_IMAGE: b->spec.image = v; break;
  case OPT_NAME: b->spec.name = v; break;
  case OPT_COMMAND: b->command = v; break;
  case OPT_SETUP: b->setup[b->spec.n_setup++] = v; break;
  case 'w': b->spec.working_dir = v; break;
  case 'u': b->spec.user = v; break;
  case OPT_HOSTNAME: b->spec.hostname = v; break;
  case OPT_ALL_NS: b->ns.enable_all = true; break;
  case OPT_USERNS: b->ns.user = true; break;
  case OPT_RM: b->spec.auto_remove = true; break;
  case OPT_START: b->start = true; break;
  case OPT_NO_START: b->no_start = true; break;
  case 'd': b->detach = true; break;
  case OPT_NPM_REGISTRY: b->setup_cfg.npm_registry = v; break;
  case OPT_PIP_INDEX: b->setup_cfg.pip_index = v; break;
  case OPT_GEM_SOURCE: b->setup_cfg.gem_source = v; break;
  case OPT_APT_MIRROR: b->setup_cfg.apt_mirror = v; break;
  case OPT_APK_REPO: b->setup_cfg.apk_repository = v; break;
  case OPT_HTTP_PROXY: b->setup_cfg.http_proxy = v; break;
  case OPT_HTTPS_PROXY: b->setup_cfg.https_proxy = v; break;
  case OPT_NO_PROXY: b->setup_cfg.no_proxy = v; break;
  case OPT_CAP_ADD: b->cap_add[b->sec.n_cap_add++] = v; break;
  case OPT_CAP_DROP: b->cap_drop[b->sec.n_cap_drop++] = v; break;
  default: return false;
  }
  return true;
}

static int create_option(struct cli_ctx *ctx, struct spec_build *b, int c, char *v) {
  if (simple_option(b, c, v))
    return -1;
  switch (c) {
  case 'e':
    return add_env(ctx, b, v);
  case 'l':
    return add_label(ctx, b, v);
  case 'm':
    return numeric_option(ctx, b, "memory-limit", v);
  case OPT_CPU:
    return numeric_option(ctx, b, "cpu-limit", v);
  case OPT_PIDS:
    return numeric_option(ctx, b, "pids-limit", v);
  case OPT_SECURITY_OPT:
    return security_option(ctx, b, v);
  case OPT_MOUNT:
  case 'v':
    return add_mount(ctx, b, c == 'v', v);
  default:
    return network_option(ctx, b, c, v);
  }
}

/* The flags that belong to the other command, and the command line. */
static int check_spec(struct cli_ctx *ctx, struct spec_build *b, int argc, char **argv) {
  if (b->is_run && (b->start || b->no_start))
    return cli_cmd_usage_error(ctx, "--start and --no-start are for create; run always starts");
  if (!b->is_run && b->detach)
    return cli_cmd_usage_error(ctx, "--detach is for run; create does not attach");
  if (b->start && b->no_start)
    return cli_cmd_usage_error(ctx, "give --start or --no-start, not both");
  bool have_argv = optind < argc;
  if (b->command && have_argv)
    return cli_cmd_usage_error(ctx, "give --command or a command after --, not both");
  if (!b->command && !have_argv)
    return cli_cmd_usage_error(ctx, "no command given: use --command \"SHELL COMMAND\" or "
                               "-- PROGRAM [ARGS...]");
  if (b->command) {
    b->sh_argv[0] = "/bin/sh";
    b->sh_argv[1] = "-c";
    b->sh_argv[2] = (char *)b->command;
    b->spec.command = b->sh_argv;
    b->spec.n_command = 3;
  } else {
    b->spec.command = argv + optind;
    b->spec.n_command = (size_t)(argc - optind);
  }
  return -1;
}

static int parse_spec(struct cli_ctx *ctx, int argc, char **argv, struct spec_build *b) {
  int c, code = CLI_EXIT_OK;
  /* '+': the first non-option starts the container's command line. */
  while ((c = cli_getopt(ctx, argc, argv, "+e:m:w:u:l:dv:", create_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    int rc = create_option(ctx, b, c, optarg);
    if (rc >= 0)
      return rc;
  }
  b->spec.env = b->env;
  b->spec.setup = b->setup;
  b->spec.labels = b->labels;
  b->spec.mounts = b->mounts;
  if (b->ns.enable_all || b->ns.user)
    b->spec.namespaces = &b->ns;
  b->spec.setup_config = &b->setup_cfg;
  b->sec.cap_add = b->cap_add;
  b->sec.cap_drop = b->cap_drop;
  if (b->sec.n_cap_add || b->sec.n_cap_drop || b->sec.seccomp_unconfined || b->sec.unmask_paths)
    b->spec.security = &b->sec;
  return check_spec(ctx, b, argc, argv);
}

/* ------------------------------------------------------------ --image */

static bool explicit_relative(const char *p) {
  return strcmp(p, ".") == 0 || strcmp(p, "..") == 0 || strncmp(p, "./", 2) == 0 ||
         strncmp(p, "../", 3) == 0;
}

/* --image names an image (NAME[:TAG], an id or prefix: the daemon resolves
 * it), a rootfs directory or a tarball. A tarball here: over a local socket
 * its absolute path (the daemon imports it on the fly, cached by digest);
 * over TCP the daemon cannot see it, so upload it first and use the id. A
 * local directory given as ./DIR or ../DIR is made absolute the same way.
 * Returns -1 to go on, or an exit code after printing why not. */
static int resolve_image_file(struct cli_ctx *ctx, struct spec_build *b) {
  const char *ref = b->spec.image;
  struct stat st;
  if (!ref || !ref[0] || stat(ref, &st) < 0)
    return -1;
  bool local = cli_target_is_local(ctx);
  if (S_ISDIR(st.st_mode) && local && ref[0] != '/' && explicit_relative(ref)) {
    char *abs = own(b, realpath(ref, NULL));
    if (abs)
      b->spec.image = abs;
    return -1;
  }
  if (!S_ISREG(st.st_mode))
    return -1;
  if (local) {
    char *abs = own(b, realpath(ref, NULL));
    if (!abs) {
      struct qerr err = QERR_INIT;
      qerr_errno(&err, "%s", ref);
      return cli_error(ctx->cmd->name, &err);
    }
    b->spec.image = abs;
    return -1;
  }
  Quilt__V1__Image *img;
  bool cached;
  if (image_import(ctx, ref, NULL, 0, true, &img, &cached) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  char *id = own(b, strdup(img->id));
  protobuf_c_message_free_unpacked(&img->base, NULL);
  if (!id)
    return oom(ctx);
  b->spec.image = id;
  return -1;
}

/* ------------------------------------------------------------ calls */

/* CreateContainer; *resp is a CreateContainerResponse with a container. */
static int create_call(struct cli_ctx *ctx, struct spec_build *b, bool start,
                       ProtobufCMessage **resp, struct qerr *err) {
  Quilt__V1__CreateContainerRequest req = QUILT__V1__CREATE_CONTAINER_REQUEST__INIT;
  req.spec = &b->spec;
  req.no_start = !start;
  int r = ctr_call(ctx, QCLIENT_QUILT("CreateContainer"), &req.base,
                   &quilt__v1__create_container_response__descriptor, resp,
                   CLI_DEFAULT_TIMEOUT_NS, err);
  if (r == 0 && !((Quilt__V1__CreateContainerResponse *)*resp)->container)
    r = qerr_status(err, GRPC_INTERNAL, EPROTO, "quiltd's answer names no container");
  return r;
}

static void print_container(struct cli_ctx *ctx, const Quilt__V1__Container *c) {
  if (ctx->json)
    json_print_message(ctx->out, &c->base, true);
  else
    fprintf(ctx->out, "%s\n", c->id);
}

static int run_detached(struct cli_ctx *ctx, const Quilt__V1__Container *c, bool setup);

static int run_create(struct cli_ctx *ctx, int argc, char **argv) {
  struct spec_build b;
  if (spec_init(&b, argc) < 0)
    return oom(ctx);
  int rc = parse_spec(ctx, argc, argv, &b);
  if (rc < 0)
    rc = resolve_image_file(ctx, &b);
  if (rc < 0) {
    struct qerr err = QERR_INIT;
    cleanup_msg ProtobufCMessage *resp = NULL;
    /* Setup steps: create, then start apart, as run does (start_call). */
    bool staged = b.start && b.spec.n_setup > 0;
    rc = create_call(ctx, &b, b.start && !staged, &resp, &err) < 0 ? ctr_report(ctx, &err)
                                                                  : CLI_EXIT_OK;
    const Quilt__V1__Container *c =
        rc == CLI_EXIT_OK ? ((Quilt__V1__CreateContainerResponse *)resp)->container : NULL;
    if (c && staged)
      rc = run_detached(ctx, c, true) == CLI_EXIT_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    else if (c)
      print_container(ctx, c);
  }
  spec_free(&b);
  return rc;
}

/* ------------------------------------------------------------ run */

/* A start that failed before the command ran: 127 when it was not found,
 * 126 when it could not be executed, 125 otherwise (docker's codes). */
static int start_failure_code(const struct qerr *err) {
  if (err->status == GRPC_NOT_FOUND)
    return RUN_EXIT_NOT_FOUND;
  if (err->status == GRPC_FAILED_PRECONDITION &&
      (strstr(err->msg, "executing") || strcasestr(err->msg, "permission")))
    return RUN_EXIT_CANNOT_EXEC;
  return RUN_EXIT_FAILED;
}

static int remove_call(struct cli_ctx *ctx, const char *id, struct qerr *err) {
  Quilt__V1__RemoveContainerRequest req = QUILT__V1__REMOVE_CONTAINER_REQUEST__INIT;
  req.id = (char *)id;
  req.force = true;
  cleanup_msg ProtobufCMessage *resp = NULL;
  return ctr_call(ctx, QCLIENT_QUILT("RemoveContainer"), &req.base,
                  &quilt__v1__remove_container_response__descriptor, &resp,
                  CLI_DEFAULT_TIMEOUT_NS, err);
}

/* --rm while attached is done here, after the exit code is known: the
 * daemon's auto_remove could drop the container before we read it. */
static void remove_after(struct cli_ctx *ctx, const char *id) {
  struct qerr err = QERR_INIT;
  if (remove_call(ctx, id, &err) < 0)
    ctr_report(ctx, &err);
}

/* With setup steps the start lasts as long as they do: no default
 * deadline, and without --json their progress on stderr (progress.h). */
static int start_call(struct cli_ctx *ctx, const char *id, bool setup, ProtobufCMessage **resp,
                      struct qerr *err) {
  if (setup && !ctx->json)
    return setup_progress_start(ctx, id, resp, err);
  Quilt__V1__StartContainerRequest req = QUILT__V1__START_CONTAINER_REQUEST__INIT;
  req.id = (char *)id;
  return ctr_call(ctx, QCLIENT_QUILT("StartContainer"), &req.base,
                  &quilt__v1__start_container_response__descriptor, resp,
                  setup ? 0 : CLI_DEFAULT_TIMEOUT_NS, err);
}

static void on_interrupt(int sig) {
  (void)sig;
  static const char msg[] = "quilt-cli: run: interrupted; the container keeps running\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(RUN_EXIT_INTERRUPTED);
}

static void print_exit_json(struct cli_ctx *ctx, const char *id,
                            const Quilt__V1__WaitContainerResponse *w) {
  struct json_out j;
  json_init(&j, ctx->out, false);
  json_begin_object(&j, NULL);
  json_string(&j, "id", id);
  json_int(&j, "exit_code", w->exit_code);
  json_int(&j, "signal", w->signal);
  json_bool(&j, "oom_killed", w->oom_killed);
  json_end_object(&j);
  json_finish(&j);
}

/* Output until the container exits, then its exit code; without the setup
 * output when a progress display showed it. */
static int attach(struct cli_ctx *ctx, const char *id, bool shown, struct qerr *err) {
  struct sigaction sa = {.sa_handler = on_interrupt};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  Quilt__V1__StreamLogsRequest logs = QUILT__V1__STREAM_LOGS_REQUEST__INIT;
  logs.id = (char *)id;
  logs.follow = true;
  if ((shown ? logs_copy_output(ctx, &logs, err) : logs_copy(ctx, &logs, false, err)) < 0)
    return err->code;
  Quilt__V1__WaitContainerRequest req = QUILT__V1__WAIT_CONTAINER_REQUEST__INIT;
  req.id = (char *)id;
  cleanup_msg ProtobufCMessage *resp = NULL;
  if (ctr_call(ctx, QCLIENT_QUILT("WaitContainer"), &req.base,
               &quilt__v1__wait_container_response__descriptor, &resp, 0, err) < 0)
    return err->code;
  const Quilt__V1__WaitContainerResponse *w = (const Quilt__V1__WaitContainerResponse *)resp;
  if (ctx->json)
    print_exit_json(ctx, id, w);
  return w->exit_code & 0xff;
}

/* Starts the created container; attached, returns its exit code. */
static int start_and_attach(struct cli_ctx *ctx, const Quilt__V1__Container *c, bool setup,
                            bool rm) {
  struct qerr err = QERR_INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int code;
  if (start_call(ctx, c->id, setup, &resp, &err) < 0) {
    ctr_report(ctx, &err);
    code = start_failure_code(&err);
  } else if ((code = attach(ctx, c->id, setup && !ctx->json, &err)) < 0) {
    ctr_report(ctx, &err);
    code = RUN_EXIT_FAILED;
  }
  if (rm)
    remove_after(ctx, c->id);
  return code;
}

static int run_detached(struct cli_ctx *ctx, const Quilt__V1__Container *c, bool setup) {
  struct qerr err = QERR_INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  if (start_call(ctx, c->id, setup, &resp, &err) < 0) {
    ctr_report(ctx, &err);
    return start_failure_code(&err);
  }
  const Quilt__V1__StartContainerResponse *st = (const void *)resp;
  print_container(ctx, st->container ? st->container : c);
  return CLI_EXIT_OK;
}

static int run_run(struct cli_ctx *ctx, int argc, char **argv) {
  struct spec_build b;
  if (spec_init(&b, argc) < 0)
    return oom(ctx);
  b.is_run = true;
  int rc = parse_spec(ctx, argc, argv, &b);
  if (rc < 0 && resolve_image_file(ctx, &b) >= 0)
    rc = RUN_EXIT_FAILED;
  if (rc >= 0) {
    spec_free(&b);
    return rc;
  }
  /* Attached, --rm is ours (see remove_after); detached, the daemon's. */
  bool rm = b.spec.auto_remove && !b.detach;
  if (rm)
    b.spec.auto_remove = false;
  struct qerr err = QERR_INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  /* Create, then start: a failed start leaves an id to report and remove. */
  if (create_call(ctx, &b, false, &resp, &err) < 0)
    rc = (ctr_report(ctx, &err), RUN_EXIT_FAILED);
  else {
    const Quilt__V1__Container *c = ((Quilt__V1__CreateContainerResponse *)resp)->container;
    bool setup = b.spec.n_setup > 0;
    rc = b.detach ? run_detached(ctx, c, setup) : start_and_attach(ctx, c, setup, rm);
  }
  spec_free(&b);
  return rc;
}

/* ------------------------------------------------------------ commands */

#define SPEC_OPTIONS                                                                         \
  "      --image IMAGE        an image: NAME[:TAG], an id or a unique id prefix (see\n"     \
  "                           'images'); or a rootfs directory or tarball (default:\n"      \
  "                           the built-in busybox:latest). A tarball FILE here is\n"       \
  "                           imported on the fly: over a local socket the daemon\n"       \
  "                           reads its absolute path; over TCP it is uploaded first\n"    \
  "                           (like 'import --upload FILE'). Other paths are on the\n"     \
  "                           daemon's host\n"                                              \
  "      --name NAME          a unique name to use instead of the id\n"                      \
  "      --command \"CMD\"      run CMD with /bin/sh -c (instead of -- PROGRAM ARGS...)\n"   \
  "  -e, --env KEY=VALUE      set an environment variable (repeatable); -e KEY passes\n"     \
  "                           this shell's value\n"                                          \
  "      --setup SPEC         a setup step run first (repeatable): \"MANAGER: pkg ...\"\n"  \
  "                           with MANAGER npm, pip, gem, apt, apk, or \"sh: COMMAND\".\n"  \
  "                           The result is cached as a layer for the image; with\n"      \
  "                           --start or run, progress is shown on stderr (not\n"          \
  "                           with --json; the steps' output is in 'logs')\n"              \
  "      --setup-network MODE the setup's network (default: the container's)\n"           \
  "      --npm-registry URL, --pip-index URL, --gem-source URL, --apt-mirror URL,\n"       \
  "      --apk-repository URL, --http-proxy URL, --https-proxy URL, --no-proxy LIST\n"     \
  "                           where setup fetches from (default: the daemon's)\n"          \
  "  -m, --memory-limit MIB   memory limit in MiB (or 512M, 2G); 0: none\n"                 \
  "      --cpu-limit PCT      percent of one CPU (150: one and a half); 0: none\n"          \
  "      --pids-limit N       most processes; -1: unlimited; 0: the daemon's default\n"      \
  "      --enable-all-namespaces  also a cgroup namespace\n"                                 \
  "      --userns             a user namespace: root inside is an unprivileged id outside\n" \
  "  -w, --workdir DIR        working directory of the command\n"                            \
  "  -u, --user USER          uid[:gid] or a user name of the image (default: root)\n"       \
  "      --hostname NAME      hostname (default: the name, else the short id)\n"            \
  "  -l, --label KEY=VALUE    attach a label (repeatable)\n"                                 \
  "      --network MODE       none (loopback only, the default), host, or bridge\n"       \
  "                           (an address on quiltd's bridge, NAT to the outside)\n"      \
  "      --cap-add CAP        keep a capability beyond Docker's default set, e.g.\n"       \
  "                           NET_ADMIN or CAP_SYS_PTRACE; ALL for every one (repeatable)\n" \
  "      --cap-drop CAP       drop one of the default set, or ALL (repeatable; a\n"        \
  "                           capability both dropped and added is kept)\n"              \
  "      --security-opt OPT   seccomp=unconfined: no seccomp profile (mount, bpf,\n"     \
  "                           keyctl, new user namespaces... allowed as far as the\n"      \
  "                           capabilities let them); systempaths=unconfined: leave\n"   \
  "                           /proc/kcore, /proc/keys, /sys/firmware... unmasked and\n"   \
  "                           /proc/sys, /proc/sysrq-trigger... writable\n"             \
  "      --mount SPEC         type=bind,source=/HOST,target=/PATH[,readonly],\n"          \
  "                           type=tmpfs,target=/PATH[,size=64m] or\n"                    \
  "                           type=volume,source=NAME,target=/PATH[,readonly]\n"          \
  "  -v, --volume SPEC        NAME:/PATH[:ro] (a named volume, created when missing)\n"  \
  "                           or /HOST:/PATH[:ro] (a bind); repeatable, as --mount\n"

const struct cli_command cli_cmd_create = {
    .name = "create",
    .summary = "Create a container (and with --start, start it)",
    .usage = "create [OPTIONS] (--command \"CMD\" | [--] PROGRAM [ARGS...])\n"
             "\n"
             "Creates a container and prints its id. It does not run until 'start' (or\n"
             "--start). The container's command line starts at the first argument that is\n"
             "not an option; put it after -- to be explicit.\n"
             "\n"
             "Options:\n" SPEC_OPTIONS
             "      --rm                 remove the container once it has exited\n"
             "      --start              start it at once\n"
             "      --no-start           only create it (the default)\n"
             "      --json               print the container as JSON\n"
             "  -h, --help               show this help\n",
    .run = run_create,
};

const struct cli_command cli_cmd_run = {
    .name = "run",
    .summary = "Create and start a container, print its output, exit with its code",
    .usage = "run [OPTIONS] [-d] (--command \"CMD\" | [--] PROGRAM [ARGS...])\n"
             "\n"
             "Creates and starts a container, prints its stdout and stderr as they come, and\n"
             "exits with its exit code (128+N when killed by signal N). When it cannot\n"
             "start: 127 if the command was not found, 126 if it could not be executed, 125\n"
             "for other failures. Ctrl-C stops waiting (exit 130); the container runs on\n"
             "(and --rm leaves it: remove it with 'rm -f').\n"
             "\n"
             "Options:\n" SPEC_OPTIONS
             "      --rm                 remove the container once it has exited\n"
             "  -d, --detach             print the id and return once it started\n"
             "      --json               with -d the container as JSON; else JSON Lines:\n"
             "                           one LogChunk per line, then the exit status\n"
             "  -h, --help               show this help\n",
    .run = run_run,
};
