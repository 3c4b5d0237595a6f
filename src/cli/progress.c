/* The setup progress display (progress.h). Three threads share one struct
 * progress under its mutex: the follower feeds it setup output, the starter
 * its StartContainer answer, and the caller's thread draws. */
#include "cli/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/ctr.h"
#include "common/clock.h"

#define KEEP 240              /* bytes kept of a line */
#define TAIL 5                /* last lines of a step shown when it fails */
#define TICK_NS 250000000ull  /* status line redraw */
#define GRACE_NS 2000000000ull /* wait for the follower after the answer */
#define MARK "quilt-setup: "

enum phase { RUNNING, DONE, FAILED, REUSED };

struct progress {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool tty;
  char id[128];
  uint64_t t0;
  /* follower */
  struct cli_ctx fctx;
  char part[KEEP];      /* a line not ended yet */
  size_t part_len;
  size_t step, n;       /* the running step (1-based; 0: none yet) of n */
  char text[KEEP];      /* its spec */
  uint64_t step_t0, step_t1;
  char tail[TAIL][KEEP];
  unsigned n_tail;
  enum phase phase;
  int fail_code;        /* from the script's "failed: exit code N"; -1 */
  bool follower_done, abandoned, status_drawn;
  /* starter */
  struct cli_ctx sctx;
  bool answered;
  int start_rc;
  struct qerr start_err;
  ProtobufCMessage *start_resp;
};

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fflush(stderr);
}

/* Terminal-safe copy: control bytes (escape sequences included) become
 * spaces, so a line cannot move the cursor or recolour the terminal. */
static void clean_copy(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; i++)
    dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
  dst[i] = 0;
}

/* ------------------------------------------------------------ drawing */

static unsigned term_width(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
    return ws.ws_col;
  return 80;
}

static void clear_status(struct progress *p) {
  if (p->tty && p->status_drawn)
    say("\r\033[K");
  p->status_drawn = false;
}

/* "[1/2 3.2s] apt: curl | last line", cut to the width in code points. */
static void draw_status(struct progress *p) {
  if (!p->tty || p->abandoned || p->phase != RUNNING || p->step_t1)
    return; /* a finished step keeps its line; the summary follows */
  char line[3 * KEEP];
  uint64_t now = clock_mono_ns();
  if (p->step == 0)
    snprintf(line, sizeof line, "[setup %.1fs] starting", secs(now - p->t0));
  else
    snprintf(line, sizeof line, "[%zu/%zu %.1fs] %s%s%s", p->step, p->n,
             secs(now - p->step_t0), p->text, p->n_tail ? " | " : "",
             p->n_tail ? p->tail[(p->n_tail - 1) % TAIL] : "");
  unsigned width = term_width() - 1, cols = 0;
  size_t i = 0;
  for (; line[i]; i++) {
    if (((unsigned char)line[i] & 0xc0) != 0x80 && ++cols > width)
      break;
  }
  line[i] = 0;
  say("\r\033[K%s", line);
  p->status_drawn = true;
}

/* ------------------------------------------------------------ setup output */

static void step_end(struct progress *p) {
  if (p->step == 0 || p->step_t1)
    return;
  p->step_t1 = clock_mono_ns();
  clear_status(p);
  if (p->tty)
    say("setup: step %zu/%zu done in %.1f s: %s\n", p->step, p->n,
        secs(p->step_t1 - p->step_t0), p->text);
  else
    say("setup: step %zu/%zu done in %.1f s\n", p->step, p->n, secs(p->step_t1 - p->step_t0));
}

static void step_start(struct progress *p, size_t i, size_t n, const char *text) {
  step_end(p);
  p->step = i;
  p->n = n;
  clean_copy(p->text, sizeof p->text, text);
  p->step_t0 = clock_mono_ns();
  p->step_t1 = 0;
  p->n_tail = 0;
  if (!p->tty)
    say("setup: step %zu/%zu: %s\n", i, n, p->text);
}

