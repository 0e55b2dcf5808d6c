/*
 * store_db_test.c - store-svc/db.c: creating the file and its directories,
 * pragmas, migrations (idempotent, transactional, refusing a newer schema),
 * adopting a database of the original server, prepared statements and the
 * log.list index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_testlib.h"

static void test_creates_dirs_and_file(void **state)
{
    char *dir = tl_tmpdir(), *sub = tl_path(dir, "a"),
         *path = tl_path(dir, "a/b/c/sessions.db");
    struct stat sb;
    db_t *db;

    (void)state;
    db = tl_open(path);
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(db__user_version(&db->wr), DB_SCHEMA_VERSION);
    db__close(db);
    free(sub);
    free(path);
    tl_rmrf(dir);
}

static void test_pragmas(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "p.db");
    sqlite3_stmt *st;
    db_t *db = tl_open(path);

    (void)state;
    assert_int_equal(
        sqlite3_prepare_v2(db->wr.h, "PRAGMA journal_mode", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(tl_scalar(&db->wr, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(tl_scalar(&db->wr, "PRAGMA busy_timeout"), 5000);
    assert_true(tl_scalar(&db->rd, "PRAGMA busy_timeout") > 0);
    /* The read connection cannot write. */
    assert_true(sqlite3_db_readonly(db->rd.h, "main") == 1);
    assert_true(sqlite3_db_readonly(db->wr.h, "main") == 0);
    assert_int_equal(tl_scalar(&db->wr, "PRAGMA journal_size_limit"),
                     64 * 1024 * 1024);
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

/* Checkpoints run on their own thread once the WAL is long, and every
 * committed row stays readable through them and after a reopen. */
static void test_checkpoint_thread(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "c.db");
    char *wal = tl_path(dir, "c.db-wal");
    db_t *db = tl_open(path);
    char data[2048];
    int64_t id;
    FILE *f;

    (void)state;
    memset(data, 'x', sizeof(data) - 3);
    data[0] = '"';
    data[sizeof(data) - 2] = '"';
    data[sizeof(data) - 1] = '\0';
    /* About two pages per row, one row per commit, as the writer would. */
    for (int i = 0; i < 3000 && ckpt__runs(db->ckpt) == 0; i++) {
        assert_int_equal(logs__append(&db->wr, "u", "t", data, "t", &id),
                         WA_OK);
        if (i % 100 == 99)
            usleep(1000);
    }
    for (int i = 0; i < 2000 && ckpt__runs(db->ckpt) == 0; i++)
        usleep(1000);
    assert_true(ckpt__runs(db->ckpt) >= 1);
    assert_int_equal(tl_scalar(&db->rd, "SELECT count(*) FROM session_logs"),
                     id);
    db__close(db);
    /* Closed cleanly: the last connection checkpointed and removed the
     * WAL, and nothing was lost. */
    assert_null(f = fopen(wal, "r"));
    db = tl_open(path);
    assert_int_equal(tl_scalar(&db->rd, "SELECT count(*) FROM session_logs"),
                     id);
    db__close(db);
    free(wal);
    free(path);
    tl_rmrf(dir);
}

static void test_statements_prepared(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "s.db");
    db_t *db = tl_open(path);

    (void)state;
    for (int i = 0; i < ST_COUNT; i++)
        assert_non_null(db->wr.st[i]);
    /* The reader has the reads, and no writes. */
    assert_non_null(db->rd.st[ST_SESSION_GET]);
    assert_non_null(db->rd.st[ST_LOG_LIST]);
    assert_non_null(db->rd.st[ST_LOG_NEWEST]);
    assert_non_null(db->rd.st[ST_PLACEMENT_GET]);
    assert_null(db->rd.st[ST_LOG_INSERT]);
    assert_null(db->rd.st[ST_BEGIN]);
    for (int i = 0; i < ST_COUNT; i++) {
        if (db->rd.st[i] != NULL)
            assert_true(sqlite3_stmt_readonly(db->rd.st[i]));
    }
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

static void test_schema(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "schema.db");
    db_t *db = tl_open(path);

    (void)state;
    /* The two tables of the original server, exactly. */
    assert_int_equal(
        tl_scalar(&db->wr,
                  "SELECT count(*) FROM pragma_table_info('user_sessions')"),
        9);
    assert_int_equal(
        tl_scalar(&db->wr,
                  "SELECT count(*) FROM pragma_table_info('session_logs')"),
        5);
    assert_int_equal(tl_scalar(&db->wr,
                               "SELECT dflt_value = '''disconnected''' FROM "
                               "pragma_table_info('user_sessions') WHERE name "
                               "= 'status'"),
                     1);
    assert_int_equal(tl_scalar(&db->wr,
                               "SELECT count(*) FROM sqlite_schema WHERE "
                               "type = 'table' AND name IN ('event_seq', "
                               "'instances', 'placements')"),
                     3);
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

