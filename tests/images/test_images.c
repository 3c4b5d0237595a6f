/* The image store and quilt-extract against the real kernel (as root):
 *  - hostile archives, each refused with INVALID_ARGUMENT naming the entry,
 *    with nothing written outside the staging dir and nothing left in the
 *    store: "..", absolute paths, symlinks written through, hard links out,
 *    devices, type conflicts, truncated and garbage input, zip bombs, entry
 *    limits, paths that are not files;
 *  - a busybox rootfs (plus setuid, owned, FIFO, hard-linked, read-only,
 *    xattr'd and non-ASCII files) through tar, gz, xz, zst and bz2, compared
 *    with the source tree;
 *  - cached re-imports, tags and lookups, removal, the asynchronous API,
 *    crash cleanup, the helper's command-line contract and its sandbox;
 *  - `docker save` archives and OCI image layouts (make_image_archives.py):
 *    layers, whiteouts, opaque directories, type replacements across
 *    layers, config defaults, RepoTags, and hostile image archives.
 * Environment: QUILT_EXTRACT (the helper), QUILT_MAKE_BUSYBOX_ROOTFS,
 * QUILT_MAKE_IMAGE_ARCHIVES. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nettle/sha2.h>

#include "common/fsutil.h"
#include "common/strbuf.h"
#include "grpc/status.h"
#include "runtime/images.h"

#define MiB (1024ULL * 1024)

extern char **environ;

static const char *helper;

/* Built once for the group: a busybox rootfs and its archives. */
static struct {
  char dir[64];          /* /tmp/quilt-images-group-XXXXXX */
  char rootfs[128];
  char tar[5][160];      /* .tar .tar.gz .tar.xz .tar.zst .tar.bz2 */
  bool user_xattr;       /* the rootfs has a user.* xattr */
} g;
static const char *const fmt_names[5] = {"tar", "tar.gz", "tar.xz", "tar.zst", "tar.bz2"};

struct fx {
  char tmp[64];          /* /tmp/quilt-images-XXXXXX */
  char images[128];      /* tmp/store/images: the store */
  char outside[128];     /* tmp/outside: the canary */
  char arch[128];        /* tmp/arch: archives the test builds */
  struct image_store *s;
};

/* ------------------------------------------------------------ helpers */

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int r = system(cmd);
  if (r != 0)
    fail_msg("command failed (%d): %s", r, cmd);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void write_text(const char *path, const char *text) {
  struct qerr err = QERR_INIT;
  if (write_file(path, text, strlen(text), &err) < 0)
    fail_msg("%s", err.msg);
}

static void sha_file(const char *path, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  struct sha256_ctx c;
  sha256_init(&c);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  static uint8_t buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    sha256_update(&c, (size_t)n, buf);
  close(fd);
  uint8_t d[32];
  sha256_digest(&c, 32, d);
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = 0;
}

/* ---- tree fingerprints: one sorted line per path ---- */

static struct {
  size_t rootlen;
  bool content;          /* hash file contents and read xattrs */
  bool dir_mtime;        /* directory mtimes change as staging dirs come and go */
  char **lines;
  size_t n, cap;
} walk;

static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)type;
  (void)ftw;
  char line[8192], extra[4096] = "";
  const char *rel = path[walk.rootlen] ? path + walk.rootlen : "/";
  if (S_ISLNK(st->st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    snprintf(extra, sizeof extra, " -> %.4000s", target);
  } else if (S_ISREG(st->st_mode) && walk.content) {
    char h[65];
    sha_file(path, h);
    snprintf(extra, sizeof extra, " sha256=%.16s", h);
  }
  if (walk.content && !S_ISLNK(st->st_mode)) {
    char names[4096];
    ssize_t n = llistxattr(path, names, sizeof names);
    for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
      char val[256];
      ssize_t vl = lgetxattr(path, names + off, val, sizeof val);
      size_t el = strlen(extra);
      el += (size_t)snprintf(extra + el, sizeof extra - el, " %s=", names + off);
      for (ssize_t i = 0; i < vl && el + 3 < sizeof extra; i++)
        el += (size_t)snprintf(extra + el, sizeof extra - el, "%02x", (unsigned char)val[i]);
    }
  }
  bool mt = walk.dir_mtime || !S_ISDIR(st->st_mode);
  snprintf(line, sizeof line, "%s mode=%o uid=%u gid=%u size=%lld nlink=%lu mtime=%lld.%09ld%s",
           rel, st->st_mode, st->st_uid, st->st_gid,
           S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size,
           S_ISDIR(st->st_mode) ? 0UL : (unsigned long)st->st_nlink,
           mt ? (long long)st->st_mtim.tv_sec : 0LL, mt ? st->st_mtim.tv_nsec : 0L, extra);
  if (walk.n == walk.cap) {
    walk.cap = walk.cap ? walk.cap * 2 : 256;
    walk.lines = realloc(walk.lines, walk.cap * sizeof *walk.lines);
  }
  walk.lines[walk.n++] = strdup(line);
  return 0;
}

static int cmp_line(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns a malloc'd text: every path under root, sorted. */
static char *fingerprint(const char *root, bool content, bool dir_mtime) {
  walk.rootlen = strlen(root);
  walk.content = content;
  walk.dir_mtime = dir_mtime;
  walk.n = 0;
  assert_int_equal(nftw(root, walk_cb, 32, FTW_PHYS), 0);
  qsort(walk.lines, walk.n, sizeof *walk.lines, cmp_line);
  struct strbuf b = STRBUF_INIT;
  for (size_t i = 0; i < walk.n; i++) {
    strbuf_printf(&b, "%s\n", walk.lines[i]);
    free(walk.lines[i]);
  }
  char *out = strdup(strbuf_cstr(&b) ? strbuf_cstr(&b) : "");
  strbuf_free(&b);
  return out;
}

static void assert_same_text(const char *what, const char *a, const char *b) {
  if (strcmp(a, b) == 0)
    return;
  /* Show the first difference. */
  const char *pa = a, *pb = b;
  while (*pa && *pa == *pb)
    pa++, pb++;
  while (pa > a && pa[-1] != '\n')
    pa--, pb--;
  fail_msg("%s differ at:\n  expected: %.300s\n  actual:   %.300s", what, pa, pb);
}

static char *passwd_fingerprint(void) {
  struct stat st;
  assert_int_equal(stat("/etc/passwd", &st), 0);
  char h[65], *out;
  sha_file("/etc/passwd", h);
  assert_true(asprintf(&out, "ino=%lu size=%lld nlink=%lu mtime=%lld ctime=%lld.%09ld %s",
                       (unsigned long)st.st_ino, (long long)st.st_size,
                       (unsigned long)st.st_nlink, (long long)st.st_mtim.tv_sec,
                       (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec, h) > 0);
  return out;
}

static size_t count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

/* The store holds exactly n_images image dirs and nothing in staging. */
static void assert_store_clean(struct fx *f, size_t n_images) {
  char staging[256];
  snprintf(staging, sizeof staging, "%s/staging", f->images);
  assert_int_equal(count_entries(staging), 0);
  assert_int_equal(image_count(f->s), n_images);
  size_t ids = 0;
  DIR *d = opendir(f->images);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strlen(e->d_name) == 64)
      ids++;
  closedir(d);
  assert_int_equal(ids, n_images);
}

/* ---- a raw tar writer: full control over every header field ---- */

struct ent {
  const char *name;
  char type;             /* '0' file, '1' hard link, '2' symlink, '3' chr, '4' blk,
                            '5' dir, '6' fifo */
  const char *link;
  const char *data;
  unsigned maj, min;
  uint64_t zeros;        /* file of this many zero bytes (data unused) */
};

static void oct(unsigned char *field, size_t w, uint64_t v) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%0*llo", (int)w - 1, (unsigned long long)v);
  memcpy(field, tmp, w);
}

static void tar_header(FILE *f, const char *name, char type, uint64_t size, const char *link,
                       unsigned maj, unsigned min) {
  if (strlen(name) >= 100) { /* GNU long name */
    tar_header(f, "././@LongLink", 'L', strlen(name) + 1, NULL, 0, 0);
    size_t n = strlen(name) + 1;
    fwrite(name, 1, n, f);
    static const char zero[512];
    fwrite(zero, 1, (512 - n % 512) % 512, f);
    name = "longname-placeholder";
  }
  unsigned char h[512];
  memset(h, 0, sizeof h);
  memcpy(h, name, strlen(name));
  oct(h + 100, 8, type == '5' ? 0755 : 0644);
  oct(h + 108, 8, 0);
  oct(h + 116, 8, 0);
  oct(h + 124, 12, size);
  oct(h + 136, 12, 1700000000);
  memset(h + 148, ' ', 8);
  h[156] = (unsigned char)type;
  if (link)
    memcpy(h + 157, link, strlen(link));
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  oct(h + 329, 8, maj);
  oct(h + 337, 8, min);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof h; i++)
    sum += h[i];
  char ck[8];
  snprintf(ck, sizeof ck, "%06o", sum);
  memcpy(h + 148, ck, 7);
  h[155] = ' ';
  fwrite(h, 1, sizeof h, f);
}

