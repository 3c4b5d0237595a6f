/* Setup steps (runtime/setup.c): spec parsing and every rejection class,
 * cache keys, and the generated script. The scripts are checked with
 * `sh -n` and, for behaviour, executed against fake managers: tiny shell
 * scripts in a temporary bin/ (the only PATH entry) that append their argv
 * to a log, one [arg] per line, so each test compares the exact words every
 * manager received. They run under /bin/sh and, where present, under
 * busybox sh (what minimal images have).
 *
 * Safety: the scripts run on the host. Nothing here configures an apt
 * mirror for an executed script (its sed rewrite would edit the host's
 * sources; the expression is tested on a copy instead), and scripts that
 * would end with apt's cleanup (rm -rf /var/lib/apt/lists/ *) run only under
 * a shell that finds commands through PATH alone: busybox sh runs its own
 * rm applet whatever PATH says, so the fake rm would be bypassed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "grpc/status.h"
#include "runtime/setup.h"

#define IMG_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define IMG_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* ------------------------------------------------------------ steps */

struct steps {
  struct setup_step v[8];
  size_t n;
};

static void steps_add(struct steps *s, const char *spec) {
  struct qerr err = QERR_INIT;
  assert_true(s->n < 8);
  if (setup_parse(spec, &s->v[s->n], &err) < 0)
    fail_msg("parsing %s: %s", spec, err.msg);
  s->n++;
}

static void steps_free(struct steps *s) {
  setup_steps_free(s->v, s->n);
  s->n = 0;
}

static char *canonical(const char *spec) {
  struct setup_step st;
  struct qerr err = QERR_INIT;
  if (setup_parse(spec, &st, &err) < 0)
    fail_msg("parsing %s: %s", spec, err.msg);
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(setup_step_canonical(&st, &b), 0);
  char *r = strdup(strbuf_cstr(&b));
  strbuf_free(&b);
  setup_step_free(&st);
  return r;
}

static void expect_canonical(const char *spec, const char *want) {
  char *got = canonical(spec);
  assert_string_equal(got, want);
  free(got);
}

/* spec is refused with INVALID_ARGUMENT, a message naming the spec
 * ("setup spec \"...\":") and containing want. */
static void expect_bad(const char *spec, const char *want) {
  struct setup_step st;
  struct qerr err = QERR_INIT;
  int r = setup_parse(spec, &st, &err);
  if (r != -EINVAL)
    fail_msg("spec %s: got %d (%s), wanted -EINVAL", spec, r, err.msg);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  assert_ptr_equal(st.pkgs, NULL);
  assert_ptr_equal(st.shell, NULL);
  if (strncmp(err.msg, "setup spec \"", 12) != 0 || !strstr(err.msg, want))
    fail_msg("spec %s: message \"%s\" lacks \"%s\"", spec, err.msg, want);
}

/* ------------------------------------------------------------ parsing */

static void parse_managers(void **state) {
  (void)state;
  struct setup_step st;
  struct qerr err = QERR_INIT;
  assert_int_equal(setup_parse("npm: typescript @types/node", &st, &err), 0);
  assert_int_equal(st.mgr, SETUP_NPM);
  assert_int_equal(st.n_pkgs, 2);
  assert_string_equal(st.pkgs[0], "typescript");
  assert_string_equal(st.pkgs[1], "@types/node");
  assert_null(st.shell);
  setup_step_free(&st);

  /* Any blanks separate packages; the canonical text has one space. */
  expect_canonical("  pip:flask\t requests>=2,<3\n\n", "pip: flask requests>=2,<3");
  expect_canonical("gem: rake  rails:7.1.3", "gem: rake rails:7.1.3");
  expect_canonical("apt:\tcurl ca-certificates", "apt: curl ca-certificates");
  expect_canonical("apk: curl", "apk: curl");
  /* Order is kept: the managers see the packages as written. */
  expect_canonical("npm: b a", "npm: b a");
  assert_string_equal(setup_manager_name(SETUP_APK), "apk");
  assert_string_equal(setup_manager_name((enum setup_manager)42), "?");
}

static void parse_versions(void **state) {
  (void)state;
  static const char *const ok[] = {
      "npm: typescript@5.4.0 @types/node @types/node@^20.1 x@latest y@>=1.2.3 z@~1.2 w@* v@1.x",
      "npm: lodash.merge left-pad@1.3.0-beta.1+build",
      "pip: flask==3.0.0 requests>=2,<3 Django~=4.2 uvicorn[standard]~=0.29 x!=1.0 y===2 a_b.c-d",
      "pip: pkg[a,b]>=1 epochs==1!2.0 pre>=1.0rc1 local==1.0+abc",
      "gem: rake rails:7.1.3 nokogiri:~>1.16 json:>=2 net-http_x.y",
      "apt: curl curl=7.88.1-10+deb12u5 libssl3:amd64 curl/bookworm-backports g++ libstdc++6",
      "apt: tzdata=2024a-0+deb12u1 xy:i386=1:2.3-4",
      "apk: curl curl=8.5.0-r0 python3>=3.11 py3-pip<25 busybox~1.36 a=~1",
      "sh: echo 'hi' && cd /tmp; ls | wc -l > $HOME/x `date` \\",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    struct setup_step st;
    struct qerr err = QERR_INIT;
    if (setup_parse(ok[i], &st, &err) != 0)
      fail_msg("%s: %s", ok[i], err.msg);
    setup_step_free(&st);
  }
}

static void parse_sh(void **state) {
  (void)state;
  struct setup_step st;
  struct qerr err = QERR_INIT;
  /* The rest of the spec, trimmed, is one command; newlines stay. */
  assert_int_equal(setup_parse("sh:   echo 'a  b' \"$X\"\n  touch /y  \n", &st, &err), 0);
  assert_int_equal(st.mgr, SETUP_SH);
  assert_int_equal(st.n_pkgs, 0);
  assert_string_equal(st.shell, "echo 'a  b' \"$X\"\n  touch /y");
  setup_step_free(&st);
  expect_canonical("sh:echo hi", "sh: echo hi");
  /* UTF-8 is fine in commands. */
  expect_canonical("sh: echo h\xc3\xa9", "sh: echo h\xc3\xa9");
}

static void reject_manager(void **state) {
  (void)state;
  expect_bad("yarn: left-pad", "unknown manager \"yarn\" (known: npm, pip, gem, apt, apk, sh)");
  expect_bad("NPM: left-pad", "unknown manager \"NPM\"");
  expect_bad("pip3: flask", "unknown manager \"pip3\"");
  expect_bad(": flask", "unknown manager \"\"");
  expect_bad("npm left-pad", "expected MANAGER: ARGS");
  expect_bad("", "expected MANAGER: ARGS");
  expect_bad("\x1b[2Jnpm: x", "unknown manager \"\\x1b[2Jnpm\"");
  struct setup_step st;
  struct qerr err = QERR_INIT;
  assert_int_equal(setup_parse(NULL, &st, &err), -EINVAL);
}

static void reject_empty(void **state) {
  (void)state;
  expect_bad("npm:", "no packages after \"npm:\"");
  expect_bad("pip:  \t\n", "no packages after \"pip:\"");
  expect_bad("apt:", "no packages after \"apt:\"");
  expect_bad("sh:", "no command after \"sh:\"");
  expect_bad("sh:  \n\t ", "no command after \"sh:\"");
}

