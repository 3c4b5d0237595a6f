/* Container commands on existing containers: start, status, list/ps, stop,
 * kill, pause/unpause, remove/rm, wait, stats. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "grpc/status.h"

#define STOP_DEFAULT_SECS 10       /* the daemon's, when we send 0 */
#define STOP_GRACE_NS (30 * QCLIENT_NS_PER_SEC) /* deadline beyond the stop timeout */
#define COMMAND_COLUMN 40          /* code points of COMMAND in tables */
#define UNLIMITED_BYTES (1ull << 60) /* cgroup v1 reports "no limit" as ~2^63 */

static int oom(struct cli_ctx *ctx) {
  struct qerr err = QERR_INIT;
  qerr_set(&err, ENOMEM, "out of memory");
  return cli_error(ctx->cmd->name, &err);
}

/* ------------------------------------------------------------ start */

static int start_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                     struct qerr *err) {
  Quilt__V1__StartContainerRequest req = QUILT__V1__START_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("StartContainer"), &req.base,
                   &quilt__v1__start_container_response__descriptor, &resp,
                   CLI_DEFAULT_TIMEOUT_NS, err);
  if (r < 0)
    return r;
  const Quilt__V1__StartContainerResponse *st = (const void *)resp;
  if (!ctx->json)
    fprintf(ctx->out, "%s\n", ref);
  else if (st->container)
    json_message(&each->j, NULL, &st->container->base);
  return 0;
}

static int run_start(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = ctr_ids_only(ctx, argc, argv, 1, 0);
  return rc >= 0 ? rc : ctr_for_each(ctx, argc, argv, optind, start_one, NULL);
}

const struct cli_command cli_cmd_start = {
    .name = "start",
    .summary = "Start created containers",
    .usage = "start [--json] CONTAINER...\n"
             "\n"
             "Starts each container (an id, a unique id prefix or a name) and prints it\n"
             "once it runs. Goes on past failures; exits 1 if any failed.\n"
             "\n"
             "Options:\n"
             "      --json   print a JSON array of the started containers\n"
             "  -h, --help   show this help\n",
    .run = run_start,
};

/* ------------------------------------------------------------ status */

static void labels_text(const Quilt__V1__ContainerSpec *s, struct strbuf *b) {
  for (size_t i = 0; s && i < s->n_labels; i++)
    strbuf_printf(b, "%s%s=%s", i ? ", " : "", s->labels[i]->key, s->labels[i]->value);
  if (!s || s->n_labels == 0)
    strbuf_printf(b, "-");
}

/* What the container asked beyond the default hardening, in the flags'
 * words; "default" when nothing. */
static void security_text(const Quilt__V1__ContainerSpec *s, struct strbuf *b) {
  const Quilt__V1__Security *sec = s ? s->security : NULL;
  const char *sep = "";
  if (sec && sec->seccomp_unconfined)
    strbuf_printf(b, "seccomp=unconfined"), sep = ", ";
  if (sec && sec->unmask_paths)
    strbuf_printf(b, "%ssystempaths=unconfined", sep), sep = ", ";
  for (size_t i = 0; sec && i < sec->n_cap_add; i++, sep = ", ")
    strbuf_printf(b, "%scap-add=%s", sep, sec->cap_add[i]);
  for (size_t i = 0; sec && i < sec->n_cap_drop; i++, sep = ", ")
    strbuf_printf(b, "%scap-drop=%s", sep, sec->cap_drop[i]);
  if (!sep[0])
    strbuf_printf(b, "default");
}

struct status_text {
  char exit_code[16], sig[32], pid[16], created[48], started[48], finished[48], cmd[1024];
  struct strbuf labels, security;
};

