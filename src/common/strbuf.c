#include "common/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strbuf_reserve(struct strbuf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  /* Compact before growing: consumed bytes at the front are free space. */
  if (b->off > 0 && b->cap - (b->len - b->off) >= extra) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    return 0;
  }
  size_t need = b->len - b->off + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  uint8_t *p = malloc(cap);
  if (!p)
    return -ENOMEM;
  if (b->data)
    memcpy(p, b->data + b->off, b->len - b->off);
  free(b->data);
  b->data = p;
  b->len -= b->off;
  b->off = 0;
  b->cap = cap;
  return 0;
}

int strbuf_append(struct strbuf *b, const void *p, size_t n) {
  if (n == 0)
    return 0;
  if (strbuf_reserve(b, n) < 0)
    return -ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int strbuf_printf(struct strbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -EINVAL;
  if (strbuf_reserve(b, (size_t)n + 1) < 0)
    return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

uint8_t *strbuf_tail(struct strbuf *b, size_t n) {
  if (strbuf_reserve(b, n) < 0)
    return NULL;
  return b->data + b->len;
}

void strbuf_commit(struct strbuf *b, size_t n) { b->len += n; }

void strbuf_consume(struct strbuf *b, size_t n) {
  b->off += n;
  if (b->off >= b->len)
    b->off = b->len = 0;
}

void strbuf_reset(struct strbuf *b) { b->off = b->len = 0; }

void strbuf_shrink(struct strbuf *b, size_t keep) {
  if (b->cap > keep && b->off == b->len) {
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
  }
}

void strbuf_free(struct strbuf *b) {
  free(b->data);
  b->data = NULL;
  b->off = b->len = b->cap = 0;
}

const char *strbuf_cstr(struct strbuf *b) {
  if (strbuf_reserve(b, 1) < 0)
    return NULL;
  b->data[b->len] = 0;
  return (const char *)b->data + b->off;
}
