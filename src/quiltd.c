/* quiltd: the Quilt container runtime daemon. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "daemon.h"

static void usage(FILE *f) {
  fprintf(f,
          "Usage: quiltd [OPTIONS]\n"
          "Runs the Quilt container runtime daemon, serving gRPC (HTTP/2) and\n"
          "HTTP/1.1 health and metrics on the same listeners.\n\n"
          "  --socket PATH         Unix socket to serve (default /run/quilt/quiltd.sock;\n"
          "                        \"\" for none)\n"
          "  --listen HOST:PORT    also serve TCP (off unless given); needs\n"
          "                        --auth-token-file or --insecure-no-auth\n"
          "  --auth-token-file PATH  TCP calls must send 'authorization: Bearer TOKEN' with\n"
          "                        the token in PATH (mode 0600, at least 16 characters)\n"
          "  --insecure-no-auth    serve TCP without any authentication (never on a network\n"
          "                        others can reach)\n"
          "  --root DIR            state directory (default /var/lib/quilt)\n"
          "  --max-connections N   connections served at once (default 4096)\n"
          "  --max-streams N       concurrent streams per connection (default 128)\n"
          "  --max-recv-msg BYTES  largest request message (default 4194304)\n"
          "  --idle-timeout SECS   close connections idle this long (default 300)\n"
          "  --default-memory-limit MIB  memory limit of containers that set none\n"
          "                        (default: half the host's memory; 0: none)\n"
          "  --send-timeout SECS   close a connection whose peer reads none of our\n"
          "                        bytes this long (default 30)\n"
          "  --log-level LEVEL     error, warn, info or debug (default info)\n"
          "  --io-uring-compat     use only io_uring features of kernel 5.15 (testing)\n"
          "  --no-overlay          behave as without overlayfs: images read-only (testing)\n"
          "  --no-idmap            behave as without idmapped mounts: user-namespaced\n"
          "                        containers get shifted image copies (testing)\n"
          "  --no-zygote           fork the warm pool's sandboxes from quiltd itself\n"
          "                        instead of its small zygote process (testing)\n"
          "  --default-rootfs DIR  rootfs directory for containers that name no image\n"
          "                        (default: the built-in busybox image)\n"
          "  --default-image TAR   tarball imported as busybox:latest at first start\n"
          "  --image-max-size BYTES  an image may expand to at most this (default 16 GiB)\n"
          "  --cgroup-parent PATH  create container cgroups under PATH (relative to each\n"
          "                        hierarchy) instead of beneath quiltd's own cgroup\n"
          "  --log-max-size BYTES  rotate a container's log past this size (default 256 MiB)\n"
          "  --userns-range BASE:COUNT  host ids for containers with a user namespace\n"
          "                        (default 100000:65536; root inside maps to BASE)\n"
          "  --bridge NAME         bridge for --network bridge containers (default quilt0)\n"
          "  --bridge-subnet CIDR  their addresses; the gateway is .1 (default 10.88.0.0/16)\n"
          "  --bridge-dns ADDR     their nameserver (default: the host's)\n"
          "  --npm-registry URL, --pip-index URL, --gem-source URL, --apt-mirror URL,\n"
          "  --apk-repository URL, --http-proxy URL, --https-proxy URL, --no-proxy LIST\n"
          "                        where setup steps fetch packages (a spec may override)\n"
          "  --mount-deny PATH     refuse bind mounts of PATH and below (repeatable; added\n"
          "                        to /, /proc, /sys, /dev, /boot and the root)\n"
          "  --scratch tmpfs|disk  where containers' writable layers live: a tmpfs quiltd\n"
          "                        mounts at ROOT/scratch (default; files count against\n"
          "                        the container's memory, lost at reboot) or the disk\n"
          "  --scratch-size SIZE   the scratch tmpfs's size: N[k|m|g] or N%% of memory\n"
          "                        (default 50%%)\n"
          "  --warm-pool N         sandboxes kept ready for the default image, so a\n"
          "                        container starts with a pipe write (default 2; 0: off)\n"
          "  -h, --help            this text\n"
          "  --version             print the version\n");
}

static int parse_uint(const char *s, const char *flag, unsigned long long max,
                      unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v == 0 || v > max) {
    fprintf(stderr, "quiltd: %s expects a number between 1 and %llu, got '%s'\n", flag, max, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_range(const char *s, struct quiltd_config *cfg) {
  unsigned long long base, count;
  char *end;
  errno = 0;
  base = strtoull(s, &end, 10);
  if (errno || end == s || *end != ':' || base == 0 || base > 0xffff0000ull)
    goto bad;
  const char *c = end + 1;
  count = strtoull(c, &end, 10);
  if (errno || end == c || *end || count == 0 || base + count > 0xffffffffull)
    goto bad;
  cfg->userns_base = (uid_t)base;
  cfg->userns_count = (unsigned)count;
  return 0;
bad:
  fprintf(stderr, "quiltd: --userns-range expects BASE:COUNT with BASE > 0, got '%s'\n", s);
  return -1;
}

static int parse_level(const char *s) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  fprintf(stderr, "quiltd: --log-level must be error, warn, info or debug, got '%s'\n", s);
  return -1;
}

/* Refused here, before anything starts, so the mistake reads as a usage
 * error; quiltd_init enforces the same rule for other callers. */
