/* CopyIn and CopyOut: files into and out of a container, as `docker cp`.
 *
 * The archive work is never done in the daemon: each copy runs the
 * quilt-copy helper (src/extract/quilt-copy.c), exec'd, which enters the
 * container's root by itself, and the daemon moves bytes between it and the
 * call on the ring: CopyOut reads the helper's stdout (reading stops while
 * the call's queue is full), CopyIn writes the client's chunks to its stdin
 * (taking no more from the client while 1 MiB waits). The helper's stderr
 * carries its verdict, its exit status the gRPC code.
 *
 * Where the helper's root comes from:
 *  - a running, paused or starting container (or one created from the warm
 *    pool, whose sandbox is built): it joins the mount namespace (and the
 *    user namespace) of the container's process through a pidfd;
 *  - a created or exited one: it mounts the container's overlay (or binds
 *    its private copy), with its binds and volumes, in a private mount
 *    namespace of its own. While such a copy runs, StartContainer answers
 *    UNAVAILABLE; only one copy into a stopped container runs at a time
 *    (copies out may run together).
 * A deadline, a client cancel or the container's removal kill the helper;
 * it is reaped on the ring, and its mounts die with its namespace. */
#ifndef QUILT_RUNTIME_COPY_H
#define QUILT_RUNTIME_COPY_H

#include <stdbool.h>

#include "quilt.pb-c.h"

struct grpc_call;
struct container;

void copy_out_rpc(struct grpc_call *call, const Quilt__V1__CopyOutRequest *req);
/* CopyIn: each message as it arrives, and the end of the client's stream. */
void copy_in_input(struct grpc_call *call, const Quilt__V1__CopyInChunk *in);
void copy_in_end(struct grpc_call *call);

/* A copy holds the stopped container's filesystem mounted. */
bool copy_holds_rootfs(const struct container *c);
/* The container is being removed: its copies end (ABORTED). */
void copy_container_removed(struct container *c);

#endif
