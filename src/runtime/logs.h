/* Container output: stdout/stderr pipes read on the ring and written to the
 * container's log file in CRI format; StreamLogs followers read the file
 * back (the file is the buffer, so a slow follower holds up nobody). */
#ifndef QUILT_RUNTIME_LOGS_H
#define QUILT_RUNTIME_LOGS_H

#include <stdbool.h>

#include "common/qerr.h"
#include "quilt.pb-c.h"

struct container;
struct grpc_call;

/* Opens the log file and creates the pipes; child_fds receive the write
 * ends for the child's stdout and stderr (the caller closes them after
 * the clone). */
int logs_open(struct container *c, int child_fds[2], struct qerr *err);
/* The same in two steps, for sandboxes built before their container: the
 * pipes, then their read ends handed to the container (taken even on
 * failure) along with its log file. */
int logs_pipes(int read_fds[2], int write_fds[2], struct qerr *err);
int logs_adopt(struct container *c, int read_fds[2], struct qerr *err);
/* Opens (creating it) the log file of the container whose directory is
 * dir, ahead of the container: an fd, or -1 and errno. logs_adopt uses a
 * container's log_fd when it is set already. */
int logs_open_file(const char *dir);
/* Starts reading the pipes on the ring. */
void logs_start(struct container *c);
/* True when no pipe read is in flight (safe to free the container). */
bool logs_idle(const struct container *c);
/* True once both pipes reached EOF (or were never opened). */
bool logs_drained(const struct container *c);
/* Closes everything; ends every follower (the container is going away). */
void logs_close(struct container *c);
/* The container has exited and its pipes are drained: followers end once
 * they have caught up. */
void logs_complete(struct container *c);
/* Appends a line from the daemon itself (e.g. why the start failed). */
void logs_note(struct container *c, const char *text);
/* The same as setup output ("quilt-setup: TEXT"), e.g. that the steps'
 * layer was reused: a client following the setup stream sees it end. */
void logs_setup_note(struct container *c, const char *text);

void logs_stream_rpc(struct grpc_call *call, struct container *c,
                     const Quilt__V1__StreamLogsRequest *req);

#endif
