/* `events`: the daemon's lifecycle events as they happen (WatchEvents). */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"
#include "grpc/status.h"

#define TYPE_PREFIX "EVENT_TYPE_"
#define MAX_TYPES 32

/* "created" for EVENT_TYPE_CREATED; "unknown" for values we don't know. */
static void event_type_name(int type, char *buf, size_t cap) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&quilt__v1__event_type__descriptor, type);
  const char *name = v ? v->name + strlen(TYPE_PREFIX) : "unknown";
  size_t i = 0;
  for (; name[i] && i + 1 < cap; i++)
    buf[i] = (char)tolower((unsigned char)name[i]);
  buf[i] = 0;
}

/* "created", "CREATED", "image-imported", ...: the EventType, or -1. */
static int parse_event_type(const char *s) {
  const ProtobufCEnumDescriptor *d = &quilt__v1__event_type__descriptor;
  if (strncasecmp(s, TYPE_PREFIX, strlen(TYPE_PREFIX)) == 0)
    s += strlen(TYPE_PREFIX);
  for (unsigned i = 0; i < d->n_values; i++) {
    const char *name = d->values[i].name + strlen(TYPE_PREFIX);
    size_t k = 0;
    while (name[k] && s[k] && (tolower((unsigned char)s[k]) == tolower((unsigned char)name[k]) ||
                               (s[k] == '-' && name[k] == '_')))
      k++;
    if (!name[k] && !s[k] && d->values[i].value > 0)
      return d->values[i].value;
  }
  return -1;
}

struct events_args {
  Quilt__V1__WatchEventsRequest req;
  Quilt__V1__EventType types[MAX_TYPES];
  const char *container; /* --container as given */
  const char *match;     /* filter here: the daemon could not resolve it */
  bool heartbeats;
};

enum { OPT_TYPE = 0x200, OPT_CONTAINER, OPT_HEARTBEAT_SECS, OPT_HEARTBEATS };

static const struct option events_opts[] = {
    {"type", required_argument, NULL, OPT_TYPE},
    {"container", required_argument, NULL, OPT_CONTAINER},
    {"heartbeat-seconds", required_argument, NULL, OPT_HEARTBEAT_SECS},
    {"heartbeats", no_argument, NULL, OPT_HEARTBEATS},
    {NULL, 0, NULL, 0},
};

static int add_type(struct cli_ctx *ctx, struct events_args *a, const char *s) {
  int t = parse_event_type(s);
  if (t < 0)
    return cli_cmd_usage_error(ctx, "unknown event type '%s' (one of: created, started, exited, "
                               "oom, removed, failed, paused, resumed, image_imported, "
                               "image_removed, heartbeat)", s);
  if (t == QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT)
    a->heartbeats = true; /* asking for them means showing them */
  for (size_t i = 0; i < a->req.n_types; i++)
    if (a->types[i] == (Quilt__V1__EventType)t)
      return -1;
  if (a->req.n_types < MAX_TYPES)
    a->types[a->req.n_types++] = (Quilt__V1__EventType)t;
  return -1;
}

static int events_option(struct cli_ctx *ctx, struct events_args *a, int c) {
  uint64_t n;
  switch (c) {
  case OPT_TYPE:
    return add_type(ctx, a, optarg);
  case OPT_CONTAINER:
    a->container = optarg;
    return -1;
  case OPT_HEARTBEAT_SECS:
    if (parse_u64(optarg, 86400, &n) < 0 || n == 0)
      return cli_cmd_usage_error(ctx, "invalid --heartbeat-seconds '%s' (expected 1 to 86400)",
                                 optarg);
    a->req.heartbeat_seconds = (uint32_t)n;
    return -1;
  default:
    a->heartbeats = true;
    return -1;
  }
}

static int parse_events(struct cli_ctx *ctx, int argc, char **argv, struct events_args *a) {
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "", events_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    int rc = events_option(ctx, a, c);
    if (rc >= 0)
      return rc;
  }
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  a->req.types = a->types;
  return -1;
}

/* The daemon filters on the full id only: resolve a name or prefix first.
 * One that names no container yet (watching for it to be created) is
 * matched here instead. */