static int check_auth_flags(const struct quiltd_config *cfg) {
  if (cfg->auth_token_file && cfg->insecure_no_auth) {
    fprintf(stderr, "quiltd: --auth-token-file and --insecure-no-auth exclude each other\n");
    return 2;
  }
  if (cfg->listen_addr && !cfg->auth_token_file && !cfg->insecure_no_auth) {
    fprintf(stderr, "quiltd: --listen needs --auth-token-file PATH: TCP calls must carry a "
                    "bearer token (or give --insecure-no-auth to serve TCP without "
                    "authentication)\n");
    return 2;
  }
  return 0;
}

/* Paths under the root reach helpers and containers: they must not
 * depend on the daemon's working directory. */
static int check_root(const struct quiltd_config *cfg) {
  if (cfg->root_dir && cfg->root_dir[0] != '/') {
    fprintf(stderr, "quiltd: --root must be an absolute path, got '%s'\n", cfg->root_dir);
    return 2;
  }
  return 0;
}

/* deny has room for argc entries: each use of the flag takes an argument.
 * It lives as long as the daemon (the config points into it). NULL: out
 * of memory. */
static int add_mount_deny(struct quiltd_config *cfg, const char *path, const char **deny,
                          int argc) {
  if (path[0] != '/') {
    fprintf(stderr, "quiltd: --mount-deny must be an absolute path, got '%s'\n", path);
    return -1;
  }
  if (!deny || cfg->n_mount_deny >= (size_t)argc) {
    fprintf(stderr, "quiltd: out of memory\n");
    return -1;
  }
  deny[cfg->n_mount_deny++] = path;
  cfg->mount_deny = deny;
  return 0;
}

