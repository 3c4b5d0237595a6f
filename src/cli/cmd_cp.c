/* quilt-cli cp: files between the host and a container, with docker cp's
 * rules (CopyIn / CopyOut).
 *
 * The archive is made or unpacked here with libarchive, on a thread that
 * talks to the call through a pipe: the call's callbacks push (CopyOut) or
 * pull (CopyIn) bytes while libarchive pulls or pushes them. Unpacking on
 * the host is done from the destination directory's fd with libarchive's
 * SECURE_* flags: an entry with `..`, an absolute name, or a path through a
 * symlink (one on the host, or one an earlier entry made) is refused, and
 * device nodes are skipped (a container's root could otherwise plant one
 * that opens a host disk). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ctr.h"
#include "common/cleanup.h"
#include "grpc/status.h"
#include "quilt.pb-c.h"

#define CHUNK (256 * 1024)

struct cp_args {
  bool archive, follow;
  const char *container;        /* the side in the container */
  const char *cpath;
  const char *local;            /* the host side, or "-" */
  bool out;                     /* container -> host */
};

/* What an archive thread reports. */
struct tar_result {
  char msg[512];
  uint64_t bytes, entries;
  bool failed;
};

static void set_msg(struct tar_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(struct tar_result *r, const char *fmt, ...) {
  if (r->failed)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
  r->failed = true;
}

static int fail(const struct cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const struct cli_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "quilt-cli: %s: ", ctx->cmd->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

/* A failed call: "no such container: REF" when that is what it says. */
static int report(struct cli_ctx *ctx, const struct cp_args *a, const struct qerr *err) {
  if (err->status == GRPC_NOT_FOUND && strncmp(err->msg, "no container with", 17) == 0)
    return fail(ctx, "no such container: %s", a->container);
  return ctr_report(ctx, err);
}

/* "NAME:PATH" names a container's path when NAME has no '/': a host path
 * with a colon is written ./a:b. */
static bool split_container(const char *arg, const char **ref, const char **path, char *buf,
                            size_t cap) {
  const char *colon = strchr(arg, ':');
  if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)) ||
      (size_t)(colon - arg) >= cap)
    return false;
  memcpy(buf, arg, (size_t)(colon - arg));
  buf[colon - arg] = 0;
  *ref = buf;
  *path = colon + 1;
  return true;
}

/* path without its trailing slashes (but "/" stays "/"), into tmp. */
static void trim_slashes(const char *path, char tmp[PATH_MAX]) {
  snprintf(tmp, PATH_MAX, "%s", path);
  size_t n = strlen(tmp);
  while (n > 1 && tmp[n - 1] == '/')
    tmp[--n] = 0;
}

/* The last component, ignoring trailing slashes. */
static void base_of(const char *path, char *out, size_t cap) {
  char tmp[PATH_MAX];
  trim_slashes(path, tmp);
  snprintf(out, cap, "%s", basename(tmp));
}

static void dir_of(const char *path, char *out, size_t cap) {
  char tmp[PATH_MAX];
  trim_slashes(path, tmp);
  snprintf(out, cap, "%s", dirname(tmp));
}

static bool ends_with_dot(const char *p) {
  size_t n = strlen(p);
  return (n >= 2 && strcmp(p + n - 2, "/.") == 0) || strcmp(p, ".") == 0;
}

static bool ends_with_slash(const char *p) {
  size_t n = strlen(p);
  return n && p[n - 1] == '/';
}

/* An entry's name with its first component replaced by `root` ("" drops
 * it; NULL keeps it). NULL when the entry is the root and root is "". */
static const char *renamed(const char *name, const char *root, char *buf, size_t cap) {
  if (!root)
    return name;
  while (name[0] == '.' && name[1] == '/')
    name += 2;
  const char *rest = strchr(name, '/');
  rest = rest ? rest + 1 : "";
  while (*rest == '/')
    rest++;
  if (!*root) {
    if (!*rest)
      return NULL;
    snprintf(buf, cap, "%s", rest);
  } else {
    snprintf(buf, cap, "%s%s%s", root, *rest ? "/" : "", rest);
  }
  return buf;
}

/* ------------------------------------------------------------ out */

/* Absolute names and `..` are refused before any renaming could hide them
 * (libarchive refuses them again after). */