static void status_fields(const Quilt__V1__Container *c, struct status_text *t) {
  bool exited = c->state == QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_EXITED;
  snprintf(t->exit_code, sizeof t->exit_code, "%" PRId32, c->exit_code);
  if (!exited)
    strcpy(t->exit_code, "-");
  fmt_signal(c->exit_signal, t->sig, sizeof t->sig);
  snprintf(t->pid, sizeof t->pid, "%" PRId32, c->pid);
  if (c->pid <= 0)
    strcpy(t->pid, "-");
  fmt_time(c->created_at_ns, false, t->created, sizeof t->created);
  fmt_time(c->started_at_ns, false, t->started, sizeof t->started);
  fmt_time(c->finished_at_ns, false, t->finished, sizeof t->finished);
  fmt_command(c->spec, t->cmd, sizeof t->cmd);
  labels_text(c->spec, &t->labels);
  security_text(c->spec, &t->security);
}

static const char *or_dash(const char *s) { return s && s[0] ? s : "-"; }

static int status_text(FILE *f, const Quilt__V1__Container *c) {
  struct status_text t = {.labels = STRBUF_INIT, .security = STRBUF_INIT};
  status_fields(c, &t);
  const char *image = c->spec && c->spec->image[0] ? c->spec->image : "(default)";
  const char *rows[][2] = {
      {"ID:", c->id},          {"Name:", or_dash(c->name)},
      {"State:", ctr_state_name(c->state)},
      {"Exit code:", t.exit_code},
      {"Signal:", t.sig},      {"OOM killed:", c->oom_killed ? "yes" : "no"},
      {"Failure:", or_dash(c->failure_reason)},
      {"Command:", t.cmd},     {"Image:", image},
      {"Labels:", strbuf_cstr(&t.labels)},
      {"Created:", t.created}, {"Started:", t.started},
      {"Finished:", t.finished}, {"Pid:", t.pid},
      {"IP address:", or_dash(c->ip_address)},
      {"Security:", strbuf_cstr(&t.security)},
  };
  struct table tab;
  int r = table_init(&tab, 2, NULL);
  for (size_t i = 0; i < ARRAY_SIZE(rows) && r == 0; i++)
    r = table_add_row(&tab, rows[i]);
  if (r == 0)
    table_print(&tab, f);
  table_free(&tab);
  strbuf_free(&t.labels);
  strbuf_free(&t.security);
  return r;
}

static int run_status(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = ctr_ids_only(ctx, argc, argv, 1, 1);
  if (rc >= 0)
    return rc;
  struct qerr err = QERR_INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  if (ctr_get(ctx, argv[optind], &resp, &err) < 0)
    return ctr_report(ctx, &err);
  if (ctx->json)
    json_print_message(ctx->out, resp, true);
  else if (status_text(ctx->out, (const Quilt__V1__Container *)resp) < 0)
    return oom(ctx);
  return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_status = {
    .name = "status",
    .summary = "Show one container's state, exit status and times",
    .usage = "status [--json] CONTAINER\n"
             "\n"
             "Shows the container's state, exit code, signal, whether it was OOM-killed,\n"
             "why it failed to start, its command, and when it was created, started and\n"
             "finished (RFC 3339). CONTAINER is an id, a unique id prefix or a name.\n"
             "\n"
             "Options:\n"
             "      --json   print the Container message as JSON\n"
             "  -h, --help   show this help\n",
    .run = run_status,
};

/* ------------------------------------------------------------ list */

typedef Quilt__V1__ListContainersRequest__LabelFilterEntry filter_entry;

struct list_args {
  Quilt__V1__ListContainersRequest req;
  /* Room for argc filters: each --label takes an argument. */
  filter_entry *items;
  filter_entry **ptrs;
  bool quiet;
};

static const struct option list_opts[] = {
    {"all", no_argument, NULL, 'a'},
    {"label", required_argument, NULL, 'l'},
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};

static int list_init(struct list_args *a, int argc) {
  *a = (struct list_args){.req = QUILT__V1__LIST_CONTAINERS_REQUEST__INIT};
  a->items = calloc((size_t)argc + 1, sizeof *a->items);
  a->ptrs = calloc((size_t)argc + 1, sizeof *a->ptrs);
  a->req.label_filter = a->ptrs;
  return a->items && a->ptrs ? 0 : -ENOMEM;
}

static void list_free(struct list_args *a) {
  for (size_t i = 0; i < a->req.n_label_filter; i++)
    free(a->items[i].key);
  free(a->items);
  free(a->ptrs);
}

static int add_filter(struct cli_ctx *ctx, struct list_args *a, const char *v) {
  size_t klen = strcspn(v, "=");
  if (klen == 0)
    return cli_cmd_usage_error(ctx, "invalid --label '%s' (expected KEY=VALUE)", v);
  char *key = strndup(v, klen);
  if (!key)
    return oom(ctx);
  filter_entry *e = &a->items[a->req.n_label_filter];
  *e = (filter_entry)QUILT__V1__LIST_CONTAINERS_REQUEST__LABEL_FILTER_ENTRY__INIT;
  e->key = key;
  e->value = (char *)(v[klen] ? v + klen + 1 : "");
  a->ptrs[a->req.n_label_filter++] = e;
  return -1;
}

static int parse_list(struct cli_ctx *ctx, int argc, char **argv, struct list_args *a) {
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "al:q", list_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    int rc = c == 'l' ? add_filter(ctx, a, optarg) : -1;
    if (rc >= 0)
      return rc;
    a->req.all |= c == 'a';
    a->quiet |= c == 'q';
  }
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  return -1;
}