static void tar_entries(FILE *f, const struct ent *e, size_t n) {
  static const char zero[1 << 16];
  for (size_t i = 0; i < n; i++) {
    uint64_t size = e[i].zeros ? e[i].zeros : e[i].data ? strlen(e[i].data) : 0;
    tar_header(f, e[i].name, e[i].type, size, e[i].link, e[i].maj, e[i].min);
    if (e[i].zeros) {
      for (uint64_t left = size; left;) {
        size_t k = left < sizeof zero ? (size_t)left : sizeof zero;
        fwrite(zero, 1, k, f);
        left -= k;
      }
    } else if (size) {
      fwrite(e[i].data, 1, size, f);
    }
    fwrite(zero, 1, (512 - size % 512) % 512, f);
  }
}

static void write_tar(const char *path, const struct ent *e, size_t n) {
  FILE *f = fopen(path, "we");
  assert_non_null(f);
  tar_entries(f, e, n);
  static const char zero[1024];
  fwrite(zero, 1, sizeof zero, f);
  assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------ fixtures */

static int open_store(struct fx *f, uint64_t max_bytes) {
  struct qerr err = QERR_INIT;
  if (image_store_open(&f->s, f->images, helper, max_bytes, &err) < 0) {
    print_error("image_store_open: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  snprintf(f->tmp, sizeof f->tmp, "/tmp/quilt-images-XXXXXX");
  if (!mkdtemp(f->tmp))
    return -1;
  snprintf(f->images, sizeof f->images, "%s/store/images", f->tmp);
  snprintf(f->outside, sizeof f->outside, "%s/outside", f->tmp);
  snprintf(f->arch, sizeof f->arch, "%s/arch", f->tmp);
  char p[256];
  mkdir(f->outside, 0755);
  mkdir(f->arch, 0755);
  snprintf(p, sizeof p, "%s/victim", f->outside);
  write_text(p, "victim\n");
  snprintf(p, sizeof p, "%s/canary", f->outside);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/canary/file", f->outside);
  write_text(p, "canary\n");
  if (open_store(f, 64 * MiB) < 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  image_store_close(f->s);
  struct qerr err = QERR_INIT;
  int r = rm_rf(f->tmp, &err);
  free(f);
  return r;
}

static void reopen(struct fx *f, uint64_t max_bytes) {
  image_store_close(f->s);
  f->s = NULL;
  assert_int_equal(open_store(f, max_bytes), 0);
}

static void arch_path(struct fx *f, char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", f->arch, name);
}

static void import_ok(struct fx *f, const char *path, const char *const *tags, size_t n,
                      struct image_info *info, bool expect_cached);

/* ------------------------------------------------------------ refusals */

/* Imports path and expects a refusal whose message contains needle, with
 * the fixture tree, /etc/passwd and the store unchanged. */
static void expect_refused_status(struct fx *f, const char *path, int status, const char *needle) {
  char *before = fingerprint(f->tmp, true, false);
  char *pw_before = passwd_fingerprint();
  struct qerr err = QERR_INIT;
  struct image_info info;
  bool cached = true;
  int r = image_import_file(f->s, path, NULL, 0, &info, &cached, &err);
  print_message("    refused: %s\n", err.msg);
  assert_true(r < 0);
  assert_int_equal(err.status, status);
  if (!strstr(err.msg, needle))
    fail_msg("message \"%s\" does not contain \"%s\"", err.msg, needle);
  assert_false(cached);
  assert_null(info.tags);
  char *after = fingerprint(f->tmp, true, false);
  char *pw_after = passwd_fingerprint();
  assert_same_text("fixture tree", before, after);
  assert_string_equal(pw_before, pw_after);
  assert_store_clean(f, 0);
  free(before);
  free(after);
  free(pw_before);
  free(pw_after);
}

static void expect_refused(struct fx *f, const char *path, const char *needle) {
  expect_refused_status(f, path, GRPC_INVALID_ARGUMENT, needle);
}

static void refuse_entries(struct fx *f, const char *name, const struct ent *e, size_t n,
                           const char *needle) {
  char path[256];
  arch_path(f, path, sizeof path, name);
  write_tar(path, e, n);
  expect_refused(f, path, needle);
}

/* From the staging rootfs (<tmp>/store/images/staging/<rnd>/rootfs), five
 * ".." reach <tmp>. */
#define UP5 "../../../../../"

static void test_refuse_dotdot(void **state) {
  struct fx *f = *state;
  struct ent e[] = {{"ok", '0', NULL, "fine", 0, 0, 0},
                    {UP5 "outside/dotdot", '0', NULL, "escaped", 0, 0, 0}};
  refuse_entries(f, "dotdot.tar", e, 2, "entry \"" UP5 "outside/dotdot\": path contains \"..\"");
  struct ent e2[] = {{"a/../../etc/passwd", '0', NULL, "x", 0, 0, 0}};
  refuse_entries(f, "dotdot2.tar", e2, 1, "entry \"a/../../etc/passwd\": path contains \"..\"");
}

static void test_refuse_absolute(void **state) {
  struct fx *f = *state;
  char target[256], needle[300];
  snprintf(target, sizeof target, "%s/abs", f->outside);
  snprintf(needle, sizeof needle, "entry \"%s\": absolute path", target);
  struct ent e[] = {{target, '0', NULL, "escaped", 0, 0, 0}};
  refuse_entries(f, "abs.tar", e, 1, needle);
  assert_int_equal(access(target, F_OK), -1);
  struct ent e2[] = {{"/etc/passwd", '0', NULL, "pwned::0:0::/:/bin/sh\n", 0, 0, 0}};
  refuse_entries(f, "abs2.tar", e2, 1, "entry \"/etc/passwd\": absolute path");
}

static void test_refuse_symlink_through(void **state) {
  struct fx *f = *state;
  /* Absolute symlink to the canary dir, then a file written through it. */
  struct ent e[] = {{"evil", '2', f->outside, NULL, 0, 0, 0},
                    {"evil/through", '0', NULL, "escaped", 0, 0, 0}};
  refuse_entries(f, "sym.tar", e, 2, "entry \"evil/through\": path goes through symlink \"evil\"");
  /* Relative, climbing out. */
  struct ent e2[] = {{"d", '5', NULL, NULL, 0, 0, 0},
                     {"d/rel", '2', UP5 "outside", NULL, 0, 0, 0},
                     {"d/rel/canary/file", '0', NULL, "overwritten", 0, 0, 0}};
  refuse_entries(f, "sym2.tar", e2, 3,
                 "entry \"d/rel/canary/file\": path goes through symlink \"d/rel\"");
  /* The classic: etc -> /etc, then etc/passwd. */
  struct ent e3[] = {{"etc", '2', "/etc", NULL, 0, 0, 0},
                     {"etc/passwd", '0', NULL, "pwned::0:0::/:/bin/sh\n", 0, 0, 0}};
  refuse_entries(f, "sym3.tar", e3, 2, "entry \"etc/passwd\": path goes through symlink \"etc\"");
  /* A hard link through the symlink. */
  struct ent e4[] = {{"e", '2', "/etc", NULL, 0, 0, 0}, {"pw", '1', "e/passwd", NULL, 0, 0, 0}};
  refuse_entries(f, "sym4.tar", e4, 2, "goes through symlink \"e\"");
}

static void test_refuse_hardlink_out(void **state) {
  struct fx *f = *state;
  struct ent e[] = {{"hl", '1', "/etc/passwd", NULL, 0, 0, 0}};
  refuse_entries(f, "hl.tar", e, 1,
                 "entry \"hl\": hard link target \"/etc/passwd\": absolute path");
  struct ent e2[] = {{"hl", '1', UP5 "outside/victim", NULL, 0, 0, 0}};
  refuse_entries(f, "hl2.tar", e2, 1, "entry \"hl\": hard link target \"" UP5 "outside/victim\"");
  /* CVE-2016-5418: a hard link that carries data, to write into its target. */
  struct ent e3[] = {{"hl", '1', "/etc/passwd", "pwned::0:0::/:/bin/sh\n", 0, 0, 0}};
  refuse_entries(f, "hl3.tar", e3, 1, "entry \"hl\": hard link target \"/etc/passwd\"");
  struct ent e4[] = {{"hl", '1', "etc/passwd", NULL, 0, 0, 0}};
  refuse_entries(f, "hl4.tar", e4, 1, "is not an earlier entry of the archive");
}

static void test_refuse_devices(void **state) {
  struct fx *f = *state;
  struct ent e[] = {{"dev", '5', NULL, NULL, 0, 0, 0}, {"dev/null", '3', NULL, NULL, 1, 3, 0}};
  refuse_entries(f, "chr.tar", e, 2, "entry \"dev/null\": character device (1,3) not allowed");
  struct ent e2[] = {{"sda", '4', NULL, NULL, 8, 0, 0}};
  refuse_entries(f, "blk.tar", e2, 1, "entry \"sda\": block device (8,0) not allowed");
}

static void test_refuse_type_conflicts(void **state) {
  struct fx *f = *state;
  struct ent e[] = {{"a/", '5', NULL, NULL, 0, 0, 0},
                    {"a/f", '0', NULL, "x", 0, 0, 0},
                    {"a", '0', NULL, "now a file", 0, 0, 0}};
  refuse_entries(f, "tc1.tar", e, 3,
                 "entry \"a\": type conflict: a directory of the same name came earlier");
  struct ent e2[] = {{"b", '0', NULL, "file", 0, 0, 0}, {"b/", '5', NULL, NULL, 0, 0, 0}};
  refuse_entries(f, "tc2.tar", e2, 2,
                 "entry \"b/\": type conflict: a non-directory of the same name came earlier");
  struct ent e3[] = {{"c", '0', NULL, "file", 0, 0, 0}, {"c/x", '0', NULL, "y", 0, 0, 0}};
  refuse_entries(f, "tc3.tar", e3, 2, "entry \"c/x\": parent \"c\" is not a directory");
  struct ent e4[] = {{"d/x/y", '0', NULL, "y", 0, 0, 0}, {"d/x", '2', "/", NULL, 0, 0, 0}};
  refuse_entries(f, "tc4.tar", e4, 2, "entry \"d/x\": type conflict");
  /* CVE-2021-31566: a directory (whose mode is fixed up at the end)
   * replaced by a symlink, so that the fixup lands on the target. */
  struct ent e5[] = {{"fix/", '5', NULL, NULL, 0, 0, 0}, {"fix", '2', f->outside, NULL, 0, 0, 0}};
  refuse_entries(f, "tc5.tar", e5, 2,
                 "entry \"fix\": type conflict: a directory of the same name came earlier");
}

/* A pax extended header carrying one record for the next entry. */
static void pax_record(FILE *fp, const char *key, const char *value) {
  char rec[512];
  size_t kv = strlen(key) + strlen(value) + 3; /* ' ', '=', '\n' */
  size_t len = kv + 1;
  while (len != kv + (size_t)snprintf(NULL, 0, "%zu", len))
    len = kv + (size_t)snprintf(NULL, 0, "%zu", len);
  snprintf(rec, sizeof rec, "%zu %s=%s\n", len, key, value);
  tar_header(fp, "PaxHeader", 'x', strlen(rec), NULL, 0, 0);
  fwrite(rec, 1, strlen(rec), fp);
  static const char zero[512];
  fwrite(zero, 1, (512 - strlen(rec) % 512) % 512, fp);
}

static void test_symlink_acl_not_followed(void **state) {
  struct fx *f = *state;
  /* CVE-2021-23177: ACLs of a symlink entry applied to its target. No ACL
   * is ever restored, and the target resolves inside the staging root. */
  char victim[256], path[256];
  snprintf(victim, sizeof victim, "%s/victim", f->outside);
  assert_int_equal(chmod(victim, 0600), 0);
  char *before = fingerprint(f->outside, true, true);
  arch_path(f, path, sizeof path, "acl.tar");
  FILE *fp = fopen(path, "we");
  pax_record(fp, "SCHILY.acl.access", "user::rwx,group::rwx,other::rwx");
  struct ent e[] = {{"l", '2', victim, NULL, 0, 0, 0}};
  tar_entries(fp, e, 1);
  pax_record(fp, "SCHILY.acl.access", "user::rwx,group::rwx,other::rwx");
  struct ent e2[] = {{"l2", '2', UP5 "outside/victim", NULL, 0, 0, 0}};
  tar_entries(fp, e2, 1);
  static const char zero[1024];
  fwrite(zero, 1, sizeof zero, fp);
  fclose(fp);
  struct image_info info;
  import_ok(f, path, NULL, 0, &info, false);
  char *after = fingerprint(f->outside, true, true);
  assert_same_text("outside", before, after);
  free(before);
  free(after);
  image_info_free(&info);
}

static void test_open_errors(void **state) {
  struct fx *f = *state;
  struct image_store *s;
  struct qerr err = QERR_INIT;
  assert_true(image_store_open(&s, "relative/images", helper, 0, &err) < 0);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  assert_true(image_store_open(&s, f->images, "/nonexistent/quilt-extract", 0, &err) < 0);
  assert_int_equal(err.status, GRPC_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "/nonexistent/quilt-extract"));
  struct stat st;
  assert_int_equal(stat(f->images, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
}

static void test_refuse_truncated(void **state) {
  struct fx *f = *state;
  char tar[256], gz[256], cut[256];
  arch_path(f, tar, sizeof tar, "t.tar");
  arch_path(f, gz, sizeof gz, "t.tar.gz");
  arch_path(f, cut, sizeof cut, "cut.tar.gz");
  /* Incompressible content, so half the .gz is half the data. */
  static char noise[200001];
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; i < sizeof noise - 1; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    noise[i] = (char)('a' + x % 26);
  }
  struct ent e[] = {{"first", '0', NULL, "ok", 0, 0, 0}, {"big", '0', NULL, noise, 0, 0, 0}};
  write_tar(tar, e, 2);
  run("gzip -c %s > %s && head -c $(( $(stat -c %%s %s) / 2 )) %s > %s", tar, gz, gz, gz, cut);
  expect_refused(f, cut, "entry \"big\": truncated gzip input");
  /* Truncated plain tar, cut inside a header. */
  run("head -c 700 %s > %s.plain", tar, cut);
  char plain[300];
  snprintf(plain, sizeof plain, "%s.plain", cut);
  expect_refused(f, plain, "entry \"first\": Truncated input file");
}

static void test_refuse_garbage(void **state) {
  struct fx *f = *state;
  char path[256];
  arch_path(f, path, sizeof path, "garbage");
  FILE *fp = fopen(path, "we");
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 65536; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    fputc((int)(x & 0xff), fp);
  }
  fclose(fp);
  expect_refused(f, path, "archive: Unrecognized archive format");
  arch_path(f, path, sizeof path, "empty");
  write_text(path, "");
  expect_refused(f, path, "archive:");
  arch_path(f, path, sizeof path, "text.gz");
  run("echo 'not a tar' | gzip -c > %s", path);
  expect_refused(f, path, "archive:");
}

static void test_refuse_zip_bomb(void **state) {
  struct fx *f = *state;
  /* 1 GiB of zeros in ~1 MiB: gzip members, decompressed back to back. */
  char hdr[256], chunk[256], end[256], bomb[256];
  arch_path(f, hdr, sizeof hdr, "hdr.gz");
  arch_path(f, chunk, sizeof chunk, "chunk.gz");
  arch_path(f, end, sizeof end, "end.gz");
  arch_path(f, bomb, sizeof bomb, "bomb.tar.gz");
  char raw[256];
  arch_path(f, raw, sizeof raw, "hdr.raw");
  FILE *fp = fopen(raw, "we");
  tar_header(fp, "zeros", '0', 1024 * MiB, NULL, 0, 0);
  fclose(fp);
  run("gzip -9 -c %s > %s && head -c %llu /dev/zero | gzip -9 -c > %s && "
      "head -c 1024 /dev/zero | gzip -9 -c > %s",
      raw, hdr, MiB, chunk, end);
  run("cat %s > %s && for i in $(seq 1024); do cat %s; done >> %s && cat %s >> %s", hdr, bomb,
      chunk, bomb, end, bomb);
  struct stat st;
  assert_int_equal(stat(bomb, &st), 0);
  print_message("    bomb: %lld bytes compressed, 1 GiB + headers expanded\n",
                (long long)st.st_size);
  assert_true(st.st_size < 2 * (off_t)MiB);
  double t = now_ms();
  expect_refused(f, bomb, "entry \"zeros\": archive expands past the limit of 67108864 bytes");
  print_message("    refused in %.1f ms\n", now_ms() - t);

  /* Many entries, each small: the sum is checked as it goes. */
  char many[256];
  arch_path(f, many, sizeof many, "many.tar.gz");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "gzip -1 -c > %s", many);
  fp = popen(cmd, "we");
  struct ent e = {NULL, '0', NULL, NULL, 0, 0, MiB};
  char name[32];
  for (int i = 0; i < 80; i++) {
    snprintf(name, sizeof name, "f%03d", i);
    e.name = name;
    tar_entries(fp, &e, 1);
  }
  static const char zero[1024];
  fwrite(zero, 1, sizeof zero, fp);
  assert_int_equal(pclose(fp), 0);
  expect_refused(f, many, "entry \"f064\": archive expands past the limit");
}

static void test_refuse_too_many_entries(void **state) {
  struct fx *f = *state;
  image_store_set_max_entries(f->s, 100);
  struct ent e[150];
  static char names[150][16];
  for (int i = 0; i < 150; i++) {
    snprintf(names[i], sizeof names[i], "e%03d", i);
    e[i] = (struct ent){names[i], '0', NULL, NULL, 0, 0, 0};
  }
  refuse_entries(f, "entries.tar", e, 150, "entry \"e100\": archive has more than 100 entries");
  /* One entry, but 200 implied directories. */
  static char deep[1024];
  deep[0] = 0;
  for (int i = 0; i < 200; i++)
    strcat(deep, "d/");
  strcat(deep, "leaf");
  struct ent e2[] = {{deep, '0', NULL, "x", 0, 0, 0}};
  refuse_entries(f, "deep.tar", e2, 1, "archive creates more than 100 files and directories");
}

static void test_refuse_not_a_file(void **state) {
  struct fx *f = *state;
  expect_refused(f, f->outside, "is not a regular file (a directory)");
  char path[256];
  arch_path(f, path, sizeof path, "missing.tar");
  expect_refused_status(f, path, GRPC_NOT_FOUND, path);
  arch_path(f, path, sizeof path, "fifo");
  assert_int_equal(mkfifo(path, 0600), 0);
  expect_refused(f, path, "fifo is not a regular file");
}

static void test_refuse_bad_tag(void **state) {
  struct fx *f = *state;
  struct ent e[] = {{"ok", '0', NULL, "fine", 0, 0, 0}};
  char path[256];
  arch_path(f, path, sizeof path, "ok.tar");
  write_tar(path, e, 1);
  const char *tags[] = {"fine", "Not/Valid:tag"};
  struct qerr err = QERR_INIT;
  assert_true(image_import_file(f->s, path, tags, 2, NULL, NULL, &err) < 0);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  assert_non_null(strstr(err.msg, "Not/Valid:tag"));
  assert_store_clean(f, 0);
}

/* ------------------------------------------------------------ positive */

static int group_setup(void **state) {
  (void)state;
  helper = getenv("QUILT_EXTRACT");
  const char *mk = getenv("QUILT_MAKE_BUSYBOX_ROOTFS");
  if (!helper || !mk) {
    print_error("QUILT_EXTRACT and QUILT_MAKE_BUSYBOX_ROOTFS must be set\n");
    return -1;
  }
  if (geteuid() != 0) {
    print_error("the image store tests need root\n");
    return -1;
  }
  snprintf(g.dir, sizeof g.dir, "/tmp/quilt-images-group-XXXXXX");
  if (!mkdtemp(g.dir))
    return -1;
  snprintf(g.rootfs, sizeof g.rootfs, "%s/rootfs", g.dir);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "set -e; sh %s %s; cd %s; "
           "cp bin/busybox usr/bin/suid && chmod 4755 usr/bin/suid; "
           "mkdir -p home/user && echo owned > home/user/owned && chown 1234:5678 home/user/owned "
           "&& chmod 640 home/user/owned && chown 1234:5678 home/user; "
           "mkdir -p run && mkfifo run/fifo; "
           "echo linked > etc/hard1 && ln etc/hard1 etc/hard2; "
           "mkdir -p secret && echo s > secret/file && chmod 500 secret; "
           "printf 'x' > \"etc/caf$(printf '\\303\\251')\"; "
           "touch -h -d '2001-02-03 04:05:06.5' bin/sh etc/passwd",
           mk, g.rootfs, g.rootfs);
  if (system(cmd) != 0)
    return -1;
  /* cap_net_raw+ep on a copy of busybox: restored only with CAP_SETFCAP. */
  char capfile[256];
  snprintf(capfile, sizeof capfile, "%s/usr/bin/ping-cap", g.rootfs);
  snprintf(cmd, sizeof cmd, "cp %s/bin/busybox %s", g.rootfs, capfile);
  if (system(cmd) != 0)
    return -1;
  struct {
    uint32_t magic_etc;
    struct { uint32_t permitted, inheritable; } data[2];
  } cap = {0x02000000 | 1, {{1U << 13, 0}, {0, 0}}};
  if (setxattr(capfile, "security.capability", &cap, sizeof cap, 0) < 0)
    return -1;
  /* user.* xattrs: not on tmpfs before Linux 6.6. */
  snprintf(capfile, sizeof capfile, "%s/etc/hostname", g.rootfs);
  if (setxattr(capfile, "user.quilt", "yes", 3, 0) == 0)
    g.user_xattr = true;
  else if (errno != ENOTSUP)
    return -1;
  for (int i = 0; i < 5; i++)
    snprintf(g.tar[i], sizeof g.tar[i], "%s/rootfs.%s", g.dir, fmt_names[i]);
  snprintf(cmd, sizeof cmd,
           "set -e; tar --format=posix --xattrs --xattrs-include='*' --numeric-owner -C %s "
           "-cf %s . ; gzip -c %s > %s; xz -T1 -c %s > %s; zstd -q -c %s > %s; "
           "bzip2 -c %s > %s",
           g.rootfs, g.tar[0], g.tar[0], g.tar[1], g.tar[0], g.tar[2], g.tar[0], g.tar[3],
           g.tar[0], g.tar[4]);
  return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  struct qerr err = QERR_INIT;
  if (g.dir[0])
    rm_rf(g.dir, &err);
  free(walk.lines);
  return 0;
}

static void import_ok(struct fx *f, const char *path, const char *const *tags, size_t n,
                      struct image_info *info, bool expect_cached) {
  struct qerr err = QERR_INIT;
  bool cached = !expect_cached;
  if (image_import_file(f->s, path, tags, n, info, &cached, &err) < 0)
    fail_msg("importing %s: %s", path, err.msg);
  assert_int_equal(cached, expect_cached);
  assert_int_equal(strlen(info->id), 64);
}

static void test_formats(void **state) {
  struct fx *f = *state;
  char *want = fingerprint(g.rootfs, true, true);
  assert_non_null(strstr(want, "/usr/bin/suid mode=104755"));
  assert_non_null(strstr(want, "/home/user/owned mode=100640 uid=1234 gid=5678"));
  assert_non_null(strstr(want, "security.capability="));
  if (g.user_xattr)
    assert_non_null(strstr(want, "user.quilt=796573"));
  char ids[5][65];
  for (int i = 0; i < 5; i++) {
    struct image_info info;
    double t = now_ms();
    import_ok(f, g.tar[i], NULL, 0, &info, false);
    print_message("    %-8s %s  %.1f ms  %" PRIu64 " bytes\n", fmt_names[i], info.id,
                  now_ms() - t, info.size_bytes);
    char sum[65];
    sha_file(g.tar[i], sum);
    assert_string_equal(info.id, sum); /* the id is the hash of the bytes as given */
    memcpy(ids[i], info.id, 65);
    char expect_root[PATH_MAX];
    snprintf(expect_root, sizeof expect_root, "%s/%s/rootfs", image_store_dir(f->s), info.id);
    assert_string_equal(info.rootfs, expect_root);
    assert_true(info.size_bytes > 1000000);
    char *got = fingerprint(info.rootfs, true, true);
    assert_same_text(fmt_names[i], want, got);
    free(got);
    /* Hard links stay hard links. */
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    struct stat sa, sb;
    snprintf(a, sizeof a, "%s/etc/hard1", info.rootfs);
    snprintf(b, sizeof b, "%s/etc/hard2", info.rootfs);
    assert_int_equal(stat(a, &sa), 0);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal(sa.st_ino, sb.st_ino);
    image_info_free(&info);
  }
  free(want);
  assert_store_clean(f, 5);
  for (int i = 0; i < 5; i++)
    for (int j = i + 1; j < 5; j++)
      assert_string_not_equal(ids[i], ids[j]);
}

static void test_cached_reimport(void **state) {
  struct fx *f = *state;
  struct image_info first, again;
  import_ok(f, g.tar[1], NULL, 0, &first, false);
  double t = now_ms();
  import_ok(f, g.tar[1], NULL, 0, &again, true);
  double same_file = now_ms() - t;
  assert_string_equal(first.id, again.id);
  image_info_free(&again);
  /* A copy: another inode, so it is hashed, but not extracted. */
  char copy[256];
  arch_path(f, copy, sizeof copy, "copy.tar.gz");
  run("cp %s %s", g.tar[1], copy);
  t = now_ms();
  import_ok(f, copy, NULL, 0, &again, true);
  double other_file = now_ms() - t;
  assert_string_equal(first.id, again.id);
  image_info_free(&again);
  print_message("    cached re-import: %.3f ms (same file), %.3f ms (a copy, hashed)\n",
                same_file, other_file);
  assert_true(same_file < 10);
  assert_true(other_file < 200);
  /* A re-import that adds a tag is still cached, and tags it. */
  const char *tags[] = {"again:v2"};
  import_ok(f, g.tar[1], tags, 1, &again, true);
  assert_int_equal(again.n_tags, 1);
  assert_string_equal(again.tags[0], "again:v2");
  image_info_free(&again);
  image_info_free(&first);
  assert_store_clean(f, 1);
}

/* Streams path through the asynchronous API the daemon uses. */
static int import_async(struct fx *f, const char *path, const char *const *tags, size_t n,
                        struct image_info *info, bool *cached, struct qerr *err) {
  struct image_import *imp;
  int stream_fd;
  assert_int_equal(image_import_begin(f->s, &imp, &stream_fd, err), 0);
  assert_true(fcntl(stream_fd, F_GETFD) & FD_CLOEXEC);
  int pidfd = image_import_pidfd(imp);
  assert_true(pidfd >= 0);
  int in = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(in >= 0);
  assert_int_equal(image_import_set_source(imp, in, err), 0);
  static char buf[1 << 16];
  ssize_t r;
  signal(SIGPIPE, SIG_IGN);
  while ((r = read(in, buf, sizeof buf)) > 0) {
    ssize_t w = write(stream_fd, buf, (size_t)r);
    if (w < 0 && errno == EPIPE)
      break;
    assert_int_equal(w, r);
    image_import_update(imp, buf, (size_t)w);
  }
  signal(SIGPIPE, SIG_DFL);
  close(in);
  close(stream_fd);
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 60000), 1);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  assert_int_equal(waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED), 0);
  return image_import_finish(f->s, imp, image_wait_status(si.si_code, si.si_status), tags, n,
                             info, cached, err);
}

