/* libFuzzer harness: the HTTP/2 server session (src/grpc/h2.c and the call
 * layer in call.c) fed the bytes a client sends, as conn.c feeds them: the
 * client preface (conn.c only starts an h2 session once the 24 bytes
 * matched), then the input in read-sized chunks, each followed by the pump
 * that fills the connection's output (up to conn.c's PUMP_LIMIT).
 *
 * The daemon's method table is used with every handler replaced by a stub
 * that does what real handlers do with a call (reply, stream several
 * messages, fail, keep the call open until it is cancelled, hold input),
 * without touching containers or images. Handlers check that the call's
 * deadline is not before its start.
 *
 * Input: byte 0 seeds the read sizes; byte 1 bit 0 shuts the session down
 * (GOAWAY, end streaming calls) before it is freed, bit 1 lowers the
 * message size limit to 64 bytes; the rest comes after the preface. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_daemon.h"
#include "grpc/call_int.h"
#include "grpc/h2.h"

#define PUMP_LIMIT (256 * 1024)
#define MAX_METHODS 64

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void on_cancel(struct grpc_call *call, void *arg) {
  (void)call;
  (void)arg;
}

static void on_writable(struct grpc_call *call, void *arg) {
  (void)arg;
  grpc_call_finish(call, GRPC_OK, NULL);
}

/* Whatever grpc-timeout said, the deadline is not before the call began
 * (a wrapped sum would end the call at once). */
static void check_deadline(const struct grpc_call *call) {
  uint64_t dl = grpc_call_deadline(call);
  if (dl && dl < call->start_ns)
    abort();
  if (qtimer_pending(&call->deadline) && call->deadline.deadline_ns < call->start_ns)
    abort();
}

/* What a handler does depends on the request, so inputs choose it. */
static void stub_request(struct grpc_call *call, const ProtobufCMessage *req) {
  check_deadline(call);
  size_t n = protobuf_c_message_get_packed_size(req);
  switch (n % 5) {
  case 0:
    grpc_call_reply(call, req);
    break;
  case 1:
    for (int i = 0; i < 3 && grpc_call_send(call, req) == 0; i++)
      ;
    grpc_call_finish(call, GRPC_OK, NULL);
    break;
  case 2:
    grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "stub refuses %zu bytes: \xff\n%%", n);
    break;
  case 3:
    /* Answered later, or cancelled by the client, a deadline or teardown. */
    grpc_call_send(call, req);
    grpc_call_on_cancel(call, on_cancel, NULL);
    grpc_call_on_writable(call, on_writable, NULL);
    break;
  default:
    grpc_call_on_cancel(call, on_cancel, NULL);
  }
}

/* Client streaming: input is held until the handler passed it on. */
static void stub_stream_message(struct grpc_call *call, const ProtobufCMessage *req) {
  check_deadline(call);
  grpc_call_hold_input(call);
  if (grpc_call_send(call, req) < 0)
    grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "queue full");
  grpc_call_release_input(call);
}

static void stub_half_close(struct grpc_call *call) { grpc_call_finish(call, GRPC_OK, "done"); }

static void install_stubs(struct grpc_registry *r, struct grpc_method *table) {
  for (unsigned i = 0; i < r->count && i < MAX_METHODS; i++) {
    table[i] = *r->methods[i];
    bool streaming_in = table[i].kind == GRPC_CLIENT_STREAM || table[i].kind == GRPC_BIDI;
    table[i].on_request = streaming_in ? stub_stream_message : stub_request;
    table[i].on_half_close = streaming_in ? stub_half_close : NULL;
    r->methods[i] = &table[i];
  }
}

static int feed(struct fuzz_ctx *f, struct h2_session *s, const uint8_t *p, size_t n) {
  int rc = n ? h2_session_recv(s, p, n) : 0;
  if (h2_session_pump(s, &f->conn.out, PUMP_LIMIT) < 0)
    rc = -1;
  if (strbuf_avail(&f->conn.out) > PUMP_LIMIT + 64 * 1024)
    abort(); /* the pump must stop near its limit */
  fuzz_ctx_drain(f);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  struct fuzz_ctx f;
  if (fuzz_ctx_init(&f) < 0)
    abort();
  struct grpc_method table[MAX_METHODS];
  install_stubs(&f.d->registry, table);
  uint32_t seed = data[0];
  bool shutdown = data[1] & 1;
  if (data[1] & 2)
    f.d->cfg.max_recv_msg = 64;
  data += 2, size -= 2;

  struct h2_session *s;
  struct qerr err = QERR_INIT;
  if (h2_session_new(&f.conn, &s, &err) < 0)
    abort();
  int rc = feed(&f, s, (const uint8_t *)preface, sizeof preface - 1);
  for (size_t off = 0; off < size && rc == 0 && !h2_session_done(s);) {
    size_t k = fuzz_chunk_len(&seed, size - off);
    rc = feed(&f, s, data + off, k);
    off += k;
  }
  if (shutdown) {
    h2_session_shutdown(s);
    feed(&f, s, NULL, 0);
  }
  h2_session_free(s);
  if (f.d->metrics.streams_current != 0)
    abort(); /* every call was accounted for */
  fuzz_ctx_free(&f);
  return 0;
}
