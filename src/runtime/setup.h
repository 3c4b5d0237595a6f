/* Setup steps (issue 6): packages installed inside a container, by the
 * image's own package managers, before its command runs. This is the pure
 * part, with no I/O: parsing and validating the specs, the cache key of a
 * list of steps, and the POSIX sh script that runs them in the container.
 *
 * A spec is "MANAGER: ARGS":
 *   npm: pkg ...   npm install -g        pip: req ...   python3 -m pip install
 *   gem: gem ...   gem install           apt: pkg ...   apt-get install
 *   apk: pkg ...   apk add               sh: COMMAND    /bin/sh -c COMMAND
 * Packages are separated by blanks (space, tab, newline); `sh:` takes the
 * rest of the spec, trimmed, as one command (newlines allowed).
 *
 * What a package may look like. Every word is single-quoted in the script,
 * so the shell never interprets it whatever it holds; these rules keep each
 * word inside its manager's own grammar for a *registry* package, so that a
 * spec can neither pass an option (a leading '-' is refused everywhere) nor
 * install something from outside the configured registries (URLs, local
 * paths, git or GitHub references, pip's `pkg @ url` and environment
 * markers are refused). Quotes, '$', '`', ';', '&', '|', '\', '(' ')',
 * '{' '}', '#', '?', '%', control characters and non-ASCII bytes never
 * appear in a package. What each manager accepts (letters, digits and):
 *   npm  [@scope/]name[@range]  name: . _ - (not leading . or _); range, or
 *        a dist-tag, without blanks: . _ - ^ ~ < > = * +
 *        typescript  typescript@5.4.0  @types/node  @types/node@^20  x@latest
 *   pip  name[extra,...][specifiers]  name: . _ - (starts and ends with a
 *        letter or digit); specifiers start with < > = ! ~ and use
 *        . * + ! _ - , < > = ~   flask  flask==3.0.0  requests>=2,<3
 *        uvicorn[standard]~=0.29
 *   gem  name[:requirement]  name: . _ -; requirement: . - < > = ! ~
 *        rake  rails:7.1.3  nokogiri:~>1.16  (RubyGems' own NAME:VERSION)
 *   apt  name[:arch][=version|/release]  Debian names: lower-case letters,
 *        digits, + - . (at least 2 bytes, not ending in '-', which apt-get
 *        reads as "remove"); version: . + ~ : -; release and arch: . + -
 *        curl  curl=7.88.1-10+deb12u5  libssl3:amd64  curl/bookworm-backports
 *        Version globs (curl=7.88*) are refused: apt-get's glob matching
 *        differs between releases, and an exact pin is what a cache key
 *        should name.
 *   apk  name[op version]  name: . _ + -; op: = < > ~ (<= >= =~ ...);
 *        version: . _ -          curl  curl=8.5.0-r0  python3>=3.11
 *   sh   any text but NUL, C0 control characters other than tab, CR and
 *        newline, and DEL. It runs in its own /bin/sh -c, so its syntax
 *        errors, `exit` or `cd` stay inside its step.
 * Limits: SETUP_SPEC_MAX bytes per spec, SETUP_PKG_MAX bytes per package,
 * SETUP_PKGS_MAX packages per step, SETUP_STEPS_MAX steps per container.
 *
 * The configuration (struct setup_config; NULL or "" fields are unset):
 *   npm_registry    npm --registry URL (replaces registry.npmjs.org, for
 *                   scoped packages too unless the image configures a scope)
 *   pip_index       pip --index-url URL, plus --trusted-host HOST[:PORT]
 *                   when URL is http:// (pip refuses plain http otherwise)
 *   gem_source      gem --clear-sources --source URL (replaces rubygems.org:
 *                   --source alone would only add URL to the list)
 *   apt_mirror      scheme://host[:port][/prefix] replacing the scheme and
 *                   host of every http(s) URI in the image's apt sources
 *                   (/etc/apt/sources.list and the .list and .sources
 *                   files of /etc/apt/sources.list.d), paths kept: http://deb.debian.org/debian
 *                   becomes http://mirror:3142/debian
 *   apk_repository  apk --repository URL (added to /etc/apk/repositories)
 *   http_proxy, https_proxy, no_proxy
 *                   exported as HTTP_PROXY/http_proxy, HTTPS_PROXY/
 *                   https_proxy, NO_PROXY/no_proxy for every step
 * URLs are http:// or https:// with a host, made of letters, digits and
 * - . _ ~ : / ? = % + @ , [ ] (no '&', '#', quotes or blanks). no_proxy is
 * a list of hosts, domains and CIDRs: letters, digits and . , : * _ / -.
 * The mirror, registry and index apply to the managers' own commands and
 * to the bootstrap installs (below); `sh:` steps see only the proxies.
 *
 * The script (setup_script). POSIX sh, run in the container as root with
 * the container's environment (HOME defaults to /root and PATH to the usual
 * six directories when unset): `set -e`, then the steps in order. Each step
 *   1. writes a marker line to stderr, so the daemon can tell setup output
 *      from the command's and say which step runs:
 *          quilt-setup: step 2/3: pip: flask==3.0.0
 *      (the step's canonical text on one line: control characters become
 *      spaces, cut at 200 bytes with "...");
 *   2. makes sure the manager is there. npm, pip (python3 -m pip) and gem
 *      may be missing: when the image has apt-get (then `apt-get update`
 *      first) or apk, the runtime is installed with it (npm: nodejs npm;
 *      pip: python3-pip, py3-pip on apk; gem: ruby), with a line
 *          quilt-setup: step 1/3: installing nodejs npm with apt-get
 *      and otherwise the script ends with SETUP_EXIT_MISSING and
 *          quilt-setup: npm is not in the image and neither apt-get nor apk is there to install it
 *      An apt step needs apt-get and an apk step apk:
 *          quilt-setup: apt-get is not in the image
 *   3. runs the manager:
 *      npm  npm install -g --no-audit --no-fund [--registry URL] PKGS
 *           (npm's cache in /tmp/.quilt-setup-npm, removed at the end, so it
 *           stays out of the layer; update notifier off)
 *      pip  python3 -m pip install --no-cache-dir --disable-pip-version-check
 *           [--index-url URL [--trusted-host HOST]] PKGS, with
 *           PIP_BREAK_SYSTEM_PACKAGES=1, PIP_ROOT_USER_ACTION=ignore and
 *           PYTHONDONTWRITEBYTECODE=1 in its environment. pip >= 23.0.1 reads
 *           the first as --break-system-packages (needed where the
 *           distribution marks its Python EXTERNALLY-MANAGED, as Debian 12
 *           does); older pip ignores unknown PIP_* variables, where the flag
 *           would be a usage error. That is the run-time detection, without
 *           a `pip install --help`. The last keeps the bytecode of the
 *           standard library and of pip itself, which running pip would
 *           write (12 MB on Debian 12), out of the layer; pip still compiles
 *           what it installs.
 *      gem  gem install --no-document [--clear-sources --source URL] PKGS
 *      apt  apt-get update (once per script, after the mirror rewrite), then
 *           DEBIAN_FRONTEND=noninteractive apt-get install -y
 *           --no-install-recommends PKGS
 *      apk  apk add --no-cache [--repository URL] PKGS
 *      sh   /bin/sh -c COMMAND
 *   On failure: "quilt-setup: step 2/3 failed: exit code 1" and the exit
 *   below; the later steps do not run.
 * After the last step: apt's package lists and archives are removed when
 * apt-get ran (they would only weigh down the cached layer), then
 *          quilt-setup: done
 *
 * Exit status of the script:
 *   0                   every step succeeded ("quilt-setup: done" written)
 *   SETUP_EXIT_MISSING  (90) a manager is missing and cannot be installed:
 *                       answer FAILED_PRECONDITION with the last stderr line
 *   other               the failing command's own exit code (128+N: killed
 *                       by signal N); a command that itself exits 90 is
 *                       reported as 1, its code kept in the "failed" line
 */
