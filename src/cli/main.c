/* quilt-cli: global options, the command table and the helpers commands
 * share (cli.h). All state lives in one struct cli_ctx on main's stack. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "grpc/auth.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_run,    &cli_cmd_create, &cli_cmd_start, &cli_cmd_status, &cli_cmd_list,
    &cli_cmd_ps,     &cli_cmd_logs,   &cli_cmd_exec,  &cli_cmd_cp,    &cli_cmd_stop,  &cli_cmd_kill,   &cli_cmd_pause,
    &cli_cmd_unpause, &cli_cmd_resume, &cli_cmd_remove,
    &cli_cmd_rm,     &cli_cmd_wait,   &cli_cmd_events, &cli_cmd_stats, &cli_cmd_import,
    &cli_cmd_images, &cli_cmd_image,  &cli_cmd_rmi,    &cli_cmd_prune, &cli_cmd_volume, &cli_cmd_volumes, &cli_cmd_health,
    &cli_cmd_info,
};

enum { OPT_SOCKET = 0x100, OPT_JSON, OPT_TIMEOUT, OPT_VERSION, OPT_TOKEN_FILE };

static const struct option global_opts[] = {
    {"host", required_argument, NULL, 'H'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void print_help(FILE *f) {
  fputs("Usage: quilt-cli [OPTIONS] COMMAND [ARGS...]\n"
        "\n"
        "Command-line client for quiltd, the Quilt container runtime daemon.\n"
        "\n"
        "Options:\n"
        "  -H, --host ADDR      daemon address: a socket path, unix://PATH or tcp://HOST:PORT\n"
        "                       (default: $QUILT_HOST, else $QUILT_SOCKET, else\n"
        "                       " QUILT_DEFAULT_SOCKET ")\n"
        "      --socket PATH    the same, for a Unix socket\n"
        "      --token-file PATH  send the bearer token in PATH (mode 0600) with every\n"
        "                       call; quiltd needs it over TCP (default: $QUILT_TOKEN_FILE)\n"
        "      --json           print JSON instead of text\n"
        "      --timeout SECS   give up on a call after SECS seconds (0: never)\n"
        "  -h, --help           show this help\n"
        "      --version        show the version\n"
        "\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
    fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
  fputs("\nRun 'quilt-cli COMMAND --help' for a command's options.\n", f);
}

void cli_print_usage(const struct cli_command *cmd, FILE *f) {
  fprintf(f, "Usage: quilt-cli %s", cmd->usage);
}

static const struct cli_command *find_command(const char *name) {
  for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

/* ------------------------------------------------------------ command options */

/* Builds getopt's tables: the command's options plus --help and --json, and
 * ':' first so a missing value is reported as such rather than as unknown. */
static int merge_opts(struct cli_ctx *ctx, const char *shortopts, const struct option *longopts) {
  const char *lead = "";
  if (shortopts[0] == '+') {
    lead = "+";
    shortopts++;
  }
  int n = snprintf(ctx->shortopts, sizeof ctx->shortopts, "%s:%sh", lead, shortopts);
  if (n < 0 || (size_t)n >= sizeof ctx->shortopts)
    return -EINVAL;
  size_t k = 0;
  for (; longopts && longopts[k].name; k++) {
    if (k + 3 > CLI_MAX_OPTS)
      return -EINVAL;
    ctx->opts[k] = longopts[k];
  }
  ctx->opts[k++] = (struct option){"help", no_argument, NULL, 'h'};
  ctx->opts[k++] = (struct option){"json", no_argument, NULL, OPT_JSON};
  ctx->opts[k] = (struct option){NULL, 0, NULL, 0};
  return 0;
}

int cli_cmd_usage_error(const struct cli_ctx *ctx, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cli_usage_error("%s: %s (see quilt-cli %s --help)", ctx->cmd->name, msg,
                         ctx->cmd->name);
}

static bool long_has_val(const struct option *opts, const char *name, size_t n, int val) {
  for (; opts->name; opts++)
    if (opts->val == val && strncmp(opts->name, name, n) == 0)
      return true;
  return false;
}

/* Describes the option getopt rejected (c is '?' or ':') as the user typed
 * it. glibc sets optopt for short options and also for long ones given a
 * missing or unwanted value, so the word decides "--service" vs "-s". */
