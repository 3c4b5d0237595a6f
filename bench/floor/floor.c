/* The kernel floor for spawning a container: the least work a runtime must do
 * to run /bin/true in PID, mount, UTS, IPC and network namespaces on a rootfs,
 * timed per container with CLOCK_MONOTONIC.
 *
 * One iteration (one "container"):
 *   parent: [--overlay: mkdir <tmpfs>/cN/{upper,work,merged}]
 *           clone3(CLONE_NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET, exit_signal SIGCHLD)
 *   child:  mount("/", MS_REC|MS_PRIVATE)
 *           bind ROOTFS onto itself (MS_BIND|MS_REC), or mount an overlay
 *             lowerdir=ROOTFS,upperdir,workdir on merged (--overlay)
 *           chdir into it, mount proc on ./proc
 *           pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/")
 *           execve(/bin/true)
 *   parent: wait4 until it has exited (namespaces torn down)
 *           [--overlay: remove cN]
 * The time of an iteration runs from before the mkdir/clone3 to after the
 * removal. Nothing else: no cgroups, no /dev, no hostname, no pipes.
 *
 * The program runs in a mount namespace of its own (unshare at start, all
 * mounts private), so whatever it or its children mount never reaches the
 * host and disappears with it.
 *
 * --parallel K forks K workers; after their warm-up they start together and
 * each runs its share of the measured iterations. The aggregate rate is all
 * measured containers over the wall time from the start signal until the
 * last worker is done.
 *
 * The child and the parent also take a CLOCK_MONOTONIC mark between the steps
 * (see step_names), so each container's time splits into clone, mounts,
 * pivot_root and exec-to-reaped.
 *
 * Output: a human summary on stderr and one "result key=value ..." line on
 * stdout; --samples FILE writes "worker iteration total_us step_us..." per
 * measured container.
 *
 * Build: cc -O2 -std=c17 -Wall -Wextra -o floor floor.c   (needs root to run)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pivot_root
#define SYS_pivot_root 155
#endif

#define NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

static const char *rootfs;
static const char *tmpfs_dir; /* --overlay: where the per-container dirs go */
static char *const *cmd;      /* what the container execs */
static int use_overlay;
static int use_clone3 = 1;

/* Time marks of the current iteration, in a MAP_SHARED page per worker: the
 * child writes its own (it shares the mapping across clone3 and fork). */
enum { M_START, M_CLONE, M_CHILD, M_PRIVATE, M_ROOT, M_PROC, M_PIVOT, M_REAPED, M_END, NMARK };
#define NSTEP (NMARK - 1)
/* Step k runs from mark k to mark k + 1. */
static const char *const step_names[NSTEP] = {
    "mkdir",     /* --overlay: the per-container dirs on the tmpfs */
    "clone",     /* clone3 until the child runs (namespaces created) */
    "private",   /* mount("/", MS_REC|MS_PRIVATE) */
    "rootfs",    /* the bind mount or the overlay mount, chdir */
    "proc",      /* mounting /proc */
    "pivot",     /* pivot_root, detaching the old root, chdir / */
    "exec_exit", /* execve, the command, its exit, namespace teardown, wait4 */
    "cleanup",   /* --overlay: removing the dirs */
};
static double *marks; /* this worker's NMARK slots */
struct sample {
  double total;
  double step[NSTEP];
};

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "floor: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ------------------------------------------------------------ the child */

/* In the child: report the failed step on stderr and exit with 100 + step,
 * so the parent can tell a setup failure from the command's own status. */