#ifndef QUILT_RUNTIME_SETUP_H
#define QUILT_RUNTIME_SETUP_H

#include <stddef.h>

#include "common/qerr.h"
#include "common/strbuf.h"

#define SETUP_SPEC_MAX 65536
#define SETUP_PKG_MAX 256
#define SETUP_PKGS_MAX 256
#define SETUP_STEPS_MAX 64
#define SETUP_KEY_LEN 64
#define SETUP_EXIT_MISSING 90
/* Part of every cache key. Bump it when the script changes what a step
 * leaves in the container (flags, bootstrap packages, cleanup), so layers
 * made by an older script are not reused. */
#define SETUP_KEY_VERSION 1

enum setup_manager {
  SETUP_NPM,
  SETUP_PIP,
  SETUP_GEM,
  SETUP_APT,
  SETUP_APK,
  SETUP_SH,
};
#define SETUP_MANAGER_COUNT 6

struct setup_config {
  const char *npm_registry;
  const char *pip_index;
  const char *gem_source;
  const char *apt_mirror;
  const char *apk_repository;
  const char *http_proxy;
  const char *https_proxy;
  const char *no_proxy;
};

/* One step. Package managers: pkgs[0..n_pkgs) and shell NULL; sh: shell
 * and no pkgs. Owned by the step (setup_step_free). */
