#include "runtime/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Large enough for any message of a link dump: the kernel sizes dump
 * messages after the reader's buffer, up to 32 KiB. */
#define NL_BUF_SIZE 65536
/* Our requests are a header, a fixed struct and a few short attributes. */
#define REQ_SIZE 512
/* No answer in this long means something is badly wrong; better an error
 * than a daemon stuck in recv(). */
#define RECV_TIMEOUT_SEC 5

/* ------------------------------------------------------------- requests */

struct req {
  union {
    struct nlmsghdr h;
    char buf[REQ_SIZE];
  } u;
  bool overflow; /* an attribute did not fit: refuse to send */
};

static void req_init(struct req *r, uint16_t type, uint16_t flags) {
  memset(r, 0, sizeof *r);
  r->u.h.nlmsg_len = NLMSG_HDRLEN;
  r->u.h.nlmsg_type = type;
  r->u.h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
}

/* Appends len zeroed bytes (padded to the netlink alignment). */
static void *req_put(struct req *r, size_t len) {
  size_t at = r->u.h.nlmsg_len, alen = NLMSG_ALIGN(len);
  if (r->overflow || at + alen > sizeof r->u.buf) {
    r->overflow = true;
    return NULL;
  }
  r->u.h.nlmsg_len = (uint32_t)(at + alen);
  return r->u.buf + at;
}

static struct rtattr *attr_put(struct req *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = req_put(r, RTA_LENGTH(len));
  if (!a)
    return NULL;
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len)
    memcpy(RTA_DATA(a), data, len);
  return a;
}

static void attr_str(struct req *r, unsigned short type, const char *s) {
  attr_put(r, type, s, strlen(s) + 1);
}

static void attr_u32(struct req *r, unsigned short type, uint32_t v) {
  attr_put(r, type, &v, sizeof v);
}

static struct rtattr *nest_begin(struct req *r, unsigned short type) {
  return attr_put(r, type, NULL, 0);
}

static void nest_end(struct req *r, struct rtattr *nest) {
  if (nest && !r->overflow)
    nest->rta_len = (unsigned short)(r->u.buf + r->u.h.nlmsg_len - (char *)nest);
}

static struct ifinfomsg *put_ifinfo(struct req *r, int index) {
  struct ifinfomsg *ifi = req_put(r, sizeof *ifi);
  if (ifi) {
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
  }
  return ifi;
}

/* ---------------------------------------------------------- transaction */

typedef int (*msg_fn)(const struct nlmsghdr *h, void *arg);

/* The kernel's own explanation of an error (NLMSGERR_ATTR_MSG), if any. */
static const char *ext_ack_msg(const struct nlmsghdr *h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
    return NULL;
  const struct nlmsgerr *e = NLMSG_DATA(h);
  size_t off = NLMSG_HDRLEN + sizeof *e;
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    off += e->msg.nlmsg_len - NLMSG_HDRLEN;
  if (off >= h->nlmsg_len)
    return NULL;
  int len = (int)(h->nlmsg_len - off);
  for (const struct rtattr *a = (const void *)((const char *)h + off); RTA_OK(a, len);
       a = RTA_NEXT(a, len)) {
    if (a->rta_type == NLMSGERR_ATTR_MSG && RTA_PAYLOAD(a) > 0 &&
        memchr(RTA_DATA(a), 0, RTA_PAYLOAD(a)))
      return RTA_DATA(a);
  }
  return NULL;
}

__attribute__((format(printf, 4, 0))) static int fail(struct qerr *err, int code,
                                                      const char *detail, const char *fmt,
                                                      va_list ap) {
  char what[256];
  vsnprintf(what, sizeof what, fmt, ap);
  if (detail)
    return qerr_set(err, code, "%s: %s (%s)", what, strerror(-code), detail);
  return qerr_set(err, code, "%s: %s", what, strerror(-code));
}

static int send_req(struct nl *s, struct req *r) {
  r->u.h.nlmsg_seq = ++s->seq;
  for (;;) {
    ssize_t n = send(s->fd, r->u.buf, r->u.h.nlmsg_len, 0);
    if (n >= 0)
      return n == (ssize_t)r->u.h.nlmsg_len ? 0 : -EMSGSIZE;
    if (errno != EINTR)
      return -errno;
  }
}

