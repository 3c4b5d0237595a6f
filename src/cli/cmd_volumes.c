/* `volume create|ls|rm|prune` (and `volumes`, the same as `volume ls`):
 * named volumes, kept under the daemon's root. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"
#include "common/cleanup.h"
#include "common/clock.h"

typedef Quilt__V1__CreateVolumeRequest__LabelsEntry create_label;

static int oom(struct cli_ctx *ctx) {
  struct qerr err = QERR_INIT;
  qerr_set(&err, ENOMEM, "out of memory");
  return cli_error(ctx->cmd->name, &err);
}

/* ------------------------------------------------------------ create */

static const struct option create_opts[] = {
    {"label", required_argument, NULL, 'l'},
    {NULL, 0, NULL, 0},
};

static int add_label(struct cli_ctx *ctx, Quilt__V1__CreateVolumeRequest *req,
                     create_label *items, char *v) {
  char *eq = strchr(v, '=');
  if (v[0] == '=' || !v[0])
    return cli_cmd_usage_error(ctx, "invalid --label '%s' (expected KEY=VALUE)", v);
  create_label *e = &items[req->n_labels];
  *e = (create_label)QUILT__V1__CREATE_VOLUME_REQUEST__LABELS_ENTRY__INIT;
  if (eq)
    *eq = 0;
  e->key = v;
  e->value = eq ? eq + 1 : "";
  req->labels[req->n_labels++] = e;
  return -1;
}

static void print_volume(struct cli_ctx *ctx, const Quilt__V1__Volume *v) {
  if (ctx->json)
    json_print_message(ctx->out, &v->base, true);
  else
    fprintf(ctx->out, "%s\n", v->name);
}

static int run_create(struct cli_ctx *ctx, int argc, char **argv) {
  Quilt__V1__CreateVolumeRequest req = QUILT__V1__CREATE_VOLUME_REQUEST__INIT;
  cleanup_free create_label *items = calloc((size_t)argc + 1, sizeof *items);
  cleanup_free create_label **ptrs = calloc((size_t)argc + 1, sizeof *ptrs);
  if (!items || !ptrs)
    return oom(ctx);
  req.labels = ptrs;
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "l:", create_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    int rc = add_label(ctx, &req, items, optarg);
    if (rc >= 0)
      return rc;
  }
  if (optind != argc - 1)
    return cli_cmd_usage_error(ctx, optind >= argc ? "missing volume name"
                                                   : "give one volume name");
  req.name = argv[optind];
  cleanup_msg ProtobufCMessage *resp = NULL;
  int rc = cli_unary(ctx, QCLIENT_QUILT("CreateVolume"), &req.base,
                     &quilt__v1__volume__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc == CLI_EXIT_OK)
    print_volume(ctx, (const Quilt__V1__Volume *)resp);
  return rc;
}

/* ------------------------------------------------------------ ls */

static int volumes_table(struct cli_ctx *ctx, const Quilt__V1__ListVolumesResponse *l) {
  static const char *const headers[] = {"NAME", "SIZE", "CREATED", "USED BY"};
  struct table t;
  if (table_init(&t, 4, headers) < 0)
    return -ENOMEM;
  int64_t now = clock_real_ns();
  int rc = 0;
  for (size_t i = 0; i < l->n_volumes && rc == 0; i++) {
    const Quilt__V1__Volume *v = l->volumes[i];
    char size[32], age[48], users[32];
    fmt_bytes(v->size_bytes, size, sizeof size);
    fmt_age(v->created_ns, now, age, sizeof age);
    snprintf(users, sizeof users, "%zu", v->n_in_use_by);
    const char *cells[] = {v->name, size, age, users};
    rc = table_add_row(&t, cells);
  }
  if (rc == 0)
    table_print(&t, ctx->out);
  table_free(&t);
  return rc;
}

static const struct option ls_opts[] = {
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};

static int run_ls(struct cli_ctx *ctx, int argc, char **argv) {
  bool quiet = false;
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "q", ls_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    quiet = true;
  }
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  Quilt__V1__ListVolumesRequest req = QUILT__V1__LIST_VOLUMES_REQUEST__INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int rc = cli_unary(ctx, QCLIENT_QUILT("ListVolumes"), &req.base,
                     &quilt__v1__list_volumes_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  const Quilt__V1__ListVolumesResponse *l = (const void *)resp;
  if (ctx->json) {
    struct json_out j;
    json_init(&j, ctx->out, true);
    json_begin_array(&j, NULL);
    for (size_t i = 0; i < l->n_volumes; i++)
      json_message(&j, NULL, &l->volumes[i]->base);
    json_end_array(&j);
    json_finish(&j);
  } else if (quiet) {
    for (size_t i = 0; i < l->n_volumes; i++)
      fprintf(ctx->out, "%s\n", l->volumes[i]->name);
  } else if (volumes_table(ctx, l) < 0) {
    return oom(ctx);
  }
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ rm */

static int rm_one(struct cli_ctx *ctx, const char *name, struct ctr_each *each,
                  struct qerr *err) {
  Quilt__V1__RemoveVolumeRequest req = QUILT__V1__REMOVE_VOLUME_REQUEST__INIT;
  req.name = (char *)name;
  req.force = *(const bool *)each->arg;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("RemoveVolume"), &req.base,
                   &quilt__v1__remove_volume_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS,
                   err);
  return r < 0 ? r : ctr_print_ref(ctx, each, name);
}

