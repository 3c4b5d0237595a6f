#include "runtime/image_jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "daemon.h"
#include "grpc/call.h"
#include "grpc/services.h"
#include "io/pidwait.h"
#include "runtime/images.h"
#include "runtime/syscalls.h"

#define READ_CHUNK (256 * 1024)
/* Read ahead of the helper by at most this much. */
#define PENDING_MAX (1024 * 1024)
#define PROGRESS_EVERY_NS (100 * 1000000ull)

struct image_job {
  struct quiltd *d;
  struct grpc_call *call;          /* NULL once the client went away */
  image_job_done_fn on_done;       /* instead of a call: who wants the image */
  void *on_done_arg;
  struct image_import *imp;
  int file_fd;                     /* -1 for uploads */
  int stream_fd;                   /* helper's stdin; -1 once closed */
  uint64_t total, done;
  struct strbuf pending;           /* read, not yet written to the helper */
  struct strbuf incoming;          /* upload bytes that came during a write */
  struct qop read_op, write_op;
  struct qpidwait wait;
  bool reading, writing, input_done, broken, waiting;
  char **tags;
  size_t n_tags;
  uint64_t last_progress_ns;
};

static void pump(struct image_job *j);

static void job_free(struct image_job *j) {
  if (j->file_fd >= 0)
    close(j->file_fd);
  if (j->stream_fd >= 0)
    close(j->stream_fd);
  for (size_t i = 0; i < j->n_tags; i++)
    free(j->tags[i]);
  free(j->tags);
  strbuf_free(&j->pending);
  strbuf_free(&j->incoming);
  free(j);
}

/* The client is gone: kill the helper; the pipeline drains and finishes. */
static void on_cancel(struct grpc_call *call, void *arg) {
  (void)call;
  struct image_job *j = arg;
  j->call = NULL;
  sys_pidfd_send_signal(image_import_pidfd(j->imp), SIGKILL);
  /* No more input will come (uploads): drain what is in flight, then
   * reap the helper and clean up. */
  j->input_done = j->broken = true;
  pump(j);
}

static void progress(struct image_job *j, bool force) {
  uint64_t now = clock_mono_ns();
  if (!j->call || (!force && now - j->last_progress_ns < PROGRESS_EVERY_NS))
    return;
  j->last_progress_ns = now;
  Quilt__V1__ImportImageProgress p = QUILT__V1__IMPORT_IMAGE_PROGRESS__INIT;
  p.bytes_done = j->done;
  p.bytes_total = j->total;
  grpc_call_send(j->call, &p.base); /* -EAGAIN: skip this one */
}

static void fail(struct image_job *j, const struct qerr *err) {
  if (j->on_done)
    j->on_done(j->on_done_arg, NULL, err);
  else if (j->call)
    grpc_call_fail(j->call, err);
}

static void reply(struct image_job *j, const struct image_info *info, bool cached) {
  if (j->on_done) {
    j->on_done(j->on_done_arg, info, NULL);
    return;
  }
  Quilt__V1__Image img = QUILT__V1__IMAGE__INIT;
  img.id = (char *)info->id;
  img.tags = info->tags;
  img.n_tags = info->n_tags;
  img.size_bytes = info->size_bytes;
  img.created_at_ns = info->created_ns;
  img.containers = images_in_use(j->d, info->id);
  Quilt__V1__ImportImageProgress p = QUILT__V1__IMPORT_IMAGE_PROGRESS__INIT;
  p.bytes_done = j->done;
  p.bytes_total = j->total ? j->total : j->done;
  p.image = &img;
  p.cached = cached;
  if (grpc_call_send(j->call, &p.base) < 0)
    grpc_call_finish(j->call, GRPC_RESOURCE_EXHAUSTED, "cannot queue the result");
  else
    grpc_call_finish(j->call, GRPC_OK, NULL);
}

