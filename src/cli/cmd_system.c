/* Commands about the daemon itself: info and health. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "grpc/status.h"
#include "health.pb-c.h"
#include "quilt.pb-c.h"

/* Health checks should be quick; a daemon that needs longer is not healthy. */
#define HEALTH_TIMEOUT_NS (10 * QCLIENT_NS_PER_SEC)
#define HEALTH_POLL_NS (200 * 1000000ull)
/* --wait with --timeout 0: "never" as a finite deadline (a year). */
#define HEALTH_FOREVER_NS (365ull * 86400 * QCLIENT_NS_PER_SEC)

/* ------------------------------------------------------------ info */

static void info_json(FILE *f, const Quilt__V1__SystemInfo *in) {
  struct json_out j;
  json_init(&j, f, true);
  json_begin_object(&j, NULL);
  json_string(&j, "version", in->version);
  json_string(&j, "kernel", in->kernel);
  json_string(&j, "cgroup_mode", in->cgroup_mode);
  json_string(&j, "rootfs_driver", in->rootfs_driver);
  json_string(&j, "root_dir", in->root_dir);
  json_uint(&j, "pid", in->pid);
  json_uint(&j, "uptime_seconds", in->uptime_seconds);
  json_uint(&j, "containers_running", in->containers_running);
  json_uint(&j, "containers_total", in->containers_total);
  json_uint(&j, "images", in->images);
  json_begin_array(&j, "io_uring_features");
  for (size_t i = 0; i < in->n_io_uring_features; i++)
    json_string(&j, NULL, in->io_uring_features[i]);
  json_end_array(&j);
  json_end_object(&j);
  json_finish(&j);
}

static int join_features(const Quilt__V1__SystemInfo *in, struct strbuf *b) {
  if (in->n_io_uring_features == 0)
    return strbuf_printf(b, "none");
  for (size_t i = 0; i < in->n_io_uring_features; i++)
    if (strbuf_printf(b, "%s%s", i ? ", " : "", in->io_uring_features[i]) < 0)
      return -ENOMEM;
  return 0;
}

static int info_text(FILE *f, const Quilt__V1__SystemInfo *in) {
  char pid[16], uptime[32], containers[48], images[16];
  struct strbuf feats = STRBUF_INIT;
  snprintf(pid, sizeof pid, "%" PRIu32, in->pid);
  format_duration(uptime, sizeof uptime, in->uptime_seconds);
  snprintf(containers, sizeof containers, "%" PRIu32 " (%" PRIu32 " running)",
           in->containers_total, in->containers_running);
  snprintf(images, sizeof images, "%" PRIu32, in->images);
  int r = join_features(in, &feats);
  const char *rows[][2] = {
      {"Version:", in->version},         {"Kernel:", in->kernel},
      {"Cgroup mode:", in->cgroup_mode}, {"Rootfs driver:", in->rootfs_driver},
      {"Root dir:", in->root_dir},       {"Daemon pid:", pid},
      {"Uptime:", uptime},               {"Containers:", containers},
      {"Images:", images},               {"io_uring:", strbuf_cstr(&feats)},
  };
  struct table t;
  table_init(&t, 2, NULL);
  for (size_t i = 0; i < ARRAY_SIZE(rows) && r == 0; i++)
    r = table_add_row(&t, rows[i]);
  if (r == 0)
    table_print(&t, f);
  table_free(&t);
  strbuf_free(&feats);
  return r;
}

