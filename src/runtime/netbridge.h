/* Bridge networking for containers: a Linux bridge with the subnet's
 * gateway address, one veth pair per container (the host side enslaved to
 * the bridge, the peer "eth0" in the container's network namespace with an
 * address and a default route via the gateway), and NAT for egress through
 * iptables. docs/network.md explains the whole picture.
 *
 * Single-threaded, synchronous: each call makes a few netlink requests
 * (microseconds each) and returns when the kernel has applied them.
 * netbridge_open and netbridge_close(remove_rules) also run iptables a few
 * times (milliseconds each); the daemon calls them at start and at exit.
 *
 * Ownership is marked in the kernel, so it survives a crash: a bridge
 * created here carries the alias NETBRIDGE_ALIAS, and every iptables rule
 * the comment "quilt:<bridge>". Only marked objects are ever removed; a
 * bridge somebody else made is used but left in place. */
#ifndef QUILT_RUNTIME_NETBRIDGE_H
#define QUILT_RUNTIME_NETBRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/qerr.h"

#define NETBRIDGE_DEFAULT_BRIDGE "quilt0"
#define NETBRIDGE_DEFAULT_SUBNET "10.88.0.0/16"
#define NETBRIDGE_DEFAULT_IPTABLES "/usr/sbin/iptables"
#define NETBRIDGE_ALIAS "quiltd bridge"

struct netbridge_config {
  const char *bridge;   /* NULL: NETBRIDGE_DEFAULT_BRIDGE; at most 15 bytes */
  const char *subnet;   /* NULL: NETBRIDGE_DEFAULT_SUBNET; /8 to /30, the
                           gateway (host .1) is the bridge's address */
  const char *dns;      /* the containers' nameserver (IPv4); NULL: the
                           host's usable ones (resolvconf.h), or none */
  const char *iptables; /* NULL: NETBRIDGE_DEFAULT_IPTABLES */
};

struct netbridge; /* opaque; the daemon owns it */

/* What a container got; strings are NUL-terminated. */
struct net_lease {
  char addr[16];    /* "10.88.0.2" */
  unsigned prefix;  /* 16 */
  char gateway[16]; /* "10.88.0.1" */
  char host_if[16]; /* "qv" + the first 8 characters of the id */
};

/* Creates the bridge, or adopts an existing one of that name, gives it the
 * gateway address and sets it up; turns net.ipv4.ip_forward on (and
 * leaves it on); installs, unless already there (iptables -C first):
 *   -t nat    POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE
 *   -t filter FORWARD -i BRIDGE -j ACCEPT
 *   -t filter FORWARD -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED
 *             -j ACCEPT
 * and reads the containers' resolv.conf (from the host's once, here).
 * Errors: EINVAL for a bad config; FAILED_PRECONDITION when iptables is
 * missing or BRIDGE exists but is not a bridge; the kernel's or iptables'
 * error otherwise, after undoing what this call had set up. */
int netbridge_open(struct netbridge **out, const struct netbridge_config *cfg,
                   struct qerr *err);

/* Connects a container: leases the lowest free address, creates the veth
 * pair with the host side on the bridge and up, "eth0" inside netns_fd
 * (an open /proc/PID/ns/net) up with the address and a default route via
 * the gateway. lo is left alone. EEXIST when the id is already attached
 * or another attached id starts with the same 8 characters; ENOSPC when
 * the subnet is full; EINVAL for an id not starting with 8 lowercase hex
 * characters or the daemon's own namespace. Nothing is left on failure. */
int netbridge_attach(struct netbridge *b, const char *container_id, int netns_fd,
                     struct net_lease *out, struct qerr *err);

/* Deletes the container's host veth (gone already when its namespace
 * died: fine) and frees its address. An unknown id is not an error. On a
 * failed deletion the lease is kept, so a retry can finish the job. */
int netbridge_detach(struct netbridge *b, const char *container_id, struct qerr *err);

/* Copies the text of a container's /etc/resolv.conf into out; returns its
 * length, or -ENOSPC when cap is too small. */
int netbridge_resolv_conf(const struct netbridge *b, char *out, size_t cap);

/* For daemon start: deletes veths named qv<8 hex> that are enslaved to the
 * bridge but belong to no lease, left by a daemon that crashed while a
 * container's namespace outlived it. Returns how many it deleted. */
int netbridge_sweep(struct netbridge *b, struct qerr *err);

/* Frees b. With remove_rules, first removes what is marked as ours: the
 * iptables rules, the bridge (or, on an adopted bridge, the gateway address
 * this open added) and the host veths of leases still held. Failures are
 * logged. ip_forward stays on. NULL is fine. */
void netbridge_close(struct netbridge *b, bool remove_rules);

#endif
