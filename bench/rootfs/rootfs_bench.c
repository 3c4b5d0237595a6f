/* Per-container rootfs preparation, step by step, in both modes of
 * src/runtime/rootfs.c (built from those sources by bench/rootfs/run):
 *
 *   mkdir     the container's directory (quiltd: mkdir_p(c->dir))
 *   prepare   rootfs_prepare: overlay dirs, or the copy of the image
 *   mount     what the container's setup does in its mount namespace:
 *             overlay: mount("overlay", lowerdir,upperdir,workdir,volatile)
 *             as src/runtime/spawn.c setup_mounts; copy: a writable bind
 *   umount    the container's end (quiltd: its mount namespace dies)
 *   release   rootfs_release
 *   rmdir     rm_rf of the container's directory
 *
 * Runs in a private mount namespace of its own, so no mount outlives it.
 * Each run writes one line per iteration to --out:
 *   mode iter mkdir_ns prepare_ns mount_ns umount_ns release_ns rmdir_ns total_ns
 * and, at the end, "# key=value" lines (copy statistics, the driver name).
 *
 * usage: rootfs_bench --image DIR --dir WORKDIR --runs N [--warmup W]
 *                     [--blocks K] [--modes overlay,copy] --out FILE */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "runtime/rootfs.h"
#include "runtime/treecopy.h"

enum { S_MKDIR, S_PREPARE, S_MOUNT, S_UMOUNT, S_RELEASE, S_RMDIR, N_STEPS };

struct opts {
  const char *image, *dir, *out;
  long runs, warmup, blocks;
  bool overlay, copy;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const struct qerr *err) {
  fprintf(stderr, "rootfs_bench: %s: %s\n", what, err ? err->msg : strerror(errno));
  exit(1);
}

/* The overlay exactly as spawn.c's setup_mounts mounts it (no user
 * namespace, so no userxattr), falling back without "volatile" likewise. */
static void mount_overlay(const struct rootfs_view *v) {
  char opts[3 * PATH_MAX + 64];
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,volatile", v->lower, v->upper,
           v->work);
  int rc = mount("overlay", v->merged, "overlay", 0, opts);
  if (rc < 0 && errno == EINVAL) {
    *strrchr(opts, ',') = 0;
    rc = mount("overlay", v->merged, "overlay", 0, opts);
  }
  if (rc < 0)
    die("mounting the overlay", NULL);
}

/* The copy is the container's root as it is: bound on itself (pivot_root
 * needs a mount point), writable. */
static void mount_copy(const struct rootfs_view *v) {
  if (mount(v->merged, v->merged, NULL, MS_BIND | MS_REC, NULL) < 0)
    die("binding the copy", NULL);
}

static void one(const struct opts *o, enum rootfs_mode mode, long i, FILE *out) {
  char cdir[PATH_MAX];
  snprintf(cdir, sizeof cdir, "%s/containers/c%ld", o->dir, i);
  struct qerr err = QERR_INIT;
  struct rootfs_view v;
  uint64_t t[N_STEPS + 1];
  t[0] = now_ns();
  if (mkdir_p(cdir, 0700, &err) < 0)
    die("mkdir", &err);
  t[1] = now_ns();
  if (rootfs_prepare(o->image, cdir, mode, &v, &err) < 0)
    die("rootfs_prepare", &err);
  t[2] = now_ns();
  if (mode == ROOTFS_OVERLAY)
    mount_overlay(&v);
  else
    mount_copy(&v);
  t[3] = now_ns();
  if (umount2(v.merged, 0) < 0)
    die("umount", NULL);
  t[4] = now_ns();
  if (rootfs_release(cdir, &err) < 0)
    die("rootfs_release", &err);
  t[5] = now_ns();
  if (rm_rf(cdir, &err) < 0)
    die("removing the container dir", &err);
  t[6] = now_ns();
  if (!out)
    return;
  fprintf(out, "%s %ld", mode == ROOTFS_OVERLAY ? "overlay" : "copy", i);
  for (int s = 0; s < N_STEPS; s++)
    fprintf(out, " %llu", (unsigned long long)(t[s + 1] - t[s]));
  fprintf(out, " %llu\n", (unsigned long long)(t[N_STEPS] - t[0]));
}

