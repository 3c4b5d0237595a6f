/* treecopy (runtime/treecopy.c) and the copy mode of rootfs_prepare: a
 * temporary tree with a file, symlinks (a dangling one, one pointing at
 * ../../etc/passwd, one at /etc), a hard-link pair, setuid and setgid
 * files, an empty directory, a read-only directory, a FIFO, a sparse file
 * and xattrs is copied and compared with its source, entry by entry: type,
 * mode, owner, link count, size, mtime, symlink target, contents, xattrs.
 * Owners, file capabilities and device nodes need root; without it those
 * checks are skipped. Each test works in its own temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "runtime/rootfs.h"
#include "runtime/treecopy.h"

struct fx {
  char dir[64];    /* TMPDIR/quilt-treecopy-XXXXXX */
  char src[96];
  char dst[96];
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/quilt-treecopy-XXXXXX",
           tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->src, sizeof f->src, "%s/src", f->dir);
  snprintf(f->dst, sizeof f->dst, "%s/dst", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  struct qerr err = QERR_INIT;
  int r = rm_rf(f->dir, &err);
  free(f);
  return r;
}

/* ------------------------------------------------------------ helpers */

static void at(char *out, size_t cap, const char *dir, const char *rel) {
  if ((size_t)snprintf(out, cap, "%s/%s", dir, rel) >= cap)
    fail_msg("path too long: %s/%s", dir, rel);
}

static void put(const char *dir, const char *rel, const char *text, mode_t mode) {
  char p[512];
  at(p, sizeof p, dir, rel);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    fail_msg("creating %s: %s", p, strerror(errno));
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static void mkd(const char *dir, const char *rel, mode_t mode) {
  char p[512];
  at(p, sizeof p, dir, rel);
  assert_int_equal(mkdir(p, 0755), 0);
  assert_int_equal(chmod(p, mode), 0); /* past the umask */
}

static void lnk(const char *dir, const char *target, const char *rel) {
  char p[512];
  at(p, sizeof p, dir, rel);
  assert_int_equal(symlink(target, p), 0);
}

static void set_times(const char *dir, const char *rel, time_t atime, time_t mtime) {
  char p[512];
  at(p, sizeof p, dir, rel);
  const struct timespec ts[2] = {{atime, 123}, {mtime, 456789}};
  assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static struct stat lst(const char *dir, const char *rel) {
  char p[512];
  struct stat st;
  at(p, sizeof p, dir, rel);
  if (lstat(p, &st) < 0)
    fail_msg("lstat %s: %s", p, strerror(errno));
  return st;
}

static void copy_ok(struct fx *f, const struct treecopy_opts *o, struct treecopy_stats *st) {
  struct qerr err = QERR_INIT;
  int r = treecopy(f->src, f->dst, o, st, &err);
  if (r != 0)
    fail_msg("treecopy: %d %s", r, err.msg);
}

/* ---- fingerprints: one line per entry, sorted ---- */

struct listing {
  char **lines;
  size_t n, cap;
  size_t rootlen;
};
static struct listing *walk_into; /* nftw has no callback argument */

static void add_line(struct listing *l, const char *line) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->lines = realloc(l->lines, l->cap * sizeof *l->lines);
    assert_non_null(l->lines);
  }
  l->lines[l->n++] = strdup(line);
}

static void hash_file(const char *path, char *out, size_t cap) {
  /* FNV-1a: enough to tell contents apart here. */
  uint64_t h = 1469598103934665603ull;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; i++)
      h = (h ^ (uint8_t)buf[i]) * 1099511628211ull;
  close(fd);
  snprintf(out, cap, " data=%016llx", (unsigned long long)h);
}

static void xattr_text(const char *path, char *out, size_t cap) {
  char names[4096], val[512];
  ssize_t n = llistxattr(path, names, sizeof names);
  out[0] = 0;
  for (char *k = names; n > 0 && k < names + n; k += strlen(k) + 1) {
    ssize_t v = lgetxattr(path, k, val, sizeof val);
    size_t used = strlen(out);
    snprintf(out + used, cap - used, " %.100s=%zd:", k, v);
    for (ssize_t i = 0; i < v && strlen(out) + 3 < cap; i++)
      snprintf(out + strlen(out), cap - strlen(out), "%02x", (uint8_t)val[i]);
  }
}

