/* Benchmark client for bench/spawn/run and bench/logs/run.
 *
 * Talks to quiltd over its Unix socket with the CLI's own blocking gRPC
 * client (src/cli/client.c: nghttp2 + protobuf-c, one connection, one call
 * at a time), so the client's own cost per call is a few poll/read/write
 * system calls. Built by the run scripts, never by meson:
 *
 *   cc -O2 -D_GNU_SOURCE -DQUILT_VERSION='"bench"' -Isrc -I$BUILD \
 *      bench/spawn/spawn_client.c src/cli/client.c \
 *      $BUILD/libquiltcore.a $BUILD/libquiltproto.a $BUILD/libllhttp.a \
 *      -lnghttp2 -lprotobuf-c
 *
 * Subcommands (times are written one run per line, in microseconds):
 *
 *   spawn --socket S --runs N [--warmup W] [--keep] [--drain] [--out F]
 *         [--image REF] [--setup SPEC]... -- CMD...
 *       per run: CreateContainer(command=CMD, auto_remove unless --keep,
 *       image and setup steps as given),
 *       then WaitContainer(id). With --drain, then StreamLogs(follow, tail 1)
 *       read to its end: it ends only once the container has exited and
 *       quiltd has drained both pipes into the log file and closed it.
 *       Line: "run create_us wait_us drain_us total_us exit_code id".
 *       Any non-zero exit code or failed call aborts (exit 1).
 *   exec --runs N [--warmup W] [--out F] -- CMD...
 *       per run: posix_spawnp(CMD) + wait4; must exit 0.
 *       Line: "run total_us cpu_us" (cpu: user+system of CMD and the
 *       children it waited for, from wait4's rusage).
 *   rpc-exec --socket S --runs N [--warmup W] [--out F] ID -- CMD...
 *       per run: Exec(id=ID, command=CMD), the unary exec RPC; must exit 0.
 *       Line: "run total_us".
 *   rm --socket S ID      RemoveContainer(force).
 *   logsize FILE...       parses CRI log files ("<time> <stream> <F|P> <data>")
 *       and prints "payload_bytes entries file_bytes": payload counts the data
 *       of each entry plus the newline an F entry stands for.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "quilt.pb-c.h"

extern char **environ;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
  fputs("usage: spawn_client spawn --socket S --runs N [--warmup W] [--keep] [--drain] "
        "[--out F] [--image REF] [--setup SPEC]... -- CMD...\n"
        "       spawn_client exec --runs N [--warmup W] [--out F] -- CMD...\n"
        "       spawn_client rpc-exec --socket S --runs N [--warmup W] [--out F] ID -- CMD...\n"
        "       spawn_client rm --socket S ID\n"
        "       spawn_client logsize FILE...\n",
        stderr);
  exit(2);
}

#define MAX_SETUP 8

struct opts {
  const char *socket;
  const char *out;
  const char *image;
  char *setup[MAX_SETUP];
  size_t nsetup;
  long runs, warmup;
  bool keep, drain;
  char **cmd;
  size_t ncmd;
};

static void parse(int argc, char **argv, struct opts *o) {
  static const struct option lo[] = {{"socket", required_argument, 0, 's'},
                                     {"runs", required_argument, 0, 'n'},
                                     {"warmup", required_argument, 0, 'w'},
                                     {"out", required_argument, 0, 'o'},
                                     {"keep", no_argument, 0, 'k'},
                                     {"drain", no_argument, 0, 'd'},
                                     {"image", required_argument, 0, 'i'},
                                     {"setup", required_argument, 0, 'S'},
                                     {0, 0, 0, 0}};
  int c;
  *o = (struct opts){.runs = 1};
  optind = 1;
  while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
    switch (c) {
    case 's': o->socket = optarg; break;
    case 'n': o->runs = strtol(optarg, NULL, 10); break;
    case 'w': o->warmup = strtol(optarg, NULL, 10); break;
    case 'o': o->out = optarg; break;
    case 'k': o->keep = true; break;
    case 'd': o->drain = true; break;
    case 'i': o->image = optarg; break;
    case 'S':
      if (o->nsetup == MAX_SETUP)
        usage();
      o->setup[o->nsetup++] = optarg;
      break;
    default: usage();
    }
  }
  o->cmd = argv + optind;
  o->ncmd = (size_t)(argc - optind);
  if (o->runs < 1 || o->warmup < 0)
    usage();
}

static FILE *open_out(const char *path) {
  if (!path)
    return stdout;
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "spawn_client: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return f;
}

static __attribute__((noreturn)) void fail(const char *what, const struct qerr *err) {
  fprintf(stderr, "spawn_client: %s: %s (grpc status %d)\n", what, err->msg, err->status);
  exit(1);
}

/* ------------------------------------------------------------ spawn */

