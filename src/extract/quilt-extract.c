/* quilt-extract: unpacks one tar stream read from stdin (plain, gzip, bzip2,
 * xz, lzma, lzip, zstd, lz4 or compress) into an empty staging directory,
 * confined to it. The image store (src/runtime/images.c) runs it once per
 * import; docs/images.md describes the rules and the sandbox.
 *
 *   quilt-extract --staging DIR [--rootfs-dir NAME] [--max-bytes N]
 *                 [--max-entries N] [--allow-devices] [--no-sync]
 *
 * Without --rootfs-dir the archive is a rootfs, extracted into DIR itself.
 * With it, the tree goes to DIR/NAME, and `docker save` archives and OCI
 * image layouts are recognised (by their first entry), spooled under
 * DIR/.quilt-spool, their layers applied in order into DIR/NAME with
 * whiteouts, and the image config written to DIR/.quilt-config.
 *
 * Exit 0 with "ok bytes=N entries=M" on stdout: N is the sum of the entry
 * sizes, M the number of entries (" warnings=K" is appended when metadata
 * such as an xattr could not be restored). Exit 2 with one line on stderr
 * when the archive is refused (bad entry, corrupt or truncated stream, over
 * a limit); exit 1 with one line on stderr for anything else (usage, I/O,
 * the sandbox). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extract/diag.h"
#include "extract/extract_check.h"
#include "extract/layers.h"
#include "extract/manifest.h"
#include "extract/sandbox.h"

enum { EXIT_BAD_INPUT = 2, EXIT_INTERNAL = 1 };

/* Sanitizer builds: LeakSanitizer cannot run in the sandbox (it needs
 * /proc and ptrace); undefined behaviour must end the run, not scroll by. */
#ifndef QUILT_EXTRACT_FUZZ
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }
#endif

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...);
#ifdef QUILT_EXTRACT_FUZZ
/* tests/fuzz/fuzz_extract.c includes this file and defines this: a refused
 * archive returns to the harness instead of ending the process. */
__attribute__((noreturn)) static void fuzz_bail(int code);
#endif

static void die(int code, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  size_t len = diag_line(line, sizeof line, fmt, ap);
  va_end(ap);
#ifdef QUILT_EXTRACT_FUZZ
  fuzz_bail(code);
#endif
  ssize_t w = write(2, line, len);
  (void)w;
  exit(code);
}

struct opts {
  int in_fd;               /* the archive: stdin */
  const char *staging;
  const char *rootfs_dir;  /* --rootfs-dir: image archives recognised */
  uint64_t max_bytes;    /* 0: no limit */
  uint64_t max_entries;  /* 0: no limit */
  bool allow_devices;
  bool sync;
  bool check_sandbox;
};

static uint64_t parse_u64(const char *flag, const char *s) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-')
    die(EXIT_INTERNAL, "%s: expected a number", flag);
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    die(EXIT_INTERNAL, "%s: expected a number, got \"%s\"", flag, s);
  return v;
}

static void usage_error(const char *msg) {
  die(EXIT_INTERNAL,
      "%s (usage: quilt-extract --staging DIR [--rootfs-dir NAME] [--max-bytes N] "
      "[--max-entries N] [--allow-devices] [--no-sync])",
      msg);
}

static void parse_args(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.sync = true};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--staging") == 0 && v) {
      o->staging = v;
      i++;
    } else if (strcmp(a, "--max-bytes") == 0 && v) {
      o->max_bytes = parse_u64(a, v);
      i++;
    } else if (strcmp(a, "--max-entries") == 0 && v) {
      o->max_entries = parse_u64(a, v);
      i++;
    } else if (strcmp(a, "--rootfs-dir") == 0 && v) {
      if (!*v || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, "..") || v[0] == '.')
        usage_error("--rootfs-dir: expected a plain name");
      o->rootfs_dir = v;
      i++;
    } else if (strcmp(a, "--allow-devices") == 0) {
      o->allow_devices = true;
    } else if (strcmp(a, "--no-sync") == 0) {
      o->sync = false;
    } else if (strcmp(a, "--check-sandbox") == 0) {
      o->check_sandbox = true;
    } else {
      char msg[256];
      snprintf(msg, sizeof msg, "unknown or incomplete option \"%.100s\"", a);
      usage_error(msg);
    }
  }
  if (!o->staging)
    usage_error("--staging is required");
}

static enum xc_type entry_type(struct archive_entry *e) {
  if (archive_entry_hardlink(e))
    return XC_HARDLINK;
  switch (archive_entry_filetype(e)) {
  case AE_IFREG:
    return XC_FILE;
  case AE_IFDIR:
    return XC_DIR;
  case AE_IFLNK:
    return XC_SYMLINK;
  case AE_IFIFO:
    return XC_FIFO;
  case AE_IFCHR:
    return XC_CHR;
  case AE_IFBLK:
    return XC_BLK;
  default:
    return XC_OTHER;
  }
}

