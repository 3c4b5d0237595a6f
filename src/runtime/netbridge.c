#include "runtime/netbridge.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "grpc/status.h"
#include "runtime/ipam.h"
#include "runtime/netlink.h"
#include "runtime/resolvconf.h"

#define PEER_NAME "eth0"
#define HOST_RESOLV "/etc/resolv.conf"
/* Where systemd-resolved keeps the upstream servers when /etc/resolv.conf
 * only names its 127.0.0.53 stub. */
#define RESOLVED_RESOLV "/run/systemd/resolve/resolv.conf"
#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

struct lease {
  char *id;
  uint32_t addr;
  char host_if[IF_NAMESIZE];
};

struct netbridge {
  char bridge[IF_NAMESIZE];
  char comment[32]; /* "quilt:<bridge>", marks our iptables rules */
  char *iptables;
  struct ipam ipam;
  int self_netns;   /* the daemon's network namespace, to return to */
  dev_t self_dev;   /* ... and its identity, to check we did */
  ino_t self_ino;
  struct nl nl;     /* in the daemon's namespace */
  int bridge_index;
  bool bridge_ours; /* carries NETBRIDGE_ALIAS */
  bool gw_added;    /* this open put the gateway on a bridge not ours */
  char resolv[2048];
  int resolv_len;
  struct lease *leases;
  size_t nleases, cap;
};

/* ------------------------------------------------------------ iptables */

enum { RULE_NAT, RULE_OUT, RULE_BACK, NRULES };

/* The argv of `iptables -w -t TABLE OP CHAIN <rule>`; the strings point
 * into b. */
static void rule_argv(const struct netbridge *b, int rule, const char *op, const char *argv[24]) {
  size_t n = 0;
  argv[n++] = b->iptables;
  argv[n++] = "-w"; /* iptables-legacy: wait for the xtables lock */
  argv[n++] = "-t";
  argv[n++] = rule == RULE_NAT ? "nat" : "filter";
  argv[n++] = op;
  argv[n++] = rule == RULE_NAT ? "POSTROUTING" : "FORWARD";
  if (rule == RULE_NAT) {
    const char *spec[] = {"-s", b->ipam.cidr, "!", "-o", b->bridge};
    for (size_t i = 0; i < ARRAY_SIZE(spec); i++)
      argv[n++] = spec[i];
  } else if (rule == RULE_OUT) {
    argv[n++] = "-i";
    argv[n++] = b->bridge;
  } else {
    const char *spec[] = {"-o", b->bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"};
    for (size_t i = 0; i < ARRAY_SIZE(spec); i++)
      argv[n++] = spec[i];
  }
  const char *tail[] = {"-m", "comment", "--comment", b->comment, "-j",
                        rule == RULE_NAT ? "MASQUERADE" : "ACCEPT"};
  for (size_t i = 0; i < ARRAY_SIZE(tail); i++)
    argv[n++] = tail[i];
  argv[n] = NULL;
}

static void join_argv(const char *const argv[], char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; argv[i] && len + 1 < cap; i++) {
    int n = snprintf(out + len, cap - len, "%s%s", i ? " " : "", argv[i]);
    if (n < 0)
      break;
    len += (size_t)n;
  }
}

/* iptables' stderr, newlines folded, for one-line messages. */
static void read_stderr(int fd, char *out, size_t cap) {
  size_t len = 0;
  char scratch[256];
  for (;;) {
    char *dst = len + 1 < cap ? out + len : scratch;
    size_t room = len + 1 < cap ? cap - 1 - len : sizeof scratch; /* past cap: drain */
    ssize_t n = read(fd, dst, room);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (dst != scratch)
      len += (size_t)n;
  }
  while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
    len--;
  out[len] = 0;
  for (char *p = out; (p = strchr(p, '\n'));)
    *p = ';';
}