static void container_row(const Quilt__V1__Container *c, int64_t now, char cells[6][1024]) {
  snprintf(cells[0], sizeof cells[0], "%.12s", c->id);
  snprintf(cells[1], sizeof cells[1], "%s", or_dash(c->name));
  snprintf(cells[2], sizeof cells[2], "%s", ctr_state_name(c->state));
  ctr_status_text(c, now, cells[3], sizeof cells[3]);
  fmt_age(c->created_at_ns, now, cells[4], sizeof cells[4]);
  fmt_command(c->spec, cells[5], sizeof cells[5]);
  truncate_text(cells[5], sizeof cells[5], COMMAND_COLUMN);
}

static int list_table(FILE *f, const Quilt__V1__ListContainersResponse *l) {
  static const char *const headers[] = {"ID", "NAME", "STATE", "STATUS", "CREATED", "COMMAND"};
  char cells[6][1024];
  const char *row[6];
  for (size_t i = 0; i < 6; i++)
    row[i] = cells[i];
  int64_t now = clock_real_ns();
  struct table t;
  int r = table_init(&t, 6, headers);
  for (size_t i = 0; i < l->n_containers && r == 0; i++) {
    container_row(l->containers[i], now, cells);
    r = table_add_row(&t, row);
  }
  if (r == 0)
    table_print(&t, f);
  table_free(&t);
  return r;
}

static void list_json(FILE *f, const Quilt__V1__ListContainersResponse *l) {
  struct json_out j;
  json_init(&j, f, true);
  json_begin_array(&j, NULL);
  for (size_t i = 0; i < l->n_containers; i++)
    json_message(&j, NULL, &l->containers[i]->base);
  json_end_array(&j);
  json_finish(&j);
}

static int list_print(struct cli_ctx *ctx, const struct list_args *a,
                      const Quilt__V1__ListContainersResponse *l) {
  if (ctx->json)
    list_json(ctx->out, l);
  else if (a->quiet)
    for (size_t i = 0; i < l->n_containers; i++)
      fprintf(ctx->out, "%s\n", l->containers[i]->id);
  else if (list_table(ctx->out, l) < 0)
    return oom(ctx);
  return CLI_EXIT_OK;
}

