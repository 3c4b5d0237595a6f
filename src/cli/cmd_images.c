/* Image commands: import, images / image ls, rmi / image rm, prune /
 * image prune, and the import that `run`/`create --image FILE` share
 * (ctr.h: image_import). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/ctr.h"
#include "cli/pbjson.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "grpc/status.h"

#define UPLOAD_CHUNK (256 * 1024)           /* data bytes per UploadImageChunk */
#define PROGRESS_EVERY_NS (100 * 1000000ull) /* redraw the bar at most 10 times a second */
#define MIB (1024.0 * 1024.0)

static int oom(struct cli_ctx *ctx) {
  struct qerr err = QERR_INIT;
  qerr_set(&err, ENOMEM, "out of memory");
  return cli_error(ctx->cmd->name, &err);
}

bool cli_target_is_local(const struct cli_ctx *ctx) {
  return strncmp(ctx->target, "tcp://", 6) != 0;
}

/* ------------------------------------------------------------ progress bar */

struct progress {
  bool tty;      /* stderr is a terminal: draw; else stay quiet */
  bool shown;    /* something is on the line, to clear at the end */
  uint64_t start_ns, last_ns;
  uint64_t done, total; /* total 0: unknown */
};

static void on_interrupt(int sig) {
  (void)sig;
  /* Leave a clean line behind the bar; the daemon stops the import when
   * the connection goes away. */
  static const char msg[] = "\r\033[Kquilt-cli: import interrupted\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(130);
}

static void progress_init(struct progress *p, uint64_t total) {
  *p = (struct progress){.tty = isatty(STDERR_FILENO) == 1, .total = total};
  p->start_ns = p->last_ns = clock_mono_ns();
  if (p->tty) {
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
  }
}

static int term_columns(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

/* Fixed-width fields keep the bar from jumping as the numbers change. */
static void progress_draw(struct progress *p, uint64_t now) {
  double secs = (double)(now - p->start_ns) / 1e9;
  double rate = secs > 0 ? (double)p->done / secs : 0; /* bytes/s */
  char done[32], total[32], eta[32] = "", text[160];
  fmt_bytes(p->done, done, sizeof done);
  fmt_bytes(p->total, total, sizeof total);
  bool known = p->total > 0 && p->done <= p->total;
  if (known && rate > 0 && p->done < p->total) {
    char d[24];
    /* Rounded up: "0s" while bytes remain would be a lie. */
    format_duration(d, sizeof d, (uint64_t)((double)(p->total - p->done) / rate) + 1);
    snprintf(eta, sizeof eta, "ETA %s", d);
  }
  unsigned pct = known ? (unsigned)(p->done * 100 / p->total) : 0;
  if (known)
    snprintf(text, sizeof text, " %3u%%  %9s / %s  %6.1f MiB/s  %s", pct, done, total,
             rate / MIB, eta);
  else
    snprintf(text, sizeof text, "  %9s  %6.1f MiB/s", done, rate / MIB);
  int cols = term_columns() - 1; /* never the last column: no wrap */
  int room = cols - (int)strlen("Importing []") - (int)strlen(text);
  int bar = room > 30 ? 30 : room;
  char line[256];
  if (known && bar >= 10) {
    char cells[31];
    int fill = (int)(pct * (unsigned)bar / 100);
    memset(cells, '=', (size_t)fill);
    memset(cells + fill, ' ', (size_t)(bar - fill));
    if (fill > 0 && fill < bar)
      cells[fill - 1] = '>';
    cells[bar] = 0;
    snprintf(line, sizeof line, "Importing [%s]%s", cells, text);
  } else {
    snprintf(line, sizeof line, "Importing%s", text);
  }
  if (cols > 0 && (size_t)cols < sizeof line)
    line[cols] = 0;
  fprintf(stderr, "\r%s\033[K", line);
  fflush(stderr);
  p->shown = true;
}

static void progress_update(struct progress *p, uint64_t done, uint64_t total) {
  if (done > p->done)
    p->done = done;
  if (total > 0)
    p->total = total;
  if (!p->tty)
    return;
  uint64_t now = clock_mono_ns();
  if (now - p->last_ns < PROGRESS_EVERY_NS)
    return;
  p->last_ns = now;
  progress_draw(p, now);
}

static void progress_end(struct progress *p) {
  if (p->shown) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  p->shown = false;
  if (p->tty) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
  }
}

