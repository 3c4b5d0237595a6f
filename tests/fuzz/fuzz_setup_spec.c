/* libFuzzer harness: setup specs (src/runtime/setup.c), as CreateContainer
 * hands them over: parse and validate each spec, then the cache key and the
 * script of the steps that parsed.
 *
 * Input: NUL-separated pieces. Byte 0 is a mask: for each set bit, the next
 * piece is one field of the setup configuration (npm_registry, pip_index,
 * gem_source, apt_mirror, apk_repository, http_proxy, https_proxy,
 * no_proxy, in that order); every further piece is one spec.
 *
 * Properties: a spec that parses passes setup_step_check; its canonical
 * text parses again to the same canonical text; key and script succeed for
 * valid steps and configuration, and the key does not depend on anything
 * but its inputs (computed twice, equal). */
#include <stdlib.h>
#include <string.h>

#include "runtime/setup.h"

#define FIELDS 8

struct pieces {
  const char *p, *end;
};

/* Returns the next piece as a new NUL-terminated string, or NULL at the end. */
static char *next_piece(struct pieces *it) {
  if (it->p > it->end)
    return NULL;
  const char *nul = memchr(it->p, 0, (size_t)(it->end - it->p));
  size_t n = nul ? (size_t)(nul - it->p) : (size_t)(it->end - it->p);
  char *s = strndup(it->p, n);
  if (!s)
    abort();
  it->p += n + 1;
  return s;
}

static void check_canonical(const struct setup_step *st) {
  struct strbuf c1 = STRBUF_INIT, c2 = STRBUF_INIT;
  struct setup_step again;
  struct qerr err = QERR_INIT;
  if (setup_step_canonical(st, &c1) < 0)
    abort();
  if (setup_parse(strbuf_cstr(&c1), &again, &err) < 0)
    abort(); /* canonical text must be a valid spec */
  if (setup_step_canonical(&again, &c2) < 0 || strcmp(strbuf_cstr(&c1), strbuf_cstr(&c2)) != 0)
    abort();
  setup_step_free(&again);
  strbuf_free(&c1);
  strbuf_free(&c2);
}

static void check_outputs(const struct setup_step *steps, size_t n,
                          const struct setup_config *cfg) {
  static const char image[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  char k1[SETUP_KEY_LEN + 1], k2[SETUP_KEY_LEN + 1];
  struct qerr err = QERR_INIT;
  struct strbuf script = STRBUF_INIT;
  if (setup_cache_key(image, steps, n, cfg, k1, &err) < 0 ||
      setup_cache_key(image, steps, n, cfg, k2, &err) < 0 || strcmp(k1, k2) != 0)
    abort();
  if (setup_script(steps, n, cfg, &script, &err) < 0)
    abort();
  strbuf_free(&script);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct pieces it = {(const char *)data + 1, (const char *)data + size};
  char *fields[FIELDS] = {0};
  for (int i = 0; i < FIELDS; i++)
    if (data[0] & (1u << i))
      fields[i] = next_piece(&it);
  struct setup_config cfg = {fields[0], fields[1], fields[2], fields[3],
                             fields[4], fields[5], fields[6], fields[7]};
  struct qerr err = QERR_INIT;
  bool cfg_ok = setup_config_check(&cfg, &err) == 0;

  struct setup_step steps[SETUP_STEPS_MAX];
  size_t n = 0;
  char *spec;
  while (n < SETUP_STEPS_MAX && (spec = next_piece(&it))) {
    struct qerr perr = QERR_INIT;
    if (setup_parse(spec, &steps[n], &perr) == 0) {
      if (setup_step_check(&steps[n], &perr) < 0)
        abort(); /* parse and check disagree */
      check_canonical(&steps[n]);
      n++;
    }
    free(spec);
  }
  if (n > 0)
    check_outputs(steps, n, cfg_ok ? &cfg : NULL);
  setup_steps_free(steps, n);
  for (int i = 0; i < FIELDS; i++)
    free(fields[i]);
  return 0;
}
