/* IPv4 address management for the bridge network: a subnet and a bitmap of
 * the host numbers in it that are leased. Pure, no I/O: the daemon keeps one
 * per bridge in memory. Leases are not persisted because they cannot
 * outlive the daemon: at restart it kills the containers that held them.
 *
 * Host number 0 (the network), 1 (the gateway, on the bridge) and the last
 * one (broadcast) are never leased. Allocation takes the lowest free
 * address, so a released address is the next one handed out. */
#ifndef QUILT_RUNTIME_IPAM_H
#define QUILT_RUNTIME_IPAM_H

#include <stdint.h>

#include "common/qerr.h"

/* Prefixes outside this range are refused: shorter ones would need a bitmap
 * of megabytes, longer ones leave no address for a container. */
#define IPAM_MIN_PREFIX 8
#define IPAM_MAX_PREFIX 30

/* "255.255.255.255" and a NUL. */
#define IPAM_ADDRSTRLEN 16

struct ipam_subnet {
  uint32_t net;    /* network address, host byte order */
  unsigned prefix; /* IPAM_MIN_PREFIX..IPAM_MAX_PREFIX */
};

struct ipam {
  struct ipam_subnet sn;
  char cidr[24];   /* "10.88.0.0/16", for messages */
  uint64_t *used;  /* bit n: host number n is taken (or reserved) */
  uint32_t size;   /* host numbers in the subnet, 2^(32-prefix) */
  uint32_t nfree;  /* leasable addresses not leased */
  uint32_t hint;   /* no free host number below this one */
};

/* Parses "a.b.c.d/len" strictly: dotted-quad decimal, a prefix in range,
 * no host bits set, nothing around it. -EINVAL with a message otherwise. */
int ipam_parse_subnet(const char *cidr, struct ipam_subnet *out, struct qerr *err);
uint32_t ipam_gateway(const struct ipam_subnet *sn);
uint32_t ipam_broadcast(const struct ipam_subnet *sn);
/* Formats a host-byte-order address into buf (IPAM_ADDRSTRLEN bytes). */
void ipam_ntoa(uint32_t addr, char buf[IPAM_ADDRSTRLEN]);

int ipam_init(struct ipam *a, const char *cidr, struct qerr *err);
void ipam_fini(struct ipam *a);
/* Leases the lowest free address; -ENOSPC naming the subnet when none is
 * left. */
int ipam_alloc(struct ipam *a, uint32_t *addr, struct qerr *err);
/* Returns a leased address to the pool: -EINVAL for an address outside the
 * subnet or a reserved one, -ENOENT for one not leased. */
int ipam_release(struct ipam *a, uint32_t addr, struct qerr *err);

#endif
