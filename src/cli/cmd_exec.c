/* quilt-cli exec: runs a command inside a running container (the Exec RPC,
 * unary): its output is printed once it has exited, and its exit code is
 * quilt-cli's. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
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
  bool tty;
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
    case 't': a->tty = true; break;
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

/* ------------------------------------------------------------ streaming */

/* What the interactive exec sends next: the start, then stdin as it comes
 * (and terminal resizes), then the end of stdin. */
struct session {
  struct exec_args *a;
  Quilt__V1__ExecInput msg;
  Quilt__V1__TerminalSize size;
  uint8_t buf[32768];
  int sigfd;                   /* SIGWINCH, for -t */
  bool started, stdin_done, closed;
  int exit_code;
  bool exited;
};

static void terminal_size(Quilt__V1__TerminalSize *sz) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
    sz->rows = ws.ws_row;
    sz->cols = ws.ws_col;
  }
}

static bool readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return fd >= 0 && poll(&p, 1, 0) > 0;
}

static int next_input(void *arg, const ProtobufCMessage **out) {
  struct session *s = arg;
  s->msg = (Quilt__V1__ExecInput)QUILT__V1__EXEC_INPUT__INIT;
  *out = &s->msg.base;
  if (!s->started) {
    s->started = true;
    s->msg.start = &s->a->req;
    return 1;
  }
  if (s->sigfd >= 0 && readable(s->sigfd)) {
    struct signalfd_siginfo si;
    while (read(s->sigfd, &si, sizeof si) == sizeof si)
      ;
    terminal_size(&s->size);
    s->msg.resize = &s->size;
    return 1;
  }
  if (s->closed)
    return s->exited ? 0 : QCLIENT_LATER; /* keep the call open for resizes */
  if (s->stdin_done) {
    s->closed = true;
    s->msg.close_stdin = true;
    return 1;
  }
  if (!readable(STDIN_FILENO))
    return QCLIENT_LATER;
  ssize_t n = read(STDIN_FILENO, s->buf, sizeof s->buf);
  if (n <= 0) {
    s->stdin_done = true;
    return next_input(arg, out);
  }
  s->msg.stdin.data = s->buf;
  s->msg.stdin.len = (size_t)n;
  return 1;
}

static int on_output(void *arg, ProtobufCMessage *msg) {
  struct session *s = arg;
  const Quilt__V1__ExecOutput *o = (const void *)msg;
  if (o->stdout.len && write(STDOUT_FILENO, o->stdout.data, o->stdout.len) < 0)
    return -errno;
  if (o->stderr.len && write(STDERR_FILENO, o->stderr.data, o->stderr.len) < 0)
    return -errno;
  if (o->exited) {
    s->exited = true;
    s->exit_code = o->exit_code;
  }
  return 0;
}

/* stdin and SIGWINCH behind one fd the client can poll. */
static int wake_fd(struct session *s) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0)
    return -1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0 && errno != EPERM) {
    close(ep);
    return -1;
  }
  if (s->sigfd >= 0)
    epoll_ctl(ep, EPOLL_CTL_ADD, s->sigfd, &ev);
  return ep;
}

static int run_stream(struct cli_ctx *ctx, struct exec_args *a) {
  struct session s = {.a = a, .sigfd = -1, .size = QUILT__V1__TERMINAL_SIZE__INIT};
  struct termios saved;
  bool raw = a->tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (a->tty) {
    terminal_size(&s.size);
    a->req.tty = true;
    a->req.terminal_size = &s.size;
    sigset_t winch;
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    sigprocmask(SIG_BLOCK, &winch, NULL);
    s.sigfd = signalfd(-1, &winch, SFD_NONBLOCK | SFD_CLOEXEC);
  }
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  int ep = wake_fd(&s);
  struct qerr err = QERR_INIT;
  struct qclient *cl = cli_client(ctx);
  int rc = cl ? qclient_bidi_wake(cl, QCLIENT_QUILT("ExecStream"), next_input, &s, ep,
                                  &quilt__v1__exec_output__descriptor, on_output, &s,
                                  cli_timeout(ctx, 0), &err)
              : -ENOTCONN;
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (ep >= 0)
    close(ep);
  if (s.sigfd >= 0)
    close(s.sigfd);
  if (!cl)
    return CLI_EXIT_FAIL;
  if (rc < 0) {
    ctr_report(ctx, &err);
    return CLI_EXIT_FAIL;
  }
  return s.exited ? s.exit_code : CLI_EXIT_FAIL;
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
  if (a.tty && !a.interactive)
    return cli_cmd_usage_error(ctx, "-t needs -i (a terminal with no input cannot be used)");
  if (a.tty && ctx->json)
    return cli_cmd_usage_error(ctx, "--json and -t do not go together");
  /* With input (and a terminal) the streaming exec; otherwise one call
   * whose answer holds the output, which --json can print. */
  if (a.interactive && !ctx->json)
    return run_stream(ctx, &a);
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
    if (r->stdout.len) /* protobuf-c leaves empty bytes NULL, which fwrite may not get */
      fwrite(r->stdout.data, 1, r->stdout.len, ctx->out);
    fflush(ctx->out);
    if (r->stderr.len)
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
             "security settings, with -e, -w and -u on top, and exits with its exit code\n"
             "(128+N when killed by signal N). Without -i the output is printed once the\n"
             "command has exited (up to 1 MiB per stream).\n"
             "\n"
             "Options:\n"
             "  -i, --interactive   stream this process's stdin to the command, and its\n"
             "                      output back as it comes (with --json: stdin up to\n"
             "                      3 MiB, output once it has exited)\n"
             "  -t, --tty           with -i: an interactive terminal (quilt-cli exec -it\n"
             "                      CONTAINER sh); input and output stream as they come\n"
             "  -e, --env KEY=VALUE an environment variable (repeatable)\n"
             "  -w, --workdir DIR   working directory (default: the container's)\n"
             "  -u, --user USER     uid[:gid] or a user name of the image\n"
             "      --json          print {exit_code, signal, stdout, stderr, output_truncated}\n"
             "  -h, --help          show this help\n",
    .run = run_exec,
};
