/*
 * routes_store.c - the routes store-svc answers alone: GET /status (the
 * user's session row) and GET /logs (the user's event log).
 *
 * The user is always r->who.user, from the verified token; no parameter can
 * name another. Answers keep only the fields named here, so a column added
 * to the store never leaks through the REST API unnoticed. Field names are
 * string literals, added with the cJSON *CS calls (no copy of the key).
 */
#include <string.h>

#include "gateway.h"

/* Move obj[name] into out when it is a string, else set it to null. */
static bool move_string(cJSON *out, cJSON *obj, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (cJSON_IsString(v)) {
        cJSON_DetachItemViaPointer(obj, v);
        if (cJSON_AddItemToObjectCS(out, name, v))
            return true;
        cJSON_Delete(v);
        return false;
    }
    return cJSON_AddNullToObject(out, name) != NULL;
}

void gw_route_status(gw_req_t *r)
{
    wa_reply_t rep;
    cJSON *body = NULL;
    const char *status;
    wa_err_t rv;

    rv = gw_store_call(r, WA_OP_SESSION_GET, r->who.user, NULL, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_GET, rv, &rep);
        goto out;
    }
    status = gw_json_string(rep.data, "status");
    if (!cJSON_IsObject(rep.data) || status == NULL) {
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_GET, WA_EPROTO, NULL);
        goto out;
    }
    if ((body = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(body, "status", status) == NULL ||
        !move_string(body, rep.data, "phoneNumber") ||
        !move_string(body, rep.data, "displayName") ||
        /* The QR is only meaningful (and only shown) while scanning. */
        (strcmp(status, "qr") == 0
             ? !move_string(body, rep.data, "qrCode")
             : cJSON_AddNullToObject(body, "qrCode") == NULL) ||
        !move_string(body, rep.data, "connectedAt") ||
        !move_string(body, rep.data, "lastActivity")) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    gw_reply_json(r, 200, body, NULL);
out:
    cJSON_Delete(body);
    wa_reply_clear(&rep);
}

/*
 * GET /logs: store-svc's answer is the body. It is relayed as text, not
 * parsed and printed again (50 rows of JSON were most of this route's
 * cost), after a check of its whole shape: valid JSON (the bus decoder),
 * then exactly the four fields per row that DESIGN §4 names, so a column
 * added to the store cannot leak through unnoticed.
 */
void gw_route_logs(gw_req_t *r)
{
    wa_reply_t rep = {0};
    cJSON *args = NULL;
    long limit;
    wa_err_t rv;

    if (!gw_query_limit(r, &limit))
        return;
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddItemToObject(args, "limit", wa_json_int(limit)) == false) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    rv = gw_store_call_raw(r, WA_OP_LOG_LIST, r->who.user, args, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, rv, &rep);
        goto out;
    }
    if (!gw_valid_logs(rep.raw, rep.raw_len)) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, WA_EPROTO, NULL);
        goto out;
    }
    gw_reply_raw(r, 200, "application/json", rep.raw, rep.raw_len);
out:
    cJSON_Delete(args);
    wa_reply_clear(&rep);
}
