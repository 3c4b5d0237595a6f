/* The SQLite state store: container rows (upsert, order, unique names),
 * persistence across reopen, the event history and open errors. Each test
 * works in its own temporary directory, removed afterwards. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "runtime/store.h"

struct fixture {
  char dir[64];
  char path[96];
  struct store *s;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/quilt-store-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/state.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  store_close(f->s);
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    char p[128];
    snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
    unlink(p);
  }
  chmod(f->dir, 0700);
  int r = rmdir(f->dir);
  free(f);
  return r;
}

static struct store *open_ok(struct fixture *f) {
  struct qerr err = QERR_INIT;
  int r = store_open(&f->s, f->path, &err);
  if (r != 0)
    fail_msg("store_open: %d %s", r, err.msg);
  assert_non_null(f->s);
  return f->s;
}

static void reopen(struct fixture *f) {
  store_close(f->s);
  f->s = NULL;
  open_ok(f);
}

/* ------------------------------------------------------------ containers */

struct crow {
  char id[65], name[64], failure[64], image_id[80], rootfs[128];
  int state;
  uint8_t spec[64];
  size_t spec_len;
  int32_t pid, exit_code, exit_signal;
  bool oom_killed;
  int64_t created_ns, started_ns, finished_ns;
};

struct crows {
  struct crow r[16];
  size_t n;
  int stop_after; /* return -ECANCELED after this many; 0: never */
};

static int collect(void *arg, const struct container_record *r) {
  struct crows *c = arg;
  assert_true(c->n < 16);
  struct crow *w = &c->r[c->n++];
  assert_non_null(r->id);
  assert_non_null(r->name);
  assert_non_null(r->failure);
  assert_non_null(r->image_id);
  assert_non_null(r->rootfs);
  snprintf(w->id, sizeof w->id, "%s", r->id);
  snprintf(w->name, sizeof w->name, "%s", r->name);
  snprintf(w->failure, sizeof w->failure, "%s", r->failure);
  snprintf(w->image_id, sizeof w->image_id, "%s", r->image_id);
  snprintf(w->rootfs, sizeof w->rootfs, "%s", r->rootfs);
  w->state = r->state;
  assert_true(r->spec_len <= sizeof w->spec);
  if (r->spec_len)
    memcpy(w->spec, r->spec, r->spec_len);
  w->spec_len = r->spec_len;
  w->pid = r->pid;
  w->exit_code = r->exit_code;
  w->exit_signal = r->exit_signal;
  w->oom_killed = r->oom_killed;
  w->created_ns = r->created_ns;
  w->started_ns = r->started_ns;
  w->finished_ns = r->finished_ns;
  if (c->stop_after && (int)c->n == c->stop_after)
    return -ECANCELED;
  return 0;
}

static void load(struct store *s, struct crows *c) {
  memset(c, 0, sizeof *c);
  struct qerr err = QERR_INIT;
  int r = store_load_containers(s, collect, c, &err);
  if (r != 0)
    fail_msg("store_load_containers: %d %s", r, err.msg);
}

static void make_id(char out[65], char c) {
  memset(out, c, 64);
  out[64] = 0;
}

static const uint8_t spec_bytes[] = {0x0a, 0x03, 'w', 'e', 'b', 0x00, 0xff, 0x12, 0x00};

static struct container_record record(const char *id, const char *name) {
  return (struct container_record){
      .id = id,
      .name = name,
      .state = 1,
      .spec = spec_bytes,
      .spec_len = sizeof spec_bytes,
      .failure = "",
      .created_ns = 1795924983720123456LL,
      .image_id = "sha256:abc",
      .rootfs = "/var/lib/quilt/containers/x/rootfs",
  };
}

static void put_ok(struct store *s, const struct container_record *r) {
  struct qerr err = QERR_INIT;
  int ret = store_put_container(s, r, &err);
  if (ret != 0)
    fail_msg("store_put_container: %d %s", ret, err.msg);
}

