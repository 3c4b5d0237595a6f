#include "runtime/treecopy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"

#define RW_CHUNK (256 * 1024)
#define XLIST_MAX 65536   /* the kernel's XATTR_LIST_MAX */
#define XVALUE_MAX 65536  /* the kernel's XATTR_SIZE_MAX */

/* An inode with several names, by its source identity: the first name met
 * is copied, the others become hard links to that copy (rel, under dst). */
struct link_rec {
  dev_t dev;
  ino_t ino;
  char *rel;   /* NULL: an empty slot */
};

/* Open addressing: images may hold thousands of hard links. */
struct links {
  struct link_rec *v;
  size_t cap, n;   /* cap: 0 or a power of two */
};

struct tc {
  const char *src, *dst;   /* the roots, for messages */
  int droot;               /* dst's root, for linkat */
  uid_t shift;
  uid_t euid;              /* what a new entry is owned by: chown only if */
  gid_t egid;              /* the source's (shifted) owner differs */
  char rel[PATH_MAX];      /* the entry at hand, relative to both roots */
  size_t rel_len;
  struct links links;
  bool no_clone, no_cfr;   /* the filesystems cannot: stop asking */
  char *buf;               /* read/write fallback; RW_CHUNK, on first use */
  char *xbuf;              /* xattr names then a value; on first use */
  struct treecopy_stats *st;
  struct qerr *err;
};

/* ------------------------------------------------------------ messages */

static int path_err(struct tc *t, const char *root, const char *what) {
  return qerr_errno(t->err, "%s %s%s%s", what, root, t->rel_len ? "/" : "", t->rel);
}
static int src_err(struct tc *t, const char *what) { return path_err(t, t->src, what); }
static int dst_err(struct tc *t, const char *what) { return path_err(t, t->dst, what); }

static int push(struct tc *t, const char *name, size_t *saved) {
  size_t n = strlen(name);
  *saved = t->rel_len;
  if (t->rel_len + 1 + n >= sizeof t->rel)
    return qerr_set(t->err, ENAMETOOLONG, "copying %s/%.200s...: path longer than %d bytes",
                    t->src, t->rel, PATH_MAX - 1);
  if (t->rel_len)
    t->rel[t->rel_len++] = '/';
  memcpy(t->rel + t->rel_len, name, n + 1);
  t->rel_len += n;
  return 0;
}

static void pop(struct tc *t, size_t saved) {
  t->rel_len = saved;
  t->rel[saved] = 0;
}

/* ------------------------------------------------------------ hard links */

static size_t link_hash(dev_t dev, ino_t ino) {
  return (size_t)((ino ^ ((uint64_t)dev << 32)) * 0x9E3779B97F4A7C15ull);
}

/* The slot of (dev, ino): its record, or the empty slot it would take. */
static struct link_rec *link_slot(const struct links *l, dev_t dev, ino_t ino) {
  size_t mask = l->cap - 1;
  for (size_t i = link_hash(dev, ino) & mask;; i = (i + 1) & mask) {
    struct link_rec *r = &l->v[i];
    if (!r->rel || (r->dev == dev && r->ino == ino))
      return r;
  }
}

static int links_grow(struct links *l) {
  struct links bigger = {.cap = l->cap ? l->cap * 2 : 64, .n = l->n};
  bigger.v = calloc(bigger.cap, sizeof *bigger.v);
  if (!bigger.v)
    return -ENOMEM;
  for (size_t i = 0; i < l->cap; i++)
    if (l->v[i].rel)
      *link_slot(&bigger, l->v[i].dev, l->v[i].ino) = l->v[i];
  free(l->v);
  *l = bigger;
  return 0;
}

static void links_free(struct links *l) {
  for (size_t i = 0; i < l->cap; i++)
    free(l->v[i].rel);
  free(l->v);
}

static int remember_link(struct tc *t, const struct stat *st) {
  /* Half full at most, so probes stay short and a free slot exists. */
  if ((t->links.n + 1) * 2 > t->links.cap && links_grow(&t->links) < 0)
    return qerr_set(t->err, ENOMEM, "copying %s: out of memory", t->src);
  struct link_rec *r = link_slot(&t->links, st->st_dev, st->st_ino);
  if (!(r->rel = strdup(t->rel)))
    return qerr_set(t->err, ENOMEM, "copying %s: out of memory", t->src);
  r->dev = st->st_dev;
  r->ino = st->st_ino;
  t->links.n++;
  return 0;
}