static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int errfd) {
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  /* The daemon ignores SIGPIPE and blocks the signals its signalfd reads;
   * iptables starts with neither: an empty mask, SIGPIPE at its default. */
  sigaddset(&dfl, SIGPIPE);
  int r = posix_spawn_file_actions_init(fa);
  if (r)
    return r;
  if ((r = posix_spawnattr_init(at))) {
    posix_spawn_file_actions_destroy(fa);
    return r;
  }
  if ((r = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0)) ||
      (r = posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0)) ||
      (r = posix_spawn_file_actions_adddup2(fa, errfd, 2)) ||
      (r = posix_spawnattr_setsigmask(at, &none)) ||
      (r = posix_spawnattr_setsigdefault(at, &dfl)) ||
      (r = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))) {
    posix_spawn_file_actions_destroy(fa);
    posix_spawnattr_destroy(at);
  }
  return r;
}

struct run_result {
  int status; /* exit code, 128+signal when killed */
  char stderr_text[256];
};

/* Runs argv (no shell) and waits for it. <0 only when it could not run. */
static int run_cmd(const char *const argv[], struct run_result *res, struct qerr *err) {
  static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return qerr_errno(err, "running %s: pipe", argv[0]);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  pid_t pid;
  int r = spawn_setup(&fa, &at, p[1]);
  if (r == 0) {
    r = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
  }
  close(p[1]);
  if (r) {
    close(p[0]);
    return qerr_set(err, r, "running %s: %s", argv[0], strerror(r));
  }
  read_stderr(p[0], res->stderr_text, sizeof res->stderr_text);
  close(p[0]);
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR)
      return qerr_errno(err, "waiting for %s", argv[0]);
  res->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  return 0;
}

/* Runs one rule operation; the exit status is returned (0, 1, ...), or
 * <0 when iptables could not run. */
static int iptables(const struct netbridge *b, int rule, const char *op, struct run_result *res,
                    struct qerr *err) {
  const char *argv[24];
  rule_argv(b, rule, op, argv);
  int r = run_cmd(argv, res, err);
  return r < 0 ? r : res->status;
}

static int iptables_failed(const struct netbridge *b, int rule, const char *op,
                           const struct run_result *res, struct qerr *err) {
  const char *argv[24];
  char cmd[512];
  rule_argv(b, rule, op, argv);
  join_argv(argv, cmd, sizeof cmd);
  return qerr_set(err, EIO, "%s: exit %d: %s", cmd, res->status,
                  res->stderr_text[0] ? res->stderr_text : "(no message)");
}

/* -C answers 0 when the rule exists and 1 when it does not. */
static int ensure_rule(const struct netbridge *b, int rule, bool *added, struct qerr *err) {
  struct run_result res;
  *added = false;
  int r = iptables(b, rule, "-C", &res, err);
  if (r < 0 || r == 0)
    return r;
  if (r != 1)
    return iptables_failed(b, rule, "-C", &res, err);
  r = iptables(b, rule, "-A", &res, err);
  if (r < 0)
    return r;
  if (r != 0)
    return iptables_failed(b, rule, "-A", &res, err);
  *added = true;
  return 0;
}

static void remove_rule(const struct netbridge *b, int rule) {
  struct qerr err = QERR_INIT;
  struct run_result res;
  const char *op = "-C";
  int r = iptables(b, rule, op, &res, &err);
  if (r == 1)
    return; /* not there */
  if (r == 0 && (r = iptables(b, rule, op = "-D", &res, &err)) == 0)
    return;
  if (r > 0)
    iptables_failed(b, rule, op, &res, &err);
  log_warn("bridge %s: removing an iptables rule: %s", b->bridge, err.msg);
}

static int install_rules(struct netbridge *b, bool added[NRULES], struct qerr *err) {
  for (int i = 0; i < NRULES; i++) {
    int r = ensure_rule(b, i, &added[i], err);
    if (r < 0)
      return qerr_wrap(err, "installing NAT for bridge %s", b->bridge);
  }
  return 0;
}

/* -------------------------------------------------------------- bridge */

/* *created once the kernel has the bridge, so a failure after that can
 * delete it. */