static void test_put_load_update_delete(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  struct crows *c = malloc(sizeof *c);
  assert_non_null(c);
  load(s, c);
  assert_int_equal(c->n, 0);

  char a[65], b[65], d[65];
  make_id(a, 'a');
  make_id(b, 'b');
  make_id(d, 'd');
  /* Inserted d, a, b: loaded in that order, not by id. */
  struct container_record rd = record(d, "db"), ra = record(a, "web"), rb = record(b, "");
  rb.spec = NULL;
  rb.spec_len = 0;
  rb.image_id = NULL; /* NULL strings are stored as "" */
  put_ok(s, &rd);
  put_ok(s, &ra);
  put_ok(s, &rb);
  load(s, c);
  assert_int_equal(c->n, 3);
  assert_string_equal(c->r[0].id, d);
  assert_string_equal(c->r[1].id, a);
  assert_string_equal(c->r[2].id, b);
  assert_string_equal(c->r[0].name, "db");
  assert_string_equal(c->r[2].name, "");
  assert_string_equal(c->r[2].image_id, "");
  assert_int_equal(c->r[1].spec_len, sizeof spec_bytes);
  assert_memory_equal(c->r[1].spec, spec_bytes, sizeof spec_bytes);
  assert_int_equal(c->r[2].spec_len, 0);
  assert_true(c->r[1].created_ns == 1795924983720123456LL);
  assert_string_equal(c->r[1].image_id, "sha256:abc");
  assert_string_equal(c->r[1].rootfs, "/var/lib/quilt/containers/x/rootfs");

  /* Update the first: every field changes, the order does not. */
  rd.state = 3;
  rd.pid = 4242;
  rd.exit_code = 137;
  rd.exit_signal = 9;
  rd.oom_killed = true;
  rd.failure = "killed";
  rd.started_ns = INT64_MAX;
  rd.finished_ns = -5;
  rd.name = "database";
  rd.spec = (const uint8_t *)"\x01\x02";
  rd.spec_len = 2;
  rd.image_id = "sha256:def";
  rd.rootfs = "";
  put_ok(s, &rd);
  load(s, c);
  assert_int_equal(c->n, 3);
  struct crow *w = &c->r[0];
  assert_string_equal(w->id, d);
  assert_string_equal(w->name, "database");
  assert_int_equal(w->state, 3);
  assert_int_equal(w->pid, 4242);
  assert_int_equal(w->exit_code, 137);
  assert_int_equal(w->exit_signal, 9);
  assert_true(w->oom_killed);
  assert_string_equal(w->failure, "killed");
  assert_true(w->started_ns == INT64_MAX);
  assert_true(w->finished_ns == -5);
  assert_int_equal(w->spec_len, 2);
  assert_memory_equal(w->spec, "\x01\x02", 2);
  assert_string_equal(w->image_id, "sha256:def");
  assert_string_equal(w->rootfs, "");
  assert_false(c->r[1].oom_killed);

  /* Delete the middle one; deleting an unknown id is not an error. */
  struct qerr err = QERR_INIT;
  assert_int_equal(store_delete_container(s, a, &err), 0);
  assert_int_equal(store_delete_container(s, a, &err), 0);
  load(s, c);
  assert_int_equal(c->n, 2);
  assert_string_equal(c->r[0].id, d);
  assert_string_equal(c->r[1].id, b);

  /* A new row goes last, even after the newest was deleted. */
  assert_int_equal(store_delete_container(s, b, &err), 0);
  put_ok(s, &ra);
  put_ok(s, &rb);
  load(s, c);
  assert_int_equal(c->n, 3);
  assert_string_equal(c->r[0].id, d);
  assert_string_equal(c->r[1].id, a);
  assert_string_equal(c->r[2].id, b);

  /* The callback can stop the walk; its value comes back. */
  memset(c, 0, sizeof *c);
  c->stop_after = 2;
  assert_int_equal(store_load_containers(s, collect, c, &err), -ECANCELED);
  assert_int_equal(c->n, 2);
  /* ... and the statement is reusable afterwards. */
  load(s, c);
  assert_int_equal(c->n, 3);
  free(c);
}

static void test_duplicate_name(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  char a[65], b[65], c[65];
  make_id(a, 'a');
  memcpy(a, "0123456789ab", 12);
  make_id(b, 'b');
  make_id(c, 'c');
  struct container_record ra = record(a, "web"), rb = record(b, "web");
  put_ok(s, &ra);

  struct qerr err = QERR_INIT;
  assert_int_equal(store_put_container(s, &rb, &err), -EEXIST);
  assert_int_equal(err.code, -EEXIST);
  assert_string_equal(err.msg, "name \"web\" is already used by container 0123456789ab");

  /* Renaming another container onto a used name fails the same way. */
  rb.name = "api";
  put_ok(s, &rb);
  rb.name = "web";
  qerr_clear(&err);
  assert_int_equal(store_put_container(s, &rb, &err), -EEXIST);
  assert_string_equal(err.msg, "name \"web\" is already used by container 0123456789ab");

  /* Updating the holder itself with its own name is fine. */
  ra.state = 2;
  put_ok(s, &ra);
  /* Any number of containers may have no name. */
  struct container_record rc = record(c, "");
  ra.name = "";
  rb.name = "";
  put_ok(s, &ra);
  put_ok(s, &rb);
  put_ok(s, &rc);
  /* The freed name can be taken. */
  rc.name = "web";
  put_ok(s, &rc);
  struct crows *rows = malloc(sizeof *rows);
  assert_non_null(rows);
  load(s, rows);
  assert_int_equal(rows->n, 3);
  assert_string_equal(rows->r[0].name, "");
  assert_string_equal(rows->r[1].name, "");
  assert_string_equal(rows->r[2].name, "web");
  /* Deleting the holder frees the name too. */
  assert_int_equal(store_delete_container(s, c, &err), 0);
  rb.name = "web";
  put_ok(s, &rb);
  free(rows);
}

