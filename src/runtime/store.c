/* Durable daemon state in SQLite; see store.h and docs/state.md.
 *
 * One connection, used from the loop thread only (SQLITE_OPEN_NOMUTEX).
 * Every statement is prepared once in store_open and reset after each use,
 * so a write costs one sqlite3_step. */
#include "runtime/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define STORE_SCHEMA_VERSION 1

static const char schema_v1[] =
    "CREATE TABLE containers ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL DEFAULT 0,"
    " spec BLOB NOT NULL DEFAULT x'',"
    " pid INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT 0,"
    " exit_signal INTEGER NOT NULL DEFAULT 0,"
    " oom_killed INTEGER NOT NULL DEFAULT 0,"
    " failure TEXT NOT NULL DEFAULT '',"
    " created_ns INTEGER NOT NULL DEFAULT 0,"
    " started_ns INTEGER NOT NULL DEFAULT 0,"
    " finished_ns INTEGER NOT NULL DEFAULT 0,"
    " image_id TEXT NOT NULL DEFAULT '',"
    " rootfs TEXT NOT NULL DEFAULT '',"
    " seq INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX containers_name ON containers(name) WHERE name != '';"
    "CREATE UNIQUE INDEX containers_seq ON containers(seq);"
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts_ns INTEGER NOT NULL,"
    " type INTEGER NOT NULL,"
    " container_id TEXT NOT NULL DEFAULT '',"
    " container_name TEXT NOT NULL DEFAULT '',"
    " detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX events_ts ON events(ts_ns);";

enum {
  ST_PUT,
  ST_NAME_OWNER,
  ST_DELETE,
  ST_LOAD,
  ST_EVENT_ADD,
  ST_EVENT_LOAD,
  ST_EVENT_TRIM,
  ST_BEGIN,
  ST_COMMIT,
  ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
    /* The seq of a new row is one past the newest; an update keeps it, so
     * containers load in creation order. */
    [ST_PUT] = "INSERT INTO containers (id, name, state, spec, pid, exit_code, exit_signal,"
               " oom_killed, failure, created_ns, started_ns, finished_ns, image_id, rootfs, seq)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
               " (SELECT COALESCE(MAX(seq), 0) + 1 FROM containers))"
               " ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state,"
               " spec = excluded.spec, pid = excluded.pid, exit_code = excluded.exit_code,"
               " exit_signal = excluded.exit_signal, oom_killed = excluded.oom_killed,"
               " failure = excluded.failure, created_ns = excluded.created_ns,"
               " started_ns = excluded.started_ns, finished_ns = excluded.finished_ns,"
               " image_id = excluded.image_id, rootfs = excluded.rootfs",
    [ST_NAME_OWNER] = "SELECT id FROM containers WHERE name = ?1 AND id != ?2",
    [ST_DELETE] = "DELETE FROM containers WHERE id = ?1",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_LOAD] = "SELECT id, name, state, spec, pid, exit_code, exit_signal, oom_killed, failure,"
                " created_ns, started_ns, finished_ns, image_id, rootfs"
                " FROM containers ORDER BY seq",
    [ST_EVENT_ADD] = "INSERT INTO events (ts_ns, type, container_id, container_name, detail)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)",
    /* LIMIT -1 is no limit. */
    [ST_EVENT_LOAD] = "SELECT ts_ns, type, container_id, container_name, detail FROM events"
                      " WHERE ts_ns >= ?1 ORDER BY seq LIMIT ?2",
    /* Deletes everything up to and including the newest row beyond the
     * first ?1 newest; nothing when there are at most ?1 rows. */
    [ST_EVENT_TRIM] = "DELETE FROM events WHERE seq <= "
                      "(SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
};

struct store {
  sqlite3 *db;
  char *path;
  sqlite3_stmt *st[ST_COUNT];
  bool batching;     /* writes open a transaction that store_commit ends */
};

/* ------------------------------------------------------------ errors */