static void add_tail(struct progress *p, const char *line) {
  clean_copy(p->tail[p->n_tail % TAIL], KEEP, line);
  p->n_tail++;
}

/* The script's marker lines (setup.h) move the display on; anything else
 * is the step's output. */
static void on_line(struct progress *p, const char *line) {
  size_t i, n;
  int code, off = 0;
  if (!line[0] || p->phase == DONE || p->phase == REUSED)
    return;
  if (p->phase == RUNNING && strncmp(line, MARK, strlen(MARK)) == 0) {
    const char *m = line + strlen(MARK);
    if (sscanf(m, "step %zu/%zu failed: exit code %d", &i, &n, &code) == 3) {
      p->fail_code = code;
      p->phase = FAILED;
      p->step_t1 = clock_mono_ns();
      return;
    }
    if (sscanf(m, "step %zu/%zu: %n", &i, &n, &off) == 2 && off > 0) {
      if (i != p->step)
        step_start(p, i, n, m + off);
      else
        add_tail(p, m + off); /* "installing nodejs npm with apt-get" */
      return;
    }
    if (strcmp(m, "done") == 0) {
      step_end(p);
      p->phase = DONE;
      return;
    }
    if (strncmp(m, "reused layer ", 13) == 0) {
      p->phase = REUSED;
      return;
    }
  }
  add_tail(p, line);
}

/* Lines end at '\n' or '\r' (dpkg and others redraw with '\r'). */
static void feed(struct progress *p, const uint8_t *d, size_t len) {
  for (size_t k = 0; k < len; k++) {
    if (d[k] == '\n' || d[k] == '\r') {
      p->part[p->part_len] = 0;
      on_line(p, p->part);
      p->part_len = 0;
    } else if (p->part_len + 1 < sizeof p->part) {
      p->part[p->part_len++] = (char)d[k];
    }
  }
}

static int on_chunk(void *arg, ProtobufCMessage *msg) {
  struct progress *p = arg;
  const Quilt__V1__LogChunk *ch = (const Quilt__V1__LogChunk *)msg;
  pthread_mutex_lock(&p->mu);
  if (!p->abandoned) {
    feed(p, ch->data.data, ch->data.len);
    draw_status(p);
  }
  /* After a failure the step's stdout may still come (the daemon reads
   * stdout and stderr apart): read on until the stream ends. */
  int stop = p->abandoned || p->phase == DONE || p->phase == REUSED;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return stop;
}

