/* Container directories (<root>/containers/<id>, where a container's log
 * lives), recycled instead of made and deleted for every container.
 *
 * Creating an inode costs in proportion to the inodes deleted recently on
 * ext4 without a journal: its allocator skips every inode whose deletion
 * is under 60 s old (6 min while the inode table block is dirty), reading
 * each one's on-disk dtime. At a few hundred containers a second that scan
 * (two inodes per container: the directory and its log) took a fifth of
 * the machine's CPU and grew as the run went on. So a removed container's
 * directory that holds nothing but its log is emptied (the log truncated,
 * a rotated one deleted) and renamed into <root>/containers/.spare; the
 * next container's directory is renamed out of there. Rename and truncate
 * allocate nothing. A directory with anything else in it is deleted. */
#ifndef QUILT_RUNTIME_CDIR_H
#define QUILT_RUNTIME_CDIR_H

#include "common/qerr.h"

/* Spare directories kept at most. */
#define CDIR_SPARES 64

/* Makes `dir` (its parent must exist or is made): a spare renamed, or a
 * new directory (mode 0700). An empty log file may be in it. */
int cdir_make(const char *dir, struct qerr *err);
/* Empties `dir` (a container's directory nobody uses any more) into the
 * spares, or deletes it: when it holds more than its log, or the spares
 * are full. */
int cdir_recycle(const char *dir, struct qerr *err);

#endif
