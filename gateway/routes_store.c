/*
 * routes_store.c - the routes store-svc answers alone: GET /status (the
 * user's session row) and GET /logs (the user's event log).
 *
 * The user is always r->who.user, from the verified token; no parameter can
 * name another. Answers keep only the fields DESIGN §4 names (validate.c
 * checks and selects them), so a column added to the store never leaks
 * through the REST API unnoticed. Neither answer becomes a cJSON tree
 * here: both are store-svc's text, checked, and copied.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* GET /status: store-svc's session.get answer, reshaped as text
 * (gw_status_body). */
void gw_route_status(gw_req_t *r)
{
    wa_reply_t rep = {0};
    char *body = NULL;
    size_t len = 0;
    wa_err_t rv;

    rv = gw_store_call_raw(r, WA_OP_SESSION_GET, r->who.user, NULL, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_GET, rv, &rep);
        goto out;
    }
    if ((rv = gw_status_body(rep.raw, rep.raw_len, &body, &len)) != WA_OK) {
        if (rv == WA_ENOMEM)
            gw_reply_error(r, WA_ENOMEM, NULL);
        else
            gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_GET, WA_EPROTO,
                               NULL);
        goto out;
    }
    gw_reply_raw(r, 200, "application/json", body, len);
out:
    free(body);
    wa_reply_clear(&rep);
}

/*
 * GET /logs: store-svc's rows are the body. They are relayed as text, not
 * parsed and printed again (50 rows of JSON were most of this route's
 * cost), after a check of the whole answer's shape: valid JSON (the bus
 * decoder), then exactly the four fields per row that DESIGN §4 names, so
 * a column added to the store cannot leak through unnoticed. The body is
 * kept with the log's version (logcache.h); the next request for the same
 * user and limit asks store-svc whether the log changed since, and sends
 * the kept body if it did not.
 */
void gw_route_logs(gw_req_t *r)
{
    gw_logcache_t *cache = r->gw->logcache;
    gw_logbody_t *kept = NULL, *fresh = NULL;
    gw_logs_answer_t ans;
    wa_reply_t rep = {0};
    cJSON *args = NULL;
    long limit;
    wa_err_t rv;

    if (!gw_query_limit(r, &limit))
        return;
    kept = gw_logcache_get(cache, r->who.user, limit);
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddItemToObject(args, "limit", wa_json_int(limit)) == false ||
        cJSON_AddStringToObject(args, "ifChanged",
                                kept != NULL ? kept->version : "") == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    rv = gw_store_call_raw(r, WA_OP_LOG_LIST, r->who.user, args, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, rv, &rep);
        goto out;
    }
    /* "unchanged" is an answer about the version asked about: without a
     * kept body of that version it is a broken answer, never a body. */
    if (!gw_logs_answer(rep.raw, rep.raw_len, &ans) ||
        (ans.unchanged &&
         (kept == NULL || ans.version_len != kept->version_len ||
          memcmp(ans.version, kept->version, ans.version_len) != 0))) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, WA_EPROTO, NULL);
        goto out;
    }
    if (ans.unchanged) {
        gw_logcache_hit(cache);
        gw_reply_raw(r, 200, "application/json", kept->body, kept->len);
        goto out;
    }
    if ((fresh = gw_logbody_new(ans.version, ans.version_len, ans.rows.p,
                                ans.rows.n)) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    gw_logcache_put(cache, r->who.user, limit, fresh);
    gw_reply_raw(r, 200, "application/json", fresh->body, fresh->len);
out:
    gw_logbody_release(fresh);
    gw_logbody_release(kept);
    cJSON_Delete(args);
    wa_reply_clear(&rep);
}