static bool name_ok(const char *name) {
  if (name[0] == '/')
    return false;
  for (const char *p = name; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return false;
    p += n;
    p += *p == '/';
  }
  return true;
}

struct unpack {
  int fd;                       /* read end of the pipe */
  int dirfd;                    /* where to extract */
  const char *root;             /* see renamed() */
  bool archive;                 /* -a: owners from the archive */
  struct tar_result res;
};

/* Runs on the thread: the pipe's bytes into the destination directory. */
static void *unpack_main(void *arg) {
  struct unpack *u = arg;
  struct archive *in = archive_read_new(), *out = archive_write_disk_new();
  struct archive_entry *e;
  char name[PATH_MAX * 2], link[PATH_MAX * 2];
  int r = ARCHIVE_FATAL;
  archive_read_support_format_tar(in);
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                                          ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                          (u->archive ? ARCHIVE_EXTRACT_OWNER : 0));
  if (fchdir(u->dirfd) < 0) {
    set_msg(&u->res, "entering the destination: %s", strerror(errno));
    goto out;
  }
  if (archive_read_open_fd(in, u->fd, CHUNK) != ARCHIVE_OK) {
    set_msg(&u->res, "reading the archive: %s", archive_error_string(in));
    goto out;
  }
  while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    const char *orig = archive_entry_pathname(e);
    const char *hl = archive_entry_hardlink(e);
    if (!orig || !name_ok(orig) || (hl && !name_ok(hl))) {
      set_msg(&u->res, "refusing entry %s: absolute or with ..", orig ? orig : "(no name)");
      break;
    }
    const char *p = renamed(orig, u->root, name, sizeof name);
    if (!p)
      continue; /* the directory itself: DEST is already there */
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK) {
      fprintf(stderr, "quilt-cli: cp: skipping device node %s\n", orig);
      continue;
    }
    archive_entry_copy_pathname(e, p);
    if (hl) {
      const char *t = renamed(hl, u->root, link, sizeof link);
      archive_entry_copy_hardlink(e, t ? t : ".");
    }
    if (archive_write_header(out, e) < ARCHIVE_WARN) {
      set_msg(&u->res, "%s: %s", p, archive_error_string(out));
      break;
    }
    const void *buf;
    size_t size;
    la_int64_t off;
    int d;
    while ((d = archive_read_data_block(in, &buf, &size, &off)) == ARCHIVE_OK)
      if (archive_write_data_block(out, buf, size, off) < ARCHIVE_WARN)
        break;
    if (d != ARCHIVE_EOF) {
      set_msg(&u->res, "%s: %s", p,
              archive_error_string(d == ARCHIVE_OK ? out : in));
      break;
    }
    if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
      set_msg(&u->res, "%s: %s", p, archive_error_string(out));
      break;
    }
    u->res.entries++;
    if (archive_entry_size(e) > 0)
      u->res.bytes += (uint64_t)archive_entry_size(e);
  }
  if (!u->res.failed && r != ARCHIVE_EOF)
    set_msg(&u->res, "reading the archive: %s", archive_error_string(in));
  if (archive_write_close(out) < ARCHIVE_WARN)
    set_msg(&u->res, "finishing: %s", archive_error_string(out));
out:
  archive_write_free(out);
  archive_read_free(in);
  close(u->fd); /* the writer sees EPIPE if we stopped early */
  return NULL;
}

struct out_call {
  int fd;                       /* where the archive goes: the pipe, or stdout */
  bool have_stat;
  Quilt__V1__CopyStat *stat;    /* a copy of the first message's */
  uint64_t streamed;
  int (*on_stat)(struct out_call *oc);
  void *arg;
};