static int make_bridge(struct netbridge *b, struct nl_link *l, bool *created, struct qerr *err) {
  uint8_t mac[6];
  if (getrandom(mac, sizeof mac, 0) != sizeof mac)
    return qerr_errno(err, "creating bridge %s: getrandom", b->bridge);
  mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
  int r = nl_bridge_add(&b->nl, b->bridge, mac, err);
  if (r < 0)
    return r;
  *created = true;
  b->bridge_ours = true;
  r = nl_link_get(&b->nl, b->bridge, l, err);
  if (r == 0)
    r = nl_link_set_alias(&b->nl, l, NETBRIDGE_ALIAS, err);
  return r;
}

/* Finds or creates the bridge; *created says which. */
static int find_bridge(struct netbridge *b, struct nl_link *l, bool *created, struct qerr *err) {
  *created = false;
  int r = nl_link_get(&b->nl, b->bridge, l, err);
  if (r == -ENODEV) {
    qerr_clear(err);
    return make_bridge(b, l, created, err);
  }
  if (r < 0)
    return r;
  if (strcmp(l->kind, "bridge") != 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, EEXIST,
                       "interface %s exists and is not a bridge (its kind: %s)", b->bridge,
                       l->kind[0] ? l->kind : "none, a physical or loopback device");
  b->bridge_ours = strcmp(l->alias, NETBRIDGE_ALIAS) == 0;
  return 0;
}

static int setup_bridge(struct netbridge *b, bool *created, struct qerr *err) {
  struct nl_link l = {0};
  int r = find_bridge(b, &l, created, err);
  if (r < 0)
    return r;
  b->bridge_index = l.index;
  r = nl_addr_add(&b->nl, &l, ipam_gateway(&b->ipam.sn), b->ipam.sn.prefix, err);
  if (r == 0 && !b->bridge_ours)
    b->gw_added = true;
  else if (r == -EEXIST) {
    qerr_clear(err);
    r = 0; /* adopted with its gateway address */
  }
  if (r == 0)
    r = nl_link_set_up(&b->nl, &l, err);
  return r;
}

static int enable_forwarding(struct qerr *err) {
  char v[4] = {0};
  cleanup_fd int fd = open(IP_FORWARD, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, v, sizeof v - 1) < 0)
    return qerr_errno(err, "reading %s", IP_FORWARD);
  if (v[0] == '1')
    return 0;
  return write_file(IP_FORWARD, "1\n", 2, err);
}

/* ----------------------------------------------------------------- DNS */

static int read_small(const char *path, char *buf, size_t cap) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    len += (size_t)n;
  }
  buf[len] = 0;
  return (int)len;
}

/* The host's file, or systemd-resolved's upstream list when the host's
 * names only its loopback stub. Missing files count as empty. */
static int load_resolv(struct netbridge *b, const char *dns, struct qerr *err) {
  cleanup_free char *text = malloc(65536);
  if (!text)
    return qerr_set(err, ENOMEM, "reading %s: no memory", HOST_RESOLV);
  if (read_small(HOST_RESOLV, text, 65536) < 0)
    text[0] = 0;
  int n = resolvconf_render(dns, text, HOST_RESOLV, b->resolv, sizeof b->resolv, err);
  if (n == 0 && read_small(RESOLVED_RESOLV, text, 65536) >= 0) {
    char alt[sizeof b->resolv];
    struct qerr e2 = QERR_INIT;
    if (resolvconf_render(NULL, text, RESOLVED_RESOLV, alt, sizeof alt, &e2) > 0) {
      memcpy(b->resolv, alt, sizeof alt);
      n = 1;
    }
  }
  if (n < 0)
    return n;
  if (n == 0)
    log_warn("bridge %s: no nameserver for containers: %s names none a container can reach "
             "(only loopback or IPv6 ones, or none); their resolv.conf says so",
             b->bridge, HOST_RESOLV);
  b->resolv_len = (int)strlen(b->resolv);
  return 0;
}

/* ---------------------------------------------------------------- open */

