/*
 * logs.c - session_logs rows and the per-user event sequence.
 *
 * Appends run on the writer thread (writer.c), which commits many of them
 * in one transaction; nothing here knows about batching.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wa/json.h"

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

/* A text column as a JSON string, or null. */
static void text_column(wa_json_buf_t *b, sqlite3_stmt *st, int i)
{
    wa_json_buf_string(b, sqlite3_column_type(st, i) == SQLITE_NULL
                              ? NULL
                              : (const char *)sqlite3_column_text(st, i));
}

/*
 * Stored event_data as JSON: the text itself when it is exactly one JSON
 * value by proto's checker (the one every reader of the answer applies,
 * stricter than SQLite's json_valid(): no \u0000, no lone surrogates), so
 * that it is neither parsed nor printed again; else a string of the text
 * (rows not written as JSON). A row that passed json_valid() but not the
 * reader's check would make the user's whole answer unreadable.
 */
static void event_data(wa_json_buf_t *b, sqlite3_stmt *st, int i)
{
    const char *text;
    size_t n;

    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        wa_json_buf_lit(b, "null");
        return;
    }
    if ((text = (const char *)sqlite3_column_text(st, i)) == NULL) {
        b->failed = true; /* SQLite could not allocate the text */
        return;
    }
    n = (size_t)sqlite3_column_bytes(st, i);
    if (wa_json_check(text, n, NULL) == WA_OK)
        wa_json_buf_add(b, text, n);
    else
        wa_json_buf_string(b, text);
}

/*
 * {"logs":[{id, eventType, eventData, timestamp},...]}, newest first, and
 * with epoch ,"version":"<epoch>.<newest id>", written as text: the answer
 * is relayed as it is by the gateway (it is the GET /logs body), so a tree
 * would be built here only to be printed. *out is a cJSON raw node holding
 * that text.
 */
wa_err_t logs__list(db_conn_t *c, const char *user, long limit,
                    const char *epoch, cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_LOG_LIST);
    wa_json_buf_t b = {0};
    wa_err_t err = WA_OK;
    const char *sep = "";
    char *text = NULL, version[STORE_VERSION_MAX + 1];
    int64_t newest = 0;
    int rc;

    *out = NULL;
    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, limit)) != SQLITE_OK) {
        err = db__fail(c, rc, "log.list bind");
        goto out;
    }
    /* A typical row (an event without a message body) is ~150 bytes. */
    wa_json_buf_reserve(&b, (size_t)limit * 160 + 64);
    wa_json_buf_lit(&b, "{\"logs\":[");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);

        if (newest == 0) /* ids start at 1: the first row, the newest */
            newest = id;
        wa_json_buf_lit(&b, sep);
        wa_json_buf_lit(&b, "{\"id\":");
        wa_json_buf_int(&b, id);
        wa_json_buf_lit(&b, ",\"eventType\":");
        text_column(&b, st, 1);
        wa_json_buf_lit(&b, ",\"eventData\":");
        event_data(&b, st, 2);
        wa_json_buf_lit(&b, ",\"timestamp\":");
        text_column(&b, st, 3);
        wa_json_buf_lit(&b, "}");
        sep = ",";
    }
    if (rc != SQLITE_DONE) {
        err = db__fail(c, rc, "log.list");
        goto out;
    }
    wa_json_buf_lit(&b, "]");
    if (epoch != NULL) {
        if (!logs__version(epoch, newest, version, sizeof(version))) {
            err = WA_EINVAL;
            goto out;
        }
        wa_json_buf_lit(&b, ",\"version\":");
        wa_json_buf_string(&b, version);
    }
    wa_json_buf_lit(&b, "}");
    if ((err = wa_json_buf_done(&b, &text, NULL)) != WA_OK)
        goto out;
    if ((*out = cJSON_CreateRaw(text)) == NULL)
        err = WA_ENOMEM;
out:
    (void)sqlite3_reset(st);
    if (b.p != NULL)
        (void)wa_json_buf_done(&b, &text, NULL);
    free(text);
    return err;
}

wa_err_t logs__newest(db_conn_t *c, const char *user, int64_t *id)
{
    sqlite3_stmt *st = db__stmt(c, ST_LOG_NEWEST);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK) {
        err = db__fail(c, rc, "log version bind");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        *id = 0;
    else
        err = db__fail(c, rc, "log version");
out:
    (void)sqlite3_reset(st);
    return err;
}

bool logs__version(const char *epoch, int64_t id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.%lld", epoch, (long long)id);

    return n > 0 && (size_t)n < len;
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