static int resolve_container(struct cli_ctx *ctx, struct events_args *a, ProtobufCMessage **owner,
                             struct qerr *err) {
  if (!a->container)
    return 0;
  if (ctr_get(ctx, a->container, owner, err) == 0) {
    a->req.container_id = ((Quilt__V1__Container *)*owner)->id;
    return 0;
  }
  if (err->status != GRPC_NOT_FOUND)
    return err->code;
  qerr_clear(err);
  a->match = a->container;
  return 0;
}

static bool wanted(const struct events_args *a, const Quilt__V1__Event *ev) {
  if (ev->type == QUILT__V1__EVENT_TYPE__EVENT_TYPE_HEARTBEAT)
    return a->heartbeats;
  if (!a->match)
    return true;
  return strcmp(ev->container_name, a->match) == 0 ||
         (ev->container_id[0] && strncmp(ev->container_id, a->match, strlen(a->match)) == 0);
}

struct events_sink {
  struct cli_ctx *ctx;
  const struct events_args *args;
  struct qerr *err;
};

static void print_event(FILE *f, const Quilt__V1__Event *ev) {
  char ts[64], type[32];
  fmt_time(ev->timestamp_ns, true, ts, sizeof ts);
  event_type_name(ev->type, type, sizeof type);
  fprintf(f, "%s %s %.12s %s", ts, type, ev->container_id[0] ? ev->container_id : "-",
          ev->container_name[0] ? ev->container_name : "-");
  if (ev->detail[0])
    fprintf(f, " %s", ev->detail);
  fputc('\n', f);
}

static int on_event(void *arg, ProtobufCMessage *msg) {
  struct events_sink *s = arg;
  const Quilt__V1__Event *ev = (const Quilt__V1__Event *)msg;
  if (!wanted(s->args, ev))
    return 0;
  if (s->ctx->json)
    json_print_message(s->ctx->out, msg, false);
  else
    print_event(s->ctx->out, ev);
  if (fflush(s->ctx->out) != 0 || ferror(s->ctx->out)) {
    int e = errno ? errno : EIO;
    return qerr_set(s->err, e, "writing output: %s", strerror(e));
  }
  return 0;
}

static int run_events(struct cli_ctx *ctx, int argc, char **argv) {
  struct events_args a = {.req = QUILT__V1__WATCH_EVENTS_REQUEST__INIT};
  int rc = parse_events(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;
  struct qerr err = QERR_INIT;
  cleanup_msg ProtobufCMessage *ctr = NULL;
  if (resolve_container(ctx, &a, &ctr, &err) < 0)
    return ctr_report(ctx, &err);
  struct events_sink sink = {.ctx = ctx, .args = &a, .err = &err};
  rc = ctr_stream(ctx, QCLIENT_QUILT("WatchEvents"), &a.req.base, &quilt__v1__event__descriptor,
                  on_event, &sink, 0, &err);
  /* --timeout bounds how long to watch: reaching it is the normal end. */
  if (rc < 0 && !(ctx->timeout_set && err.status == GRPC_DEADLINE_EXCEEDED))
    return ctr_report(ctx, &err);
  return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_events = {
    .name = "events",
    .summary = "Print container lifecycle events as they happen",
    .usage = "events [--type TYPE]... [--container CONTAINER] [--heartbeat-seconds N]\n"
             "              [--heartbeats] [--json]\n"
             "\n"
             "Prints one line per event until interrupted:\n"
             "  TIME TYPE CONTAINER-ID NAME [DETAIL]\n"
             "DETAIL is the exit code for 'exited' and the reason for 'failed'. With the\n"
             "global --timeout SECS, watching stops after SECS seconds (exit 0).\n"
             "\n"
             "Options:\n"
             "      --type TYPE              only these types (repeatable): created, started,\n"
             "                               exited, oom, removed, failed, paused, resumed,\n"
             "                               image_imported, image_removed\n"
             "      --container CONTAINER    only events of this container (id, id prefix or\n"
             "                               name; may name one not created yet)\n"
             "      --heartbeat-seconds N    ask the daemon for a heartbeat every N seconds\n"
             "      --heartbeats             print heartbeats too (hidden by default)\n"
             "      --json                   one JSON Event per line\n"
             "  -h, --help                   show this help\n",
    .run = run_events,
};