static int run_list(struct cli_ctx *ctx, int argc, char **argv) {
  struct list_args a;
  int rc = list_init(&a, argc) < 0 ? oom(ctx) : parse_list(ctx, argc, argv, &a);
  if (rc < 0) {
    cleanup_msg ProtobufCMessage *resp = NULL;
    rc = cli_unary(ctx, QCLIENT_QUILT("ListContainers"), &a.req.base,
                   &quilt__v1__list_containers_response__descriptor, &resp,
                   CLI_DEFAULT_TIMEOUT_NS);
    if (rc == CLI_EXIT_OK)
      rc = list_print(ctx, &a, (const Quilt__V1__ListContainersResponse *)resp);
  }
  list_free(&a);
  return rc;
}

#define LIST_USAGE(name)                                                                   \
  name " [-a] [-q] [--label KEY=VALUE]... [--json]\n"                                      \
       "\n"                                                                                \
       "Lists containers, oldest first: created, running and paused ones, and with\n"      \
       "-a also exited and failed ones.\n"                                                 \
       "\n"                                                                                \
       "Options:\n"                                                                        \
       "  -a, --all               include exited and failed containers\n"                  \
       "  -l, --label KEY=VALUE   only containers with this label (repeatable: all must\n" \
       "                          match)\n"                                                \
       "  -q, --quiet             print only full ids\n"                                   \
       "      --json              print a JSON array of Container messages\n"              \
       "  -h, --help              show this help\n"

const struct cli_command cli_cmd_list = {
    .name = "list",
    .summary = "List containers",
    .usage = LIST_USAGE("list"),
    .run = run_list,
};

const struct cli_command cli_cmd_ps = {
    .name = "ps",
    .summary = "List containers (same as list)",
    .usage = LIST_USAGE("ps"),
    .run = run_list,
};

/* ------------------------------------------------------------ stop */

static int stop_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                    struct qerr *err) {
  Quilt__V1__StopContainerRequest req = QUILT__V1__STOP_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  req.timeout_seconds = *(const uint32_t *)each->arg;
  uint64_t secs = req.timeout_seconds ? req.timeout_seconds : STOP_DEFAULT_SECS;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("StopContainer"), &req.base,
                   &quilt__v1__stop_container_response__descriptor, &resp,
                   secs * QCLIENT_NS_PER_SEC + STOP_GRACE_NS, err);
  if (r < 0)
    return r;
  const Quilt__V1__StopContainerResponse *st = (const void *)resp;
  if (!ctx->json)
    fprintf(ctx->out, "%s\n", ref);
  else if (st->container)
    json_message(&each->j, NULL, &st->container->base);
  return 0;
}

