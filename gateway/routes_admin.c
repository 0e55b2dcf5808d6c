/*
 * routes_admin.c - GET /diagnostics (any signed-in user: versions, uptime,
 * instances, session counts, bus round-trip times measured now) and
 * GET /admin/sessions (admins only: every session with its instance).
 */
#include <string.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* Longest wait for one instance's ping in /diagnostics. */
#define INSTANCE_PING_MS 1000

/* Move src[name] into dst when present. False only on out-of-memory. */
static bool move_item(cJSON *dst, cJSON *src, const char *name)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(src, name);

    if (v == NULL)
        return true;
    if (cJSON_AddItemToObject(dst, name, v))
        return true;
    cJSON_Delete(v);
    return false;
}

/* "store": ping time and store-svc's own diag figures; moves
 * sessionsByStatus into body. */
static bool add_store(gw_req_t *r, cJSON *body)
{
    static const char *const fields[] = {"version", "uptimeMs", "logRows",
                                         "dbBytes"};
    wa_reply_t rep;
    cJSON *store;
    int64_t t0 = gw_now_us(), rtt;
    wa_err_t rv;

    if ((store = cJSON_AddObjectToObject(body, "store")) == NULL)
        return false;
    rv = gw_store_call(r, WA_OP_PING, "", NULL, &rep);
    rtt = gw_now_us() - t0;
    wa_reply_clear(&rep);
    if (cJSON_AddStringToObject(store, "status",
                                rv == WA_OK ? "ok" : wa_err_code(rv)) == NULL)
        return false;
    if (rv != WA_OK)
        return cJSON_AddObjectToObject(body, "sessionsByStatus") != NULL;
    if (cJSON_AddNumberToObject(store, "pingMs", (double)rtt / 1000.0) == NULL)
        return false;
    rv = gw_store_call(r, WA_OP_DIAG, "", NULL, &rep);
    if (rv == WA_OK && cJSON_IsObject(rep.data)) {
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            if (!move_item(store, rep.data, fields[i]))
                goto oom;
        }
        cJSON *by = cJSON_DetachItemFromObjectCaseSensitive(rep.data,
                                                            "sessionsByStatus");
        if (cJSON_IsObject(by)) {
            if (!cJSON_AddItemToObject(body, "sessionsByStatus", by)) {
                cJSON_Delete(by);
                goto oom;
            }
            wa_reply_clear(&rep);
            return true;
        }
        cJSON_Delete(by);
    } else if (cJSON_AddStringToObject(
                   store, "diag", wa_err_code(rv == WA_OK ? WA_EPROTO : rv)) ==
               NULL) {
        goto oom;
    }
    wa_reply_clear(&rep);
    return cJSON_AddObjectToObject(body, "sessionsByStatus") != NULL;
oom:
    wa_reply_clear(&rep);
    return false;
}

/* "instances": instance.list with each live instance pinged now. The url
 * (internal topology) is shown to admins only. */
static bool add_instances(gw_req_t *r, cJSON *body)
{
    static const char *const fields[] = {"instance", "capacity", "sessions",
                                         "lastSeen", "alive"};
    wa_reply_t rep;
    cJSON *out, *list, *row;
    wa_err_t rv;

    if ((out = cJSON_AddArrayToObject(body, "instances")) == NULL)
        return false;
    rv = gw_store_call(r, WA_OP_INSTANCE_LIST, "", NULL, &rep);
    list = cJSON_GetObjectItemCaseSensitive(rep.data, "instances");
    if (rv != WA_OK || !cJSON_IsArray(list)) {
        wa_reply_clear(&rep);
        return cJSON_AddStringToObject(
                   body, "instancesError",
                   wa_err_code(rv == WA_OK ? WA_EPROTO : rv)) != NULL;
    }
    cJSON_ArrayForEach(row, list)
    {
        const char *url = gw_json_string(row, "url");
        bool alive =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "alive"));
        cJSON *item = cJSON_CreateObject();
        int64_t rtt = 0;
        wa_err_t prv = WA_EUNAVAIL;
        int ms;

        if (item == NULL || !cJSON_AddItemToArray(out, item)) {
            cJSON_Delete(item);
            goto oom;
        }
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            if (!move_item(item, row, fields[i]))
                goto oom;
        }
        if (r->who.admin && url != NULL &&
            cJSON_AddStringToObject(item, "url", url) == NULL)
            goto oom;
        ms = gw_remaining_ms(r);
        if (ms > INSTANCE_PING_MS)
            ms = INSTANCE_PING_MS;
        if (alive && url != NULL && ms > 0)
            prv = gw_instance_ping(r->gw, url, r->rid, ms, &rtt);
        if (prv == WA_OK
                ? cJSON_AddNumberToObject(item, "pingMs",
                                          (double)rtt / 1000.0) == NULL
                : (cJSON_AddNullToObject(item, "pingMs") == NULL ||
                   cJSON_AddStringToObject(item, "pingError",
                                           alive ? wa_err_code(prv)
                                                 : "not_alive") == NULL))
            goto oom;
    }
    wa_reply_clear(&rep);
    return true;