static void test_async_import(void **state) {
  struct fx *f = *state;
  struct qerr err = QERR_INIT;
  struct image_info info;
  bool cached = true;
  const char *tags[] = {"async"};
  assert_int_equal(import_async(f, g.tar[3], tags, 1, &info, &cached, &err), 0);
  assert_false(cached);
  char sum[65];
  sha_file(g.tar[3], sum);
  assert_string_equal(info.id, sum);
  assert_int_equal(info.n_tags, 1);
  assert_string_equal(info.tags[0], "async:latest");
  /* The source file is remembered: known at once, with new tags. */
  int fd = open(g.tar[3], O_RDONLY | O_CLOEXEC);
  const char *more[] = {"async:two"};
  struct image_info memo;
  assert_int_equal(image_import_try_memo(f->s, fd, more, 1, &memo, &err), 1);
  assert_string_equal(memo.id, info.id);
  assert_int_equal(memo.n_tags, 2);
  image_info_free(&memo);
  close(fd);
  fd = open(g.tar[2], O_RDONLY | O_CLOEXEC);
  assert_int_equal(image_import_try_memo(f->s, fd, NULL, 0, &memo, &err), 0);
  close(fd);
  char *want = fingerprint(g.rootfs, true, true), *got = fingerprint(info.rootfs, true, true);
  assert_same_text("async import", want, got);
  free(want);
  free(got);
  /* The same bytes again: extracted, then found to exist and discarded. */
  struct image_info again;
  assert_int_equal(import_async(f, g.tar[3], NULL, 0, &again, &cached, &err), 0);
  assert_true(cached);
  assert_string_equal(again.id, info.id);
  image_info_free(&again);
  image_info_free(&info);
  /* A refused archive through the same API. */
  char path[256];
  arch_path(f, path, sizeof path, "dotdot.tar");
  struct ent e[] = {{"../x", '0', NULL, "x", 0, 0, 0}};
  write_tar(path, e, 1);
  assert_true(import_async(f, path, NULL, 0, &again, &cached, &err) < 0);
  assert_int_equal(err.status, GRPC_INVALID_ARGUMENT);
  assert_string_equal(err.msg, "entry \"../x\": path contains \"..\"");
  assert_store_clean(f, 1);
}

