/* Bridge networking (runtime/netbridge.c) against the real kernel and
 * iptables. Needs root; exits 77 (skip) otherwise.
 *
 * The whole test runs in a network namespace of its own (unshare at
 * start), which stands in for the host's: the bridge, the gateway address,
 * ip_forward and the iptables rules all live there, so the test can never
 * touch the machine's real interfaces or firewall, and whatever it leaves
 * when it fails or crashes dies with the namespace when the process exits.
 * "Containers" are forked children that unshare a network namespace of
 * their own and wait for orders. Traffic goes only from a child's
 * namespace to the gateway address on the test's bridge.
 *
 * The tests run in order on shared state (struct fx): open, attach and
 * connect, attach failures, detach and reuse, sweep, close. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "grpc/status.h"
#include "runtime/netbridge.h"
#include "runtime/netlink.h"

#define SUBNET "10.213.0.0/24"
#define GATEWAY "10.213.0.1"
#define IPTABLES "/usr/sbin/iptables"
#define MAX_KIDS 6
#ifndef IFF_LOWER_UP /* linux/if.h has it, but clashes with net/if.h */
#define IFF_LOWER_UP 0x10000
#endif

/* A child standing in for a container: its own network namespace. */
struct kid {
  pid_t pid; /* 0: none */
  int cmd;   /* write end: orders */
  int res;   /* read end: answers */
  int nsfd;  /* its /proc/PID/ns/net */
};

struct fx {
  char bridge[IF_NAMESIZE]; /* "qtest<pid>" */
  char comment[32];         /* "quilt:qtest<pid>", on our rules */
  struct netbridge *b;
  struct kid kids[MAX_KIDS];
};

/* An order to a child: check eth0 and the route, then connect. */
struct check_req {
  char addr[16];
  unsigned prefix;
  char gateway[16];
  uint16_t port;
};

/* ------------------------------------------------------------- helpers */

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool link_exists(const char *name) { return if_nametoindex(name) != 0; }

/* Lines of iptables-save that carry our comment: our rules, in every table. */
static int count_rules(const struct fx *f) {
  FILE *p = popen("/usr/sbin/iptables-save 2>/dev/null", "r");
  assert_non_null(p);
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, p))
    if (strstr(line, f->comment))
      n++;
  pclose(p);
  return n;
}

/* `iptables -C` for one of the three rules, spelled out independently of
 * the module's own argv. */
static bool rule_present(const struct fx *f, const char *table_chain_rule) {
  char cmd[512];
  const char *target = strstr(table_chain_rule, "POSTROUTING") ? "MASQUERADE" : "ACCEPT";
  snprintf(cmd, sizeof cmd, IPTABLES " -w %s -m comment --comment %s -j %s >/dev/null 2>&1",
           table_chain_rule, f->comment, target);
  return system(cmd) == 0;
}

static void expect_rules(const struct fx *f, bool present) {
  char nat[128], out[64], back[128];
  snprintf(nat, sizeof nat, "-t nat -C POSTROUTING -s " SUBNET " ! -o %s", f->bridge);
  snprintf(out, sizeof out, "-t filter -C FORWARD -i %s", f->bridge);
  snprintf(back, sizeof back,
           "-t filter -C FORWARD -o %s -m conntrack --ctstate RELATED,ESTABLISHED", f->bridge);
  assert_int_equal(rule_present(f, nat), present);
  assert_int_equal(rule_present(f, out), present);
  assert_int_equal(rule_present(f, back), present);
  assert_int_equal(count_rules(f), present ? 3 : 0);
}

/* The IPv4 address of `name` in the current namespace ("" if none), with
 * its prefix, and the link's flags. */
static void if_state(const char *name, char addr[16], unsigned *prefix, unsigned *flags) {
  struct ifaddrs *ifs, *i;
  addr[0] = 0;
  *prefix = 0;
  *flags = 0;
  if (getifaddrs(&ifs) < 0)
    return;
  for (i = ifs; i; i = i->ifa_next) {
    if (strcmp(i->ifa_name, name) != 0)
      continue;
    *flags = i->ifa_flags;
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, 16);
      uint32_t m = ntohl(((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
      *prefix = (unsigned)__builtin_popcount(m);
    }
  }
  freeifaddrs(ifs);
}

static int read_text(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0)
    return -errno;
  buf[n] = 0;
  return (int)n;
}