static void test_persistence(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  char a[65], b[65], c[65];
  make_id(a, 'e');
  make_id(b, 'f');
  make_id(c, '1');
  struct container_record ra = record(a, "one"), rb = record(b, "two");
  rb.exit_code = 3;
  put_ok(s, &ra);
  put_ok(s, &rb);
  struct event_record ev = {.ts_ns = 5, .type = 2, .container_id = a, .container_name = "one",
                            .detail = "created"};
  struct qerr err = QERR_INIT;
  assert_int_equal(store_add_event(s, &ev, &err), 0);

  reopen(f);
  s = f->s;
  struct crows *rows = malloc(sizeof *rows);
  assert_non_null(rows);
  load(s, rows);
  assert_int_equal(rows->n, 2);
  assert_string_equal(rows->r[0].id, a);
  assert_string_equal(rows->r[1].id, b);
  assert_int_equal(rows->r[1].exit_code, 3);
  assert_memory_equal(rows->r[0].spec, spec_bytes, sizeof spec_bytes);
  /* Names stay unique and order continues across a reopen. */
  struct container_record rc = record(c, "two");
  assert_int_equal(store_put_container(s, &rc, &err), -EEXIST);
  rc.name = "three";
  put_ok(s, &rc);
  reopen(f);
  load(f->s, rows);
  assert_int_equal(rows->n, 3);
  assert_string_equal(rows->r[2].id, c);
  free(rows);

  /* Mode 0600, WAL, schema version 1 — and while quiltd holds the store,
   * nobody else may open it (exclusive locking). */
  sqlite3 *busy;
  assert_int_equal(sqlite3_open_v2(f->path, &busy, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(busy, "SELECT count(*) FROM containers", NULL, NULL, NULL),
                       SQLITE_OK);
  sqlite3_close(busy);
  store_close(f->s);
  f->s = NULL;
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 1);
  sqlite3_finalize(q);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
  sqlite3_finalize(q);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 1);
  sqlite3_finalize(q);
  sqlite3_close(db);
  /* The -wal and -shm files inherit the mode. */
  char p[128];
  snprintf(p, sizeof p, "%s-wal", f->path);
  if (stat(p, &st) == 0)
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* ------------------------------------------------------------ events */

struct erows {
  int64_t ts[64];
  int type[64];
  char detail[64][16];
  size_t n;
};

static int collect_event(void *arg, const struct event_record *e) {
  struct erows *c = arg;
  assert_true(c->n < 64);
  assert_non_null(e->container_id);
  assert_non_null(e->container_name);
  assert_non_null(e->detail);
  c->ts[c->n] = e->ts_ns;
  c->type[c->n] = e->type;
  snprintf(c->detail[c->n], sizeof c->detail[0], "%s", e->detail);
  c->n++;
  return 0;
}

static void load_events(struct store *s, int64_t since, unsigned limit, struct erows *c) {
  memset(c, 0, sizeof *c);
  struct qerr err = QERR_INIT;
  int r = store_load_events(s, since, limit, collect_event, c, &err);
  if (r != 0)
    fail_msg("store_load_events: %d %s", r, err.msg);
}

