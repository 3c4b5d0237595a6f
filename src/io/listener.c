#include "io/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define BACKLOG 1024

static void arm(struct listener *l) {
  struct io_uring_sqe *sqe = qring_sqe(l->ring);
  if (l->multishot)
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
  else
    io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
  qop_bind(sqe, &l->op);
  l->armed = true;
}

static void on_accept_cqe(struct qop *op, int res, uint32_t flags) {
  struct listener *l = container_of(op, struct listener, op);
  bool more = flags & IORING_CQE_F_MORE;
  if (!more)
    l->armed = false;
  if (l->fd < 0) {
    if (res >= 0)
      close(res); /* raced with close */
    return;
  }
  if (res >= 0) {
    l->on_accept(l, res);
  } else if (res == -EINVAL && l->multishot) {
    /* The probe guessed wrong: this kernel has no multishot accept. */
    log_info("multishot accept unsupported; falling back to single-shot");
    l->multishot = false;
  } else if (res != -ECANCELED) {
    log_warn("accept: %s", strerror(-res));
  }
  if (!l->armed && l->fd >= 0)
    arm(l);
}

/* Whoever can write the directory can swap the socket for their own and
 * collect what clients send; the sticky bit stops that for /tmp-style dirs. */
static int check_socket_dir(const char *path, struct qerr *err) {
  char buf[sizeof ((struct sockaddr_un *)0)->sun_path];
  snprintf(buf, sizeof buf, "%s", path);
  const char *dir = dirname(buf);
  struct stat st;
  if (stat(dir, &st) < 0)
    return qerr_errno(err, "socket directory %s", dir);
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    return qerr_set(err, EPERM,
                    "socket directory %s is world-writable: anyone could replace the socket; "
                    "use a directory only root can write (e.g. /run/quilt)", dir);
  if (st.st_mode & S_IWOTH)
    log_warn("socket directory %s is world-writable (sticky); prefer one only root can write",
             dir);
  return 0;
}

/* Root and the members of group `quilt` may connect; without that group,
 * root alone (an explicit chown so a setgid directory's group does not leak
 * in). */
static int set_socket_group(const char *path, struct qerr *err) {
  const struct group *gr = getgrnam(LISTENER_SOCKET_GROUP);
  gid_t gid = gr ? gr->gr_gid : getegid();
  if (chown(path, (uid_t)-1, gid) < 0)
    return qerr_errno(err, "setting the group of %s", path);
  if (gr)
    log_info("socket %s: mode 0660, group %s", path, LISTENER_SOCKET_GROUP);
  else
    log_info("socket %s: mode 0660, gid %u (no group '%s')", path, (unsigned)gid,
             LISTENER_SOCKET_GROUP);
  return 0;
}

int listener_open_unix(struct listener *l, const char *path, struct qerr *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return qerr_set(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                    sizeof sa.sun_path - 1);
  strcpy(sa.sun_path, path);
  if (check_socket_dir(path, err) < 0)
    return err->code;
  cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return qerr_errno(err, "creating Unix socket");
  /* A stale socket from a crashed daemon is replaced; a live one is not. */
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
    return qerr_set(err, EADDRINUSE, "another quiltd is already serving %s", path);
  close(fd);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return qerr_errno(err, "creating Unix socket");
  unlink(path);
  mode_t old = umask(0117);
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc < 0)
    return qerr_errno(err, "binding %s", sa.sun_path);
  /* Group and mode before listen(): until then nobody can connect. */
  rc = set_socket_group(sa.sun_path, err);
  if (rc == 0 && (chmod(sa.sun_path, 0660) < 0 || listen(fd, BACKLOG) < 0))
    rc = qerr_errno(err, "listening on %s", sa.sun_path);
  if (rc < 0) {
    unlink(sa.sun_path);
    return rc;
  }
  *l = (struct listener){.fd = take_fd(&fd), .is_unix = true};
  snprintf(l->path, sizeof l->path, "%s", path);
  return 0;
}

static int split_host_port(const char *hp, char *host, size_t hcap, char *port, size_t pcap) {
  const char *colon = strrchr(hp, ':');
  if (!colon || colon[1] == 0)
    return -EINVAL;
  size_t hlen = (size_t)(colon - hp);
  if (hlen >= 2 && hp[0] == '[' && hp[hlen - 1] == ']') {
    hp++;
    hlen -= 2;
  }
  if (hlen >= hcap || strlen(colon + 1) >= pcap)
    return -EINVAL;
  memcpy(host, hp, hlen);
  host[hlen] = 0;
  strcpy(port, colon + 1);
  return 0;
}

int listener_open_tcp(struct listener *l, const char *host_port, struct qerr *err) {
  char host[256], port[16];
  if (split_host_port(host_port, host, sizeof host, port, sizeof port) < 0)
    return qerr_set(err, EINVAL, "--listen %s: expected HOST:PORT", host_port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (gai != 0)
    return qerr_set(err, EINVAL, "--listen %s: %s", host_port, gai_strerror(gai));
  int rc = -EADDRNOTAVAIL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    cleanup_fd int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      rc = qerr_errno(err, "creating TCP socket");
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
      rc = qerr_errno(err, "listening on %s", host_port);
      continue;
    }
    *l = (struct listener){.fd = take_fd(&fd)};
    rc = 0;
    break;
  }
  freeaddrinfo(res);
  return rc;
}

void listener_start(struct listener *l, struct qring *ring,
                    void (*on_accept)(struct listener *l, int fd)) {
  l->ring = ring;
  l->on_accept = on_accept;
  l->op.fn = on_accept_cqe;
  l->multishot = ring->feat.accept_multishot;
  arm(l);
}

void listener_close(struct listener *l) {
  if (l->fd < 0)
    return;
  if (l->armed && l->ring) {
    struct io_uring_sqe *sqe = qring_sqe(l->ring);
    io_uring_prep_cancel(sqe, &l->op, 0);
  }
  /* shutdown() wakes a pending accept so the listener is dead at once. */
  shutdown(l->fd, SHUT_RDWR);
  close(l->fd);
  l->fd = -1;
  if (l->is_unix && l->path[0])
    unlink(l->path);
}