static int drain_logs_cb(void *arg, ProtobufCMessage *msg) {
  (void)msg;
  ++*(unsigned long *)arg;
  return 0;
}

static int cmd_spawn(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (!o.socket || o.ncmd == 0)
    usage();
  struct qerr err = QERR_INIT;
  struct qclient *cl;
  if (qclient_connect(&cl, o.socket, &err) < 0)
    fail("connect", &err);
  FILE *out = open_out(o.out);
  const uint64_t timeout = 600 * QCLIENT_NS_PER_SEC;

  Quilt__V1__ContainerSpec spec = QUILT__V1__CONTAINER_SPEC__INIT;
  spec.command = o.cmd;
  spec.n_command = o.ncmd;
  spec.auto_remove = !o.keep;
  spec.image = (char *)(o.image ? o.image : "");
  spec.setup = o.setup;
  spec.n_setup = o.nsetup;
  Quilt__V1__CreateContainerRequest creq = QUILT__V1__CREATE_CONTAINER_REQUEST__INIT;
  creq.spec = &spec;

  for (long i = -o.warmup; i < o.runs; i++) {
    ProtobufCMessage *resp = NULL;
    uint64_t t0 = now_ns();
    if (qclient_unary(cl, QCLIENT_QUILT("CreateContainer"), &creq.base,
                      &quilt__v1__create_container_response__descriptor, &resp, timeout,
                      &err) < 0)
      fail("CreateContainer", &err);
    uint64_t t1 = now_ns();
    Quilt__V1__CreateContainerResponse *cr = (Quilt__V1__CreateContainerResponse *)resp;
    if (!cr->container || !cr->container->id || !cr->container->id[0]) {
      fprintf(stderr, "spawn_client: CreateContainer answered without a container id\n");
      return 1;
    }
    char id[80];
    snprintf(id, sizeof id, "%s", cr->container->id);
    protobuf_c_message_free_unpacked(resp, NULL);

    Quilt__V1__WaitContainerRequest wreq = QUILT__V1__WAIT_CONTAINER_REQUEST__INIT;
    wreq.id = id;
    if (qclient_unary(cl, QCLIENT_QUILT("WaitContainer"), &wreq.base,
                      &quilt__v1__wait_container_response__descriptor, &resp, timeout,
                      &err) < 0)
      fail("WaitContainer", &err);
    uint64_t t2 = now_ns();
    Quilt__V1__WaitContainerResponse *wr = (Quilt__V1__WaitContainerResponse *)resp;
    int code = wr->exit_code, sig = wr->signal;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (code != 0 || sig != 0) {
      fprintf(stderr, "spawn_client: container %.12s exited with code %d signal %d\n", id, code,
              sig);
      return 1;
    }

    uint64_t t3 = t2;
    if (o.drain) {
      Quilt__V1__StreamLogsRequest lreq = QUILT__V1__STREAM_LOGS_REQUEST__INIT;
      lreq.id = id;
      lreq.follow = true;
      lreq.tail = 1;
      unsigned long chunks = 0;
      if (qclient_stream(cl, QCLIENT_QUILT("StreamLogs"), &lreq.base,
                         &quilt__v1__log_chunk__descriptor, drain_logs_cb, &chunks, timeout,
                         &err) < 0)
        fail("StreamLogs", &err);
      t3 = now_ns();
    }
    if (i >= 0)
      fprintf(out, "%ld %.1f %.1f %.1f %.1f %d %s\n", i, (t1 - t0) / 1e3, (t2 - t1) / 1e3,
              (t3 - t2) / 1e3, (t3 - t0) / 1e3, code, id);
  }
  if (out != stdout)
    fclose(out);
  qclient_close(cl);
  return 0;
}

/* ------------------------------------------------------------ exec */

static int cmd_exec(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (o.ncmd == 0)
    usage();
  FILE *out = open_out(o.out);
  for (long i = -o.warmup; i < o.runs; i++) {
    pid_t pid;
    uint64_t t0 = now_ns();
    int rc = posix_spawnp(&pid, o.cmd[0], NULL, NULL, o.cmd, environ);
    if (rc != 0) {
      fprintf(stderr, "spawn_client: %s: %s\n", o.cmd[0], strerror(rc));
      return 1;
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
      if (errno != EINTR) {
        perror("wait4");
        return 1;
      }
    uint64_t t1 = now_ns();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "spawn_client: run %ld: %s exited with status 0x%x\n", i, o.cmd[0], st);
      return 1;
    }
    double cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
                    ru.ru_stime.tv_usec;
    if (i >= 0)
      fprintf(out, "%ld %.1f %.0f\n", i, (t1 - t0) / 1e3, cpu_us);
  }
  if (out != stdout)
    fclose(out);
  return 0;
}

