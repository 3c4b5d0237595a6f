/* quilt-cli exec: runs a command inside a running container (the Exec RPC,
 * unary): its output is printed once it has exited, and its exit code is
 * quilt-cli's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ctr.h"
#include "common/cleanup.h"
#include "quilt.pb-c.h"

#define MAX_ENV 64
/* The request must fit quiltd's message limit (4 MiB by default). */
#define MAX_STDIN (3u << 20)

struct exec_args {
  Quilt__V1__ExecRequest req;
  char *env[MAX_ENV];
  bool interactive;
};

static const struct option exec_opts[] = {
    {"interactive", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"env", required_argument, NULL, 'e'},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {NULL, 0, NULL, 0},
};

static int parse(struct cli_ctx *ctx, int argc, char **argv, struct exec_args *a, int *code) {
  int c;
  while ((c = cli_getopt(ctx, argc, argv, "+ite:w:u:", exec_opts, code)) != -1) {
    switch (c) {
    case CLI_OPT_EXIT: return -1;
    case 'i': a->interactive = true; break;
    case 't':
      *code = cli_cmd_usage_error(ctx, "-t/--tty needs the streaming exec, which quiltd does "
                                       "not offer yet; run without -t");
      return -1;
    case 'e':
      if (!strchr(optarg, '=') || optarg[0] == '=') {
        *code = cli_cmd_usage_error(ctx, "invalid -e '%s' (expected KEY=VALUE)", optarg);
        return -1;
      }
      if (a->req.n_env == MAX_ENV) {
        *code = cli_cmd_usage_error(ctx, "at most %d -e options", MAX_ENV);
        return -1;
      }
      a->env[a->req.n_env++] = optarg;
      break;
    case 'w': a->req.working_dir = optarg; break;
    case 'u': a->req.user = optarg; break;
    }
  }
  if (optind >= argc) {
    *code = cli_cmd_usage_error(ctx, "missing container id or name");
    return -1;
  }
  a->req.id = argv[optind++];
  if (optind < argc && strcmp(argv[optind - 1], "--") != 0 && strcmp(argv[optind], "--") == 0)
    optind++;
  if (optind >= argc) {
    *code = cli_cmd_usage_error(ctx, "no command given (quilt-cli exec CONTAINER -- CMD...)");
    return -1;
  }
  a->req.command = argv + optind;
  a->req.n_command = (size_t)(argc - optind);
  a->req.env = a->env;
  return 0;
}

/* All of stdin, for -i: the unary exec sends it in the request. */
static int slurp_stdin(struct cli_ctx *ctx, uint8_t **out, size_t *len) {
  size_t cap = 65536, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      if (cap > MAX_STDIN) {
        fprintf(stderr, "quilt-cli: %s: more than %u bytes on stdin\n", ctx->cmd->name,
                MAX_STDIN);
        free(buf);
        return -1;
      }
      uint8_t *b = realloc(buf, cap * 2);
      if (!b)
        break;
      buf = b;
      cap *= 2;
    }
    ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
    if (r == 0) {
      *out = buf;
      *len = n;
      return 0;
    }
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "quilt-cli: %s: reading stdin: %s\n", ctx->cmd->name, strerror(errno));
      free(buf);
      return -1;
    }
    n += r > 0 ? (size_t)r : 0;
  }
  fprintf(stderr, "quilt-cli: %s: out of memory\n", ctx->cmd->name);
  return -1;
}

static void print_json(struct cli_ctx *ctx, const Quilt__V1__ExecResponse *r) {
  struct json_out j;
  json_init(&j, ctx->out, true);
  json_begin_object(&j, NULL);
  json_int(&j, "exit_code", r->exit_code);
  json_int(&j, "signal", r->signal);
  json_string_n(&j, "stdout", (const char *)r->stdout.data, r->stdout.len);
  json_string_n(&j, "stderr", (const char *)r->stderr.data, r->stderr.len);
  json_bool(&j, "output_truncated", r->output_truncated);
  json_end_object(&j);
  json_finish(&j);
}

static int run_exec(struct cli_ctx *ctx, int argc, char **argv) {
  struct exec_args a = {.req = QUILT__V1__EXEC_REQUEST__INIT};
  int code = CLI_EXIT_OK;
  if (parse(ctx, argc, argv, &a, &code) < 0)
    return code;
  cleanup_free uint8_t *in = NULL;
  if (a.interactive && slurp_stdin(ctx, &in, &a.req.stdin.len) < 0)
    return CLI_EXIT_FAIL;
  a.req.stdin.data = in;
  cleanup_msg ProtobufCMessage *resp = NULL;
  /* No deadline unless --timeout: a command may run as long as it needs. */
  if (cli_unary(ctx, QCLIENT_QUILT("Exec"), &a.req.base, &quilt__v1__exec_response__descriptor,
                &resp, 0) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  const Quilt__V1__ExecResponse *r = (const void *)resp;
  if (ctx->json) {
    print_json(ctx, r);
  } else {
    fwrite(r->stdout.data, 1, r->stdout.len, ctx->out);
    fflush(ctx->out);
    fwrite(r->stderr.data, 1, r->stderr.len, stderr);
    if (r->output_truncated)
      fprintf(stderr, "quilt-cli: exec: output truncated (over the limit per stream)\n");
  }
  return r->exit_code;
}

const struct cli_command cli_cmd_exec = {
    .name = "exec",
    .summary = "Run a command in a running container",
    .usage = "exec [-i] [-e KEY=VALUE]... [-w DIR] [-u USER] [--json] CONTAINER [--] CMD...\n"
             "\n"
             "Runs CMD inside the container: its namespaces, cgroup, environment, user and\n"
             "security settings, with -e, -w and -u on top. Prints the command's stdout\n"
             "and stderr once it has exited (up to 1 MiB each) and exits with its exit\n"
             "code (128+N when killed by signal N).\n"
             "\n"
             "Options:\n"
             "  -i, --interactive   send this process's stdin (up to 3 MiB) to the command\n"
             "  -e, --env KEY=VALUE an environment variable (repeatable)\n"
             "  -w, --workdir DIR   working directory (default: the container's)\n"
             "  -u, --user USER     uid[:gid] or a user name of the image\n"
             "      --json          print {exit_code, signal, stdout, stderr, output_truncated}\n"
             "  -h, --help          show this help\n"
             "  -t, --tty           not available yet (needs the streaming exec)\n",
    .run = run_exec,
};