static void reject_options(void **state) {
  (void)state;
  const char *why = "starts with '-' (it would be read as an option)";
  expect_bad("npm: -g", why);
  expect_bad("npm: left-pad --registry=http://evil", why);
  expect_bad("pip: --index-url=http://evil flask", why);
  expect_bad("pip: -r /etc/requirements.txt", why);
  expect_bad("gem: --source http://evil rake", why);
  expect_bad("apt: -oAPT::Get::AllowUnauthenticated=1 curl", why);
  expect_bad("apk: --allow-untrusted x", why);
  expect_bad("apk: -X http://evil x", why);
}

static void reject_metacharacters(void **state) {
  (void)state;
  static const char *const bad[] = {";", "&", "|", "$", "`", "(", ")", "'", "\"", "\\", "{",
                                    "}", "#", "?", "%", "\x01", "\x7f", "\xc3\xa9", ","};
  static const char *const mgrs[] = {"npm", "gem", "apt", "apk"};
  for (size_t m = 0; m < sizeof mgrs / sizeof mgrs[0]; m++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      char spec[64];
      snprintf(spec, sizeof spec, "%s: ok-name aa%sb", mgrs[m], bad[i]);
      expect_bad(spec, "is not allowed");
    }
  for (size_t i = 0; i + 1 < sizeof bad / sizeof bad[0]; i++) {   /* pip allows ',' */
    char spec[64];
    snprintf(spec, sizeof spec, "pip: ok a%sb", bad[i]);
    expect_bad(spec, "is not allowed");
  }
  /* The message names the spec and the byte, escaped. */
  expect_bad("npm: a;rm", "setup spec \"npm: a;rm\": npm package \"a;rm\": ';' is not allowed; "
                          "write [@SCOPE/]NAME[@VERSION]");
  expect_bad("npm: a\x1b", "\"a\\x1b\": byte 0x1b is not allowed");
  expect_bad("sh: echo \x1b[31m", "the command has a control character (byte 0x1b)");
  expect_bad("sh: a\x7f", "(byte 0x7f)");
}

/* Only registry packages: URLs, paths, git references and the like are
 * refused, as are forms a manager reads as something else. */
static void reject_non_registry(void **state) {
  (void)state;
  const char *reg = "only registry packages can be named";
  expect_bad("npm: user/repo", reg);
  expect_bad("npm: github:user/repo", reg);
  expect_bad("npm: git+https://x/y.git", "'+' is not allowed");
  expect_bad("npm: file:../x", reg);
  expect_bad("npm: https://x/y.tgz", reg);
  expect_bad("npm: ./dir", "a name may not start with '.' or '_'");
  expect_bad("npm: /abs", "'/' is not allowed here");
  expect_bad("npm: _x", "a name may not start with '.' or '_'");
  expect_bad("npm: @scope", "a scoped name is written @scope/name");
  expect_bad("npm: @/x", "a scoped name is written @scope/name");
  expect_bad("npm: x@", "the version after '@' is empty");
  expect_bad("npm: x@a@b", reg);
  expect_bad("pip: flask @ https://x/flask.whl", "\"@\"");
  expect_bad("pip: flask@https://x", reg);
  expect_bad("pip: ./dir", "a name starts and ends with a letter or digit");
  expect_bad("pip: git+https://x", "'+' is not allowed");
  expect_bad("pip: flask;python_version<3", "';' is not allowed");
  expect_bad("pip: x[a;b]", "';' is not allowed");
  expect_bad("pip: x[a,b", "the extras list has no closing ']'");
  expect_bad("pip: x-", "a name starts and ends with a letter or digit");
  expect_bad("gem: ./x.gem", "a name starts with a letter or digit");
  expect_bad("gem: x:", "the version after ':' is empty");
  expect_bad("gem: x/y", reg);
  expect_bad("apt: ./x.deb", "a Debian package name has 2 or more characters");
  expect_bad("apt: /tmp/x.deb", "'/' is not allowed");
  expect_bad("apt: curl-", "a trailing '-' asks apt-get to remove the package");
  expect_bad("apt: Curl", "'C' is not allowed");
  expect_bad("apt: x", "a Debian package name has 2 or more characters");
  expect_bad("apt: curl=7.88*", "'*' is not allowed");
  expect_bad("apt: curl=", "the version or release is empty");
  expect_bad("apt: curl:", "the architecture after ':' is empty");
  expect_bad("apt: lib.*", "'*' is not allowed");
  expect_bad("apk: !curl", "'!' is not allowed");
  expect_bad("apk: .virtual", "a name starts with a letter or digit");
  expect_bad("apk: curl=", "the version after the operator is empty");
  expect_bad("apk: curl@edge", reg);
}

static void reject_limits(void **state) {
  (void)state;
  static char big[SETUP_SPEC_MAX + 16];
  memcpy(big, "sh: ", 4);
  memset(big + 4, 'x', SETUP_SPEC_MAX);
  big[SETUP_SPEC_MAX + 4] = 0;
  expect_bad(big, "is longer than 65536 bytes");
  /* One long package. */
  memcpy(big, "npm: ", 5);
  memset(big + 5, 'a', SETUP_PKG_MAX + 1);
  big[5 + SETUP_PKG_MAX + 1] = 0;
  expect_bad(big, "is longer than 256 bytes");
  big[5 + SETUP_PKG_MAX] = 0;
  struct setup_step st;
  struct qerr err = QERR_INIT;
  assert_int_equal(setup_parse(big, &st, &err), 0);
  setup_step_free(&st);
  /* Too many packages. */
  size_t o = (size_t)sprintf(big, "npm:");
  for (int i = 0; i <= SETUP_PKGS_MAX; i++)
    o += (size_t)sprintf(big + o, " p%d", i);
  expect_bad(big, "more than 256 packages in one step");
}

/* Steps built by hand (not by setup_parse) are checked the same way by
 * everything that uses them. */
static void check_hand_built(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  char *bad_pkgs[] = {"ok", "$(reboot)"};
  char *opt_pkgs[] = {"--registry=http://evil"};
  char *good_pkgs[] = {"left-pad"};
  char shell[] = "echo hi";
  struct setup_step steps[] = {
      {.mgr = SETUP_NPM, .pkgs = bad_pkgs, .n_pkgs = 2},
      {.mgr = SETUP_NPM, .pkgs = opt_pkgs, .n_pkgs = 1},
      {.mgr = SETUP_NPM, .pkgs = NULL, .n_pkgs = 0},
      {.mgr = SETUP_NPM, .pkgs = good_pkgs, .n_pkgs = 1, .shell = shell},
      {.mgr = SETUP_SH, .pkgs = good_pkgs, .n_pkgs = 1, .shell = shell},
      {.mgr = SETUP_SH},
      {.mgr = (enum setup_manager)17, .pkgs = good_pkgs, .n_pkgs = 1},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    qerr_clear(&err);
    assert_int_equal(setup_step_check(&steps[i], &err), -EINVAL);
    assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
    char key[SETUP_KEY_LEN + 1];
    assert_int_equal(setup_cache_key(IMG_A, &steps[i], 1, NULL, key, &err), -EINVAL);
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(setup_script(&steps[i], 1, NULL, &b, &err), -EINVAL);
    assert_int_equal(b.len, 0);
    strbuf_free(&b);
  }
  struct setup_step good = {.mgr = SETUP_NPM, .pkgs = good_pkgs, .n_pkgs = 1};
  assert_int_equal(setup_step_check(&good, &err), 0);
  struct setup_step sh = {.mgr = SETUP_SH, .shell = shell};
  assert_int_equal(setup_step_check(&sh, &err), 0);
  /* Which step of a list is wrong. */
  struct setup_step two[] = {good, steps[0]};
  char key[SETUP_KEY_LEN + 1];
  assert_int_equal(setup_cache_key(IMG_A, two, 2, NULL, key, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "setup step 2/2: npm package \"$(reboot)\""));
}