static void child_fail(int step, const char *what) {
  int e = errno;
  char buf[512];
  int n = snprintf(buf, sizeof buf, "floor: container: %s: %s\n", what, strerror(e));
  if (n > 0)
    (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  _exit(100 + step);
}

static void child_main(const char *dir) {
  const char *root = rootfs;
  marks[M_CHILD] = now_us();
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    child_fail(1, "making mounts private");
  marks[M_PRIVATE] = now_us();
  if (use_overlay) {
    char opts[8192], merged[4200];
    if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", rootfs, dir,
                 dir) >= (int)sizeof opts ||
        snprintf(merged, sizeof merged, "%s/merged", dir) >= (int)sizeof merged) {
      errno = ENAMETOOLONG;
      child_fail(2, "overlay options");
    }
    if (mount("overlay", merged, "overlay", 0, opts) < 0)
      child_fail(2, "mounting the overlay");
    if (chdir(merged) < 0)
      child_fail(3, "chdir into the overlay");
  } else {
    if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
      child_fail(2, "bind-mounting the rootfs onto itself");
    /* chdir after the mount: "." is then the new mount, not the directory
     * beneath it. */
    if (chdir(root) < 0)
      child_fail(3, "chdir into the rootfs");
  }
  marks[M_ROOT] = now_us();
  if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    child_fail(4, "mounting /proc");
  marks[M_PROC] = now_us();
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    child_fail(5, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0)
    child_fail(6, "detaching the old root");
  if (chdir("/") < 0)
    child_fail(7, "chdir /");
  static char *const env[] = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL};
  marks[M_PIVOT] = now_us();
  execve(cmd[0], cmd, env);
  child_fail(8, "execve");
}

static pid_t spawn(const char *dir) {
  pid_t pid = -1;
  if (use_clone3) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = NS_FLAGS;
    args.exit_signal = SIGCHLD;
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && errno == ENOSYS)
      use_clone3 = 0;
  }
  if (!use_clone3) /* fork-like clone: no new stack, child continues here */
    pid = (pid_t)syscall(SYS_clone, (unsigned long)NS_FLAGS | SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid == 0)
    child_main(dir); /* never returns */
  return pid;
}

/* ------------------------------------------------------------ one iteration */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* Runs one container; fills *out with its wall time and steps in
 * microseconds. */
static void one(int worker, long iter, struct sample *out) {
  char dir[4096] = "";
  double t0 = now_us();
  for (int k = 0; k < NMARK; k++)
    marks[k] = 0;
  marks[M_START] = t0;
  if (use_overlay) {
    static const char *const sub[] = {"", "/upper", "/work", "/merged"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
      char p[4200];
      snprintf(dir, sizeof dir, "%s/c%d-%ld", tmpfs_dir, worker, iter);
      snprintf(p, sizeof p, "%s%s", dir, sub[i]);
      if (mkdir(p, 0755) < 0)
        die("mkdir %s: %s", p, strerror(errno));
    }
  }
  marks[M_CLONE] = now_us();
  pid_t pid = spawn(dir);
  if (pid < 0)
    die("clone%s: %s", use_clone3 ? "3" : "", strerror(errno));
  int status;
  while (wait4(pid, &status, 0, NULL) < 0)
    if (errno != EINTR)
      die("wait4: %s", strerror(errno));
  marks[M_REAPED] = now_us();
  if (use_overlay && nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
    die("removing %s: %s", dir, strerror(errno));
  double t1 = now_us();
  marks[M_END] = t1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status))
      die("worker %d iteration %ld: container exited with %d%s", worker, iter,
          WEXITSTATUS(status), WEXITSTATUS(status) > 100 ? " (a setup step failed, see above)" : "");
    die("worker %d iteration %ld: container killed by signal %d", worker, iter, WTERMSIG(status));
  }
  out->total = t1 - t0;
  for (int k = 0; k < NSTEP; k++)
    out->step[k] = marks[k + 1] - marks[k];
}

/* ------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Linear interpolation between closest ranks (as bench/spawn/summarize.py). */
static double pct(const double *s, size_t n, double p) {
  double k = (double)(n - 1) * p / 100.0;
  size_t lo = (size_t)k, hi = lo + 1 < n ? lo + 1 : n - 1;
  return s[lo] + (s[hi] - s[lo]) * (k - (double)lo);
}