/* Out of space or memory is our problem; anything else libarchive refuses
 * to write comes from what the archive asked for. */
static int write_error_class(struct archive *a) {
  switch (archive_errno(a)) {
  case ENOSPC:
  case EDQUOT:
  case EIO:
  case ENOMEM:
  case EROFS:
  case EMFILE:
  case ENFILE:
    return EXIT_INTERNAL;
  default:
    return EXIT_BAD_INPUT;
  }
}

static const char *errstr(struct archive *a) {
  const char *s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

/* A directory that existed when its entry came (the root, or a parent
 * created for an earlier entry) gets its times from libarchive at once;
 * later entries inside it change its mtime again, so its times are set
 * once more at the end. */
struct late_time {
  char *path;
  struct timespec ts[2];   /* atime, mtime */
};

struct alias {
  char *path, *target;
};

struct spool {
  int fd;
  struct xc_tree *tree;
  uint64_t bytes, entries;
  struct alias *al;
  size_t n_al;
};

struct strv {
  char **v;
  size_t n;
};

struct state {
  const struct opts *o;
  struct archive *in, *out;
  struct xc_tree *tree;
  struct late_time *late;
  size_t n_late, cap_late;
  uint64_t bytes, entries, warnings;
  const char *ctx;      /* "" or "layer N: " */
  size_t layers;
  int rootfd;           /* image layers: the rootfs, for lay_prepare; else -1 */
  char name[256];       /* quoted name of the current entry */
  char last[256];       /* quoted name of the last complete entry */
  /* Image archives. Held here rather than in locals so that everything a
   * run allocates is reachable from the state when die() is left by a jump
   * (the fuzz harness frees it); the helper itself just exits. */
  int topfd;            /* the staging root: spool and config live there */
  struct spool sp;
  struct archive_entry *root;
  struct mf_plan plan;
  char *cjson, *lines;
  struct strv opaque, gone;
};

static void over_bytes(struct state *s) {
  die(EXIT_BAD_INPUT, "%sentry %s: archive expands past the limit of %llu bytes", s->ctx, s->name,
      (unsigned long long)s->o->max_bytes);
}

static void copy_data(struct state *s) {
  for (;;) {
    const void *buf;
    size_t len;
    la_int64_t off;
    int r = archive_read_data_block(s->in, &buf, &len, &off);
    if (r == ARCHIVE_EOF)
      return;
    if (r < ARCHIVE_WARN)
      die(archive_errno(s->in) == ENOMEM ? EXIT_INTERNAL : EXIT_BAD_INPUT, "%sentry %s: %s",
          s->ctx, s->name, errstr(s->in));
    if (r == ARCHIVE_WARN)
      s->warnings++;
    /* The header's size was checked already; count what really arrives. */
    s->bytes += len;
    if (s->o->max_bytes && s->bytes > s->o->max_bytes)
      over_bytes(s);
    la_ssize_t w = archive_write_data_block(s->out, buf, len, off);
    if (w < ARCHIVE_WARN)
      die(write_error_class(s->out), "%sentry %s: %s", s->ctx, s->name, errstr(s->out));
    if (w == ARCHIVE_WARN)
      s->warnings++;
  }
}

static void remember_time(struct state *s, const char *path, struct archive_entry *e) {
  struct late_time lt = {.ts = {{0, UTIME_OMIT},
                                {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}}};
  if (archive_entry_atime_is_set(e))
    lt.ts[0] = (struct timespec){archive_entry_atime(e), archive_entry_atime_nsec(e)};
  /* A path listed twice is applied twice, in order: the last one wins. */
  if (s->n_late == s->cap_late) {
    s->cap_late = s->cap_late ? s->cap_late * 2 : 16;
    s->late = realloc(s->late, s->cap_late * sizeof *s->late);
    if (!s->late)
      die(EXIT_INTERNAL, "out of memory");
  }
  if (!(lt.path = strdup(path)))
    die(EXIT_INTERNAL, "out of memory");
  s->late[s->n_late++] = lt;
}

static void extract_entry(struct state *s, struct archive_entry *e) {
  const char *path = archive_entry_pathname(e);
  xc_quote(path ? path : "", s->name, sizeof s->name);
  if (!path)
    die(EXIT_BAD_INPUT, "%sentry after %s: unreadable path name", s->ctx,
        s->last[0] ? s->last : "the start");
  if (++s->entries > s->o->max_entries && s->o->max_entries)
    die(EXIT_BAD_INPUT, "%sentry %s: archive has more than %llu entries", s->ctx, s->name,
        (unsigned long long)s->o->max_entries);

  struct xc_entry xe = {.path = path, .type = entry_type(e), .link = archive_entry_hardlink(e)};
  if (xe.type == XC_CHR || xe.type == XC_BLK) {
    xe.dev_major = (unsigned)archive_entry_rdevmajor(e);
    xe.dev_minor = (unsigned)archive_entry_rdevminor(e);
  }
  static char norm[PATH_MAX], link[PATH_MAX];
  char why[768];
  bool existed;
  enum xc_result r =
      xc_check(s->tree, &xe, s->o->allow_devices, norm, link, &existed, why, sizeof why);
  if (r == XC_NOMEM)
    die(EXIT_INTERNAL, "%sentry %s: out of memory", s->ctx, s->name);
  if (r != XC_OK)
    die(EXIT_BAD_INPUT, "%sentry %s: %s", s->ctx, s->name, why);

  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (size < 0)
    die(EXIT_BAD_INPUT, "%sentry %s: negative size", s->ctx, s->name);
  if (s->o->max_bytes && (uint64_t)size > s->o->max_bytes - s->bytes)
    over_bytes(s);

  /* Across layers, a later layer may replace a directory by a file or the
   * reverse; parents left by earlier layers must be real directories. */
  if (s->rootfd >= 0) {
    int pr = lay_prepare(s->rootfd, norm, xe.type == XC_DIR, why, sizeof why);
    if (pr > 0)
      die(EXIT_BAD_INPUT, "%sentry %s: %s", s->ctx, s->name, why);
    if (pr < 0)
      die(EXIT_INTERNAL, "%sentry %s: %s", s->ctx, s->name, strerror(-pr));
  }
  /* libarchive acts on exactly the paths that were checked. */
  archive_entry_copy_pathname(e, norm);
  if (xe.type == XC_HARDLINK)
    archive_entry_copy_hardlink(e, link);

  int w = archive_write_header(s->out, e);
  if (w < ARCHIVE_WARN)
    die(write_error_class(s->out), "%sentry %s: %s", s->ctx, s->name, errstr(s->out));
  if (w == ARCHIVE_WARN)
    s->warnings++;
  if (size > 0)
    copy_data(s);
  w = archive_write_finish_entry(s->out);
  if (w < ARCHIVE_WARN)
    die(write_error_class(s->out), "%sentry %s: %s", s->ctx, s->name, errstr(s->out));
  if (w == ARCHIVE_WARN)
    s->warnings++;
  if (xe.type == XC_DIR && existed && archive_entry_mtime_is_set(e))
    remember_time(s, norm, e);
  memcpy(s->last, s->name, sizeof s->last);
}

static void drain_input(int fd) {
  static char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
      return;
    if (n < 0 && errno != EINTR)
      return; /* nothing left to protect: the image is complete */
  }
}