static ssize_t recv_msgs(struct nl *s) {
  struct iovec iov = {s->buf, NL_BUF_SIZE};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  for (;;) {
    ssize_t n = recvmsg(s->fd, &mh, 0);
    if (n >= 0)
      return (mh.msg_flags & MSG_TRUNC) ? -EMSGSIZE : n;
    if (errno == EAGAIN)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

/* Outcome of one received message: 1 done, 0 go on, <0 the request's error. */
static int one_msg(struct nl *s, const struct nlmsghdr *h, bool dump, msg_fn fn, void *arg,
                   int *fn_result, const char **detail) {
  if (h->nlmsg_seq != s->seq)
    return 0; /* the late answer to a request that timed out */
  if (h->nlmsg_type == NLMSG_ERROR) {
    const struct nlmsgerr *e = NLMSG_DATA(h);
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e))
      return -EBADMSG;
    if (e->error == 0)
      return 1;
    *detail = ext_ack_msg(h);
    return e->error < 0 ? e->error : -e->error;
  }
  if (h->nlmsg_type == NLMSG_DONE && dump) {
    const int *code = NLMSG_DATA(h);
    if (h->nlmsg_len >= NLMSG_LENGTH(sizeof *code) && *code < 0)
      return *code;
    return 1;
  }
  if (fn && *fn_result >= 0)
    *fn_result = fn(h, arg);
  return 0;
}

/* Sends r and reads until its ack (or, for a dump, its end), handing every
 * other message of the answer to fn. On failure the message is what fmt
 * names, the errno's text and the kernel's reason. */
__attribute__((format(printf, 6, 7))) static int talk(struct nl *s, struct req *r, msg_fn fn,
                                                      void *arg, struct qerr *err,
                                                      const char *fmt, ...) {
  bool dump = r->u.h.nlmsg_flags & NLM_F_DUMP;
  int fn_result = 0, res = 0;
  const char *detail = NULL;
  if (r->overflow)
    res = -EMSGSIZE;
  else
    res = send_req(s, r);
  while (res == 0) {
    ssize_t n = recv_msgs(s);
    if (n < 0) {
      res = (int)n;
      break;
    }
    int len = (int)n;
    for (const struct nlmsghdr *h = (const void *)s->buf; res == 0 && NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len))
      res = one_msg(s, h, dump, fn, arg, &fn_result, &detail);
  }
  if (res < 0) {
    va_list ap;
    va_start(ap, fmt);
    fail(err, res, detail, fmt, ap);
    va_end(ap);
    return res;
  }
  return fn_result;
}

/* -------------------------------------------------------------- socket */

int nl_open(struct nl *s, struct qerr *err) {
  *s = (struct nl)NL_INIT;
  s->buf = malloc(NL_BUF_SIZE);
  if (!s->buf)
    return qerr_set(err, ENOMEM, "netlink: no memory for the receive buffer");
  s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s->fd < 0) {
    int r = qerr_errno(err, "opening a NETLINK_ROUTE socket");
    nl_close(s);
    return r;
  }
  int one = 1;
  /* Best effort: the kernel's reasons in errors, and acks without a copy
   * of the request. Older kernels only lose detail. */
  setsockopt(s->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(s->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct timeval tv = {RECV_TIMEOUT_SEC, 0};
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int r = qerr_errno(err, "setting up a NETLINK_ROUTE socket");
    nl_close(s);
    return r;
  }
  return 0;
}

void nl_close(struct nl *s) {
  if (s->fd >= 0)
    close(s->fd);
  free(s->buf);
  *s = (struct nl)NL_INIT;
}

static int check_name(const char *name, struct qerr *err) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n >= IF_NAMESIZE)
    return qerr_set(err, EINVAL, "interface name \"%s\": must be 1 to %d bytes", name ? name : "",
                    IF_NAMESIZE - 1);
  return 0;
}

/* --------------------------------------------------------------- links */

static void copy_attr_str(char *dst, size_t cap, const struct rtattr *a) {
  size_t n = strnlen(RTA_DATA(a), RTA_PAYLOAD(a));
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, RTA_DATA(a), n);
  dst[n] = 0;
}

static void parse_linkinfo(const struct rtattr *info, struct nl_link *l) {
  int len = (int)RTA_PAYLOAD(info);
  for (const struct rtattr *a = RTA_DATA(info); RTA_OK(a, len); a = RTA_NEXT(a, len))
    if (a->rta_type == IFLA_INFO_KIND)
      copy_attr_str(l->kind, sizeof l->kind, a);
}