static int copy_config(struct netbridge *b, const struct netbridge_config *cfg, struct qerr *err) {
  const char *name = cfg && cfg->bridge ? cfg->bridge : NETBRIDGE_DEFAULT_BRIDGE;
  const char *subnet = cfg && cfg->subnet ? cfg->subnet : NETBRIDGE_DEFAULT_SUBNET;
  const char *ipt = cfg && cfg->iptables ? cfg->iptables : NETBRIDGE_DEFAULT_IPTABLES;
  size_t n = strlen(name);
  if (n == 0 || n >= IF_NAMESIZE || strpbrk(name, "/: \t\n") || !strcmp(name, ".") ||
      !strcmp(name, ".."))
    return qerr_set(err, EINVAL, "bridge name \"%s\": want 1 to %d bytes, no '/', ':' or spaces",
                    name, IF_NAMESIZE - 1);
  memcpy(b->bridge, name, n + 1);
  snprintf(b->comment, sizeof b->comment, "quilt:%s", b->bridge);
  if (!(b->iptables = strdup(ipt)))
    return qerr_set(err, ENOMEM, "no memory");
  if (access(ipt, X_OK) < 0)
    return qerr_status(err, GRPC_FAILED_PRECONDITION, errno,
                       "%s: %s; bridge networking needs iptables for NAT (Debian: apt-get "
                       "install iptables)",
                       ipt, strerror(errno));
  int r = ipam_init(&b->ipam, subnet, err);
  if (r < 0)
    return qerr_wrap(err, "bridge %s", b->bridge);
  return load_resolv(b, cfg ? cfg->dns : NULL, err);
}

static int open_self_netns(struct netbridge *b, struct qerr *err) {
  struct stat st;
  b->self_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (b->self_netns < 0 || fstat(b->self_netns, &st) < 0)
    return qerr_errno(err, "opening the daemon's network namespace");
  b->self_dev = st.st_dev;
  b->self_ino = st.st_ino;
  return 0;
}

/* The bridge if it is ours (or was created by the open being undone),
 * else the gateway address this open put on somebody else's bridge. */
static void remove_bridge(struct netbridge *b, bool ours) {
  struct qerr e = QERR_INIT;
  struct nl_link l;
  if (ours) {
    if (nl_link_del(&b->nl, b->bridge, &e) < 0 && e.code != -ENODEV)
      log_warn("%s", e.msg);
  } else if (b->gw_added && nl_link_get(&b->nl, b->bridge, &l, &e) == 0 &&
             nl_addr_del(&b->nl, &l, ipam_gateway(&b->ipam.sn), b->ipam.sn.prefix, &e) < 0) {
    log_warn("bridge %s: %s", b->bridge, e.msg);
  }
}

static void undo_open(struct netbridge *b, bool created, const bool added[NRULES]) {
  for (int i = 0; i < NRULES; i++)
    if (added[i])
      remove_rule(b, i);
  remove_bridge(b, created);
}

static int open_steps(struct netbridge *b, const struct netbridge_config *cfg, struct qerr *err) {
  bool created = false, added[NRULES] = {false};
  int r = copy_config(b, cfg, err);
  if (r == 0)
    r = open_self_netns(b, err);
  if (r == 0)
    r = nl_open(&b->nl, err);
  if (r < 0)
    return r;
  r = setup_bridge(b, &created, err);
  if (r == 0)
    r = enable_forwarding(err);
  if (r == 0)
    r = install_rules(b, added, err);
  if (r < 0)
    undo_open(b, created, added);
  return r;
}

int netbridge_open(struct netbridge **out, const struct netbridge_config *cfg,
                   struct qerr *err) {
  struct netbridge *b = calloc(1, sizeof *b);
  if (!b)
    return qerr_set(err, ENOMEM, "no memory for the bridge network");
  b->self_netns = -1;
  b->nl = (struct nl)NL_INIT;
  int r = open_steps(b, cfg, err);
  if (r < 0) {
    netbridge_close(b, false);
    return r;
  }
  *out = b;
  return 0;
}

/* -------------------------------------------------------------- leases */