/* 1 when st's inode was copied already and name is now a link to it. */
static int link_copied(struct tc *t, int ddir, const char *name, const struct stat *st) {
  if (!t->links.cap)
    return 0;
  const struct link_rec *r = link_slot(&t->links, st->st_dev, st->st_ino);
  if (!r->rel)
    return 0;
  if (linkat(t->droot, r->rel, ddir, name, 0) < 0)
    return dst_err(t, "linking");
  t->st->hardlinks++;
  return 1;
}

/* ------------------------------------------------------------ metadata */

static int copy_xattrs(struct tc *t, int sfd, int dfd) {
  if (!t->xbuf && !(t->xbuf = malloc(XLIST_MAX + XVALUE_MAX)))
    return qerr_set(t->err, ENOMEM, "copying %s: out of memory", t->src);
  char *list = t->xbuf, *val = t->xbuf + XLIST_MAX;
  ssize_t n = flistxattr(sfd, list, XLIST_MAX);
  if (n < 0)
    return errno == ENOTSUP ? 0 : src_err(t, "listing the xattrs of");
  for (char *name = list; name < list + n; name += strlen(name) + 1) {
    ssize_t len = fgetxattr(sfd, name, val, XVALUE_MAX);
    if (len < 0 && errno == ENODATA)
      continue; /* removed since it was listed */
    if (len < 0)
      return src_err(t, "reading an xattr of");
    /* A destination without xattrs of that kind loses them, as cp -a. */
    if (fsetxattr(dfd, name, val, (size_t)len, 0) < 0 && errno != ENOTSUP)
      return dst_err(t, "setting an xattr on");
  }
  return 0;
}

/* New entries belong to our euid and egid: no directory of the copy is
 * setgid while it is being filled (the root is reset first), so a chown is
 * needed only for other owners. Most images are all root's, and a syscall
 * saved per entry is a good share of a copy's cost. */
static bool owned_already(const struct tc *t, const struct stat *st) {
  return st->st_uid + t->shift == t->euid && st->st_gid + t->shift == t->egid;
}

/* Owner, xattrs, mode, times, in this order: chown clears setuid/setgid
 * bits and file capabilities (security.capability); xattrs and chmod leave
 * the times alone. */
static int finish_fd(struct tc *t, int sfd, int dfd, const struct stat *st) {
  if (!owned_already(t, st) && fchown(dfd, st->st_uid + t->shift, st->st_gid + t->shift) < 0)
    return dst_err(t, "chown");
  if (copy_xattrs(t, sfd, dfd) < 0)
    return t->err->code;
  if (fchmod(dfd, st->st_mode & 07777) < 0)
    return dst_err(t, "chmod");
  const struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if (futimens(dfd, ts) < 0)
    return dst_err(t, "setting the times of");
  return 0;
}

/* The same for what cannot be opened: symlinks, FIFOs, sockets, devices.
 * They were just made in the private copy, so names are safe to use. */
