/* A minimal rtnetlink client: the handful of link, address and route
 * requests bridge networking needs, over a raw NETLINK_ROUTE socket.
 *
 * Every request asks for an acknowledgement and waits for it, so a call
 * returns once the kernel has done the change (or refused it). rtnetlink
 * handles a request inside sendmsg(), so the wait is for a reply already
 * queued: microseconds, and a receive timeout guards against the
 * unexpected. Errors are the kernel's -errno, with a message naming the
 * interface and, where the kernel gives one (extended ack), its reason.
 *
 * A socket works in the network namespace it was created in, whatever
 * namespace the process is in later: that is how netbridge configures a
 * container's namespace. */
#ifndef QUILT_RUNTIME_NETLINK_H
#define QUILT_RUNTIME_NETLINK_H

#include <net/if.h>
#include <stdint.h>

#include "common/qerr.h"

struct nl {
  int fd;       /* -1: closed */
  uint32_t seq; /* of the last request */
  char *buf;    /* receive buffer, NL_BUF_SIZE bytes */
};
#define NL_INIT {-1, 0, NULL}

/* What nl_link_get and nl_link_list report about a link. */
struct nl_link {
  int index;
  int master;           /* ifindex of the bridge it is enslaved to; 0: none */
  unsigned flags;       /* IFF_* */
  char name[IF_NAMESIZE];
  char kind[16];        /* "bridge", "veth", ...; "" for a physical device */
  char alias[64];       /* IFLA_IFALIAS; "" when unset */
};

/* Opens a socket in the calling thread's current network namespace. */
int nl_open(struct nl *s, struct qerr *err);
void nl_close(struct nl *s);

/* -ENODEV (message naming it) when no link has that name. */
int nl_link_get(struct nl *s, const char *name, struct nl_link *out, struct qerr *err);
/* Calls fn for every link. A negative return from fn stops the calls and,
 * once the dump is drained, is returned: fn fills its own message. */
int nl_link_list(struct nl *s, int (*fn)(const struct nl_link *l, void *arg), void *arg,
                 struct qerr *err);

/* A bridge with the given MAC address: a bridge left to pick its own takes
 * the lowest one among its ports, so the gateway's MAC would change as
 * containers come and go and their ARP caches would go stale. */
int nl_bridge_add(struct nl *s, const char *name, const uint8_t mac[6], struct qerr *err);
/* A veth pair: `name` here, `peer` created directly in the network
 * namespace netns_fd refers to (-1: here), with MAC address peer_mac (NULL:
 * a random one). Creating the peer in place saves a move and a rename, and
 * the peer never exists in the host namespace under a temporary name. */
int nl_veth_add(struct nl *s, const char *name, const char *peer, const uint8_t *peer_mac,
                int netns_fd, struct qerr *err);
int nl_link_set_master(struct nl *s, const struct nl_link *l, int master_index,
                       struct qerr *err);
int nl_link_set_up(struct nl *s, const struct nl_link *l, struct qerr *err);
int nl_link_set_alias(struct nl *s, const struct nl_link *l, const char *alias,
                      struct qerr *err);
/* -ENODEV when there is no such link. */
int nl_link_del(struct nl *s, const char *name, struct qerr *err);

/* IPv4 address (host byte order) with its prefix; -EEXIST when present. */
int nl_addr_add(struct nl *s, const struct nl_link *l, uint32_t addr, unsigned prefix,
                struct qerr *err);
/* -EADDRNOTAVAIL when the link does not have it. */
int nl_addr_del(struct nl *s, const struct nl_link *l, uint32_t addr, unsigned prefix,
                struct qerr *err);
/* Default IPv4 route via gateway (host byte order) out of l. */
int nl_route_add_default(struct nl *s, const struct nl_link *l, uint32_t gateway,
                         struct qerr *err);

#endif