static int errno_of(sqlite3 *db, int rc) {
  switch (rc & 0xff) {
  case SQLITE_CONSTRAINT:
    return -EEXIST;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_READONLY:
    return -EROFS;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_PERM:
  case SQLITE_AUTH:
    return -EACCES;
  case SQLITE_CANTOPEN: {
    int e = db ? sqlite3_system_errno(db) : 0;
    return e > 0 ? -e : -EIO;
  }
  default:
    return -EIO;
  }
}

/* "state database <path>: <what>: <sqlite message>" */
static int db_err(struct store *s, int rc, struct qerr *err, const char *what) {
  const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
  return qerr_set(err, errno_of(s->db, rc), "state database %s: %s: %s", s->path, what, msg);
}

/* ------------------------------------------------------------ statements */

/* Ready for the next use; drops references to the caller's strings. */
static void stmt_done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static const char *nz(const char *s) { return s ? s : ""; }

static int bind_text(sqlite3_stmt *st, int i, const char *v) {
  return sqlite3_bind_text(st, i, nz(v), -1, SQLITE_STATIC);
}

static const char *col_text(sqlite3_stmt *st, int i) {
  const char *v = (const char *)sqlite3_column_text(st, i);
  return v ? v : "";
}

/* Steps a bound write statement to completion and readies it for reuse. */
/* Before each write: opens the batch's transaction. Unbatched if BEGIN
 * fails: the write is then its own transaction. */
static void begin_batch(struct store *s) {
  if (s->batching && sqlite3_get_autocommit(s->db)) {
    sqlite3_step(s->st[ST_BEGIN]);
    sqlite3_reset(s->st[ST_BEGIN]);
  }
}

static int step_write(struct store *s, sqlite3_stmt *st, struct qerr *err, const char *what) {
  begin_batch(s);
  int rc = sqlite3_step(st);
  int r = rc == SQLITE_DONE ? 0 : db_err(s, rc, err, what);
  stmt_done(st);
  return r;
}

static int exec(struct store *s, const char *sql, struct qerr *err, const char *what) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : db_err(s, rc, err, what);
}

/* Runs a pragma or query that returns a single integer. */
static int query_int(struct store *s, const char *sql, int64_t *v, struct qerr *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return db_err(s, rc, err, sql);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *v = sqlite3_column_int64(st, 0);
  int r = rc == SQLITE_ROW ? 0 : db_err(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc, err, sql);
  sqlite3_finalize(st);
  return r;
}

/* ------------------------------------------------------------ open/close */