static void describe_bad_option(char *buf, size_t cap, char **argv, int c,
                                const struct option *opts) {
  const char *word = argv[optind - 1];
  int n = (int)strcspn(word, "=");
  bool is_long = strncmp(word, "--", 2) == 0 &&
                 (optopt == 0 || c == ':' || long_has_val(opts, word + 2, (size_t)n - 2, optopt));
  if (!is_long)
    snprintf(buf, cap, c == ':' ? "option '-%c' needs a value" : "unknown option '-%c'", optopt);
  else if (c == ':')
    snprintf(buf, cap, "option '%.*s' needs a value", n, word);
  else if (optopt)
    snprintf(buf, cap, "option '%.*s' takes no value", n, word);
  else
    snprintf(buf, cap, "unknown option '%.*s'", n, word);
}

int cli_getopt(struct cli_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int *exit_code) {
  if (merge_opts(ctx, shortopts, longopts) < 0)
    abort(); /* a command declared too many options: a programming error */
  char buf[128];
  for (;;) {
    opterr = 0; /* we print our own one-line errors */
    int c = getopt_long(argc, argv, ctx->shortopts, ctx->opts, NULL);
    if (c == OPT_JSON) {
      ctx->json = true;
      continue;
    }
    if (c == 'h') {
      cli_print_usage(ctx->cmd, stdout);
      *exit_code = CLI_EXIT_OK;
      return CLI_OPT_EXIT;
    }
    if (c == '?' || c == ':') {
      describe_bad_option(buf, sizeof buf, argv, c, ctx->opts);
      *exit_code = cli_cmd_usage_error(ctx, "%s", buf);
      return CLI_OPT_EXIT;
    }
    return c;
  }
}

int cli_no_args(struct cli_ctx *ctx, int argc, char **argv) {
  static const struct option none[] = {{NULL, 0, NULL, 0}};
  int code = CLI_EXIT_OK;
  int c = cli_getopt(ctx, argc, argv, "", none, &code);
  if (c == CLI_OPT_EXIT)
    return code;
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  return -1;
}

/* ------------------------------------------------------------ connection, calls */

int cli_connect(struct cli_ctx *ctx, struct qerr *err) {
  if (ctx->client)
    return 0;
  int r = qclient_connect(&ctx->client, ctx->target, err);
  if (r == 0 && ctx->token)
    r = qclient_set_token(ctx->client, ctx->token, err);
  return r;
}

struct qclient *cli_client(struct cli_ctx *ctx) {
  struct qerr err = QERR_INIT;
  if (cli_connect(ctx, &err) < 0) {
    cli_error_connect(&err);
    return NULL;
  }
  return ctx->client;
}

uint64_t cli_timeout(const struct cli_ctx *ctx, uint64_t dflt_ns) {
  return ctx->timeout_set ? ctx->timeout_ns : dflt_ns;
}

