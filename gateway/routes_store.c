/*
 * routes_store.c - the routes store-svc answers alone: GET /status (the
 * user's session row) and GET /logs (the user's event log).
 *
 * The user is always r->who.user, from the verified token; no parameter can
 * name another. Answers are rebuilt field by field from the store's rows, so
 * a column added to the store never leaks through the REST API unnoticed.
 */
#include <string.h>

#include "gateway.h"

/* Move obj[name] into out when it is a string, else set it to null. */
static bool move_string(cJSON *out, cJSON *obj, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (cJSON_IsString(v)) {
        cJSON_DetachItemViaPointer(obj, v);
        if (cJSON_AddItemToObject(out, name, v))
            return true;
        cJSON_Delete(v);
        return false;
    }
    return cJSON_AddNullToObject(out, name) != NULL;
}

/* Move obj[name] into out whatever its type (null when absent). */
static bool move_any(cJSON *out, cJSON *obj, const char *name)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(obj, name);

    if (v == NULL)
        return cJSON_AddNullToObject(out, name) != NULL;
    if (cJSON_AddItemToObject(out, name, v))
        return true;
    cJSON_Delete(v);
    return false;
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

void gw_route_logs(gw_req_t *r)
{
    static const char *const fields[] = {"id", "eventType", "eventData",
                                         "timestamp"};
    wa_reply_t rep = {0};
    cJSON *args = NULL, *body = NULL, *logs, *out_logs, *row;
    long limit;
    wa_err_t rv;

    if (!gw_query_limit(r, &limit))
        return;
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddNumberToObject(args, "limit", (double)limit) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    rv = gw_store_call(r, WA_OP_LOG_LIST, r->who.user, args, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, rv, &rep);
        goto out;
    }
    logs = cJSON_GetObjectItemCaseSensitive(rep.data, "logs");
    if (!cJSON_IsArray(logs)) {
        gw_reply_bus_error(r, "store-svc", WA_OP_LOG_LIST, WA_EPROTO, NULL);
        goto out;
    }
    if ((body = cJSON_CreateObject()) == NULL ||
        (out_logs = cJSON_AddArrayToObject(body, "logs")) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    cJSON_ArrayForEach(row, logs)
    {
        cJSON *item;

        if (!cJSON_IsObject(row))
            continue;
        if ((item = cJSON_CreateObject()) == NULL ||
            !cJSON_AddItemToArray(out_logs, item)) {
            cJSON_Delete(item);
            gw_reply_error(r, WA_ENOMEM, NULL);
            goto out;
        }
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            if (!move_any(item, row, fields[i])) {
                gw_reply_error(r, WA_ENOMEM, NULL);
                goto out;
            }
        }
    }
    gw_reply_json(r, 200, body, NULL);
out:
    cJSON_Delete(body);
    cJSON_Delete(args);
    wa_reply_clear(&rep);
}
