/* Between pool.c (building, taking, discarding) and pool_wait.c (requests
 * waiting for a sandbox being built); nothing else includes this. */
#ifndef QUILT_RUNTIME_POOL_INT_H
#define QUILT_RUNTIME_POOL_INT_H

#include "runtime/pool.h"

/* pool.c */
bool pool_same_rootfs(const struct warm *w, const char *image_id, const char *lower);
/* The index of the view of that rootfs, or POOL_MAX_VIEWS. */
unsigned pool_view_of(const struct warm_pool *p, const char *image_id, const char *lower);
/* A sandbox's state; a ready one gets its cgroup and log opened, a dead
 * one is counted as a failed build. */
enum spawn_state pool_check(struct warm_pool *p, struct warm *w);
void pool_push_ready(struct warm_pool *p, struct warm *w);
/* Takes w out of the ready list (pp points at the link to it). */
void pool_unlink_ready(struct warm_pool *p, struct warm **pp);

/* pool_wait.c */
/* Polls a building sandbox's status pipe on the ring (none once ready). */
void pool_watch_building(struct warm_pool *p, struct warm *w);
/* w left the pool: its poll's completion will find nothing. */
void pool_unwatch(struct warm *w);
/* Waiters for whom nothing is coming any more go on without (cold). */
void pool_settle_waiters(struct warm_pool *p);
/* Requests waiting for a sandbox of view i, up to max. */
unsigned pool_waiting_for(const struct warm_pool *p, unsigned i, unsigned max);

#endif