static int write_full(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int on_chunk(void *arg, ProtobufCMessage *msg) {
  struct out_call *oc = arg;
  Quilt__V1__CopyChunk *c = (void *)msg;
  if (!oc->have_stat) {
    if (!c->stat)
      return -EPROTO;
    oc->have_stat = true;
    size_t len = protobuf_c_message_get_packed_size(&c->stat->base);
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
      return -ENOMEM;
    protobuf_c_message_pack(&c->stat->base, b);
    oc->stat = (Quilt__V1__CopyStat *)protobuf_c_message_unpack(&quilt__v1__copy_stat__descriptor,
                                                                NULL, len, b);
    free(b);
    if (!oc->stat)
      return -ENOMEM;
    int rc = oc->on_stat ? oc->on_stat(oc) : 0;
    if (rc)
      return rc;
  }
  if (c->data.len) {
    oc->streamed += c->data.len;
    int rc = write_full(oc->fd, c->data.data, c->data.len);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Where the archive goes, by docker's rules, once its stat is known:
 * starts the unpacking thread. */
struct out_plan {
  struct cli_ctx *ctx;
  const struct cp_args *a;
  struct unpack u;
  pthread_t thread;
  bool started;
  char root[PATH_MAX];
  char why[PATH_MAX + 128];
};

static int plan_out(struct out_call *oc) {
  struct out_plan *pl = oc->arg;
  const struct cp_args *a = pl->a;
  const Quilt__V1__CopyStat *st = oc->stat;
  bool contents = ends_with_dot(a->cpath);
  struct stat hs;
  bool exists = stat(a->local, &hs) == 0;
  char dir[PATH_MAX];
  const char *root = NULL; /* keep the archive's name */
  if (exists && S_ISDIR(hs.st_mode)) {
    snprintf(dir, sizeof dir, "%s", a->local);
    if (st->is_dir && contents)
      root = "";
  } else if (exists && st->is_dir) {
    snprintf(pl->why, sizeof pl->why, "cannot copy a directory to a file: %s", a->local);
    return 1;
  } else if (!exists && !st->is_dir && ends_with_slash(a->local)) {
    snprintf(pl->why, sizeof pl->why, "destination directory %s does not exist", a->local);
    return 1;
  } else {
    dir_of(a->local, dir, sizeof dir);
    base_of(a->local, pl->root, sizeof pl->root);
    root = pl->root;
  }
  pl->u.root = root;
  pl->u.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pl->u.dirfd < 0) {
    snprintf(pl->why, sizeof pl->why, "%s: %s", dir, strerror(errno));
    return 1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    snprintf(pl->why, sizeof pl->why, "pipe: %s", strerror(errno));
    return 1;
  }
  pl->u.fd = p[0];
  oc->fd = p[1];
  if (pthread_create(&pl->thread, NULL, unpack_main, &pl->u) != 0) {
    close(p[0]);
    snprintf(pl->why, sizeof pl->why, "cannot start a thread");
    return 1;
  }
  pl->started = true;
  return 0;
}

static void print_summary(struct cli_ctx *ctx, uint64_t bytes, uint64_t entries, bool has_entries) {
  if (!ctx->json)
    return;
  struct json_out j;
  json_init(&j, ctx->out, true);
  json_begin_object(&j, NULL);
  json_uint(&j, "bytes", bytes);
  if (has_entries)
    json_uint(&j, "entries", entries);
  json_end_object(&j);
  json_finish(&j);
}

static int run_out(struct cli_ctx *ctx, const struct cp_args *a) {
  Quilt__V1__CopyOutRequest req = QUILT__V1__COPY_OUT_REQUEST__INIT;
  req.container = (char *)a->container;
  req.path = (char *)a->cpath;
  req.follow_link = a->follow;
  bool to_stdout = strcmp(a->local, "-") == 0;
  struct out_plan pl = {.ctx = ctx, .a = a, .u = {.fd = -1, .dirfd = -1, .archive = a->archive}};
  struct out_call oc = {.fd = to_stdout ? STDOUT_FILENO : -1,
                        .on_stat = to_stdout ? NULL : plan_out, .arg = &pl};
  struct qerr err = QERR_INIT;
  int rc = ctr_stream(ctx, QCLIENT_QUILT("CopyOut"), &req.base, &quilt__v1__copy_chunk__descriptor,
                      on_chunk, &oc, 0, &err);
  if (!to_stdout && oc.fd >= 0)
    close(oc.fd); /* the end of the archive for the thread */
  if (pl.started)
    pthread_join(pl.thread, NULL);
  if (pl.u.dirfd >= 0)
    close(pl.u.dirfd);
  if (oc.stat)
    protobuf_c_message_free_unpacked(&oc.stat->base, NULL);
  if (pl.why[0])
    return fail(ctx, "%s", pl.why);
  if (pl.u.res.failed) /* its reason beats the EPIPE the call saw */
    return fail(ctx, "%s", pl.u.res.msg);
  if (rc < 0)
    return report(ctx, a, &err);
  if (!to_stdout)
    print_summary(ctx, pl.u.res.bytes, pl.u.res.entries, true);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ in */

struct pack {
  int fd;                       /* write end of the pipe */
  const char *src;
  const char *root;             /* the name the source gets in the archive; "" for SRC/. */
  bool follow;
  struct tar_result res;
};

static int skip_entry(struct archive_entry *e) {
  return archive_entry_filetype(e) == AE_IFSOCK;
}

/* Runs on the thread: the host tree as a pax tar into the pipe. */
static void *pack_main(void *arg) {
  struct pack *p = arg;
  struct archive *disk = archive_read_disk_new(), *out = archive_write_new();
  struct archive_entry *e = archive_entry_new();
  char name[PATH_MAX * 2], *buf = malloc(CHUNK);
  size_t srclen = strlen(p->src);
  if (!disk || !out || !e || !buf) {
    set_msg(&p->res, "out of memory");
    goto out;
  }
  if (p->follow)
    archive_read_disk_set_symlink_hybrid(disk); /* the source itself only, as docker cp -L */
  else
    archive_read_disk_set_symlink_physical(disk);
  archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                           ARCHIVE_READDISK_NO_FFLAGS);
  archive_write_set_format_pax_restricted(out);
  archive_write_set_bytes_in_last_block(out, 1);
  if (archive_write_open_fd(out, p->fd) != ARCHIVE_OK ||
      archive_read_disk_open(disk, p->src) != ARCHIVE_OK) {
    set_msg(&p->res, "%s: %s", p->src, archive_error_string(archive_errno(out) ? out : disk));
    goto out;
  }
  int r;
  while ((r = archive_read_next_header2(disk, e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    archive_read_disk_descend(disk);
    const char *path = archive_entry_pathname(e);
    const char *rest = strlen(path) > srclen ? path + srclen : "";
    while (*rest == '/')
      rest++;
    if (!*p->root && !*rest)
      continue; /* SRC/.: its contents only */
    if (skip_entry(e))
      continue;
    snprintf(name, sizeof name, "%s%s%s", p->root, *p->root && *rest ? "/" : "", rest);
    archive_entry_copy_pathname(e, name);
    archive_entry_set_uname(e, NULL);
    archive_entry_set_gname(e, NULL);
    if (archive_write_header(out, e) < ARCHIVE_WARN) {
      set_msg(&p->res, "%s: %s", path, archive_error_string(out));
      goto out;
    }
    if (archive_entry_filetype(e) == AE_IFREG) {
      ssize_t n;
      while ((n = archive_read_data(disk, buf, CHUNK)) > 0)
        if (archive_write_data(out, buf, (size_t)n) < 0) {
          set_msg(&p->res, "%s", archive_error_string(out));
          goto out;
        }
      if (n < 0) {
        set_msg(&p->res, "%s: %s", path, archive_error_string(disk));
        goto out;
      }
      p->res.bytes += (uint64_t)archive_entry_size(e);
    }
    p->res.entries++;
  }
  if (r != ARCHIVE_EOF)
    set_msg(&p->res, "%s", archive_error_string(disk));
  else if (archive_write_close(out) != ARCHIVE_OK)
    set_msg(&p->res, "%s", archive_error_string(out));
out:
  free(buf);
  archive_entry_free(e);
  archive_read_free(disk);
  archive_write_free(out);
  close(p->fd);
  return NULL;
}

struct in_call {
  Quilt__V1__CopyInChunk msg;
  const struct cp_args *a;
  const char *dest_dir;
  int fd;                       /* what to send: the pipe, or stdin */
  uint8_t *buf;
  bool started;
  int read_err;
};

static int next_chunk(void *arg, const ProtobufCMessage **out) {
  struct in_call *ic = arg;
  ic->msg = (Quilt__V1__CopyInChunk)QUILT__V1__COPY_IN_CHUNK__INIT;
  *out = &ic->msg.base;
  if (!ic->started) {
    ic->started = true;
    ic->msg.container = (char *)ic->a->container;
    ic->msg.path = (char *)ic->dest_dir;
    ic->msg.archive = ic->a->archive;
    return 1;
  }
  ssize_t n;
  do
    n = read(ic->fd, ic->buf, CHUNK);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    ic->read_err = errno;
    return -EIO;
  }
  if (n == 0)
    return 0;
  ic->msg.data.data = ic->buf;
  ic->msg.data.len = (size_t)n;
  return 1;
}

static int on_response(void *arg, ProtobufCMessage *msg) {
  Quilt__V1__CopyInResponse *r = (void *)msg, *keep = arg;
  keep->bytes = r->bytes;
  keep->entries = r->entries;
  return 0;
}

/* The container's DEST, followed through symlinks: 1 and *st when it is
 * there, 0 when not, or an exit code. */
static int dest_stat(struct cli_ctx *ctx, const struct cp_args *a, bool *is_dir) {
  Quilt__V1__CopyOutRequest req = QUILT__V1__COPY_OUT_REQUEST__INIT;
  req.container = (char *)a->container;
  req.path = (char *)a->cpath;
  req.follow_link = true;
  req.stat_only = true;
  struct out_call oc = {.fd = -1};
  struct qerr err = QERR_INIT;
  int rc = ctr_stream(ctx, QCLIENT_QUILT("CopyOut"), &req.base, &quilt__v1__copy_chunk__descriptor,
                      on_chunk, &oc, CLI_DEFAULT_TIMEOUT_NS, &err);
  if (rc == 0 && oc.stat)
    *is_dir = oc.stat->is_dir;
  if (oc.stat)
    protobuf_c_message_free_unpacked(&oc.stat->base, NULL);
  if (rc == 0)
    return 1;
  if (err.status == GRPC_NOT_FOUND && strncmp(err.msg, "no container with", 17) != 0)
    return 0;
  return -report(ctx, a, &err);
}

static int run_in(struct cli_ctx *ctx, const struct cp_args *a) {
  bool from_stdin = strcmp(a->local, "-") == 0;
  char dest_dir[PATH_MAX], root[PATH_MAX] = "";
  struct stat hs;
  if (!from_stdin && (a->follow ? stat(a->local, &hs) : lstat(a->local, &hs)) < 0)
    return fail(ctx, "%s: %s", a->local, strerror(errno));
  bool src_dir = !from_stdin && S_ISDIR(hs.st_mode);
  bool contents = src_dir && ends_with_dot(a->local);
  bool is_dir = false;
  int there = dest_stat(ctx, a, &is_dir);
  if (there < 0)
    return -there;
  if (from_stdin) {
    if (!there || !is_dir)
      return fail(ctx, "%s must be a directory in the container to extract an archive into it",
                  a->cpath);
    snprintf(dest_dir, sizeof dest_dir, "%s", a->cpath);
  } else if (there && is_dir) {
    snprintf(dest_dir, sizeof dest_dir, "%s", a->cpath);
    if (!contents)
      base_of(a->local, root, sizeof root);
  } else if (there && src_dir) {
    return fail(ctx, "cannot copy a directory to a file: %s", a->cpath);
  } else if (!there && !src_dir && ends_with_slash(a->cpath)) {
    return fail(ctx, "destination directory %s does not exist in the container", a->cpath);
  } else {
    dir_of(a->cpath, dest_dir, sizeof dest_dir);
    base_of(a->cpath, root, sizeof root);
  }
  struct pack pk = {.fd = -1, .src = a->local, .root = root, .follow = a->follow};
  struct in_call ic = {.a = a, .dest_dir = dest_dir, .fd = STDIN_FILENO, .buf = malloc(CHUNK)};
  pthread_t thread;
  bool started = false;
  if (!ic.buf)
    return fail(ctx, "out of memory");
  if (!from_stdin) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      free(ic.buf);
      return fail(ctx, "pipe: %s", strerror(errno));
    }
    pk.fd = p[1];
    ic.fd = p[0];
    if (pthread_create(&thread, NULL, pack_main, &pk) != 0) {
      close(p[0]);
      close(p[1]);
      free(ic.buf);
      return fail(ctx, "cannot start a thread");
    }
    started = true;
  }
  Quilt__V1__CopyInResponse resp = QUILT__V1__COPY_IN_RESPONSE__INIT;
  struct qerr err = QERR_INIT;
  struct qclient *cl = cli_client(ctx);
  int rc = cl ? qclient_bidi(cl, QCLIENT_QUILT("CopyIn"), next_chunk, &ic,
                             &quilt__v1__copy_in_response__descriptor, on_response, &resp,
                             cli_timeout(ctx, 0), &err)
              : -ENOTCONN;
  if (started) {
    close(ic.fd); /* a thread still writing sees EPIPE and stops */
    pthread_join(thread, NULL);
  }
  free(ic.buf);
  if (!cl)
    return CLI_EXIT_FAIL;
  if (pk.res.failed)
    return fail(ctx, "%s", pk.res.msg);
  if (ic.read_err)
    return fail(ctx, "reading stdin: %s", strerror(ic.read_err));
  if (rc < 0)
    return report(ctx, a, &err);
  print_summary(ctx, resp.bytes, resp.entries, true);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ command */

static const struct option cp_opts[] = {
    {"archive", no_argument, NULL, 'a'},
    {"follow-link", no_argument, NULL, 'L'},
    {NULL, 0, NULL, 0},
};

static int run_cp(struct cli_ctx *ctx, int argc, char **argv) {
  struct cp_args a = {0};
  int code = CLI_EXIT_OK, c;
  while ((c = cli_getopt(ctx, argc, argv, "aL", cp_opts, &code)) != -1) {
    switch (c) {
    case CLI_OPT_EXIT: return code;
    case 'a': a.archive = true; break;
    case 'L': a.follow = true; break;
    }
  }
  if (argc - optind != 2)
    return cli_cmd_usage_error(ctx, "expected CONTAINER:SRC_PATH DEST_PATH or SRC_PATH CONTAINER:DEST_PATH");
  char ref_a[256], ref_b[256];
  const char *ra, *pa, *rb, *pb;
  bool ca = split_container(argv[optind], &ra, &pa, ref_a, sizeof ref_a);
  bool cb = split_container(argv[optind + 1], &rb, &pb, ref_b, sizeof ref_b);
  if (ca == cb)
    return cli_cmd_usage_error(ctx, ca ? "copying between containers is not supported"
                                       : "one of the paths must be CONTAINER:PATH");
  a.out = ca;
  a.container = ca ? ra : rb;
  a.cpath = ca ? pa : pb;
  a.local = ca ? argv[optind + 1] : argv[optind];
  if (a.cpath[0] != '/')
    return cli_cmd_usage_error(ctx, "the path in the container must be absolute: %s", a.cpath);
  if (!a.local[0])
    return cli_cmd_usage_error(ctx, "empty host path");
  if (ctx->json && a.out && strcmp(a.local, "-") == 0)
    return cli_cmd_usage_error(ctx, "--json and - (the archive on stdout) do not go together");
  /* A reader or writer that went away is an error to report, not a signal. */
  signal(SIGPIPE, SIG_IGN);
  return a.out ? run_out(ctx, &a) : run_in(ctx, &a);
}

const struct cli_command cli_cmd_cp = {
    .name = "cp",
    .summary = "Copy files between a container and the host",
    .usage = "cp [-a] [-L] [--json] CONTAINER:SRC_PATH DEST_PATH|-\n"
             "       quilt-cli cp [-a] [-L] [--json] SRC_PATH|- CONTAINER:DEST_PATH\n"
             "\n"
             "Copies a file or a directory tree out of or into a container, running or\n"
             "stopped, as docker cp does. Paths in the container are absolute and resolved\n"
             "inside it: its symlinks never lead to the host.\n"
             "  - a file onto an existing directory goes inside it; onto another path it\n"
             "    takes that name (the parent must exist);\n"
             "  - a directory into an existing directory DEST becomes DEST/NAME; to a path\n"
             "    that does not exist, it is created there; SRC/. copies the contents;\n"
             "  - '-' is a tar archive on stdout (out) or stdin (in, extracted into the\n"
             "    directory DEST_PATH).\n"
             "Files copied in belong to the container's root, files copied out to you.\n"
             "\n"
             "Options:\n"
             "  -a, --archive       keep the owners (uid:gid) of the source\n"
             "  -L, --follow-link   follow a symlink at SRC_PATH (only that one)\n"
             "      --json          print {bytes, entries}\n"
             "  -h, --help          show this help\n",
    .run = run_cp,
};