static struct archive *new_reader(void) {
  struct archive *in = archive_read_new();
  if (!in)
    die(EXIT_INTERNAL, "out of memory");
  /* Tar in all its dialects (ustar, pax, GNU, v7) and the compressions
   * libarchive decodes in-process; never an external program. */
  archive_read_support_format_tar(in);
  archive_read_support_filter_gzip(in);
  archive_read_support_filter_bzip2(in);
  archive_read_support_filter_xz(in);
  archive_read_support_filter_lzma(in);
  archive_read_support_filter_lzip(in);
  archive_read_support_filter_zstd(in);
  archive_read_support_filter_lz4(in);
  archive_read_support_filter_compress(in);
  return in;
}

static struct archive *new_writer(void) {
  struct archive *out = archive_write_disk_new();
  if (!out)
    die(EXIT_INTERNAL, "out of memory");
  /* Not ARCHIVE_EXTRACT_UNLINK: with it, libarchive removes a symlink
   * found in the middle of a path and carries on instead of refusing. No
   * ACLs or file flags (immutable, append-only) either. No name lookups:
   * owners are numeric, and NSS would load code from the image. */
  int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
              ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;
  archive_write_disk_set_options(out, flags);
  return out;
}

/* Reads the next header; dies on a broken stream. 0 at the end. */
static int next_header(struct state *s, struct archive_entry **e) {
  int r = archive_read_next_header(s->in, e);
  if (r == ARCHIVE_EOF)
    return 0;
  if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY) {
    if (archive_errno(s->in) == ENOMEM)
      die(EXIT_INTERNAL, "%sarchive: out of memory", s->ctx);
    if (s->last[0])
      die(EXIT_BAD_INPUT, "%sarchive: %s (after entry %s)", s->ctx, errstr(s->in), s->last);
    die(EXIT_BAD_INPUT, "%sarchive: %s", s->ctx, errstr(s->in));
  }
  if (r == ARCHIVE_WARN)
    s->warnings++;
  return 1;
}

/* Directory permissions and times are applied last (a read-only directory
 * must not stop its own contents). */