static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)type;
  (void)ftw;
  char extra[PATH_MAX + 8] = "", xa[2048];
  if (S_ISLNK(st->st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    snprintf(extra, sizeof extra, " -> %s", target);
  } else if (S_ISREG(st->st_mode)) {
    hash_file(path, extra, sizeof extra);
  } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
    snprintf(extra, sizeof extra, " dev=%u,%u", major(st->st_rdev), minor(st->st_rdev));
  }
  xattr_text(path, xa, sizeof xa);
  char line[PATH_MAX * 2 + 4096];
  snprintf(line, sizeof line, "%s mode=%o uid=%u gid=%u nlink=%lu size=%lld mtime=%lld.%09ld%s%s",
           path[walk_into->rootlen] ? path + walk_into->rootlen : "/", st->st_mode,
           st->st_uid, st->st_gid, (unsigned long)st->st_nlink,
           S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size, (long long)st->st_mtim.tv_sec,
           st->st_mtim.tv_nsec, extra, xa);
  add_line(walk_into, line);
  return 0;
}

static int cmp_line(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void fingerprint(const char *root, struct listing *l) {
  *l = (struct listing){.rootlen = strlen(root)};
  walk_into = l;
  assert_int_equal(nftw(root, walk_cb, 16, FTW_PHYS), 0);
  qsort(l->lines, l->n, sizeof *l->lines, cmp_line);
}

static void listing_free(struct listing *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->lines[i]);
  free(l->lines);
}

static void assert_same_tree(const char *a, const char *b) {
  struct listing la, lb;
  fingerprint(a, &la);
  fingerprint(b, &lb);
  for (size_t i = 0; i < la.n || i < lb.n; i++) {
    const char *x = i < la.n ? la.lines[i] : "(none)", *y = i < lb.n ? lb.lines[i] : "(none)";
    if (strcmp(x, y) != 0)
      fail_msg("trees differ:\n  source: %s\n  copy:   %s", x, y);
  }
  listing_free(&la);
  listing_free(&lb);
}

/* ---- the source tree ---- */

static bool root(void) { return geteuid() == 0; }

/* A file capability (cap_net_bind_service=ep): chown clears these. */
static void set_file_cap(const char *path) {
  struct vfs_cap_data cap = {.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE};
  cap.data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  assert_int_equal(setxattr(path, "security.capability", &cap, XATTR_CAPS_SZ_2, 0), 0);
}