/* ------------------------------------------------------------ children */

/* /proc/net/route of the child's namespace: a default route via gw out of
 * eth0? The kernel prints addresses as the raw 32-bit value. */
static bool has_default_route(const char *gw) {
  FILE *f = fopen("/proc/net/route", "r");
  if (!f)
    return false;
  char line[256], ifname[32];
  unsigned dst, via, flags;
  bool found = false;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "%31s %x %x %x", ifname, &dst, &via, &flags) == 4 && dst == 0 &&
        via == inet_addr(gw) && strcmp(ifname, "eth0") == 0)
      found = true;
  fclose(f);
  return found;
}

static int kid_connect(const struct check_req *q, char *msg, size_t cap) {
  struct timeval tv = {5, 0};
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(q->port)};
  inet_pton(AF_INET, q->gateway, &sa.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[8] = {0};
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0 || write(s, "ping", 4) != 4 ||
      read(s, buf, 4) != 4 || memcmp(buf, "pong", 4) != 0) {
    snprintf(msg, cap, "TCP to %s:%u: %s (got \"%s\")", q->gateway, q->port, strerror(errno),
             buf);
    close(s);
    return -1;
  }
  close(s);
  return 0;
}

/* eth0's MAC is 02:51 followed by the four bytes of its address. */
static bool mac_follows_addr(const char *addr) {
  uint8_t want[6] = {0x02, 0x51};
  inet_pton(AF_INET, addr, want + 2);
  struct ifaddrs *ifs, *i;
  bool ok = false;
  if (getifaddrs(&ifs) < 0)
    return false;
  for (i = ifs; i; i = i->ifa_next)
    if (strcmp(i->ifa_name, "eth0") == 0 && i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET)
      ok = memcmp(((struct sockaddr_ll *)i->ifa_addr)->sll_addr, want, 6) == 0;
  freeifaddrs(ifs);
  return ok;
}

static void kid_check(const struct check_req *q, char *msg, size_t cap) {
  char addr[16];
  unsigned prefix, flags, loflags;
  if_state("eth0", addr, &prefix, &flags);
  if (strcmp(addr, q->addr) != 0 || prefix != q->prefix) {
    snprintf(msg, cap, "eth0 has \"%s/%u\", want %s/%u", addr, prefix, q->addr, q->prefix);
    return;
  }
  /* Carrier (LOWER_UP), not RUNNING: the kernel sets RUNNING from the
   * carrier in a batched work item, up to a second later; packets flow
   * before that. */
  if (!(flags & IFF_UP) || !(flags & IFF_LOWER_UP)) {
    snprintf(msg, cap, "eth0 is not up with a carrier (flags %#x)", flags);
    return;
  }
  if (!mac_follows_addr(q->addr)) {
    snprintf(msg, cap, "eth0's MAC is not 02:51 and the bytes of %s", q->addr);
    return;
  }
  if_state("lo", addr, &prefix, &loflags);
  if (loflags & IFF_UP) {
    snprintf(msg, cap, "lo was set up; it should be left alone");
    return;
  }
  if (!has_default_route(q->gateway)) {
    snprintf(msg, cap, "no default route via %s on eth0", q->gateway);
    return;
  }
  if (kid_connect(q, msg, cap) == 0)
    snprintf(msg, cap, "ok");
}

__attribute__((noreturn)) static void kid_main(int cmd, int res) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (unshare(CLONE_NEWNET) < 0 || write(res, "R", 1) != 1)
    _exit(1);
  struct check_req q;
  while (read(cmd, &q, sizeof q) == sizeof q) {
    char msg[256];
    kid_check(&q, msg, sizeof msg);
    if (write(res, msg, sizeof msg) != sizeof msg)
      _exit(1);
  }
  _exit(0);
}

