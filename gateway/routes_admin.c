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

/* store-svc's largest session.list page, asked for when the client names
 * no limit. */
#define SESSIONS_PAGE 500

/* Rows one answer gathers at most when the client names no limit: ten
 * pages, enough for every session of 100 instances of 50 (the store's and
 * session-svc's defaults); past it the answer says where to go on. */
#define SESSIONS_MAX 5000

/* ?name= as an integer in [min, max] into *out (absent: *present false).
 * False after answering 400. */
static bool optional_int(gw_req_t *r, const char *name, long min, long max,
                         const char *rule, long *out, bool *present)
{
    char v[16];
    wa_err_t rv;

    *present = false;
    rv = gw_query_param(r->ri->query_string, name, v, sizeof(v));
    if (rv == WA_ENOTFOUND)
        return true;
    if (rv != WA_OK || gw_parse_int(v, min, max, out) != WA_OK) {
        gw_reply_error(r, WA_EINVAL, rule);
        return false;
    }
    *present = true;
    return true;
}

/*
 * One session.list page, offset and limit, its rows moved into all (QR
 * codes dropped: a QR code links a WhatsApp account, it is shown to its
 * owner only). *got rows. On failure the answer has been sent.
 */
static bool read_page(gw_req_t *r, long offset, long limit, cJSON *all,
                      long *got)
{
    wa_reply_t rep = {0};
    cJSON *args, *rows, *row;
    wa_err_t rv;

    *got = 0;
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddNumberToObject(args, "limit", (double)limit) == NULL ||
        cJSON_AddNumberToObject(args, "offset", (double)offset) == NULL) {
        cJSON_Delete(args);
        gw_reply_error(r, WA_ENOMEM, NULL);
        return false;
    }
    rv = gw_store_call(r, WA_OP_SESSION_LIST, "", args, &rep);
    cJSON_Delete(args);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_LIST, rv, &rep);
        wa_reply_clear(&rep);
        return false;
    }
    rows = cJSON_GetObjectItemCaseSensitive(rep.data, "sessions");
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) > limit) {
        wa_reply_clear(&rep);
        gw_reply_bus_error(r, "store-svc", WA_OP_SESSION_LIST, WA_EPROTO, NULL);
        return false;
    }
    while ((row = cJSON_DetachItemFromArray(rows, 0)) != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(row, "qrCode");
        if (!cJSON_AddItemToArray(all, row)) {
            cJSON_Delete(row);
            wa_reply_clear(&rep);
            gw_reply_error(r, WA_ENOMEM, NULL);
            return false;
        }
        (*got)++;
    }
    wa_reply_clear(&rep);
    return true;
}

/*
 * {"sessions": [...], "offset": n, "nextOffset": n or null}, ordered by
 * user id. With ?limit= one page of that size; without, every session from
 * ?offset= on (default 0), read from store-svc a page of SESSIONS_PAGE at a
 * time, up to SESSIONS_MAX. nextOffset is where to go on when the answer
 * stopped at its limit (more may follow); null when the list ended in it.
 */
void gw_route_admin_sessions(gw_req_t *r)
{
    long limit = SESSIONS_MAX, offset = 0, got = 0, page;
    bool has_limit, has_offset;
    cJSON *body = NULL, *all, *next;

    if (!r->who.admin) {
        gw_reply_error(r, WA_EFORBIDDEN, "admin only");
        return;
    }
    if (!optional_int(r, "limit", GW_LIMIT_MIN, GW_LIMIT_MAX,
                      "limit: must be an integer in 1..500", &limit,
                      &has_limit) ||
        !optional_int(r, "offset", 0, 999999999,
                      "offset: must be an integer in 0..999999999", &offset,
                      &has_offset))
        return;
    if (!has_limit)
        limit = SESSIONS_MAX;
    if ((body = cJSON_CreateObject()) == NULL ||
        (all = cJSON_AddArrayToObject(body, "sessions")) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    /* A short page is the end of the list. */
    do {
        long want = limit - got < SESSIONS_PAGE ? limit - got : SESSIONS_PAGE;

        if (!read_page(r, offset + got, want, all, &page))
            goto out;
        got += page;
        if (page < want)
            break;
    } while (got < limit);
    next = got == limit ? cJSON_CreateNumber((double)(offset + got))
                        : cJSON_CreateNull();
    if (cJSON_AddNumberToObject(body, "offset", (double)offset) == NULL ||
        next == NULL || !cJSON_AddItemToObject(body, "nextOffset", next)) {
        cJSON_Delete(next);
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    gw_reply_json(r, 200, body, NULL);
out:
    cJSON_Delete(body);
}