/* Busy and total jiffies of all CPUs, from /proc/stat. */
static void cpu_jiffies(unsigned long long *busy, unsigned long long *total) {
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  *busy = *total = 0;
  if (!f)
    return;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
             &v[5], &v[6], &v[7]) == 8) {
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
  }
  fclose(f);
}

static double tv_us(struct timeval tv) { return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec; }

/* ------------------------------------------------------------ main */

static void usage(FILE *f) {
  fprintf(f,
          "Usage: floor [OPTIONS] ROOTFS [-- CMD ARG...]\n"
          "Spawns containers (pid+mnt+uts+ipc+net namespaces, ROOTFS bound onto itself,\n"
          "/proc, pivot_root) running CMD (default /bin/true, a path inside ROOTFS)\n"
          "one after the other and times each from clone3 to wait4. Needs root.\n"
          "\n"
          "  --runs N        measured containers in all (default 1000)\n"
          "  --warmup W      unmeasured containers per worker first (default 20)\n"
          "  --overlay       overlay lowerdir=ROOTFS with a fresh upper/work per\n"
          "                  container on a private tmpfs (mkdir and removal timed)\n"
          "  --parallel K    K worker processes at once, each running its share of\n"
          "                  the N; reports the aggregate rate (default 1)\n"
          "  --samples FILE  write \"worker iteration total_us step_us...\" per measured\n"
          "                  container (a # header names the steps)\n"
          "  --clone         use clone() instead of clone3()\n"
          "  -h, --help      this text\n"
          "\n"
          "--overlay mounts its tmpfs on a new directory in $TMPDIR (default /tmp),\n"
          "in the program's own mount namespace, and removes it at exit.\n"
          "\n"
          "stdout: one line \"result key=value ...\"; stderr: a summary.\n"
          "Exit status: 0 ok, 1 a container or a system call failed, 2 bad usage.\n");
}