static struct lease *find_lease(struct netbridge *b, const char *id, const char *host_if) {
  for (size_t i = 0; i < b->nleases; i++) {
    struct lease *l = &b->leases[i];
    if ((id && strcmp(l->id, id) == 0) || (host_if && strcmp(l->host_if, host_if) == 0))
      return l;
  }
  return NULL;
}

static int lease_room(struct netbridge *b, struct qerr *err) {
  if (b->nleases < b->cap)
    return 0;
  size_t cap = b->cap ? b->cap * 2 : 16;
  struct lease *n = realloc(b->leases, cap * sizeof *n);
  if (!n)
    return qerr_set(err, ENOMEM, "no memory for %zu leases", cap);
  b->leases = n;
  b->cap = cap;
  return 0;
}

static bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* "qv" and the first 8 characters of the id: 10 bytes, well within
 * IFNAMSIZ, and a shape netbridge_sweep can recognise. */
static int host_if_name(const char *id, char out[IF_NAMESIZE], struct qerr *err) {
  for (int i = 0; i < 8; i++)
    if (!id || !is_lower_hex(id[i]))
      return qerr_set(err, EINVAL,
                      "container id \"%s\": must start with 8 lowercase hex characters "
                      "(they name its veth)",
                      id ? id : "");
  snprintf(out, IF_NAMESIZE, "qv%.8s", id);
  return 0;
}

static bool is_host_if_name(const char *name) {
  if (strncmp(name, "qv", 2) != 0 || strlen(name) != 10)
    return false;
  for (int i = 2; i < 10; i++)
    if (!is_lower_hex(name[i]))
      return false;
  return true;
}

/* ---------------------------------------------------------------- attach */

/* Back to the daemon's namespace. Failing that, the daemon would go on in
 * a container's network -- its sockets, its iptables runs, the next
 * container's setup -- so it stops instead; this cannot fail for a process
 * that just left that namespace with the same privileges. */
static void go_home(const struct netbridge *b) {
  struct stat st;
  const char *why = NULL;
  if (setns(b->self_netns, CLONE_NEWNET) < 0 || stat("/proc/thread-self/ns/net", &st) < 0)
    why = strerror(errno);
  else if (st.st_dev != b->self_dev || st.st_ino != b->self_ino)
    why = "setns succeeded but the namespace is another one";
  if (!why)
    return;
  log_error("bridge %s: could not return to the daemon's network namespace (%s); aborting",
            b->bridge, why);
  abort();
}

/* A netlink socket in the container's namespace: sockets stay in the
 * namespace they were made in, so the daemon is there only for socket(). */
static int nl_open_in(const struct netbridge *b, int netns_fd, struct nl *s, struct qerr *err) {
  if (setns(netns_fd, CLONE_NEWNET) < 0)
    return qerr_errno(err, "entering the container's network namespace");
  int r = nl_open(s, err);
  go_home(b);
  return r;
}

static int check_netns(const struct netbridge *b, int netns_fd, struct qerr *err) {
  struct stat st;
  if (fstat(netns_fd, &st) < 0)
    return qerr_errno(err, "network namespace fd %d", netns_fd);
  if (st.st_dev == b->self_dev && st.st_ino == b->self_ino)
    return qerr_set(err, EINVAL,
                    "the container shares the daemon's network namespace; bridge mode "
                    "needs its own");
  return 0;
}

static int host_side(struct netbridge *b, const char *host_if, struct qerr *err) {
  struct nl_link l;
  int r = nl_link_get(&b->nl, host_if, &l, err);
  if (r == 0 && (r = nl_link_set_master(&b->nl, &l, b->bridge_index, err)) < 0)
    qerr_wrap(err, "adding %s to bridge %s", host_if, b->bridge);
  if (r == 0)
    r = nl_link_set_up(&b->nl, &l, err);
  return r;
}