/* deny: room for argc --mount-deny paths, owned by the caller. */
static int parse_args(int argc, char **argv, struct quiltd_config *cfg, const char **deny) {
  enum { O_SOCKET = 256, O_LISTEN, O_ROOT, O_MAXCONN, O_MAXSTREAMS, O_MAXMSG, O_IDLE, O_SENDTO, O_LOG,
         O_VERSION, O_COMPAT, O_ROOTFS, O_CGPARENT, O_LOGMAX, O_USERNS, O_DEFIMAGE, O_IMGMAX, O_NOOVERLAY, O_NOIDMAP, O_DEFMEM, O_WARMPOOL, O_BRIDGE, O_SUBNET, O_DNS, O_NPM, O_PIP, O_GEM, O_APT, O_APK,
         O_HTTP_PROXY, O_HTTPS_PROXY, O_NO_PROXY, O_TOKEN_FILE, O_INSECURE, O_MOUNT_DENY,
         O_SCRATCH, O_SCRATCH_SIZE, O_NOZYGOTE };
  static const struct option opts[] = {
      {"socket", required_argument, 0, O_SOCKET},
      {"listen", required_argument, 0, O_LISTEN},
      {"auth-token-file", required_argument, 0, O_TOKEN_FILE},
      {"insecure-no-auth", no_argument, 0, O_INSECURE},
      {"root", required_argument, 0, O_ROOT},
      {"max-connections", required_argument, 0, O_MAXCONN},
      {"max-streams", required_argument, 0, O_MAXSTREAMS},
      {"max-recv-msg", required_argument, 0, O_MAXMSG},
      {"idle-timeout", required_argument, 0, O_IDLE},
      {"send-timeout", required_argument, 0, O_SENDTO},
      {"log-level", required_argument, 0, O_LOG},
      {"help", no_argument, 0, 'h'},
      {"version", no_argument, 0, O_VERSION},
      {"io-uring-compat", no_argument, 0, O_COMPAT},
      {"default-rootfs", required_argument, 0, O_ROOTFS},
      {"cgroup-parent", required_argument, 0, O_CGPARENT},
      {"log-max-size", required_argument, 0, O_LOGMAX},
      {"userns-range", required_argument, 0, O_USERNS},
      {"default-image", required_argument, 0, O_DEFIMAGE},
      {"no-overlay", no_argument, 0, O_NOOVERLAY},
      {"no-idmap", no_argument, 0, O_NOIDMAP},
      {"default-memory-limit", required_argument, 0, O_DEFMEM},
      {"image-max-size", required_argument, 0, O_IMGMAX},
      {"warm-pool", required_argument, 0, O_WARMPOOL},
      {"bridge", required_argument, 0, O_BRIDGE},
      {"bridge-subnet", required_argument, 0, O_SUBNET},
      {"bridge-dns", required_argument, 0, O_DNS},
      {"npm-registry", required_argument, 0, O_NPM},
      {"pip-index", required_argument, 0, O_PIP},
      {"gem-source", required_argument, 0, O_GEM},
      {"apt-mirror", required_argument, 0, O_APT},
      {"apk-repository", required_argument, 0, O_APK},
      {"http-proxy", required_argument, 0, O_HTTP_PROXY},
      {"https-proxy", required_argument, 0, O_HTTPS_PROXY},
      {"no-proxy", required_argument, 0, O_NO_PROXY},
      {"mount-deny", required_argument, 0, O_MOUNT_DENY},
      {"scratch", required_argument, 0, O_SCRATCH},
      {"scratch-size", required_argument, 0, O_SCRATCH_SIZE},
      {"no-zygote", no_argument, 0, O_NOZYGOTE},
      {0, 0, 0, 0}};
  int c;
  unsigned long long v;
/* A numeric option: parsed and range-checked, then stored by `store`. */
#define NUM(opt, flag, max, store)                                             \
  case opt:                                                                    \
    if (parse_uint(optarg, flag, max, &v) < 0)                                 \
      return 2;                                                                \
    store;                                                                     \
    break
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_SOCKET: cfg->socket_path = optarg; break;
    case O_LISTEN: cfg->listen_addr = optarg; break;
    case O_TOKEN_FILE: cfg->auth_token_file = optarg; break;
    case O_INSECURE: cfg->insecure_no_auth = true; break;
    case O_ROOT: cfg->root_dir = optarg; break;
    NUM(O_MAXCONN, "--max-connections", 1000000, cfg->max_connections = (unsigned)v);
    NUM(O_MAXSTREAMS, "--max-streams", 100000, cfg->max_streams = (unsigned)v);
    NUM(O_MAXMSG, "--max-recv-msg", 1u << 30, cfg->max_recv_msg = (uint32_t)v);
    NUM(O_IDLE, "--idle-timeout", 86400 * 365, cfg->idle_timeout_ns = v * 1000000000ull);
    NUM(O_SENDTO, "--send-timeout", 86400, cfg->send_timeout_ns = v * 1000000000ull);
    NUM(O_DEFMEM, "--default-memory-limit", 1ull << 40, cfg->default_memory_mib = (int64_t)v);
    case O_LOG: {
      int level = parse_level(optarg);
      if (level < 0) return 2;
      qlog_set_level((enum qlog_level)level);
      break;
    }
    case 'h': usage(stdout); return 1;
    case O_COMPAT: cfg->io_uring_compat = true; break;
    case O_ROOTFS: cfg->default_rootfs = optarg; break;
    case O_CGPARENT: cfg->cgroup_parent = optarg; break;
    case O_DEFIMAGE: cfg->default_image = optarg; break;
    case O_NOOVERLAY: cfg->no_overlay = true; break;
    case O_NOIDMAP: cfg->no_idmap = true; break;
    case O_NOZYGOTE: cfg->no_zygote = true; break;
    case O_BRIDGE: cfg->bridge_name = optarg; break;
    case O_SUBNET: cfg->bridge_subnet = optarg; break;
    case O_DNS: cfg->bridge_dns = optarg; break;
    case O_NPM: cfg->setup.npm_registry = optarg; break;
    case O_PIP: cfg->setup.pip_index = optarg; break;
    case O_GEM: cfg->setup.gem_source = optarg; break;
    case O_APT: cfg->setup.apt_mirror = optarg; break;
    case O_APK: cfg->setup.apk_repository = optarg; break;
    case O_HTTP_PROXY: cfg->setup.http_proxy = optarg; break;
    case O_HTTPS_PROXY: cfg->setup.https_proxy = optarg; break;
    case O_NO_PROXY: cfg->setup.no_proxy = optarg; break;
    case O_SCRATCH:
      if (strcmp(optarg, "tmpfs") != 0 && strcmp(optarg, "disk") != 0) {
        fprintf(stderr, "quiltd: --scratch: expected tmpfs or disk, not '%s'\n", optarg);
        return 2;
      }
      cfg->scratch_disk = strcmp(optarg, "disk") == 0;
      break;
    case O_SCRATCH_SIZE:
      if (!scratch_size_valid(optarg)) {
        fprintf(stderr, "quiltd: --scratch-size: expected N, Nk, Nm, Ng or N%%, not '%s'\n",
                optarg);
        return 2;
      }
      cfg->scratch_size = optarg;
      break;
    case O_MOUNT_DENY:
      if (add_mount_deny(cfg, optarg, deny, argc) < 0) return 2;
      break;
    NUM(O_IMGMAX, "--image-max-size", 1ull << 50, cfg->image_max_bytes = v);
    case O_USERNS:
      if (parse_range(optarg, cfg) < 0) return 2;
      break;
    NUM(O_LOGMAX, "--log-max-size", 1ull << 40, cfg->log_max_bytes = v);
    case O_WARMPOOL: /* 0 is meaningful here: no pool */
      if (strcmp(optarg, "0") == 0)
        cfg->warm_pool = 0;
      else if (parse_uint(optarg, "--warm-pool", 256, &v) < 0)
        return 2;
      else
        cfg->warm_pool = (unsigned)v;
      break;
    case O_VERSION: printf("quiltd %s\n", QUILT_VERSION); return 1;
#undef NUM
    default:
      fprintf(stderr, "quiltd: see quiltd --help\n");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "quiltd: unexpected argument '%s' (see quiltd --help)\n", argv[optind]);
    return 2;
  }
  int rc = check_root(cfg);
  return rc ? rc : check_auth_flags(cfg);
}