static void assert_lookup(struct fx *f, const char *ref, const char *id) {
  struct qerr err = QERR_INIT;
  struct image_info info;
  if (image_lookup(f->s, ref, &info, &err) < 0)
    fail_msg("lookup %s: %s", ref, err.msg);
  assert_string_equal(info.id, id);
  image_info_free(&info);
}

static void assert_lookup_fails(struct fx *f, const char *ref, int status) {
  struct qerr err = QERR_INIT;
  struct image_info info;
  assert_true(image_lookup(f->s, ref, &info, &err) < 0);
  if (err.status != status)
    fail_msg("lookup %s: status %d (%s), expected %d", ref, err.status, err.msg, status);
}

struct listing {
  char ids[8][65];
  size_t n_tags[8];
  size_t n;
};

static int list_cb(void *arg, const struct image_info *img) {
  struct listing *l = arg;
  memcpy(l->ids[l->n], img->id, 65);
  l->n_tags[l->n++] = img->n_tags;
  return 0;
}

static void test_tags_and_lookup(void **state) {
  struct fx *f = *state;
  const char *tags[] = {"busybox", "busybox:1.35"};
  struct image_info gz, xz;
  import_ok(f, g.tar[1], tags, 2, &gz, false);
  assert_int_equal(gz.n_tags, 2);
  assert_string_equal(gz.tags[0], "busybox:1.35");
  assert_string_equal(gz.tags[1], "busybox:latest");
  char ref[128];
  assert_lookup(f, "busybox", gz.id);
  assert_lookup(f, "busybox:latest", gz.id);
  assert_lookup(f, "busybox:1.35", gz.id);
  assert_lookup(f, gz.id, gz.id);
  snprintf(ref, sizeof ref, "sha256:%s", gz.id);
  assert_lookup(f, ref, gz.id);
  snprintf(ref, sizeof ref, "%.8s", gz.id);
  assert_lookup(f, ref, gz.id);
  snprintf(ref, sizeof ref, "sha256:%.4s", gz.id);
  assert_lookup(f, ref, gz.id);
  assert_lookup_fails(f, "nosuch", GRPC_NOT_FOUND);
  assert_lookup_fails(f, "nosuch:tag", GRPC_NOT_FOUND);
  assert_lookup_fails(f, "abc", GRPC_NOT_FOUND);
  assert_lookup_fails(f, "sha256:abc", GRPC_INVALID_ARGUMENT);
  assert_lookup_fails(f, "Bad Ref!", GRPC_INVALID_ARGUMENT);
  assert_lookup_fails(f, "", GRPC_INVALID_ARGUMENT);
  assert_lookup_fails(f, "busybox:", GRPC_INVALID_ARGUMENT);
  memset(ref, '0', 64); /* a full id that is not there */
  ref[64] = 0;
  assert_lookup_fails(f, ref, GRPC_NOT_FOUND);

  /* Tag grammar. */
  char canon[IMAGE_TAG_MAX];
  struct qerr err = QERR_INIT;
  const char *good[] = {"a", "library/ubuntu:22.04", "my-app__x.y/z:V_1.0-rc", "a--b:_x"};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(image_tag_canonical(good[i], canon, &err), 0);
  const char *bad[] = {"", "A", "a:", ":x", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a:.x",
                       "a:-x", "sha256", "sha256:x", "a:b:c",
                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (image_tag_canonical(bad[i], canon, &err) == 0)
      fail_msg("tag \"%s\" accepted", bad[i]);

  /* A tag moves to the image imported with it. */
  const char *latest[] = {"busybox"};
  import_ok(f, g.tar[2], latest, 1, &xz, false);
  assert_lookup(f, "busybox", xz.id);
  assert_lookup(f, "busybox:1.35", gz.id);
  snprintf(ref, sizeof ref, "%.12s", gz.id);
  struct qerr e2 = QERR_INIT;
  assert_int_equal(image_tag(f->s, ref, "mine/base:v1", &e2), 0);
  assert_lookup(f, "mine/base:v1", gz.id);
  assert_int_equal(image_tag(f->s, "busybox:1.35", "busybox", &e2), 0);
  assert_lookup(f, "busybox", gz.id);
  assert_int_equal(image_tag(f->s, "xz-missing", "x", &e2), -ENOENT);
  assert_int_equal(image_untag(f->s, "busybox:1.35", &e2), 0);
  assert_lookup_fails(f, "busybox:1.35", GRPC_NOT_FOUND);
  assert_int_equal(image_untag(f->s, "busybox:1.35", &e2), -ENOENT);
  assert_int_equal(e2.status, GRPC_NOT_FOUND);

  /* The index survives a reopen; a lost index is rebuilt from the metas. */
  reopen(f, 64 * MiB);
  assert_lookup(f, "busybox", gz.id);
  assert_lookup(f, "mine/base:v1", gz.id);
  char path[256];
  snprintf(path, sizeof path, "%s/tags", f->images);
  assert_int_equal(unlink(path), 0);
  reopen(f, 64 * MiB);
  assert_lookup(f, "busybox", gz.id);
  assert_lookup(f, "mine/base:v1", gz.id);
  assert_int_equal(access(path, F_OK), 0);
  struct listing l = {0};
  assert_int_equal(image_list(f->s, list_cb, &l, &err), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.ids[0], gz.id); /* oldest first */
  assert_string_equal(l.ids[1], xz.id);
  assert_int_equal(l.n_tags[0], 2);
  assert_int_equal(l.n_tags[1], 0);

  /* Remove: by tag; its tags go with it. */
  assert_int_equal(image_remove(f->s, "mine/base:v1", &err), 0);
  assert_lookup_fails(f, "busybox", GRPC_NOT_FOUND);
  assert_lookup_fails(f, gz.id, GRPC_NOT_FOUND);
  snprintf(path, sizeof path, "%s/%s", f->images, gz.id);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(image_remove(f->s, gz.id, &err), -ENOENT);
  assert_int_equal(err.status, GRPC_NOT_FOUND);
  assert_store_clean(f, 1);
  reopen(f, 64 * MiB);
  assert_store_clean(f, 1);
  assert_lookup(f, xz.id, xz.id);
  /* Import again after removal: extracted afresh. */
  image_info_free(&gz);
  import_ok(f, g.tar[1], NULL, 0, &gz, false);
  assert_store_clean(f, 2);
  image_info_free(&gz);
  image_info_free(&xz);
}

/* image_remove_plan: expects action (and tag for an untag) or a failure
 * with status and a message containing needle. */
static void expect_plan(struct fx *f, const char *ref, bool force, int want, const char *tag) {
  struct image_info info;
  char got[IMAGE_TAG_MAX];
  struct qerr err = QERR_INIT;
  int r = image_remove_plan(f->s, ref, force, &info, got, &err);
  if (r != want)
    fail_msg("plan %s%s: %d (%s), expected %d", ref, force ? " (force)" : "", r, err.msg, want);
  assert_string_equal(got, tag);
  image_info_free(&info);
}

static void expect_plan_refused(struct fx *f, const char *ref, int status, const char *needle) {
  struct image_info info;
  char tag[IMAGE_TAG_MAX];
  struct qerr err = QERR_INIT;
  assert_true(image_remove_plan(f->s, ref, false, &info, tag, &err) < 0);
  if (err.status != status || !strstr(err.msg, needle))
    fail_msg("plan %s: status %d \"%s\", expected %d with \"%s\"", ref, err.status, err.msg,
             status, needle);
  assert_null(info.tags);
}

/* docker rmi's rules: a tag of an image with others only untags; the last
 * tag or the id removes the image; an id with several tags needs force. */
static void test_remove_plan(void **state) {
  struct fx *f = *state;
  const char *tags[] = {"busybox", "mini:1", "mini:2"};
  struct image_info img;
  import_ok(f, g.tar[1], tags, 3, &img, false);
  char ref[128], msg[256];
  expect_plan(f, "mini:1", false, IMAGE_RM_UNTAG, "mini:1");
  expect_plan(f, "mini:1", true, IMAGE_RM_UNTAG, "mini:1");
  expect_plan(f, "busybox", false, IMAGE_RM_UNTAG, "busybox:latest"); /* "name" is name:latest */
  snprintf(msg, sizeof msg, "image %.12s is tagged busybox:latest, mini:1, mini:2: remove the "
           "tags or use force", img.id);
  expect_plan_refused(f, img.id, GRPC_FAILED_PRECONDITION, msg);
  snprintf(ref, sizeof ref, "%.6s", img.id);
  expect_plan_refused(f, ref, GRPC_FAILED_PRECONDITION, msg);
  snprintf(ref, sizeof ref, "sha256:%.10s", img.id);
  expect_plan_refused(f, ref, GRPC_FAILED_PRECONDITION, msg);
  expect_plan(f, img.id, true, IMAGE_RM_DELETE, "");
  expect_plan_refused(f, "mini:3", GRPC_NOT_FOUND, "not found");
  expect_plan_refused(f, "Bad!", GRPC_INVALID_ARGUMENT, "invalid image reference");

  /* Untag down to one tag: then the tag and the id both mean the image. */
  struct qerr err = QERR_INIT;
  assert_int_equal(image_untag(f->s, "mini:1", &err), 0);
  assert_int_equal(image_untag(f->s, "busybox", &err), 0);
  assert_lookup(f, "mini:2", img.id);
  assert_lookup_fails(f, "busybox", GRPC_NOT_FOUND);
  expect_plan(f, "mini:2", false, IMAGE_RM_DELETE, "mini:2");
  expect_plan(f, img.id, false, IMAGE_RM_DELETE, "");
  /* The untags survive a reopen. */
  reopen(f, 64 * MiB);
  struct listing l = {0};
  assert_int_equal(image_list(f->s, list_cb, &l, &err), 0);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.n_tags[0], 1);
  /* An untagged image: its id. */
  assert_int_equal(image_untag(f->s, "mini:2", &err), 0);
  expect_plan(f, img.id, false, IMAGE_RM_DELETE, "");
  assert_int_equal(image_remove(f->s, img.id, &err), 0);
  assert_store_clean(f, 0);
  image_info_free(&img);
}