static void test_events(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  struct qerr err = QERR_INIT;
  struct erows *c = malloc(sizeof *c);
  assert_non_null(c);
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 0);
  /* Trimming an empty table is a no-op. */
  assert_int_equal(store_trim_events(s, 5, &err), 0);

  for (int i = 1; i <= 10; i++) {
    char detail[16];
    snprintf(detail, sizeof detail, "e%d", i);
    struct event_record e = {.ts_ns = i * 100, .type = i % 12, .container_id = "abc",
                             .container_name = i % 2 ? "web" : NULL, .detail = detail};
    assert_int_equal(store_add_event(s, &e, &err), 0);
  }
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 10);
  for (size_t i = 0; i < 10; i++) {
    assert_true(c->ts[i] == (int64_t)(i + 1) * 100);
    assert_int_equal(c->type[i], (int)(i + 1) % 12);
  }
  assert_string_equal(c->detail[9], "e10");
  /* since is inclusive */
  load_events(s, 500, 0, c);
  assert_int_equal(c->n, 6);
  assert_true(c->ts[0] == 500);
  load_events(s, 501, 0, c);
  assert_int_equal(c->n, 5);
  assert_true(c->ts[0] == 600);
  load_events(s, INT64_MIN, 0, c);
  assert_int_equal(c->n, 10);
  load_events(s, 2000, 0, c);
  assert_int_equal(c->n, 0);
  /* limit: the oldest first */
  load_events(s, 0, 3, c);
  assert_int_equal(c->n, 3);
  assert_true(c->ts[0] == 100 && c->ts[2] == 300);
  load_events(s, 450, 2, c);
  assert_int_equal(c->n, 2);
  assert_true(c->ts[0] == 500 && c->ts[1] == 600);
  load_events(s, 0, 100, c);
  assert_int_equal(c->n, 10);

  /* Trim keeps the newest rows. */
  assert_int_equal(store_trim_events(s, 20, &err), 0);
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 10);
  assert_int_equal(store_trim_events(s, 10, &err), 0);
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 10);
  assert_int_equal(store_trim_events(s, 4, &err), 0);
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 4);
  assert_true(c->ts[0] == 700 && c->ts[3] == 1000);
  /* New events after a trim are still the newest, even with older stamps
   * (insertion order wins, so a clock step back cannot reorder history). */
  struct event_record e = {.ts_ns = 50, .type = 1, .detail = "late"};
  assert_int_equal(store_add_event(s, &e, &err), 0);
  load_events(s, 0, 0, c);
  assert_int_equal(c->n, 5);
  assert_string_equal(c->detail[4], "late");
  assert_int_equal(store_trim_events(s, 1, &err), 0);
  load_events(s, INT64_MIN, 0, c);
  assert_int_equal(c->n, 1);
  assert_string_equal(c->detail[0], "late");
  assert_int_equal(store_trim_events(s, 0, &err), 0);
  load_events(s, INT64_MIN, 0, c);
  assert_int_equal(c->n, 0);

  /* Survives a reopen. */
  assert_int_equal(store_add_event(s, &e, &err), 0);
  reopen(f);
  load_events(f->s, INT64_MIN, 0, c);
  assert_int_equal(c->n, 1);
  free(c);
}

/* ------------------------------------------------------------ errors */

static int reenter(void *arg, const struct container_record *r) {
  (void)r;
  struct store *s = arg;
  struct qerr err = QERR_INIT;
  int ret = store_load_containers(s, reenter, s, &err);
  assert_int_equal(ret, -EBUSY);
  return 0;
}

static void test_reentrant_load(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  char a[65];
  make_id(a, 'a');
  struct container_record ra = record(a, "x");
  put_ok(s, &ra);
  struct qerr err = QERR_INIT;
  assert_int_equal(store_load_containers(s, reenter, s, &err), 0);
}

/* Restoring rewrites each row from inside the load callback (see
 * containers_restore): every row is still visited once, in order. */
struct rewrite {
  struct store *s;
  unsigned seen;
  char first[65];
};

static int rewrite_row(void *arg, const struct container_record *r) {
  struct rewrite *w = arg;
  if (w->seen++ == 0)
    snprintf(w->first, sizeof w->first, "%s", r->id);
  struct container_record copy = *r;
  copy.state = 3;
  copy.exit_code = 137;
  struct qerr err = QERR_INIT;
  int ret = store_put_container(w->s, &copy, &err);
  if (ret != 0)
    fail_msg("put during load: %d %s", ret, err.msg);
  return 0;
}

static void test_put_during_load(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  char ids[5][65];
  static const char *const names[] = {"a", "", "c", "", "e"};
  for (int i = 0; i < 5; i++) {
    make_id(ids[i], (char)('5' - i)); /* ids sort opposite to creation */
    struct container_record r = record(ids[i], names[i]);
    r.state = 2;
    put_ok(s, &r);
  }
  struct rewrite w = {.s = s};
  struct qerr err = QERR_INIT;
  assert_int_equal(store_load_containers(s, rewrite_row, &w, &err), 0);
  assert_int_equal(w.seen, 5);
  assert_string_equal(w.first, ids[0]);
  struct crows *c = malloc(sizeof *c);
  assert_non_null(c);
  load(s, c);
  assert_int_equal(c->n, 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(c->r[i].id, ids[i]);
    assert_string_equal(c->r[i].name, names[i]);
    assert_int_equal(c->r[i].state, 3);
    assert_int_equal(c->r[i].exit_code, 137);
    assert_memory_equal(c->r[i].spec, spec_bytes, sizeof spec_bytes);
  }
  free(c);
}

