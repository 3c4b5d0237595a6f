/* The zygote: a small process that forks the warm pool's sandboxes.
 *
 * A sandbox forked from quiltd itself costs in proportion to quiltd's size:
 * clone copies its page tables, every page either side writes afterwards
 * is copied on that write (quiltd re-faulted its working set after each
 * sandbox), and the sandbox's execve tears that address space down again.
 * The zygote is forked from quiltd once, at start, while quiltd is small;
 * it keeps nothing but a socket and forks sandboxes on request with
 * CLONE_PARENT, so they are quiltd's children (pidfd waits and reaping stay
 * quiltd's) built from a small copy. A request carries the sandbox's id,
 * its overlay lowerdir and its stdio (and a spare network namespace) as
 * fds; the answer carries its pid, pidfd and the status and control pipes.
 * The zygote exits when quiltd closes the socket or dies; when it is gone
 * quiltd forks sandboxes itself, as before. */
#ifndef QUILT_RUNTIME_ZYGOTE_H
#define QUILT_RUNTIME_ZYGOTE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/qerr.h"
#include "runtime/spawn.h"

/* The zygote's end of the socket, in the zygote. */
#define ZYGOTE_FD 3

struct zygote {
  pid_t pid;   /* 0: none */
  int pidfd;
  int sock;    /* quiltd's end; -1: none */
  unsigned long spawned, failures;
};

/* What to build; the fds are lent (the caller closes its copies). */
struct zygote_req {
  char id[65];
  char lower[PATH_MAX];
  int stdio[3];
  int netns_fd;  /* -1: none */
};

/* In the zygote: builds the sandbox (spawn_sandbox with clone_parent). */
typedef int (*zygote_build_fn)(void *arg, const struct zygote_req *req,
                               struct spawn_result *res, struct qerr *err);

/* Forks the zygote, which serves requests with build(arg, ...). */
int zygote_start(struct zygote *z, zygote_build_fn build, void *arg, struct qerr *err);
/* Asks the zygote for a sandbox; its answer comes on z->sock, in the order
 * of the requests. A zygote that cannot be written to is stopped. */
int zygote_ask(struct zygote *z, const struct zygote_req *req, struct qerr *err);
/* Reads the next answer: 0 with res holding the sandbox as spawn_sandbox
 * would have made it, -EAGAIN when none is there yet (wait false), or the
 * zygote's failure. One that closed, or answered garbage, is stopped (and
 * the caller forks itself from then on). wait: block, up to 2 s. */
int zygote_answer(struct zygote *z, bool wait, struct spawn_result *res, struct qerr *err);
/* Kills a zygote that stopped answering; returns its pidfd (or -1) for the
 * caller to reap without blocking. */
int zygote_abandon(struct zygote *z);
/* Closes the socket and reaps the zygote. */
void zygote_stop(struct zygote *z);

#endif