/* Writes an image directory by hand, as a previous run would have. */
static void fake_image(struct fx *f, const char *id, const char *meta_extra) {
  char p[512], text[512];
  snprintf(p, sizeof p, "%s/%s/rootfs", f->images, id);
  struct qerr err = QERR_INIT;
  assert_int_equal(mkdir_p(p, 0755, &err), 0);
  snprintf(p, sizeof p, "%s/%s/meta", f->images, id);
  snprintf(text, sizeof text, "id %s\ncreated_ns 1\nsize_bytes 0\nentries 0\n%s", id, meta_extra);
  write_text(p, text);
}

static void test_prefixes_and_leftovers(void **state) {
  struct fx *f = *state;
  char a[65], b[65], broken[65], norootfs[65];
  memset(a, 'a', 64);
  memset(b, 'a', 64);
  memset(broken, 'b', 64);
  memset(norootfs, 'c', 64);
  a[64] = b[64] = broken[64] = norootfs[64] = 0;
  a[4] = '1';
  b[4] = '2';
  fake_image(f, a, "tag one:latest\n");
  fake_image(f, b, "");
  char p[512];
  snprintf(p, sizeof p, "%s/%s/rootfs", f->images, broken); /* no meta: a torn import */
  struct qerr err = QERR_INIT;
  assert_int_equal(mkdir_p(p, 0755, &err), 0);
  fake_image(f, norootfs, "");
  snprintf(p, sizeof p, "%s/%s/rootfs", f->images, norootfs);
  assert_int_equal(rmdir(p), 0);
  /* Leftovers of a crash: a half-extracted import, a half-written index. */
  snprintf(p, sizeof p, "%s/staging/0123456789abcdef/rootfs/usr/lib", f->images);
  assert_int_equal(mkdir_p(p, 0755, &err), 0);
  snprintf(p, sizeof p, "%s/staging/0123456789abcdef/rootfs/usr/lib/big", f->images);
  write_text(p, "partial");
  snprintf(p, sizeof p, "%s/staging/0123456789abcdef/rootfs/usr", f->images);
  chmod(p, 0); /* even unreadable dirs go */
  snprintf(p, sizeof p, "%s/tags.tmp", f->images);
  write_text(p, "garbage");
  snprintf(p, sizeof p, "%s/tags", f->images);
  write_text(p, "# old\n"
                "two:latest ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n"
                "bad line\n");
  reopen(f, 0);
  assert_store_clean(f, 2);
  snprintf(p, sizeof p, "%s/tags.tmp", f->images);
  assert_int_equal(access(p, F_OK), -1);
  /* The index existed, so it wins over the meta files: "one" is not back. */
  assert_lookup_fails(f, "one", GRPC_NOT_FOUND);
  assert_lookup_fails(f, "two", GRPC_NOT_FOUND);
  assert_lookup_fails(f, "aaaa", GRPC_INVALID_ARGUMENT);
  assert_lookup_fails(f, "sha256:aaaa", GRPC_INVALID_ARGUMENT);
  assert_lookup(f, "aaaa1", a);
  assert_lookup(f, "sha256:aaaa2", b);
  assert_lookup_fails(f, "aaaa3", GRPC_NOT_FOUND);
}