int main(int argc, char **argv) {
  struct quiltd_config cfg;
  quiltd_default_config(&cfg);
  cleanup_free const char **deny = calloc((size_t)argc + 1, sizeof *deny);
  int rc = parse_args(argc, argv, &cfg, deny);
  if (rc)
    return rc == 1 ? 0 : 2;
  struct quiltd *d = calloc(1, sizeof *d);
  struct qerr err = QERR_INIT;
  if (!d || quiltd_init(d, &cfg, &err) < 0) {
    fprintf(stderr, "quiltd: %s\n", d ? err.msg : "out of memory");
    free(d);
    return 1;
  }
  const char *tcp_auth = d->auth.token ? " (bearer token)" : " (NO AUTHENTICATION)";
  log_info("quiltd %s (pid %d) serving%s%s%s%s%s, root %s, cgroups %s", QUILT_VERSION, getpid(),
           d->unix_l.fd >= 0 ? " unix:" : "", d->unix_l.fd >= 0 ? cfg.socket_path : "",
           d->tcp_l.fd >= 0 ? " tcp:" : "", d->tcp_l.fd >= 0 ? cfg.listen_addr : "",
           d->tcp_l.fd >= 0 ? tcp_auth : "",
           cfg.root_dir, d->cgroup_mode);
  rc = quiltd_run(d, &err);
  if (rc < 0)
    log_error("%s", err.msg);
  quiltd_free(d);
  free(d);
  log_info("quiltd stopped");
  return rc < 0 ? 1 : 0;
}