/* ------------------------------------------------------------ the import call */

struct import_state {
  struct progress prog;
  Quilt__V1__Image *image; /* a copy of the last message's image */
  bool cached;
  /* Uploads. */
  int fd;
  const char *file; /* for messages */
  char **tags;
  size_t n_tags;
  bool sent_tags, eof;
  uint64_t sent;
  uint8_t *buf;
  Quilt__V1__UploadImageChunk chunk;
  struct qerr *err;
};

/* A deep copy: the client frees each streamed message after the callback. */
static Quilt__V1__Image *copy_image(const Quilt__V1__Image *img) {
  size_t n = protobuf_c_message_get_packed_size(&img->base);
  cleanup_free uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(&img->base, buf);
  return (Quilt__V1__Image *)protobuf_c_message_unpack(&quilt__v1__image__descriptor, NULL, n,
                                                      buf);
}

static int on_progress(void *arg, ProtobufCMessage *msg) {
  struct import_state *st = arg;
  const Quilt__V1__ImportImageProgress *p = (const void *)msg;
  progress_update(&st->prog, p->bytes_done, p->bytes_total);
  if (!p->image)
    return 0;
  if (st->image)
    protobuf_c_message_free_unpacked(&st->image->base, NULL);
  st->image = copy_image(p->image);
  st->cached = p->cached;
  if (!st->image) {
    qerr_set(st->err, ENOMEM, "out of memory");
    return -ENOMEM;
  }
  return 0;
}