static struct kid *kid_start(struct fx *f) {
  struct kid *k = NULL;
  for (int i = 0; i < MAX_KIDS && !k; i++)
    if (f->kids[i].pid == 0)
      k = &f->kids[i];
  assert_non_null(k);
  int c[2], r[2];
  assert_int_equal(pipe2(c, O_CLOEXEC), 0);
  assert_int_equal(pipe2(r, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* No exec, so O_CLOEXEC does nothing: drop the other children's fds,
     * or their namespaces would live as long as this child. */
    for (int i = 0; i < MAX_KIDS; i++)
      if (f->kids[i].pid) {
        close(f->kids[i].cmd);
        close(f->kids[i].res);
        close(f->kids[i].nsfd);
      }
    close(c[1]);
    close(r[0]);
    kid_main(c[0], r[1]);
  }
  close(c[0]);
  close(r[1]);
  *k = (struct kid){pid, c[1], r[0], -1};
  char ready = 0;
  assert_int_equal(read(k->res, &ready, 1), 1);
  assert_int_equal(ready, 'R');
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
  k->nsfd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(k->nsfd >= 0);
  return k;
}

static void kid_stop(struct kid *k) {
  if (k->pid == 0)
    return;
  kill(k->pid, SIGKILL);
  waitpid(k->pid, NULL, 0);
  close(k->cmd);
  close(k->res);
  if (k->nsfd >= 0)
    close(k->nsfd);
  *k = (struct kid){0, -1, -1, -1};
}

/* --------------------------------------------------------- the listener */

static int listen_on_gateway(uint16_t *port) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  inet_pton(AF_INET, GATEWAY, &sa.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(s >= 0);
  assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(s, 4), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return s;
}

/* Serves one ping from the child; the peer's address, or "" when no
 * connection came. */
static void serve_one(int ls, char from[16]) {
  struct pollfd pfd = {ls, POLLIN, 0};
  from[0] = 0;
  if (poll(&pfd, 1, 5000) != 1)
    return;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  int c = accept4(ls, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
  assert_true(c >= 0);
  char buf[8] = {0};
  struct timeval tv = {5, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (read(c, buf, 4) == 4 && strcmp(buf, "ping") == 0 && write(c, "pong", 4) == 4)
    inet_ntop(AF_INET, &peer.sin_addr, from, 16);
  close(c);
}

/* The child checks its side and pings the gateway; we answer and check
 * the ping came from its lease. */
static void check_from_inside(struct kid *k, const struct net_lease *l) {
  struct check_req q = {.prefix = l->prefix};
  snprintf(q.addr, sizeof q.addr, "%s", l->addr);
  snprintf(q.gateway, sizeof q.gateway, "%s", l->gateway);
  int ls = listen_on_gateway(&q.port);
  assert_int_equal(write(k->cmd, &q, sizeof q), sizeof q);
  char from[16];
  serve_one(ls, from);
  close(ls);
  char msg[256];
  struct pollfd pfd = {k->res, POLLIN, 0};
  assert_int_equal(poll(&pfd, 1, 10000), 1);
  assert_int_equal(read(k->res, msg, sizeof msg), sizeof msg);
  msg[sizeof msg - 1] = 0;
  if (strcmp(msg, "ok") != 0)
    fail_msg("in the namespace of %s: %s", l->addr, msg);
  assert_string_equal(from, l->addr);
}

/* ---------------------------------------------------------------- tests */

static void attach_ok(struct fx *f, const char *id, struct kid *k, const char *want_addr,
                      struct net_lease *l) {
  struct qerr err = QERR_INIT;
  int r = netbridge_attach(f->b, id, k->nsfd, l, &err);
  if (r < 0)
    fail_msg("attach %s: %s", id, err.msg);
  assert_string_equal(l->addr, want_addr);
}

static void test_open_errors(void **state) {
  struct fx *f = *state;
  struct qerr err = QERR_INIT;
  struct netbridge *b = NULL;
  struct netbridge_config cfg = {f->bridge, SUBNET, NULL, "/nonexistent/iptables"};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -ENOENT);
  assert_int_equal(err.status, GRPC_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "/nonexistent/iptables"));
  assert_non_null(strstr(err.msg, "iptables"));
  cfg = (struct netbridge_config){f->bridge, "10.213.0.1/24", NULL, NULL};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "host bits set"));
  cfg = (struct netbridge_config){"a-much-too-long-name", SUBNET, NULL, NULL};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -EINVAL);
  cfg = (struct netbridge_config){f->bridge, SUBNET, "127.0.0.53", NULL};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -EINVAL);
  /* iptables that fails: the bridge this open made is deleted again. */
  cfg = (struct netbridge_config){f->bridge, SUBNET, NULL, "/bin/false"};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -EIO);
  assert_non_null(strstr(err.msg, "installing NAT for bridge"));
  assert_non_null(strstr(err.msg, "-A POSTROUTING"));
  assert_non_null(strstr(err.msg, "exit 1"));
  assert_false(link_exists(f->bridge));
  /* An existing interface that is no bridge: refused, nothing installed. */
  cfg = (struct netbridge_config){"lo", SUBNET, NULL, NULL};
  assert_int_equal(netbridge_open(&b, &cfg, &err), -EEXIST);
  assert_int_equal(err.status, GRPC_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "not a bridge"));
  assert_null(b);
  assert_false(link_exists(f->bridge));
  FILE *p = popen("/usr/sbin/iptables-save 2>/dev/null | grep -c quilt:", "r");
  char n[16] = "";
  assert_non_null(fgets(n, sizeof n, p));
  pclose(p);
  assert_string_equal(n, "0\n");
}