static int migrate(struct store *s, struct qerr *err) {
  int64_t version;
  int r = query_int(s, "PRAGMA user_version", &version, err);
  if (r < 0)
    return r;
  if (version == STORE_SCHEMA_VERSION)
    return 0;
  if (version > STORE_SCHEMA_VERSION)
    return qerr_set(err, EIO,
                    "state database %s: schema version %lld is newer than this quiltd "
                    "supports (%d)",
                    s->path, (long long)version, STORE_SCHEMA_VERSION);

  /* Version 0: a new database. IMMEDIATE takes the write lock first, so a
   * second process opening the same file waits and then sees version 1. */
  r = exec(s, "BEGIN IMMEDIATE", err, "starting the schema transaction");
  if (r < 0)
    return r;
  r = query_int(s, "PRAGMA user_version", &version, err);
  if (r == 0 && version == 0) {
    r = exec(s, schema_v1, err, "creating the schema");
    if (r == 0)
      r = exec(s, "PRAGMA user_version = 1", err, "setting the schema version");
  }
  if (r == 0)
    return exec(s, "COMMIT", err, "committing the schema");
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

/* Creates the file 0600 before SQLite sees it: SQLite would create it 0644
 * and gives the -wal and -shm files the database file's mode. */
static int create_file(const char *path, struct qerr *err) {
  cleanup_fd int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return qerr_errno(err, "state database %s: opening", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return qerr_errno(err, "state database %s: stat", path);
  if (!S_ISREG(st.st_mode))
    return qerr_set(err, EINVAL, "state database %s: not a regular file", path);
  /* A new (empty) file: make sure the umask did not leave other bits. */
  if (st.st_size == 0 && (st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0)
    return qerr_errno(err, "state database %s: chmod", path);
  return 0;
}

int store_open(struct store **out, const char *path, struct qerr *err) {
  *out = NULL;
  int r = create_file(path, err);
  if (r < 0)
    return r;

  struct store *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    return qerr_set(err, ENOMEM, "state database %s: out of memory", path);
  }

  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                               SQLITE_OPEN_EXRESCODE,
                           NULL);
  if (rc != SQLITE_OK) {
    r = db_err(s, rc, err, "opening");
    goto fail;
  }
  sqlite3_extended_result_codes(s->db, 1);
  rc = sqlite3_busy_timeout(s->db, 1000);
  if (rc != SQLITE_OK) {
    r = db_err(s, rc, err, "setting the busy timeout");
    goto fail;
  }

  /* One daemon owns the database: holding the lock for good saves the
   * fcntl lock/unlock pairs of every transaction, keeps the WAL index in
   * heap memory, and makes a second quiltd on the same root fail at once. */
  r = exec(s, "PRAGMA locking_mode = EXCLUSIVE", err, "taking the database lock");
  if (r < 0)
    goto fail;

  /* journal_mode answers with the mode in effect; anything but "wal" means
   * the file system cannot do WAL and synchronous=NORMAL would not be safe. */
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
      r = qerr_set(err, EIO, "state database %s: cannot enable WAL (journal mode is %s)", path,
                   mode ? mode : "unknown");
      sqlite3_finalize(st);
      goto fail;
    }
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_OK) {
    r = db_err(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc, err, "enabling WAL");
    goto fail;
  }
  r = exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", err,
           "setting pragmas");
  if (r < 0)
    goto fail;
  /* The default, stated here because docs/state.md relies on it. */
  sqlite3_wal_autocheckpoint(s->db, 1000);

  r = migrate(s, err);
  if (r < 0)
    goto fail;

  for (int i = 0; i < ST_COUNT; i++) {
    rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    if (rc != SQLITE_OK) {
      r = db_err(s, rc, err, "preparing statements");
      goto fail;
    }
  }
  *out = s;
  return 0;

fail:
  store_close(s);
  return r;
}

void store_close(struct store *s) {
  if (!s)
    return;
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(s->st[i]);
  /* With every statement finalized this cannot report SQLITE_BUSY; the last
   * connection to close also checkpoints and removes the WAL. */
  sqlite3_close(s->db);
  free(s->path);
  free(s);
}

/* ------------------------------------------------------------ containers */

/* The put failed on the name index: name the container holding it. Returns
 * -EEXIST with that message, or 0 if no other container has the name. */
static int name_taken(struct store *s, const struct container_record *r, struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_NAME_OWNER];
  bind_text(st, 1, r->name);
  bind_text(st, 2, r->id);
  int rc = sqlite3_step(st);
  int ret = 0;
  if (rc == SQLITE_ROW)
    ret = qerr_set(err, EEXIST, "name \"%s\" is already used by container %.12s", nz(r->name),
                   col_text(st, 0));
  stmt_done(st);
  return ret;
}

int store_put_container(struct store *s, const struct container_record *r, struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_PUT];
  bind_text(st, 1, r->id);
  bind_text(st, 2, r->name);
  sqlite3_bind_int(st, 3, r->state);
  sqlite3_bind_blob64(st, 4, r->spec ? (const void *)r->spec : "", (sqlite3_uint64)r->spec_len,
                      SQLITE_STATIC);
  sqlite3_bind_int(st, 5, r->pid);
  sqlite3_bind_int(st, 6, r->exit_code);
  sqlite3_bind_int(st, 7, r->exit_signal);
  sqlite3_bind_int(st, 8, r->oom_killed);
  bind_text(st, 9, r->failure);
  sqlite3_bind_int64(st, 10, r->created_ns);
  sqlite3_bind_int64(st, 11, r->started_ns);
  sqlite3_bind_int64(st, 12, r->finished_ns);
  bind_text(st, 13, r->image_id);
  bind_text(st, 14, r->rootfs);
  begin_batch(s);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    stmt_done(st);
    return 0;
  }
  char what[96];
  snprintf(what, sizeof what, "saving container %.12s", nz(r->id));
  int ret = db_err(s, rc, err, what);
  stmt_done(st);
  /* An id conflict is the upsert's to resolve and seq is computed, so a
   * unique violation is the name. */
  if (rc == SQLITE_CONSTRAINT_UNIQUE && nz(r->name)[0]) {
    int r2 = name_taken(s, r, err);
    if (r2 < 0)
      return r2;
  }
  return ret;
}