static void finish_writer(struct state *s) {
  if (archive_write_close(s->out) < ARCHIVE_WARN)
    die(write_error_class(s->out), "%sfinishing directories: %s", s->ctx, errstr(s->out));
  /* The paths were checked: every component is a directory of this
   * archive. Setting times changes no other directory. */
  for (size_t i = 0; i < s->n_late; i++) {
    if (utimensat(AT_FDCWD, s->late[i].path, s->late[i].ts, AT_SYMLINK_NOFOLLOW) < 0)
      s->warnings++;
    free(s->late[i].path);
  }
  free(s->late);
  s->late = NULL;
  s->n_late = s->cap_late = 0;
  archive_write_free(s->out);
  s->out = NULL;
}

/* ------------------------------------------------------------ image archives
 *
 * An OCI image layout or a `docker save` archive is recognised by its first
 * entry (see image_marker). Its entries are spooled under /.quilt-spool
 * (only directories and regular files are created there; symlinks are kept
 * in memory and resolved lexically, hard links made with linkat), then the
 * manifest names the config and the layers, applied bottom first into the
 * rootfs directory (the working directory), each read twice: once for its
 * whiteouts, applied first (they only remove what lower layers made), once
 * to extract it. */

#define SPOOL ".quilt-spool"     /* in the staging root (s->topfd) */
#define CONFIG_OUT ".quilt-config"

static bool is_hex_str(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
      return false;
  return true;
}

/* The first entry of an image archive: oci-layout, index.json,
 * manifest.json, repositories, blobs/..., <64 hex>/... or <64 hex>.json. */
static bool image_marker(const char *norm) {
  size_t len = strcspn(norm, "/");
  bool top = norm[len] == 0;
  if (len == 5 && !memcmp(norm, "blobs", 5))
    return true;
  if (len == 64 && is_hex_str(norm, 64))
    return true;
  if (!top)
    return false;
  return !strcmp(norm, "oci-layout") || !strcmp(norm, "index.json") ||
         !strcmp(norm, "manifest.json") || !strcmp(norm, "repositories") ||
         (len == 69 && is_hex_str(norm, 64) && !strcmp(norm + 64, ".json"));
}

static void spool_mkdirs(struct state *s, struct spool *sp, const char *path, bool last) {
  char pre[PATH_MAX];
  size_t n = strlen(path);
  for (size_t i = 0; i <= n; i++) {
    if (path[i] != '/' && (path[i] || !last))
      continue;
    if (!path[i] && !last)
      break;
    memcpy(pre, path, i);
    pre[i] = 0;
    if (mkdirat(sp->fd, pre, 0700) < 0 && errno != EEXIST)
      die(EXIT_INTERNAL, "image archive: entry %s: creating %s: %s", s->name, pre,
          strerror(errno));
  }
}