static int run_info(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = cli_no_args(ctx, argc, argv);
  if (rc >= 0)
    return rc;
  Quilt__V1__GetSystemInfoRequest req = QUILT__V1__GET_SYSTEM_INFO_REQUEST__INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  rc = cli_unary(ctx, QCLIENT_QUILT("GetSystemInfo"), &req.base,
                 &quilt__v1__system_info__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  const Quilt__V1__SystemInfo *info = (const Quilt__V1__SystemInfo *)resp;
  if (ctx->json) {
    info_json(ctx->out, info);
    return CLI_EXIT_OK;
  }
  if (info_text(ctx->out, info) < 0) {
    struct qerr err = QERR_INIT;
    qerr_set(&err, ENOMEM, "out of memory");
    return cli_error("info", &err);
  }
  return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_info = {
    .name = "info",
    .summary = "Show the daemon's version, host and resource counts",
    .usage = "info [--json]\n"
             "\n"
             "Shows the daemon's version, the host kernel, cgroup mode, rootfs driver,\n"
             "io_uring features in use, and how many containers and images it manages.\n"
             "\n"
             "Options:\n"
             "      --json   print a JSON object\n"
             "  -h, --help   show this help\n",
    .run = run_info,
};

/* ------------------------------------------------------------ health */

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;
#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING

static const char *status_text(serving_status st, char *buf, size_t cap) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
      &grpc__health__v1__health_check_response__serving_status__descriptor, (int)st);
  if (v)
    return v->name;
  snprintf(buf, cap, "UNKNOWN_STATUS_%d", (int)st);
  return buf;
}

static int print_health(const struct cli_ctx *ctx, const char *service, serving_status st) {
  char buf[32];
  const char *name = status_text(st, buf, sizeof buf);
  if (ctx->json) {
    struct json_out j;
    json_init(&j, ctx->out, true);
    json_begin_object(&j, NULL);
    json_string(&j, "service", service);
    json_string(&j, "status", name);
    json_bool(&j, "serving", st == SERVING);
    json_end_object(&j);
    json_finish(&j);
  } else {
    fprintf(ctx->out, "%s\n", name);
  }
  return st == SERVING ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* One Health/Check call; *st is set on success. */
static int health_check(struct qclient *c, const char *service, uint64_t timeout_ns,
                        serving_status *st, struct qerr *err) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = qclient_unary(c, QCLIENT_HEALTH("Check"), &req.base,
                        &grpc__health__v1__health_check_response__descriptor, &resp, timeout_ns,
                        err);
  if (r == 0)
    *st = ((Grpc__Health__V1__HealthCheckResponse *)resp)->status;
  return r;
}

/* ---- --wait: until the daemon is up and reports SERVING, or the deadline */

struct health_wait {
  uint64_t deadline; /* monotonic ns */
  uint64_t timeout_ns;
  serving_status last;
  bool seen; /* any status received yet */
};

static uint64_t time_left(const struct health_wait *w) {
  uint64_t now = clock_mono_ns();
  return now < w->deadline ? w->deadline - now : 0;
}

static void nap_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / QCLIENT_NS_PER_SEC), (long)(ns % QCLIENT_NS_PER_SEC)};
  nanosleep(&ts, NULL);
}

static int deadline_error(const struct health_wait *w, struct qerr *err) {
  char buf[32];
  return qerr_status(err, GRPC_DEADLINE_EXCEEDED, ETIMEDOUT,
                     "not SERVING within %gs (last status: %s)", (double)w->timeout_ns / 1e9,
                     w->seen ? status_text(w->last, buf, sizeof buf) : "none");
}

/* A daemon that is still starting has no socket yet, or refuses: retry. */
static int wait_connect(struct cli_ctx *ctx, struct health_wait *w, struct qerr *err) {
  for (;;) {
    int r = cli_connect(ctx, err);
    if (r == 0 || (r != -ENOENT && r != -ECONNREFUSED))
      return r;
    if (time_left(w) == 0)
      return r;
    nap_ns(time_left(w) < HEALTH_POLL_NS ? time_left(w) : HEALTH_POLL_NS);
  }
}

static int on_watch(void *arg, ProtobufCMessage *msg) {
  struct health_wait *w = arg;
  w->last = ((Grpc__Health__V1__HealthCheckResponse *)msg)->status;
  w->seen = true;
  return w->last == SERVING; /* 1 stops the stream: we have our answer */
}

