#include "runtime/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t mask_of(unsigned prefix) {
  return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* The prefix length: one or two decimal digits, nothing else (strtoul would
 * take signs, spaces and hex). */
static int parse_prefix(const char *s, unsigned *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 2)
    return -EINVAL;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return 0;
}

int ipam_parse_subnet(const char *cidr, struct ipam_subnet *out, struct qerr *err) {
  const char *slash = cidr ? strchr(cidr, '/') : NULL;
  if (!slash)
    return qerr_set(err, EINVAL, "subnet \"%s\" is not of the form a.b.c.d/len", cidr ? cidr : "");
  char addr[IPAM_ADDRSTRLEN];
  size_t alen = (size_t)(slash - cidr);
  struct in_addr in;
  if (alen >= sizeof addr)
    return qerr_set(err, EINVAL, "subnet \"%s\": bad IPv4 address", cidr);
  memcpy(addr, cidr, alen);
  addr[alen] = 0;
  /* inet_pton takes only dotted-quad decimal (no "10.1", no octal). */
  if (inet_pton(AF_INET, addr, &in) != 1)
    return qerr_set(err, EINVAL, "subnet \"%s\": bad IPv4 address \"%s\"", cidr, addr);
  unsigned prefix;
  if (parse_prefix(slash + 1, &prefix) < 0)
    return qerr_set(err, EINVAL, "subnet \"%s\": bad prefix length \"%s\"", cidr, slash + 1);
  if (prefix < IPAM_MIN_PREFIX || prefix > IPAM_MAX_PREFIX)
    return qerr_set(err, EINVAL, "subnet \"%s\": prefix length must be %d to %d", cidr,
                    IPAM_MIN_PREFIX, IPAM_MAX_PREFIX);
  uint32_t a = ntohl(in.s_addr);
  if (a & ~mask_of(prefix)) {
    char net[IPAM_ADDRSTRLEN];
    ipam_ntoa(a & mask_of(prefix), net);
    return qerr_set(err, EINVAL, "subnet \"%s\" has host bits set (the network is %s/%u)", cidr,
                    net, prefix);
  }
  out->net = a;
  out->prefix = prefix;
  return 0;
}

uint32_t ipam_gateway(const struct ipam_subnet *sn) { return sn->net + 1; }

uint32_t ipam_broadcast(const struct ipam_subnet *sn) { return sn->net | ~mask_of(sn->prefix); }

void ipam_ntoa(uint32_t addr, char buf[IPAM_ADDRSTRLEN]) {
  snprintf(buf, IPAM_ADDRSTRLEN, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255,
           (addr >> 8) & 255, addr & 255);
}

static bool bit_get(const struct ipam *a, uint32_t n) { return a->used[n / 64] >> (n % 64) & 1; }
static void bit_set(struct ipam *a, uint32_t n) { a->used[n / 64] |= UINT64_C(1) << (n % 64); }
static void bit_clear(struct ipam *a, uint32_t n) { a->used[n / 64] &= ~(UINT64_C(1) << (n % 64)); }

int ipam_init(struct ipam *a, const char *cidr, struct qerr *err) {
  memset(a, 0, sizeof *a);
  int r = ipam_parse_subnet(cidr, &a->sn, err);
  if (r < 0)
    return r;
  a->size = UINT32_C(1) << (32 - a->sn.prefix);
  /* size is a multiple of 64 only from /26 down; round the bitmap up. */
  a->used = calloc((a->size + 63) / 64, sizeof *a->used);
  if (!a->used)
    return qerr_set(err, ENOMEM, "subnet %s: no memory for the address bitmap", cidr);
  snprintf(a->cidr, sizeof a->cidr, "%s", cidr);
  bit_set(a, 0);
  bit_set(a, 1);
  bit_set(a, a->size - 1);
  a->nfree = a->size - 3;
  a->hint = 2;
  return 0;
}

void ipam_fini(struct ipam *a) {
  free(a->used);
  a->used = NULL;
}

/* The first clear bit at or above `from`, a word at a time. */
static uint32_t first_free(const struct ipam *a, uint32_t from) {
  for (uint32_t w = from / 64; w * 64 < a->size; w++) {
    uint64_t bits = a->used[w];
    if (w == from / 64)
      bits |= (UINT64_C(1) << (from % 64)) - 1; /* ignore bits below from */
    if (bits != UINT64_MAX)
      return w * 64 + (uint32_t)__builtin_ctzll(~bits);
  }
  return a->size;
}

int ipam_alloc(struct ipam *a, uint32_t *addr, struct qerr *err) {
  if (a->nfree == 0)
    return qerr_set(err, ENOSPC, "subnet %s is exhausted: all %u container addresses are leased",
                    a->cidr, a->size - 3);
  uint32_t n = first_free(a, a->hint);
  if (n >= a->size - 1) /* nfree says otherwise: the bitmap is corrupt */
    return qerr_set(err, EIO, "subnet %s: no free address found though %u should be", a->cidr,
                    a->nfree);
  bit_set(a, n);
  a->nfree--;
  a->hint = n + 1;
  *addr = a->sn.net + n;
  return 0;
}

int ipam_release(struct ipam *a, uint32_t addr, struct qerr *err) {
  char s[IPAM_ADDRSTRLEN];
  ipam_ntoa(addr, s);
  if ((addr & mask_of(a->sn.prefix)) != a->sn.net)
    return qerr_set(err, EINVAL, "releasing %s: not in subnet %s", s, a->cidr);
  uint32_t n = addr - a->sn.net;
  if (n <= 1 || n == a->size - 1)
    return qerr_set(err, EINVAL, "releasing %s: reserved in subnet %s, never leased", s, a->cidr);
  if (!bit_get(a, n))
    return qerr_set(err, ENOENT, "releasing %s: not leased", s);
  bit_clear(a, n);
  a->nfree++;
  if (n < a->hint)
    a->hint = n;
  return 0;
}
