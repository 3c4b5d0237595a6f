/* An HTTP/2 server session on one connection, driven entirely from memory:
 * bytes in through nghttp2_session_mem_recv, bytes out through
 * nghttp2_session_mem_send into the connection's output buffer. */
#ifndef QUILT_GRPC_H2_H
#define QUILT_GRPC_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"
#include "common/strbuf.h"

struct conn;
struct h2_session;

int h2_session_new(struct conn *c, struct h2_session **out, struct qerr *err);
/* Returns 0, or -1 when the session is beyond repair (close after flush). */
int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t n);
/* Appends pending frames to out until it holds `limit` bytes. */
int h2_session_pump(struct h2_session *s, struct strbuf *out, size_t limit);
/* True when nghttp2 wants neither to read nor to write: close. */
bool h2_session_done(struct h2_session *s);
/* True when no stream is open. */
bool h2_session_idle(struct h2_session *s);
/* GOAWAY, and ends streaming calls with UNAVAILABLE. */
void h2_session_shutdown(struct h2_session *s);
/* Cancels every live call and frees the session. */
void h2_session_free(struct h2_session *s);

#endif