oom:
    wa_reply_clear(&rep);
    return false;
}

void gw_route_diagnostics(gw_req_t *r)
{
    cJSON *body, *gwo;

    if ((body = cJSON_CreateObject()) == NULL ||
        (gwo = cJSON_AddObjectToObject(body, "gateway")) == NULL ||
        cJSON_AddStringToObject(gwo, "version", WA_VERSION) == NULL ||
        cJSON_AddNumberToObject(gwo, "uptimeMs",
                                (double)(wa_now_ms() - r->gw->started_ms)) ==
            NULL ||
        cJSON_AddNumberToObject(gwo, "threads", (double)r->gw->cfg.threads) ==
            NULL ||
        cJSON_AddNumberToObject(
            gwo, "inFlight",
            (double)gw_metrics_in_flight_now(r->gw->metrics)) == NULL ||
        cJSON_AddStringToObject(gwo, "civetweb", mg_version()) == NULL ||
        !add_store(r, body) || !add_instances(r, body)) {
        cJSON_Delete(body);
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    gw_reply_json(r, 200, body, NULL);
    cJSON_Delete(body);
}

/* ?name= as an integer in [min, max] into args (absent: nothing added).
 * False after answering 400. */
static bool optional_int(gw_req_t *r, cJSON *args, const char *name, long min,
                         long max, const char *rule)
{
    char v[16];
    long n;
    wa_err_t rv;

    rv = gw_query_param(r->ri->query_string, name, v, sizeof(v));
    if (rv == WA_ENOTFOUND)
        return true;
    if (rv != WA_OK || gw_parse_int(v, min, max, &n) != WA_OK) {
        gw_reply_error(r, WA_EINVAL, rule);
        return false;
    }
    if (cJSON_AddNumberToObject(args, name, (double)n) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        return false;
    }
    return true;
}

void gw_route_admin_sessions(gw_req_t *r)
{
    wa_reply_t rep = {0};
    cJSON *args = NULL, *body = NULL, *rows, *row;
    wa_err_t rv;

    if (!r->who.admin) {
        gw_reply_error(r, WA_EFORBIDDEN, "admin only");
        return;
    }
    if ((args = cJSON_CreateObject()) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    if (!optional_int(r, args, "limit", GW_LIMIT_MIN, GW_LIMIT_MAX,
                      "limit: must be an integer in 1..500") ||
        !optional_int(r, args, "offset", 0, 999999999,
                      "offset: must be an integer in 0..999999999"))
        goto out;
    rv = gw_store_call(r, WA_OP_SESSION_LIST, "", args, &rep);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_LIST, rv, &rep);
        goto out;
    }
    rows = cJSON_DetachItemFromObjectCaseSensitive(rep.data, "sessions");
    if (!cJSON_IsArray(rows)) {
        cJSON_Delete(rows);
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_LIST, WA_EPROTO, NULL);
        goto out;
    }
    /* A QR code links a WhatsApp account: it is shown to its owner only. */
    cJSON_ArrayForEach(row, rows)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(row, "qrCode");
    }
    if ((body = cJSON_CreateObject()) == NULL ||
        !cJSON_AddItemToObject(body, "sessions", rows)) {
        cJSON_Delete(rows);
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    gw_reply_json(r, 200, body, NULL);
out:
    cJSON_Delete(body);
    cJSON_Delete(args);
    wa_reply_clear(&rep);
}