/* ------------------------------------------------------------ config */

static void config_checks(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  struct setup_config ok = {
      .npm_registry = "http://127.0.0.1:4873/",
      .pip_index = "https://user:p%40ss@pypi.example.com/simple?x=1",
      .gem_source = "http://[::1]:9292",
      .apt_mirror = "http://mirror:3142/prefix",
      .apk_repository = "https://dl-cdn.alpinelinux.org/alpine/v3.19/main",
      .http_proxy = "http://proxy:3128",
      .https_proxy = "",
      .no_proxy = "localhost,127.0.0.1,.example.com,10.0.0.0/8,*",
  };
  assert_int_equal(setup_config_check(&ok, &err), 0);
  assert_int_equal(setup_config_check(NULL, &err), 0);
  static const struct {
    const char *url, *want;
  } bad[] = {
      {"ftp://x/", "is not an http:// or https:// URL with a host"},
      {"http://", "is not an http:// or https:// URL with a host"},
      {"http:///x", "is not an http:// or https:// URL with a host"},
      {"registry.npmjs.org", "is not an http:// or https:// URL"},
      {"http://x/'$(id)'", "''' is not allowed in a URL"},
      {"http://x/a&b", "'&' is not allowed in a URL"},
      {"http://x/#frag", "'#' is not allowed in a URL"},
      {"http://x/a b", "byte 0x20 is not allowed in a URL"},
      {"http://x/\\", "'\\' is not allowed in a URL"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct setup_config c = {.npm_registry = bad[i].url};
    qerr_clear(&err);
    assert_int_equal(setup_config_check(&c, &err), -EINVAL);
    assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
    if (strncmp(err.msg, "setup config: npm_registry \"", 28) != 0 || !strstr(err.msg, bad[i].want))
      fail_msg("%s: message \"%s\"", bad[i].url, err.msg);
  }
  struct setup_config np = {.no_proxy = "a;b"};
  assert_int_equal(setup_config_check(&np, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "no_proxy \"a;b\": ';' is not allowed in a host list"));
  struct setup_config apt = {.apt_mirror = "http://m/&"};
  assert_int_equal(setup_config_check(&apt, &err), -EINVAL);
}

/* ------------------------------------------------------------ cache key */

static void key_of(const char *image, const char *const *specs, const struct setup_config *cfg,
                   char out[SETUP_KEY_LEN + 1]) {
  struct steps s = {0};
  for (; *specs; specs++)
    steps_add(&s, *specs);
  struct qerr err = QERR_INIT;
  if (setup_cache_key(image, s.v, s.n, cfg, out, &err) != 0)
    fail_msg("key: %s", err.msg);
  steps_free(&s);
}

static void key_stable(void **state) {
  (void)state;
  const char *a[] = {"npm: typescript @types/node", "pip: flask==3.0.0", "sh: echo hi", NULL};
  const char *a2[] = {" npm:typescript\t@types/node ", "pip:\nflask==3.0.0",
                      "sh:   echo hi\n", NULL};
  struct setup_config cfg = {.npm_registry = "http://127.0.0.1:4873", .http_proxy = "http://p:1"};
  char k1[SETUP_KEY_LEN + 1], k2[SETUP_KEY_LEN + 1];
  key_of(IMG_A, a, &cfg, k1);
  key_of(IMG_A, a, &cfg, k2);
  assert_string_equal(k1, k2);
  assert_int_equal(strlen(k1), 64);
  assert_int_equal(strspn(k1, "0123456789abcdef"), 64);
  /* Blanks are not part of a spec's meaning. */
  key_of(IMG_A, a2, &cfg, k2);
  assert_string_equal(k1, k2);
  /* "" is unset, like NULL. */
  struct setup_config cfg2 = cfg;
  cfg2.pip_index = "";
  cfg2.no_proxy = "";
  key_of(IMG_A, a, &cfg2, k2);
  assert_string_equal(k1, k2);
  /* Pinned: a change of this value means layers made before would no
   * longer be found. If the change is intended (the script now installs
   * something else), bump SETUP_KEY_VERSION and update the value. */
  const char *one[] = {"npm: left-pad", NULL};
  key_of(IMG_A, one, NULL, k1);
  assert_string_equal(k1, "5d8e68889aae259fc6cd478c1afcc5872ee300990275688d607f9e1a0390b509");
}

static void key_changes(void **state) {
  (void)state;
  struct setup_config base = {
      .npm_registry = "http://127.0.0.1:4873",
      .pip_index = "http://127.0.0.1:8080/simple",
      .gem_source = "http://127.0.0.1:9292",
      .apt_mirror = "http://127.0.0.1:3142",
      .apk_repository = "http://127.0.0.1:8081/main",
      .http_proxy = "http://p:1",
      .https_proxy = "http://p:2",
      .no_proxy = "localhost",
  };
  const char *specs[] = {"npm: typescript @types/node", "pip: flask", NULL};
  char k0[SETUP_KEY_LEN + 1], k[SETUP_KEY_LEN + 1];
  key_of(IMG_A, specs, &base, k0);

  key_of(IMG_B, specs, &base, k);
  assert_string_not_equal(k0, k);

  const char *swapped[] = {"pip: flask", "npm: typescript @types/node", NULL};
  key_of(IMG_A, swapped, &base, k);
  assert_string_not_equal(k0, k);

  const char *pkg_order[] = {"npm: @types/node typescript", "pip: flask", NULL};
  key_of(IMG_A, pkg_order, &base, k);
  assert_string_not_equal(k0, k);

  const char *version[] = {"npm: typescript@5 @types/node", "pip: flask", NULL};
  key_of(IMG_A, version, &base, k);
  assert_string_not_equal(k0, k);

  const char *more[] = {"npm: typescript @types/node", "pip: flask", "sh: true", NULL};
  key_of(IMG_A, more, &base, k);
  assert_string_not_equal(k0, k);

  /* Step boundaries count: one step of two packages is not two steps. */
  const char *split[] = {"npm: a", "npm: b", NULL};
  const char *joined[] = {"npm: a b", NULL};
  char k1[SETUP_KEY_LEN + 1];
  key_of(IMG_A, split, NULL, k1);
  key_of(IMG_A, joined, NULL, k);
  assert_string_not_equal(k1, k);

  /* Every field the steps can use, including the apt and apk ones their
   * bootstrap may install through, and the proxies. */
  const char *const *fields[] = {&base.npm_registry, &base.pip_index, &base.apt_mirror,
                                 &base.apk_repository, &base.http_proxy, &base.https_proxy,
                                 &base.no_proxy};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    struct setup_config c = base;
    const char **f = (const char **)((char *)&c + ((const char *)fields[i] - (const char *)&base));
    *f = "http://other:1";
    key_of(IMG_A, specs, &c, k);
    if (strcmp(k0, k) == 0)
      fail_msg("changing field %zu kept the key", i);
    *f = NULL;
    key_of(IMG_A, specs, &c, k);
    if (strcmp(k0, k) == 0)
      fail_msg("unsetting field %zu kept the key", i);
  }
  /* ... but not one no step uses. */
  struct setup_config c = base;
  c.gem_source = "http://other:1";
  key_of(IMG_A, specs, &c, k);
  assert_string_equal(k0, k);
  const char *sh_only[] = {"sh: true", NULL};
  key_of(IMG_A, sh_only, &base, k0);
  c = base;
  c.npm_registry = c.pip_index = c.apt_mirror = c.apk_repository = NULL;
  key_of(IMG_A, sh_only, &c, k);
  assert_string_equal(k0, k);
  c.http_proxy = NULL;
  key_of(IMG_A, sh_only, &c, k);
  assert_string_not_equal(k0, k);
}

