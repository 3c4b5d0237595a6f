/* HTTP/1.1 on an API connection: health and Prometheus metrics. */
#ifndef QUILT_GRPC_H1_SESSION_H
#define QUILT_GRPC_H1_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

struct conn;
struct http1_session;

int h1_session_new(struct conn *c, struct http1_session **out, struct qerr *err);
/* Returns 0, or -1 once the connection should close after its output. */
int h1_session_recv(struct http1_session *s, const uint8_t *p, size_t n);
void h1_session_free(struct http1_session *s);

#endif
