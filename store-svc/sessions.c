/*
 * sessions.c - user_sessions: one row per user, as session.get shows it.
 */
#include <string.h>

#include "store.h"

const char *const sessions__statuses[] = {
    "disconnected", "initializing", "qr", "authenticated",
    "ready",        "error",        NULL,
};

bool sessions__status_valid(const char *s)
{
    for (int i = 0; sessions__statuses[i] != NULL; i++) {
        if (strcmp(s, sessions__statuses[i]) == 0)
            return true;
    }
    return false;
}

/* JSON names of the SESSION_COLS columns, in order. */
static const char *const row_keys[] = {
    "userId",      "status",       "phoneNumber", "displayName", "qrCode",
    "connectedAt", "lastActivity", "createdAt",   "updatedAt",
};
#define NCOLS (sizeof(row_keys) / sizeof(row_keys[0]))

/* The current row of st (SESSION_COLS first) as a session object. A NULL
 * status (rows of older writers) reads as "disconnected". */
static cJSON *row_object(sqlite3_stmt *st)
{
    cJSON *row = cJSON_CreateObject(), *v;

    if (row == NULL)
        return NULL;
    for (size_t i = 0; i < NCOLS; i++) {
        if (i == 1 && sqlite3_column_type(st, 1) == SQLITE_NULL)
            v = cJSON_CreateString("disconnected");
        else
            v = db__column_string(st, (int)i);
        if (v == NULL || !cJSON_AddItemToObject(row, row_keys[i], v)) {
            cJSON_Delete(v);
            cJSON_Delete(row);
            return NULL;
        }
    }
    return row;
}

/* The answer for a user without a row. */
static cJSON *empty_row(const char *user)
{
    cJSON *row = cJSON_CreateObject();

    if (row == NULL || !cJSON_AddStringToObject(row, "userId", user) ||
        !cJSON_AddStringToObject(row, "status", "disconnected"))
        goto fail;
    for (size_t i = 2; i < NCOLS; i++) {
        if (!cJSON_AddNullToObject(row, row_keys[i]))
            goto fail;
    }
    return row;
fail:
    cJSON_Delete(row);
    return NULL;
}

wa_err_t sessions__get(db_conn_t *c, const char *user, int64_t now_ms,
                       cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_SESSION_GET);
    wa_err_t err = WA_OK;
    bool alive = false;
    cJSON *row;
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, placement__alive_since(now_ms))) !=
            SQLITE_OK) {
        err = db__fail(c, rc, "session.get bind");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row = row_object(st);
        alive = sqlite3_column_int(st, (int)NCOLS) == 1;
    } else if (rc == SQLITE_DONE) {
        row = empty_row(user);
    } else {
        err = db__fail(c, rc, "session.get");
        goto out;
    }
    if (row == NULL || !cJSON_AddBoolToObject(row, "instanceAlive", alive)) {
        cJSON_Delete(row);
        err = WA_ENOMEM;
        goto out;
    }
    *out = row;
out:
    (void)sqlite3_reset(st);
    return err;
}

/* Bind one field of an upsert: its value at idx, its "set" flag at idx+1. */
static int bind_field(sqlite3_stmt *st, int idx, const session_field_t *f)
{
    int rc = db__bind_text(st, idx, f->set ? f->value : NULL);

    return rc != SQLITE_OK ? rc : sqlite3_bind_int(st, idx + 1, f->set);
}

wa_err_t sessions__upsert(db_conn_t *c, const char *user,
                          const session_update_t *u, const char *now,
                          cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_SESSION_UPSERT);
    wa_err_t err = WA_OK;
    cJSON *row;
    int rc;

    if (u->status.set && u->status.value == NULL)
        return WA_EINVAL; /* the column would read back as a status */
    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = bind_field(st, 2, &u->status)) != SQLITE_OK ||
        (rc = bind_field(st, 4, &u->phone)) != SQLITE_OK ||
        (rc = bind_field(st, 6, &u->name)) != SQLITE_OK ||
        (rc = bind_field(st, 8, &u->qr)) != SQLITE_OK ||
        (rc = bind_field(st, 10, &u->connected_at)) != SQLITE_OK ||
        (rc = bind_field(st, 12, &u->last_activity)) != SQLITE_OK ||
        (rc = db__bind_text(st, 14, now)) != SQLITE_OK) {
        err = db__fail(c, rc, "session.upsert bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        err = db__fail(c, rc, "session.upsert");
        goto out;
    }
    if ((row = row_object(st)) == NULL) {
        err = WA_ENOMEM;
        goto out;
    }
    /* RETURNING finishes its write only when stepped to the end. */
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        cJSON_Delete(row);
        err = db__fail(c, rc, "session.upsert");
        goto out;
    }
    *out = row;
out:
    (void)sqlite3_reset(st);
    return err;
}

/* A session.get row plus the user's instance (null when unplaced). */
static cJSON *list_row(sqlite3_stmt *st, void *arg)
{
    cJSON *row = row_object(st);

    (void)arg;
    if (row != NULL &&
        (!db__add_column(row, "instance", st, (int)NCOLS) ||
         !cJSON_AddBoolToObject(row, "instanceAlive",
                                sqlite3_column_int(st, (int)NCOLS + 1) == 1))) {
        cJSON_Delete(row);
        return NULL;
    }
    return row;
}

wa_err_t sessions__list(db_conn_t *c, long limit, long offset, int64_t now_ms,
                        cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_SESSION_LIST);
    int rc;

    if ((rc = sqlite3_bind_int64(st, 1, limit)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, offset)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 3, placement__alive_since(now_ms))) !=
            SQLITE_OK) {
        (void)sqlite3_reset(st);
        return db__fail(c, rc, "session.list bind");
    }
    return db__list(c, st, "sessions", list_row, NULL, "session.list", out);
}

wa_err_t sessions__count_by_status(db_conn_t *c, cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_SESSION_COUNT);
    wa_err_t err = WA_OK;
    cJSON *res, *item;
    const unsigned char *status;
    int rc;

    if ((res = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    for (int i = 0; sessions__statuses[i] != NULL; i++) {
        if (!cJSON_AddNumberToObject(res, sessions__statuses[i], 0))
            goto nomem;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* A status outside the six (older writers) is counted as is. */
        if ((status = sqlite3_column_text(st, 0)) == NULL)
            goto nomem;
        item = cJSON_GetObjectItemCaseSensitive(res, (const char *)status);
        if (item != NULL)
            cJSON_SetNumberValue(item, (double)sqlite3_column_int64(st, 1));
        else if (!cJSON_AddNumberToObject(res, (const char *)status,
                                          (double)sqlite3_column_int64(st, 1)))
            goto nomem;
    }
    if (rc != SQLITE_DONE) {
        err = db__fail(c, rc, "session counts");
        goto out;
    }
    *out = res;
    res = NULL;
    goto out;
nomem:
    err = WA_ENOMEM;
out:
    (void)sqlite3_reset(st);
    cJSON_Delete(res);
    return err;
}