/* ------------------------------------------------------------ rm */

static int cmd_rm(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (!o.socket || o.ncmd != 1)
    usage();
  struct qerr err = QERR_INIT;
  struct qclient *cl;
  if (qclient_connect(&cl, o.socket, &err) < 0)
    fail("connect", &err);
  Quilt__V1__RemoveContainerRequest req = QUILT__V1__REMOVE_CONTAINER_REQUEST__INIT;
  req.id = o.cmd[0];
  req.force = true;
  ProtobufCMessage *resp = NULL;
  if (qclient_unary(cl, QCLIENT_QUILT("RemoveContainer"), &req.base,
                    &quilt__v1__remove_container_response__descriptor, &resp,
                    60 * QCLIENT_NS_PER_SEC, &err) < 0)
    fail("RemoveContainer", &err);
  protobuf_c_message_free_unpacked(resp, NULL);
  qclient_close(cl);
  return 0;
}

/* ------------------------------------------------------------ logsize */

static int cmd_logsize(int argc, char **argv) {
  unsigned long long payload = 0, entries = 0, file_bytes = 0;
  for (int a = 2; a < argc; a++) {
    int fd = open(argv[a], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      fprintf(stderr, "spawn_client: %s: %s\n", argv[a], strerror(errno));
      return 1;
    }
    size_t len = (size_t)st.st_size;
    file_bytes += len;
    if (len == 0) {
      close(fd);
      continue;
    }
    const char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    madvise((void *)m, len, MADV_SEQUENTIAL);
    const char *p = m, *end = m + len;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *s1 = nl ? memchr(p, ' ', (size_t)(nl - p)) : NULL;
      const char *s2 = s1 ? memchr(s1 + 1, ' ', (size_t)(nl - s1 - 1)) : NULL;
      if (!s2 || nl - s2 < 2 || (s2[1] != 'F' && s2[1] != 'P') ||
          (nl - s2 > 2 && s2[2] != ' ')) {
        fprintf(stderr, "spawn_client: %s: malformed entry at offset %td\n", argv[a], p - m);
        return 1;
      }
      const char *data = nl - s2 > 2 ? s2 + 3 : nl;
      payload += (unsigned long long)(nl - data) + (s2[1] == 'F');
      entries++;
      p = nl + 1;
    }
    munmap((void *)m, len);
  }
  printf("%llu %llu %llu\n", payload, entries, file_bytes);
  return 0;
}

/* ------------------------------------------------------------ rpc-exec */

static int cmd_rpc_exec(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (!o.socket || o.ncmd < 2)
    usage();
  struct qerr err = QERR_INIT;
  struct qclient *cl;
  if (qclient_connect(&cl, o.socket, &err) < 0)
    fail("connect", &err);
  FILE *out = open_out(o.out);
  Quilt__V1__ExecRequest req = QUILT__V1__EXEC_REQUEST__INIT;
  req.id = o.cmd[0];
  req.command = o.cmd + 1;
  req.n_command = o.ncmd - 1;
  for (long i = -o.warmup; i < o.runs; i++) {
    ProtobufCMessage *resp = NULL;
    uint64_t t0 = now_ns();
    if (qclient_unary(cl, QCLIENT_QUILT("Exec"), &req.base, &quilt__v1__exec_response__descriptor,
                      &resp, 60 * QCLIENT_NS_PER_SEC, &err) < 0)
      fail("Exec", &err);
    uint64_t t1 = now_ns();
    const Quilt__V1__ExecResponse *r = (const void *)resp;
    if (r->exit_code != 0) {
      fprintf(stderr, "spawn_client: run %ld: exit code %d\n", i, r->exit_code);
      return 1;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    if (i >= 0)
      fprintf(out, "%ld %.1f\n", i, (t1 - t0) / 1e3);
  }
  if (out != stdout)
    fclose(out);
  qclient_close(cl);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2)
    usage();
  if (strcmp(argv[1], "spawn") == 0)
    return cmd_spawn(argc - 1, argv + 1);
  if (strcmp(argv[1], "exec") == 0)
    return cmd_exec(argc - 1, argv + 1);
  if (strcmp(argv[1], "rpc-exec") == 0)
    return cmd_rpc_exec(argc - 1, argv + 1);
  if (strcmp(argv[1], "rm") == 0)
    return cmd_rm(argc - 1, argv + 1);
  if (strcmp(argv[1], "logsize") == 0)
    return cmd_logsize(argc, argv);
  usage();
}