int store_delete_container(struct store *s, const char *id, struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_DELETE];
  bind_text(st, 1, id);
  char what[96];
  snprintf(what, sizeof what, "deleting container %.12s", nz(id));
  return step_write(s, st, err, what);
}

int store_load_containers(struct store *s,
                          int (*fn)(void *arg, const struct container_record *r), void *arg,
                          struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_LOAD];
  if (sqlite3_stmt_busy(st))
    return qerr_set(err, EBUSY, "state database %s: containers are already being loaded",
                    s->path);
  int rc, r = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct container_record c = {
        .id = col_text(st, 0),
        .name = col_text(st, 1),
        .state = sqlite3_column_int(st, 2),
        .spec = sqlite3_column_blob(st, 3),
        .spec_len = (size_t)sqlite3_column_bytes(st, 3),
        .pid = sqlite3_column_int(st, 4),
        .exit_code = sqlite3_column_int(st, 5),
        .exit_signal = sqlite3_column_int(st, 6),
        .oom_killed = sqlite3_column_int(st, 7) != 0,
        .failure = col_text(st, 8),
        .created_ns = sqlite3_column_int64(st, 9),
        .started_ns = sqlite3_column_int64(st, 10),
        .finished_ns = sqlite3_column_int64(st, 11),
        .image_id = col_text(st, 12),
        .rootfs = col_text(st, 13),
    };
    r = fn(arg, &c);
    if (r < 0)
      break;
  }
  if (r >= 0 && rc != SQLITE_DONE)
    r = db_err(s, rc, err, "loading containers");
  stmt_done(st);
  return r < 0 ? r : 0;
}

/* ------------------------------------------------------------ events */

int store_add_event(struct store *s, const struct event_record *e, struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_EVENT_ADD];
  sqlite3_bind_int64(st, 1, e->ts_ns);
  sqlite3_bind_int(st, 2, e->type);
  bind_text(st, 3, e->container_id);
  bind_text(st, 4, e->container_name);
  bind_text(st, 5, e->detail);
  return step_write(s, st, err, "adding an event");
}

int store_load_events(struct store *s, int64_t since_ns, unsigned limit,
                      int (*fn)(void *arg, const struct event_record *e), void *arg,
                      struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_EVENT_LOAD];
  if (sqlite3_stmt_busy(st))
    return qerr_set(err, EBUSY, "state database %s: events are already being loaded", s->path);
  sqlite3_bind_int64(st, 1, since_ns);
  sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
  int rc, r = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct event_record e = {
        .ts_ns = sqlite3_column_int64(st, 0),
        .type = sqlite3_column_int(st, 1),
        .container_id = col_text(st, 2),
        .container_name = col_text(st, 3),
        .detail = col_text(st, 4),
    };
    r = fn(arg, &e);
    if (r < 0)
      break;
  }
  if (r >= 0 && rc != SQLITE_DONE)
    r = db_err(s, rc, err, "loading events");
  stmt_done(st);
  return r < 0 ? r : 0;
}

int store_trim_events(struct store *s, unsigned max_rows, struct qerr *err) {
  sqlite3_stmt *st = s->st[ST_EVENT_TRIM];
  sqlite3_bind_int64(st, 1, (int64_t)max_rows);
  return step_write(s, st, err, "trimming events");
}

void store_set_batching(struct store *s, bool on) { s->batching = on; }

int store_commit(struct store *s, struct qerr *err) {
  if (sqlite3_get_autocommit(s->db))
    return 0;
  int rc = sqlite3_step(s->st[ST_COMMIT]);
  sqlite3_reset(s->st[ST_COMMIT]);
  if (rc == SQLITE_DONE)
    return 0;
  int r = db_err(s, rc, err, "committing state changes");
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}
