/* Throughput client for bench/throughput/run: keeps K container lifecycles
 * in flight on ONE HTTP/2 connection to quiltd and counts completions.
 *
 * Each of the K slots loops: CreateContainer(command=CMD, auto_remove), then,
 * once the answer names the container, WaitContainer(id); when that answers
 * exit code 0, the container is complete and the slot starts the next one.
 * Calls from different slots are concurrent streams of the one connection.
 * A container that exited and was auto-removed before its Wait arrived is
 * still answered by quiltd (from its tombstones), so every Wait must succeed.
 *
 * The CLI's client (src/cli/client.c) makes one call at a time, so this file
 * drives its own nghttp2 client session, with the same gRPC framing code
 * (src/grpc/framing.c from libquiltcore) and the same generated protobuf-c
 * messages. Built by the run script, never by meson:
 *
 *   cc -O2 -D_GNU_SOURCE -Isrc -I$BUILD bench/throughput/tp_client.c \
 *      $BUILD/libquiltcore.a $BUILD/libquiltproto.a $BUILD/libllhttp.a \
 *      -lnghttp2 -lprotobuf-c
 *
 *   tp_client --socket S --concurrency K --seconds T [--warmup W] [--out F] -- CMD...
 *
 * Time runs from the first request. Containers completing in the first W
 * seconds are not counted (the pipeline fills); those completing in the
 * next T seconds are. No new container is created after W+T; the ones in
 * flight are still waited for and must succeed, but are not counted.
 * Prints one line of key=value pairs:
 *   concurrency window_s completed rate_per_s started finished
 *   client_cpu_s elapsed_s
 * and with --out one line per counted container: "create_us wait_us total_us".
 * Any failed call or non-zero exit ends the program with status 1. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>

#include "common/qerr.h"
#include "grpc/framing.h"
#include "quilt.pb-c.h"

#define PATH_CREATE "/quilt.v1.Quilt/CreateContainer"
#define PATH_WAIT "/quilt.v1.Quilt/WaitContainer"
/* No progress at all for this long means something hangs: give up. */
#define STALL_NS (120 * 1000000000ull)

enum slot_state { S_IDLE, S_CREATE, S_WAIT };

struct slot {
  enum slot_state state;
  int32_t stream_id;
  bool closed;          /* the current call's stream closed */
  uint32_t close_code;  /* its RST_STREAM code (0: normal) */
  int http_status, grpc_status;
  char grpc_message[256];
  struct grpc_deframer deframer;
  ProtobufCMessage *resp;
  bool bad_msg;
  uint8_t *body; /* framed request (owned for Wait, shared for Create) */
  size_t body_len, body_off;
  bool body_owned;
  char id[80];
  uint64_t t_create, t_created; /* monotonic ns */
  struct slot *next_done;
};

static nghttp2_session *sess;
static int fd = -1;
static struct slot *done_head;
static uint8_t *create_body;
static size_t create_len;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static __attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tp_client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* ------------------------------------------------------------ nghttp2 */

static int on_msg(void *arg, const uint8_t *msg, size_t len, bool compressed) {
  struct slot *s = arg;
  const ProtobufCMessageDescriptor *d = s->state == S_CREATE
                                            ? &quilt__v1__create_container_response__descriptor
                                            : &quilt__v1__wait_container_response__descriptor;
  if (compressed || s->resp) {
    s->bad_msg = true;
    return 0;
  }
  s->resp = protobuf_c_message_unpack(d, NULL, len, msg);
  if (!s->resp)
    s->bad_msg = true;
  return 0;
}

static int small_int(const uint8_t *v, size_t n) {
  int x = 0;
  if (n == 0 || n > 4)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    x = x * 10 + (v[i] - '0');
  }
  return x;
}

static int on_header(nghttp2_session *ss, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
  (void)flags, (void)user_data;
  struct slot *s = nghttp2_session_get_stream_user_data(ss, frame->hd.stream_id);
  if (!s || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0)
    s->http_status = small_int(value, valuelen);
  else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
    s->grpc_status = small_int(value, valuelen);
  else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
    snprintf(s->grpc_message, sizeof s->grpc_message, "%.*s", (int)valuelen, value);
  return 0;
}

static int on_data_chunk(nghttp2_session *ss, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data) {
  (void)flags, (void)user_data;
  struct slot *s = nghttp2_session_get_stream_user_data(ss, stream_id);
  if (!s)
    return 0;
  struct qerr err = QERR_INIT;
  if (grpc_deframer_feed(&s->deframer, data, len, &err) < 0)
    s->bad_msg = true;
  return 0;
}

static int on_stream_close(nghttp2_session *ss, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  (void)user_data;
  struct slot *s = nghttp2_session_get_stream_user_data(ss, stream_id);
  if (s && !s->closed) {
    s->closed = true;
    s->close_code = error_code;
    s->next_done = done_head;
    done_head = s;
  }
  return 0;
}

