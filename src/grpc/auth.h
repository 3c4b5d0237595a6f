/* API access control for TCP: the shared bearer token (read from a file,
 * ssh-style permission checks), the constant-time comparison, which calls
 * are exempt, and rate-limited logging of failures. I/O-free apart from
 * reading the token file, so quiltd, quilt-cli and unit tests share it.
 *
 * Unix-socket connections are authorized by the socket's file permissions
 * and never reach these checks. */
#ifndef QUILT_GRPC_AUTH_H
#define QUILT_GRPC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

/* A shorter token is guessable; a longer file is not a token. */
#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 4096

/* Failure lines logged per window; the rest are counted and summarized. */
#define AUTH_LOG_BURST 5
#define AUTH_LOG_WINDOW_NS (10ull * 1000000000ull)

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_NOT_BEARER, AUTH_BAD_TOKEN };

struct auth_log_limit {
  uint64_t window_start_ns;
  unsigned logged;      /* lines logged in the current window */
  unsigned suppressed;  /* failures not logged since the last line */
};

struct auth {
  char *token;          /* NULL: TCP calls need no token */
  size_t token_len;
  struct auth_log_limit log;
};

/* Reads the token: a regular file owned by the caller (or root) with no
 * group or other permission bits, one line of at least AUTH_TOKEN_MIN
 * visible ASCII characters; trailing whitespace (the newline) is dropped.
 * On success *token is malloc'ed and NUL-terminated. */
int auth_read_token_file(const char *path, char **token, size_t *len, struct qerr *err);
int auth_load(struct auth *a, const char *path, struct qerr *err);
/* Re-reads the file (token rotation, SIGHUP): the new token replaces the
 * old one only when it is valid; otherwise the old one stays in force. */
int auth_reload(struct auth *a, const char *path, struct qerr *err);
void auth_free(struct auth *a);

/* Compares in time that depends only on expected_len, never on where the
 * first difference is or on the candidate's length. */
bool auth_token_equal(const char *expected, size_t expected_len, const char *given,
                      size_t given_len);
/* Checks an `authorization` value ("Bearer <token>"; NULL when absent). */
enum auth_result auth_check(const struct auth *a, const char *authorization);
/* For the gRPC status message and logs. */
const char *auth_result_text(enum auth_result r);
/* gRPC methods callable without a token over TCP (health checking). */
bool auth_exempt_method(const char *path);

/* True when a failure at now_ns may be logged; *suppressed is how many
 * were dropped since the last line that was. */
bool auth_log_allow(struct auth_log_limit *l, uint64_t now_ns, unsigned *suppressed);

#endif