int main(int argc, char **argv) {
  long runs = 1000, warmup = 20;
  int parallel = 1;
  const char *samples_path = NULL;
  enum { O_RUNS = 256, O_WARMUP, O_OVERLAY, O_PARALLEL, O_SAMPLES, O_CLONE };
  static const struct option opts[] = {
      {"runs", required_argument, NULL, O_RUNS},
      {"warmup", required_argument, NULL, O_WARMUP},
      {"overlay", no_argument, NULL, O_OVERLAY},
      {"parallel", required_argument, NULL, O_PARALLEL},
      {"samples", required_argument, NULL, O_SAMPLES},
      {"clone", no_argument, NULL, O_CLONE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int o;
  char *end;
  while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (o) {
    case O_RUNS:
      runs = strtol(optarg, &end, 10);
      if (*end || runs < 1) {
        fprintf(stderr, "floor: --runs expects a positive integer\n");
        return 2;
      }
      break;
    case O_WARMUP:
      warmup = strtol(optarg, &end, 10);
      if (*end || warmup < 0) {
        fprintf(stderr, "floor: --warmup expects a count\n");
        return 2;
      }
      break;
    case O_OVERLAY: use_overlay = 1; break;
    case O_PARALLEL: {
      long k = strtol(optarg, &end, 10);
      if (*end || k < 1 || k > 1024) {
        fprintf(stderr, "floor: --parallel expects 1..1024\n");
        return 2;
      }
      parallel = (int)k;
      break;
    }
    case O_SAMPLES: samples_path = optarg; break;
    case O_CLONE: use_clone3 = 0; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return 2;
  }
  static char *const def_cmd[] = {"/bin/true", NULL};
  rootfs = argv[optind++];
  if (optind < argc && strcmp(argv[optind], "--") == 0)
    optind++;
  cmd = optind < argc ? argv + optind : def_cmd;
  if (runs < parallel) {
    fprintf(stderr, "floor: --runs must be at least --parallel\n");
    return 2;
  }

  char abs_root[4096];
  if (!realpath(rootfs, abs_root))
    die("rootfs %s: %s", rootfs, strerror(errno));
  rootfs = abs_root;
  char exe[8192];
  snprintf(exe, sizeof exe, "%s%s", rootfs, cmd[0]);
  if (cmd[0][0] != '/' || faccessat(AT_FDCWD, exe, X_OK, 0) < 0)
    fprintf(stderr, "floor: warning: %s is not an executable path in the rootfs\n", cmd[0]);

  /* A private mount namespace for this program and its workers: the tmpfs
   * and anything a container leaves mounted die with it. */
  if (unshare(CLONE_NEWNS) < 0)
    die("unshare(CLONE_NEWNS): %s (run as root)", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    die("making mounts private: %s", strerror(errno));
  char tdir[4096];
  const char *tmpenv = getenv("TMPDIR");
  snprintf(tdir, sizeof tdir, "%s/floor-tmpfs.XXXXXX", tmpenv && *tmpenv ? tmpenv : "/tmp");
  if (use_overlay) {
    if (!mkdtemp(tdir))
      die("mkdtemp: %s", strerror(errno));
    if (mount("floor-tmpfs", tdir, "tmpfs", 0, "mode=0700,size=256m") < 0) {
      int e = errno;
      rmdir(tdir);
      die("mounting a tmpfs on %s: %s", tdir, strerror(e));
    }
    tmpfs_dir = tdir;
  }

  /* Shared with the workers: one sample slot per measured run, and each
   * worker's marks. */
  size_t cap = (size_t)runs;
  struct sample *samples = mmap(NULL, cap * sizeof *samples, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double *all_marks = mmap(NULL, (size_t)parallel * NMARK * sizeof(double),
                           PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (samples == MAP_FAILED || all_marks == MAP_FAILED)
    die("mmap: %s", strerror(errno));
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
    die("pipe: %s", strerror(errno));

  pid_t workers[1024];
  long first[1025];
  for (int w = 0; w <= parallel; w++)
    first[w] = runs * w / parallel;
  pid_t main_pid = getpid();
  for (int w = 0; w < parallel; w++) {
    pid_t p = fork();
    if (p < 0)
      die("fork: %s", strerror(errno));
    if (p == 0) {
      /* Die with the main process, whatever kills it. */
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != main_pid)
        _exit(1);
      close(ready[0]);
      close(go[1]);
      marks = all_marks + (size_t)w * NMARK;
      struct sample scratch;
      for (long i = 0; i < warmup; i++)
        one(w, -1 - i, &scratch);
      char c = 'r', g;
      if (write(ready[1], &c, 1) != 1)
        _exit(1);
      if (read(go[0], &g, 1) < 0) /* EOF: go */
        _exit(1);
      for (long i = first[w]; i < first[w + 1]; i++)
        one(w, i, &samples[i]);
      _exit(0);
    }
    workers[w] = p;
  }
  close(ready[1]);
  close(go[0]);
  for (int w = 0; w < parallel; w++) {
    char c;
    if (read(ready[0], &c, 1) != 1)
      die("a worker failed during the warm-up");
  }
  struct rusage ru;
  unsigned long long busy0, tot0, busy1, tot1;
  cpu_jiffies(&busy0, &tot0);
  double t0 = now_us();
  close(go[1]); /* start */
  int failed = 0;
  for (int w = 0; w < parallel; w++) {
    int st;
    while (waitpid(workers[w], &st, 0) < 0)
      if (errno != EINTR)
        die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      failed = 1;
  }
  double t1 = now_us();
  cpu_jiffies(&busy1, &tot1);
  getrusage(RUSAGE_CHILDREN, &ru); /* the workers and the containers they reaped */
  if (failed)
    die("a worker failed");

  if (samples_path) {
    FILE *f = fopen(samples_path, "w");
    if (!f)
      die("%s: %s", samples_path, strerror(errno));
    fprintf(f, "# worker iteration total_us");
    for (int k = 0; k < NSTEP; k++)
      fprintf(f, " %s_us", step_names[k]);
    fprintf(f, "\n");
    for (int w = 0; w < parallel; w++)
      for (long i = first[w]; i < first[w + 1]; i++) {
        fprintf(f, "%d %ld %.1f", w, i - first[w], samples[i].total);
        for (int k = 0; k < NSTEP; k++)
          fprintf(f, " %.1f", samples[i].step[k]);
        fprintf(f, "\n");
      }
    if (fclose(f) != 0)
      die("%s: %s", samples_path, strerror(errno));
  }
  double *s = malloc(cap * sizeof *s), *t = malloc(cap * sizeof *t);
  if (!s || !t)
    die("out of memory");
  for (size_t i = 0; i < cap; i++)
    s[i] = samples[i].total;
  qsort(s, cap, sizeof *s, cmp_double);
  /* The median of each step (medians do not add up to the total's). */
  double step_p50[NSTEP];
  char steps_txt[512] = "", steps_kv[512] = "";
  size_t tl = 0, kl = 0;
  for (int k = 0; k < NSTEP; k++) {
    for (size_t i = 0; i < cap; i++)
      t[i] = samples[i].step[k];
    qsort(t, cap, sizeof *t, cmp_double);
    step_p50[k] = pct(t, cap, 50);
    tl += (size_t)snprintf(steps_txt + tl, sizeof steps_txt - tl, " %s %.0f", step_names[k],
                           step_p50[k]);
    kl += (size_t)snprintf(steps_kv + kl, sizeof steps_kv - kl, " step_%s_p50_us=%.1f",
                           step_names[k], step_p50[k]);
  }
  double sum = 0;
  for (size_t i = 0; i < cap; i++)
    sum += s[i];
  double wall_s = (t1 - t0) / 1e6;
  /* Workers and their containers, warm-up included: CPU per container. */
  double total_ctr = (double)runs + (double)warmup * parallel;
  double cpu_workers = tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
  long hz = sysconf(_SC_CLK_TCK);
  double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
  double busy_cores =
      tot1 > tot0 ? (double)(busy1 - busy0) / (double)(tot1 - tot0) * ncpu : 0;
  double machine_cpu_us = (double)(busy1 - busy0) * 1e6 / (double)hz / (double)runs;

  fprintf(stderr,
          "floor: %s, parallel %d: %ld containers in %.3f s = %.1f containers/s\n"
          "floor:   per container p50 %.0f us  p90 %.0f us  p99 %.0f us  mean %.0f us  "
          "min %.0f us  max %.0f us\n"
          "floor:   CPU: workers+containers %.0f us/container (warm-up included); whole machine "
          "%.0f us/container, %.2f cores busy\n"
          "floor:   step medians (us):%s\n",
          use_overlay ? "overlay" : "bind", parallel, runs, wall_s, (double)runs / wall_s,
          pct(s, cap, 50), pct(s, cap, 90), pct(s, cap, 99), sum / (double)cap, s[0], s[cap - 1],
          cpu_workers / total_ctr, machine_cpu_us, busy_cores, steps_txt);
  printf("result mode=%s parallel=%d runs=%ld warmup=%ld clone=%s wall_s=%.6f rate_per_s=%.2f "
         "p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f min_us=%.1f max_us=%.1f "
         "cpu_us_per_container=%.1f machine_cpu_us_per_container=%.1f busy_cores=%.3f%s\n",
         use_overlay ? "overlay" : "bind", parallel, runs, warmup, use_clone3 ? "clone3" : "clone",
         wall_s, (double)runs / wall_s, pct(s, cap, 50), pct(s, cap, 90), pct(s, cap, 99),
         sum / (double)cap, s[0], s[cap - 1], cpu_workers / total_ctr, machine_cpu_us, busy_cores,
         steps_kv);
  fflush(stdout);
  if (use_overlay) {
    umount2(tdir, MNT_DETACH);
    rmdir(tdir);
  }
  return 0;
}
