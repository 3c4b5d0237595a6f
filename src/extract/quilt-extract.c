/* quilt-extract: unpacks one tar stream read from stdin (plain, gzip, bzip2,
 * xz, lzma, lzip, zstd, lz4 or compress) into an empty staging directory,
 * confined to it. The image store (src/runtime/images.c) runs it once per
 * import; docs/images.md describes the rules and the sandbox.
 *
 *   quilt-extract --staging DIR [--max-bytes N] [--max-entries N]
 *                 [--allow-devices] [--no-sync]
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extract/extract_check.h"
#include "extract/sandbox.h"

enum { EXIT_BAD_INPUT = 2, EXIT_INTERNAL = 1 };

/* Sanitizer builds: LeakSanitizer cannot run in the sandbox (it needs
 * /proc and ptrace); undefined behaviour must end the run, not scroll by. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...);

static void die(int code, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : strnlen(line, sizeof line - 2);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)line[i] < 0x20)
      line[i] = ' '; /* one line, whatever libarchive said */
  line[len++] = '\n';
  ssize_t w = write(2, line, len);
  (void)w;
  exit(code);
}

struct opts {
  const char *staging;
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
      "%s (usage: quilt-extract --staging DIR [--max-bytes N] [--max-entries N] "
      "[--allow-devices] [--no-sync])",
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

struct state {
  const struct opts *o;
  struct archive *in, *out;
  struct xc_tree *tree;
  struct late_time *late;
  size_t n_late, cap_late;
  uint64_t bytes, entries, warnings;
  char name[256];       /* quoted name of the current entry */
  char last[256];       /* quoted name of the last complete entry */
};

static void over_bytes(struct state *s) {
  die(EXIT_BAD_INPUT, "entry %s: archive expands past the limit of %llu bytes", s->name,
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
      die(archive_errno(s->in) == ENOMEM ? EXIT_INTERNAL : EXIT_BAD_INPUT, "entry %s: %s",
          s->name, errstr(s->in));
    if (r == ARCHIVE_WARN)
      s->warnings++;
    /* The header's size was checked already; count what really arrives. */
    s->bytes += len;
    if (s->o->max_bytes && s->bytes > s->o->max_bytes)
      over_bytes(s);
    la_ssize_t w = archive_write_data_block(s->out, buf, len, off);
    if (w < ARCHIVE_WARN)
      die(write_error_class(s->out), "entry %s: %s", s->name, errstr(s->out));
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
    die(EXIT_BAD_INPUT, "entry after %s: unreadable path name", s->last[0] ? s->last : "the start");
  if (++s->entries > s->o->max_entries && s->o->max_entries)
    die(EXIT_BAD_INPUT, "entry %s: archive has more than %llu entries", s->name,
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
    die(EXIT_INTERNAL, "entry %s: out of memory", s->name);
  if (r != XC_OK)
    die(EXIT_BAD_INPUT, "entry %s: %s", s->name, why);

  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (size < 0)
    die(EXIT_BAD_INPUT, "entry %s: negative size", s->name);
  if (s->o->max_bytes && (uint64_t)size > s->o->max_bytes - s->bytes)
    over_bytes(s);

  /* libarchive acts on exactly the paths that were checked. */
  archive_entry_copy_pathname(e, norm);
  if (xe.type == XC_HARDLINK)
    archive_entry_copy_hardlink(e, link);

  int w = archive_write_header(s->out, e);
  if (w < ARCHIVE_WARN)
    die(write_error_class(s->out), "entry %s: %s", s->name, errstr(s->out));
  if (w == ARCHIVE_WARN)
    s->warnings++;
  if (size > 0)
    copy_data(s);
  w = archive_write_finish_entry(s->out);
  if (w < ARCHIVE_WARN)
    die(write_error_class(s->out), "entry %s: %s", s->name, errstr(s->out));
  if (w == ARCHIVE_WARN)
    s->warnings++;
  if (xe.type == XC_DIR && existed && archive_entry_mtime_is_set(e))
    remember_time(s, norm, e);
  memcpy(s->last, s->name, sizeof s->last);
}

static void drain_stdin(void) {
  static char buf[1 << 16];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0)
      return;
    if (n < 0 && errno != EINTR)
      return; /* nothing left to protect: the image is complete */
  }
}

static void extract(const struct opts *o) {
  struct state s = {.o = o};
  s.tree = xc_tree_new(o->max_entries);
  s.in = archive_read_new();
  s.out = archive_write_disk_new();
  if (!s.tree || !s.in || !s.out)
    die(EXIT_INTERNAL, "out of memory");
  /* Tar in all its dialects (ustar, pax, GNU, v7) and the compressions
   * libarchive decodes in-process; never an external program. */
  archive_read_support_format_tar(s.in);
  archive_read_support_filter_gzip(s.in);
  archive_read_support_filter_bzip2(s.in);
  archive_read_support_filter_xz(s.in);
  archive_read_support_filter_lzma(s.in);
  archive_read_support_filter_lzip(s.in);
  archive_read_support_filter_zstd(s.in);
  archive_read_support_filter_lz4(s.in);
  archive_read_support_filter_compress(s.in);
  /* Not ARCHIVE_EXTRACT_UNLINK: with it, libarchive removes a symlink
   * found in the middle of a path and carries on instead of refusing. No
   * ACLs or file flags (immutable, append-only) either. No name lookups:
   * owners are numeric, and NSS would load code from the image. */
  int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
              ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;
  archive_write_disk_set_options(s.out, flags);

  if (archive_read_open_fd(s.in, 0, 1 << 20) != ARCHIVE_OK)
    die(EXIT_BAD_INPUT, "archive: %s", errstr(s.in));
  for (;;) {
    struct archive_entry *e;
    int r = archive_read_next_header(s.in, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY) {
      if (archive_errno(s.in) == ENOMEM)
        die(EXIT_INTERNAL, "archive: out of memory");
      if (s.last[0])
        die(EXIT_BAD_INPUT, "archive: %s (after entry %s)", errstr(s.in), s.last);
      die(EXIT_BAD_INPUT, "archive: %s", errstr(s.in));
    }
    if (r == ARCHIVE_WARN)
      s.warnings++;
    extract_entry(&s, e);
  }
  /* Directory permissions and times are applied last (a read-only
   * directory must not stop its own contents). */
  if (archive_write_close(s.out) < ARCHIVE_WARN)
    die(write_error_class(s.out), "finishing directories: %s", errstr(s.out));
  /* The paths were checked: every component is a directory of this
   * archive. Setting times changes no other directory. */
  for (size_t i = 0; i < s.n_late; i++) {
    if (utimensat(AT_FDCWD, s.late[i].path, s.late[i].ts, AT_SYMLINK_NOFOLLOW) < 0)
      s.warnings++;
    free(s.late[i].path);
  }
  free(s.late);
  archive_read_close(s.in);
  drain_stdin();
  if (o->sync) {
    /* The store renames the tree into place next: it must be on disk
     * first, or a power cut could leave a half-written image under a
     * content address. */
    int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) < 0)
      die(EXIT_INTERNAL, "syncing the extracted tree: %s", strerror(errno));
    close(fd);
  }
  char line[128];
  int n = snprintf(line, sizeof line, "ok bytes=%llu entries=%llu", (unsigned long long)s.bytes,
                   (unsigned long long)s.entries);
  if (s.warnings)
    n += snprintf(line + n, sizeof line - (size_t)n, " warnings=%llu",
                  (unsigned long long)s.warnings);
  line[n++] = '\n';
  if (write(1, line, (size_t)n) != n)
    die(EXIT_INTERNAL, "writing the summary: %s", strerror(errno));
  archive_read_free(s.in);
  archive_write_free(s.out);
  xc_tree_free(s.tree);
}

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer's exit-time scan needs /proc and ptrace-like access that
 * the sandbox (chroot, seccomp) takes away, and aborts instead: in
 * sanitizer builds the helper is checked for leaks by its own tests, not
 * at every import. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return 1; }
#endif

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
  extract(&o);
  return 0;
}