static int inside(const struct netbridge *b, int netns_fd, uint32_t addr, struct qerr *err) {
  struct nl in = NL_INIT;
  struct nl_link l;
  int r = nl_open_in(b, netns_fd, &in, err);
  if (r == 0)
    r = nl_link_get(&in, PEER_NAME, &l, err);
  if (r == 0)
    r = nl_link_set_up(&in, &l, err);
  if (r == 0)
    r = nl_addr_add(&in, &l, addr, b->ipam.sn.prefix, err);
  if (r == 0)
    r = nl_route_add_default(&in, &l, ipam_gateway(&b->ipam.sn), err);
  nl_close(&in);
  if (r < 0)
    qerr_wrap(err, "in the container's network namespace");
  return r;
}

/* Deleting the host side deletes its peer too, wherever it is. */
static void del_host_if(struct netbridge *b, const char *host_if) {
  struct qerr e = QERR_INIT;
  if (nl_link_del(&b->nl, host_if, &e) < 0 && e.code != -ENODEV)
    log_warn("bridge %s: %s", b->bridge, e.msg);
}

/* The container's MAC follows from its address (02:51, then its four
 * bytes; locally administered), as Docker does. Addresses are reused at
 * once (lowest free), and neighbour caches that still hold a reused
 * address -- other containers', the host's before the new holder has
 * spoken to it -- then stay right instead of naming a MAC that is gone
 * until they are re-validated (tens of seconds). */
static void mac_for(uint32_t addr, uint8_t mac[6]) {
  mac[0] = 0x02;
  mac[1] = 0x51;
  for (int i = 0; i < 4; i++)
    mac[2 + i] = (uint8_t)(addr >> (24 - 8 * i));
}

static int plumb(struct netbridge *b, const char *host_if, int netns_fd, uint32_t addr,
                 struct qerr *err) {
  uint8_t mac[6];
  mac_for(addr, mac);
  int r = nl_veth_add(&b->nl, host_if, PEER_NAME, mac, netns_fd, err);
  if (r < 0)
    return r;
  r = host_side(b, host_if, err);
  if (r == 0)
    r = inside(b, netns_fd, addr, err);
  if (r < 0)
    del_host_if(b, host_if);
  return r;
}

static void fill_lease(const struct netbridge *b, const struct lease *l, struct net_lease *out) {
  ipam_ntoa(l->addr, out->addr);
  ipam_ntoa(ipam_gateway(&b->ipam.sn), out->gateway);
  out->prefix = b->ipam.sn.prefix;
  snprintf(out->host_if, sizeof out->host_if, "%s", l->host_if);
}

static int check_new(struct netbridge *b, const char *id, const char *host_if,
                     struct qerr *err) {
  if (find_lease(b, id, NULL))
    return qerr_status(err, GRPC_ALREADY_EXISTS, EEXIST,
                       "container %.12s is already attached to bridge %s", id, b->bridge);
  const struct lease *other = find_lease(b, NULL, host_if);
  if (other)
    return qerr_status(err, GRPC_ALREADY_EXISTS, EEXIST,
                       "veth %s is taken by container %.12s (ids share their first 8 "
                       "characters)",
                       host_if, other->id);
  return 0;
}

int netbridge_attach(struct netbridge *b, const char *container_id, int netns_fd,
                     struct net_lease *out, struct qerr *err) {
  char host_if[IF_NAMESIZE];
  int r = host_if_name(container_id, host_if, err);
  if (r == 0)
    r = check_new(b, container_id, host_if, err);
  if (r == 0)
    r = check_netns(b, netns_fd, err);
  if (r == 0)
    r = lease_room(b, err);
  if (r < 0)
    return r;
  cleanup_free char *id = strdup(container_id);
  uint32_t addr;
  if (!id)
    return qerr_set(err, ENOMEM, "no memory");
  if ((r = ipam_alloc(&b->ipam, &addr, err)) < 0)
    return qerr_wrap(err, "attaching container %.12s", container_id);
  if ((r = plumb(b, host_if, netns_fd, addr, err)) < 0) {
    struct qerr e2 = QERR_INIT;
    ipam_release(&b->ipam, addr, &e2);
    return qerr_wrap(err, "attaching container %.12s to bridge %s", container_id, b->bridge);
  }
  struct lease *l = &b->leases[b->nleases++];
  l->id = take_ptr(id);
  l->addr = addr;
  memcpy(l->host_if, host_if, sizeof host_if);
  fill_lease(b, l, out);
  return 0;
}

