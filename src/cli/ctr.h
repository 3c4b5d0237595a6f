/* What the container commands (cmd_create.c, cmd_containers.c, cmd_logs.c,
 * cmd_events.c) share: calls that leave errors to the caller, running a
 * command over several container ids, text formatting and argument
 * parsing. */
#ifndef QUILT_CLI_CTR_H
#define QUILT_CLI_CTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"
#include "quilt.pb-c.h"

#define CTR_NS_PER_SEC 1000000000ll

/* ------------------------------------------------------------ calls */

/* Like cli_unary and qclient_stream, connecting first, but a failure is left
 * in err (not printed) for callers that act on it. */
int ctr_call(struct cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
             uint64_t dflt_ns, struct qerr *err);
int ctr_stream(struct cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *resp_desc, qclient_msg_fn on_msg, void *arg,
               uint64_t dflt_ns, struct qerr *err);
/* Prints a ctr_call/ctr_stream failure as one line: the connect hint when
 * the daemon could not be reached, else "quilt-cli: CMD: STATUS: message".
 * Returns CLI_EXIT_FAIL. */
int ctr_report(const struct cli_ctx *ctx, const struct qerr *err);

/* GetContainer; *out is a Quilt__V1__Container. */
int ctr_get(struct cli_ctx *ctx, const char *ref, ProtobufCMessage **out, struct qerr *err);

/* ------------------------------------------------------------ several ids */

/* One id's work: print the result (a line, or one element of the JSON
 * array `j` with --json) and return 0, or fill err and return < 0. */
struct ctr_each;
typedef int (*ctr_each_fn)(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                           struct qerr *err);
struct ctr_each {
  struct json_out j; /* an open array when ctx->json */
  void *arg;
};

/* Runs fn for argv[first..argc-1], going on past failures (each reported on
 * its own line) but not past an unreachable daemon. Returns CLI_EXIT_OK,
 * or CLI_EXIT_FAIL when any failed. */
int ctr_for_each(struct cli_ctx *ctx, int argc, char **argv, int first, ctr_each_fn fn,
                 void *arg);

/* The usual result of one id: the reference on a line, or {"id": ref} with
 * --json. Returns 0. */
int ctr_print_ref(struct cli_ctx *ctx, struct ctr_each *each, const char *ref);

/* Parses a command taking only `IDS...` besides --help/--json; returns -1
 * to go on (ids start at optind) or an exit code. */
int ctr_ids_only(struct cli_ctx *ctx, int argc, char **argv, int min_ids, int max_ids);

/* ------------------------------------------------------------ text */

/* "created", "running", "exited", "failed", "paused", "unknown". */
const char *ctr_state_name(int state);
/* For tables: "up 5s", "exited (3)", "created", ... */
void ctr_status_text(const Quilt__V1__Container *c, int64_t now_ns, char *buf, size_t cap);
/* RFC 3339 in local time ("2024-05-01T12:00:00+02:00"), with nanoseconds
 * when `nanos`; "-" for 0 (never happened). */
void fmt_time(int64_t ns, bool nanos, char *buf, size_t cap);
/* "5s ago", "3m 2s ago"; "-" for 0. */
void fmt_age(int64_t ns, int64_t now_ns, char *buf, size_t cap);
/* "512 B", "1.5 KiB", "64.0 MiB". */
void fmt_bytes(uint64_t n, char *buf, size_t cap);
/* The command line, arguments with blanks or quotes in single quotes. */
void fmt_command(const Quilt__V1__ContainerSpec *s, char *buf, size_t cap);
/* Cuts s (a buffer of cap bytes) to at most `max` code points, the last
 * one "…" when it was cut. */
void truncate_text(char *s, size_t cap, size_t max);
/* "9 (KILL)"; "-" for 0. */
void fmt_signal(int sig, char *buf, size_t cap);

/* ------------------------------------------------------------ parsing */

/* Decimal, whole string, at most max. 0 or -EINVAL. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* "9", "KILL", "SIGKILL", "kill": the number, or -1. */
int parse_signal(const char *s);
/* RFC 3339 ("2024-05-01T12:00:00Z", fractions and offsets allowed) or an
 * age in seconds ("30", "1.5", "90s", "10m", "2h"). 0 or -EINVAL. */
int parse_since(const char *s, int64_t now_ns, int64_t *out_ns);

/* ------------------------------------------------------------ logs (cmd_logs.c) */

/* Streams StreamLogs to the terminal: stdout chunks to ctx->out, stderr and
 * setup chunks to stderr, raw bytes flushed as they arrive (or JSON Lines of
 * LogChunk with ctx->json); `timestamps` prefixes every line with the
 * RFC 3339 time of its chunk. No deadline unless --timeout was given. */
int logs_copy(struct cli_ctx *ctx, const Quilt__V1__StreamLogsRequest *req, bool timestamps,
              struct qerr *err);
/* The same without the setup stream (a progress display showed it). */
int logs_copy_output(struct cli_ctx *ctx, const Quilt__V1__StreamLogsRequest *req,
                     struct qerr *err);

/* ------------------------------------------------------------ images (cmd_images.c) */

/* Whether the daemon is reached over a Unix socket (and so sees our files). */
bool cli_target_is_local(const struct cli_ctx *ctx);

/* Imports the archive FILE (a local path; "-": stdin) with these tags: over
 * a local socket and without `upload`, ImportImage with its absolute path
 * (the daemon reads it); otherwise UploadImage with its bytes. Draws a
 * progress bar on stderr when that is a terminal. No deadline unless
 * --timeout. Returns CLI_EXIT_OK with *image (free it with
 * protobuf_c_message_free_unpacked) and *cached, or CLI_EXIT_FAIL after
 * printing why. */
int image_import(struct cli_ctx *ctx, const char *file, char **tags, size_t n_tags,
                 bool upload, Quilt__V1__Image **image, bool *cached);

#endif
