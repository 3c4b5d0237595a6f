/* Setup steps: spec parsing, cache keys and the setup script (setup.h). */
#include "runtime/setup.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "grpc/status.h"

#define BLANKS " \t\n\r"
#define MANAGER_LIST "npm, pip, gem, apt, apk, sh"
/* A value shown in a message: quoted, escaped, cut (see show). */
#define SHOWN_MAX 400
#define SHOWN_SRC_MAX 80
/* Marker lines name the step by its canonical text, cut to this. */
#define MARKER_TEXT_MAX 200
#define URL_MAX 2048
#define NO_PROXY_MAX 4096
#define NPM_CACHE "/tmp/.quilt-setup-npm"

static const char *const manager_names[SETUP_MANAGER_COUNT] = {
    [SETUP_NPM] = "npm", [SETUP_PIP] = "pip", [SETUP_GEM] = "gem",
    [SETUP_APT] = "apt", [SETUP_APK] = "apk", [SETUP_SH] = "sh",
};

/* How each manager's packages are written, for error messages. */
static const char *const manager_forms[SETUP_MANAGER_COUNT] = {
    [SETUP_NPM] = "[@SCOPE/]NAME[@VERSION], e.g. typescript@5.4.0 or @types/node",
    [SETUP_PIP] = "NAME[EXTRAS][SPECIFIERS], e.g. flask==3.0.0 or requests>=2,<3",
    [SETUP_GEM] = "NAME[:VERSION], e.g. rake or rails:7.1.3",
    [SETUP_APT] = "NAME[:ARCH][=VERSION|/RELEASE], e.g. curl or curl=7.88.1-10+deb12u5",
    [SETUP_APK] = "NAME[OP VERSION], e.g. curl or curl=8.5.0-r0",
};

const char *setup_manager_name(enum setup_manager m) {
  return (unsigned)m < SETUP_MANAGER_COUNT ? manager_names[m] : "?";
}

