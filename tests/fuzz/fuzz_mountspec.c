/* libFuzzer harness: the mount flags of `quilt-cli run/create`
 * (src/cli/mountspec.c): --mount KEY=VALUE,... and -v SOURCE:TARGET[:MODE],
 * and the sizes they carry.
 *
 * Input: byte 0 picks the parser (--mount, -v, or a size), the rest is the
 * flag's value up to the first NUL.
 *
 * Properties: a value that parses gives a known type, NUL-terminated
 * source and target within their buffers, a target for every type, a size
 * only for tmpfs; a failure always says why; parsing is deterministic (the
 * same value twice gives the same result). */
#include <stdlib.h>
#include <string.h>

#include "cli/mountspec.h"

static void check_spec(const struct mountspec *m) {
  if (strcmp(m->type, "bind") != 0 && strcmp(m->type, "tmpfs") != 0 &&
      strcmp(m->type, "volume") != 0)
    abort();
  if (!memchr(m->source, 0, sizeof m->source) || !memchr(m->target, 0, sizeof m->target))
    abort();
  if (!m->target[0])
    abort(); /* every mount lands somewhere */
  if (m->size_bytes && strcmp(m->type, "tmpfs") != 0)
    abort();
}

static int parse(int which, const char *s, struct mountspec *m, char *err, size_t errlen) {
  uint64_t bytes;
  switch (which) {
  case 0: return mountspec_parse(s, m, err, errlen);
  case 1: return mountspec_parse_volume(s, m, err, errlen);
  default: {
    int rc = mountspec_parse_size(s, &bytes);
    m->size_bytes = rc == 0 ? bytes : 0;
    return rc;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int which = data[0] % 3;
  char *s = strndup((const char *)data + 1, size - 1);
  if (!s)
    abort();
  static struct mountspec a, b;
  char ea[256], eb[256];
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  ea[0] = eb[0] = 0;
  int ra = parse(which, s, &a, ea, sizeof ea);
  int rb = parse(which, s, &b, eb, sizeof eb);
  if (ra != rb || (which < 2 && memcmp(&a, &b, sizeof a) != 0))
    abort(); /* deterministic */
  if (ra == 0 && which < 2)
    check_spec(&a);
  if (ra < 0 && which < 2 && !ea[0])
    abort(); /* a refusal names its reason */
  free(s);
  return 0;
}