static void on_helper_exit(struct qpidwait *w, const siginfo_t *si, int err) {
  struct image_job *j = container_of(w, struct image_job, wait);
  (void)err;
  struct image_info info = {0};
  bool cached = false;
  struct qerr e = QERR_INIT;
  int rc = image_import_finish(j->d->images, j->imp, image_wait_status(si->si_code, si->si_status),
                               (const char *const *)j->tags, j->n_tags, &info, &cached, &e);
  j->imp = NULL;
  if (rc == 0) {
    /* Re-read: the archive's own RepoTags may have been added too. */
    struct image_info fresh = {0};
    struct qerr ignore = QERR_INIT;
    if (image_lookup(j->d->images, info.id, &fresh, &ignore) == 0) {
      image_info_free(&info);
      info = fresh;
    }
  }
  if (j->call)
    grpc_call_on_cancel(j->call, NULL, NULL);
  if (j->call || j->on_done) {
    if (rc < 0)
      fail(j, &e);
    else
      reply(j, &info, cached);
  }
  if (rc == 0) {
    log_info("image %.12s imported (%llu bytes%s)", info.id, (unsigned long long)j->done,
             cached ? ", already present" : "");
    Quilt__V1__Event ev = QUILT__V1__EVENT__INIT;
    ev.type = QUILT__V1__EVENT_TYPE__EVENT_TYPE_IMAGE_IMPORTED;
    ev.timestamp_ns = clock_real_ns();
    ev.detail = info.id;
    events_publish(j->d, &ev);
  }
  image_info_free(&info);
  job_free(j);
}

/* Input over and written out (or the helper stopped taking it): close its
 * stdin and wait for its verdict. */
static void maybe_wait(struct image_job *j) {
  bool drained = j->input_done && strbuf_avail(&j->pending) == 0 &&
                 strbuf_avail(&j->incoming) == 0;
  if (j->waiting || j->reading || j->writing || !(drained || j->broken))
    return;
  if (j->stream_fd >= 0)
    close(j->stream_fd);
  j->stream_fd = -1;
  j->waiting = true;
  progress(j, true);
  qpidwait_arm(&j->wait, &j->d->ring, image_import_pidfd(j->imp), on_helper_exit);
}

static void on_write(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct image_job *j = container_of(op, struct image_job, write_op);
  j->writing = false;
  if (res < 0) {
    /* EPIPE: the helper refused the archive and exited; its exit says why. */
    j->broken = true;
    strbuf_reset(&j->pending);
    strbuf_reset(&j->incoming);
  } else {
    strbuf_consume(&j->pending, (size_t)res);
    j->done += (uint64_t)res;
    progress(j, false);
  }
  pump(j);
}

static void on_read(struct qop *op, int res, uint32_t flags) {
  (void)flags;
  struct image_job *j = container_of(op, struct image_job, read_op);
  j->reading = false;
  if (res > 0) {
    image_import_update(j->imp, strbuf_head(&j->pending) + strbuf_avail(&j->pending), (size_t)res);
    strbuf_commit(&j->pending, (size_t)res);
  } else {
    if (res < 0)
      log_warn("reading an image archive: %s", strerror(-res));
    j->input_done = true;
    if (res < 0)
      j->broken = true;
  }
  pump(j);
}

static void pump(struct image_job *j) {
  if (j->broken) {
    maybe_wait(j);
    return;
  }
  if (!j->writing && strbuf_avail(&j->incoming) > 0) {
    if (strbuf_append(&j->pending, strbuf_head(&j->incoming), strbuf_avail(&j->incoming)) < 0)
      j->broken = true;
    strbuf_reset(&j->incoming);
  }
  if (!j->writing && strbuf_avail(&j->pending) > 0 && j->stream_fd >= 0) {
    struct io_uring_sqe *sqe = qring_sqe(&j->d->ring);
    size_t n = strbuf_avail(&j->pending);
    io_uring_prep_write(sqe, j->stream_fd, strbuf_head(&j->pending), (unsigned)(n > READ_CHUNK ? READ_CHUNK : n), (uint64_t)-1);
    qop_bind(sqe, &j->write_op);
    j->writing = true;
  }
  /* The buffer may move on reserve: only read while no write points into it. */
  if (j->file_fd >= 0 && !j->reading && !j->writing && !j->input_done &&
      strbuf_avail(&j->pending) < PENDING_MAX) {
    uint8_t *dst = strbuf_tail(&j->pending, READ_CHUNK);
    if (!dst) {
      j->broken = j->input_done = true;
    } else {
      struct io_uring_sqe *sqe = qring_sqe(&j->d->ring);
      io_uring_prep_read(sqe, j->file_fd, dst, READ_CHUNK, (uint64_t)-1);
      qop_bind(sqe, &j->read_op);
      j->reading = true;
    }
  }
  if (j->file_fd < 0 && j->call &&
      strbuf_avail(&j->pending) + strbuf_avail(&j->incoming) < PENDING_MAX / 2)
    grpc_call_release_input(j->call); /* uploads: let the client send more */
  maybe_wait(j);
}

