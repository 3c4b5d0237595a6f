/* Helpers shared by the container commands; see ctr.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"

/* ------------------------------------------------------------ calls */

int ctr_call(struct cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
             uint64_t dflt_ns, struct qerr *err) {
  *resp = NULL;
  int r = cli_connect(ctx, err);
  if (r < 0)
    return r;
  return qclient_unary(ctx->client, method, req, resp_desc, resp, cli_timeout(ctx, dflt_ns),
                       err);
}

int ctr_stream(struct cli_ctx *ctx, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *resp_desc, qclient_msg_fn on_msg, void *arg,
               uint64_t dflt_ns, struct qerr *err) {
  int r = cli_connect(ctx, err);
  if (r < 0)
    return r;
  return qclient_stream(ctx->client, method, req, resp_desc, on_msg, arg,
                        cli_timeout(ctx, dflt_ns), err);
}

int ctr_report(const struct cli_ctx *ctx, const struct qerr *err) {
  if (!ctx->client)
    return cli_error_connect(err);
  return cli_error(ctx->cmd->name, err);
}

int ctr_get(struct cli_ctx *ctx, const char *ref, ProtobufCMessage **out, struct qerr *err) {
  Quilt__V1__GetContainerRequest req = QUILT__V1__GET_CONTAINER_REQUEST__INIT;
  req.id = (char *)ref;
  return ctr_call(ctx, QCLIENT_QUILT("GetContainer"), &req.base,
                  &quilt__v1__container__descriptor, out, CLI_DEFAULT_TIMEOUT_NS, err);
}

/* ------------------------------------------------------------ several ids */

int ctr_for_each(struct cli_ctx *ctx, int argc, char **argv, int first, ctr_each_fn fn,
                 void *arg) {
  struct ctr_each each = {.arg = arg};
  json_init(&each.j, ctx->out, true);
  if (ctx->json)
    json_begin_array(&each.j, NULL);
  int rc = CLI_EXIT_OK;
  for (int i = first; i < argc; i++) {
    struct qerr err = QERR_INIT;
    if (fn(ctx, argv[i], &each, &err) < 0) {
      rc = ctr_report(ctx, &err);
      if (!ctx->client)
        break; /* the daemon is not there: the next ids would say the same */
    }
    fflush(ctx->out);
  }
  if (ctx->json) {
    json_end_array(&each.j);
    json_finish(&each.j);
  }
  return rc;
}

int ctr_ids_only(struct cli_ctx *ctx, int argc, char **argv, int min_ids, int max_ids) {
  static const struct option none[] = {{NULL, 0, NULL, 0}};
  int code = CLI_EXIT_OK;
  int c;
  while ((c = cli_getopt(ctx, argc, argv, "", none, &code)) != -1)
    if (c == CLI_OPT_EXIT)
      return code;
  int n = argc - optind;
  if (n < min_ids)
    return cli_cmd_usage_error(ctx, "missing container id or name");
  if (max_ids > 0 && n > max_ids)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + max_ids]);
  return -1;
}

/* ------------------------------------------------------------ text */

const char *ctr_state_name(int state) {
  switch (state) {
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_CREATED:
    return "created";
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING:
    return "running";
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_EXITED:
    return "exited";
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_FAILED:
    return "failed";
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_PAUSED:
    return "paused";
  default:
    return "unknown";
  }
}

void ctr_status_text(const Quilt__V1__Container *c, int64_t now_ns, char *buf, size_t cap) {
  char up[32];
  switch (c->state) {
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING:
    format_duration(up, sizeof up,
                    now_ns > c->started_at_ns && c->started_at_ns > 0
                        ? (uint64_t)((now_ns - c->started_at_ns) / CTR_NS_PER_SEC)
                        : 0);
    snprintf(buf, cap, "up %s", up);
    break;
  case QUILT__V1__CONTAINER_STATE__CONTAINER_STATE_EXITED:
    snprintf(buf, cap, "exited (%" PRId32 ")%s", c->exit_code, c->oom_killed ? " oom" : "");
    break;
  default:
    snprintf(buf, cap, "%s", ctr_state_name(c->state));
  }
}

void fmt_time(int64_t ns, bool nanos, char *buf, size_t cap) {
  if (ns <= 0) {
    snprintf(buf, cap, "-");
    return;
  }
  time_t secs = (time_t)(ns / CTR_NS_PER_SEC);
  long frac = (long)(ns % CTR_NS_PER_SEC);
  struct tm tm;
  localtime_r(&secs, &tm);
  char date[40], zone[40] = "Z", fraction[24] = "";
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  long off = tm.tm_gmtoff;
  if (off != 0)
    snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600,
             labs(off) / 60 % 60);
  if (nanos)
    snprintf(fraction, sizeof fraction, ".%09ld", frac);
  snprintf(buf, cap, "%s%s%s", date, fraction, zone);
}

void fmt_age(int64_t ns, int64_t now_ns, char *buf, size_t cap) {
  if (ns <= 0) {
    snprintf(buf, cap, "-");
    return;
  }
  char d[32];
  format_duration(d, sizeof d, now_ns > ns ? (uint64_t)((now_ns - ns) / CTR_NS_PER_SEC) : 0);
  snprintf(buf, cap, "%s ago", d);
}