static void make_tree(struct fx *f) {
  const char *s = f->src;
  assert_int_equal(mkdir(s, 0755), 0);
  mkd(s, "etc", 0755);
  put(s, "etc/hostname", "quilt\n", 0640);
  mkd(s, "empty", 0751);
  mkd(s, "ro", 0755);
  put(s, "ro/f", "read-only dir\n", 0444);
  assert_int_equal(chmod(f->src, 0755), 0);
  lnk(s, "etc/hostname", "lnk");
  lnk(s, "nowhere/at/all", "dangling");
  lnk(s, "../../etc/passwd", "escape");
  lnk(s, "/etc", "abs");
  put(s, "hl1", "two names\n", 0644);
  mkd(s, "sub", 0700);
  char a[512], b[512];
  at(a, sizeof a, s, "hl1");
  at(b, sizeof b, s, "sub/hl2");
  assert_int_equal(link(a, b), 0);
  put(s, "suid", "#!/bin/sh\n", 04755);
  put(s, "sgid", "#!/bin/sh\n", 02711);
  mkd(s, "tmp", 01777);
  at(a, sizeof a, s, "fifo");
  assert_int_equal(mkfifo(a, 0620), 0);
  /* Sparse: 8 MiB with 5 bytes of data in the middle. */
  at(a, sizeof a, s, "sparse");
  int fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 8 << 20), 0);
  assert_int_equal(pwrite(fd, "data!", 5, 4 << 20), 5);
  close(fd);
  at(a, sizeof a, s, "etc/hostname");
  if (setxattr(a, "user.quilt", "yes", 3, 0) == 0) {
    at(b, sizeof b, s, "etc");
    assert_int_equal(setxattr(b, "user.quilt.dir", "d", 1, 0), 0);
  }
  if (root()) {
    at(a, sizeof a, s, "etc/hostname");
    assert_int_equal(chown(a, 1234, 5678), 0);
    at(a, sizeof a, s, "lnk");
    assert_int_equal(lchown(a, 4321, 8765), 0);
    at(a, sizeof a, s, "suid");
    assert_int_equal(chown(a, 0, 0), 0);
    assert_int_equal(chmod(a, 04755), 0); /* chown cleared it */
    at(a, sizeof a, s, "ping");
    fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "elf", 3), 3);
    close(fd);
    set_file_cap(a);
    at(a, sizeof a, s, "null");
    assert_int_equal(mknod(a, S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  if (root()) { /* others could not empty it afterwards (teardown, rootfs_release) */
    at(a, sizeof a, s, "ro");
    assert_int_equal(chmod(a, 0555), 0);
  }
  set_times(s, "etc/hostname", 1000000000, 1500000000);
  set_times(s, "lnk", 1000000001, 1500000001);
  set_times(s, "fifo", 1000000002, 1500000002);
  set_times(s, "empty", 1000000003, 1500000003);
  set_times(s, "etc", 1000000004, 1500000004); /* after its last change */
  set_times(s, ".", 1000000005, 1500000005);
}

static void hash_path(const char *path, char out[32]) { hash_file(path, out, 32); }

/* ------------------------------------------------------------ tests */

static void test_copy_tree(void **state) {
  struct fx *f = *state;
  char passwd[32], passwd_after[32];
  hash_path("/etc/passwd", passwd);
  make_tree(f);
  struct treecopy_stats st;
  copy_ok(f, NULL, &st);

  /* Times first: reading the copy below may touch atimes. */
  assert_int_equal(lst(f->dst, "etc/hostname").st_atim.tv_sec, 1000000000);
  assert_int_equal(lst(f->dst, "etc/hostname").st_atim.tv_nsec, 123);
  assert_int_equal(lst(f->dst, "lnk").st_atim.tv_sec, 1000000001);
  assert_int_equal(lst(f->dst, ".").st_mtim.tv_sec, 1500000005);

  assert_same_tree(f->src, f->dst);

  /* Symlinks are copied as symlinks, never followed. */
  char target[PATH_MAX], p[512];
  at(p, sizeof p, f->dst, "escape");
  ssize_t n = readlink(p, target, sizeof target - 1);
  assert_int_equal(n, 16);
  target[n] = 0;
  assert_string_equal(target, "../../etc/passwd");
  assert_true(S_ISLNK(lst(f->dst, "abs").st_mode));
  assert_true(S_ISLNK(lst(f->dst, "dangling").st_mode));
  hash_path("/etc/passwd", passwd_after);
  assert_string_equal(passwd, passwd_after);

  /* A private copy: the hard links share one new inode. */
  struct stat h1 = lst(f->dst, "hl1"), h2 = lst(f->dst, "sub/hl2");
  assert_int_equal(h1.st_ino, h2.st_ino);
  assert_int_equal(h1.st_nlink, 2);
  assert_int_not_equal(h1.st_ino, lst(f->src, "hl1").st_ino);
  assert_int_equal(lst(f->dst, "suid").st_mode & 07777, 04755);
  assert_int_equal(lst(f->dst, "sgid").st_mode & 07777, 02711);
  assert_int_equal(lst(f->dst, "tmp").st_mode & 07777, 01777);
  assert_true(S_ISFIFO(lst(f->dst, "fifo").st_mode));
  assert_true(lst(f->dst, "sparse").st_blocks < 1024); /* < 512 KiB of 8 MiB */

  assert_int_equal(st.dirs, 6);
  assert_int_equal(st.symlinks, 4);
  assert_int_equal(st.hardlinks, 1);
  assert_int_equal(st.files, root() ? 7 : 6);
  assert_int_equal(st.specials, root() ? 2 : 1);
  assert_true(st.reflinked <= st.files);
  if (root())
    assert_int_equal(lst(f->dst, "etc/hostname").st_uid, 1234);
}

static void test_id_shift(void **state) {
  struct fx *f = *state;
  if (!root())
    skip();
  make_tree(f);
  const struct treecopy_opts o = {.id_shift = 100000};
  copy_ok(f, &o, NULL);
  struct stat st = lst(f->dst, "etc/hostname");
  assert_int_equal(st.st_uid, 101234);
  assert_int_equal(st.st_gid, 105678);
  assert_int_equal(lst(f->dst, "lnk").st_uid, 104321);
  assert_int_equal(lst(f->dst, ".").st_uid, 100000);
  assert_int_equal(lst(f->dst, "suid").st_mode & 07777, 04755);
}

/* A setgid parent directory would give new entries its group: the copy
 * must still carry the source's groups. */
static void test_setgid_parent(void **state) {
  struct fx *f = *state;
  if (!root())
    skip();
  make_tree(f);
  char parent[512], dst[600];
  at(parent, sizeof parent, f->dir, "sgid-parent");
  assert_int_equal(mkdir(parent, 0755), 0);
  assert_int_equal(chown(parent, 0, 4242), 0);
  assert_int_equal(chmod(parent, 02775), 0);
  at(dst, sizeof dst, parent, "copy");
  struct qerr err = QERR_INIT;
  if (treecopy(f->src, dst, NULL, NULL, &err) != 0)
    fail_msg("treecopy: %s", err.msg);
  assert_same_tree(f->src, dst);
  assert_int_equal(lst(dst, "lnk").st_gid, 8765);
  assert_int_equal(lst(dst, "hl1").st_gid, 0);
  assert_int_equal(lst(dst, "empty").st_gid, 0);
  assert_int_equal(lst(dst, "empty").st_mode & 07777, 0751);
}

static void test_many_hard_links(void **state) {
  struct fx *f = *state;
  assert_int_equal(mkdir(f->src, 0755), 0);
  mkd(f->src, "b", 0755);
  char a[512], b[512], name[32];
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "f%d", i);
    put(f->src, name, name, 0644);
    at(a, sizeof a, f->src, name);
    snprintf(name, sizeof name, "b/g%d", i);
    at(b, sizeof b, f->src, name);
    assert_int_equal(link(a, b), 0);
  }
  struct treecopy_stats st;
  copy_ok(f, NULL, &st);
  assert_int_equal(st.files, 300);
  assert_int_equal(st.hardlinks, 300);
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "f%d", i);
    struct stat x = lst(f->dst, name);
    snprintf(name, sizeof name, "b/g%d", i);
    assert_int_equal(x.st_ino, lst(f->dst, name).st_ino);
  }
}