static void series(const struct opts *o, enum rootfs_mode mode, long first, long n, long warm,
                   FILE *out) {
  for (long i = 0; i < warm; i++)
    one(o, mode, -1 - i, NULL);
  for (long i = first; i < first + n; i++)
    one(o, mode, i, out);
}

/* What one copy of the image is: files, bytes, how many were reflinked. */
static void copy_note(const struct opts *o, FILE *out) {
  char dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/containers/stats-copy", o->dir);
  struct treecopy_stats st;
  struct qerr err = QERR_INIT;
  if (treecopy(o->image, dst, NULL, &st, &err) < 0 || rm_rf(dst, &err) < 0)
    die("copying the image once", &err);
  char cdir[PATH_MAX];
  snprintf(cdir, sizeof cdir, "%s/containers", o->dir);
  fprintf(out,
          "# copy_driver=%s\n# image_dirs=%llu\n# image_files=%llu\n# image_bytes=%llu\n"
          "# image_symlinks=%llu\n# image_hardlinks=%llu\n# image_specials=%llu\n"
          "# copy_reflinked_files=%llu\n",
          rootfs_copy_driver(cdir), (unsigned long long)st.dirs, (unsigned long long)st.files,
          (unsigned long long)st.bytes, (unsigned long long)st.symlinks,
          (unsigned long long)st.hardlinks, (unsigned long long)st.specials,
          (unsigned long long)st.reflinked);
}

static long num(const char *s, const char *name) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end || v < 0) {
    fprintf(stderr, "rootfs_bench: --%s expects a count\n", name);
    exit(2);
  }
  return v;
}

static void parse(int argc, char **argv, struct opts *o) {
  static const struct option lo[] = {
      {"image", required_argument, 0, 'i'}, {"dir", required_argument, 0, 'd'},
      {"runs", required_argument, 0, 'n'},  {"warmup", required_argument, 0, 'w'},
      {"blocks", required_argument, 0, 'b'}, {"modes", required_argument, 0, 'm'},
      {"out", required_argument, 0, 'o'},   {0, 0, 0, 0},
  };
  *o = (struct opts){.runs = 1000, .warmup = 20, .blocks = 5, .overlay = true, .copy = true};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'i': o->image = optarg; break;
    case 'd': o->dir = optarg; break;
    case 'o': o->out = optarg; break;
    case 'n': o->runs = num(optarg, "runs"); break;
    case 'w': o->warmup = num(optarg, "warmup"); break;
    case 'b': o->blocks = num(optarg, "blocks"); break;
    case 'm':
      o->overlay = strstr(optarg, "overlay") != NULL;
      o->copy = strstr(optarg, "copy") != NULL;
      break;
    default: exit(2);
    }
  }
  if (!o->image || !o->dir || !o->out || o->runs < 1 || o->blocks < 1 || o->blocks > o->runs ||
      !(o->overlay || o->copy)) {
    fprintf(stderr, "usage: rootfs_bench --image DIR --dir WORKDIR --runs N [--warmup W] "
                    "[--blocks K] [--modes overlay,copy] --out FILE\n");
    exit(2);
  }
}

int main(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  /* Our own mount namespace: every mount is gone when we are, however we end. */
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    die("entering a private mount namespace", NULL);
  FILE *out = fopen(o.out, "w");
  if (!out)
    die(o.out, NULL);
  /* Blocks alternate the modes so that background load hits both alike. */
  for (long b = 0; b < o.blocks; b++) {
    long first = o.runs * b / o.blocks, n = o.runs * (b + 1) / o.blocks - first;
    long warm = b == 0 ? o.warmup : 0;
    if (o.overlay)
      series(&o, ROOTFS_OVERLAY, first, n, warm, out);
    if (o.copy)
      series(&o, ROOTFS_COPY, first, n, warm, out);
  }
  if (o.copy)
    copy_note(&o, out);
  if (fclose(out) != 0)
    die(o.out, NULL);
  return 0;
}
