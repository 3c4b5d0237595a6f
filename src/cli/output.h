/* Output for quilt-cli: JSON emission, aligned human tables, and the one
 * place that decides how errors look and which exit code they give. */
#ifndef QUILT_CLI_OUTPUT_H
#define QUILT_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/qerr.h"

/* Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* ------------------------------------------------------------ JSON */

#define JSON_MAX_DEPTH 16

/* A streaming JSON writer. Keys are given with each value while inside an
 * object and must be NULL inside an array or at the top level. Pretty output
 * indents by two spaces; compact output is one line (for JSON Lines streams
 * such as events). Nesting deeper than JSON_MAX_DEPTH is a programming
 * error and aborts. Write errors are left to ferror() on the FILE. */
struct json_out {
  FILE *f;
  bool pretty;
  int depth;
  bool has_items[JSON_MAX_DEPTH + 1];
};

void json_init(struct json_out *j, FILE *f, bool pretty);
void json_begin_object(struct json_out *j, const char *key);
void json_end_object(struct json_out *j);
void json_begin_array(struct json_out *j, const char *key);
void json_end_array(struct json_out *j);
void json_string(struct json_out *j, const char *key, const char *s); /* NULL -> "" */
/* Arbitrary bytes (log data); invalid UTF-8 becomes U+FFFD. */
void json_string_n(struct json_out *j, const char *key, const char *s, size_t n);
void json_uint(struct json_out *j, const char *key, uint64_t v);
void json_int(struct json_out *j, const char *key, int64_t v);
void json_bool(struct json_out *j, const char *key, bool v);
void json_null(struct json_out *j, const char *key);
/* Ends the top-level value with a newline. */
void json_finish(struct json_out *j);

/* Writes s (n bytes) as a quoted JSON string. */
void json_write_escaped(FILE *f, const char *s, size_t n);

/* ------------------------------------------------------------ tables */

/* Rows of text cells printed with left-aligned, padded columns separated
 * by three spaces (docker/podman style). Width counts UTF-8 code points. */
struct table {
  size_t ncols;
  size_t nrows;
  size_t cap;
  char **cells; /* nrows * ncols copies; NULL prints as "" */
};

/* `headers` (ncols entries) becomes the first row; NULL for none. */
int table_init(struct table *t, size_t ncols, const char *const *headers);
/* Copies ncols cells. Returns 0 or -ENOMEM. */
int table_add_row(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);

/* ------------------------------------------------------------ errors */

/* "quilt-cli: cannot reach quiltd at X: <errno text>" plus a hint for a
 * missing or refusing daemon. Returns CLI_EXIT_FAIL. */
int cli_error_connect(const struct qerr *err);
/* "quilt-cli: CMD: STATUS_NAME: message" for gRPC failures (err->status set),
 * "quilt-cli: CMD: message" for local ones. Returns CLI_EXIT_FAIL. */
int cli_error(const char *cmd, const struct qerr *err);
/* "quilt-cli: <formatted>" on stderr. Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "3d 4h", "2h 5m", "4m 10s", "12s": human uptime. */
void format_duration(char *out, size_t cap, uint64_t seconds);

#endif