/* Restart on the same file: rows stay, migrations do nothing again. */
static void test_reopen_keeps_rows(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "r.db");
    session_update_t u = {.phone = {true, "+41791234567"}};
    cJSON *row = NULL;
    int64_t id;
    db_t *db;

    (void)state;
    db = tl_open(path);
    assert_int_equal(
        sessions__upsert(&db->wr, "u1", &u, "2026-01-01T00:00:00Z", &row),
        WA_OK);
    cJSON_Delete(row);
    assert_int_equal(logs__append(&db->wr, "u1", "status", "{}",
                                  "2026-01-01T00:00:00Z", &id),
                     WA_OK);
    db__close(db);

    for (int i = 0; i < 2; i++) {
        db = tl_open(path);
        assert_int_equal(db__user_version(&db->wr), DB_SCHEMA_VERSION);
        assert_int_equal(
            tl_scalar(&db->wr, "SELECT count(*) FROM session_logs"), 1);
        assert_int_equal(sessions__get(&db->rd, "u1", 0, &row), WA_OK);
        assert_string_equal(
            cJSON_GetObjectItem(row, "phoneNumber")->valuestring,
            "+41791234567");
        cJSON_Delete(row);
        db__close(db);
    }
    free(path);
    tl_rmrf(dir);
}

/* Version 3 kept bus_requests keyed (op, user_id, rid); version 4 keys it
 * by rid first. A recorded answer survives the change and is still found. */
static void test_migrates_rid_table(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "v3.db");
    db_t *db = tl_open(path);
    char *reply = NULL;
    uint64_t fp = 0;

    (void)state;
    db__close(db);
    tl_sql(path, "DROP TABLE bus_requests;"
                 "CREATE TABLE bus_requests (op TEXT NOT NULL, user_id TEXT "
                 "NOT NULL, rid TEXT NOT NULL, fingerprint INTEGER NOT NULL, "
                 "reply TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY "
                 "(op, user_id, rid)) WITHOUT ROWID;"
                 "CREATE INDEX bus_requests_at ON bus_requests (at_ms);"
                 "INSERT INTO bus_requests VALUES ('log.append', 'alice', "
                 "'r-1', 42, '{\"id\":7}', 1000);"
                 "ALTER TABLE instances DROP COLUMN lost_reported;"
                 "INSERT INTO instances (instance, url, capacity, "
                 "last_seen_ms, registered_at) VALUES ('i1', 'tcp://x:1', "
                 "5, 1000, '2026-01-01T00:00:00.000Z');"
                 "PRAGMA user_version = 3;");
    db = tl_open(path);
    assert_int_equal(db__user_version(&db->wr), DB_SCHEMA_VERSION);
    assert_int_equal(
        rids__get(&db->wr, WA_OP_LOG_APPEND, "alice", "r-1", &fp, &reply),
        WA_OK);
    assert_int_equal(fp, 42);
    assert_string_equal(reply, "{\"id\":7}");
    free(reply);
    assert_int_equal(
        rids__get(&db->wr, WA_OP_LOG_APPEND, "bob", "r-1", &fp, &reply),
        WA_ENOTFOUND);
    /* Keyed by rid first now. */
    assert_int_equal(
        tl_scalar(&db->wr, "SELECT count(*) FROM pragma_index_xinfo("
                           "'sqlite_autoindex_bus_requests_1') WHERE seqno = "
                           "0 AND name = 'rid'"),
        1);
    assert_int_equal(tl_scalar(&db->wr, "SELECT count(*) FROM sqlite_master "
                                        "WHERE name = 'bus_requests_at'"),
                     1);
    /* 4 -> 5: instances keep their rows, none reported dead yet. */
    assert_int_equal(tl_scalar(&db->wr, "SELECT count(*) FROM instances "
                                        "WHERE lost_reported = 0"),
                     1);
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

/* A database the original Node.js server left (user_version 0, its two
 * tables, rows, a NULL status) is adopted with its rows. */