static void spool_entry(struct state *s, struct spool *sp, struct archive_entry *e) {
  const char *path = archive_entry_pathname(e);
  xc_quote(path ? path : "", s->name, sizeof s->name);
  if (!path)
    die(EXIT_BAD_INPUT, "image archive: unreadable path name after %s",
        s->last[0] ? s->last : "the start");
  if (++sp->entries > s->o->max_entries && s->o->max_entries)
    die(EXIT_BAD_INPUT, "image archive: entry %s: archive has more than %llu entries", s->name,
        (unsigned long long)s->o->max_entries);
  struct xc_entry xe = {.path = path, .type = entry_type(e), .link = archive_entry_hardlink(e)};
  static char norm[PATH_MAX], link[PATH_MAX];
  char why[768];
  enum xc_result r = xc_check(sp->tree, &xe, false, norm, link, NULL, why, sizeof why);
  if (r == XC_NOMEM)
    die(EXIT_INTERNAL, "image archive: out of memory");
  if (r != XC_OK)
    die(EXIT_BAD_INPUT, "image archive: entry %s: %s", s->name, why);
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (strcmp(norm, ".") == 0 && xe.type == XC_DIR) {
    /* the root */
  } else if (xe.type == XC_DIR) {
    spool_mkdirs(s, sp, norm, true);
  } else if (xe.type == XC_FILE) {
    spool_mkdirs(s, sp, norm, false);
    if (size < 0 || (s->o->max_bytes && (uint64_t)size > s->o->max_bytes - sp->bytes))
      die(EXIT_BAD_INPUT, "image archive: entry %s: archive is larger than the limit of %llu bytes",
          s->name, (unsigned long long)s->o->max_bytes);
    int fd = openat(sp->fd, norm, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
      die(EXIT_INTERNAL, "image archive: entry %s: %s", s->name, strerror(errno));
    for (;;) {
      const void *buf;
      size_t len;
      la_int64_t off;
      int rr = archive_read_data_block(s->in, &buf, &len, &off);
      if (rr == ARCHIVE_EOF)
        break;
      if (rr < ARCHIVE_WARN)
        die(archive_errno(s->in) == ENOMEM ? EXIT_INTERNAL : EXIT_BAD_INPUT,
            "image archive: entry %s: %s", s->name, errstr(s->in));
      sp->bytes += len;
      if (s->o->max_bytes && sp->bytes > s->o->max_bytes)
        die(EXIT_BAD_INPUT,
            "image archive: entry %s: archive is larger than the limit of %llu bytes", s->name,
            (unsigned long long)s->o->max_bytes);
      const char *p = buf;
      while (len) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
          continue;
        if (w <= 0)
          die(EXIT_INTERNAL, "image archive: entry %s: spooling: %s", s->name,
              strerror(w < 0 ? errno : EIO));
        p += w, len -= (size_t)w, off += w;
      }
    }
    close(fd);
  } else if (xe.type == XC_HARDLINK) {
    spool_mkdirs(s, sp, norm, false);
    unlinkat(sp->fd, norm, 0);
    if (linkat(sp->fd, link, sp->fd, norm, 0) < 0)
      die(EXIT_BAD_INPUT, "image archive: entry %s: hard link: %s", s->name, strerror(errno));
  } else if (xe.type == XC_SYMLINK) {
    const char *t = archive_entry_symlink(e);
    struct alias *na = realloc(sp->al, (sp->n_al + 1) * sizeof *na);
    if (!na || !t)
      die(na ? EXIT_BAD_INPUT : EXIT_INTERNAL, "image archive: entry %s: %s", s->name,
          na ? "symlink without a target" : "out of memory");
    sp->al = na;
    sp->al[sp->n_al].path = strdup(norm);
    sp->al[sp->n_al].target = strdup(t);
    if (!sp->al[sp->n_al].path || !sp->al[sp->n_al].target)
      die(EXIT_INTERNAL, "out of memory");
    sp->n_al++;
  } else {
    die(EXIT_BAD_INPUT, "image archive: entry %s: only files, directories and links may appear "
                        "in an image archive", s->name);
  }
  memcpy(s->last, s->name, sizeof s->last);
}

/* Joins and cleans a path lexically; ".." may not climb above the top. */
static const char *lex_clean(const char *in, char *out, size_t cap) {
  size_t o = 0;
  const char *p = in;
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p)
      break;
    size_t len = strcspn(p, "/");
    if (len == 1 && p[0] == '.') {
    } else if (len == 2 && p[0] == '.' && p[1] == '.') {
      if (!o)
        return "leaves the archive";
      while (o && out[o - 1] != '/')
        o--;
      if (o)
        o--;
    } else {
      if (o + len + 2 >= cap)
        return "path too long";
      if (o)
        out[o++] = '/';
      memcpy(out + o, p, len);
      o += len;
    }
    p += len;
  }
  out[o] = 0;
  return NULL;
}

/* Opens a file of the archive by the name the manifest gives; -1 with why. */
static int open_spooled(struct spool *sp, const char *ref, char *why, size_t whylen) {
  char norm[PATH_MAX], tmp[PATH_MAX], q[256];
  xc_quote(ref, q, sizeof q);
  const char *reason = xc_normalize(ref, norm, sizeof norm);
  if (reason) {
    snprintf(why, whylen, "%s: %s", q, reason);
    return -1;
  }
  for (int hops = 0;; hops++) {
    bool again = false;
    for (size_t i = 0; i < sp->n_al && !again; i++) {
      const struct alias *a = &sp->al[i];
      size_t l = strlen(a->path);
      if (strncmp(norm, a->path, l) || (norm[l] && norm[l] != '/'))
        continue;
      if (hops >= 16 || a->target[0] == '/') {
        snprintf(why, whylen, "%s: symlink %s", q, hops >= 16 ? "loop" : "leaves the archive");
        return -1;
      }
      const char *slash = strrchr(a->path, '/');
      int n = snprintf(tmp, sizeof tmp, "%.*s/%s%s", slash ? (int)(slash - a->path) : 0, a->path,
                       a->target, norm + l);
      if (n < 0 || (size_t)n >= sizeof tmp || (reason = lex_clean(tmp, norm, sizeof norm))) {
        snprintf(why, whylen, "%s: symlink %s", q, reason ? reason : "path too long");
        return -1;
      }
      again = true;
    }
    if (!again)
      break;
  }
  if (!norm[0]) {
    snprintf(why, whylen, "%s is not a file", q);
    return -1;
  }
  int fd = openat(sp->fd, norm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    snprintf(why, whylen, "%s %s", q,
             fd < 0 && (e == ENOENT || e == ENOTDIR) ? "is not in the archive"
             : fd < 0                                 ? strerror(e)
                                                      : "is not a file");
    return -1;
  }
  return fd;
}