static void key_rejects(void **state) {
  (void)state;
  struct steps s = {0};
  steps_add(&s, "npm: x");
  struct qerr err = QERR_INIT;
  char k[SETUP_KEY_LEN + 1];
  assert_int_equal(setup_cache_key("abc", s.v, 1, NULL, k, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "image id \"abc\" is not 64 hex digits"));
  assert_int_equal(setup_cache_key(NULL, s.v, 1, NULL, k, &err), -EINVAL);
  assert_int_equal(setup_cache_key(IMG_A "0", s.v, 1, NULL, k, &err), -EINVAL);
  char upper[] = IMG_A;
  upper[3] = 'A';
  assert_int_equal(setup_cache_key(upper, s.v, 1, NULL, k, &err), -EINVAL);
  assert_int_equal(setup_cache_key(IMG_A, s.v, 0, NULL, k, &err), -EINVAL);
  assert_string_equal(err.msg, "no setup steps");
  assert_int_equal(setup_cache_key(IMG_A, s.v, SETUP_STEPS_MAX + 1, NULL, k, &err), -EINVAL);
  struct setup_config bad = {.http_proxy = "socks5://x"};
  assert_int_equal(setup_cache_key(IMG_A, s.v, 1, &bad, k, &err), -EINVAL);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  steps_free(&s);
}

/* ------------------------------------------------------------ script text */

static char *script_of(const char *const *specs, const struct setup_config *cfg) {
  struct steps s = {0};
  for (; *specs; specs++)
    steps_add(&s, *specs);
  struct strbuf b = STRBUF_INIT;
  struct qerr err = QERR_INIT;
  if (setup_script(s.v, s.n, cfg, &b, &err) != 0)
    fail_msg("script: %s", err.msg);
  steps_free(&s);
  char *r = strdup(strbuf_cstr(&b));
  strbuf_free(&b);
  return r;
}

