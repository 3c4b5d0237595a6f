/* A growable byte buffer with a read cursor: append at the end, consume from
 * the front. Used for connection output, encoded messages and text. */
#ifndef QUILT_STRBUF_H
#define QUILT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf {
  uint8_t *data;
  size_t off;  /* first unconsumed byte */
  size_t len;  /* end of valid bytes */
  size_t cap;
};

#define STRBUF_INIT {0, 0, 0, 0}

static inline size_t strbuf_avail(const struct strbuf *b) { return b->len - b->off; }
static inline const uint8_t *strbuf_head(const struct strbuf *b) { return b->data + b->off; }

/* Each returns 0 or -ENOMEM. */
int strbuf_reserve(struct strbuf *b, size_t extra);
int strbuf_append(struct strbuf *b, const void *p, size_t n);
int strbuf_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Pointer to `n` writable bytes at the end; commit them with strbuf_commit. */
uint8_t *strbuf_tail(struct strbuf *b, size_t n);
void strbuf_commit(struct strbuf *b, size_t n);
/* Drops n bytes from the front; resets to empty when all are consumed. */
void strbuf_consume(struct strbuf *b, size_t n);
void strbuf_reset(struct strbuf *b);
/* Frees the storage when it grew past `keep` bytes (keeps idle memory low). */
void strbuf_shrink(struct strbuf *b, size_t keep);
void strbuf_free(struct strbuf *b);
/* NUL-terminates without counting the NUL; returns the text or NULL. */
const char *strbuf_cstr(struct strbuf *b);

#endif