static char *spool_load(void *arg, const char *path, size_t *len, char *why, size_t whylen) {
  struct spool *sp = arg;
  int fd = open_spooled(sp, path, why, whylen);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size > (16 << 20)) {
    close(fd);
    snprintf(why, whylen, "JSON file larger than 16 MiB");
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf)
    die(EXIT_INTERNAL, "out of memory");
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = 0;
  *len = got;
  return buf;
}

static const char *base_of(const char *norm) {
  const char *sl = strrchr(norm, '/');
  return sl ? sl + 1 : norm;
}

static void strv_push(struct strv *sv, const char *parent, size_t plen, const char *name) {
  char **nv = realloc(sv->v, (sv->n + 1) * sizeof *nv);
  if (!nv)
    die(EXIT_INTERNAL, "out of memory");
  sv->v = nv;
  if (asprintf(&nv[sv->n], "%.*s%s%s", (int)plen, parent, plen && *name ? "/" : "", name) < 0)
    die(EXIT_INTERNAL, "out of memory");
  sv->n++;
}

static void strv_free(struct strv *sv) {
  for (size_t i = 0; i < sv->n; i++)
    free(sv->v[i]);
  free(sv->v);
  *sv = (struct strv){0};
}

/* A whiteout entry: 1 (*opaque tells which kind, target filled), 2 for
 * other ".wh..wh." names (ignored), 0 for an ordinary entry. */
static int whiteout_of(const char *norm, bool *opaque) {
  const char *b = base_of(norm);
  if (strncmp(b, ".wh.", 4))
    return 0;
  if (!strcmp(b, ".wh..wh..opq")) {
    *opaque = true;
    return 1;
  }
  if (!strncmp(b, ".wh..wh.", 8))
    return 2;
  *opaque = false;
  return 1;
}

static void apply_layer(struct state *s, struct spool *sp, int rootfd, size_t idx,
                        const char *ref) {
  char ctx[64], why[768];
  snprintf(ctx, sizeof ctx, "layer %zu: ", idx + 1);
  s->ctx = ctx;
  s->last[0] = 0;
  int fd = open_spooled(sp, ref, why, sizeof why);
  if (fd < 0)
    die(EXIT_BAD_INPUT, "%s%s", ctx, why);

  /* Pass 1: the whiteouts, and the limits from the headers. */
  struct strv *opaque = &s->opaque, *gone = &s->gone;
  s->in = new_reader();
  if (archive_read_open_fd(s->in, fd, 1 << 20) != ARCHIVE_OK)
    die(EXIT_BAD_INPUT, "%sarchive: %s", ctx, errstr(s->in));
  uint64_t bytes = s->bytes, entries = s->entries;
  struct archive_entry *e;
  static char norm[PATH_MAX];
  while (next_header(s, &e)) {
    const char *path = archive_entry_pathname(e);
    xc_quote(path ? path : "", s->name, sizeof s->name);
    const char *reason = path ? xc_normalize(path, norm, sizeof norm) : "unreadable path name";
    if (reason)
      die(EXIT_BAD_INPUT, "%sentry %s: %s", ctx, s->name, reason);
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0)
      die(EXIT_BAD_INPUT, "%sentry %s: negative size", ctx, s->name);
    if (s->o->max_bytes && (uint64_t)size > s->o->max_bytes - bytes)
      over_bytes(s);
    bytes += (uint64_t)size;
    if (++entries > s->o->max_entries && s->o->max_entries)
      die(EXIT_BAD_INPUT, "%sentry %s: archive has more than %llu entries", ctx, s->name,
          (unsigned long long)s->o->max_entries);
    bool opq;
    if (whiteout_of(norm, &opq) != 1)
      continue;
    const char *b = base_of(norm);
    size_t plen = b == norm ? 0 : (size_t)(b - norm - 1);
    if (opq) {
      strv_push(opaque, norm, plen, "");
    } else {
      const char *name = b + 4;
      if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        die(EXIT_BAD_INPUT, "%sentry %s: invalid whiteout", ctx, s->name);
      strv_push(gone, norm, plen, name);
    }
    memcpy(s->last, s->name, sizeof s->last);
  }
  archive_read_free(s->in);
  s->in = NULL;
  for (size_t i = 0; i < opaque->n; i++) {
    int r = lay_clear_dir(rootfd, opaque->v[i]);
    if (r < 0)
      die(EXIT_INTERNAL, "%semptying opaque directory \"%.200s\": %s", ctx, opaque->v[i],
          strerror(-r));
  }
  for (size_t i = 0; i < gone->n; i++) {
    int r = lay_remove(rootfd, gone->v[i]);
    if (r < 0)
      die(EXIT_INTERNAL, "%swhiteout \"%.200s\": %s", ctx, gone->v[i], strerror(-r));
  }
  strv_free(opaque);
  strv_free(gone);

  /* Pass 2: the entries, checked as in a plain archive (per layer). */
  if (lseek(fd, 0, SEEK_SET) < 0)
    die(EXIT_INTERNAL, "%srewinding: %s", ctx, strerror(errno));
  s->in = new_reader();
  s->out = new_writer();
  s->tree = xc_tree_new(s->o->max_entries);
  if (!s->tree)
    die(EXIT_INTERNAL, "out of memory");
  s->last[0] = 0;
  if (archive_read_open_fd(s->in, fd, 1 << 20) != ARCHIVE_OK)
    die(EXIT_BAD_INPUT, "%sarchive: %s", ctx, errstr(s->in));
  while (next_header(s, &e)) {
    const char *path = archive_entry_pathname(e);
    bool opq;
    if (path && !xc_normalize(path, norm, sizeof norm) && whiteout_of(norm, &opq)) {
      xc_quote(path, s->name, sizeof s->name);
      if (++s->entries > s->o->max_entries && s->o->max_entries)
        die(EXIT_BAD_INPUT, "%sentry %s: archive has more than %llu entries", ctx, s->name,
            (unsigned long long)s->o->max_entries);
      continue; /* never written */
    }
    extract_entry(s, e);
  }
  finish_writer(s);
  archive_read_free(s->in);
  s->in = NULL;
  xc_tree_free(s->tree);
  s->tree = NULL;
  close(fd);
}