static int invalid(struct qerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bad input: INVALID_ARGUMENT, as the daemon answers it. */
static int invalid(struct qerr *err, const char *fmt, ...) {
  char msg[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return qerr_status(err, GRPC_INVALID_ARGUMENT, EINVAL, "%s", msg);
}

/* ------------------------------------------------------------ messages */

/* The first n bytes of s as a message shows them: in double quotes, with
 * quotes, backslashes and unprintable bytes escaped (a spec may carry
 * escape sequences meant for a terminal), cut after SHOWN_SRC_MAX bytes. */
static const char *show_n(char out[SHOWN_MAX], const char *s, size_t n) {
  size_t o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < n && i < SHOWN_SRC_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      o += (size_t)snprintf(out + o, SHOWN_MAX - o, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      o += (size_t)snprintf(out + o, SHOWN_MAX - o, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  snprintf(out + o, SHOWN_MAX - o, "%s\"", n > SHOWN_SRC_MAX ? "..." : "");
  return out;
}

static const char *show(char out[SHOWN_MAX], const char *s) {
  return show_n(out, s, strnlen(s, SHOWN_SRC_MAX + 1));
}

/* 'x' for a printable byte, byte 0xNN for others. */
static const char *show_char(char out[16], unsigned char c) {
  if (c > 0x20 && c < 0x7f)
    snprintf(out, 16, "'%c'", c);
  else
    snprintf(out, 16, "byte 0x%02x", c);
  return out;
}

/* ------------------------------------------------------------ packages */

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* Length of the run at s of letters, digits and bytes of extra. */
static size_t run(const char *s, const char *extra) {
  size_t n = 0;
  while (s[n] && (is_alnum(s[n]) || strchr(extra, s[n])))
    n++;
  return n;
}

/* The same with lower-case letters only (Debian package names). */
static size_t lower_run(const char *s, const char *extra) {
  size_t n = 0;
  while (s[n] && (is_lower_alnum(s[n]) || strchr(extra, s[n])))
    n++;
  return n;
}

/* Each checker follows its manager's grammar for a registry package from
 * p and returns why the package is wrong, or NULL with *stop where the
 * grammar ended: a byte there, if any, is one the grammar has no place
 * for. A leading '-' was refused before. */
typedef const char *pkg_checker(const char *p, const char **stop);

static const char *npm_check(const char *p, const char **stop) {
  if (*p == '@') {
    size_t s = run(p + 1, "._-");
    if (s == 0 || p[1 + s] != '/')
      return "a scoped name is written @scope/name";
    p += s + 2;
  }
  size_t n = run(p, "._-");
  *stop = p + n;
  if (n == 0)
    return *p ? NULL : "the name is empty";
  if (*p == '.' || *p == '_')
    return "a name may not start with '.' or '_'";
  p += n;
  if (*p == '@') {
    size_t v = run(p + 1, "._-^~<>=*+");
    if (v == 0 && p[1] == 0)
      return "the version after '@' is empty";
    p += 1 + v;
  }
  *stop = p;
  return NULL;
}

static const char *pip_check(const char *p, const char **stop) {
  size_t n = run(p, "._-");
  *stop = p + n;
  if (n == 0)
    return *p ? NULL : "the name is empty";
  if (!is_alnum(p[0]) || !is_alnum(p[n - 1]))
    return "a name starts and ends with a letter or digit";
  p += n;
  if (*p == '[') {
    do {
      p++;
      p += run(p, "._-");
    } while (*p == ',');
    *stop = p;
    if (*p != ']')
      return *p ? NULL : "the extras list has no closing ']'";
    p++;
  }
  if (*p && strchr("<>=!~", *p))
    p += run(p, ".*+!_,<>=~-");
  *stop = p;
  return NULL;
}

static const char *gem_check(const char *p, const char **stop) {
  size_t n = run(p, "._-");
  *stop = p + n;
  if (n == 0)
    return *p ? NULL : "the name is empty";
  if (!is_alnum(p[0]))
    return "a name starts with a letter or digit";
  p += n;
  if (*p == ':') {
    size_t v = run(p + 1, ".-<>=!~");
    if (v == 0 && p[1] == 0)
      return "the version after ':' is empty";
    p += 1 + v;
  }
  *stop = p;
  return NULL;
}

/* Debian policy names, with apt-get's ":arch", "=version", "/release". */
static const char *apt_check(const char *p, const char **stop) {
  size_t n = lower_run(p, "+.-");
  *stop = p + n;
  if (n == 0)
    return *p ? NULL : "the name is empty";
  if (!is_lower_alnum(p[0]) || n < 2)
    return "a Debian package name has 2 or more characters and starts with a letter or digit";
  if (p[n - 1] == '-')
    return "a trailing '-' asks apt-get to remove the package";
  p += n;
  if (*p == ':') {
    size_t a = lower_run(p + 1, "-");
    *stop = p + 1;
    if (a == 0)
      return p[1] ? NULL : "the architecture after ':' is empty";
    p += 1 + a;
  }
  if (*p == '=' || *p == '/') {
    size_t v = run(p + 1, *p == '=' ? ".+~:-" : ".+-");
    *stop = p + 1;
    if (v == 0)
      return p[1] ? NULL : "the version or release is empty";
    p += 1 + v;
  }
  *stop = p;
  return NULL;
}

static const char *apk_check(const char *p, const char **stop) {
  size_t n = run(p, "._+-");
  *stop = p + n;
  if (n == 0)
    return *p ? NULL : "the name is empty";
  if (!is_alnum(p[0]))
    return "a name starts with a letter or digit";
  p += n;
  if (*p && strchr("=<>~", *p)) {
    p += strspn(p, "=<>~");
    size_t v = run(p, "._-");
    *stop = p;
    if (v == 0)
      return *p ? NULL : "the version after the operator is empty";
    p += v;
  }
  *stop = p;
  return NULL;
}

static pkg_checker *const checkers[SETUP_MANAGER_COUNT] = {
    [SETUP_NPM] = npm_check, [SETUP_PIP] = pip_check, [SETUP_GEM] = gem_check,
    [SETUP_APT] = apt_check, [SETUP_APK] = apk_check,
};

/* Why the byte c, where the grammar ends, cannot be there. */
static const char *stray_reason(char out[128], unsigned char c) {
  char ch[16];
  if (c == '/' || c == ':' || c == '@')
    snprintf(out, 128, "%s is not allowed here: only registry packages can be named "
             "(no URLs, paths or git references)", show_char(ch, c));
  else
    snprintf(out, 128, "%s is not allowed", show_char(ch, c));
  return out;
}

/* where: "setup spec \"...\"" or "setup step 2/3"; names the input. */
static int pkg_check(enum setup_manager m, const char *pkg, const char *where, struct qerr *err) {
  char shown[SHOWN_MAX], buf[128];
  const char *mgr = manager_names[m];
  size_t len = strnlen(pkg, SETUP_PKG_MAX + 1);
  if (len > SETUP_PKG_MAX)
    return invalid(err, "%s: %s package %s is longer than %d bytes", where, mgr,
                   show(shown, pkg), SETUP_PKG_MAX);
  if (pkg[0] == '-')
    return invalid(err, "%s: %s package %s starts with '-' (it would be read as an option)",
                   where, mgr, show(shown, pkg));
  const char *stop = pkg;
  const char *why = checkers[m](pkg, &stop);
  if (!why && *stop)
    why = stray_reason(buf, (unsigned char)*stop);
  if (why)
    return invalid(err, "%s: %s package %s: %s; write %s", where, mgr, show(shown, pkg), why,
                   manager_forms[m]);
  return 0;
}

/* A shell command may hold anything a terminal or log cannot be fooled
 * by: no C0 controls but tab, CR and newline, no DEL. */
static int shell_check(const char *cmd, size_t n, const char *where, struct qerr *err) {
  char ch[16];
  if (n == 0)
    return invalid(err, "%s: no command after \"sh:\"", where);
  if (n > SETUP_SPEC_MAX)
    return invalid(err, "%s: the command is longer than %d bytes", where, SETUP_SPEC_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)cmd[i];
    if ((c < 0x20 && !strchr("\t\n\r", c)) || c == 0x7f)
      return invalid(err, "%s: the command has a control character (%s)", where,
                     show_char(ch, c));
  }
  return 0;
}

/* ------------------------------------------------------------ steps */

void setup_step_free(struct setup_step *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n_pkgs; i++)
    free(s->pkgs[i]);
  free(s->pkgs);
  free(s->shell);
  s->pkgs = NULL;
  s->n_pkgs = 0;
  s->shell = NULL;
}

void setup_steps_free(struct setup_step *steps, size_t n) {
  for (size_t i = 0; steps && i < n; i++)
    setup_step_free(&steps[i]);
}

static int manager_lookup(const char *p, size_t n) {
  for (int m = 0; m < SETUP_MANAGER_COUNT; m++)
    if (strlen(manager_names[m]) == n && memcmp(p, manager_names[m], n) == 0)
      return m;
  return -1;
}

static size_t count_words(const char *p) {
  size_t n = 0;
  for (p += strspn(p, BLANKS); *p; p += strspn(p, BLANKS)) {
    p += strcspn(p, BLANKS);
    n++;
  }
  return n;
}

static int parse_pkgs(enum setup_manager m, const char *p, const char *where,
                      struct setup_step *out, struct qerr *err) {
  size_t n = count_words(p);
  if (n == 0)
    return invalid(err, "%s: no packages after \"%s:\"", where, manager_names[m]);
  if (n > SETUP_PKGS_MAX)
    return invalid(err, "%s: more than %d packages in one step", where, SETUP_PKGS_MAX);
  out->mgr = m;
  out->pkgs = calloc(n, sizeof *out->pkgs);
  if (!out->pkgs)
    return qerr_set(err, ENOMEM, "%s: out of memory", where);
  for (size_t i = 0; i < n; i++) {
    p += strspn(p, BLANKS);
    size_t len = strcspn(p, BLANKS);
    out->pkgs[i] = strndup(p, len);
    if (!out->pkgs[i]) {
      setup_step_free(out);
      return qerr_set(err, ENOMEM, "%s: out of memory", where);
    }
    out->n_pkgs++;
    p += len;
    int r = pkg_check(m, out->pkgs[i], where, err);
    if (r < 0) {
      setup_step_free(out);
      return r;
    }
  }
  return 0;
}

/* Leading and trailing blanks of a command are not part of it. */
static const char *trim(const char *s, size_t *n) {
  s += strspn(s, BLANKS);
  size_t len = strlen(s);
  while (len > 0 && strchr(BLANKS, s[len - 1]))
    len--;
  *n = len;
  return s;
}

static int parse_shell(const char *p, const char *where, struct setup_step *out,
                       struct qerr *err) {
  size_t n;
  p = trim(p, &n);
  int r = shell_check(p, n, where, err);
  if (r < 0)
    return r;
  out->mgr = SETUP_SH;
  out->shell = strndup(p, n);
  if (!out->shell)
    return qerr_set(err, ENOMEM, "%s: out of memory", where);
  return 0;
}

int setup_parse(const char *spec, struct setup_step *out, struct qerr *err) {
  memset(out, 0, sizeof *out);
  if (!spec)
    return invalid(err, "setup spec missing");
  char shown[SHOWN_MAX], where[SHOWN_MAX + 16];
  snprintf(where, sizeof where, "setup spec %s", show(shown, spec));
  if (strnlen(spec, SETUP_SPEC_MAX + 1) > SETUP_SPEC_MAX)
    return invalid(err, "%s is longer than %d bytes", where, SETUP_SPEC_MAX);
  const char *p = spec + strspn(spec, BLANKS);
  size_t n = strcspn(p, ":" BLANKS);
  if (p[n] != ':')
    return invalid(err, "%s: expected MANAGER: ARGS, MANAGER one of " MANAGER_LIST, where);
  int m = manager_lookup(p, n);
  if (m < 0)
    return invalid(err, "%s: unknown manager %s (known: " MANAGER_LIST ")", where,
                   show_n(shown, p, n));
  if (m == SETUP_SH)
    return parse_shell(p + n + 1, where, out, err);
  return parse_pkgs((enum setup_manager)m, p + n + 1, where, out, err);
}

static int step_check(const struct setup_step *s, const char *where, struct qerr *err) {
  if ((unsigned)s->mgr >= SETUP_MANAGER_COUNT)
    return invalid(err, "%s: unknown manager %d", where, (int)s->mgr);
  if (s->mgr == SETUP_SH) {
    if (!s->shell || s->n_pkgs)
      return invalid(err, "%s: an sh step has a command and no packages", where);
    size_t n;
    const char *cmd = trim(s->shell, &n);
    return shell_check(cmd, n, where, err);
  }
  if (s->shell)
    return invalid(err, "%s: a %s step has packages, not a command", where,
                   manager_names[s->mgr]);
  if (s->n_pkgs == 0 || !s->pkgs)
    return invalid(err, "%s: no packages for %s", where, manager_names[s->mgr]);
  if (s->n_pkgs > SETUP_PKGS_MAX)
    return invalid(err, "%s: more than %d packages in one step", where, SETUP_PKGS_MAX);
  for (size_t i = 0; i < s->n_pkgs; i++) {
    if (!s->pkgs[i])
      return invalid(err, "%s: package %zu is missing", where, i + 1);
    int r = pkg_check(s->mgr, s->pkgs[i], where, err);
    if (r < 0)
      return r;
  }
  return 0;
}

int setup_step_check(const struct setup_step *s, struct qerr *err) {
  char where[64];
  snprintf(where, sizeof where, "setup step (%s)", setup_manager_name(s->mgr));
  return step_check(s, where, err);
}

int setup_step_canonical(const struct setup_step *s, struct strbuf *out) {
  int r = strbuf_printf(out, "%s:", setup_manager_name(s->mgr));
  if (s->mgr == SETUP_SH && s->shell) {
    size_t n;
    const char *cmd = trim(s->shell, &n);
    if (r == 0)
      r = strbuf_append(out, " ", 1);
    if (r == 0)
      r = strbuf_append(out, cmd, n);
  }
  for (size_t i = 0; r == 0 && i < s->n_pkgs; i++)
    r = strbuf_printf(out, " %s", s->pkgs[i]);
  return r;
}

/* ------------------------------------------------------------ config */

/* Which configuration fields a step can use (the key hashes these). */
enum {
  USES_NPM = 1 << 0,
  USES_PIP = 1 << 1,
  USES_GEM = 1 << 2,
  USES_APT = 1 << 3,
  USES_APK = 1 << 4,
  USES_PROXY = 1 << 5,
};

enum field_kind { FIELD_URL, FIELD_HOSTS };

struct cfg_field {
  const char *name;
  size_t off;
  enum field_kind kind;
  unsigned uses;
};

static const struct cfg_field cfg_fields[] = {
    {"npm_registry", offsetof(struct setup_config, npm_registry), FIELD_URL, USES_NPM},
    {"pip_index", offsetof(struct setup_config, pip_index), FIELD_URL, USES_PIP},
    {"gem_source", offsetof(struct setup_config, gem_source), FIELD_URL, USES_GEM},
    {"apt_mirror", offsetof(struct setup_config, apt_mirror), FIELD_URL, USES_APT},
    {"apk_repository", offsetof(struct setup_config, apk_repository), FIELD_URL, USES_APK},
    {"http_proxy", offsetof(struct setup_config, http_proxy), FIELD_URL, USES_PROXY},
    {"https_proxy", offsetof(struct setup_config, https_proxy), FIELD_URL, USES_PROXY},
    {"no_proxy", offsetof(struct setup_config, no_proxy), FIELD_HOSTS, USES_PROXY},
};

/* A field's value; NULL when unset (NULL config, NULL or ""). */
static const char *cfg_value(const struct setup_config *cfg, const struct cfg_field *f) {
  if (!cfg)
    return NULL;
  const char *v = *(const char *const *)((const char *)cfg + f->off);
  return v && *v ? v : NULL;
}

/* The value of the field called name; NULL when unset. */
static const char *cfg_get(const struct setup_config *cfg, const char *name) {
  for (size_t i = 0; i < ARRAY_SIZE(cfg_fields); i++)
    if (strcmp(cfg_fields[i].name, name) == 0)
      return cfg_value(cfg, &cfg_fields[i]);
  return NULL;
}

static unsigned step_uses(enum setup_manager m) {
  switch (m) {
  case SETUP_NPM: return USES_NPM | USES_APT | USES_APK;
  case SETUP_PIP: return USES_PIP | USES_APT | USES_APK;
  case SETUP_GEM: return USES_GEM | USES_APT | USES_APK;
  case SETUP_APT: return USES_APT;
  case SETUP_APK: return USES_APK;
  case SETUP_SH: return 0;
  }
  return 0;
}

/* The part of a URL after "scheme://", or NULL for other schemes. */
static const char *url_rest(const char *v) {
  if (strncmp(v, "http://", 7) == 0)
    return v + 7;
  if (strncmp(v, "https://", 8) == 0)
    return v + 8;
  return NULL;
}

/* No '&', '#' or '\': the apt mirror goes into a sed replacement. */
static int field_check(const struct cfg_field *f, const char *v, struct qerr *err) {
  char shown[SHOWN_MAX], ch[16];
  bool url = f->kind == FIELD_URL;
  size_t max = url ? URL_MAX : NO_PROXY_MAX;
  if (strnlen(v, max + 1) > max)
    return invalid(err, "setup config: %s is longer than %zu bytes", f->name, max);
  const char *rest = url ? url_rest(v) : v;
  if (!rest || (url && (*rest == 0 || strchr("/?@", *rest))))
    return invalid(err, "setup config: %s %s is not an http:// or https:// URL with a host",
                   f->name, show(shown, v));
  size_t n = run(v, url ? "-._~:/?=%+@,[]" : ".,:*_/-");
  if (v[n])
    return invalid(err, "setup config: %s %s: %s is not allowed in %s", f->name,
                   show(shown, v), show_char(ch, (unsigned char)v[n]),
                   url ? "a URL" : "a host list");
  return 0;
}

int setup_config_check(const struct setup_config *cfg, struct qerr *err) {
  for (size_t i = 0; i < ARRAY_SIZE(cfg_fields); i++) {
    const char *v = cfg_value(cfg, &cfg_fields[i]);
    int r = v ? field_check(&cfg_fields[i], v, err) : 0;
    if (r < 0)
      return r;
  }
  return 0;
}

/* Validates everything setup_cache_key and setup_script are given; returns
 * the USES_* bits of the steps. */
static int check_all(const struct setup_step *steps, size_t n, const struct setup_config *cfg,
                     unsigned *uses, struct qerr *err) {
  if (n == 0 || !steps)
    return invalid(err, "no setup steps");
  if (n > SETUP_STEPS_MAX)
    return invalid(err, "%zu setup steps: at most %d", n, SETUP_STEPS_MAX);
  *uses = USES_PROXY;
  for (size_t i = 0; i < n; i++) {
    char where[64];
    snprintf(where, sizeof where, "setup step %zu/%zu", i + 1, n);
    int r = step_check(&steps[i], where, err);
    if (r < 0)
      return r;
    *uses |= step_uses(steps[i].mgr);
  }
  return setup_config_check(cfg, err);
}

/* ------------------------------------------------------------ cache key */

/* Name, NUL, decimal length, ':', bytes: no two field lists hash alike. */
static void hash_field(struct sha256_ctx *h, const char *name, const char *v, size_t n) {
  char len[32];
  int k = snprintf(len, sizeof len, "%zu:", n);
  sha256_update(h, strlen(name) + 1, (const uint8_t *)name);
  sha256_update(h, (size_t)k, (const uint8_t *)len);
  sha256_update(h, n, (const uint8_t *)v);
}

static bool is_image_id(const char *s) {
  if (!s || strlen(s) != 64)
    return false;
  for (size_t i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

static int hash_steps(struct sha256_ctx *h, const struct setup_step *steps, size_t n,
                      struct qerr *err) {
  struct strbuf b = STRBUF_INIT;
  for (size_t i = 0; i < n; i++) {
    strbuf_reset(&b);
    if (setup_step_canonical(&steps[i], &b) < 0) {
      strbuf_free(&b);
      return qerr_set(err, ENOMEM, "setup cache key: out of memory");
    }
    hash_field(h, "step", (const char *)strbuf_head(&b), strbuf_avail(&b));
  }
  strbuf_free(&b);
  return 0;
}

int setup_cache_key(const char *image_id, const struct setup_step *steps, size_t n,
                    const struct setup_config *cfg, char out[SETUP_KEY_LEN + 1],
                    struct qerr *err) {
  char shown[SHOWN_MAX], version[16];
  if (!is_image_id(image_id))
    return invalid(err, "setup cache key: image id %s is not 64 hex digits",
                   show(shown, image_id ? image_id : ""));
  unsigned uses;
  int r = check_all(steps, n, cfg, &uses, err);
  if (r < 0)
    return r;
  struct sha256_ctx h;
  sha256_init(&h);
  snprintf(version, sizeof version, "%d", SETUP_KEY_VERSION);
  hash_field(&h, "quilt-setup-key", version, strlen(version));
  hash_field(&h, "image", image_id, 64);
  if ((r = hash_steps(&h, steps, n, err)) < 0)
    return r;
  for (size_t i = 0; i < ARRAY_SIZE(cfg_fields); i++) {
    if (!(cfg_fields[i].uses & uses))
      continue;
    const char *v = cfg_value(cfg, &cfg_fields[i]);
    hash_field(&h, cfg_fields[i].name, v ? v : "", v ? strlen(v) : 0);
  }
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_digest(&h, sizeof d, d);
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof d; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[SETUP_KEY_LEN] = 0;
  return 0;
}

/* ------------------------------------------------------------ the script */

/* The script being written; the first -ENOMEM sticks, so emitters need
 * not check every append. */
struct script {
  struct strbuf *b;
  int rc;
  size_t n;                       /* steps */
  const struct setup_config *cfg;
  unsigned uses;
};

static void put(struct script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct script *s, const char *fmt, ...) {
  if (s->rc < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *t = n < 0 ? NULL : (char *)strbuf_tail(s->b, (size_t)n + 1);
  if (!t) {
    s->rc = -ENOMEM;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(t, (size_t)n + 1, fmt, ap);
  va_end(ap);
  strbuf_commit(s->b, (size_t)n);
}

static void put_raw(struct script *s, const char *p, size_t n) {
  if (s->rc == 0 && strbuf_append(s->b, p, n) < 0)
    s->rc = -ENOMEM;
}

/* One shell word holding exactly the bytes of v: single quotes keep
 * everything literal but a single quote, written as '\''. */
static void put_quoted(struct script *s, const char *v) {
  put_raw(s, "'", 1);
  for (const char *q; (q = strchr(v, '\'')); v = q + 1) {
    put_raw(s, v, (size_t)(q - v));
    put_raw(s, "'\\''", 4);
  }
  put_raw(s, v, strlen(v));
  put_raw(s, "'", 1);
}

/* " 'a' 'b'": a step's packages as words. */
static void put_pkgs(struct script *s, const struct setup_step *st) {
  for (size_t i = 0; i < st->n_pkgs; i++) {
    put_raw(s, " ", 1);
    put_quoted(s, st->pkgs[i]);
  }
}

/* "printf '%s\n' 'TEXT' >&2": a line to stderr, TEXT quoted. */
static void put_line(struct script *s, const char *text) {
  put(s, "printf '%%s\\n' ");
  put_quoted(s, text);
  put(s, " >&2\n");
}

/* The text of a step's marker: its canonical form on one line. */
static int marker_text(const struct setup_step *st, size_t i, size_t n, struct strbuf *m) {
  struct strbuf c = STRBUF_INIT;
  int r = setup_step_canonical(st, &c);
  const char *t = r == 0 ? strbuf_cstr(&c) : NULL;
  if (!t) {
    strbuf_free(&c);
    return -ENOMEM;
  }
  size_t len = strlen(t), cut = len;
  if (len > MARKER_TEXT_MAX) {
    cut = MARKER_TEXT_MAX;
    while (cut > 0 && ((unsigned char)t[cut] & 0xc0) == 0x80)
      cut--;   /* not inside a UTF-8 sequence */
  }
  r = strbuf_printf(m, "quilt-setup: step %zu/%zu: ", i + 1, n);
  for (size_t k = 0; r == 0 && k < cut; k++) {
    char ch = (unsigned char)t[k] < 0x20 || t[k] == 0x7f ? ' ' : t[k];
    r = strbuf_append(m, &ch, 1);
  }
  if (r == 0 && cut < len)
    r = strbuf_append(m, "...", 3);
  strbuf_free(&c);
  return r;
}

static void put_marker(struct script *s, const struct setup_step *st, size_t i) {
  struct strbuf m = STRBUF_INIT;
  const char *t = marker_text(st, i, s->n, &m) == 0 ? strbuf_cstr(&m) : NULL;
  if (t)
    put_line(s, t);
  else
    s->rc = -ENOMEM;
  strbuf_free(&m);
}

static void put_env(struct script *s, const char *upper, const char *lower, const char *v) {
  if (!v)
    return;
  put(s, "%s=", upper);
  put_quoted(s, v);
  put(s, "\n%s=$%s\nexport %s %s\n", lower, upper, upper, lower);
}

static void put_prelude(struct script *s) {
  put(s,
      "#!/bin/sh\n"
      "# Setup script generated by quiltd (src/runtime/setup.c): %zu step%s.\n"
      "set -e\n"
      "PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}\n"
      "HOME=${HOME:-/root}\n"
      "export PATH HOME\n",
      s->n, s->n == 1 ? "" : "s");
  put_env(s, "HTTP_PROXY", "http_proxy", cfg_get(s->cfg, "http_proxy"));
  put_env(s, "HTTPS_PROXY", "https_proxy", cfg_get(s->cfg, "https_proxy"));
  put_env(s, "NO_PROXY", "no_proxy", cfg_get(s->cfg, "no_proxy"));
  /* A command exiting 90 must not read as "manager missing". */
  put(s,
      "quilt_fail() {\n"
      "  printf 'quilt-setup: step %%s/%zu failed: exit code %%s\\n' \"$1\" \"$2\" >&2\n"
      "  [ \"$2\" -ne %d ] || exit 1\n"
      "  exit \"$2\"\n"
      "}\n"
      "quilt_missing() {\n"
      "  printf 'quilt-setup: %%s\\n' \"$1\" >&2\n"
      "  exit %d\n"
      "}\n",
      s->n, SETUP_EXIT_MISSING, SETUP_EXIT_MISSING);
}

/* quilt_apt_install STEP PKG...: apt-get update once (after pointing the
 * sources at the mirror), then the install. */
static void put_apt_helpers(struct script *s) {
  const char *mirror = cfg_get(s->cfg, "apt_mirror");
  put(s, "quilt_apt_update() {\n"
         "  [ -z \"${quilt_apt_updated-}\" ] || return 0\n");
  if (mirror) {
    size_t n = strlen(mirror);
    while (n > 0 && mirror[n - 1] == '/')
      n--;
    struct strbuf e = STRBUF_INIT;
    /* field_check kept '#', '&' and '\' out of the mirror. */
    const char *expr = strbuf_printf(&e, "s#https?://[^/[:space:]]+#%.*s#g", (int)n, mirror) == 0
                           ? strbuf_cstr(&e) : NULL;
    if (!expr)
      s->rc = -ENOMEM;
    put(s, "  for quilt_f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
           "/etc/apt/sources.list.d/*.sources; do\n"
           "    [ ! -f \"$quilt_f\" ] || sed -i -E ");
    put_quoted(s, expr ? expr : "");
    put(s, " \"$quilt_f\" || quilt_fail \"$1\" $?\n"
           "  done\n");
    strbuf_free(&e);
  }
  put(s, "  apt-get update || quilt_fail \"$1\" $?\n"
         "  quilt_apt_updated=1\n"
         "}\n"
         "quilt_apt_install() {\n"
         "  quilt_s=$1\n"
         "  shift\n"
         "  quilt_apt_update \"$quilt_s\"\n"
         "  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \"$@\" "
         "|| quilt_fail \"$quilt_s\" $?\n"
         "}\n");
}

/* quilt_apk_add STEP PKG... */
static void put_apk_helper(struct script *s) {
  const char *repo = cfg_get(s->cfg, "apk_repository");
  put(s, "quilt_apk_add() {\n"
         "  quilt_s=$1\n"
         "  shift\n"
         "  apk add --no-cache");
  if (repo) {
    put(s, " --repository ");
    put_quoted(s, repo);
  }
  put(s, " \"$@\" || quilt_fail \"$quilt_s\" $?\n"
         "}\n");
}

/* How a missing npm, pip or gem is detected and installed. */
struct bootstrap {
  const char *name;     /* in messages and the function's name */
  const char *probe;    /* succeeds when the manager is there */
  const char *apt_pkgs;
  const char *apk_pkgs;
};

static const struct bootstrap bootstraps[] = {
    [SETUP_NPM] = {"npm", "command -v npm", "nodejs npm", "nodejs npm"},
    [SETUP_PIP] = {"pip", "PYTHONDONTWRITEBYTECODE=1 python3 -m pip --version", "python3-pip",
                   "py3-pip"},
    [SETUP_GEM] = {"gem", "command -v gem", "ruby", "ruby"},
};

/* quilt_need_npm STEP (and pip, gem). The apt and apk branches are written
 * even when no step names those managers: whether the image has them is
 * only known in the container. */
static void put_need(struct script *s, const struct bootstrap *b) {
  put(s,
      "quilt_need_%s() {\n"
      "  %s >/dev/null 2>&1 && return 0\n"
      "  if command -v apt-get >/dev/null 2>&1; then\n"
      "    printf 'quilt-setup: step %%s/%zu: installing %s with apt-get\\n' \"$1\" >&2\n"
      "    quilt_apt_install \"$1\" %s\n"
      "  elif command -v apk >/dev/null 2>&1; then\n"
      "    printf 'quilt-setup: step %%s/%zu: installing %s with apk\\n' \"$1\" >&2\n"
      "    quilt_apk_add \"$1\" %s\n"
      "  else\n"
      "    quilt_missing '%s is not in the image and neither apt-get nor apk is there to "
      "install it'\n"
      "  fi\n"
      "  %s >/dev/null 2>&1 || quilt_missing '%s is still not in the image after installing %s'\n"
      "}\n",
      b->name, b->probe, s->n, b->apt_pkgs, b->apt_pkgs, s->n, b->apk_pkgs, b->apk_pkgs,
      b->name, b->probe, b->name, b->apt_pkgs);
}

static void put_helpers(struct script *s, const struct setup_step *steps) {
  bool used[SETUP_MANAGER_COUNT] = {false};
  for (size_t i = 0; i < s->n; i++)
    used[steps[i].mgr] = true;
  if (s->uses & USES_APT)
    put_apt_helpers(s);
  if (s->uses & USES_APK)
    put_apk_helper(s);
  for (int m = SETUP_NPM; m <= SETUP_GEM; m++)
    if (used[m])
      put_need(s, &bootstraps[m]);
}

static void put_npm(struct script *s, const struct setup_step *st, size_t i) {
  const char *registry = cfg_get(s->cfg, "npm_registry");
  put(s, "quilt_need_npm %zu\n"
         "npm_config_update_notifier=false npm_config_cache=" NPM_CACHE
         " npm install -g --no-audit --no-fund", i + 1);
  if (registry) {
    put(s, " --registry ");
    put_quoted(s, registry);
  }
  put_pkgs(s, st);
  put(s, " || quilt_fail %zu $?\n", i + 1);
}

/* "host[:port]" of an http URL, for pip's --trusted-host. */
static void put_trusted_host(struct script *s, const char *url) {
  const char *host = url + strlen("http://");
  size_t n = strcspn(host, "/?");
  const char *at = memchr(host, '@', n);
  while (at) {   /* user:password@ is not part of the host */
    n -= (size_t)(at + 1 - host);
    host = at + 1;
    at = memchr(host, '@', n);
  }
  char buf[URL_MAX + 1];
  snprintf(buf, sizeof buf, "%.*s", (int)n, host);
  put(s, " --trusted-host ");
  put_quoted(s, buf);
}

static void put_pip(struct script *s, const struct setup_step *st, size_t i) {
  const char *index = cfg_get(s->cfg, "pip_index");
  put(s, "quilt_need_pip %zu\n"
         "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1 "
         "python3 -m pip install "
         "--no-cache-dir --disable-pip-version-check", i + 1);
  if (index) {
    put(s, " --index-url ");
    put_quoted(s, index);
    if (strncmp(index, "http://", 7) == 0)
      put_trusted_host(s, index);
  }
  put_pkgs(s, st);
  put(s, " || quilt_fail %zu $?\n", i + 1);
}

static void put_gem(struct script *s, const struct setup_step *st, size_t i) {
  const char *source = cfg_get(s->cfg, "gem_source");
  put(s, "quilt_need_gem %zu\n"
         "gem install --no-document", i + 1);
  if (source) {
    put(s, " --clear-sources --source ");
    put_quoted(s, source);
  }
  put_pkgs(s, st);
  put(s, " || quilt_fail %zu $?\n", i + 1);
}

static void put_apt(struct script *s, const struct setup_step *st, size_t i) {
  put(s, "command -v apt-get >/dev/null 2>&1 || quilt_missing 'apt-get is not in the image'\n"
         "quilt_apt_install %zu", i + 1);
  put_pkgs(s, st);
  put(s, "\n");
}

static void put_apk(struct script *s, const struct setup_step *st, size_t i) {
  put(s, "command -v apk >/dev/null 2>&1 || quilt_missing 'apk is not in the image'\n"
         "quilt_apk_add %zu", i + 1);
  put_pkgs(s, st);
  put(s, "\n");
}

/* Its own shell: the command's syntax, `exit` or `cd` cannot reach the
 * steps after it. */
static void put_sh(struct script *s, const struct setup_step *st, size_t i) {
  size_t n;
  const char *cmd = trim(st->shell, &n);
  char *copy = strndup(cmd, n);
  if (!copy) {
    s->rc = -ENOMEM;
    return;
  }
  put(s, "/bin/sh -c ");
  put_quoted(s, copy);
  put(s, " || quilt_fail %zu $?\n", i + 1);
  free(copy);
}

static void put_step(struct script *s, const struct setup_step *st, size_t i) {
  static void (*const emit[SETUP_MANAGER_COUNT])(struct script *, const struct setup_step *,
                                                 size_t) = {
      [SETUP_NPM] = put_npm, [SETUP_PIP] = put_pip, [SETUP_GEM] = put_gem,
      [SETUP_APT] = put_apt, [SETUP_APK] = put_apk, [SETUP_SH] = put_sh,
  };
  put_marker(s, st, i);
  emit[st->mgr](s, st, i);
}

/* What would only weigh down the cached layer goes; best effort. */
static void put_epilogue(struct script *s, const struct setup_step *steps) {
  for (size_t i = 0; i < s->n; i++)
    if (steps[i].mgr == SETUP_NPM) {
      put(s, "rm -rf " NPM_CACHE " || :\n");
      break;
    }
  if (s->uses & USES_APT)
    put(s, "if [ -n \"${quilt_apt_updated-}\" ]; then\n"
           "  apt-get clean || :\n"
           "  rm -rf /var/lib/apt/lists/* || :\n"
           "fi\n");
  put_line(s, "quilt-setup: done");
  put(s, "exit 0\n");
}

int setup_script(const struct setup_step *steps, size_t n, const struct setup_config *cfg,
                 struct strbuf *out, struct qerr *err) {
  struct script s = {.b = out, .n = n, .cfg = cfg};
  int r = check_all(steps, n, cfg, &s.uses, err);
  if (r < 0)
    return r;
  /* strbuf_reserve may compact consumed bytes away: remember what was
   * unconsumed, not where it ended. */
  size_t start = strbuf_avail(out);
  put_prelude(&s);
  put_helpers(&s, steps);
  for (size_t i = 0; i < n; i++)
    put_step(&s, &steps[i], i);
  put_epilogue(&s, steps);
  if (s.rc < 0) {
    out->len = out->off + start;
    return qerr_set(err, ENOMEM, "setup script: out of memory");
  }
  return 0;
}
