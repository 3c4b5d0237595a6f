/* Durable daemon state in SQLite (WAL) under the root dir: containers with
 * their specs and exit status, and the event history. Writes are small
 * (batched per loop turn by the daemon); with WAL and synchronous=NORMAL they append to
 * the WAL in the page cache and fsync only at checkpoints, so the ring is
 * not held up by disk flushes (see docs/state.md). */
#ifndef QUILT_RUNTIME_STORE_H
#define QUILT_RUNTIME_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qerr.h"

struct store;

struct container_record {
  const char *id;          /* 64 hex chars */
  const char *name;        /* may be "" */
  int state;               /* Quilt__V1__ContainerState value */
  const uint8_t *spec;     /* packed quilt.v1.ContainerSpec */
  size_t spec_len;
  int32_t pid;
  int32_t exit_code, exit_signal;
  bool oom_killed;
  const char *failure;     /* "" when none */
  int64_t created_ns, started_ns, finished_ns;
  const char *image_id;    /* "" when none */
  const char *rootfs;      /* prepared rootfs path, "" when none */
};

struct event_record {
  int64_t ts_ns;
  int type;                /* Quilt__V1__EventType value */
  const char *container_id, *container_name, *detail;
};

/* Opens (creating if needed) the database at path; migrates the schema. */
int store_open(struct store **out, const char *path, struct qerr *err);
void store_close(struct store *s);
/* Inserts or replaces the container row with r->id. */
int store_put_container(struct store *s, const struct container_record *r, struct qerr *err);
int store_delete_container(struct store *s, const char *id, struct qerr *err);
/* Calls fn for every stored container, oldest first; the record's pointers
 * are valid only during the call. A negative return from fn stops and is
 * returned. */
int store_load_containers(struct store *s,
                          int (*fn)(void *arg, const struct container_record *r), void *arg,
                          struct qerr *err);
int store_add_event(struct store *s, const struct event_record *e, struct qerr *err);
/* Events with ts_ns >= since_ns, oldest first, at most limit (0: all). */
int store_load_events(struct store *s, int64_t since_ns, unsigned limit,
                      int (*fn)(void *arg, const struct event_record *e), void *arg,
                      struct qerr *err);
/* Keeps the event table at most max_rows rows (oldest dropped). */
int store_trim_events(struct store *s, unsigned max_rows, struct qerr *err);

/* With batching on, writes join one transaction until store_commit: the
 * daemon commits once per loop turn, before the turn's replies go out, so
 * an answered change is in the WAL and a turn that touched many containers
 * writes the WAL once. */
void store_set_batching(struct store *s, bool on);
int store_commit(struct store *s, struct qerr *err);

#endif
