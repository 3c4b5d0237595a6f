#include "cli/output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/status.h"

/* ------------------------------------------------------------ JSON */

/* Length of the valid UTF-8 sequence at p, or 0 when it is invalid
 * (truncated, overlong, surrogate or beyond U+10FFFF): JSON must be UTF-8,
 * and container output is arbitrary bytes. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                        : c >= 0xf0 && c <= 0xf4                  ? 4
                                                                   : 0;
  if (len == 0 || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || /* overlong, surrogate */
      (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))   /* overlong, > U+10FFFF */
    return 0;
  return len;
}

static void write_escape(FILE *f, unsigned char c) {
  switch (c) {
  case '"':
    fputs("\\\"", f);
    break;
  case '\\':
    fputs("\\\\", f);
    break;
  case '\n':
    fputs("\\n", f);
    break;
  case '\r':
    fputs("\\r", f);
    break;
  case '\t':
    fputs("\\t", f);
    break;
  default:
    fprintf(f, "\\u%04x", c);
  }
}

void json_write_escaped(FILE *f, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', f);
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\') {
      write_escape(f, p[i++]);
      continue;
    }
    size_t len = utf8_len(p + i, n - i);
    if (len == 0) {
      fputs("\\ufffd", f);
      i++;
      continue;
    }
    fwrite(p + i, 1, len, f);
    i += len;
  }
  fputc('"', f);
}

void json_init(struct json_out *j, FILE *f, bool pretty) {
  memset(j, 0, sizeof *j);
  j->f = f;
  j->pretty = pretty;
}

static void indent(const struct json_out *j) {
  if (!j->pretty)
    return;
  fputc('\n', j->f);
  for (int i = 0; i < j->depth; i++)
    fputs("  ", j->f);
}

/* Separator, indentation and key in front of every value. */
static void value_prefix(struct json_out *j, const char *key) {
  if (j->depth > 0) {
    if (j->has_items[j->depth])
      fputc(',', j->f);
    indent(j);
  }
  j->has_items[j->depth] = true;
  if (key) {
    json_write_escaped(j->f, key, strlen(key));
    fputs(j->pretty ? ": " : ":", j->f);
  }
}

static void open_container(struct json_out *j, const char *key, char c) {
  if (j->depth >= JSON_MAX_DEPTH)
    abort(); /* a programming error, not input-dependent */
  value_prefix(j, key);
  fputc(c, j->f);
  j->depth++;
  j->has_items[j->depth] = false;
}

static void close_container(struct json_out *j, char c) {
  bool had = j->has_items[j->depth];
  j->depth--;
  if (had)
    indent(j);
  fputc(c, j->f);
}

void json_begin_object(struct json_out *j, const char *key) { open_container(j, key, '{'); }
void json_end_object(struct json_out *j) { close_container(j, '}'); }
void json_begin_array(struct json_out *j, const char *key) { open_container(j, key, '['); }
void json_end_array(struct json_out *j) { close_container(j, ']'); }

void json_string_n(struct json_out *j, const char *key, const char *s, size_t n) {
  value_prefix(j, key);
  json_write_escaped(j->f, s, n);
}

void json_string(struct json_out *j, const char *key, const char *s) {
  json_string_n(j, key, s ? s : "", s ? strlen(s) : 0);
}

void json_uint(struct json_out *j, const char *key, uint64_t v) {
  value_prefix(j, key);
  fprintf(j->f, "%" PRIu64, v);
}

void json_int(struct json_out *j, const char *key, int64_t v) {
  value_prefix(j, key);
  fprintf(j->f, "%" PRId64, v);
}

void json_bool(struct json_out *j, const char *key, bool v) {
  value_prefix(j, key);
  fputs(v ? "true" : "false", j->f);
}

void json_null(struct json_out *j, const char *key) {
  value_prefix(j, key);
  fputs("null", j->f);
}

void json_finish(struct json_out *j) { fputc('\n', j->f); }

/* ------------------------------------------------------------ tables */

int table_init(struct table *t, size_t ncols, const char *const *headers) {
  memset(t, 0, sizeof *t);
  t->ncols = ncols;
  return headers ? table_add_row(t, headers) : 0;
}

int table_add_row(struct table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
    if (!p)
      return -ENOMEM;
    t->cells = p;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * t->ncols;
  for (size_t i = 0; i < t->ncols; i++) {
    row[i] = strdup(cells[i] ? cells[i] : "");
    if (!row[i]) {
      while (i > 0)
        free(row[--i]);
      return -ENOMEM;
    }
  }
  t->nrows++;
  return 0;
}

/* Display width as code points: right for the ASCII and Latin/Cyrillic text
 * names and paths are made of, without depending on the locale. */
static size_t text_width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

void table_print(const struct table *t, FILE *f) {
  size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof *width);
  if (!width)
    return;
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t w = text_width(t->cells[r * t->ncols + c]);
      width[c] = w > width[c] ? w : width[c];
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const char *cell = t->cells[r * t->ncols + c];
      fputs(cell, f);
      if (c + 1 < t->ncols) /* no trailing blanks after the last column */
        fprintf(f, "%*s", (int)(width[c] - text_width(cell) + 3), "");
    }
    fputc('\n', f);
  }
  free(width);
}

void table_free(struct table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ errors */

static const char *connect_hint(int code) {
  switch (-code) {
  case ENOENT:
  case ECONNREFUSED:
    return " (is the daemon running? start it with: quiltd)";
  case EACCES:
  case EPERM:
    return " (are you allowed to use the socket? try as root)";
  default:
    return "";
  }
}

/* Messages come from the daemon: keep them to one line and keep terminal
 * control sequences out of the user's terminal. */
static void put_message(const char *msg, FILE *f) {
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
    fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

int cli_error_connect(const struct qerr *err) {
  fputs("quilt-cli: ", stderr);
  put_message(err->msg, stderr);
  fprintf(stderr, "%s\n", connect_hint(err->code));
  return CLI_EXIT_FAIL;
}

/* The one failure the user fixes on this side: say how. */
static int unauthenticated(const struct qerr *err) {
  fputs("quilt-cli: unauthenticated: ", stderr);
  if (err->msg[0]) {
    put_message(err->msg, stderr);
    fputs("; ", stderr);
  }
  fputs("give --token-file PATH (or set QUILT_TOKEN_FILE) with the token quiltd reads from "
        "--auth-token-file\n", stderr);
  return CLI_EXIT_FAIL;
}

int cli_error(const char *cmd, const struct qerr *err) {
  if (err->status == GRPC_UNAUTHENTICATED)
    return unauthenticated(err);
  fprintf(stderr, "quilt-cli: %s: ", cmd);
  if (err->status > 0) /* a gRPC failure: name the status */
    fprintf(stderr, "%s%s", grpc_status_name(err->status), err->msg[0] ? ": " : "");
  put_message(err->msg, stderr);
  fputc('\n', stderr);
  return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("quilt-cli: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

void format_duration(char *out, size_t cap, uint64_t s) {
  uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  if (d)
    snprintf(out, cap, "%" PRIu64 "d %" PRIu64 "h", d, h);
  else if (h)
    snprintf(out, cap, "%" PRIu64 "h %" PRIu64 "m", h, m);
  else if (m)
    snprintf(out, cap, "%" PRIu64 "m %" PRIu64 "s", m, sec);
  else
    snprintf(out, cap, "%" PRIu64 "s", sec);
}