struct setup_step {
  enum setup_manager mgr;
  char **pkgs;
  size_t n_pkgs;
  char *shell;
};

/* "npm", "pip", ...; "?" for a value out of range. */
const char *setup_manager_name(enum setup_manager m);

/* Parses and validates one spec into *out (zeroed first; on failure it
 * holds nothing to free). Bad input is INVALID_ARGUMENT with a message
 * naming the spec and what is wrong with it:
 *   setup spec "npm: -g": package "-g" starts with '-' (it would be read as an option)
 * Returns 0, -EINVAL or -ENOMEM. */
int setup_parse(const char *spec, struct setup_step *out, struct qerr *err);
void setup_step_free(struct setup_step *s);
void setup_steps_free(struct setup_step *steps, size_t n);

/* Validates a step built by hand (the rules of setup_parse); the script
 * and the key functions call it for every step they are given. */
int setup_step_check(const struct setup_step *s, struct qerr *err);
/* Validates every field of cfg (NULL is an empty configuration). */
int setup_config_check(const struct setup_config *cfg, struct qerr *err);

/* Appends the canonical text of a valid step (setup_parse made it, or
 * setup_step_check passed it): "npm: a @b/c" (packages in the
 * given order, one space apart) or "sh: COMMAND" (trimmed). Two specs
 * with the same canonical text install the same thing. 0 or -ENOMEM. */
int setup_step_canonical(const struct setup_step *s, struct strbuf *out);

/* The cache key of running steps[0..n) on image_id (64 hex): SHA-256, as
 * 64 lower-case hex digits and a NUL, over SETUP_KEY_VERSION, the image id,
 * each step's canonical text in order, the proxies, and the registry
 * fields the steps can use: npm_registry for npm steps, pip_index for pip,
 * gem_source for gem, apt_mirror and apk_repository for apt and apk steps
 * and for npm, pip and gem steps (their bootstrap may install through
 * either). A field no step uses does not change the key. Every field is
 * hashed with its name and length, so no two different inputs share an
 * encoding. 0 or -EINVAL (bad image id, step or config; n 0 or above
 * SETUP_STEPS_MAX). */
int setup_cache_key(const char *image_id, const struct setup_step *steps, size_t n,
                    const struct setup_config *cfg, char out[SETUP_KEY_LEN + 1],
                    struct qerr *err);

/* Appends the script that runs steps[0..n) (see the top of this file) to
 * out. Returns 0, -EINVAL (as setup_cache_key) or -ENOMEM. */
int setup_script(const struct setup_step *steps, size_t n, const struct setup_config *cfg,
                 struct strbuf *out, struct qerr *err);

#endif
