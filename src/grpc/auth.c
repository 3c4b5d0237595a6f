#include "grpc/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Like ssh with private keys: a token others can read is no secret, so
 * refuse it rather than serve with it. */
static int check_file(int fd, const char *path, struct qerr *err) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "token file %s", path);
  if (!S_ISREG(st.st_mode))
    return qerr_set(err, EINVAL, "token file %s is not a regular file", path);
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return qerr_set(err, EPERM, "token file %s is owned by uid %u: it must be yours or root's",
                    path, (unsigned)st.st_uid);
  if (st.st_mode & 077)
    return qerr_set(err, EPERM,
                    "token file %s has mode %04o: it must not be accessible by group or "
                    "others (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
  if (st.st_size > AUTH_TOKEN_MAX)
    return qerr_set(err, EFBIG, "token file %s is larger than %d bytes", path, AUTH_TOKEN_MAX);
  return 0;
}

static int read_all(int fd, char *buf, size_t cap, size_t *len, const char *path,
                    struct qerr *err) {
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return qerr_errno(err, "reading token file %s", path);
    if (r == 0)
      break;
    n += (size_t)r;
    if (n == cap)
      return qerr_set(err, EFBIG, "token file %s is larger than %d bytes", path,
                      AUTH_TOKEN_MAX);
  }
  *len = n;
  return 0;
}

/* The token travels in an HTTP header value: visible ASCII only. */
static int check_token(const char *t, size_t n, const char *path, struct qerr *err) {
  if (n < AUTH_TOKEN_MIN)
    return qerr_set(err, EINVAL, "token in %s is %zu bytes: it must be at least %d", path, n,
                    AUTH_TOKEN_MIN);
  for (size_t i = 0; i < n; i++)
    if (t[i] < 0x21 || t[i] > 0x7e)
      return qerr_set(err, EINVAL,
                      "token in %s has a space or a non-printable character at byte %zu: "
                      "use one line of visible ASCII", path, i);
  return 0;
}

int auth_read_token_file(const char *path, char **token, size_t *len, struct qerr *err) {
  *token = NULL;
  *len = 0;
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return qerr_errno(err, "token file %s", path);
  int rc = check_file(fd, path, err);
  if (rc < 0)
    return rc;
  cleanup_free char *buf = malloc(AUTH_TOKEN_MAX + 1);
  if (!buf)
    return qerr_set(err, ENOMEM, "reading token file %s", path);
  size_t n = 0;
  rc = read_all(fd, buf, AUTH_TOKEN_MAX + 1, &n, path, err);
  if (rc < 0)
    return rc;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                   buf[n - 1] == '\t'))
    n--;
  buf[n] = 0;
  rc = check_token(buf, n, path, err);
  if (rc < 0) {
    explicit_bzero(buf, AUTH_TOKEN_MAX + 1);
    return rc;
  }
  *token = take_ptr(buf);
  *len = n;
  return 0;
}

int auth_load(struct auth *a, const char *path, struct qerr *err) {
  auth_free(a);
  return auth_read_token_file(path, &a->token, &a->token_len, err);
}

int auth_reload(struct auth *a, const char *path, struct qerr *err) {
  char *token;
  size_t len;
  int rc = auth_read_token_file(path, &token, &len, err);
  if (rc < 0)
    return rc;
  struct auth_log_limit log = a->log;
  auth_free(a);
  *a = (struct auth){.token = token, .token_len = len, .log = log};
  return 0;
}

void auth_free(struct auth *a) {
  if (a->token)
    explicit_bzero(a->token, a->token_len);
  free(a->token);
  *a = (struct auth){0};
}

bool auth_token_equal(const char *expected, size_t expected_len, const char *given,
                      size_t given_len) {
  /* Walk the expected token whatever was given; a short candidate is read
   * cyclically so no index depends on where it ends. */
  volatile unsigned char diff = (unsigned char)(expected_len != given_len);
  for (size_t i = 0; i < expected_len; i++) {
    unsigned char g = given_len ? (unsigned char)given[i % given_len] : 0;
    diff |= (unsigned char)((unsigned char)expected[i] ^ g);
  }
  return expected_len > 0 && diff == 0;
}

enum auth_result auth_check(const struct auth *a, const char *authorization) {
  if (!authorization || !authorization[0])
    return AUTH_MISSING;
  static const char scheme[] = "Bearer";
  size_t sl = sizeof scheme - 1;
  /* The scheme is case-insensitive (RFC 9110 11.1). */
  if (strncasecmp(authorization, scheme, sl) != 0 || authorization[sl] != ' ')
    return AUTH_NOT_BEARER;
  const char *t = authorization + sl;
  while (*t == ' ')
    t++;
  size_t n = strlen(t);
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
    n--;
  return auth_token_equal(a->token, a->token_len, t, n) ? AUTH_OK : AUTH_BAD_TOKEN;
}

const char *auth_result_text(enum auth_result r) {
  switch (r) {
  case AUTH_OK:
    return "authenticated";
  case AUTH_MISSING:
    return "missing authorization: send the metadata 'authorization: Bearer <token>' "
           "with quiltd's token";
  case AUTH_NOT_BEARER:
    return "the authorization metadata is not 'Bearer <token>'";
  case AUTH_BAD_TOKEN:
    return "invalid bearer token";
  }
  return "unauthenticated";
}

bool auth_exempt_method(const char *path) {
  return strcmp(path, "/grpc.health.v1.Health/Check") == 0 ||
         strcmp(path, "/grpc.health.v1.Health/Watch") == 0;
}

bool auth_log_allow(struct auth_log_limit *l, uint64_t now_ns, unsigned *suppressed) {
  if (l->logged == 0 || now_ns - l->window_start_ns >= AUTH_LOG_WINDOW_NS) {
    l->window_start_ns = now_ns;
    l->logged = 0;
  }
  if (l->logged >= AUTH_LOG_BURST) {
    l->suppressed++;
    return false;
  }
  l->logged++;
  *suppressed = l->suppressed;
  l->suppressed = 0;
  return true;
}
