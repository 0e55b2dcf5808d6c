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

/* Keep in row only the members named in fields (each once), adding null
 * for a missing one. */
static bool keep_fields(cJSON *row, const char *const *fields, size_t n)
{
    cJSON *m = row->child, *next;
    size_t i;

    for (; m != NULL; m = next) {
        next = m->next;
        for (i = 0; i < n && strcmp(m->string, fields[i]) != 0; i++)
            ;
        if (i == n)
            cJSON_Delete(cJSON_DetachItemViaPointer(row, m));
    }
    for (i = 0; i < n; i++) {
        if (cJSON_GetObjectItemCaseSensitive(row, fields[i]) == NULL &&
            cJSON_AddNullToObject(row, fields[i]) == NULL)
            return false;
    }
    return true;
}

/* A row's integer id printed as is rather than through cJSON's
 * floating-point round trip (wa_json_int). Other values stay. */
static bool id_as_int(cJSON *row)
{
    cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "id"), *raw;
    double d;

    if (!cJSON_IsNumber(id))
        return true;
    d = id->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) ||
        d != (double)(int64_t)d)
        return true;
    if ((raw = wa_json_int((int64_t)d)) == NULL)
        return false;
    /* (ViaPointer would leave the replacement without its key.) */
    if (!cJSON_ReplaceItemInObjectCaseSensitive(row, "id", raw)) {
        cJSON_Delete(raw);
        return false;
    }
    return true;
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
    cJSON *args = NULL, *body = NULL, *logs, *row, *next;
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
    /* The rows are filtered in place and the array moved, not copied. */
    for (row = logs->child; row != NULL; row = next) {
        next = row->next;
        if (!cJSON_IsObject(row)) {
            cJSON_Delete(cJSON_DetachItemViaPointer(logs, row));
        } else if (!keep_fields(row, fields,
                                sizeof(fields) / sizeof(fields[0])) ||
                   !id_as_int(row)) {
            gw_reply_error(r, WA_ENOMEM, NULL);
            goto out;
        }
    }
    cJSON_DetachItemViaPointer(rep.data, logs);
    if ((body = cJSON_CreateObject()) == NULL ||
        !cJSON_AddItemToObjectCS(body, "logs", logs)) {
        cJSON_Delete(logs);
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    gw_reply_json(r, 200, body, NULL);
out:
    cJSON_Delete(body);
    cJSON_Delete(args);
    wa_reply_clear(&rep);
}
