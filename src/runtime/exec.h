/* Exec: a process run inside a running container, its output captured.
 *
 * The process joins the container's namespaces through its main process's
 * pidfd, its cgroup, and gets the container's environment, user and
 * security settings (spawn_join). Its stdout and stderr are read on the
 * ring into buffers capped at the request's output limit (the rest is read
 * and dropped, so the process never blocks on a full pipe); its stdin gets
 * the request's bytes, then EOF. The unary answer goes out once the process
 * has exited and both pipes are closed. A deadline or a cancelled call
 * kills it. ExecStream forwards output chunks as they come (reading stops
 * while the call's queue is full), feeds stdin from the input messages
 * (taking no more from the client while 1 MiB waits), and may run the
 * command on a pty of the container's devpts. */
#ifndef QUILT_RUNTIME_EXEC_H
#define QUILT_RUNTIME_EXEC_H

#include "quilt.pb-c.h"

struct grpc_call;
struct container;

void exec_rpc(struct grpc_call *call, struct container *c, const Quilt__V1__ExecRequest *req);
/* ExecStream: each input message, and the end of the client's input. */
void exec_stream_input(struct grpc_call *call, const Quilt__V1__ExecInput *in);
void exec_stream_end(struct grpc_call *call);

#endif