int cli_unary(struct cli_ctx *ctx, const char *method_path, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              uint64_t dflt_ns) {
  *resp = NULL;
  struct qclient *c = cli_client(ctx);
  if (!c)
    return CLI_EXIT_FAIL;
  struct qerr err = QERR_INIT;
  if (qclient_unary(c, method_path, req, resp_desc, resp, cli_timeout(ctx, dflt_ns), &err) < 0)
    return cli_error(ctx->cmd->name, &err);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ global options */

static int parse_timeout(const char *s, uint64_t *ns) {
  char *end;
  errno = 0;
  double secs = strtod(s, &end);
  /* Up to ~10 years: anything larger is a typo, and keeps ns in range. */
  if (errno || end == s || *end || !isfinite(secs) || secs < 0 || secs > 3e8)
    return -EINVAL;
  *ns = (uint64_t)(secs * 1e9);
  if (secs > 0 && *ns == 0)
    *ns = 1; /* a tiny positive timeout must not turn into "never" */
  return 0;
}

/* Rejects addresses the client would only refuse later, as a usage error. */
static bool valid_target(const char *t) {
  if (!*t)
    return false;
  return strncmp(t, "tcp://", 6) == 0 || strncmp(t, "unix:", 5) == 0 || !strstr(t, "://");
}

/* Returns -1 to go on, or an exit code. */
static int global_option(struct cli_ctx *ctx, int c, char **argv, const char **flag_target,
                         const char **token_file) {
  switch (c) {
  case OPT_TOKEN_FILE:
    *token_file = optarg;
    return -1;
  case 'H':
  case OPT_SOCKET:
    if (!valid_target(optarg))
      return cli_usage_error("invalid daemon address '%s' (expected a socket path, "
                             "unix://PATH or tcp://HOST:PORT)", optarg);
    *flag_target = optarg;
    return -1;
  case OPT_JSON:
    ctx->json = true;
    return -1;
  case OPT_TIMEOUT:
    if (parse_timeout(optarg, &ctx->timeout_ns) < 0)
      return cli_usage_error("invalid --timeout '%s' (expected seconds, e.g. 5 or 0.5)", optarg);
    ctx->timeout_set = true;
    return -1;
  case 'h':
    print_help(stdout);
    return CLI_EXIT_OK;
  case OPT_VERSION:
    printf("quilt-cli %s\n", QUILT_VERSION);
    return CLI_EXIT_OK;
  default: {
    char buf[128];
    describe_bad_option(buf, sizeof buf, argv, c, global_opts);
    return cli_usage_error("%s (see quilt-cli --help)", buf);
  }
  }
}

static const char *env_value(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* Flags beat $QUILT_HOST, then $QUILT_SOCKET, then the built-in default. */
static int resolve_target(struct cli_ctx *ctx, const char *flag_target) {
  const char *host = env_value("QUILT_HOST"), *sock = env_value("QUILT_SOCKET");
  const char *var = host ? "QUILT_HOST" : "QUILT_SOCKET";
  ctx->target = flag_target ? flag_target : host ? host : sock ? sock : QUILT_DEFAULT_SOCKET;
  if (!valid_target(ctx->target))
    return cli_usage_error("invalid %s '%s' (expected a socket path, unix://PATH "
                           "or tcp://HOST:PORT)", var, ctx->target);
  return -1;
}

/* Read once, up front: a token file others can read is refused here as it
 * is by quiltd, before anything is sent. */
static int resolve_token(struct cli_ctx *ctx, const char *flag_file) {
  const char *path = flag_file ? flag_file : env_value("QUILT_TOKEN_FILE");
  if (!path)
    return -1;
  struct qerr err = QERR_INIT;
  size_t len;
  if (auth_read_token_file(path, &ctx->token, &len, &err) < 0) {
    fprintf(stderr, "quilt-cli: %s\n", err.msg);
    return CLI_EXIT_FAIL;
  }
  return -1;
}

static int parse_globals(struct cli_ctx *ctx, int argc, char **argv) {
  const char *flag_target = NULL, *token_file = NULL;
  opterr = 0;
  int c;
  /* '+': stop at the command name; what follows belongs to the command. */
  while ((c = getopt_long(argc, argv, "+:H:h", global_opts, NULL)) != -1) {
    int rc = global_option(ctx, c, argv, &flag_target, &token_file);
    if (rc >= 0)
      return rc;
  }
  int rc = resolve_target(ctx, flag_target);
  return rc >= 0 ? rc : resolve_token(ctx, token_file);
}

/* `quilt-cli help [COMMAND]`. */
static int run_help(int argc, char **argv) {
  if (argc < 2) {
    print_help(stdout);
    return CLI_EXIT_OK;
  }
  const struct cli_command *cmd = find_command(argv[1]);
  if (!cmd)
    return cli_usage_error("unknown command '%s' (see quilt-cli --help)", argv[1]);
  cli_print_usage(cmd, stdout);
  return CLI_EXIT_OK;
}

static int dispatch(struct cli_ctx *ctx, int argc, char **argv) {
  if (argc < 1) {
    print_help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(argv[0], "help") == 0)
    return run_help(argc, argv);
  ctx->cmd = find_command(argv[0]);
  if (!ctx->cmd)
    return cli_usage_error("unknown command '%s' (see quilt-cli --help)", argv[0]);
  optind = 0; /* glibc: rescan from argv[1] of the command's own argv */
  return ctx->cmd->run(ctx, argc, argv);
}

int main(int argc, char **argv) {
  struct cli_ctx ctx = {.out = stdout};
  int rc = parse_globals(&ctx, argc, argv);
  if (rc < 0)
    rc = dispatch(&ctx, argc - optind, argv + optind);
  qclient_close(ctx.client);
  if (ctx.token)
    explicit_bzero(ctx.token, strlen(ctx.token));
  free(ctx.token);
  /* A full disk or closed pipe must not look like success to scripts. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "quilt-cli: writing output: %s\n", strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return rc;
}