static void test_crash_kill_helper(void **state) {
  struct fx *f = *state;
  struct image_import *imp;
  int stream_fd;
  struct qerr err = QERR_INIT;
  assert_int_equal(image_import_begin(f->s, &imp, &stream_fd, &err), 0);
  int in = open(g.tar[0], O_RDONLY | O_CLOEXEC);
  static char buf[256 << 10];
  ssize_t n = read(in, buf, sizeof buf);
  close(in);
  assert_int_equal(write(stream_fd, buf, (size_t)n), n);
  image_import_update(imp, buf, (size_t)n);
  usleep(100000); /* let it write some files */
  int pidfd = image_import_pidfd(imp);
  assert_int_equal(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0), 0);
  close(stream_fd);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  assert_int_equal(waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED), 0);
  assert_true(image_import_finish(f->s, imp, image_wait_status(si.si_code, si.si_status), NULL, 0,
                                  NULL, NULL, &err) < 0);
  assert_int_equal(err.status, GRPC_INTERNAL);
  assert_string_equal(err.msg, "quilt-extract was killed by signal 9");
  assert_store_clean(f, 0);

  /* Abort midway. */
  assert_int_equal(image_import_begin(f->s, &imp, &stream_fd, &err), 0);
  assert_int_equal(write(stream_fd, buf, (size_t)n), n);
  image_import_abort(f->s, imp);
  close(stream_fd);
  assert_store_clean(f, 0);
  /* Abort before any byte. */
  assert_int_equal(image_import_begin(f->s, &imp, &stream_fd, &err), 0);
  image_import_abort(f->s, imp);
  close(stream_fd);
  assert_store_clean(f, 0);
}

