/* `logs`, and the log copying `run` shares (logs_copy). */
#include <errno.h>
#include <string.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"
#include "common/clock.h"

#define STREAM_SLOTS 4 /* LogStream values: unspecified, stdout, stderr, setup */

struct log_sink {
  struct cli_ctx *ctx;
  bool timestamps;
  bool skip_setup;
  bool mid_line[STREAM_SLOTS]; /* per stream: the last chunk ended inside a line */
  struct qerr *err;
};

/* Writes p with "TIME " at the start of every line; a chunk that continues
 * the previous one's unfinished line gets no prefix. */
static void write_stamped(FILE *f, const char *ts, const uint8_t *p, size_t n, bool *mid) {
  while (n > 0) {
    if (!*mid)
      fprintf(f, "%s ", ts);
    const uint8_t *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) + 1 : n;
    fwrite(p, 1, k, f);
    *mid = !nl;
    p += k;
    n -= k;
  }
}

static int on_chunk(void *arg, ProtobufCMessage *msg) {
  struct log_sink *s = arg;
  const Quilt__V1__LogChunk *ch = (const Quilt__V1__LogChunk *)msg;
  if (s->skip_setup && ch->stream == QUILT__V1__LOG_STREAM__LOG_STREAM_SETUP)
    return 0;
  FILE *f = s->ctx->json || ch->stream == QUILT__V1__LOG_STREAM__LOG_STREAM_STDOUT ? s->ctx->out
                                                                                   : stderr;
  if (s->ctx->json) {
    json_print_message(f, msg, false);
  } else if (s->timestamps) {
    char ts[64];
    fmt_time(ch->timestamp_ns, true, ts, sizeof ts);
    unsigned slot = ch->stream < STREAM_SLOTS ? (unsigned)ch->stream : 0;
    write_stamped(f, ts, ch->data.data, ch->data.len, &s->mid_line[slot]);
  } else {
    fwrite(ch->data.data, 1, ch->data.len, f);
  }
  if (fflush(f) != 0 || ferror(f)) {
    int e = errno ? errno : EIO;
    return qerr_set(s->err, e, "writing output: %s", strerror(e));
  }
  return 0;
}

static int copy(struct cli_ctx *ctx, const Quilt__V1__StreamLogsRequest *req, bool timestamps,
                bool skip_setup, struct qerr *err) {
  struct log_sink sink = {.ctx = ctx, .timestamps = timestamps, .skip_setup = skip_setup,
                          .err = err};
  /* Following has no natural end before the container's; a finished log
   * can be large and the reader slow. Neither gets a default deadline. */
  return ctr_stream(ctx, QCLIENT_QUILT("StreamLogs"), &req->base,
                    &quilt__v1__log_chunk__descriptor, on_chunk, &sink, 0, err);
}

int logs_copy(struct cli_ctx *ctx, const Quilt__V1__StreamLogsRequest *req, bool timestamps,
              struct qerr *err) {
  return copy(ctx, req, timestamps, false, err);
}

int logs_copy_output(struct cli_ctx *ctx, const Quilt__V1__StreamLogsRequest *req,
                     struct qerr *err) {
  return copy(ctx, req, false, true, err);
}

/* ------------------------------------------------------------ logs */

enum { OPT_SINCE = 0x200, OPT_STDOUT, OPT_STDERR };

static const struct option logs_opts[] = {
    {"follow", no_argument, NULL, 'f'},
    {"tail", required_argument, NULL, 'n'},
    {"timestamps", no_argument, NULL, 't'},
    {"since", required_argument, NULL, OPT_SINCE},
    {"stdout", no_argument, NULL, OPT_STDOUT},
    {"stderr", no_argument, NULL, OPT_STDERR},
    {NULL, 0, NULL, 0},
};

struct logs_args {
  Quilt__V1__StreamLogsRequest req;
  bool timestamps, want_out, want_err;
};

/* --tail: N or "all". The daemon reads 0 as "all", so --tail 0 (docker:
 * no old lines) becomes "only what is written from now on". */
static int logs_tail(struct cli_ctx *ctx, struct logs_args *a, const char *v) {
  uint64_t n;
  if (strcmp(v, "all") == 0)
    return -1;
  if (parse_u64(v, UINT32_MAX, &n) < 0)
    return cli_cmd_usage_error(ctx, "invalid --tail '%s' (expected a number of lines or 'all')",
                               v);
  a->req.tail = (uint32_t)n;
  if (n == 0 && a->req.since_ns < clock_real_ns())
    a->req.since_ns = clock_real_ns();
  return -1;
}

static int logs_option(struct cli_ctx *ctx, struct logs_args *a, int c) {
  int64_t since;
  switch (c) {
  case 'f':
    a->req.follow = true;
    return -1;
  case 'n':
    return logs_tail(ctx, a, optarg);
  case 't':
    a->timestamps = true;
    return -1;
  case OPT_SINCE:
    if (parse_since(optarg, clock_real_ns(), &since) < 0)
      return cli_cmd_usage_error(ctx, "invalid --since '%s' (expected RFC 3339 time such as "
                                 "2024-05-01T12:00:00Z, or seconds ago such as 30, 10m, 2h)",
                                 optarg);
    a->req.since_ns = since > a->req.since_ns ? since : a->req.since_ns;
    return -1;
  case OPT_STDOUT:
    a->want_out = true;
    return -1;
  default:
    a->want_err = true;
    return -1;
  }
}

static int parse_logs(struct cli_ctx *ctx, int argc, char **argv, struct logs_args *a) {
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "fn:t", logs_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    int rc = logs_option(ctx, a, c);
    if (rc >= 0)
      return rc;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  if (optind + 1 < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
  if (a->want_out != a->want_err) /* both or neither: everything */
    a->req.stream = a->want_out ? QUILT__V1__LOG_STREAM__LOG_STREAM_STDOUT
                                : QUILT__V1__LOG_STREAM__LOG_STREAM_STDERR;
  a->req.id = argv[optind];
  return -1;
}

static int run_logs(struct cli_ctx *ctx, int argc, char **argv) {
  struct logs_args a = {.req = QUILT__V1__STREAM_LOGS_REQUEST__INIT};
  int rc = parse_logs(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;
  struct qerr err = QERR_INIT;
  if (logs_copy(ctx, &a.req, a.timestamps, &err) < 0)
    return ctr_report(ctx, &err);
  return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_logs = {
    .name = "logs",
    .summary = "Print a container's output",
    .usage = "logs [-f] [-n N] [-t] [--since TIME] [--stdout|--stderr] [--json] CONTAINER\n"
             "\n"
             "Prints what the container wrote: its stdout on stdout, its stderr (and setup\n"
             "output) on stderr, byte for byte. CONTAINER is an id, a unique id prefix or a\n"
             "name.\n"
             "\n"
             "Options:\n"
             "  -f, --follow       keep printing new output until the container exits\n"
             "  -n, --tail N       only the last N lines of the existing log ('all': every\n"
             "                     line; 0: none, only new output)\n"
             "  -t, --timestamps   start every line with the RFC 3339 time it was logged\n"
             "      --since TIME   only output from TIME on: an RFC 3339 time\n"
             "                     (2024-05-01T12:00:00Z) or an age (30, 90s, 10m, 2h)\n"
             "      --stdout       only the container's stdout\n"
             "      --stderr       only the container's stderr\n"
             "      --json         one JSON LogChunk per line, all on stdout\n"
             "  -h, --help         show this help\n",
    .run = run_logs,
};