static int parse_link(const struct nlmsghdr *h, struct nl_link *l) {
  if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
    return -EBADMSG;
  const struct ifinfomsg *ifi = NLMSG_DATA(h);
  memset(l, 0, sizeof *l);
  l->index = ifi->ifi_index;
  l->flags = ifi->ifi_flags;
  int len = (int)IFLA_PAYLOAD(h);
  for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFLA_IFNAME)
      copy_attr_str(l->name, sizeof l->name, a);
    else if (a->rta_type == IFLA_IFALIAS)
      copy_attr_str(l->alias, sizeof l->alias, a);
    else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= sizeof(uint32_t))
      l->master = (int)*(const uint32_t *)RTA_DATA(a);
    else if (a->rta_type == IFLA_LINKINFO)
      parse_linkinfo(a, l);
  }
  return 0;
}

/* A malformed answer leaves index 0, which nl_link_get reports. */
static int got_link(const struct nlmsghdr *h, void *arg) {
  if (parse_link(h, arg) < 0)
    ((struct nl_link *)arg)->index = 0;
  return 0;
}

int nl_link_get(struct nl *s, const char *name, struct nl_link *out, struct qerr *err) {
  int r = check_name(name, err);
  if (r < 0)
    return r;
  struct req q;
  req_init(&q, RTM_GETLINK, NLM_F_ACK);
  put_ifinfo(&q, 0);
  attr_str(&q, IFLA_IFNAME, name);
  attr_u32(&q, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  out->index = 0;
  r = talk(s, &q, got_link, out, err, "looking up link %s", name);
  if (r == 0 && out->index == 0)
    return qerr_set(err, EBADMSG, "looking up link %s: no link in the kernel's answer", name);
  return r;
}

struct list_ctx {
  int (*fn)(const struct nl_link *l, void *arg);
  void *arg;
};

static int listed_link(const struct nlmsghdr *h, void *arg) {
  struct list_ctx *c = arg;
  struct nl_link l;
  if (parse_link(h, &l) < 0)
    return 0; /* not a link message: nothing for the caller */
  return c->fn(&l, c->arg);
}

int nl_link_list(struct nl *s, int (*fn)(const struct nl_link *l, void *arg), void *arg,
                 struct qerr *err) {
  struct req q;
  req_init(&q, RTM_GETLINK, NLM_F_DUMP);
  put_ifinfo(&q, 0);
  attr_u32(&q, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  struct list_ctx c = {fn, arg};
  return talk(s, &q, listed_link, &c, err, "listing links");
}

int nl_bridge_add(struct nl *s, const char *name, const uint8_t mac[6], struct qerr *err) {
  int r = check_name(name, err);
  if (r < 0)
    return r;
  struct req q;
  req_init(&q, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  put_ifinfo(&q, 0);
  attr_str(&q, IFLA_IFNAME, name);
  attr_put(&q, IFLA_ADDRESS, mac, 6);
  struct rtattr *info = nest_begin(&q, IFLA_LINKINFO);
  attr_str(&q, IFLA_INFO_KIND, "bridge");
  nest_end(&q, info);
  return talk(s, &q, NULL, NULL, err, "creating bridge %s", name);
}

int nl_veth_add(struct nl *s, const char *name, const char *peer, const uint8_t *peer_mac,
                int netns_fd, struct qerr *err) {
  int r = check_name(name, err);
  if (r < 0 || (r = check_name(peer, err)) < 0)
    return r;
  struct req q;
  req_init(&q, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  put_ifinfo(&q, 0);
  attr_str(&q, IFLA_IFNAME, name);
  struct rtattr *info = nest_begin(&q, IFLA_LINKINFO);
  attr_str(&q, IFLA_INFO_KIND, "veth");
  struct rtattr *data = nest_begin(&q, IFLA_INFO_DATA);
  /* The peer is described by its own ifinfomsg and attributes. */
  struct rtattr *p = nest_begin(&q, VETH_INFO_PEER);
  put_ifinfo(&q, 0);
  attr_str(&q, IFLA_IFNAME, peer);
  if (peer_mac)
    attr_put(&q, IFLA_ADDRESS, peer_mac, 6);
  if (netns_fd >= 0)
    attr_u32(&q, IFLA_NET_NS_FD, (uint32_t)netns_fd);
  nest_end(&q, p);
  nest_end(&q, data);
  nest_end(&q, info);
  return talk(s, &q, NULL, NULL, err, "creating veth pair %s/%s%s", name, peer,
              netns_fd >= 0 ? " (peer in the container's network namespace)" : "");
}

int nl_link_set_master(struct nl *s, const struct nl_link *l, int master_index,
                       struct qerr *err) {
  struct req q;
  req_init(&q, RTM_NEWLINK, NLM_F_ACK);
  put_ifinfo(&q, l->index);
  attr_u32(&q, IFLA_MASTER, (uint32_t)master_index);
  return talk(s, &q, NULL, NULL, err, "enslaving %s to ifindex %d", l->name, master_index);
}

int nl_link_set_up(struct nl *s, const struct nl_link *l, struct qerr *err) {
  struct req q;
  req_init(&q, RTM_NEWLINK, NLM_F_ACK);
  struct ifinfomsg *ifi = put_ifinfo(&q, l->index);
  if (ifi) {
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
  }
  return talk(s, &q, NULL, NULL, err, "setting %s up", l->name);
}

int nl_link_set_alias(struct nl *s, const struct nl_link *l, const char *alias,
                      struct qerr *err) {
  struct req q;
  req_init(&q, RTM_NEWLINK, NLM_F_ACK);
  put_ifinfo(&q, l->index);
  attr_str(&q, IFLA_IFALIAS, alias);
  return talk(s, &q, NULL, NULL, err, "setting the alias of %s", l->name);
}

int nl_link_del(struct nl *s, const char *name, struct qerr *err) {
  int r = check_name(name, err);
  if (r < 0)
    return r;
  struct req q;
  req_init(&q, RTM_DELLINK, NLM_F_ACK);
  put_ifinfo(&q, 0);
  attr_str(&q, IFLA_IFNAME, name);
  return talk(s, &q, NULL, NULL, err, "deleting link %s", name);
}

/* ------------------------------------------------------ addresses, routes */

static void put_addr(struct req *q, const struct nl_link *l, uint32_t addr, unsigned prefix) {
  struct ifaddrmsg *ifa = req_put(q, sizeof *ifa);
  if (ifa) {
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)l->index;
  }
  uint32_t a = htonl(addr);
  attr_put(q, IFA_LOCAL, &a, sizeof a);
  attr_put(q, IFA_ADDRESS, &a, sizeof a);
}

static void fmt_addr(uint32_t addr, char buf[INET_ADDRSTRLEN]) {
  uint32_t a = htonl(addr);
  inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

int nl_addr_add(struct nl *s, const struct nl_link *l, uint32_t addr, unsigned prefix,
                struct qerr *err) {
  struct req q;
  req_init(&q, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  put_addr(&q, l, addr, prefix);
  if (prefix < 31) {
    uint32_t b = htonl(addr | (UINT32_MAX >> prefix));
    attr_put(&q, IFA_BROADCAST, &b, sizeof b);
  }
  char a[INET_ADDRSTRLEN];
  fmt_addr(addr, a);
  return talk(s, &q, NULL, NULL, err, "adding address %s/%u to %s", a, prefix, l->name);
}

int nl_addr_del(struct nl *s, const struct nl_link *l, uint32_t addr, unsigned prefix,
                struct qerr *err) {
  struct req q;
  req_init(&q, RTM_DELADDR, NLM_F_ACK);
  put_addr(&q, l, addr, prefix);
  char a[INET_ADDRSTRLEN];
  fmt_addr(addr, a);
  return talk(s, &q, NULL, NULL, err, "removing address %s/%u from %s", a, prefix, l->name);
}

int nl_route_add_default(struct nl *s, const struct nl_link *l, uint32_t gateway,
                         struct qerr *err) {
  struct req q;
  req_init(&q, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  struct rtmsg *rt = req_put(&q, sizeof *rt);
  if (rt) {
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
  }
  uint32_t gw = htonl(gateway);
  attr_put(&q, RTA_GATEWAY, &gw, sizeof gw);
  attr_u32(&q, RTA_OIF, (uint32_t)l->index);
  char a[INET_ADDRSTRLEN];
  fmt_addr(gateway, a);
  return talk(s, &q, NULL, NULL, err, "adding default route via %s on %s", a, l->name);
}