/* Falls back to polling Check for servers without Health/Watch. */
static int poll_check(struct qclient *c, const char *service, struct health_wait *w,
                      struct qerr *err) {
  for (;;) {
    if (time_left(w) == 0)
      return deadline_error(w, err);
    int r = health_check(c, service, time_left(w), &w->last, err);
    if (r < 0 && err->status == GRPC_DEADLINE_EXCEEDED)
      return deadline_error(w, err);
    if (r < 0 || w->last == SERVING)
      return r;
    w->seen = true;
    uint64_t left = time_left(w);
    nap_ns(left < HEALTH_POLL_NS ? left : HEALTH_POLL_NS);
  }
}

static int health_wait(struct cli_ctx *ctx, const char *service, uint64_t timeout_ns,
                       serving_status *st, struct qerr *err) {
  struct health_wait w = {.deadline = clock_mono_ns() + timeout_ns, .timeout_ns = timeout_ns};
  int r = wait_connect(ctx, &w, err);
  if (r < 0)
    return r;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  r = qclient_stream(ctx->client, QCLIENT_HEALTH("Watch"), &req.base,
                     &grpc__health__v1__health_check_response__descriptor, on_watch, &w,
                     time_left(&w), err);
  bool no_watch = r < 0 && err->status == GRPC_UNIMPLEMENTED;
  bool watch_ended = r == 0 && w.last != SERVING; /* the server closed it early */
  if (no_watch || watch_ended)
    r = poll_check(ctx->client, service, &w, err);
  else if (r < 0 && err->status == GRPC_DEADLINE_EXCEEDED)
    r = deadline_error(&w, err);
  *st = w.last;
  return r;
}

static const struct option health_opts[] = {
    {"service", required_argument, NULL, 's'},
    {"wait", no_argument, NULL, 'w'},
    {NULL, 0, NULL, 0},
};

static int parse_health(struct cli_ctx *ctx, int argc, char **argv, const char **service,
                        bool *wait) {
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "s:w", health_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    if (c == 's')
      *service = optarg;
    else
      *wait = true;
  }
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  return -1;
}

static int run_health(struct cli_ctx *ctx, int argc, char **argv) {
  const char *service = "";
  bool wait = false;
  int rc = parse_health(ctx, argc, argv, &service, &wait);
  if (rc >= 0)
    return rc;
  struct qerr err = QERR_INIT;
  serving_status st = 0;
  uint64_t timeout = cli_timeout(ctx, wait ? CLI_DEFAULT_TIMEOUT_NS : HEALTH_TIMEOUT_NS);
  if (wait) {
    rc = health_wait(ctx, service, timeout ? timeout : HEALTH_FOREVER_NS, &st, &err);
    if (rc < 0 && !ctx->client)
      return cli_error_connect(&err);
  } else {
    struct qclient *c = cli_client(ctx);
    if (!c)
      return CLI_EXIT_FAIL;
    rc = health_check(c, service, timeout, &st, &err);
  }
  if (rc < 0)
    return cli_error("health", &err);
  return print_health(ctx, service, st);
}

const struct cli_command cli_cmd_health = {
    .name = "health",
    .summary = "Check that the daemon is serving (exit 0 only when SERVING)",
    .usage = "health [--service NAME] [--wait] [--json]\n"
             "\n"
             "Asks the daemon's gRPC health service and prints SERVING, NOT_SERVING,\n"
             "SERVICE_UNKNOWN or UNKNOWN. Exits 0 only when the answer is SERVING.\n"
             "\n"
             "Options:\n"
             "  -s, --service NAME   check one service (e.g. quilt.v1.Quilt); default: the\n"
             "                       daemon as a whole\n"
             "  -w, --wait           wait until SERVING, also for the daemon to start\n"
             "                       (bounded by --timeout, default 30s)\n"
             "      --json           print a JSON object\n"
             "  -h, --help           show this help\n",
    .run = run_health,
};