static void expect_line(const char *script, const char *line) {
  size_t n = strlen(line);
  for (const char *p = script; (p = strstr(p, line)); p++)
    if ((p == script || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
      return;
  fail_msg("no line\n  %s\nin\n%s", line, script);
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void script_npm(void **state) {
  (void)state;
  const char *specs[] = {"npm: typescript@^5.4 @types/node", NULL};
  struct setup_config cfg = {.npm_registry = "http://127.0.0.1:4873"};
  char *s = script_of(specs, &cfg);
  assert_int_equal(strncmp(s, "#!/bin/sh\n", 10), 0);
  expect_line(s, "set -e");
  expect_line(s, "printf '%s\\n' 'quilt-setup: step 1/1: npm: typescript@^5.4 @types/node' >&2");
  expect_line(s, "quilt_need_npm 1");
  expect_line(s, "npm_config_update_notifier=false npm_config_cache=/tmp/.quilt-setup-npm "
                 "npm install -g --no-audit --no-fund --registry 'http://127.0.0.1:4873' "
                 "'typescript@^5.4' '@types/node' || quilt_fail 1 $?");
  expect_line(s, "    quilt_missing 'npm is not in the image and neither apt-get nor apk is "
                 "there to install it'");
  expect_line(s, "    quilt_apt_install \"$1\" nodejs npm");
  expect_line(s, "    quilt_apk_add \"$1\" nodejs npm");
  expect_line(s, "rm -rf /tmp/.quilt-setup-npm || :");
  expect_line(s, "printf '%s\\n' 'quilt-setup: done' >&2");
  /* No pip or gem machinery for a script without such steps. */
  assert_null(strstr(s, "quilt_need_pip"));
  assert_null(strstr(s, "quilt_need_gem"));
  free(s);
  /* Without a registry: npm's own default. */
  s = script_of(specs, NULL);
  expect_line(s, "npm_config_update_notifier=false npm_config_cache=/tmp/.quilt-setup-npm "
                 "npm install -g --no-audit --no-fund 'typescript@^5.4' '@types/node' "
                 "|| quilt_fail 1 $?");
  free(s);
}

static void script_pip(void **state) {
  (void)state;
  const char *specs[] = {"pip: flask==3.0.0 requests>=2,<3", NULL};
  const char *pre = "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore "
                    "PYTHONDONTWRITEBYTECODE=1 python3 -m pip "
                    "install --no-cache-dir --disable-pip-version-check";
  char want[512];
  struct setup_config http = {.pip_index = "http://user:pw@127.0.0.1:8080/simple/"};
  char *s = script_of(specs, &http);
  snprintf(want, sizeof want, "%s --index-url 'http://user:pw@127.0.0.1:8080/simple/' "
           "--trusted-host '127.0.0.1:8080' 'flask==3.0.0' 'requests>=2,<3' || quilt_fail 1 $?",
           pre);
  expect_line(s, want);
  expect_line(s, "  PYTHONDONTWRITEBYTECODE=1 python3 -m pip --version >/dev/null 2>&1 "
                 "&& return 0");
  expect_line(s, "    quilt_apt_install \"$1\" python3-pip");
  expect_line(s, "    quilt_apk_add \"$1\" py3-pip");
  free(s);
  /* https needs no --trusted-host. */
  struct setup_config https = {.pip_index = "https://pypi.example.com/simple"};
  s = script_of(specs, &https);
  snprintf(want, sizeof want, "%s --index-url 'https://pypi.example.com/simple' "
           "'flask==3.0.0' 'requests>=2,<3' || quilt_fail 1 $?", pre);
  expect_line(s, want);
  free(s);
  s = script_of(specs, NULL);
  snprintf(want, sizeof want, "%s 'flask==3.0.0' 'requests>=2,<3' || quilt_fail 1 $?", pre);
  expect_line(s, want);
  free(s);
}

static void script_gem_apt_apk_sh(void **state) {
  (void)state;
  const char *specs[] = {"gem: rails:7.1.3", "apt: curl", "apt: jq=1.6-2.1", "apk: curl",
                         "sh: echo 'it''s'\n  echo two", NULL};
  struct setup_config cfg = {.gem_source = "http://127.0.0.1:9292",
                             .apk_repository = "http://127.0.0.1:8081/main"};
  char *s = script_of(specs, &cfg);
  expect_line(s, "gem install --no-document --clear-sources --source 'http://127.0.0.1:9292' "
                 "'rails:7.1.3' || quilt_fail 1 $?");
  expect_line(s, "printf '%s\\n' 'quilt-setup: step 2/5: apt: curl' >&2");
  expect_line(s, "command -v apt-get >/dev/null 2>&1 "
                 "|| quilt_missing 'apt-get is not in the image'");
  expect_line(s, "quilt_apt_install 2 'curl'");
  expect_line(s, "quilt_apt_install 3 'jq=1.6-2.1'");
  expect_line(s, "  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                 "\"$@\" || quilt_fail \"$quilt_s\" $?");
  /* One apt-get update in the script, guarded to run once. */
  assert_int_equal(count(s, "apt-get update"), 1);
  expect_line(s, "  [ -z \"${quilt_apt_updated-}\" ] || return 0");
  expect_line(s, "command -v apk >/dev/null 2>&1 || quilt_missing 'apk is not in the image'");
  expect_line(s, "quilt_apk_add 4 'curl'");
  expect_line(s, "  apk add --no-cache --repository 'http://127.0.0.1:8081/main' \"$@\" "
                 "|| quilt_fail \"$quilt_s\" $?");
  /* The command in its own shell, quoted; its marker on one line. */
  expect_line(s, "printf '%s\\n' 'quilt-setup: step 5/5: sh: echo '\\''it'\\'''\\''s'\\''   "
                 "echo two' >&2");
  assert_non_null(strstr(s, "/bin/sh -c 'echo '\\''it'\\'''\\''s'\\''\n  echo two' "
                            "|| quilt_fail 5 $?\n"));
  expect_line(s, "  rm -rf /var/lib/apt/lists/* || :");
  free(s);
  /* gem without a source: rubygems' default list. */
  const char *gem[] = {"gem: rake", NULL};
  s = script_of(gem, NULL);
  expect_line(s, "gem install --no-document 'rake' || quilt_fail 1 $?");
  assert_null(strstr(s, "apt-get update\n"));   /* no mirror, plain update */
  free(s);
}

static void script_config(void **state) {
  (void)state;
  const char *specs[] = {"apt: curl", NULL};
  struct setup_config cfg = {.apt_mirror = "http://127.0.0.1:3142/deb/",
                             .http_proxy = "http://proxy:3128",
                             .https_proxy = "http://proxy:3129",
                             .no_proxy = "localhost,.internal"};
  char *s = script_of(specs, &cfg);
  expect_line(s, "HTTP_PROXY='http://proxy:3128'");
  expect_line(s, "http_proxy=$HTTP_PROXY");
  expect_line(s, "export HTTP_PROXY http_proxy");
  expect_line(s, "HTTPS_PROXY='http://proxy:3129'");
  expect_line(s, "export HTTPS_PROXY https_proxy");
  expect_line(s, "NO_PROXY='localhost,.internal'");
  expect_line(s, "export NO_PROXY no_proxy");
  expect_line(s, "    [ ! -f \"$quilt_f\" ] || sed -i -E "
                 "'s#https?://[^/[:space:]]+#http://127.0.0.1:3142/deb#g' \"$quilt_f\" "
                 "|| quilt_fail \"$1\" $?");
  free(s);
  /* Nothing configured: no proxy variables. */
  s = script_of(specs, NULL);
  assert_null(strstr(s, "PROXY"));
  assert_null(strstr(s, "sed "));
  free(s);
}

/* Long and multi-line steps make one marker line, cut at 200 bytes. */
static void script_marker(void **state) {
  (void)state;
  char spec[600];
  size_t o = (size_t)sprintf(spec, "sh: echo \xc3\xa9");
  while (o < 400)
    o += (size_t)sprintf(spec + o, " \xc3\xa9");
  const char *specs[] = {spec, NULL};
  char *s = script_of(specs, NULL);
  const char *m = strstr(s, "'quilt-setup: step 1/1: sh: echo ");
  assert_non_null(m);
  const char *end = strchr(m, '\n');
  assert_non_null(end);
  assert_true(end - m < 300);
  assert_non_null(strstr(m, "\xc3\xa9...' >&2\n"));   /* cut between characters */
  free(s);
}

/* setup_script appends: what the buffer held stays, even after a failure. */
static void script_appends(void **state) {
  (void)state;
  struct strbuf b = STRBUF_INIT;
  assert_int_equal(strbuf_printf(&b, "XYZ"), 0);
  strbuf_consume(&b, 1);
  struct steps s = {0};
  steps_add(&s, "sh: true");
  struct qerr err = QERR_INIT;
  assert_int_equal(setup_script(s.v, 1, NULL, &b, &err), 0);
  assert_int_equal(strncmp(strbuf_cstr(&b), "YZ#!/bin/sh\n", 12), 0);
  size_t len = strbuf_avail(&b);
  assert_int_equal(setup_script(s.v, 0, NULL, &b, &err), -EINVAL);
  assert_int_equal(strbuf_avail(&b), len);
  steps_free(&s);
  strbuf_free(&b);
}

/* ------------------------------------------------------------ running */

struct fx {
  char dir[64];       /* TMPDIR/quilt-setup-XXXXXX */
  char bin[96];       /* the scripts' only PATH entry: fakes go here */
  char work[96];      /* their working directory */
  char log[96];       /* what the fakes record */
  char script[96];
  char out[96], err[96];
};

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/quilt-setup-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->bin, sizeof f->bin, "%s/bin", f->dir);
  snprintf(f->work, sizeof f->work, "%s/work", f->dir);
  snprintf(f->log, sizeof f->log, "%s/log", f->dir);
  snprintf(f->script, sizeof f->script, "%s/setup.sh", f->dir);
  snprintf(f->out, sizeof f->out, "%s/stdout", f->dir);
  snprintf(f->err, sizeof f->err, "%s/stderr", f->dir);
  if (mkdir(f->bin, 0755) < 0 || mkdir(f->work, 0755) < 0)
    return -1;
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  struct qerr err = QERR_INIT;
  int r = rm_rf(f->dir, &err);
  free(f);
  return r;
}

static void put_file(const char *path, const char *text, mode_t mode) {
  struct qerr err = QERR_INIT;
  if (write_file(path, text, strlen(text), &err) < 0)
    fail_msg("%s", err.msg);
  assert_int_equal(chmod(path, mode), 0);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return strdup("");
  struct strbuf b = STRBUF_INIT;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    assert_int_equal(strbuf_append(&b, buf, n), 0);
  fclose(f);
  char *r = strdup(strbuf_cstr(&b) ? strbuf_cstr(&b) : "");
  strbuf_free(&b);
  return r;
}

/* A fake manager: appends "== NAME", then "[arg]" per argument, then
 * "VAR=value" for each variable of vars (space separated), to the log;
 * then runs body (shell text; may be ""). Uses shell builtins only:
 * nothing else is on PATH. */
static void fake_in(struct fx *f, const char *dir, const char *name, const char *vars,
                    const char *body) {
  char path[160], text[2048];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int o = snprintf(text, sizeof text,
                   "#!/bin/sh\n"
                   "{\n"
                   "  printf '== %%s\\n' %s\n"
                   "  for a in \"$@\"; do printf '[%%s]\\n' \"$a\"; done\n",
                   name);
  char list[256];
  snprintf(list, sizeof list, "%s", vars ? vars : "");
  for (char *save, *v = strtok_r(list, " ", &save); v; v = strtok_r(NULL, " ", &save))
    o += snprintf(text + o, sizeof text - (size_t)o, "  printf '%%s=%%s\\n' %s \"${%s-<unset>}\"\n",
                  v, v);
  snprintf(text + o, sizeof text - (size_t)o, "} >> %s\n%s\n", f->log, body ? body : "");
  put_file(path, text, 0755);
}

static void fake(struct fx *f, const char *name, const char *vars, const char *body) {
  fake_in(f, f->bin, name, vars, body);
}

/* A fake that appears in bin/ only when a fake distro manager's install
 * command moves it there (mv: a link to the host's, as nothing but the
 * fakes is on PATH). */
static void fake_installable(struct fx *f, const char *name, const char *vars,
                             const char *distro, const char *verb) {
  char later[160], body[512], mv[160];
  snprintf(later, sizeof later, "%s/later", f->dir);
  mkdir(later, 0755);
  fake_in(f, later, name, vars, "");
  snprintf(body, sizeof body,
           "if [ \"$1\" = %s ] && [ -f %s/%s ]; then mv %s/%s %s/%s || exit 1; fi", verb, later,
           name, later, name, f->bin, name);
  fake(f, distro, NULL, body);
  snprintf(mv, sizeof mv, "%s/mv", f->bin);
  unlink(mv);
  assert_int_equal(symlink(access("/bin/mv", X_OK) == 0 ? "/bin/mv" : "/usr/bin/mv", mv), 0);
}

/* The fakes a full run needs. python3 answers pip's probe silently. */
static void fake_all(struct fx *f) {
  fake(f, "npm", "npm_config_cache npm_config_update_notifier", "");
  fake(f, "python3", "PIP_BREAK_SYSTEM_PACKAGES PIP_ROOT_USER_ACTION PYTHONDONTWRITEBYTECODE", "");
  /* Rewrite it so the probe does not log. */
  char path[160], text[1024];
  snprintf(path, sizeof path, "%s/python3", f->bin);
  char *old = slurp(path);
  snprintf(text, sizeof text, "#!/bin/sh\n[ \"$3\" != --version ] || exit 0\n%s",
           old + strlen("#!/bin/sh\n"));
  free(old);
  put_file(path, text, 0755);
  fake(f, "gem", NULL, "");
  fake(f, "apt-get", "DEBIAN_FRONTEND", "");
  fake(f, "apk", NULL, "");
  fake(f, "rm", NULL, "");
  fake(f, "sed", NULL, "");
}

struct shell {
  const char *path;
  const char *arg;    /* "sh" for busybox */
};

static const struct shell sh_default = {"/bin/sh", NULL};
static const struct shell sh_busybox = {"/bin/busybox", "sh"};

static bool have(const struct shell *sh) { return access(sh->path, X_OK) == 0; }

/* Runs argv[0] with envp, stdout and stderr to the fixture's files, in the
 * fixture's work dir; returns the exit status (128+N for signal N). */
static int run(struct fx *f, char *const argv[], char *const envp[]) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int o = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(f->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || chdir(f->work) < 0)
      _exit(126);
    execve(argv[0], argv, envp);
    _exit(127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_shell(struct fx *f, const struct shell *sh, const char *opt, char *const envp[]) {
  char *argv[5];
  int i = 0;
  argv[i++] = (char *)sh->path;
  if (sh->arg)
    argv[i++] = (char *)sh->arg;
  if (opt)
    argv[i++] = (char *)opt;
  argv[i++] = f->script;
  argv[i] = NULL;
  return run(f, argv, envp);
}

/* True when sh runs its own applets for names PATH does not have (busybox
 * with FEATURE_SH_STANDALONE): then a fake rm would not be the rm run. */
static bool prefers_applets(struct fx *f, const struct shell *sh) {
  put_file(f->script, "command -v rm >/dev/null 2>&1\n", 0644);
  char path[128];
  snprintf(path, sizeof path, "PATH=%s/none", f->dir);
  char *envp[] = {path, NULL};
  return run_shell(f, sh, NULL, envp) == 0;
}

/* Writes the script of specs and runs it with PATH = the fakes only, no
 * HOME (the script supplies one), and extra (NULL-terminated) in the
 * environment. The log and stderr are reset first. */
static int run_specs(struct fx *f, const struct shell *sh, const char *const *specs,
                     const struct setup_config *cfg, char *const *extra) {
  char *s = script_of(specs, cfg);
  put_file(f->script, s, 0644);
  free(s);
  unlink(f->log);
  char path[128];
  snprintf(path, sizeof path, "PATH=%s", f->bin);
  char *envp[8] = {path};
  for (int i = 0; extra && extra[i] && i < 6; i++)
    envp[i + 1] = extra[i];
  return run_shell(f, sh, NULL, envp);
}

static void expect_file(const char *path, const char *want) {
  char *got = slurp(path);
  if (strcmp(got, want) != 0)
    fail_msg("%s:\n--- got\n%s--- wanted\n%s---", path, got, want);
  free(got);
}

/* The log up to the first "== rm" (the cleanup, whose arguments depend on
 * the host's files). */
static void expect_log_head(struct fx *f, const char *want) {
  char *got = slurp(f->log);
  char *rm = strstr(got, "== rm\n");
  if (rm)
    *rm = 0;
  if (strcmp(got, want) != 0)
    fail_msg("log:\n--- got\n%s--- wanted\n%s---", got, want);
  free(got);
}

/* Every script the tests generate passes `sh -n` in each shell. */
static void syntax(void **state) {
  struct fx *f = *state;
  static const char *const sets[][7] = {
      {"npm: a @s/b@^1 c@>=1 d@*", NULL},
      {"pip: flask[async]==3.0.0 requests>=2,<3 x!=1", "gem: rails:~>7", NULL},
      {"apt: curl g++ xy:i386=1:2.3-4", "apk: a>=1 b~2", "apt: jq", NULL},
      {"sh: echo \"'\" '\"' $(id) `id` \\\\ ; exit 3", "sh: if then fi", NULL},
      {"sh: printf '%s\\n' \"it's\"\n cd / && { echo; }\n", "npm: x", "pip: y", "gem: z",
       "apt: ab", "apk: c", NULL},
  };
  struct setup_config cfg = {.npm_registry = "http://127.0.0.1:1/", .pip_index = "http://h:2/s",
                             .gem_source = "https://g", .apt_mirror = "http://m:3/p",
                             .apk_repository = "http://a/main", .http_proxy = "http://p:4",
                             .https_proxy = "http://p:5", .no_proxy = "localhost,*.x"};
  const struct shell *shells[] = {&sh_default, &sh_busybox};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
    for (int c = 0; c < 2; c++) {
      char *s = script_of(sets[i], c ? &cfg : NULL);
      put_file(f->script, s, 0644);
      for (size_t k = 0; k < 2; k++) {
        if (!have(shells[k]))
          continue;
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        if (run_shell(f, shells[k], "-n", envp) != 0) {
          char *e = slurp(f->err);
          fail_msg("%s -n failed: %s\n%s", shells[k]->path, e, s);
        }
      }
      free(s);
    }
}

/* Each manager gets exactly the words it should, in order, with its
 * environment; glob characters stay literal even where files match them. */
static void run_managers_in(struct fx *f, const struct shell *sh) {
  fake_all(f);
  /* Files these patterns would match if they reached the shell unquoted. */
  char p[160];
  snprintf(p, sizeof p, "%s/flaska==3.0.0", f->work);
  put_file(p, "", 0644);
  snprintf(p, sizeof p, "%s/x@1", f->work);
  put_file(p, "", 0644);
  const char *specs[] = {"npm: @types/node@>=20 x@* typescript@^5.4",
                         "pip: flask[async]==3.0.0 requests>=2,<3",
                         "gem: nokogiri:~>1.16 rake",
                         "apk: curl>=8",
                         "sh: printf '[%s]\\n' \"it's\" '$HOME' \"`echo hi`\" 'a\\b' >> ../log; "
                         "exit 0",
                         "sh: echo \"HOME=$HOME\" >> ../log",
                         NULL};
  struct setup_config cfg = {.npm_registry = "http://127.0.0.1:4873",
                             .pip_index = "http://127.0.0.1:8080/simple",
                             .gem_source = "http://127.0.0.1:9292",
                             .apk_repository = "http://127.0.0.1:8081/main"};
  assert_int_equal(run_specs(f, sh, specs, &cfg, NULL), 0);
  expect_log_head(f,
                  "== npm\n[install]\n[-g]\n[--no-audit]\n[--no-fund]\n[--registry]\n"
                  "[http://127.0.0.1:4873]\n[@types/node@>=20]\n[x@*]\n[typescript@^5.4]\n"
                  "npm_config_cache=/tmp/.quilt-setup-npm\nnpm_config_update_notifier=false\n"
                  "== python3\n[-m]\n[pip]\n[install]\n[--no-cache-dir]\n"
                  "[--disable-pip-version-check]\n[--index-url]\n[http://127.0.0.1:8080/simple]\n"
                  "[--trusted-host]\n[127.0.0.1:8080]\n[flask[async]==3.0.0]\n[requests>=2,<3]\n"
                  "PIP_BREAK_SYSTEM_PACKAGES=1\nPIP_ROOT_USER_ACTION=ignore\n"
                  "PYTHONDONTWRITEBYTECODE=1\n"
                  "== gem\n[install]\n[--no-document]\n[--clear-sources]\n[--source]\n"
                  "[http://127.0.0.1:9292]\n[nokogiri:~>1.16]\n[rake]\n"
                  "== apk\n[add]\n[--no-cache]\n[--repository]\n[http://127.0.0.1:8081/main]\n"
                  "[curl>=8]\n"
                  "[it's]\n[$HOME]\n[hi]\n[a\\b]\n"
                  "HOME=/root\n");
  expect_file(f->err, "quilt-setup: step 1/6: npm: @types/node@>=20 x@* typescript@^5.4\n"
                      "quilt-setup: step 2/6: pip: flask[async]==3.0.0 requests>=2,<3\n"
                      "quilt-setup: step 3/6: gem: nokogiri:~>1.16 rake\n"
                      "quilt-setup: step 4/6: apk: curl>=8\n"
                      "quilt-setup: step 5/6: sh: printf '[%s]\\n' \"it's\" '$HOME' \"`echo hi`\" "
                      "'a\\b' >> ../log; exit 0\n"
                      "quilt-setup: step 6/6: sh: echo \"HOME=$HOME\" >> ../log\n"
                      "quilt-setup: done\n");
}

static void run_managers(void **state) {
  struct fx *f = *state;
  run_managers_in(f, &sh_default);
  if (have(&sh_busybox))
    run_managers_in(f, &sh_busybox);
}

/* apt: update once for the whole script, then each install; the proxies
 * reach the managers; apt's lists are removed at the end. */
static void run_apt(void **state) {
  struct fx *f = *state;
  if (prefers_applets(f, &sh_default))
    skip();
  fake_all(f);
  fake(f, "apt-get",
       "DEBIAN_FRONTEND HTTP_PROXY http_proxy HTTPS_PROXY https_proxy NO_PROXY no_proxy", "");
  const char *specs[] = {"apt: curl", "apt: jq=1.6-2.1 libssl3:amd64", NULL};
  struct setup_config cfg = {.http_proxy = "http://proxy:3128", .no_proxy = "localhost"};
  assert_int_equal(run_specs(f, &sh_default, specs, &cfg, NULL), 0);
  const char *env = "DEBIAN_FRONTEND=<unset>\nHTTP_PROXY=http://proxy:3128\n"
                    "http_proxy=http://proxy:3128\nHTTPS_PROXY=<unset>\nhttps_proxy=<unset>\n"
                    "NO_PROXY=localhost\nno_proxy=localhost\n";
  const char *envi = "DEBIAN_FRONTEND=noninteractive\nHTTP_PROXY=http://proxy:3128\n"
                     "http_proxy=http://proxy:3128\nHTTPS_PROXY=<unset>\nhttps_proxy=<unset>\n"
                     "NO_PROXY=localhost\nno_proxy=localhost\n";
  char want[2048];
  snprintf(want, sizeof want,
           "== apt-get\n[update]\n%s"
           "== apt-get\n[install]\n[-y]\n[--no-install-recommends]\n[curl]\n%s"
           "== apt-get\n[install]\n[-y]\n[--no-install-recommends]\n[jq=1.6-2.1]\n"
           "[libssl3:amd64]\n%s"
           "== apt-get\n[clean]\n%s",
           env, envi, envi, env);
  expect_log_head(f, want);
  char *log = slurp(f->log);
  assert_non_null(strstr(log, "== rm\n[-rf]\n"));
  free(log);
}

/* A failing step stops the script with its own exit code; the later steps
 * do not run; a command's own 90 is not "manager missing". */
static void run_failure_in(struct fx *f, const struct shell *sh) {
  fake_all(f);
  fake(f, "npm", NULL, "exit 3");
  const char *specs[] = {"sh: echo one >> ../log", "npm: left-pad", "sh: echo three >> ../log",
                         NULL};
  assert_int_equal(run_specs(f, sh, specs, NULL, NULL), 3);
  expect_file(f->log, "one\n== npm\n[install]\n[-g]\n[--no-audit]\n[--no-fund]\n[left-pad]\n");
  expect_file(f->err, "quilt-setup: step 1/3: sh: echo one >> ../log\n"
                      "quilt-setup: step 2/3: npm: left-pad\n"
                      "quilt-setup: step 2/3 failed: exit code 3\n");
  fake(f, "npm", NULL, "exit 90");
  assert_int_equal(run_specs(f, sh, specs, NULL, NULL), 1);
  char *e = slurp(f->err);
  assert_non_null(strstr(e, "quilt-setup: step 2/3 failed: exit code 90\n"));
  free(e);
  /* An sh step's syntax error fails that step only, with sh's code. */
  const char *bad[] = {"sh: if then", "sh: echo never >> ../log", NULL};
  int st = run_specs(f, sh, bad, NULL, NULL);
  assert_int_equal(st, 2);
  e = slurp(f->err);
  assert_non_null(strstr(e, "quilt-setup: step 1/2 failed: exit code 2\n"));
  free(e);
  expect_file(f->log, "");
}

static void run_failure(void **state) {
  struct fx *f = *state;
  run_failure_in(f, &sh_default);
  if (have(&sh_busybox))
    run_failure_in(f, &sh_busybox);
}

/* A missing manager with neither apt-get nor apk: SETUP_EXIT_MISSING and a
 * message naming it; nothing runs after. */
#define NOT_INSTALLABLE " is not in the image and neither apt-get nor apk is there to install it"
static void run_missing_in(struct fx *f, const struct shell *sh) {
  static const struct {
    const char *spec, *msg;
  } cases[] = {
      {"npm: left-pad", "npm" NOT_INSTALLABLE},
      {"pip: flask", "pip" NOT_INSTALLABLE},
      {"gem: rake", "gem" NOT_INSTALLABLE},
      {"apt: curl", "apt-get is not in the image"},
      {"apk: curl", "apk is not in the image"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *specs[] = {cases[i].spec, "sh: echo after >> ../log", NULL};
    assert_int_equal(run_specs(f, sh, specs, NULL, NULL), SETUP_EXIT_MISSING);
    char want[256];
    snprintf(want, sizeof want, "quilt-setup: step 1/2: %s\nquilt-setup: %s\n", cases[i].spec,
             cases[i].msg);
    expect_file(f->err, want);
    expect_file(f->log, "");
  }
}

static void run_missing(void **state) {
  struct fx *f = *state;
  run_missing_in(f, &sh_default);
  if (have(&sh_busybox))
    run_missing_in(f, &sh_busybox);
}

/* npm missing, apt-get there: nodejs and npm installed first (after one
 * update shared with the apt step), then npm runs. */
static void run_bootstrap_apt(void **state) {
  struct fx *f = *state;
  if (prefers_applets(f, &sh_default))
    skip();
  fake(f, "rm", NULL, "");
  fake_installable(f, "npm", NULL, "apt-get", "install");
  const char *specs[] = {"npm: left-pad", "apt: curl", NULL};
  struct setup_config cfg = {.npm_registry = "http://127.0.0.1:4873"};
  assert_int_equal(run_specs(f, &sh_default, specs, &cfg, NULL), 0);
  expect_log_head(f, "== apt-get\n[update]\n"
                     "== apt-get\n[install]\n[-y]\n[--no-install-recommends]\n[nodejs]\n[npm]\n"
                     "== npm\n[install]\n[-g]\n[--no-audit]\n[--no-fund]\n[--registry]\n"
                     "[http://127.0.0.1:4873]\n[left-pad]\n"
                     "== apt-get\n[install]\n[-y]\n[--no-install-recommends]\n[curl]\n");
  /* Then the cleanup: npm's cache, apt's archives and lists. */
  char *log = slurp(f->log);
  const char *tail = strstr(log, "== rm\n[-rf]\n[/tmp/.quilt-setup-npm]\n== apt-get\n[clean]\n"
                                 "== rm\n[-rf]\n");
  assert_non_null(tail);
  free(log);
  expect_file(f->err, "quilt-setup: step 1/2: npm: left-pad\n"
                      "quilt-setup: step 1/2: installing nodejs npm with apt-get\n"
                      "quilt-setup: step 2/2: apt: curl\n"
                      "quilt-setup: done\n");
}

/* pip missing, apk there: py3-pip installed with the configured repository. */
static void run_bootstrap_apk_in(struct fx *f, const struct shell *sh) {
  fake_installable(f, "python3", NULL, "apk", "add");
  const char *specs[] = {"pip: flask", NULL};
  struct setup_config cfg = {.apk_repository = "http://127.0.0.1:8081/main"};
  assert_int_equal(run_specs(f, sh, specs, &cfg, NULL), 0);
  expect_file(f->log, "== apk\n[add]\n[--no-cache]\n[--repository]\n[http://127.0.0.1:8081/main]\n"
                      "[py3-pip]\n"
                      "== python3\n[-m]\n[pip]\n[--version]\n"
                      "== python3\n[-m]\n[pip]\n[install]\n[--no-cache-dir]\n"
                      "[--disable-pip-version-check]\n[flask]\n");
  expect_file(f->err, "quilt-setup: step 1/1: pip: flask\n"
                      "quilt-setup: step 1/1: installing py3-pip with apk\n"
                      "quilt-setup: done\n");
  char py[160];
  snprintf(py, sizeof py, "%s/python3", f->bin);
  unlink(py);
}

static void run_bootstrap_apk(void **state) {
  struct fx *f = *state;
  run_bootstrap_apk_in(f, &sh_default);
  if (have(&sh_busybox))
    run_bootstrap_apk_in(f, &sh_busybox);
}

/* The distro install succeeds but the manager is still not there. */
static void run_bootstrap_useless(void **state) {
  struct fx *f = *state;
  fake(f, "apk", NULL, "");
  const char *specs[] = {"gem: rake", NULL};
  assert_int_equal(run_specs(f, &sh_default, specs, NULL, NULL), SETUP_EXIT_MISSING);
  expect_file(f->err, "quilt-setup: step 1/1: gem: rake\n"
                      "quilt-setup: step 1/1: installing ruby with apk\n"
                      "quilt-setup: gem is still not in the image after installing ruby\n");
  /* A failing distro install is the step's failure, with apk's code. */
  fake(f, "apk", NULL, "exit 5");
  assert_int_equal(run_specs(f, &sh_default, specs, NULL, NULL), 5);
  char *e = slurp(f->err);
  assert_non_null(strstr(e, "quilt-setup: step 1/1 failed: exit code 5\n"));
  free(e);
}

/* The apt mirror expression, applied by the real sed -E to copies of a
 * one-line and a deb822 sources file. */
static void apt_mirror_rewrite(void **state) {
  struct fx *f = *state;
  const char *specs[] = {"apt: curl", NULL};
  struct setup_config cfg = {.apt_mirror = "http://127.0.0.1:3142/pfx//"};
  char *s = script_of(specs, &cfg);
  const char *q = strstr(s, "sed -i -E '");
  assert_non_null(q);
  q += strlen("sed -i -E '");
  char expr[256];
  snprintf(expr, sizeof expr, "%.*s", (int)(strchr(q, '\'') - q), q);
  free(s);
  char src[160];
  snprintf(src, sizeof src, "%s/sources", f->dir);
  put_file(src,
           "deb http://deb.debian.org/debian bookworm main\n"
           "deb https://security.debian.org/debian-security bookworm-security main\n"
           "Types: deb\n"
           "URIs: http://deb.debian.org/debian http://x.org:80/y\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
           0644);
  const char *sed = access("/bin/sed", X_OK) == 0 ? "/bin/sed" : "/usr/bin/sed";
  char *argv[] = {(char *)sed, "-E", expr, src, NULL};
  char *envp[] = {NULL};
  assert_int_equal(run(f, argv, envp), 0);
  expect_file(f->out, "deb http://127.0.0.1:3142/pfx/debian bookworm main\n"
                      "deb http://127.0.0.1:3142/pfx/debian-security bookworm-security main\n"
                      "Types: deb\n"
                      "URIs: http://127.0.0.1:3142/pfx/debian http://127.0.0.1:3142/pfx/y\n"
                      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_managers),
      cmocka_unit_test(parse_versions),
      cmocka_unit_test(parse_sh),
      cmocka_unit_test(reject_manager),
      cmocka_unit_test(reject_empty),
      cmocka_unit_test(reject_options),
      cmocka_unit_test(reject_metacharacters),
      cmocka_unit_test(reject_non_registry),
      cmocka_unit_test(reject_limits),
      cmocka_unit_test(check_hand_built),
      cmocka_unit_test(config_checks),
      cmocka_unit_test(key_stable),
      cmocka_unit_test(key_changes),
      cmocka_unit_test(key_rejects),
      cmocka_unit_test(script_npm),
      cmocka_unit_test(script_pip),
      cmocka_unit_test(script_gem_apt_apk_sh),
      cmocka_unit_test(script_config),
      cmocka_unit_test(script_marker),
      cmocka_unit_test(script_appends),
      cmocka_unit_test_setup_teardown(syntax, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_managers, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_apt, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_failure, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_missing, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_bootstrap_apt, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_bootstrap_apk, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(run_bootstrap_useless, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(apt_mirror_rewrite, fx_setup, fx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