static void expect_failure(const char *src, const char *dst, int code, const char *needle) {
  struct qerr err = QERR_INIT;
  int r = treecopy(src, dst, NULL, NULL, &err);
  if (r != code || !strstr(err.msg, needle))
    fail_msg("treecopy(%s, %s): %d \"%s\", want %d naming %s", src, dst, r, err.msg, code,
             needle);
}

static void test_errors(void **state) {
  struct fx *f = *state;
  char p[512], q[512];
  at(p, sizeof p, f->dir, "missing");
  expect_failure(p, f->dst, -ENOENT, p);
  assert_int_equal(mkdir(f->src, 0755), 0);
  assert_int_equal(mkdir(f->dst, 0755), 0);
  expect_failure(f->src, f->dst, -EEXIST, f->dst);
  /* The source itself may not be a symlink (it would be followed). */
  at(p, sizeof p, f->dir, "link-to-src");
  assert_int_equal(symlink(f->src, p), 0);
  at(q, sizeof q, f->dir, "out");
  expect_failure(p, q, -ENOTDIR, p); /* O_NOFOLLOW | O_DIRECTORY */
  put(f->src, "file", "x", 0644);
  at(p, sizeof p, f->src, "file");
  expect_failure(p, q, -ENOTDIR, p);
}

/* A path deeper than PATH_MAX: refused, naming where. */
static void test_too_deep(void **state) {
  struct fx *f = *state;
  assert_int_equal(mkdir(f->src, 0755), 0);
  char name[201];
  memset(name, 'd', 200);
  name[200] = 0;
  int fd = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int i = 0; i < 25 && fd >= 0; i++) { /* 25 * 201 bytes > 4096 */
    assert_int_equal(mkdirat(fd, name, 0755), 0);
    int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  assert_true(fd >= 0);
  close(fd);
  expect_failure(f->src, f->dst, -ENAMETOOLONG, f->src);
}

