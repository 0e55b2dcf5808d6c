/*
 * routes_ops.c - the routes for operators and orchestrators, without
 * authentication: GET /health and GET /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* Longest wait for the session-svc pings of one /health, all at once. */
#define HEALTH_PING_MS 500

/*
 * The urls of the instances store-svc's instance.list answer calls alive,
 * at most GW_PING_MAX, into pings (url pointers into data). *n set; false
 * when the answer has no instance array.
 */
static bool alive_instances(const cJSON *data, gw_ping_t *pings, size_t *n)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(data, "instances");
    const cJSON *it;

    *n = 0;
    if (!cJSON_IsArray(list))
        return false;
    cJSON_ArrayForEach(it, list)
    {
        const char *url = gw_json_string(it, "url");

        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "alive")) ||
            url == NULL || url[0] == '\0')
            continue;
        if (*n == GW_PING_MAX)
            break; /* enough to know: the count says "at least" */
        pings[(*n)++].url = url;
    }
    return true;
}

/*
 * 200 {"status":"ok",...} when store-svc answers ping and at least one
 * session-svc instance that store-svc lists as alive answers ping now;
 * otherwise 503 with "status":"unavailable" and what does answer. The
 * registry alone is not enough: it keeps a killed instance alive for up to
 * 10 s (DESIGN §6). The instances are pinged at once, within
 * HEALTH_PING_MS, so /health never waits on a dead one for long.
 */
void gw_route_health(gw_req_t *r)
{
    gw_ping_t pings[GW_PING_MAX];
    wa_reply_t rep = {0};
    wa_err_t store_rv, list_rv = WA_EUNAVAIL;
    int64_t t0, rtt_us = 0;
    size_t listed = 0;
    int answered = 0, ms;
    cJSON *body;
    bool ok;

    t0 = gw_now_us();
    store_rv = gw_store_call(r, WA_OP_PING, "", NULL, &rep);
    rtt_us = gw_now_us() - t0;
    wa_reply_clear(&rep);
    if (store_rv == WA_OK) {
        list_rv = gw_store_call(r, WA_OP_INSTANCE_LIST, "", NULL, &rep);
        if (list_rv == WA_OK && !alive_instances(rep.data, pings, &listed))
            list_rv = WA_EPROTO;
        ms = gw_remaining_ms(r);
        if (ms > HEALTH_PING_MS)
            ms = HEALTH_PING_MS;
        if (listed > 0 && ms > 0 &&
            gw_instances_ping(r->gw, pings, listed, r->rid, ms) == WA_OK) {
            for (size_t i = 0; i < listed; i++)
                answered += pings[i].rv == WA_OK;
        }
        /* pings[].url point into rep: cleared only now. */
        wa_reply_clear(&rep);
    } else {
        wa_warn(r->rid, "health: store-svc did not answer: %s",
                wa_err_code(store_rv));
    }
    if (listed > (size_t)answered)
        wa_warn(r->rid,
                "health: %d of %zu session-svc instances listed alive "
                "answered ping",
                answered, listed);
    ok = store_rv == WA_OK && answered > 0;
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
        cJSON_AddNumberToObject(body, "sessionServices", answered) == NULL ||
        cJSON_AddNumberToObject(body, "sessionServicesListed",
                                (double)listed) == NULL ||
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
