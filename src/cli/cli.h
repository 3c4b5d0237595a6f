/* quilt-cli's command framework: the per-invocation context, the command
 * table entry, and helpers every command uses for options, the connection
 * and calls.
 *
 * Adding a command: write `const struct cli_command cli_cmd_NAME` in a
 * cmd_*.c file, declare it below and list it in main.c's table. Its handler
 * gets argv with argv[0] = the command name, parses its options with
 * cli_getopt() (which adds -h/--help and --json), and returns an exit code:
 * CLI_EXIT_OK, CLI_EXIT_FAIL (after printing why) or CLI_EXIT_USAGE. */
#ifndef QUILT_CLI_CLI_H
#define QUILT_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "cli/client.h"
#include "cli/output.h"

#define QUILT_DEFAULT_SOCKET "/run/quilt/quiltd.sock"
/* Deadline of a unary call when --timeout is not given. */
#define CLI_DEFAULT_TIMEOUT_NS (30 * QCLIENT_NS_PER_SEC)
#define CLI_MAX_OPTS 40

struct cli_ctx;

struct cli_command {
  const char *name;
  const char *summary; /* one line, for `quilt-cli --help` */
  const char *usage;   /* printed after "Usage: quilt-cli " by `CMD --help` */
  int (*run)(struct cli_ctx *ctx, int argc, char **argv);
};

struct cli_ctx {
  const char *target;  /* daemon address, see qclient_connect */
  char *token;         /* --token-file's bearer token, sent with every call */
  bool json;           /* --json: machine-readable output */
  bool timeout_set;    /* --timeout given; timeout_ns 0 then means none */
  uint64_t timeout_ns;
  FILE *out;           /* normal output (stdout) */
  const struct cli_command *cmd;
  struct qclient *client; /* connected on first use, closed by main */
  /* cli_getopt's merged option tables (the command's + help and json). */
  struct option opts[CLI_MAX_OPTS];
  char shortopts[64];
};

/* getopt_long over a command's arguments with -h/--help and --json added.
 * Returns the command's option character, -1 after the last option
 * (positional arguments start at optind), or CLI_OPT_EXIT after handling
 * --help (exit code in *exit_code: 0) or a bad option (message printed,
 * *exit_code 2). `shortopts` may start with '+' to stop at the first
 * positional argument (for commands that take a command line). */
#define CLI_OPT_EXIT (-2)
int cli_getopt(struct cli_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int *exit_code);
/* For commands without options or arguments: returns -1 to go on, or the
 * exit code to return (help shown, or bad usage reported). */
int cli_no_args(struct cli_ctx *ctx, int argc, char **argv);
/* Reports a bad command line for the current command; returns 2. */
int cli_cmd_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void cli_print_usage(const struct cli_command *cmd, FILE *f);

/* The connection, made on first use. cli_client prints a connect failure
 * and returns NULL (return CLI_EXIT_FAIL then); cli_connect only reports it
 * in err, for callers that retry. */
struct qclient *cli_client(struct cli_ctx *ctx);
int cli_connect(struct cli_ctx *ctx, struct qerr *err);

/* The deadline for a call: --timeout when given, else dflt_ns (0 = none). */
uint64_t cli_timeout(const struct cli_ctx *ctx, uint64_t dflt_ns);

/* Connect if needed, make a unary call with cli_timeout(ctx, dflt_ns); on
 * failure print "quilt-cli: CMD: STATUS: message". Returns CLI_EXIT_OK with
 * *resp set (free it, e.g. with cleanup_msg) or CLI_EXIT_FAIL. */
int cli_unary(struct cli_ctx *ctx, const char *method_path, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              uint64_t dflt_ns);

static inline void cli_free_msg_fn(ProtobufCMessage **m) {
  if (*m)
    protobuf_c_message_free_unpacked(*m, NULL);
}
/* cleanup_msg ProtobufCMessage *resp = NULL;  freed when it leaves scope. */
#define cleanup_msg __attribute__((cleanup(cli_free_msg_fn)))

/* Commands (cmd_*.c). */
extern const struct cli_command cli_cmd_info;
extern const struct cli_command cli_cmd_health;
extern const struct cli_command cli_cmd_create;
extern const struct cli_command cli_cmd_run;
extern const struct cli_command cli_cmd_start;
extern const struct cli_command cli_cmd_status;
extern const struct cli_command cli_cmd_list;
extern const struct cli_command cli_cmd_ps;
extern const struct cli_command cli_cmd_logs;
extern const struct cli_command cli_cmd_stop;
extern const struct cli_command cli_cmd_kill;
extern const struct cli_command cli_cmd_exec;
extern const struct cli_command cli_cmd_cp;
extern const struct cli_command cli_cmd_pause;
extern const struct cli_command cli_cmd_unpause;
extern const struct cli_command cli_cmd_resume;
extern const struct cli_command cli_cmd_remove;
extern const struct cli_command cli_cmd_rm;
extern const struct cli_command cli_cmd_wait;
extern const struct cli_command cli_cmd_events;
extern const struct cli_command cli_cmd_stats;
extern const struct cli_command cli_cmd_import;
extern const struct cli_command cli_cmd_images;
extern const struct cli_command cli_cmd_image;
extern const struct cli_command cli_cmd_rmi;
extern const struct cli_command cli_cmd_prune;
extern const struct cli_command cli_cmd_volume;
extern const struct cli_command cli_cmd_volumes;

#endif