static void test_reflink_probe(void **state) {
  struct fx *f = *state;
  treecopy_can_reflink(f->dir); /* either answer; nothing left behind */
  DIR *d = opendir(f->dir);
  assert_non_null(d);
  int n = 0;
  while (readdir(d))
    n++;
  closedir(d);
  assert_int_equal(n, 2);
  char p[512];
  at(p, sizeof p, f->dir, "missing");
  assert_false(treecopy_can_reflink(p));
  const char *drv = rootfs_copy_driver(f->dir);
  assert_true(strcmp(drv, "copy") == 0 || strcmp(drv, "copy (reflink)") == 0);
}

/* ------------------------------------------------------------ rootfs */

static void test_rootfs_copy_and_release(void **state) {
  struct fx *f = *state;
  make_tree(f);
  char cdir[512];
  at(cdir, sizeof cdir, f->dir, "ctr");
  assert_int_equal(mkdir(cdir, 0700), 0);
  struct rootfs_view v;
  struct qerr err = QERR_INIT;
  if (rootfs_prepare(f->src, cdir, ROOTFS_COPY, &v, &err) != 0)
    fail_msg("rootfs_prepare: %s", err.msg);
  assert_true(v.copied);
  assert_false(v.overlay);
  assert_string_equal(v.lower, f->src);
  char want[512];
  at(want, sizeof want, cdir, "rootfs");
  assert_string_equal(v.merged, want);
  assert_same_tree(f->src, v.merged);
  /* Writable and private: a change stays in the copy. */
  put(v.merged, "new", "x", 0644);
  assert_int_equal(access(want, F_OK), 0);
  assert_int_equal(rootfs_release(cdir, &err), 0);
  assert_int_equal(access(want, F_OK), -1);
  char p[512];
  at(p, sizeof p, f->src, "new");
  assert_int_equal(access(p, F_OK), -1);

  /* Overlay mode only makes the directories. */
  assert_int_equal(rootfs_prepare(f->src, cdir, ROOTFS_OVERLAY, &v, &err), 0);
  assert_true(v.overlay);
  assert_false(v.copied);
  assert_int_equal(access(v.upper, F_OK), 0);
  assert_int_equal(access(v.work, F_OK), 0);
  assert_int_equal(rootfs_release(cdir, &err), 0);
  assert_int_equal(access(v.upper, F_OK), -1);
}

/* A failed copy leaves nothing behind; the message names the path. */
static void test_rootfs_copy_failure(void **state) {
  struct fx *f = *state;
  assert_int_equal(mkdir(f->src, 0755), 0);
  char name[201];
  memset(name, 'd', 200);
  name[200] = 0;
  int fd = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int i = 0; i < 25 && fd >= 0; i++) {
    assert_int_equal(mkdirat(fd, name, 0755), 0);
    int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  close(fd);
  char cdir[512], merged[600];
  at(cdir, sizeof cdir, f->dir, "ctr");
  assert_int_equal(mkdir(cdir, 0700), 0);
  struct rootfs_view v;
  struct qerr err = QERR_INIT;
  assert_int_equal(rootfs_prepare(f->src, cdir, ROOTFS_COPY, &v, &err), -ENAMETOOLONG);
  assert_non_null(strstr(err.msg, "copying the image into the container's rootfs"));
  assert_non_null(strstr(err.msg, f->src));
  at(merged, sizeof merged, cdir, "rootfs");
  assert_int_equal(access(merged, F_OK), -1);
  assert_int_equal(rootfs_prepare("relative", cdir, ROOTFS_COPY, &v, &err), -EINVAL);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_copy_tree),     T(test_id_shift),      T(test_setgid_parent),
      T(test_many_hard_links),
      T(test_errors),        T(test_too_deep),      T(test_reflink_probe),
      T(test_rootfs_copy_and_release), T(test_rootfs_copy_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
