/*
 * rids.c - the answers of writes that must never run twice, kept in the
 * database (bus_requests) so that idempotency by rid survives a restart of
 * store-svc (see store.h). Called on the writer thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

wa_err_t rids__get(db_conn_t *c, wa_op_t op, const char *user, const char *rid,
                   uint64_t *fp, char **reply)
{
    sqlite3_stmt *st = db__stmt(c, ST_RID_GET);
    const unsigned char *text;
    wa_err_t err = WA_ENOTFOUND;
    int rc;

    *reply = NULL;
    if ((rc = db__bind_text(st, 1, wa_op_name(op))) != SQLITE_OK ||
        (rc = db__bind_text(st, 2, user)) != SQLITE_OK ||
        (rc = db__bind_text(st, 3, rid)) != SQLITE_OK) {
        err = db__fail(c, rc, "rid lookup bind");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        goto out;
    if (rc != SQLITE_ROW) {
        err = db__fail(c, rc, "rid lookup");
        goto out;
    }
    *fp = (uint64_t)sqlite3_column_int64(st, 0);
    text = sqlite3_column_text(st, 1);
    if (text == NULL || (*reply = strdup((const char *)text)) == NULL) {
        err = WA_ENOMEM;
        goto out;
    }
    err = WA_OK;
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t rids__put(db_conn_t *c, wa_op_t op, const char *user, const char *rid,
                   uint64_t fp, const char *reply, int64_t now_ms)
{
    sqlite3_stmt *st = db__stmt(c, ST_RID_PUT);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = db__bind_text(st, 1, wa_op_name(op))) != SQLITE_OK ||
        (rc = db__bind_text(st, 2, user)) != SQLITE_OK ||
        (rc = db__bind_text(st, 3, rid)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)fp)) != SQLITE_OK ||
        (rc = db__bind_text(st, 5, reply)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 6, now_ms)) != SQLITE_OK) {
        err = db__fail(c, rc, "rid record bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        err = db__fail(c, rc, "rid record");
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t rids__prune(db_conn_t *c, int64_t before_ms, int *deleted)
{
    sqlite3_stmt *st = db__stmt(c, ST_RID_PRUNE);
    wa_err_t err = WA_OK;
    int rc;

    *deleted = 0;
    if ((rc = sqlite3_bind_int64(st, 1, before_ms)) != SQLITE_OK) {
        err = db__fail(c, rc, "rid prune bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        err = db__fail(c, rc, "rid prune");
        goto out;
    }
    *deleted = sqlite3_changes(c->h);
out:
    (void)sqlite3_reset(st);
    return err;
}
