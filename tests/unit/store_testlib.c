/* store_testlib.c - see store_testlib.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_testlib.h"
#include "wa/log.h"

char *tl_tmpdir(void)
{
    const char *base = "/tmp";
    char *dir;

    assert_true(asprintf(&dir, "%s/store_test.XXXXXX", base) > 0);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tl_rmrf(char *dir)
{
    if (dir == NULL)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

char *tl_path(const char *dir, const char *name)
{
    char *p;

    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

db_t *tl_open(const char *path)
{
    char err[512] = "";
    db_t *db = NULL;
    wa_err_t rv = db__open(path, &db, err, sizeof(err));

    if (rv != WA_OK)
        fail_msg("db__open(%s): %s: %s", path, wa_strerror(rv), err);
    return db;
}

void tl_sql(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

long long tl_scalar(db_conn_t *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v;

    assert_int_equal(sqlite3_prepare_v2(c->h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void tl_quiet(void)
{
    wa_log_init("store-test", WA_LOG_ERROR);
}

cJSON *tl_as_sent(cJSON *res)
{
    char *text = cJSON_PrintUnformatted(res);
    cJSON *back;

    assert_non_null(text);
    back = cJSON_Parse(text);
    assert_non_null(back);
    free(text);
    cJSON_Delete(res);
    return back;
}
