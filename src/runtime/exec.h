/* Exec: a process run inside a running container, its output captured.
 *
 * The process joins the container's namespaces through its main process's
 * pidfd, its cgroup, and gets the container's environment, user and
 * security settings (spawn_join). Its stdout and stderr are read on the
 * ring into buffers capped at the request's output limit (the rest is read
 * and dropped, so the process never blocks on a full pipe); its stdin gets
 * the request's bytes, then EOF. The unary answer goes out once the process
 * has exited and both pipes are closed. A deadline or a cancelled call
 * kills it. */
#ifndef QUILT_RUNTIME_EXEC_H
#define QUILT_RUNTIME_EXEC_H

#include "quilt.pb-c.h"

struct grpc_call;
struct container;

void exec_rpc(struct grpc_call *call, struct container *c, const Quilt__V1__ExecRequest *req);

#endif
