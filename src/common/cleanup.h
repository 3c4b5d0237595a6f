/* Scope-bound release of fds, heap buffers, dirs and FILEs, as crun does:
 *   cleanup_fd int fd = open(...);   closed when fd leaves scope
 * Steal ownership with take_fd()/take_ptr() before returning it. */
#ifndef QUILT_CLEANUP_H
#define QUILT_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free_fn(void *p) { free(*(void **)p); }
static inline void cleanup_fd_fn(int *fd) {
  if (*fd >= 0)
    close(*fd);
}
static inline void cleanup_dir_fn(DIR **d) {
  if (*d)
    closedir(*d);
}
static inline void cleanup_file_fn(FILE **f) {
  if (*f)
    fclose(*f);
}

#define cleanup_free __attribute__((cleanup(cleanup_free_fn)))
#define cleanup_fd __attribute__((cleanup(cleanup_fd_fn)))
#define cleanup_dir __attribute__((cleanup(cleanup_dir_fn)))
#define cleanup_file __attribute__((cleanup(cleanup_file_fn)))

static inline int take_fd(int *fd) {
  int r = *fd;
  *fd = -1;
  return r;
}
#define take_ptr(p)                                                            \
  ({                                                                           \
    __typeof__(p) _tmp = (p);                                                  \
    (p) = NULL;                                                                \
    _tmp;                                                                      \
  })

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