static void *follower(void *arg) {
  struct progress *p = arg;
  Quilt__V1__StreamLogsRequest req = QUILT__V1__STREAM_LOGS_REQUEST__INIT;
  req.id = p->id;
  req.follow = true;
  req.stream = QUILT__V1__LOG_STREAM__LOG_STREAM_SETUP;
  struct qerr err = QERR_INIT;
  /* Errors only end the display early; the start's answer says what went
   * wrong. */
  ctr_stream(&p->fctx, QCLIENT_QUILT("StreamLogs"), &req.base,
             &quilt__v1__log_chunk__descriptor, on_chunk, p, 0, &err);
  pthread_mutex_lock(&p->mu);
  if (p->part_len && !p->abandoned)
    feed(p, (const uint8_t *)"\n", 1);
  p->follower_done = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void *starter(void *arg) {
  struct progress *p = arg;
  Quilt__V1__StartContainerRequest req = QUILT__V1__START_CONTAINER_REQUEST__INIT;
  req.id = p->id;
  struct qerr err = QERR_INIT;
  ProtobufCMessage *resp = NULL;
  int rc = ctr_call(&p->sctx, QCLIENT_QUILT("StartContainer"), &req.base,
                    &quilt__v1__start_container_response__descriptor, &resp, 0, &err);
  pthread_mutex_lock(&p->mu);
  p->start_rc = rc;
  p->start_err = err;
  p->start_resp = resp;
  p->answered = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ------------------------------------------------------------ the end */

static int exit_code_of(const struct progress *p) {
  if (p->fail_code >= 0)
    return p->fail_code;
  const char *s = strstr(p->start_err.msg, "exit code ");
  return s ? atoi(s + 10) : -1;
}

static void report_failure(struct progress *p) {
  uint64_t end = p->step_t1 ? p->step_t1 : clock_mono_ns();
  int code = exit_code_of(p);
  char c[32] = "";
  if (code >= 0)
    snprintf(c, sizeof c, " with exit code %d", code);
  say("setup: step %zu/%zu (%s) failed%s after %.1f s%s\n", p->step, p->n, p->text, c,
      secs(end - p->step_t0), p->n_tail ? "; its last output:" : "");
  for (unsigned k = p->n_tail > TAIL ? p->n_tail - TAIL : 0; k < p->n_tail; k++)
    say("  | %s\n", p->tail[k % TAIL]);
}

static void report(struct progress *p) {
  clear_status(p);
  if (p->start_rc < 0) {
    if (p->step > 0) /* else the error says it all: nothing ran */
      report_failure(p);
    return;
  }
  const Quilt__V1__StartContainerResponse *r = (const void *)p->start_resp;
  const Quilt__V1__Container *c = r ? r->container : NULL;
  const char *key = c && c->setup_layer ? c->setup_layer : "";
  if (p->phase == REUSED || (p->step == 0 && c && c->setup_reused)) {
    say("setup: reused cached layer %.12s\n", key);
    return;
  }
  step_end(p);
  say("setup: done in %.1f s (layer cached%s%.12s)\n", secs(clock_mono_ns() - p->t0),
      key[0] ? ": " : "", key);
}

/* Waits for cond (a field of p) with the status line ticking. */
static void wait_ticking(struct progress *p, const bool *cond, uint64_t deadline) {
  while (!*cond) {
    uint64_t now = clock_mono_ns();
    if (deadline && now >= deadline)
      return;
    uint64_t until = now + TICK_NS;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
                          .tv_nsec = (long)(until % 1000000000ull)};
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    draw_status(p);
  }
}

static struct progress *progress_new(struct cli_ctx *ctx, const char *id) {
  struct progress *p = calloc(1, sizeof *p);
  pthread_condattr_t ca;
  if (!p)
    return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  p->tty = isatty(STDERR_FILENO);
  snprintf(p->id, sizeof p->id, "%s", id);
  p->t0 = clock_mono_ns();
  p->fail_code = -1;
  p->fctx = p->sctx = *ctx;
  p->fctx.client = p->sctx.client = NULL;
  return p;
}

static void progress_free(struct progress *p) {
  qclient_close(p->fctx.client);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int setup_progress_start(struct cli_ctx *ctx, const char *id, ProtobufCMessage **resp,
                         struct qerr *err) {
  struct progress *p = progress_new(ctx, id);
  pthread_t ft, st;
  if (!p)
    return qerr_set(err, ENOMEM, "out of memory");
  if (pthread_create(&ft, NULL, follower, p) != 0) {
    progress_free(p);
    return qerr_set(err, EAGAIN, "starting the setup display: cannot create a thread");
  }
  int e = pthread_create(&st, NULL, starter, p);
  pthread_mutex_lock(&p->mu);
  if (e != 0) {
    p->answered = true;
    p->start_rc = qerr_set(&p->start_err, e, "starting the container: cannot create a thread");
  }
  wait_ticking(p, &p->answered, 0);
  wait_ticking(p, &p->follower_done, clock_mono_ns() + GRACE_NS);
  report(p);
  p->abandoned = true;
  bool follower_done = p->follower_done;
  pthread_mutex_unlock(&p->mu);
  if (e == 0)
    pthread_join(st, NULL);
  qclient_close(p->sctx.client);
  int rc = p->start_rc;
  *err = p->start_err;
  *resp = p->start_resp;
  if (follower_done) {
    pthread_join(ft, NULL);
    progress_free(p);
  } else {
    /* Stuck on a stream the daemon has not ended: it prints nothing more
     * (abandoned) and goes with the process, p with it. */
    pthread_detach(ft);
  }
  return rc;
}