static void expect_open_error(const char *path, int code, const char *needle) {
  struct store *s = (struct store *)(uintptr_t)1;
  struct qerr err = QERR_INIT;
  int r = store_open(&s, path, &err);
  if (r != code)
    fail_msg("store_open(%s) = %d, want %d (%s)", path, r, code, err.msg);
  assert_null(s);
  assert_int_equal(err.code, code);
  if (!strstr(err.msg, path) || !strstr(err.msg, needle))
    fail_msg("unhelpful message: %s", err.msg);
}

static void test_open_errors(void **state) {
  struct fixture *f = *state;
  char p[160];
  /* A missing directory is the caller's to create. */
  snprintf(p, sizeof p, "%s/missing/state.db", f->dir);
  expect_open_error(p, -ENOENT, "No such file or directory");
  /* A regular file where the directory should be. */
  snprintf(p, sizeof p, "%s/file", f->dir);
  FILE *fp = fopen(p, "w");
  assert_non_null(fp);
  fputs("not a directory\n", fp);
  fclose(fp);
  char q[192];
  snprintf(q, sizeof q, "%s/state.db", p);
  expect_open_error(q, -ENOTDIR, "Not a directory");
  /* A file that is not a database. */
  expect_open_error(p, -EIO, "not a database");
  unlink(p);
  /* A directory, not a file. */
  expect_open_error(f->dir, -EISDIR, "Is a directory");
}

static void test_open_newer_schema(void **state) {
  struct fixture *f = *state;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  expect_open_error(f->path, -EIO, "schema version 7");
}

/* A directory the daemon cannot write to. root ignores permission bits, so
 * as root the check runs in a child that drops to nobody. */
static void test_open_readonly_dir(void **state) {
  struct fixture *f = *state;
  if (geteuid() != 0) {
    assert_int_equal(chmod(f->dir, 0500), 0);
    expect_open_error(f->path, -EACCES, "Permission denied");
    assert_int_equal(chmod(f->dir, 0700), 0);
    return;
  }
  assert_int_equal(chmod(f->dir, 0755), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgid(65534) < 0 || setuid(65534) < 0)
      _exit(77);
    struct store *s = NULL;
    struct qerr err = QERR_INIT;
    int r = store_open(&s, f->path, &err);
    if (r != -EACCES || s || !strstr(err.msg, f->path) || !strstr(err.msg, "Permission denied")) {
      fprintf(stderr, "store_open as nobody: %d %s\n", r, err.msg);
      _exit(1);
    }
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77)
    skip();
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Batched writes are one transaction: visible to the store at once, on
 * disk only from store_commit; a close without it loses them. */
static void test_batching(void **state) {
  struct fixture *f = *state;
  struct store *s = open_ok(f);
  store_set_batching(s, true);
  char a[65], b[65];
  make_id(a, 'a');
  make_id(b, 'b');
  struct container_record ra = record(a, "first"), rb = record(b, "second");
  put_ok(s, &ra);
  struct crows *c = malloc(sizeof *c);
  load(s, c);
  assert_int_equal(c->n, 1);
  struct qerr err = QERR_INIT;
  assert_int_equal(store_commit(s, &err), 0);
  assert_int_equal(store_commit(s, &err), 0); /* nothing open: no-op */
  put_ok(s, &rb);
  reopen(f); /* closes without committing b */
  load(f->s, c);
  assert_int_equal(c->n, 1);
  assert_string_equal(c->r[0].name, "first");
  /* A failing write inside a batch leaves the rest of it intact. */
  store_set_batching(f->s, true);
  put_ok(f->s, &rb);
  char d[65];
  make_id(d, 'd');
  struct container_record dup = record(d, "second"); /* name taken by b */
  assert_int_not_equal(store_put_container(f->s, &dup, &err), 0);
  assert_int_equal(store_commit(f->s, &err), 0);
  reopen(f);
  load(f->s, c);
  assert_int_equal(c->n, 2);
  free(c);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_put_load_update_delete), T(test_duplicate_name), T(test_persistence),
      T(test_events),                 T(test_reentrant_load), T(test_put_during_load),
      T(test_open_errors),
      T(test_open_newer_schema),      T(test_open_readonly_dir), T(test_batching),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
