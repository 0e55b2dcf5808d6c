/*
 * logs.c - session_logs rows and the per-user event sequence.
 *
 * Appends run on the writer thread (writer.c), which commits many of them
 * in one transaction; nothing here knows about batching.
 */
#include "store.h"

wa_err_t logs__append(db_conn_t *c, const char *user, const char *type,
                      const char *data_json, const char *timestamp, int64_t *id)
{
    sqlite3_stmt *st = db__stmt(c, ST_LOG_INSERT);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = db__bind_text(st, 2, type)) != SQLITE_OK ||
        (rc = db__bind_text(st, 3, data_json)) != SQLITE_OK ||
        (rc = db__bind_text(st, 4, timestamp)) != SQLITE_OK) {
        err = db__fail(c, rc, "log.append bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        err = db__fail(c, rc, "log.append");
        goto out;
    }
    *id = sqlite3_last_insert_rowid(c->h);
out:
    (void)sqlite3_reset(st);
    return err;
}

/*
 * Stored event_data as JSON: the text itself when SQLite's json_valid()
 * (column valid; strict RFC 8259 in SQLite 3.40) vouches for it, so that
 * it is neither parsed nor printed again; else a string of the text (rows
 * not written as JSON). Whoever reads the answer checks it whole anyway.
 */
static cJSON *event_data(sqlite3_stmt *st, int i, int valid)
{
    const char *text;

    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return cJSON_CreateNull();
    if ((text = (const char *)sqlite3_column_text(st, i)) == NULL)
        return NULL;
    if (sqlite3_column_int(st, valid) == 1)
        return cJSON_CreateRaw(text);
    return cJSON_CreateString(text);
}

/* {id, eventType, eventData, timestamp} of a log.list row. */
static cJSON *log_row(sqlite3_stmt *st, void *arg)
{
    cJSON *row = cJSON_CreateObject(), *data;

    (void)arg;
    if (row == NULL ||
        !cJSON_AddItemToObject(row, "id",
                               wa_json_int(sqlite3_column_int64(st, 0))) ||
        !db__add_column(row, "eventType", st, 1))
        goto fail;
    if ((data = event_data(st, 2, 4)) == NULL ||
        !cJSON_AddItemToObject(row, "eventData", data)) {
        cJSON_Delete(data);
        goto fail;
    }
    if (!db__add_column(row, "timestamp", st, 3))
        goto fail;
    return row;
fail:
    cJSON_Delete(row);
    return NULL;
}

wa_err_t logs__list(db_conn_t *c, const char *user, long limit, cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_LOG_LIST);
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, limit)) != SQLITE_OK) {
        (void)sqlite3_reset(st);
        return db__fail(c, rc, "log.list bind");
    }
    return db__list(c, st, "logs", log_row, NULL, "log.list", out);
}

wa_err_t logs__count(db_conn_t *c, int64_t *rows, int64_t *max_id)
{
    sqlite3_stmt *st = db__stmt(c, ST_LOG_COUNT);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = sqlite3_bind_int64(st, 1, *max_id)) != SQLITE_OK) {
        err = db__fail(c, rc, "log count bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        err = db__fail(c, rc, "log count");
        goto out;
    }
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
        *rows += sqlite3_column_int64(st, 0);
        *max_id = sqlite3_column_int64(st, 1);
    }
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t logs__next_seq(db_conn_t *c, const char *user, int64_t *seq)
{
    sqlite3_stmt *st = db__stmt(c, ST_SEQ_NEXT);
    wa_err_t err = WA_OK;
    int64_t v;
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK) {
        err = db__fail(c, rc, "event seq bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        err = db__fail(c, rc, "event seq");
        goto out;
    }
    v = sqlite3_column_int64(st, 0);
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        err = db__fail(c, rc, "event seq");
        goto out;
    }
    *seq = v;
out:
    (void)sqlite3_reset(st);
    return err;
}