static pid_t pidfd_pid(int pidfd) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
  FILE *fp = fopen(path, "re");
  pid_t pid = -1;
  while (fp && fgets(line, sizeof line, fp))
    if (sscanf(line, "Pid: %d", &pid) == 1)
      break;
  if (fp)
    fclose(fp);
  return pid;
}

static void test_crash_daemon_dies(void **state) {
  struct fx *f = *state;
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t child = fork();
  if (child == 0) {
    /* The "daemon": starts an import, feeds half of it, dies. */
    struct image_store *s;
    struct qerr err = QERR_INIT;
    if (image_store_open(&s, f->images, helper, 0, &err) < 0)
      _exit(1);
    struct image_import *imp;
    int stream_fd;
    if (image_import_begin(s, &imp, &stream_fd, &err) < 0)
      _exit(2);
    int in = open(g.tar[0], O_RDONLY);
    static char buf[1 << 20];
    ssize_t n = read(in, buf, sizeof buf);
    if (n <= 0 || write(stream_fd, buf, (size_t)n) != n)
      _exit(3);
    usleep(200000);
    pid_t hp = pidfd_pid(image_import_pidfd(imp));
    if (write(pipefd[1], &hp, sizeof hp) != sizeof hp)
      _exit(4);
    _exit(0); /* no finish, no abort, stream left open */
  }
  close(pipefd[1]);
  pid_t hp = -1;
  assert_int_equal(read(pipefd[0], &hp, sizeof hp), sizeof hp);
  close(pipefd[0]);
  int st;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_true(hp > 0);
  /* PR_SET_PDEATHSIG: the helper dies with its parent. */
  for (int i = 0; i < 500 && kill(hp, 0) == 0; i++)
    usleep(10000);
  assert_int_equal(kill(hp, 0), -1);
  char staging[256];
  snprintf(staging, sizeof staging, "%s/staging", f->images);
  assert_int_equal(count_entries(staging), 1); /* the torn import */
  reopen(f, 64 * MiB);
  assert_store_clean(f, 0);
  /* And the store works afterwards. */
  struct image_info info;
  import_ok(f, g.tar[0], NULL, 0, &info, false);
  image_info_free(&info);
  assert_store_clean(f, 1);
}

/* ------------------------------------------------------------ the helper */