static ssize_t read_body(nghttp2_session *ss, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)ss, (void)stream_id, (void)user_data;
  struct slot *s = source->ptr;
  size_t n = s->body_len - s->body_off;
  if (n > length)
    n = length;
  memcpy(buf, s->body + s->body_off, n);
  s->body_off += n;
  if (s->body_off == s->body_len)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

static void submit(struct slot *s, enum slot_state st, const char *path, size_t path_len) {
  nghttp2_nv hdrs[] = {
      NV(":method", "POST"),
      {(uint8_t *)":path", (uint8_t *)path, 5, path_len, NGHTTP2_NV_FLAG_NONE},
      NV(":scheme", "http"),
      NV(":authority", "localhost"),
      NV("content-type", "application/grpc"),
      NV("te", "trailers"),
  };
  s->state = st;
  s->closed = false;
  s->close_code = 0;
  s->http_status = s->grpc_status = -1;
  s->grpc_message[0] = 0;
  s->resp = NULL;
  s->bad_msg = false;
  s->body_off = 0;
  grpc_deframer_init(&s->deframer, GRPC_DEFAULT_MAX_RECV, on_msg, s);
  nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
  int32_t id = nghttp2_submit_request(sess, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &dp, s);
  if (id < 0)
    fail("nghttp2_submit_request: %s", nghttp2_strerror(id));
  s->stream_id = id;
}

static void submit_create(struct slot *s) {
  if (s->body_owned)
    free(s->body);
  s->body = create_body;
  s->body_len = create_len;
  s->body_owned = false;
  s->t_create = now_ns();
  submit(s, S_CREATE, PATH_CREATE, sizeof PATH_CREATE - 1);
}

static void submit_wait(struct slot *s) {
  Quilt__V1__WaitContainerRequest req = QUILT__V1__WAIT_CONTAINER_REQUEST__INIT;
  req.id = s->id;
  size_t len = protobuf_c_message_get_packed_size(&req.base);
  uint8_t *b = malloc(GRPC_FRAME_HEADER + len);
  if (!b)
    fail("out of memory");
  grpc_frame_header(b, false, (uint32_t)len);
  protobuf_c_message_pack(&req.base, b + GRPC_FRAME_HEADER);
  s->body = b;
  s->body_len = GRPC_FRAME_HEADER + len;
  s->body_owned = true;
  s->t_created = now_ns();
  submit(s, S_WAIT, PATH_WAIT, sizeof PATH_WAIT - 1);
}

/* The finished call must have been a clean gRPC OK with one message. */
static void check_call(struct slot *s, const char *what) {
  if (s->close_code != 0)
    fail("%s: stream reset by quiltd (%s)", what, nghttp2_http2_strerror(s->close_code));
  if (s->http_status != 200)
    fail("%s: HTTP status %d", what, s->http_status);
  if (s->grpc_status != 0)
    fail("%s: grpc-status %d: %s", what, s->grpc_status, s->grpc_message);
  if (s->bad_msg || !s->resp || !grpc_deframer_idle(&s->deframer))
    fail("%s: no valid response message", what);
  grpc_deframer_free(&s->deframer);
}

/* ------------------------------------------------------------ I/O */

static void flush_out(void) {
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(sess, &data);
    if (n < 0)
      fail("HTTP/2: %s", nghttp2_strerror((int)n));
    if (n == 0)
      return;
    while (n > 0) {
      ssize_t w = send(fd, data, (size_t)n, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        fail("send: %s", strerror(errno));
      }
      data += w;
      n -= w;
    }
  }
}