static struct image_job *job_new(struct quiltd *d, struct grpc_call *call, char *const *tags,
                                 size_t n_tags, struct qerr *err) {
  if (!d->images) {
    qerr_status(err, GRPC_FAILED_PRECONDITION, ENOSYS, "the image store is not available");
    return NULL;
  }
  struct image_job *j = calloc(1, sizeof *j);
  if (!j || (n_tags && !(j->tags = calloc(n_tags, sizeof *j->tags)))) {
    free(j);
    qerr_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  *j = (struct image_job){.d = d, .call = call, .file_fd = -1, .stream_fd = -1, .tags = j->tags};
  for (size_t i = 0; i < n_tags; i++) {
    char canon[IMAGE_TAG_MAX];
    if (image_tag_canonical(tags[i], canon, err) < 0 || !(j->tags[j->n_tags++] = strdup(canon))) {
      if (!err->code)
        qerr_set(err, ENOMEM, "out of memory");
      job_free(j);
      return NULL;
    }
  }
  j->read_op.fn = on_read;
  j->write_op.fn = on_write;
  if (image_import_begin(d->images, &j->imp, &j->stream_fd, err) < 0) {
    job_free(j);
    return NULL;
  }
  if (call)
    grpc_call_on_cancel(call, on_cancel, j);
  return j;
}

/* Re-importing a file the store has seen, unchanged: answered at once.
 * `who` is a job on the stack naming the call or the done function. */
static bool memo_answer(struct image_job *who, int fd, char *const *tags, size_t n_tags,
                        uint64_t size) {
  struct quiltd *d = who->d;
  char canon[8][IMAGE_TAG_MAX];
  const char *ctags[8];
  struct qerr err = QERR_INIT;
  if (n_tags > 8)
    return false;
  for (size_t i = 0; i < n_tags; i++) {
    if (image_tag_canonical(tags[i], canon[i], &err) < 0)
      return false; /* the full path reports it */
    ctags[i] = canon[i];
  }
  struct image_info info = {0};
  if (image_import_try_memo(d->images, fd, ctags, n_tags, &info, &err) != 1)
    return false;
  who->done = size;
  who->total = size;
  reply(who, &info, true);
  image_info_free(&info);
  return true;
}

/* ImportImage and image_job_import_for alike; `who` names the receiver. */
static void import_file(struct image_job *who, const char *path, char *const *tags,
                        size_t n_tags) {
  struct qerr err = QERR_INIT;
  struct stat st;
  if (!path || path[0] != '/') {
    qerr_status(&err, GRPC_INVALID_ARGUMENT, EINVAL, "give the archive as an absolute path");
    fail(who, &err);
    return;
  }
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0) {
    qerr_errno(&err, "%s", path);
    fail(who, &err);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    qerr_status(&err, GRPC_INVALID_ARGUMENT, EINVAL, "%s is not a regular file", path);
    fail(who, &err);
    return;
  }
  if (memo_answer(who, fd, tags, n_tags, (uint64_t)st.st_size))
    return;
  struct image_job *j = job_new(who->d, who->call, tags, n_tags, &err);
  if (!j) {
    fail(who, &err);
    return;
  }
  j->on_done = who->on_done;
  j->on_done_arg = who->on_done_arg;
  if (image_import_set_source(j->imp, fd, &err) < 0)
    log_warn("image import: %s", err.msg); /* only the memo is lost */
  j->file_fd = take_fd(&fd);
  j->total = (uint64_t)st.st_size;
  progress(j, true);
  pump(j);
}

void image_job_import_file(struct quiltd *d, struct grpc_call *call, const char *path,
                           char *const *tags, size_t n_tags) {
  struct image_job who = {.d = d, .call = call};
  import_file(&who, path, tags, n_tags);
}

void image_job_import_for(struct quiltd *d, const char *path, image_job_done_fn done, void *arg) {
  struct image_job who = {.d = d, .on_done = done, .on_done_arg = arg};
  import_file(&who, path, NULL, 0);
}

struct image_job *image_job_upload_begin(struct quiltd *d, struct grpc_call *call,
                                         char *const *tags, size_t n_tags) {
  struct qerr err = QERR_INIT;
  struct image_job *j = job_new(d, call, tags, n_tags, &err);
  if (!j) {
    grpc_call_fail(call, &err);
    return NULL;
  }
  grpc_call_hold_input(call);
  return j;
}

void image_job_upload_data(struct image_job *j, const uint8_t *p, size_t n) {
  if (j->broken || j->input_done || n == 0)
    return;
  image_import_update(j->imp, p, n);
  /* A write may point into `pending`, which can move when it grows: new
   * bytes wait in `incoming` until pump() joins them. */
  if (strbuf_append(&j->incoming, p, n) < 0)
    j->broken = true;
  pump(j);
}

void image_job_upload_end(struct image_job *j) {
  j->input_done = true;
  pump(j);
}