static const struct option stop_opts[] = {
    {"time", required_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
};

static int run_stop(struct cli_ctx *ctx, int argc, char **argv) {
  int c, code = CLI_EXIT_OK;
  uint32_t secs = 0;
  uint64_t v;
  while ((c = cli_getopt(ctx, argc, argv, "t:", stop_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    if (parse_u64(optarg, 86400, &v) < 0 || v == 0)
      return cli_cmd_usage_error(ctx, "invalid -t '%s' (expected seconds from 1 to 86400; "
                                 "use kill to stop at once)", optarg);
    secs = (uint32_t)v;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  return ctr_for_each(ctx, argc, argv, optind, stop_one, &secs);
}

const struct cli_command cli_cmd_stop = {
    .name = "stop",
    .summary = "Stop running containers (SIGTERM, then SIGKILL)",
    .usage = "stop [-t SECS] [--json] CONTAINER...\n"
             "\n"
             "Sends SIGTERM, and SIGKILL if the container has not exited SECS seconds\n"
             "later; prints each container once it has exited. Goes on past failures;\n"
             "exits 1 if any failed.\n"
             "\n"
             "Options:\n"
             "  -t, --time SECS   seconds to wait before SIGKILL (default 10)\n"
             "      --json        print a JSON array of the stopped containers\n"
             "  -h, --help        show this help\n",
    .run = run_stop,
};

/* ------------------------------------------------------------ kill */

static int kill_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                    struct qerr *err) {
  Quilt__V1__KillContainerRequest req = QUILT__V1__KILL_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  req.signal = *(const int *)each->arg;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("KillContainer"), &req.base,
                   &quilt__v1__kill_container_response__descriptor, &resp,
                   CLI_DEFAULT_TIMEOUT_NS, err);
  if (r < 0)
    return r;
  if (!ctx->json) {
    fprintf(ctx->out, "%s\n", ref);
    return 0;
  }
  json_begin_object(&each->j, NULL);
  json_string(&each->j, "id", ref);
  json_int(&each->j, "signal", req.signal);
  json_end_object(&each->j);
  return 0;
}

static const struct option kill_opts[] = {
    {"signal", required_argument, NULL, 's'},
    {NULL, 0, NULL, 0},
};

static int run_kill(struct cli_ctx *ctx, int argc, char **argv) {
  int c, code = CLI_EXIT_OK, sig = SIGKILL;
  while ((c = cli_getopt(ctx, argc, argv, "s:", kill_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    if ((sig = parse_signal(optarg)) < 0)
      return cli_cmd_usage_error(ctx, "invalid signal '%s' (expected a number or a name such "
                                 "as TERM, SIGTERM, KILL, HUP, INT, USR1)", optarg);
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  return ctr_for_each(ctx, argc, argv, optind, kill_one, &sig);
}

const struct cli_command cli_cmd_kill = {
    .name = "kill",
    .summary = "Send a signal to running containers",
    .usage = "kill [-s SIGNAL] [--json] CONTAINER...\n"
             "\n"
             "Signals each container's main process (SIGKILL unless -s says otherwise).\n"
             "Goes on past failures; exits 1 if any failed.\n"
             "\n"
             "Options:\n"
             "  -s, --signal SIG   a number, or a name: TERM, SIGTERM, KILL, HUP, INT, USR1...\n"
             "      --json         print a JSON array of {id, signal}\n"
             "  -h, --help         show this help\n",
    .run = run_kill,
};

/* ------------------------------------------------------------ pause, unpause */

static int freeze_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                      struct qerr *err) {
  bool pause = *(const bool *)each->arg;
  /* Both requests are {id}, both responses {container}: one shape. */
  Quilt__V1__PauseContainerRequest req = QUILT__V1__PAUSE_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, pause ? QCLIENT_QUILT("PauseContainer") : QCLIENT_QUILT("ResumeContainer"),
                   &req.base, &quilt__v1__pause_container_response__descriptor, &resp,
                   CLI_DEFAULT_TIMEOUT_NS, err);
  if (r < 0)
    return r;
  const Quilt__V1__PauseContainerResponse *pr = (const void *)resp;
  if (!ctx->json)
    fprintf(ctx->out, "%s\n", ref);
  else if (pr->container)
    json_message(&each->j, NULL, &pr->container->base);
  return 0;
}

static int run_freeze(struct cli_ctx *ctx, int argc, char **argv, bool pause) {
  int c, code = CLI_EXIT_OK;
  static const struct option none[] = {{NULL, 0, NULL, 0}};
  while ((c = cli_getopt(ctx, argc, argv, "", none, &code)) != -1)
    if (c == CLI_OPT_EXIT)
      return code;
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  return ctr_for_each(ctx, argc, argv, optind, freeze_one, &pause);
}

static int run_pause(struct cli_ctx *ctx, int argc, char **argv) {
  return run_freeze(ctx, argc, argv, true);
}

static int run_unpause(struct cli_ctx *ctx, int argc, char **argv) {
  return run_freeze(ctx, argc, argv, false);
}

const struct cli_command cli_cmd_pause = {
    .name = "pause",
    .summary = "Freeze every process of running containers",
    .usage = "pause [--json] CONTAINER...\n"
             "\n"
             "Freezes each container's processes (cgroup freezer): they use no CPU until\n"
             "unpause. stop, kill and rm -f work on a paused container. Goes on past\n"
             "failures; exits 1 if any failed.\n"
             "\n"
             "Options:\n"
             "      --json   print a JSON array of the paused containers\n"
             "  -h, --help   show this help\n",
    .run = run_pause,
};

#define UNPAUSE_USAGE(name)                                                             \
  name " [--json] CONTAINER...\n"                                                     \
       "\n"                                                                           \
       "Thaws paused containers: their processes run again. Goes on past failures;\n" \
       "exits 1 if any failed.\n"                                                     \
       "\n"                                                                           \
       "Options:\n"                                                                   \
       "      --json   print a JSON array of the resumed containers\n"                \
       "  -h, --help   show this help\n"

const struct cli_command cli_cmd_unpause = {
    .name = "unpause",
    .summary = "Thaw paused containers",
    .usage = UNPAUSE_USAGE("unpause"),
    .run = run_unpause,
};

const struct cli_command cli_cmd_resume = {
    .name = "resume",
    .summary = "Thaw paused containers (same as unpause)",
    .usage = UNPAUSE_USAGE("resume"),
    .run = run_unpause,
};

/* ------------------------------------------------------------ remove */

static int remove_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                      struct qerr *err) {
  Quilt__V1__RemoveContainerRequest req = QUILT__V1__REMOVE_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  req.force = *(const bool *)each->arg;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("RemoveContainer"), &req.base,
                   &quilt__v1__remove_container_response__descriptor, &resp,
                   CLI_DEFAULT_TIMEOUT_NS, err);
  if (r < 0)
    return r;
  return ctr_print_ref(ctx, each, ref);
}

static const struct option remove_opts[] = {
    {"force", no_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

static int run_remove(struct cli_ctx *ctx, int argc, char **argv) {
  int c, code = CLI_EXIT_OK;
  bool force = false;
  while ((c = cli_getopt(ctx, argc, argv, "f", remove_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    force = true;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  return ctr_for_each(ctx, argc, argv, optind, remove_one, &force);
}

#define REMOVE_USAGE(name)                                                             \
  name " [-f] [--json] CONTAINER...\n"                                                 \
       "\n"                                                                            \
       "Removes each container with its files and log. A running one is refused\n"     \
       "unless -f, which kills it first. Goes on past failures; exits 1 if any failed.\n" \
       "\n"                                                                            \
       "Options:\n"                                                                    \
       "  -f, --force   kill a running container first\n"                              \
       "      --json    print a JSON array of {id}\n"                                  \
       "  -h, --help    show this help\n"

const struct cli_command cli_cmd_remove = {
    .name = "remove",
    .summary = "Remove containers",
    .usage = REMOVE_USAGE("remove"),
    .run = run_remove,
};

const struct cli_command cli_cmd_rm = {
    .name = "rm",
    .summary = "Remove containers (same as remove)",
    .usage = REMOVE_USAGE("rm"),
    .run = run_remove,
};

/* ------------------------------------------------------------ wait */

static int wait_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                    struct qerr *err) {
  Quilt__V1__WaitContainerRequest req = QUILT__V1__WAIT_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  cleanup_msg ProtobufCMessage *resp = NULL;
  /* Waiting is the point: no deadline unless --timeout. */
  int r = ctr_call(ctx, QCLIENT_QUILT("WaitContainer"), &req.base,
                   &quilt__v1__wait_container_response__descriptor, &resp, 0, err);
  if (r < 0)
    return r;
  const Quilt__V1__WaitContainerResponse *w = (const void *)resp;
  *(int *)each->arg = w->exit_code & 0xff;
  if (!ctx->json) {
    fprintf(ctx->out, "%" PRId32 "\n", w->exit_code);
    return 0;
  }
  json_begin_object(&each->j, NULL);
  json_string(&each->j, "id", ref);
  json_int(&each->j, "exit_code", w->exit_code);
  json_int(&each->j, "signal", w->signal);
  json_bool(&each->j, "oom_killed", w->oom_killed);
  json_end_object(&each->j);
  return 0;
}

static int run_wait(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = ctr_ids_only(ctx, argc, argv, 1, 0);
  if (rc >= 0)
    return rc;
  int last = 0;
  rc = ctr_for_each(ctx, argc, argv, optind, wait_one, &last);
  return rc != CLI_EXIT_OK ? rc : last;
}

const struct cli_command cli_cmd_wait = {
    .name = "wait",
    .summary = "Wait for containers to exit and print their exit codes",
    .usage = "wait [--json] CONTAINER...\n"
             "\n"
             "Waits for each container in turn to exit and prints its exit code (128+N when\n"
             "killed by signal N). Exits with the last container's code, or 1 if waiting\n"
             "for any failed.\n"
             "\n"
             "Options:\n"
             "      --json   print a JSON array of {id, exit_code, signal, oom_killed}\n"
             "  -h, --help   show this help\n",
    .run = run_wait,
};

/* ------------------------------------------------------------ stats */

static void limit_text(uint64_t bytes, char *buf, size_t cap) {
  if (bytes == 0 || bytes >= UNLIMITED_BYTES)
    snprintf(buf, cap, "none");
  else
    fmt_bytes(bytes, buf, cap);
}

static int stats_text(FILE *f, const Quilt__V1__Stats *s) {
  char cur[32], peak[32], lim[32], cpu[32], pids[32], pids_lim[32];
  fmt_bytes(s->memory_current_bytes, cur, sizeof cur);
  fmt_bytes(s->memory_peak_bytes, peak, sizeof peak);
  limit_text(s->memory_limit_bytes, lim, sizeof lim);
  snprintf(cpu, sizeof cpu, "%.3f s", (double)s->cpu_usage_ns / 1e9);
  snprintf(pids, sizeof pids, "%" PRIu64, s->pids_current);
  snprintf(pids_lim, sizeof pids_lim, "%" PRIu64, s->pids_limit);
  if (s->pids_limit == 0)
    strcpy(pids_lim, "none");
  const char *rows[][2] = {
      {"Memory:", cur},     {"Memory peak:", peak}, {"Memory limit:", lim},
      {"CPU time:", cpu},   {"PIDs:", pids},        {"PIDs limit:", pids_lim},
  };
  struct table t;
  int r = table_init(&t, 2, NULL);
  for (size_t i = 0; i < ARRAY_SIZE(rows) && r == 0; i++)
    r = table_add_row(&t, rows[i]);
  if (r == 0)
    table_print(&t, f);
  table_free(&t);
  return r;
}

static int run_stats(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = ctr_ids_only(ctx, argc, argv, 1, 1);
  if (rc >= 0)
    return rc;
  Quilt__V1__GetStatsRequest req = QUILT__V1__GET_STATS_REQUEST__INIT;
  req.id = argv[optind];
  cleanup_msg ProtobufCMessage *resp = NULL;
  rc = cli_unary(ctx, QCLIENT_QUILT("GetStats"), &req.base, &quilt__v1__stats__descriptor, &resp,
                 CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (ctx->json)
    json_print_message(ctx->out, resp, true);
  else if (stats_text(ctx->out, (const Quilt__V1__Stats *)resp) < 0)
    return oom(ctx);
  return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_stats = {
    .name = "stats",
    .summary = "Show a running container's memory, CPU and process use",
    .usage = "stats [--json] CONTAINER\n"
             "\n"
             "Shows the container's memory use (current, peak, limit), CPU time and number\n"
             "of processes (current, limit), read from its cgroup. Only for running\n"
             "containers.\n"
             "\n"
             "Options:\n"
             "      --json   print the Stats message as JSON\n"
             "  -h, --help   show this help\n",
    .run = run_stats,
};