static void receive(void) {
  static uint8_t buf[65536];
  ssize_t n;
  do
    n = read(fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    fail("read: %s", strerror(errno));
  if (n == 0)
    fail("quiltd closed the connection");
  ssize_t used = nghttp2_session_mem_recv(sess, buf, (size_t)n);
  if (used < 0)
    fail("invalid HTTP/2 from quiltd: %s", nghttp2_strerror((int)used));
}

static void connect_unix(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    fail("socket path too long");
  strcpy(sa.sun_path, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    fail("connect %s: %s", path, strerror(errno));
}

static void new_session(unsigned concurrency) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    fail("out of memory");
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  if (nghttp2_session_client_new(&sess, cbs, NULL) != 0)
    fail("nghttp2_session_client_new");
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  if (nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
      nghttp2_session_set_local_window_size(sess, NGHTTP2_FLAG_NONE, 0, 1 << 24) != 0)
    fail("HTTP/2 settings");
  (void)concurrency;
}

/* ------------------------------------------------------------ main */

static void usage(void) {
  fputs("usage: tp_client --socket S --concurrency K --seconds T [--warmup W] [--out F] -- CMD...\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"socket", required_argument, 0, 's'},
                                     {"concurrency", required_argument, 0, 'k'},
                                     {"seconds", required_argument, 0, 't'},
                                     {"warmup", required_argument, 0, 'w'},
                                     {"out", required_argument, 0, 'o'},
                                     {0, 0, 0, 0}};
  const char *sock = NULL, *outp = NULL;
  long k = 0;
  double secs = 0, warm = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
    switch (c) {
    case 's': sock = optarg; break;
    case 'k': k = strtol(optarg, NULL, 10); break;
    case 't': secs = strtod(optarg, NULL); break;
    case 'w': warm = strtod(optarg, NULL); break;
    case 'o': outp = optarg; break;
    default: usage();
    }
  }
  if (!sock || k < 1 || k > 100000 || secs <= 0 || warm < 0 || optind >= argc)
    usage();

  Quilt__V1__ContainerSpec spec = QUILT__V1__CONTAINER_SPEC__INIT;
  spec.command = argv + optind;
  spec.n_command = (size_t)(argc - optind);
  spec.auto_remove = true;
  Quilt__V1__CreateContainerRequest creq = QUILT__V1__CREATE_CONTAINER_REQUEST__INIT;
  creq.spec = &spec;
  size_t clen = protobuf_c_message_get_packed_size(&creq.base);
  create_body = malloc(GRPC_FRAME_HEADER + clen);
  if (!create_body)
    fail("out of memory");
  grpc_frame_header(create_body, false, (uint32_t)clen);
  protobuf_c_message_pack(&creq.base, create_body + GRPC_FRAME_HEADER);
  create_len = GRPC_FRAME_HEADER + clen;

  FILE *out = NULL;
  if (outp && !(out = fopen(outp, "w")))
    fail("%s: %s", outp, strerror(errno));

  connect_unix(sock);
  new_session((unsigned)k);
  struct slot *slots = calloc((size_t)k, sizeof *slots);
  if (!slots)
    fail("out of memory");

  uint64_t t0 = now_ns();
  uint64_t t_count = t0 + (uint64_t)(warm * 1e9);
  uint64_t t_end = t_count + (uint64_t)(secs * 1e9);
  uint64_t last_progress = t0;
  unsigned long started = 0, finished = 0, counted = 0;
  long active = k;
  for (long i = 0; i < k; i++) {
    submit_create(&slots[i]);
    started++;
  }
  bool ended = false;
  while (active > 0) {
    flush_out();
    uint64_t now = now_ns();
    int ms = 100;
    if (!ended && t_end > now && (t_end - now) / 1000000 < 100)
      ms = (int)((t_end - now) / 1000000) + 1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r < 0 && errno != EINTR)
      fail("poll: %s", strerror(errno));
    if (r > 0)
      receive();
    now = now_ns();
    if (now >= t_end)
      ended = true;
    while (done_head) {
      struct slot *s = done_head;
      done_head = s->next_done;
      last_progress = now;
      if (s->state == S_CREATE) {
        check_call(s, "CreateContainer");
        Quilt__V1__CreateContainerResponse *cr = (Quilt__V1__CreateContainerResponse *)s->resp;
        if (!cr->container || !cr->container->id || !cr->container->id[0])
          fail("CreateContainer answered without a container id");
        snprintf(s->id, sizeof s->id, "%s", cr->container->id);
        protobuf_c_message_free_unpacked(s->resp, NULL);
        submit_wait(s);
      } else if (s->state == S_WAIT) {
        check_call(s, "WaitContainer");
        Quilt__V1__WaitContainerResponse *wr = (Quilt__V1__WaitContainerResponse *)s->resp;
        if (wr->exit_code != 0 || wr->signal != 0)
          fail("container %.12s exited with code %d signal %d", s->id, wr->exit_code, wr->signal);
        protobuf_c_message_free_unpacked(s->resp, NULL);
        finished++;
        if (now >= t_count && now < t_end) {
          counted++;
          if (out)
            fprintf(out, "%.1f %.1f %.1f\n", (s->t_created - s->t_create) / 1e3,
                    (now - s->t_created) / 1e3, (now - s->t_create) / 1e3);
        }
        if (!ended) {
          submit_create(s);
          started++;
        } else {
          s->state = S_IDLE;
          active--;
        }
      }
    }
    if (now - last_progress > STALL_NS)
      fail("no call finished for %llus (%ld in flight)", STALL_NS / 1000000000ull, active);
  }
  uint64_t t_done = now_ns();
  nghttp2_session_terminate_session(sess, NGHTTP2_NO_ERROR);
  flush_out();
  close(fd);
  if (out)
    fclose(out);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  printf("concurrency=%ld window_s=%.3f completed=%lu rate_per_s=%.1f started=%lu finished=%lu "
         "client_cpu_s=%.3f elapsed_s=%.3f\n",
         k, secs, counted, counted / secs, started, finished, cpu, (t_done - t0) / 1e9);
  for (long i = 0; i < k; i++)
    if (slots[i].body_owned)
      free(slots[i].body);
  free(slots);
  free(create_body);
  nghttp2_session_del(sess);
  return 0;
}