void fmt_bytes(uint64_t n, char *buf, size_t cap) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (n < 1024) {
    snprintf(buf, cap, "%" PRIu64 " B", n);
    return;
  }
  double v = (double)n / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  snprintf(buf, cap, "%.1f %s", v, units[u]);
}

static bool needs_quotes(const char *a) {
  return !*a || strpbrk(a, " \t\n'\"\\$`;&|<>()*?") != NULL;
}

void fmt_command(const Quilt__V1__ContainerSpec *s, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; s && i < s->n_command && len < cap; i++) {
    const char *q = needs_quotes(s->command[i]) ? "'" : "";
    int n = snprintf(buf + len, cap - len, "%s%s%s%s", i ? " " : "", q, s->command[i], q);
    if (n < 0)
      break;
    len += (size_t)n;
  }
}

static size_t code_points(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xc0) != 0x80; /* continuation bytes don't count */
  return n;
}

void truncate_text(char *s, size_t cap, size_t max) {
  if (max == 0 || code_points(s) <= max)
    return;
  size_t points = 0;
  for (char *p = s; *p; p++) {
    if (((unsigned char)*p & 0xc0) == 0x80)
      continue;
    if (points++ == max - 1) {
      if ((size_t)(p - s) + sizeof "…" <= cap)
        memcpy(p, "…", sizeof "…");
      else
        *p = 0;
      return;
    }
  }
}

void fmt_signal(int sig, char *buf, size_t cap) {
  const char *name = sig > 0 ? sigabbrev_np(sig) : NULL;
  if (sig <= 0)
    snprintf(buf, cap, "-");
  else if (name)
    snprintf(buf, cap, "%d (%s)", sig, name);
  else
    snprintf(buf, cap, "%d", sig);
}

/* ------------------------------------------------------------ parsing */

int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (!isdigit((unsigned char)s[0]))
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  if (!isdigit((unsigned char)s[s[0] == '-']))
    return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

int parse_signal(const char *s) {
  uint64_t v;
  if (parse_u64(s, NSIG - 1, &v) == 0)
    return v > 0 ? (int)v : -1;
  const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (int i = 1; i < NSIG; i++) {
    const char *abbrev = sigabbrev_np(i);
    if (abbrev && strcasecmp(abbrev, name) == 0)
      return i;
  }
  return -1;
}

/* ".123" after the seconds: nanoseconds; p is moved past it. */
static int parse_fraction(const char **p, int64_t *ns) {
  *ns = 0;
  if (**p != '.')
    return 0;
  int digits = 0;
  for ((*p)++; isdigit((unsigned char)**p); (*p)++, digits++)
    if (digits < 9)
      *ns = *ns * 10 + (**p - '0');
  for (int d = digits; d < 9; d++)
    *ns *= 10;
  return digits ? 0 : -EINVAL;
}

/* "Z" or "+HH:MM" / "-HH:MM": seconds east of UTC. */
static int parse_zone(const char *p, long *off) {
  int h, m, n = 0;
  if ((*p == 'Z' || *p == 'z') && !p[1]) {
    *off = 0;
    return 0;
  }
  if ((*p != '+' && *p != '-') || sscanf(p + 1, "%2d:%2d%n", &h, &m, &n) != 2 || p[1 + n] ||
      n != 5 || h > 23 || m > 59)
    return -EINVAL;
  *off = (*p == '-' ? -1 : 1) * (h * 3600L + m * 60L);
  return 0;
}

static int parse_rfc3339(const char *s, int64_t *out_ns) {
  struct tm tm = {0};
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  int64_t frac;
  long off;
  if (!p || parse_fraction(&p, &frac) < 0 || parse_zone(p, &off) < 0)
    return -EINVAL;
  time_t t = timegm(&tm);
  if (t == (time_t)-1)
    return -EINVAL;
  *out_ns = ((int64_t)t - off) * CTR_NS_PER_SEC + frac;
  return 0;
}

int parse_since(const char *s, int64_t now_ns, int64_t *out_ns) {
  char *end;
  errno = 0;
  double secs = isdigit((unsigned char)s[0]) || s[0] == '.' ? strtod(s, &end) : -1;
  if (secs >= 0 && !errno && end != s) {
    double unit = !*end ? 1 : strcmp(end, "s") == 0 ? 1 : strcmp(end, "m") == 0 ? 60
                            : strcmp(end, "h") == 0 ? 3600 : 0;
    if (unit > 0 && secs * unit < 1e10) {
      *out_ns = now_ns - (int64_t)(secs * unit * 1e9);
      return 0;
    }
  }
  return parse_rfc3339(s, out_ns);
}

int ctr_print_ref(struct cli_ctx *ctx, struct ctr_each *each, const char *ref) {
  if (!ctx->json) {
    fprintf(ctx->out, "%s\n", ref);
    return 0;
  }
  json_begin_object(&each->j, NULL);
  json_string(&each->j, "id", ref);
  json_end_object(&each->j);
  return 0;
}
