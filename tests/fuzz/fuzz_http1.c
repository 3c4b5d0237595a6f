/* libFuzzer harness: HTTP/1.1 on the API listener, through the daemon's own
 * session (src/grpc/h1_session.c: llhttp parsing in http1.c, the router,
 * the health and metrics answers).
 *
 * Input: byte 0 seeds how the rest is cut into reads (bit 7: the daemon is
 * shutting down); the rest is what the peer sends. As in conn.c, input
 * stops at the first -1 from h1_session_recv. Every response the session
 * queues must be a whole HTTP/1.1 response. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_daemon.h"
#include "grpc/h1_session.h"

static void check_output(struct fuzz_ctx *f) {
  size_t n = strbuf_avail(&f->conn.out);
  if (n && (n < 12 || memcmp(strbuf_head(&f->conn.out), "HTTP/1.1 ", 9) != 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct fuzz_ctx f;
  if (fuzz_ctx_init(&f) < 0)
    abort();
  f.d->shutting_down = data[0] & 0x80;
  uint32_t seed = data[0];
  data++, size--;
  struct http1_session *s;
  struct qerr err = QERR_INIT;
  if (h1_session_new(&f.conn, &s, &err) < 0)
    abort();
  f.conn.h1 = s;
  size_t off = 0;
  while (off < size) {
    size_t k = fuzz_chunk_len(&seed, size - off);
    int rc = h1_session_recv(s, data + off, k);
    check_output(&f);
    fuzz_ctx_drain(&f);
    if (rc < 0)
      break;
    off += k;
  }
  h1_session_free(s);
  fuzz_ctx_free(&f);
  return 0;
}
