/*
 * routes_ops.c - the routes for operators and orchestrators, without
 * authentication: GET /health and GET /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* Live session-svc instances in an instance.list answer, or -1 when the
 * answer has no instance array. */
static int count_alive(const cJSON *data)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(data, "instances");
    const cJSON *it;
    int n = 0;

    if (!cJSON_IsArray(list))
        return -1;
    cJSON_ArrayForEach(it, list)
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "alive")))
            n++;
    }
    return n;
}

/*
 * 200 {"status":"ok",...} when store-svc answers ping and instance.list
 * names at least one live session-svc; otherwise 503 with
 * "status":"unavailable" and what does answer.
 */
void gw_route_health(gw_req_t *r)
{
    wa_reply_t rep;
    wa_err_t store_rv, list_rv = WA_EUNAVAIL;
    int64_t t0, rtt_us = 0;
    int alive = 0;
    cJSON *body;
    bool ok;

    t0 = gw_now_us();
    store_rv = gw_store_call(r, WA_OP_PING, "", NULL, &rep);
    rtt_us = gw_now_us() - t0;
    wa_reply_clear(&rep);
    if (store_rv == WA_OK) {
        list_rv = gw_store_call(r, WA_OP_INSTANCE_LIST, "", NULL, &rep);
        if (list_rv == WA_OK && (alive = count_alive(rep.data)) < 0) {
            list_rv = WA_EPROTO;
            alive = 0;
        }
        wa_reply_clear(&rep);
    } else {
        wa_warn(r->rid, "health: store-svc did not answer: %s",
                wa_err_code(store_rv));
    }
    ok = store_rv == WA_OK && alive > 0;
    if ((body = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(body, "status", ok ? "ok" : "unavailable") ==
            NULL ||
        cJSON_AddStringToObject(body, "service", GW_SERVICE) == NULL ||
        cJSON_AddStringToObject(body, "version", WA_VERSION) == NULL ||
        cJSON_AddNumberToObject(body, "uptimeMs",
                                (double)(wa_now_ms() - r->gw->started_ms)) ==
            NULL ||
        cJSON_AddStringToObject(
            body, "store", store_rv == WA_OK ? "ok" : wa_err_code(store_rv)) ==
            NULL ||
        (store_rv == WA_OK &&
         cJSON_AddNumberToObject(body, "storeRoundTripMs",
                                 (double)rtt_us / 1000.0) == NULL) ||
        cJSON_AddNumberToObject(body, "sessionServices", alive) == NULL ||
        (store_rv == WA_OK && list_rv != WA_OK &&
         cJSON_AddStringToObject(body, "sessionServicesError",
                                 wa_err_code(list_rv)) == NULL)) {
        cJSON_Delete(body);
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    gw_reply_json(r, ok ? 200 : 503, body, NULL);
    cJSON_Delete(body);
}

void gw_route_metrics(gw_req_t *r)
{
    char *text;
    size_t len;

    if (gw_metrics_render(r->gw->metrics,
                          (double)(wa_now_ms() - r->gw->started_ms) / 1000.0,
                          &text, &len) != WA_OK) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    gw_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
