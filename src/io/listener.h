/* Listening sockets: a Unix socket (mode 0660, group `quilt` when that
 * group exists, in a directory others cannot write) and, when asked, TCP.
 * Accepts are multishot where the kernel has them, else re-armed singly. */
#ifndef QUILT_IO_LISTENER_H
#define QUILT_IO_LISTENER_H

#include <stdbool.h>

#include "common/qerr.h"
#include "io/ring.h"

#define LISTENER_SOCKET_GROUP "quilt"

struct listener {
  struct qop op;
  int fd;
  bool is_unix;
  bool multishot;
  bool armed;
  char path[108];   /* Unix socket path, unlinked on close */
  struct qring *ring;
  void (*on_accept)(struct listener *l, int fd);
};

int listener_open_unix(struct listener *l, const char *path, struct qerr *err);
int listener_open_tcp(struct listener *l, const char *host_port, struct qerr *err);
void listener_start(struct listener *l, struct qring *ring,
                    void (*on_accept)(struct listener *l, int fd));
/* Stops accepting: cancels the accept, closes the fd, removes the socket file. */
void listener_close(struct listener *l);

#endif