static void drop_lease(struct netbridge *b, struct lease *l) {
  struct qerr e = QERR_INIT;
  if (ipam_release(&b->ipam, l->addr, &e) < 0)
    log_warn("bridge %s: %s", b->bridge, e.msg);
  free(l->id);
  *l = b->leases[--b->nleases];
}

int netbridge_detach(struct netbridge *b, const char *container_id, struct qerr *err) {
  struct lease *l = find_lease(b, container_id, NULL);
  if (!l)
    return 0;
  int r = nl_link_del(&b->nl, l->host_if, err);
  if (r < 0 && r != -ENODEV)
    return qerr_wrap(err, "detaching container %.12s from bridge %s", container_id, b->bridge);
  if (r == -ENODEV)
    qerr_clear(err); /* its namespace died and took the pair with it */
  drop_lease(b, l);
  return 0;
}

int netbridge_resolv_conf(const struct netbridge *b, char *out, size_t cap) {
  if (cap <= (size_t)b->resolv_len)
    return -ENOSPC;
  memcpy(out, b->resolv, (size_t)b->resolv_len + 1);
  return b->resolv_len;
}

/* ----------------------------------------------------------------- sweep */

struct sweep {
  struct netbridge *b;
  char (*names)[IF_NAMESIZE];
  size_t n, cap;
  struct qerr *err;
};

/* Only our shape of name, only veths, only on our bridge: other software
 * names veths "qv..." too (OpenStack's qvb/qvo pairs). */
static int sweep_pick(const struct nl_link *l, void *arg) {
  struct sweep *s = arg;
  if (!is_host_if_name(l->name) || strcmp(l->kind, "veth") != 0 ||
      l->master != s->b->bridge_index || find_lease(s->b, NULL, l->name))
    return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    void *n = realloc(s->names, cap * sizeof *s->names);
    if (!n)
      return qerr_set(s->err, ENOMEM, "no memory for the list of stale veths");
    s->names = n;
    s->cap = cap;
  }
  memcpy(s->names[s->n++], l->name, IF_NAMESIZE);
  return 0;
}

int netbridge_sweep(struct netbridge *b, struct qerr *err) {
  struct sweep s = {b, NULL, 0, 0, err};
  /* Collect first: a dump and requests cannot interleave on one socket. */
  int r = nl_link_list(&b->nl, sweep_pick, &s, err);
  int deleted = 0;
  for (size_t i = 0; r >= 0 && i < s.n; i++) {
    struct qerr e = QERR_INIT;
    int d = nl_link_del(&b->nl, s.names[i], &e);
    if (d == 0) {
      deleted++;
      log_info("bridge %s: deleted stale veth %s", b->bridge, s.names[i]);
    } else if (d != -ENODEV) {
      *err = e;
      r = d;
    }
  }
  free(s.names);
  return r < 0 ? qerr_wrap(err, "sweeping bridge %s", b->bridge) : deleted;
}

/* ----------------------------------------------------------------- close */

static void teardown(struct netbridge *b) {
  while (b->nleases) {
    del_host_if(b, b->leases[0].host_if);
    drop_lease(b, &b->leases[0]);
  }
  for (int i = 0; i < NRULES; i++)
    remove_rule(b, i);
  remove_bridge(b, b->bridge_ours);
}

void netbridge_close(struct netbridge *b, bool remove_rules) {
  if (!b)
    return;
  if (remove_rules && b->nl.fd >= 0)
    teardown(b);
  for (size_t i = 0; i < b->nleases; i++)
    free(b->leases[i].id);
  free(b->leases);
  ipam_fini(&b->ipam);
  nl_close(&b->nl);
  if (b->self_netns >= 0)
    close(b->self_netns);
  free(b->iptables);
  free(b);
}