static void test_adopts_seed_database(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "seed.db");
    cJSON *row = NULL, *logs = NULL;
    db_t *db;

    (void)state;
    tl_sql(path, "CREATE TABLE user_sessions (user_id TEXT PRIMARY KEY, "
                 "phone_number TEXT, display_name TEXT, status TEXT DEFAULT "
                 "'disconnected', qr_code TEXT, connected_at TEXT, "
                 "last_activity TEXT, created_at TEXT, updated_at TEXT);"
                 "CREATE TABLE session_logs (id INTEGER PRIMARY KEY, user_id "
                 "TEXT, event_type TEXT, event_data TEXT, timestamp TEXT);"
                 "INSERT INTO user_sessions (user_id, status, display_name) "
                 "VALUES ('old', 'ready', 'Dr Old'), ('nul', NULL, NULL);"
                 "INSERT INTO session_logs (user_id, event_type, event_data, "
                 "timestamp) VALUES ('old', 'ready', 'not json', 'then');");
    db = tl_open(path);
    assert_int_equal(db__user_version(&db->wr), DB_SCHEMA_VERSION);
    assert_int_equal(sessions__get(&db->rd, "old", 0, &row), WA_OK);
    assert_string_equal(cJSON_GetObjectItem(row, "status")->valuestring,
                        "ready");
    assert_string_equal(cJSON_GetObjectItem(row, "displayName")->valuestring,
                        "Dr Old");
    cJSON_Delete(row);
    assert_int_equal(sessions__get(&db->rd, "nul", 0, &row), WA_OK);
    assert_string_equal(cJSON_GetObjectItem(row, "status")->valuestring,
                        "disconnected");
    cJSON_Delete(row);
    /* Non-JSON event data of older rows comes back as a string. */
    assert_int_equal(logs__list(&db->rd, "old", 10, NULL, &logs), WA_OK);
    logs = tl_as_sent(logs);
    assert_string_equal(
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(logs, "logs"), 0),
            "eventData")
            ->valuestring,
        "not json");
    cJSON_Delete(logs);
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

static void test_refuses_newer_schema(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "new.db");
    char err[512] = "";
    db_t *db = NULL;

    (void)state;
    tl_sql(path, "PRAGMA user_version = 99");
    assert_int_equal(db__open(path, &db, err, sizeof(err)), WA_ESTORAGE);
    assert_null(db);
    assert_non_null(strstr(err, "schema version 99 is newer"));
    assert_null(strchr(err, '\n'));
    /* Untouched. */
    tl_sql(path, "CREATE TABLE probe (x)");
    free(path);
    tl_rmrf(dir);
}

/* A step that fails leaves the file at the previous version, with nothing
 * of the failed step applied. */
static void test_failed_migration_is_rolled_back(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "half.db");
    char err[512] = "";
    sqlite3 *h;
    sqlite3_stmt *st;
    db_t *db = NULL;

    (void)state;
    /* At version 1, with a table the step to 2 will collide with. */
    tl_sql(path, "CREATE TABLE placements (x); PRAGMA user_version = 1");
    assert_int_equal(db__open(path, &db, err, sizeof(err)), WA_ESTORAGE);
    assert_non_null(strstr(err, "migration to schema version 2"));
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(h,
                           "SELECT (SELECT user_version FROM "
                           "pragma_user_version), (SELECT count(*) FROM "
                           "sqlite_schema WHERE name = 'event_seq')",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    free(path);
    tl_rmrf(dir);
}

/* Something that is not a database: refused, and left as it was. */
static void test_not_a_database(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "junk.db");
    char err[512] = "";
    db_t *db = NULL;
    FILE *fp = fopen(path, "w");

    (void)state;
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database. ", fp);
    fclose(fp);
    assert_int_equal(db__open(path, &db, err, sizeof(err)), WA_ESTORAGE);
    assert_null(db);
    assert_non_null(strstr(err, "not a database"));
    free(path);
    tl_rmrf(dir);
}

static void expect_config_error(const char *path)
{
    char err[512] = "";
    db_t *db = NULL;

    assert_int_equal(db__open(path, &db, err, sizeof(err)), WA_ECONFIG);
    assert_null(db);
    assert_non_null(strstr(err, "DB_PATH"));
}

static void test_path_not_a_file(void **state)
{
    char *dir = tl_tmpdir(), *slash = tl_path(dir, "x/");

    (void)state;
    expect_config_error(dir);
    expect_config_error(slash);
    expect_config_error("");
    expect_config_error(":memory:");
    free(slash);
    tl_rmrf(dir);
}

static void test_unwritable_place(void **state)
{
    char *dir = tl_tmpdir(), *file = tl_path(dir, "plain"),
         *under = tl_path(dir, "plain/sub/x.db"), *ro = tl_path(dir, "ro"),
         *in_ro = tl_path(dir, "ro/x/y.db");
    char err[512] = "";
    db_t *db = NULL;
    int fd;

    (void)state;
    fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    /* A regular file where a directory must be. */
    assert_int_equal(db__open(under, &db, err, sizeof(err)), WA_ECONFIG);
    assert_non_null(strstr(err, "DB_PATH: cannot create directory"));
    assert_null(db);
    /* A directory we may not write (root may write anywhere: use /proc,
     * where nothing can be created, instead). */
    assert_int_equal(mkdir(ro, 0500), 0);
    err[0] = '\0';
    assert_int_equal(
        db__open(geteuid() == 0 ? "/proc/wa-store-test/x.db" : in_ro, &db, err,
                 sizeof(err)),
        WA_ECONFIG);
    assert_non_null(strstr(err, "DB_PATH: cannot"));
    assert_null(db);
    free(file);
    free(under);
    free(ro);
    free(in_ro);
    tl_rmrf(dir);
}