static void spool_free(struct spool *sp) {
  for (size_t i = 0; i < sp->n_al; i++) {
    free(sp->al[i].path);
    free(sp->al[i].target);
  }
  free(sp->al);
  xc_tree_free(sp->tree);
  *sp = (struct spool){.fd = -1};
}

static const char *apply_image(struct state *s, struct spool *sp) {
  char why[1024];
  bool docker = faccessat(sp->fd, "manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  if (!docker && faccessat(sp->fd, "index.json", F_OK, AT_SYMLINK_NOFOLLOW) != 0)
    die(EXIT_BAD_INPUT, "image archive: neither manifest.json nor index.json at its top");
  struct mf_plan *plan = &s->plan;
  if (mf_plan_read(docker, spool_load, sp, plan, why, sizeof why) < 0)
    die(EXIT_BAD_INPUT, "%s: %s", docker ? "docker archive" : "OCI layout", why);
  size_t clen;
  s->cjson = spool_load(sp, plan->config, &clen, why, sizeof why);
  if (!s->cjson)
    die(EXIT_BAD_INPUT, "image config: %s", why);
  size_t llen;
  if (mf_config_lines(s->cjson, clen, plan->repo_tags, plan->n_repo_tags, &s->lines, &llen, why,
                      sizeof why) < 0)
    die(EXIT_BAD_INPUT, "%s", why);
  free(s->cjson);
  s->cjson = NULL;
  int rootfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    die(EXIT_INTERNAL, "opening the rootfs: %s", strerror(errno));
  s->rootfd = rootfd;
  for (size_t i = 0; i < plan->n_layers; i++)
    apply_layer(s, sp, rootfd, i, plan->layers[i]);
  s->ctx = "";
  s->rootfd = -1;
  close(rootfd);
  s->layers = plan->n_layers;
  mf_plan_free(plan);
  *plan = (struct mf_plan){0};
  int cfd = openat(s->topfd, CONFIG_OUT, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600);
  if (cfd < 0 || write(cfd, s->lines, llen) != (ssize_t)llen || close(cfd) < 0)
    die(EXIT_INTERNAL, "writing /%s: %s", CONFIG_OUT, strerror(errno));
  free(s->lines);
  s->lines = NULL;
  close(sp->fd);
  sp->fd = -1;
  int r = lay_remove(s->topfd, SPOOL);
  if (r < 0)
    die(EXIT_INTERNAL, "removing /%s: %s", SPOOL, strerror(-r));
  spool_free(sp);
  return docker ? "docker" : "oci";
}

/* s holds only its options; the archive is read from o->in_fd and the tree
 * written below the working directory, the staging root. */
static void extract(struct state *s) {
  const struct opts *o = s->o;
  s->topfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->topfd < 0)
    die(EXIT_INTERNAL, "opening the staging directory: %s", strerror(errno));
  if (o->rootfs_dir) {
    if (mkdir(o->rootfs_dir, 0755) < 0 || chdir(o->rootfs_dir) < 0)
      die(EXIT_INTERNAL, "creating /%s: %s", o->rootfs_dir, strerror(errno));
  }
  s->tree = xc_tree_new(o->max_entries);
  s->in = new_reader();
  s->out = new_writer();
  if (!s->tree)
    die(EXIT_INTERNAL, "out of memory");

  if (archive_read_open_fd(s->in, o->in_fd, 1 << 20) != ARCHIVE_OK)
    die(EXIT_BAD_INPUT, "archive: %s", errstr(s->in));
  /* With --rootfs-dir, the first entry that is not the root decides: an
   * image archive is spooled, anything else is a rootfs. A leading "./" is
   * held back until then. */
  bool decided = !o->rootfs_dir, image = false;
  struct spool *sp = &s->sp;
  struct archive_entry *e;
  static char norm[PATH_MAX];
  while (next_header(s, &e)) {
    if (!decided) {
      const char *path = archive_entry_pathname(e);
      if (path && !xc_normalize(path, norm, sizeof norm) && !norm[0] && !s->root &&
          archive_entry_filetype(e) == AE_IFDIR) {
        if (!(s->root = archive_entry_clone(e)))
          die(EXIT_INTERNAL, "out of memory");
        archive_entry_unset_size(s->root);
        continue;
      }
      decided = true;
      image = path && !xc_normalize(path, norm, sizeof norm) && image_marker(norm);
      if (image) {
        if (mkdirat(s->topfd, SPOOL, 0700) < 0 ||
            (sp->fd = openat(s->topfd, SPOOL, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
          die(EXIT_INTERNAL, "creating /%s: %s", SPOOL, strerror(errno));
        if (!(sp->tree = xc_tree_new(o->max_entries)))
          die(EXIT_INTERNAL, "out of memory");
      } else if (s->root) {
        extract_entry(s, s->root);
      }
    }
    if (image)
      spool_entry(s, sp, e);
    else
      extract_entry(s, e);
  }
  if (!decided && s->root)
    extract_entry(s, s->root);
  if (s->root)
    archive_entry_free(s->root);
  s->root = NULL;
  archive_read_close(s->in);
  archive_read_free(s->in);
  s->in = NULL;
  drain_input(o->in_fd);
  const char *kind = NULL;
  if (image) {
    archive_write_free(s->out);
    s->out = NULL;
    xc_tree_free(s->tree);
    s->tree = NULL;
    kind = apply_image(s, sp);
  } else {
    finish_writer(s);
    xc_tree_free(s->tree);
    s->tree = NULL;
  }
  close(s->topfd);
  s->topfd = -1;
  if (o->sync) {
    /* The store renames the tree into place next: it must be on disk
     * first, or a power cut could leave a half-written image under a
     * content address. */
    int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) < 0)
      die(EXIT_INTERNAL, "syncing the extracted tree: %s", strerror(errno));
    close(fd);
  }
  char line[160];
  int n = snprintf(line, sizeof line, "ok bytes=%llu entries=%llu", (unsigned long long)s->bytes,
                   (unsigned long long)s->entries);
  if (kind)
    n += snprintf(line + n, sizeof line - (size_t)n, " image=%s layers=%zu", kind, s->layers);
  if (s->warnings)
    n += snprintf(line + n, sizeof line - (size_t)n, " warnings=%llu",
                  (unsigned long long)s->warnings);
  line[n++] = '\n';
  if (write(1, line, (size_t)n) != n)
    die(EXIT_INTERNAL, "writing the summary: %s", strerror(errno));
}

#if defined(__SANITIZE_ADDRESS__) && !defined(QUILT_EXTRACT_FUZZ)
/* LeakSanitizer's exit-time scan needs /proc and ptrace-like access that
 * the sandbox (chroot, seccomp) takes away, and aborts instead: in
 * sanitizer builds the helper is checked for leaks by its own tests, not
 * at every import. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return 1; }
#endif

#ifndef QUILT_EXTRACT_FUZZ
int main(int argc, char **argv) {
  struct opts o;
  parse_args(argc, argv, &o);
  /* Only 0, 1 and 2: nothing that leads outside the staging directory. */
  if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
    for (int fd = 3; fd < 1024; fd++)
      close(fd);
  /* Archive names are UTF-8 or raw bytes; in the C locale libarchive would
   * reach for iconv, which loads its configuration lazily. */
  if (!setlocale(LC_CTYPE, "C.UTF-8"))
    setlocale(LC_CTYPE, "C");
  struct sandbox_opts so = {.allow_devices = o.allow_devices, .max_file_bytes = o.max_bytes};
  char why[512];
  if (sandbox_enter(o.staging, &so, why, sizeof why) < 0)
    die(EXIT_INTERNAL, "%s", why);
  if (o.check_sandbox) {
    char line[1024];
    sandbox_describe(line, sizeof line);
    printf("%s\n", line);
    return 0;
  }
  struct state s = {.o = &o, .ctx = "", .rootfd = -1, .topfd = -1, .sp = {.fd = -1}};
  extract(&s);
  return 0;
}
#endif