static const struct option rm_opts[] = {
    {"force", no_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

static int run_rm(struct cli_ctx *ctx, int argc, char **argv) {
  int c, code = CLI_EXIT_OK;
  bool force = false;
  while ((c = cli_getopt(ctx, argc, argv, "f", rm_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    force = true;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing volume name");
  return ctr_for_each(ctx, argc, argv, optind, rm_one, &force);
}

/* ------------------------------------------------------------ prune */

static int run_prune(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = cli_no_args(ctx, argc, argv);
  if (rc >= 0)
    return rc;
  Quilt__V1__PruneVolumesRequest req = QUILT__V1__PRUNE_VOLUMES_REQUEST__INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  rc = cli_unary(ctx, QCLIENT_QUILT("PruneVolumes"), &req.base,
                 &quilt__v1__prune_volumes_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  const Quilt__V1__PruneVolumesResponse *p = (const void *)resp;
  if (ctx->json) {
    json_print_message(ctx->out, resp, true);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < p->n_removed; i++)
    fprintf(ctx->out, "%s\n", p->removed[i]);
  fflush(ctx->out);
  char size[32];
  fmt_bytes(p->reclaimed_bytes, size, sizeof size);
  fprintf(stderr, "Removed %zu volume%s, reclaimed %s\n", p->n_removed,
          p->n_removed == 1 ? "" : "s", size);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ volume SUBCOMMAND */

static const struct cli_command cmd_create = {
    .name = "volume create",
    .summary = "Create a named volume",
    .usage = "volume create [-l KEY=VALUE]... [--json] NAME\n"
             "\n"
             "Creates a volume: a directory under the daemon's root that containers mount\n"
             "with -v NAME:/PATH or --mount type=volume,source=NAME,target=/PATH (which\n"
             "also create it when missing). NAME: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}.\n"
             "\n"
             "Options:\n"
             "  -l, --label KEY=VALUE  attach a label (repeatable)\n"
             "      --json             print the Volume message\n"
             "  -h, --help             show this help\n",
    .run = run_create,
};

#define LS_USAGE(name)                                                          \
  name " [-q] [--json]\n"                                                       \
       "\n"                                                                     \
       "Lists volumes: name, size on disk, age and how many containers (in any\n" \
       "state) mount it.\n"                                                     \
       "\n"                                                                     \
       "Options:\n"                                                             \
       "  -q, --quiet   print only names\n"                                     \
       "      --json    print a JSON array of Volume messages\n"                \
       "  -h, --help    show this help\n"

static const struct cli_command cmd_ls = {
    .name = "volume ls",
    .summary = "List volumes",
    .usage = LS_USAGE("volume ls"),
    .run = run_ls,
};

static const struct cli_command cmd_rm = {
    .name = "volume rm",
    .summary = "Remove volumes",
    .usage = "volume rm [-f] [--json] NAME...\n"
             "\n"
             "Removes each volume and its files. A volume that a container (in any state)\n"
             "mounts is refused without -f. Goes on past failures; exits 1 if any failed.\n"
             "\n"
             "Options:\n"
             "  -f, --force   remove it even while containers use it\n"
             "      --json    print a JSON array of {id: NAME}\n"
             "  -h, --help    show this help\n",
    .run = run_rm,
};

static const struct cli_command cmd_prune = {
    .name = "volume prune",
    .summary = "Remove volumes no container uses",
    .usage = "volume prune [--json]\n"
             "\n"
             "Removes every volume no container (in any state) mounts; prints their names,\n"
             "then the space reclaimed on stderr.\n"
             "\n"
             "Options:\n"
             "      --json    print the PruneVolumesResponse\n"
             "  -h, --help    show this help\n",
    .run = run_prune,
};

static const struct {
  const char *name;
  const struct cli_command *cmd;
} subcommands[] = {
    {"create", &cmd_create}, {"ls", &cmd_ls},       {"list", &cmd_ls},
    {"rm", &cmd_rm},         {"remove", &cmd_rm},   {"prune", &cmd_prune},
};

static int run_volume(struct cli_ctx *ctx, int argc, char **argv) {
  if (argc < 2)
    return cli_cmd_usage_error(ctx, "missing subcommand: create, ls, rm or prune");
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    cli_print_usage(ctx->cmd, stdout);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++) {
    if (strcmp(argv[1], subcommands[i].name) != 0)
      continue;
    ctx->cmd = subcommands[i].cmd;
    optind = 0; /* glibc: rescan from argv[1] of the subcommand's own argv */
    return ctx->cmd->run(ctx, argc - 1, argv + 1);
  }
  return cli_cmd_usage_error(ctx, "unknown subcommand '%s' (expected create, ls, rm or prune)",
                             argv[1]);
}

const struct cli_command cli_cmd_volume = {
    .name = "volume",
    .summary = "Manage volumes: volume create | ls | rm | prune",
    .usage = "volume SUBCOMMAND [ARGS...]\n"
             "\n"
             "Subcommands:\n"
             "  create NAME       create a volume\n"
             "  ls, list          list volumes (same as 'volumes')\n"
             "  rm, remove        remove volumes\n"
             "  prune             remove volumes no container uses\n"
             "\n"
             "Run 'quilt-cli volume SUBCOMMAND --help' for a subcommand's options.\n",
    .run = run_volume,
};

const struct cli_command cli_cmd_volumes = {
    .name = "volumes",
    .summary = "List volumes",
    .usage = LS_USAGE("volumes"),
    .run = run_ls,
};