static void test_open(void **state) {
  struct fx *f = *state;
  struct qerr err = QERR_INIT;
  struct netbridge_config cfg = {f->bridge, SUBNET, NULL, NULL};
  if (netbridge_open(&f->b, &cfg, &err) < 0)
    fail_msg("netbridge_open: %s", err.msg);
  char addr[16], v[8];
  unsigned prefix, flags;
  if_state(f->bridge, addr, &prefix, &flags);
  assert_string_equal(addr, GATEWAY);
  assert_int_equal(prefix, 24);
  assert_true(flags & IFF_UP);
  assert_true(read_text("/proc/sys/net/ipv4/ip_forward", v, sizeof v) > 0);
  assert_string_equal(v, "1\n");
  expect_rules(f, true);

  /* The bridge carries our mark. */
  struct nl nl;
  struct nl_link l;
  assert_int_equal(nl_open(&nl, &err), 0);
  assert_int_equal(nl_link_get(&nl, f->bridge, &l, &err), 0);
  assert_string_equal(l.kind, "bridge");
  assert_string_equal(l.alias, NETBRIDGE_ALIAS);
  nl_close(&nl);

  /* The host's resolv.conf, loopback resolvers left out. */
  char rc[2048];
  int n = netbridge_resolv_conf(f->b, rc, sizeof rc);
  assert_true(n > 0);
  assert_int_equal((size_t)n, strlen(rc));
  assert_null(strstr(rc, "nameserver 127."));
  assert_int_equal(netbridge_resolv_conf(f->b, rc, (size_t)n), -ENOSPC);

  /* Opening again adopts the bridge and adds no rule twice. */
  struct netbridge *again = NULL;
  cfg.dns = "10.213.0.53";
  if (netbridge_open(&again, &cfg, &err) < 0)
    fail_msg("second netbridge_open: %s", err.msg);
  n = netbridge_resolv_conf(again, rc, sizeof rc);
  assert_int_equal(n, (int)strlen(rc));
  assert_non_null(strstr(rc, "nameserver 10.213.0.53\n"));
  netbridge_close(again, false);
  expect_rules(f, true);
  assert_true(link_exists(f->bridge));
}

static const char *const id_a = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const id_b = "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";
static const char *const id_c = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
static const char *const id_d = "aaaaaaaa00000000000000000000000000000000000000000000000000000000";