/* Runs the helper with stdin from in_path; captures stdout and stderr. */
static int run_helper(const char *const *args, const char *in_path, char *out, size_t out_cap,
                      char *errbuf, size_t err_cap) {
  char o_path[] = "/tmp/quilt-extract-out-XXXXXX", e_path[] = "/tmp/quilt-extract-err-XXXXXX";
  int ofd = mkstemp(o_path), efd = mkstemp(e_path);
  assert_true(ofd >= 0 && efd >= 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, ofd, 1);
  posix_spawn_file_actions_adddup2(&fa, efd, 2);
  char *argv[16];
  size_t n = 0;
  argv[n++] = (char *)helper;
  for (; args[n - 1] && n < 15; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  pid_t pid;
  assert_int_equal(posix_spawn(&pid, helper, &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  ssize_t k = pread(ofd, out, out_cap - 1, 0);
  out[k < 0 ? 0 : k] = 0;
  k = pread(efd, errbuf, err_cap - 1, 0);
  errbuf[k < 0 ? 0 : k] = 0;
  close(ofd);
  close(efd);
  unlink(o_path);
  unlink(e_path);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static size_t lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void test_helper_cli(void **state) {
  struct fx *f = *state;
  char dir[256], out[4096], errb[4096], bad[256], good[256];
  snprintf(dir, sizeof dir, "%s/cli", f->tmp);
  mkdir(dir, 0755);
  arch_path(f, bad, sizeof bad, "cli-bad.tar");
  struct ent e[] = {{"x", '0', NULL, "x", 0, 0, 0}, {"../etc/passwd", '0', NULL, "y", 0, 0, 0}};
  write_tar(bad, e, 2);
  const char *a1[] = {"--staging", dir, NULL};
  assert_int_equal(run_helper(a1, bad, out, sizeof out, errb, sizeof errb), 2);
  assert_string_equal(errb, "entry \"../etc/passwd\": path contains \"..\"\n");
  assert_string_equal(out, "");
  run("rm -rf %s && mkdir %s", dir, dir);
  arch_path(f, good, sizeof good, "cli-good.tar");
  struct ent e2[] = {{"./", '5', NULL, NULL, 0, 0, 0},
                     {"a/b", '0', NULL, "hello", 0, 0, 0},
                     {"p", '6', NULL, NULL, 0, 0, 0}};
  write_tar(good, e2, 3);
  assert_int_equal(run_helper(a1, good, out, sizeof out, errb, sizeof errb), 0);
  assert_string_equal(out, "ok bytes=5 entries=3\n");
  assert_string_equal(errb, "");
  /* Not empty now. */
  assert_int_equal(run_helper(a1, good, out, sizeof out, errb, sizeof errb), 1);
  assert_int_equal(lines(errb), 1);
  assert_non_null(strstr(errb, "is not empty"));
  /* Usage. */
  const char *a2[] = {"--max-bytes", "12", NULL};
  assert_int_equal(run_helper(a2, good, out, sizeof out, errb, sizeof errb), 1);
  assert_int_equal(lines(errb), 1);
  assert_non_null(strstr(errb, "--staging is required"));
  const char *a3[] = {"--staging", "/nonexistent/quilt", NULL};
  assert_int_equal(run_helper(a3, good, out, sizeof out, errb, sizeof errb), 1);
  assert_int_equal(lines(errb), 1);
  /* Devices only when allowed. */
  char dev[256];
  arch_path(f, dev, sizeof dev, "cli-dev.tar");
  struct ent e3[] = {{"null", '3', NULL, NULL, 1, 3, 0}};
  write_tar(dev, e3, 1);
  run("rm -rf %s && mkdir %s", dir, dir);
  assert_int_equal(run_helper(a1, dev, out, sizeof out, errb, sizeof errb), 2);
  const char *a4[] = {"--staging", dir, "--allow-devices", NULL};
  assert_int_equal(run_helper(a4, dev, out, sizeof out, errb, sizeof errb), 0);
  struct stat st;
  snprintf(dev, sizeof dev, "%.200s/null", dir);
  assert_int_equal(lstat(dev, &st), 0);
  assert_true(S_ISCHR(st.st_mode));
  assert_int_equal(st.st_rdev, makedev(1, 3));
}

static void test_helper_sandbox(void **state) {
  struct fx *f = *state;
  char dir[256], out[4096], errb[4096], in[256];
  snprintf(dir, sizeof dir, "%s/sandbox", f->tmp);
  mkdir(dir, 0755);
  arch_path(f, in, sizeof in, "empty-in");
  write_text(in, "");
  const char *a[] = {"--staging", dir, "--check-sandbox", NULL};
  assert_int_equal(run_helper(a, in, out, sizeof out, errb, sizeof errb), 0);
  print_message("    %s", out);
  /* CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETFCAP and nothing else. */
  const char *want[] = {"cwd=/ ", "caps_eff=0x8000001b ", "caps_prm=0x8000001b ",
                        "bset_sys_admin=0 ", "nnp=1 ", "seccomp=2 ", "nofile=64 ",
                        "chroot=EPERM ", "mount=EPERM ", "execve=EPERM ", "socket=EPERM ",
                        "kill_other=EPERM ", "mknod_chr=EPERM ", "mmap_exec=EPERM"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(out, want[i]))
      fail_msg("sandbox report lacks \"%s\": %s", want[i], out);
  assert_int_equal(count_entries(dir), 0);
}

/* ------------------------------------------------------------ image archives */

/* Builds the OCI / docker save archives (make_image_archives.py) in f->arch. */
static void make_image_archives(struct fx *f) {
  const char *script = getenv("QUILT_MAKE_IMAGE_ARCHIVES");
  assert_non_null(script);
  run("/usr/bin/python3 %s %s", script, f->arch);
}

static char *slurp(const char *path) {
  FILE *fp = fopen(path, "re");
  if (!fp)
    return NULL;
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = 0;
  return buf;
}

static void assert_file(const char *root, const char *rel, const char *content) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  struct stat st;
  if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
    fail_msg("%s is not a regular file in the image", rel);
  assert_string_equal(slurp(p), content);
}

static void assert_absent(const char *root, const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  struct stat st;
  if (lstat(p, &st) == 0)
    fail_msg("%s should not be in the image", rel);
}

static void assert_dir(const char *root, const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  struct stat st;
  if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
    fail_msg("%s is not a directory in the image", rel);
}

/* The two-layer image of make_image_archives.py, and its config. */
static void check_layered_image(struct fx *f, const struct image_info *info, bool repo_tags) {
  const char *r = info->rootfs;
  assert_file(r, "bin/sh", "#!shell\n");
  assert_file(r, "etc/hostname", "two\n");
  assert_absent(r, "etc/gone");            /* whiteout of a file */
  assert_absent(r, "gonedir");             /* whiteout of a tree */
  assert_dir(r, "opq");                    /* opaque: only this layer's */
  assert_file(r, "opq/new", "new\n");
  assert_absent(r, "opq/a");
  assert_absent(r, "opq/sub");
  assert_dir(r, "repl");                   /* a file replaced by a directory */
  assert_file(r, "repl/inside", "in\n");
  assert_file(r, "dirfile", "now a file\n"); /* a directory replaced by a file */
  assert_file(r, "keep/k", "k");
  char *fp = fingerprint(r, false, false);
  if (strstr(fp, ".wh."))
    fail_msg("a whiteout file is in the image:\n%s", fp);
  /* / bin bin/sh dirfile etc etc/hostname keep keep/k opq opq/new repl
   * repl/inside */
  assert_int_equal(lines(fp), 12);
  free(fp);

  struct image_config c;
  struct qerr err = QERR_INIT;
  assert_int_equal(image_config(f->s, info->id, &c, &err), 0);
  assert_int_equal(c.n_env, 3);
  assert_string_equal(c.env[0], "PATH=/usr/bin:/bin");
  assert_string_equal(c.env[1], "FOO=bar baz");
  assert_string_equal(c.env[2], "MULTI=a\nb\\c");
  assert_null(c.env[3]);
  assert_int_equal(c.n_argv, 3);
  assert_string_equal(c.argv[0], "/bin/sh");
  assert_string_equal(c.argv[1], "-c");
  assert_string_equal(c.argv[2], "echo hi");
  assert_null(c.argv[3]);
  assert_string_equal(c.workdir, "/work");
  assert_string_equal(c.user, "1000:1000");
  assert_int_equal(c.n_repo_tags, repo_tags ? 2 : 0);
  image_config_free(&c);
  image_config_free(&c); /* twice is fine */
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s/config", f->images, info->id);
  assert_int_equal(access(p, F_OK), 0);
}

static void test_image_docker_save(void **state) {
  struct fx *f = *state;
  make_image_archives(f);
  char path[256];
  arch_path(f, path, sizeof path, "docker.tar");
  const char *tags[] = {"mine"};
  struct image_info info;
  import_ok(f, path, tags, 1, &info, false);
  check_layered_image(f, &info, true);
  /* RepoTags applied (the invalid "localhost:5000/bad:tag" skipped). */
  assert_int_equal(info.n_tags, 2);
  assert_string_equal(info.tags[0], "example/app:v1");
  assert_string_equal(info.tags[1], "mine:latest");
  image_info_free(&info);
  assert_store_clean(f, 1);
  /* Old docker: a layer.tar that is a symlink to another one. */
  arch_path(f, path, sizeof path, "docker-symlink.tar");
  import_ok(f, path, NULL, 0, &info, false);
  check_layered_image(f, &info, true);
  image_info_free(&info);
  assert_store_clean(f, 2);
  /* A cached re-import answers with the RepoTags too. */
  struct qerr err = QERR_INIT;
  assert_int_equal(image_untag(f->s, "example/app:v1", &err), 0);
  arch_path(f, path, sizeof path, "docker.tar");
  import_ok(f, path, NULL, 0, &info, true);
  assert_int_equal(info.n_tags, 2);
  image_info_free(&info);
  /* A plain tarball has no config. */
  struct ent e[] = {{"bin/x", '0', NULL, "x", 0, 0, 0}};
  arch_path(f, path, sizeof path, "plain.tar");
  write_tar(path, e, 1);
  import_ok(f, path, NULL, 0, &info, false);
  struct image_config c;
  assert_int_equal(image_config(f->s, info.id, &c, &err), 0);
  assert_int_equal(c.n_env + c.n_argv + c.n_repo_tags, 0);
  assert_null(c.workdir);
  assert_null(c.user);
  image_info_free(&info);
  assert_int_equal(image_config(f->s, "nosuch:tag", &c, &err), -ENOENT);
  assert_store_clean(f, 3);
}

static void test_image_oci(void **state) {
  struct fx *f = *state;
  make_image_archives(f);
  char path[256];
  arch_path(f, path, sizeof path, "oci.tar");
  const char *tags[] = {"oci:1"};
  struct image_info info;
  import_ok(f, path, tags, 1, &info, false);
  check_layered_image(f, &info, false);
  assert_int_equal(info.n_tags, 1);
  image_info_free(&info);
  assert_store_clean(f, 1);
}

/* Whiteouts under symlinks of an earlier layer ("up" -> "/", "etc" ->
 * "/etc") follow nothing: the host, the staging dir and the rootfs stay. */
static void test_image_whiteout_symlinks(void **state) {
  struct fx *f = *state;
  make_image_archives(f);
  char *pw = passwd_fingerprint();
  char path[256];
  arch_path(f, path, sizeof path, "wh-symlink.tar");
  struct image_info info;
  import_ok(f, path, NULL, 0, &info, false);
  char p[PATH_MAX + 8], t[64];
  snprintf(p, sizeof p, "%s/up", info.rootfs);
  ssize_t n = readlink(p, t, sizeof t - 1);
  assert_int_equal(n, 1);
  snprintf(p, sizeof p, "%s/etc", info.rootfs);
  n = readlink(p, t, sizeof t - 1);
  assert_int_equal(n, 4);
  assert_file(info.rootfs, "f", "f");
  char *pw2 = passwd_fingerprint();
  assert_string_equal(pw, pw2);
  free(pw);
  free(pw2);
  image_info_free(&info);
  assert_store_clean(f, 1);
}

static void test_refuse_image_hostile(void **state) {
  struct fx *f = *state;
  make_image_archives(f);
  static const struct {
    const char *file, *needle;
  } cases[] = {
      {"h-dotdot.tar", "layer 1: entry \"../x\": path contains \"..\""},
      {"h-wh-dotdot.tar", "layer 2: entry \"../../etc/.wh.passwd\": path contains \"..\""},
      {"h-through-symlink.tar", "layer 2: entry \"lnk/passwd\": path goes through symlink"},
      {"h-layer-dotdot.tar", "layer 1: \"../../etc/passwd\": path contains \"..\""},
      {"h-layer-abs.tar", "layer 1: \"/etc/passwd\": absolute path"},
      {"h-layer-missing.tar", "layer 1: \"deadbeef/layer.tar\" is not in the archive"},
      {"h-layer-outlink.tar", "symlink leaves the archive"},
      {"h-not-tar.tar", "layer 1: archive: Unrecognized archive format"},
      {"h-not-json.tar", "is not valid JSON"},
      {"h-huge.tar", "layer 2: entry \"zero2\": archive expands past the limit of 67108864"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[256];
    arch_path(f, path, sizeof path, cases[i].file);
    print_message("    %s\n", cases[i].file);
    expect_refused(f, path, cases[i].needle);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
      T(test_refuse_dotdot),
      T(test_refuse_absolute),
      T(test_refuse_symlink_through),
      T(test_refuse_hardlink_out),
      T(test_refuse_devices),
      T(test_refuse_type_conflicts),
      T(test_symlink_acl_not_followed),
      T(test_open_errors),
      T(test_refuse_truncated),
      T(test_refuse_garbage),
      T(test_refuse_zip_bomb),
      T(test_refuse_too_many_entries),
      T(test_refuse_not_a_file),
      T(test_refuse_bad_tag),
      T(test_formats),
      T(test_cached_reimport),
      T(test_async_import),
      T(test_tags_and_lookup),
      T(test_remove_plan),
      T(test_prefixes_and_leftovers),
      T(test_crash_kill_helper),
      T(test_crash_daemon_dies),
      T(test_helper_cli),
      T(test_helper_sandbox),
      T(test_image_docker_save),
      T(test_image_oci),
      T(test_image_whiteout_symlinks),
      T(test_refuse_image_hostile),
#undef T
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
