/*
 * db.c - the SQLite file: open, pragmas, migrations, prepared statements.
 *
 * Durability: WAL with synchronous=FULL on the write connection. Every
 * mutation is committed by the writer thread in group-committed batches
 * (writer.c), so one WAL sync covers many rows and FULL costs little; we
 * keep the stronger mode for logs too rather than run a second writer
 * connection at NORMAL, which would contend for the same WAL write lock.
 * The read connection only reads, so its synchronous setting is moot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "wa/log.h"

/* How long a connection waits for a lock held by another connection. */
#define BUSY_TIMEOUT_MS 5000

/*
 * Migrations: migrations[i] takes the schema from version i to i + 1 and
 * sets user_version itself, inside the same transaction, so a step is
 * applied entirely or not at all. SQL here is constant text: nothing is
 * ever built from input.
 *
 * Version 1 is the schema of the original Node.js server, created only if
 * absent so that a database it left behind is adopted with its rows.
 */
static const char *const migrations[DB_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE IF NOT EXISTS user_sessions (user_id TEXT PRIMARY KEY, "
    "phone_number TEXT, display_name TEXT, status TEXT DEFAULT "
    "'disconnected', qr_code TEXT, connected_at TEXT, last_activity TEXT, "
    "created_at TEXT, updated_at TEXT);"
    "CREATE TABLE IF NOT EXISTS session_logs (id INTEGER PRIMARY KEY, "
    "user_id TEXT, event_type TEXT, event_data TEXT, timestamp TEXT);"
    /* log.list: one user's rows newest first, an index range scan. */
    "CREATE INDEX IF NOT EXISTS session_logs_user_id "
    "ON session_logs (user_id, id DESC);"
    "PRAGMA user_version = 1;",
    /* 1 -> 2: event sequences, the instance registry, placements. */
    "CREATE TABLE event_seq (user_id TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE instances (instance TEXT PRIMARY KEY, url TEXT NOT NULL, "
    "capacity INTEGER NOT NULL, sessions INTEGER NOT NULL DEFAULT 0, "
    "last_seen_ms INTEGER NOT NULL, registered_at TEXT NOT NULL) "
    "WITHOUT ROWID;"
    "CREATE TABLE placements (user_id TEXT PRIMARY KEY, "
    "instance TEXT NOT NULL, placed_at TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX placements_instance ON placements (instance, user_id);"
    "PRAGMA user_version = 2;",
    /* 2 -> 3: the answers of writes that must never run twice (rids.c). */
    "CREATE TABLE bus_requests (op TEXT NOT NULL, user_id TEXT NOT NULL, "
    "rid TEXT NOT NULL, fingerprint INTEGER NOT NULL, reply TEXT NOT NULL, "
    "at_ms INTEGER NOT NULL, PRIMARY KEY (op, user_id, rid)) WITHOUT ROWID;"
    "CREATE INDEX bus_requests_at ON bus_requests (at_ms);"
    "PRAGMA user_version = 3;",
    /* 3 -> 4: bus_requests keyed by rid first. Our rids begin with their
     * creation time (wa_rid_new), so new keys land at one end of the
     * table instead of one random leaf each (bench/store_bench.sh,
     * docs/architecture.md). */
    "CREATE TABLE bus_requests_v4 (rid TEXT NOT NULL, op TEXT NOT NULL, "
    "user_id TEXT NOT NULL, fingerprint INTEGER NOT NULL, reply TEXT NOT "
    "NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (rid, op, user_id)) "
    "WITHOUT ROWID;"
    "INSERT INTO bus_requests_v4 (rid, op, user_id, fingerprint, reply, "
    "at_ms) SELECT rid, op, user_id, fingerprint, reply, at_ms FROM "
    "bus_requests;"
    "DROP TABLE bus_requests;"
    "ALTER TABLE bus_requests_v4 RENAME TO bus_requests;"
    "CREATE INDEX bus_requests_at ON bus_requests (at_ms);"
    "PRAGMA user_version = 4;",
    /* 4 -> 5: whether an instance's death was reported to its users
     * (placement__lost); a registration clears it. */
    "ALTER TABLE instances ADD COLUMN lost_reported INTEGER NOT NULL "
    "DEFAULT 0;"
    "PRAGMA user_version = 5;",
};

#define SESSION_COLS                                                           \
    "user_id, status, phone_number, display_name, qr_code, connected_at, "     \
    "last_activity, created_at, updated_at"

/* Which connections prepare a statement. */
#define ON_WR 1
#define ON_RD 2

static const struct {
    const char *sql;
    int on;
} statements[ST_COUNT] = {
    [ST_BEGIN] = {"BEGIN IMMEDIATE", ON_WR},
    [ST_COMMIT] = {"COMMIT", ON_WR},
    [ST_ROLLBACK] = {"ROLLBACK", ON_WR},
    [ST_SAVEPOINT] = {"SAVEPOINT job", ON_WR},
    [ST_RELEASE] = {"RELEASE job", ON_WR},
    [ST_ROLLBACK_TO] = {"ROLLBACK TO job", ON_WR},
    /* ?2: the oldest last_seen_ms still alive. The last column: 1 if the
     * user is placed on a live instance, 0 on a dead one, NULL unplaced. */
    [ST_SESSION_GET] = {"SELECT " SESSION_COLS ", (SELECT i.last_seen_ms >= "
                        "?2 FROM placements p JOIN instances i ON i.instance "
                        "= p.instance WHERE p.user_id = ?1) FROM "
                        "user_sessions WHERE user_id = ?1",
                        ON_WR | ON_RD},
    /* ?1 user; then per field a value and a "set" flag: ?2/?3 status,
     * ?4/?5 phone, ?6/?7 name, ?8/?9 qr, ?10/?11 connected_at,
     * ?12/?13 last_activity; ?14 now. */
    [ST_SESSION_UPSERT] =
        {"INSERT INTO user_sessions (" SESSION_COLS ") VALUES (?1, "
         "CASE WHEN ?3 THEN ?2 ELSE 'disconnected' END, ?4, ?6, ?8, ?10, "
         "?12, ?14, ?14) ON CONFLICT (user_id) DO UPDATE SET "
         "status = CASE WHEN ?3 THEN ?2 ELSE status END, "
         "phone_number = CASE WHEN ?5 THEN ?4 ELSE phone_number END, "
         "display_name = CASE WHEN ?7 THEN ?6 ELSE display_name END, "
         "qr_code = CASE WHEN ?9 THEN ?8 ELSE qr_code END, "
         "connected_at = CASE WHEN ?11 THEN ?10 ELSE connected_at END, "
         "last_activity = CASE WHEN ?13 THEN ?12 ELSE last_activity END, "
         "updated_at = ?14 RETURNING " SESSION_COLS,
         ON_WR},
    /* No QR codes in the list: up to 64 KiB each, and nobody's business
     * but their user's (session.get). */
    [ST_SESSION_LIST] = {"SELECT s.user_id, s.status, s.phone_number, "
                         "s.display_name, NULL, s.connected_at, "
                         "s.last_activity, s.created_at, s.updated_at, "
                         "p.instance, i.last_seen_ms >= ?3 FROM "
                         "user_sessions s LEFT JOIN placements p ON "
                         "p.user_id = s.user_id LEFT JOIN instances i ON "
                         "i.instance = p.instance "
                         "ORDER BY s.user_id LIMIT ?1 OFFSET ?2",
                         ON_WR | ON_RD},
    [ST_SESSION_COUNT] = {"SELECT coalesce(status, 'disconnected'), count(*) "
                          "FROM user_sessions GROUP BY 1",
                          ON_WR | ON_RD},
    [ST_LOG_INSERT] = {"INSERT INTO session_logs (user_id, event_type, "
                       "event_data, timestamp) VALUES (?1, ?2, ?3, ?4)",
                       ON_WR},
    [ST_LOG_LIST] = {"SELECT id, event_type, event_data, timestamp "
                     "FROM session_logs "
                     "WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
                     ON_WR | ON_RD},
    /* The first entry of the user's range in the index: no table read. */
    [ST_LOG_NEWEST] = {"SELECT id FROM session_logs WHERE user_id = ?1 "
                       "ORDER BY id DESC LIMIT 1",
                       ON_WR | ON_RD},
    /* A rowid range: from the last id counted to the end. */
    [ST_LOG_COUNT] = {"SELECT count(*), max(id) FROM session_logs WHERE "
                      "id > ?1",
                      ON_WR | ON_RD},
    [ST_SEQ_NEXT] = {"INSERT INTO event_seq (user_id, seq) VALUES (?1, 1) "
                     "ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1 "
                     "RETURNING seq",
                     ON_WR},
    [ST_INSTANCE_UPSERT] = {"INSERT INTO instances (instance, url, capacity, "
                            "sessions, last_seen_ms, registered_at) VALUES "
                            "(?1, ?2, ?3, 0, ?4, ?5) ON CONFLICT (instance) "
                            "DO UPDATE SET url = excluded.url, capacity = "
                            "excluded.capacity, last_seen_ms = "
                            "excluded.last_seen_ms, registered_at = "
                            "excluded.registered_at, lost_reported = 0",
                            ON_WR},
    /* ?4: the oldest last_seen_ms still alive. */
    [ST_INSTANCE_HEARTBEAT] = {"UPDATE instances SET sessions = ?2, "
                               "last_seen_ms = ?3 WHERE instance = ?1 AND "
                               "last_seen_ms >= ?4",
                               ON_WR},
    [ST_INSTANCE_LIST] = {"SELECT instance, url, capacity, sessions, "
                          "last_seen_ms FROM instances ORDER BY instance",
                          ON_WR | ON_RD},
    /* Load = users placed there whose session is not disconnected: a
     * placement outlives its session (so a relaunch lands on the same
     * profile owner), but only live sessions take a browser slot. */
    [ST_INSTANCE_LIVE] = {"SELECT i.instance, i.url, i.capacity, (SELECT "
                          "count(*) FROM placements p LEFT JOIN "
                          "user_sessions s ON s.user_id = p.user_id WHERE "
                          "p.instance = i.instance AND coalesce(s.status, "
                          "'disconnected') <> 'disconnected') FROM "
                          "instances i WHERE i.last_seen_ms >= ?1",
                          ON_WR},
    [ST_INSTANCE_COUNT] = {"SELECT count(*), count(*) FILTER (WHERE "
                           "last_seen_ms >= ?1) FROM instances",
                           ON_WR | ON_RD},
    [ST_PLACEMENT_GET] = {"SELECT p.instance, i.url, i.last_seen_ms FROM "
                          "placements p LEFT JOIN instances i ON i.instance "
                          "= p.instance WHERE p.user_id = ?1",
                          ON_WR | ON_RD},
    [ST_PLACEMENT_PUT] = {"INSERT INTO placements (user_id, instance, "
                          "placed_at) VALUES (?1, ?2, ?3) ON CONFLICT "
                          "(user_id) DO UPDATE SET instance = "
                          "excluded.instance, placed_at = excluded.placed_at",
                          ON_WR},
    [ST_PLACEMENT_USERS] = {"SELECT user_id FROM placements WHERE instance = "
                            "?1 ORDER BY user_id",
                            ON_WR | ON_RD},
    /* ?1: the newest last_seen_ms that counts as long dead; ?2 at most.
     * Driven by the few instance rows (never deleted), through the
     * placements_instance index: next to nothing while all are alive. */
    [ST_PLACEMENT_ORPHANS] = {"SELECT p.user_id FROM instances i JOIN "
                              "placements p ON p.instance = i.instance JOIN "
                              "user_sessions s ON s.user_id = p.user_id "
                              "WHERE i.last_seen_ms < ?1 AND s.status <> "
                              "'disconnected' LIMIT ?2",
                              ON_WR},
    /* ?1 the live instance, ?2 the newest last_seen_ms of one gone. Dead
     * since ever (0): its users move at once; one already superseded is
     * not counted again. */
    [ST_INSTANCE_SUPERSEDE] = {"UPDATE instances SET last_seen_ms = 0 WHERE "
                               "url = (SELECT url FROM instances WHERE "
                               "instance = ?1) AND instance <> ?1 AND "
                               "last_seen_ms > 0 AND last_seen_ms < ?2",
                               ON_WR},
    /* ?1 the newest last_seen_ms of one dead. Not one superseded (0):
     * its users move at once to the instance that replaced it. */
    [ST_INSTANCE_LOST] = {"SELECT instance FROM instances WHERE "
                          "last_seen_ms > 0 AND last_seen_ms < ?1 AND "
                          "lost_reported = 0 ORDER BY instance LIMIT ?2",
                          ON_WR},
    [ST_INSTANCE_LOST_MARK] = {"UPDATE instances SET lost_reported = 1 "
                               "WHERE instance = ?1",
                               ON_WR},
    /* Users placed on ?1 whose stored session was running there. */
    [ST_PLACEMENT_RUNNING] = {"SELECT p.user_id FROM placements p JOIN "
                              "user_sessions s ON s.user_id = p.user_id "
                              "WHERE p.instance = ?1 AND s.status IN "
                              "('initializing', 'qr', 'authenticated', "
                              "'ready') ORDER BY p.user_id LIMIT ?2",
                              ON_WR},
    [ST_RID_GET] = {"SELECT fingerprint, reply FROM bus_requests WHERE rid = "
                    "?3 AND op = ?1 AND user_id = ?2",
                    ON_WR},
    [ST_RID_PUT] = {"INSERT INTO bus_requests (op, user_id, rid, fingerprint, "
                    "reply, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    ON_WR},
    [ST_RID_PRUNE] = {"DELETE FROM bus_requests WHERE at_ms < ?1", ON_WR},
};

static _Thread_local const char *current_rid;

void db__set_rid(const char *rid)
{
    current_rid = rid;
}

wa_err_t db__fail(db_conn_t *c, int rc, const char *what)
{
    wa_error(current_rid, "sqlite: %s: %s (%d)", what,
             c != NULL && c->h != NULL ? sqlite3_errmsg(c->h)
                                       : sqlite3_errstr(rc),
             rc);
    return (rc & 0xff) == SQLITE_NOMEM ? WA_ENOMEM : WA_ESTORAGE;
}

sqlite3_stmt *db__stmt(db_conn_t *c, db_stmt_t id)
{
    sqlite3_stmt *st = c->st[id];

    /* Both only report the previous step's error, already handled. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    return st;
}

wa_err_t db__exec(db_conn_t *c, db_stmt_t id)
{
    sqlite3_stmt *st = db__stmt(c, id);
    int rc = sqlite3_step(st);
    wa_err_t err = WA_OK;

    if (rc != SQLITE_DONE)
        err = db__fail(c, rc, statements[id].sql);
    (void)sqlite3_reset(st);
    return err;
}

int db__bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

cJSON *db__column_string(sqlite3_stmt *st, int i)
{
    const unsigned char *s;

    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return cJSON_CreateNull();
    if ((s = sqlite3_column_text(st, i)) == NULL)
        return NULL; /* out of memory converting the value */
    return cJSON_CreateString((const char *)s);
}

bool db__add_column(cJSON *obj, const char *key, sqlite3_stmt *st, int i)
{
    cJSON *v = db__column_string(st, i);

    if (v == NULL || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

wa_err_t db__list(db_conn_t *c, sqlite3_stmt *st, const char *key,
                  db_row_fn row, void *arg, const char *what, cJSON **out)
{
    cJSON *res, *arr, *item;
    wa_err_t err = WA_OK;
    int rc;

    if ((res = cJSON_CreateObject()) == NULL ||
        (arr = cJSON_AddArrayToObject(res, key)) == NULL) {
        err = WA_ENOMEM;
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((item = row(st, arg)) == NULL || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            err = WA_ENOMEM;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        err = db__fail(c, rc, what);
        goto out;
    }
    *out = res;
    res = NULL;
out:
    (void)sqlite3_reset(st);
    cJSON_Delete(res);
    return err;
}

db_conn_t *db__read_begin(db_t *db)
{
    pthread_mutex_lock(&db->rd_mu);
    return &db->rd;
}

void db__read_end(db_t *db)
{
    pthread_mutex_unlock(&db->rd_mu);
}

void db__release_memory(db_t *db)
{
    if (db == NULL)
        return;
    (void)sqlite3_db_release_memory(db__read_begin(db)->h);
    db__read_end(db);
    ckpt__release_memory(db->ckpt);
}

int db__user_version(db_conn_t *c)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_prepare_v2(c->h, "PRAGMA user_version", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- opening ---- */

/* mkdir -p of path's parent directories, new ones mode 0700; a failure is
 * a DB_PATH that cannot be (WA_ECONFIG). */
static wa_err_t make_parents(const char *path, char *err, size_t errlen)
{
    char *dir = strdup(path);
    wa_err_t rv = WA_OK;
    char *p;

    if (dir == NULL) {
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    if ((p = strrchr(dir, '/')) == NULL || p == dir)
        goto out; /* in the working directory, or directly under / */
    *p = '\0';
    for (p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        goto fail;
    goto out;
fail:
    snprintf(err, errlen, "DB_PATH: cannot create directory %s: %s", dir,
             strerror(errno));
    rv = WA_ECONFIG;
out:
    free(dir);
    return rv;
}

/*
 * Refuse what cannot be a database file (a configuration error), then
 * create the file 0600 if it does not exist: SQLite would use 0644, and
 * gives the -wal and -shm files the mode of the database.
 */
static wa_err_t prepare_file(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    size_t len = strlen(path);
    wa_err_t rv;
    int fd;

    if (len == 0 || path[len - 1] == '/' || strcmp(path, ":memory:") == 0 ||
        (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        snprintf(err, errlen, "DB_PATH: %s is not a database file path", path);
        return WA_ECONFIG;
    }
    if ((rv = make_parents(path, err, errlen)) != WA_OK)
        return rv;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ELOOP)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600); /* a symlink */
    if (fd < 0) {
        /* A place we may not, or cannot, write is the configuration's
         * fault; anything else (EIO, ENOSPC...) the storage's. */
        rv = errno == EACCES || errno == EPERM || errno == EROFS ||
                     errno == ENOTDIR || errno == ENOENT || errno == EISDIR
                 ? WA_ECONFIG
                 : WA_ESTORAGE;
        snprintf(err, errlen, "%scannot open %s: %s",
                 rv == WA_ECONFIG ? "DB_PATH: " : "", path, strerror(errno));
        return rv;
    }
    close(fd);
    return WA_OK;
}

/* One line about a failing call on connection c into err. */
static wa_err_t conn_err(db_conn_t *c, int rc, const char *what, char *err,
                         size_t errlen)
{
    snprintf(err, errlen, "%s: %s%s", what,
             c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc),
             (rc & 0xff) == SQLITE_BUSY
                 ? " (another process has it open: only one store-svc may "
                   "use a database, and nothing else while it runs)"
                 : "");
    return (rc & 0xff) == SQLITE_NOMEM ? WA_ENOMEM : WA_ESTORAGE;
}

/* Run a constant pragma that returns no row we need. */
static int pragma(db_conn_t *c, const char *sql)
{
    return sqlite3_exec(c->h, sql, NULL, NULL, NULL);
}

static wa_err_t set_wal(db_conn_t *c, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *mode;
    wa_err_t rv = WA_OK;
    int rc;

    rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW) {
        rv = conn_err(c, rc, "PRAGMA journal_mode", err, errlen);
        goto out;
    }
    mode = sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
        snprintf(err, errlen, "cannot use WAL journal mode (got %s)",
                 mode != NULL ? (const char *)mode : "nothing");
        rv = WA_ESTORAGE;
    }
out:
    sqlite3_finalize(st);
    return rv;
}

/* Apply every migration above the file's version, each in a transaction. */
static wa_err_t migrate(db_conn_t *c, char *err, size_t errlen)
{
    int version, rc;

    for (;;) {
        if ((rc = pragma(c, "BEGIN IMMEDIATE")) != SQLITE_OK)
            return conn_err(c, rc, "migration", err, errlen);
        version = db__user_version(c);
        if (version < 0) {
            (void)pragma(c, "ROLLBACK");
            snprintf(err, errlen, "cannot read the schema version: %s",
                     sqlite3_errmsg(c->h));
            return WA_ESTORAGE;
        }
        if (version > DB_SCHEMA_VERSION) {
            (void)pragma(c, "ROLLBACK");
            snprintf(err, errlen,
                     "database schema version %d is newer than this "
                     "store-svc knows (%d): refusing to open it",
                     version, DB_SCHEMA_VERSION);
            return WA_ESTORAGE;
        }
        if (version == DB_SCHEMA_VERSION)
            break;
        if ((rc = pragma(c, migrations[version])) != SQLITE_OK) {
            snprintf(err, errlen, "migration to schema version %d: %s",
                     version + 1, sqlite3_errmsg(c->h));
            (void)pragma(c, "ROLLBACK");
            return WA_ESTORAGE;
        }
        if ((rc = pragma(c, "COMMIT")) != SQLITE_OK) {
            snprintf(err, errlen, "migration to schema version %d: %s",
                     version + 1, sqlite3_errmsg(c->h));
            (void)pragma(c, "ROLLBACK");
            return WA_ESTORAGE;
        }
        wa_info(NULL, "database migrated to schema version %d", version + 1);
    }
    if ((rc = pragma(c, "COMMIT")) != SQLITE_OK)
        return conn_err(c, rc, "migration", err, errlen);
    return WA_OK;
}

static wa_err_t prepare_all(db_conn_t *c, int on, char *err, size_t errlen)
{
    int rc;

    for (int i = 0; i < ST_COUNT; i++) {
        if (!(statements[i].on & on))
            continue;
        rc = sqlite3_prepare_v3(c->h, statements[i].sql, -1,
                                SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "preparing \"%s\": %s", statements[i].sql,
                     sqlite3_errmsg(c->h));
            return WA_ESTORAGE;
        }
    }
    return WA_OK;
}

static void conn_close(db_conn_t *c)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(c->st[i]); /* NULL is a no-op */
        c->st[i] = NULL;
    }
    if (c->h != NULL && sqlite3_close(c->h) != SQLITE_OK)
        wa_error(NULL, "sqlite: close: %s", sqlite3_errmsg(c->h));
    c->h = NULL;
}

static wa_err_t conn_open(db_conn_t *c, const char *path, int flags, char *err,
                          size_t errlen)
{
    int rc;

    /* NOMUTEX: each connection is used by one thread at a time (store.h). */
    rc = sqlite3_open_v2(path, &c->h,
                         flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                         STORE_DB_VFS);
    if (rc != SQLITE_OK)
        return conn_err(c, rc, path, err, errlen);
    if ((rc = sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS)) != SQLITE_OK)
        return conn_err(c, rc, "busy_timeout", err, errlen);
    return WA_OK;
}