static void test_attach_and_connect(void **state) {
  struct fx *f = *state;
  assert_non_null(f->b);
  struct kid *k = kid_start(f);
  struct net_lease l;
  attach_ok(f, id_a, k, "10.213.0.2", &l);
  assert_int_equal(l.prefix, 24);
  assert_string_equal(l.gateway, GATEWAY);
  assert_string_equal(l.host_if, "qv01234567");

  /* The host side: on the bridge, up. */
  struct qerr err = QERR_INIT;
  struct nl nl;
  struct nl_link host, br;
  assert_int_equal(nl_open(&nl, &err), 0);
  assert_int_equal(nl_link_get(&nl, "qv01234567", &host, &err), 0);
  assert_int_equal(nl_link_get(&nl, f->bridge, &br, &err), 0);
  nl_close(&nl);
  assert_string_equal(host.kind, "veth");
  assert_int_equal(host.master, br.index);
  assert_true(host.flags & IFF_UP);
  /* The peer was made in the child's namespace: it never shows up here. */
  assert_false(link_exists("eth0"));

  check_from_inside(k, &l);
}

static void test_attach_errors(void **state) {
  struct fx *f = *state;
  assert_non_null(f->b);
  struct qerr err = QERR_INIT;
  struct net_lease l;
  struct kid *k = kid_start(f);

  assert_int_equal(netbridge_attach(f->b, id_a, k->nsfd, &l, &err), -EEXIST);
  assert_non_null(strstr(err.msg, "already attached"));
  /* Same first 8 characters as id_a: the veth name is taken. */
  assert_int_equal(netbridge_attach(f->b, "01234567ffff", k->nsfd, &l, &err), -EEXIST);
  assert_non_null(strstr(err.msg, "qv01234567 is taken"));
  assert_int_equal(netbridge_attach(f->b, "NOTHEX00", k->nsfd, &l, &err), -EINVAL);
  assert_int_equal(netbridge_attach(f->b, "abc", k->nsfd, &l, &err), -EINVAL);

  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  assert_int_equal(netbridge_attach(f->b, id_b, self, &l, &err), -EINVAL);
  assert_non_null(strstr(err.msg, "daemon's network namespace"));
  close(self);

  /* Not a namespace: the kernel refuses, nothing is left behind and the
   * address is not consumed. */
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(netbridge_attach(f->b, id_b, devnull, &l, &err) < 0);
  assert_non_null(strstr(err.msg, "qv89abcdef"));
  close(devnull);
  assert_false(link_exists("qv89abcdef"));

  /* The child's namespace already has an eth0 (from another "bridge"):
   * the veth cannot be made, and again nothing is left. */
  attach_ok(f, id_b, k, "10.213.0.3", &l);
  assert_int_equal(netbridge_attach(f->b, id_c, k->nsfd, &l, &err), -EEXIST);
  assert_false(link_exists("qvfedcba98"));
  assert_int_equal(netbridge_detach(f->b, id_b, &err), 0);
}

static void wait_gone(const char *name) {
  for (int i = 0; i < 100 && link_exists(name); i++)
    sleep_ms(50);
  assert_false(link_exists(name));
}

static void test_detach_and_reuse(void **state) {
  struct fx *f = *state;
  assert_non_null(f->b);
  struct qerr err = QERR_INIT;
  struct net_lease l;
  struct kid *a = &f->kids[0], *b = &f->kids[1];

  /* b's namespace got .3 and lost it again in test_attach_errors. */
  attach_ok(f, id_b, b, "10.213.0.3", &l);
  assert_true(link_exists("qv89abcdef"));

  assert_int_equal(netbridge_detach(f->b, id_a, &err), 0);
  assert_false(link_exists("qv01234567"));
  assert_int_equal(netbridge_detach(f->b, id_a, &err), 0); /* idempotent */
  assert_int_equal(netbridge_detach(f->b, "ffffffffffff", &err), 0);

  /* The freed address is the next one leased, and it works. */
  struct kid *c = kid_start(f);
  attach_ok(f, id_c, c, "10.213.0.2", &l);
  check_from_inside(c, &l);

  /* A container whose namespace died takes its veth pair along; detach
   * then only frees the address. */
  kid_stop(b);
  wait_gone("qv89abcdef");
  assert_int_equal(netbridge_detach(f->b, id_b, &err), 0);
  struct kid *d = kid_start(f);
  attach_ok(f, id_d, d, "10.213.0.3", &l);
  assert_string_equal(l.host_if, "qvaaaaaaaa");
  check_from_inside(d, &l);
  kid_stop(a);
}