static int finish_at(struct tc *t, int ddir, const char *name, const struct stat *st) {
  if (!owned_already(t, st) && fchownat(ddir, name, st->st_uid + t->shift,
                                        st->st_gid + t->shift, AT_SYMLINK_NOFOLLOW) < 0)
    return dst_err(t, "chown");
  if (!S_ISLNK(st->st_mode) && fchmodat(ddir, name, st->st_mode & 07777, 0) < 0)
    return dst_err(t, "chmod");
  const struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if (utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return dst_err(t, "setting the times of");
  return 0;
}

/* ------------------------------------------------------------ file data */

static int copy_rw(struct tc *t, int in, int out, off_t off, off_t len) {
  if (!t->buf && !(t->buf = malloc(RW_CHUNK)))
    return qerr_set(t->err, ENOMEM, "copying %s: out of memory", t->src);
  while (len > 0) {
    ssize_t n = pread(in, t->buf, len < RW_CHUNK ? (size_t)len : RW_CHUNK, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return src_err(t, "reading");
    if (n == 0)
      return 0; /* shorter than it was: copy what is there */
    for (ssize_t done = 0, w; done < n; done += w) {
      w = pwrite(out, t->buf + done, (size_t)(n - done), off + done);
      if (w < 0 && errno == EINTR)
        w = 0;
      else if (w <= 0)
        return w < 0 ? dst_err(t, "writing")
                     : qerr_set(t->err, ENOSPC, "writing %s/%s: no progress", t->dst, t->rel);
    }
    off += n;
    len -= n;
  }
  return 0;
}

/* copy_file_range keeps the bytes in the kernel (and may share blocks on
 * filesystems that can); older kernels or mixed filesystems refuse it
 * before anything is copied, and then read/write does the job. */
static int copy_range(struct tc *t, int in, int out, off_t off, off_t len) {
  while (len > 0 && !t->no_cfr) {
    loff_t oin = off, oout = off;
    ssize_t n = copy_file_range(in, &oin, out, &oout, (size_t)len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
      t->no_cfr = true;
    else if (n < 0)
      return dst_err(t, "copying to");
    else if (n == 0)
      return 0;
    else {
      off += n;
      len -= n;
    }
  }
  return copy_rw(t, in, out, off, len);
}

/* Only the data extents of a sparse file, so holes stay holes. */
static int copy_sparse(struct tc *t, int in, int out, off_t size) {
  for (off_t data = 0; data < size;) {
    data = lseek(in, data, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break; /* a hole up to the end */
    off_t hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
    if (hole < 0)
      return src_err(t, "seeking in");
    if (copy_range(t, in, out, data, hole - data) < 0)
      return t->err->code;
    data = hole;
  }
  if (ftruncate(out, size) < 0)
    return dst_err(t, "truncating");
  return 0;
}

static bool clone_unsupported(int e) { return e == EOPNOTSUPP || e == ENOTTY || e == EXDEV; }

static int copy_data(struct tc *t, int in, int out, const struct stat *st) {
  if (st->st_size == 0)
    return 0;
  if (!t->no_clone) {
    if (ioctl(out, FICLONE, in) == 0) {
      t->st->reflinked++;
      return 0;
    }
    /* Other errors (a btrfs nodatasum mismatch, ...) concern one file. */
    t->no_clone = clone_unsupported(errno);
  }
  if ((off_t)st->st_blocks * 512 < st->st_size)
    return copy_sparse(t, in, out, st->st_size);
  return copy_range(t, in, out, 0, st->st_size);
}

/* ------------------------------------------------------------ entries */

static int open_src(struct tc *t, int sdir, const char *name, int flags) {
  /* O_NOATIME: reading the image should not write to its inodes. */
  int fd = openat(sdir, name, flags | O_NOATIME | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EPERM)
    fd = openat(sdir, name, flags | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    src_err(t, "opening");
  return fd;
}

static int copy_file(struct tc *t, int sdir, int ddir, const char *name) {
  /* O_NONBLOCK: something swapped in for the file (a FIFO) must not hang
   * us; what was opened is checked again, and its stat is the one used. */
  cleanup_fd int in = open_src(t, sdir, name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (in < 0)
    return t->err->code;
  if (fstat(in, &st) < 0)
    return src_err(t, "inspecting");
  if (!S_ISREG(st.st_mode))
    return qerr_set(t->err, EAGAIN, "copying %s/%s: it stopped being a regular file meanwhile",
                    t->src, t->rel);
  cleanup_fd int out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                              0600);
  if (out < 0)
    return dst_err(t, "creating");
  if (copy_data(t, in, out, &st) < 0 || finish_fd(t, in, out, &st) < 0)
    return t->err->code;
  t->st->files++;
  t->st->bytes += (uint64_t)st.st_size;
  return 0;
}

static int copy_symlink(struct tc *t, int sdir, int ddir, const char *name,
                        const struct stat *st) {
  char target[PATH_MAX];
  ssize_t n = readlinkat(sdir, name, target, sizeof target);
  if (n < 0)
    return src_err(t, "reading the symlink");
  if ((size_t)n >= sizeof target) {
    errno = ENAMETOOLONG;
    return src_err(t, "reading the symlink");
  }
  target[n] = 0;
  if (symlinkat(target, ddir, name) < 0)
    return dst_err(t, "creating the symlink");
  t->st->symlinks++;
  return finish_at(t, ddir, name, st);
}

static int copy_special(struct tc *t, int ddir, const char *name, const struct stat *st) {
  if (mknodat(ddir, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
    return dst_err(t, "creating");
  t->st->specials++;
  return finish_at(t, ddir, name, st);
}

static int copy_dir(struct tc *t, int sfd, int dfd, const struct stat *st);

static int copy_subdir(struct tc *t, int sdir, int ddir, const char *name,
                       const struct stat *st) {
  /* Private until its contents are in: the final mode comes last. */
  if (mkdirat(ddir, name, 0700) < 0)
    return dst_err(t, "creating");
  int sfd = open_src(t, sdir, name, O_RDONLY | O_DIRECTORY);
  if (sfd < 0)
    return t->err->code;
  cleanup_fd int dfd = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    close(sfd);
    return dst_err(t, "opening");
  }
  return copy_dir(t, sfd, dfd, st);
}

static int copy_entry(struct tc *t, int sdir, int ddir, const char *name) {
  struct stat st;
  if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return src_err(t, "inspecting");
  if (S_ISDIR(st.st_mode))
    return copy_subdir(t, sdir, ddir, name, &st);
  int r = st.st_nlink > 1 ? link_copied(t, ddir, name, &st) : 0;
  if (r != 0)
    return r < 0 ? r : 0;
  if (S_ISREG(st.st_mode))
    r = copy_file(t, sdir, ddir, name);
  else if (S_ISLNK(st.st_mode))
    r = copy_symlink(t, sdir, ddir, name, &st);
  else
    r = copy_special(t, ddir, name, &st);
  return r == 0 && st.st_nlink > 1 ? remember_link(t, &st) : r;
}

/* Copies the entries of sfd (consumed) into dfd, then gives dfd the
 * metadata in st: after the entries, whose creation changes its mtime. */
static int copy_dir(struct tc *t, int sfd, int dfd, const struct stat *st) {
  cleanup_dir DIR *d = fdopendir(sfd);
  if (!d) {
    close(sfd);
    return src_err(t, "reading");
  }
  t->st->dirs++;
  struct dirent *e;
  for (errno = 0; (e = readdir(d)); errno = 0) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t saved;
    if (push(t, e->d_name, &saved) < 0 || copy_entry(t, sfd, dfd, e->d_name) < 0)
      return t->err->code;
    pop(t, saved);
  }
  if (errno)
    return src_err(t, "reading");
  return finish_fd(t, sfd, dfd, st);
}

/* The copy's root, empty, owned by us and private until finished. */
static int make_root(struct tc *t) {
  if (mkdir(t->dst, 0700) < 0)
    return dst_err(t, "creating");
  t->droot = open(t->dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (t->droot < 0)
    return dst_err(t, "opening");
  /* Neither setgid nor of the group of a setgid parent: see owned_already. */
  if (fchown(t->droot, t->euid, t->egid) < 0 || fchmod(t->droot, 0700) < 0)
    return dst_err(t, "preparing");
  return 0;
}

int treecopy(const char *src, const char *dst, const struct treecopy_opts *opts,
             struct treecopy_stats *stats, struct qerr *err) {
  struct treecopy_stats ignored;
  struct tc t = {.src = src, .dst = dst, .droot = -1, .shift = opts ? opts->id_shift : 0,
                 .euid = geteuid(), .egid = getegid(),
                 .st = stats ? stats : &ignored, .err = err};
  *t.st = (struct treecopy_stats){0};
  cleanup_fd int sfd = open_src(&t, AT_FDCWD, src, O_RDONLY | O_DIRECTORY);
  struct stat st;
  if (sfd < 0)
    return err->code;
  if (fstat(sfd, &st) < 0)
    return src_err(&t, "inspecting");
  int r = make_root(&t);
  if (r == 0)
    r = copy_dir(&t, take_fd(&sfd), t.droot, &st);
  if (t.droot >= 0)
    close(t.droot);
  links_free(&t.links);
  free(t.buf);
  free(t.xbuf);
  return r;
}

bool treecopy_can_reflink(const char *dir) {
  cleanup_fd int a = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  cleanup_fd int b = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (a < 0 || b < 0 || write(a, "x", 1) != 1)
    return false;
  return ioctl(b, FICLONE, a) == 0;
}