wa_err_t db__open(const char *path, db_t **out, char *err, size_t errlen)
{
    db_t *db;
    wa_err_t rv;
    int rc;

    if (path == NULL || out == NULL) {
        snprintf(err, errlen, "no database path");
        return WA_EINVAL;
    }
    if (!sqlite3_threadsafe()) {
        snprintf(err, errlen, "SQLite was built without thread support");
        return WA_ESTORAGE;
    }
    if ((rv = prepare_file(path, err, errlen)) != WA_OK)
        return rv;
    if ((db = calloc(1, sizeof(*db))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    if ((db->path = strdup(path)) == NULL ||
        pthread_mutex_init(&db->rd_mu, NULL) != 0) {
        free(db->path);
        free(db);
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }

    if ((rv = conn_open(&db->wr, path, SQLITE_OPEN_READWRITE, err, errlen)) !=
        WA_OK)
        goto fail;
    if ((rv = set_wal(&db->wr, err, errlen)) != WA_OK)
        goto fail;
    if ((rc = pragma(&db->wr, "PRAGMA synchronous = FULL")) != SQLITE_OK) {
        rv = conn_err(&db->wr, rc, "PRAGMA synchronous", err, errlen);
        goto fail;
    }
    /* A WAL file that grew under a burst is cut back to this once it
     * starts over (checkpoint.c). */
    if ((rc = pragma(&db->wr, "PRAGMA journal_size_limit = 67108864")) !=
        SQLITE_OK) {
        rv = conn_err(&db->wr, rc, "PRAGMA journal_size_limit", err, errlen);
        goto fail;
    }
    if ((rv = migrate(&db->wr, err, errlen)) != WA_OK)
        goto fail;
    if ((rv = prepare_all(&db->wr, ON_WR, err, errlen)) != WA_OK)
        goto fail;

    /* The reader opens after the writer made the file a WAL database. */
    if ((rv = conn_open(&db->rd, path, SQLITE_OPEN_READONLY, err, errlen)) !=
        WA_OK)
        goto fail;
    if ((rv = prepare_all(&db->rd, ON_RD, err, errlen)) != WA_OK)
        goto fail;
    if ((rv = ckpt__start(path, db->wr.h, &db->ckpt, err, errlen)) != WA_OK)
        goto fail;
    *out = db;
    return WA_OK;

fail:
    db__close(db);
    return rv;
}

void db__close(db_t *db)
{
    if (db == NULL)
        return;
    conn_close(&db->rd);
    conn_close(&db->wr); /* its commit hook names the checkpointer */
    ckpt__free(db->ckpt);
    pthread_mutex_destroy(&db->rd_mu);
    free(db->path);
    free(db);
}