/* log.list of one user, newest first, walks the (user_id, id DESC) index:
 * no full scan and no sort, however many rows the table holds. */
static void test_log_list_uses_index(void **state)
{
    char *dir = tl_tmpdir(), *path = tl_path(dir, "idx.db");
    db_t *db = tl_open(path);
    sqlite3_stmt *st;
    cJSON *out = NULL;
    char user[16];
    int64_t id;
    int saw_index = 0;

    (void)state;
    assert_int_equal(sqlite3_prepare_v2(db->wr.h,
                                        "EXPLAIN QUERY PLAN SELECT id, "
                                        "event_type, event_data, timestamp "
                                        "FROM session_logs WHERE user_id = ?1 "
                                        "ORDER BY id DESC LIMIT ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);

        assert_null(strstr(detail, "TEMP B-TREE"));
        if (strstr(detail, "session_logs_user_id") != NULL)
            saw_index = 1;
    }
    sqlite3_finalize(st);
    assert_true(saw_index);

    /* And the real statement, on 200k rows of 1000 users. */
    assert_int_equal(db__exec(&db->wr, ST_BEGIN), WA_OK);
    for (int i = 0; i < 200000; i++) {
        snprintf(user, sizeof(user), "u%d", i % 1000);
        assert_int_equal(logs__append(&db->wr, user, "message", "{}",
                                      "2026-01-01T00:00:00.000Z", &id),
                         WA_OK);
    }
    assert_int_equal(db__exec(&db->wr, ST_COMMIT), WA_OK);
    sqlite3_stmt_status(db->rd.st[ST_LOG_LIST], SQLITE_STMTSTATUS_VM_STEP, 1);
    assert_int_equal(logs__list(&db->rd, "u7", 500, NULL, &out), WA_OK);
    out = tl_as_sent(out);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "logs")), 200);
    assert_int_equal(sqlite3_stmt_status(db->rd.st[ST_LOG_LIST],
                                         SQLITE_STMTSTATUS_FULLSCAN_STEP, 0),
                     0);
    assert_int_equal(
        sqlite3_stmt_status(db->rd.st[ST_LOG_LIST], SQLITE_STMTSTATUS_SORT, 0),
        0);
    /* A few VM steps per row returned, not per row stored. */
    assert_true(sqlite3_stmt_status(db->rd.st[ST_LOG_LIST],
                                    SQLITE_STMTSTATUS_VM_STEP, 0) < 200 * 50);
    /* The log's version: the newest id, read from the index alone. */
    assert_int_equal(
        sqlite3_prepare_v2(db->wr.h,
                           "EXPLAIN QUERY PLAN SELECT id FROM session_logs "
                           "WHERE user_id = ?1 ORDER BY id DESC LIMIT 1",
                           -1, &st, NULL),
        SQLITE_OK);
    saw_index = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);

        if (strstr(detail, "COVERING INDEX session_logs_user_id") != NULL)
            saw_index = 1;
    }
    sqlite3_finalize(st);
    assert_true(saw_index);
    sqlite3_stmt_status(db->rd.st[ST_LOG_NEWEST], SQLITE_STMTSTATUS_VM_STEP, 1);
    assert_int_equal(logs__newest(&db->rd, "u7", &id), WA_OK);
    assert_int_equal(id, 199007 + 1); /* ids start at 1 */
    assert_true(sqlite3_stmt_status(db->rd.st[ST_LOG_NEWEST],
                                    SQLITE_STMTSTATUS_VM_STEP, 0) < 50);
    assert_int_equal(logs__newest(&db->rd, "nobody", &id), WA_OK);
    assert_int_equal(id, 0);
    cJSON_Delete(out);
    db__close(db);
    free(path);
    tl_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creates_dirs_and_file),
        cmocka_unit_test(test_pragmas),
        cmocka_unit_test(test_checkpoint_thread),
        cmocka_unit_test(test_statements_prepared),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_reopen_keeps_rows),
        cmocka_unit_test(test_adopts_seed_database),
        cmocka_unit_test(test_migrates_rid_table),
        cmocka_unit_test(test_refuses_newer_schema),
        cmocka_unit_test(test_failed_migration_is_rolled_back),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_path_not_a_file),
        cmocka_unit_test(test_unwritable_place),
        cmocka_unit_test(test_log_list_uses_index),
    };

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