static void test_sweep(void **state) {
  struct fx *f = *state;
  assert_non_null(f->b);
  struct qerr err = QERR_INIT;
  struct nl nl;
  struct nl_link stale, loose, br;
  assert_int_equal(nl_open(&nl, &err), 0);
  assert_int_equal(nl_link_get(&nl, f->bridge, &br, &err), 0);
  /* A leftover on our bridge, and one of the same shape on no bridge. */
  assert_int_equal(nl_veth_add(&nl, "qvdeadbeef", "qxdeadbeef", NULL, -1, &err), 0);
  assert_int_equal(nl_link_get(&nl, "qvdeadbeef", &stale, &err), 0);
  assert_int_equal(nl_link_set_master(&nl, &stale, br.index, &err), 0);
  assert_int_equal(nl_veth_add(&nl, "qvcafef00d", "qxcafef00d", NULL, -1, &err), 0);
  assert_int_equal(nl_link_get(&nl, "qvcafef00d", &loose, &err), 0);

  int n = netbridge_sweep(f->b, &err);
  if (n < 0)
    fail_msg("netbridge_sweep: %s", err.msg);
  assert_int_equal(n, 1);
  assert_false(link_exists("qvdeadbeef"));
  assert_false(link_exists("qxdeadbeef"));
  assert_true(link_exists("qvcafef00d"));
  assert_true(link_exists("qvfedcba98")); /* leased: kept */
  assert_true(link_exists("qvaaaaaaaa"));
  assert_int_equal(netbridge_sweep(f->b, &err), 0);

  assert_int_equal(nl_link_del(&nl, "qvcafef00d", &err), 0);
  assert_int_equal(nl_link_del(&nl, "qvcafef00d", &err), -ENODEV);
  assert_non_null(strstr(err.msg, "qvcafef00d"));
  nl_close(&nl);
}

static void test_close_removes(void **state) {
  struct fx *f = *state;
  assert_non_null(f->b);
  /* Two containers still attached: close takes their veths too. */
  netbridge_close(f->b, true);
  f->b = NULL;
  assert_false(link_exists("qvfedcba98"));
  assert_false(link_exists("qvaaaaaaaa"));
  assert_false(link_exists(f->bridge));
  expect_rules(f, false);
}

/* ------------------------------------------------------------- fixture */

static int group_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  for (int i = 0; i < MAX_KIDS; i++)
    f->kids[i] = (struct kid){0, -1, -1, -1};
  snprintf(f->bridge, sizeof f->bridge, "qtest%d", (int)getpid());
  snprintf(f->comment, sizeof f->comment, "quilt:%s", f->bridge);
  *state = f;
  return 0;
}

static int group_teardown(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < MAX_KIDS; i++)
    kid_stop(&f->kids[i]);
  netbridge_close(f->b, true);
  free(f);
  return 0;
}

int main(void) {
  if (geteuid() != 0) {
    printf("skipped: needs root\n");
    return 77;
  }
  if (access(IPTABLES, X_OK) < 0) {
    printf("skipped: no %s (scripts/install-deps installs it)\n", IPTABLES);
    return 77;
  }
  /* Everything below happens in this namespace (see the top). */
  if (unshare(CLONE_NEWNET) < 0) {
    printf("skipped: unshare(CLONE_NEWNET): %s\n", strerror(errno));
    return 77;
  }
  qlog_set_level(QLOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_errors),    cmocka_unit_test(test_open),
      cmocka_unit_test(test_attach_and_connect), cmocka_unit_test(test_attach_errors),
      cmocka_unit_test(test_detach_and_reuse), cmocka_unit_test(test_sweep),
      cmocka_unit_test(test_close_removes),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