/* Fills buf with up to UPLOAD_CHUNK bytes; short only at the end. */
static ssize_t read_chunk(int fd, uint8_t *buf) {
  size_t n = 0;
  while (n < UPLOAD_CHUNK) {
    ssize_t r = read(fd, buf + n, UPLOAD_CHUNK - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  return (ssize_t)n;
}

/* The UploadImage request stream: the tags, then the file in chunks. */
static int next_chunk(void *arg, const ProtobufCMessage **msg) {
  struct import_state *st = arg;
  st->chunk = (Quilt__V1__UploadImageChunk)QUILT__V1__UPLOAD_IMAGE_CHUNK__INIT;
  if (!st->sent_tags) {
    st->sent_tags = true;
    st->chunk.tags = st->tags;
    st->chunk.n_tags = st->n_tags;
    *msg = &st->chunk.base;
    return 1;
  }
  if (st->eof)
    return 0;
  ssize_t n = read_chunk(st->fd, st->buf);
  if (n < 0)
    return qerr_set(st->err, (int)-n, "reading %s: %s", st->file, strerror((int)-n));
  if (n < UPLOAD_CHUNK)
    st->eof = true;
  if (n == 0)
    return 0;
  st->sent += (uint64_t)n;
  progress_update(&st->prog, st->sent, 0);
  st->chunk.data.data = st->buf;
  st->chunk.data.len = (size_t)n;
  *msg = &st->chunk.base;
  return 1;
}

/* Opens FILE for an upload ("-": stdin); the size when it is a regular file. */
static int open_upload(const char *file, int *fd, uint64_t *size, struct qerr *err) {
  *size = 0;
  if (strcmp(file, "-") == 0) {
    *fd = dup(STDIN_FILENO);
    if (*fd < 0)
      return qerr_errno(err, "stdin");
  } else if ((*fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
    return qerr_errno(err, "%s", file);
  }
  struct stat s;
  if (fstat(*fd, &s) < 0)
    return qerr_errno(err, "%s", file);
  if (S_ISDIR(s.st_mode))
    return qerr_set(err, EISDIR, "%s is a directory, not an archive", file);
  if (S_ISREG(s.st_mode))
    *size = (uint64_t)s.st_size;
  return 0;
}

/* Local failures (status 0) name the command; daemon ones go through
 * ctr_report (which also explains an unreachable daemon). */
static int report(struct cli_ctx *ctx, const struct qerr *err) {
  if (err->status == 0 && ctx->client)
    return cli_error(ctx->cmd->name, err);
  return ctr_report(ctx, err);
}

int image_import(struct cli_ctx *ctx, const char *file, char **tags, size_t n_tags,
                 bool upload, Quilt__V1__Image **image, bool *cached) {
  *image = NULL;
  *cached = false;
  struct qerr err = QERR_INIT;
  struct import_state st = {.fd = -1, .file = file, .tags = tags, .n_tags = n_tags, .err = &err};
  bool local = !upload && cli_target_is_local(ctx) && strcmp(file, "-") != 0;
  cleanup_free char *abs = NULL;
  uint64_t size = 0;
  int r;
  if (local) {
    /* The daemon reads the file itself: give it a path that means the same
     * there, and catch a missing file here. */
    struct stat s;
    abs = realpath(file, NULL);
    if (!abs || stat(abs, &s) < 0)
      r = qerr_errno(&err, "%s", file);
    else if (!S_ISREG(s.st_mode))
      r = qerr_set(&err, EINVAL, "%s is not a regular file (an archive: tar, tar.gz, .xz, "
                   ".zst or .bz2)", file);
    else
      r = 0;
    size = r == 0 ? (uint64_t)s.st_size : 0;
  } else {
    r = open_upload(file, &st.fd, &size, &err);
    if (r == 0 && !(st.buf = malloc(UPLOAD_CHUNK)))
      r = qerr_set(&err, ENOMEM, "out of memory");
  }
  if (r < 0) {
    if (st.fd >= 0)
      close(st.fd);
    free(st.buf);
    return cli_error(ctx->cmd->name, &err);
  }
  r = cli_connect(ctx, &err);
  if (r == 0) {
    progress_init(&st.prog, size);
    uint64_t timeout = cli_timeout(ctx, 0); /* big archives take their time */
    if (local) {
      Quilt__V1__ImportImageRequest req = QUILT__V1__IMPORT_IMAGE_REQUEST__INIT;
      req.path = abs;
      req.tags = tags;
      req.n_tags = n_tags;
      r = qclient_stream(ctx->client, QCLIENT_QUILT("ImportImage"), &req.base,
                         &quilt__v1__import_image_progress__descriptor, on_progress, &st, timeout,
                         &err);
    } else {
      r = qclient_bidi(ctx->client, QCLIENT_QUILT("UploadImage"), next_chunk, &st,
                       &quilt__v1__import_image_progress__descriptor, on_progress, &st, timeout,
                       &err);
    }
    progress_end(&st.prog);
  }
  if (st.fd >= 0)
    close(st.fd);
  free(st.buf);
  if (r == 0 && !st.image)
    r = qerr_status(&err, GRPC_INTERNAL, EPROTO, "quiltd ended the import without an image");
  if (r < 0) {
    if (st.image)
      protobuf_c_message_free_unpacked(&st.image->base, NULL);
    return report(ctx, &err);
  }
  *image = st.image;
  *cached = st.cached;
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ import */

static void image_json_fields(struct json_out *j, const Quilt__V1__Image *img) {
  json_string(j, "id", img->id);
  json_begin_array(j, "tags");
  for (size_t i = 0; i < img->n_tags; i++)
    json_string(j, NULL, img->tags[i]);
  json_end_array(j);
  json_uint(j, "size_bytes", img->size_bytes);
  json_int(j, "created_at_ns", img->created_at_ns);
  json_uint(j, "containers", img->containers);
}

static const struct option import_opts[] = {
    {"tag", required_argument, NULL, 't'},
    {"upload", no_argument, NULL, 'u'},
    {NULL, 0, NULL, 0},
};

static int run_import(struct cli_ctx *ctx, int argc, char **argv) {
  cleanup_free char **tags = calloc((size_t)argc + 1, sizeof *tags);
  if (!tags)
    return oom(ctx);
  size_t n_tags = 0;
  bool upload = false;
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "t:u", import_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    if (c == 't' && !optarg[0])
      return cli_cmd_usage_error(ctx, "empty --tag (expected NAME[:TAG])");
    if (c == 't')
      tags[n_tags++] = optarg;
    else
      upload = true;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing FILE (a rootfs tarball)");
  if (argc - optind > 1)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
  Quilt__V1__Image *img;
  bool cached;
  int rc = image_import(ctx, argv[optind], tags, n_tags, upload, &img, &cached);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (ctx->json) {
    struct json_out j;
    json_init(&j, ctx->out, true);
    json_begin_object(&j, NULL);
    image_json_fields(&j, img);
    json_bool(&j, "cached", cached);
    json_end_object(&j);
    json_finish(&j);
  } else {
    fprintf(ctx->out, "%s\n", img->id);
    fflush(ctx->out);
    if (cached)
      fputs("(already present)\n", stderr);
  }
  protobuf_c_message_free_unpacked(&img->base, NULL);
  return CLI_EXIT_OK;
}

#define IMPORT_USAGE(name)                                                                  \
  name " [--tag NAME[:TAG]]... [--upload] [--json] FILE\n"                                  \
       "\n"                                                                                 \
       "Imports FILE, a tarball of a root filesystem (tar, or tar compressed with gzip,\n"  \
       "xz, zstd or bzip2), into the daemon's image store and prints the image id (64\n"    \
       "hex digits; \"(already present)\" on stderr when the same bytes were imported\n"    \
       "before). The id is the sha256 of the archive's bytes.\n"                            \
       "\n"                                                                                 \
       "Over a local socket the daemon reads FILE itself (its absolute path is sent);\n"    \
       "over TCP, or with --upload, the client streams the file's bytes to the daemon.\n"   \
       "FILE \"-\" uploads stdin. On a terminal a progress bar shows on stderr.\n"          \
       "\n"                                                                                 \
       "Options:\n"                                                                         \
       "  -t, --tag NAME[:TAG]   tag the image (repeatable; TAG defaults to latest)\n"      \
       "  -u, --upload           send the bytes even over a local socket (when the\n"       \
       "                         daemon cannot see the file)\n"                             \
       "      --json             print the Image as JSON, with \"cached\"\n"                \
       "  -h, --help             show this help\n"

const struct cli_command cli_cmd_import = {
    .name = "import",
    .summary = "Import a rootfs tarball as an image",
    .usage = IMPORT_USAGE("import"),
    .run = run_import,
};

/* ------------------------------------------------------------ images / image ls */

static const struct option images_opts[] = {
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};

static void tags_text(const Quilt__V1__Image *img, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < img->n_tags && len < cap; i++) {
    int n = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", img->tags[i]);
    if (n < 0)
      break;
    len += (size_t)n;
  }
  if (img->n_tags == 0)
    snprintf(buf, cap, "<none>");
}

/* Setup layers (docs/setup.md) under the images, when there are any. */
static int layers_table(FILE *f, const Quilt__V1__ListImagesResponse *l) {
  if (l->n_setup_layers == 0)
    return 0;
  static const char *const headers[] = {"SETUP LAYER", "SIZE", "CREATED", "CONTAINERS"};
  char cells[4][128];
  const char *row[4] = {cells[0], cells[1], cells[2], cells[3]};
  int64_t now = clock_real_ns();
  struct table t;
  int r = table_init(&t, 4, headers);
  for (size_t i = 0; i < l->n_setup_layers && r == 0; i++) {
    const Quilt__V1__SetupLayer *y = l->setup_layers[i];
    snprintf(cells[0], sizeof cells[0], "%.12s", y->key);
    fmt_bytes(y->size_bytes, cells[1], sizeof cells[1]);
    fmt_age(y->created_at_ns, now, cells[2], sizeof cells[2]);
    snprintf(cells[3], sizeof cells[3], "%" PRIu32, y->containers);
    r = table_add_row(&t, row);
  }
  if (r == 0) {
    fputc('\n', f);
    table_print(&t, f);
  }
  table_free(&t);
  return r;
}

static int images_table(FILE *f, const Quilt__V1__ListImagesResponse *l) {
  static const char *const headers[] = {"ID", "TAGS", "SIZE", "CREATED", "CONTAINERS"};
  char cells[5][1024];
  const char *row[5];
  for (size_t i = 0; i < 5; i++)
    row[i] = cells[i];
  int64_t now = clock_real_ns();
  struct table t;
  int r = table_init(&t, 5, headers);
  for (size_t i = 0; i < l->n_images && r == 0; i++) {
    const Quilt__V1__Image *img = l->images[i];
    snprintf(cells[0], sizeof cells[0], "%.12s", img->id);
    tags_text(img, cells[1], sizeof cells[1]);
    fmt_bytes(img->size_bytes, cells[2], sizeof cells[2]);
    fmt_age(img->created_at_ns, now, cells[3], sizeof cells[3]);
    snprintf(cells[4], sizeof cells[4], "%" PRIu32, img->containers);
    r = table_add_row(&t, row);
  }
  if (r == 0)
    table_print(&t, f);
  table_free(&t);
  return r == 0 ? layers_table(f, l) : r;
}

static int run_images(struct cli_ctx *ctx, int argc, char **argv) {
  bool quiet = false;
  int c, code = CLI_EXIT_OK;
  while ((c = cli_getopt(ctx, argc, argv, "q", images_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    quiet = true;
  }
  if (optind < argc)
    return cli_cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
  Quilt__V1__ListImagesRequest req = QUILT__V1__LIST_IMAGES_REQUEST__INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int rc = cli_unary(ctx, QCLIENT_QUILT("ListImages"), &req.base,
                     &quilt__v1__list_images_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  const Quilt__V1__ListImagesResponse *l = (const void *)resp;
  if (ctx->json) {
    struct json_out j;
    json_init(&j, ctx->out, true);
    json_begin_array(&j, NULL);
    for (size_t i = 0; i < l->n_images; i++)
      json_message(&j, NULL, &l->images[i]->base);
    json_end_array(&j);
    json_finish(&j);
  } else if (quiet) {
    for (size_t i = 0; i < l->n_images; i++)
      fprintf(ctx->out, "%s\n", l->images[i]->id);
  } else if (images_table(ctx->out, l) < 0) {
    return oom(ctx);
  }
  return CLI_EXIT_OK;
}

#define IMAGES_USAGE(name)                                                               \
  name " [-q] [--json]\n"                                                                \
       "\n"                                                                              \
       "Lists the images in the daemon's store, oldest first: short id, tags, size on\n"  \
       "disk, age and how many containers use it; then the setup layers (what --setup\n" \
       "steps installed, cached per image and steps), if any.\n"                        \
       "\n"                                                                              \
       "Options:\n"                                                                      \
       "  -q, --quiet   print only full ids\n"                                           \
       "      --json    print a JSON array of Image messages\n"                          \
       "  -h, --help    show this help\n"

const struct cli_command cli_cmd_images = {
    .name = "images",
    .summary = "List images",
    .usage = IMAGES_USAGE("images"),
    .run = run_images,
};

static const struct cli_command cmd_image_ls = {
    .name = "image ls",
    .summary = "List images",
    .usage = IMAGES_USAGE("image ls"),
    .run = run_images,
};

/* ------------------------------------------------------------ rmi / image rm */

static void json_strings(struct json_out *j, const char *key, char **v, size_t n) {
  json_begin_array(j, key);
  for (size_t i = 0; i < n; i++)
    json_string(j, NULL, v[i]);
  json_end_array(j);
}

/* docker's lines: "Untagged: name:tag" for each tag removed, then
 * "Deleted: ID" when the image went too. */
static int rmi_print(struct cli_ctx *ctx, struct ctr_each *each, const char *ref,
                     const Quilt__V1__RemoveImageResponse *r) {
  if (ctx->json) {
    json_begin_object(&each->j, NULL);
    json_string(&each->j, "id", ref);
    json_strings(&each->j, "untagged", r->untagged, r->n_untagged);
    json_strings(&each->j, "deleted", r->deleted, r->n_deleted);
    json_end_object(&each->j);
    return 0;
  }
  if (!r->n_untagged && !r->n_deleted)
    return ctr_print_ref(ctx, each, ref); /* a daemon that does not say */
  for (size_t i = 0; i < r->n_untagged; i++)
    fprintf(ctx->out, "Untagged: %s\n", r->untagged[i]);
  for (size_t i = 0; i < r->n_deleted; i++)
    fprintf(ctx->out, "Deleted: %s\n", r->deleted[i]);
  return 0;
}

static int rmi_one(struct cli_ctx *ctx, const char *ref, struct ctr_each *each,
                   struct qerr *err) {
  Quilt__V1__RemoveImageRequest req = QUILT__V1__REMOVE_IMAGE_REQUEST__INIT;
  req.id = (char *)ref;
  req.force = *(const bool *)each->arg;
  cleanup_msg ProtobufCMessage *resp = NULL;
  int r = ctr_call(ctx, QCLIENT_QUILT("RemoveImage"), &req.base,
                   &quilt__v1__remove_image_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS,
                   err);
  if (r < 0)
    return r;
  return rmi_print(ctx, each, ref, (const Quilt__V1__RemoveImageResponse *)resp);
}

static const struct option rmi_opts[] = {
    {"force", no_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

static int run_rmi(struct cli_ctx *ctx, int argc, char **argv) {
  int c, code = CLI_EXIT_OK;
  bool force = false;
  while ((c = cli_getopt(ctx, argc, argv, "f", rmi_opts, &code)) != -1) {
    if (c == CLI_OPT_EXIT)
      return code;
    force = true;
  }
  if (optind >= argc)
    return cli_cmd_usage_error(ctx, "missing image (a name:tag, an id or an id prefix)");
  return ctr_for_each(ctx, argc, argv, optind, rmi_one, &force);
}

#define RMI_USAGE(name)                                                                    \
  name " [-f] [--json] IMAGE...\n"                                                         \
       "\n"                                                                                \
       "Removes each IMAGE: NAME[:TAG], a full id or a unique id prefix. A tag of an\n"   \
       "image that has other tags removes only that tag (\"Untagged: NAME:TAG\"), even\n" \
       "while containers use the image. The last tag, or an id, removes the image\n"     \
       "and its files (\"Untagged: ...\" for each tag, then \"Deleted: ID\"); an id of\n"  \
       "an image with several tags is refused without -f. An image that containers\n"    \
       "use is refused; -f removes it anyway unless one of them is running. Goes on\n"   \
       "past failures; exits 1 if any failed.\n"                                          \
       "\n"                                                                                \
       "Options:\n"                                                                        \
       "  -f, --force   remove an image with several tags by id, or one that stopped\n"    \
       "                containers use\n"                                                  \
       "      --json    print a JSON array of {id, untagged: [...], deleted: [...]}\n"     \
       "  -h, --help    show this help\n"

const struct cli_command cli_cmd_rmi = {
    .name = "rmi",
    .summary = "Remove images",
    .usage = RMI_USAGE("rmi"),
    .run = run_rmi,
};

static const struct cli_command cmd_image_rm = {
    .name = "image rm",
    .summary = "Remove images",
    .usage = RMI_USAGE("image rm"),
    .run = run_rmi,
};

/* ------------------------------------------------------------ prune / image prune */

static int run_prune(struct cli_ctx *ctx, int argc, char **argv) {
  int rc = cli_no_args(ctx, argc, argv);
  if (rc >= 0)
    return rc;
  Quilt__V1__PruneImagesRequest req = QUILT__V1__PRUNE_IMAGES_REQUEST__INIT;
  cleanup_msg ProtobufCMessage *resp = NULL;
  rc = cli_unary(ctx, QCLIENT_QUILT("PruneImages"), &req.base,
                 &quilt__v1__prune_images_response__descriptor, &resp, CLI_DEFAULT_TIMEOUT_NS);
  if (rc != CLI_EXIT_OK)
    return rc;
  const Quilt__V1__PruneImagesResponse *p = (const void *)resp;
  if (ctx->json) {
    json_print_message(ctx->out, resp, true);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < p->n_removed_ids; i++)
    fprintf(ctx->out, "%s\n", p->removed_ids[i]);
  for (size_t i = 0; i < p->n_removed_layers; i++)
    fprintf(ctx->out, "setup layer %s\n", p->removed_layers[i]);
  fflush(ctx->out);
  char size[32];
  fmt_bytes(p->reclaimed_bytes, size, sizeof size);
  fprintf(stderr, "Removed %zu image%s", p->n_removed_ids, p->n_removed_ids == 1 ? "" : "s");
  if (p->n_removed_layers)
    fprintf(stderr, " and %zu setup layer%s", p->n_removed_layers,
            p->n_removed_layers == 1 ? "" : "s");
  fprintf(stderr, ", reclaimed %s\n", size);
  return CLI_EXIT_OK;
}

#define PRUNE_USAGE(name)                                                                \
  name " [--json]\n"                                                                     \
       "\n"                                                                              \
       "Removes every image no container uses (whatever its tags, the built-in one\n"     \
       "included) and every setup layer no container uses, prints their ids, and on\n"   \
       "stderr how much space that freed.\n"                                              \
       "\n"                                                                              \
       "Options:\n"                                                                      \
       "      --json    print {removed_ids, reclaimed_bytes, removed_layers}\n"          \
       "  -h, --help    show this help\n"

const struct cli_command cli_cmd_prune = {
    .name = "prune",
    .summary = "Remove images no container uses",
    .usage = PRUNE_USAGE("prune"),
    .run = run_prune,
};

static const struct cli_command cmd_image_prune = {
    .name = "image prune",
    .summary = "Remove images no container uses",
    .usage = PRUNE_USAGE("image prune"),
    .run = run_prune,
};

/* ------------------------------------------------------------ image SUBCOMMAND */

static const struct cli_command cmd_image_import = {
    .name = "image import",
    .summary = "Import a rootfs tarball as an image",
    .usage = IMPORT_USAGE("image import"),
    .run = run_import,
};

static const struct {
  const char *name;
  const struct cli_command *cmd;
} image_subcommands[] = {
    {"ls", &cmd_image_ls},       {"list", &cmd_image_ls},       {"rm", &cmd_image_rm},
    {"remove", &cmd_image_rm},   {"prune", &cmd_image_prune},   {"import", &cmd_image_import},
};

static int run_image(struct cli_ctx *ctx, int argc, char **argv) {
  if (argc < 2)
    return cli_cmd_usage_error(ctx, "missing subcommand: ls, rm, prune or import");
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    cli_print_usage(ctx->cmd, stdout);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < ARRAY_SIZE(image_subcommands); i++) {
    if (strcmp(argv[1], image_subcommands[i].name) != 0)
      continue;
    ctx->cmd = image_subcommands[i].cmd;
    optind = 0; /* glibc: rescan from argv[1] of the subcommand's own argv */
    return ctx->cmd->run(ctx, argc - 1, argv + 1);
  }
  return cli_cmd_usage_error(ctx, "unknown subcommand '%s' (expected ls, rm, prune or import)",
                             argv[1]);
}

const struct cli_command cli_cmd_image = {
    .name = "image",
    .summary = "Manage images: image ls | rm | prune | import",
    .usage = "image SUBCOMMAND [ARGS...]\n"
             "\n"
             "Subcommands:\n"
             "  ls, list          list images (same as 'images')\n"
             "  rm, remove        remove images (same as 'rmi')\n"
             "  prune             remove images no container uses (same as 'prune')\n"
             "  import            import a rootfs tarball (same as 'import')\n"
             "\n"
             "Run 'quilt-cli image SUBCOMMAND --help' for a subcommand's options.\n",
    .run = run_image,
};
