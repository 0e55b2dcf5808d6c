/*
 * http.c - the gateway's HTTP server and its routes.
 */
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* GET /health (no auth): 200 when store-svc answers, 503 otherwise. Session
 * services join the check when placement lands in store-svc. */
static int on_health(struct mg_connection *conn, void *arg)
{
    gw_t *gw = arg;
    char rid[WA_RID_MAX + 1];
    wa_reply_t rep;
    cJSON *body;
    wa_err_t rv;
    long long t0;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    t0 = wa_now_ms();
    rv = wa_bus_call(gw->store, WA_OP_PING, "", rid, NULL,
                     (int)gw->cfg.bus_timeout_ms, &rep);
    if ((body = cJSON_CreateObject()) == NULL) {
        wa_reply_clear(&rep);
        wa_http_reply_error(conn, WA_ENOMEM, NULL, rid, NULL);
        return 500;
    }
    cJSON_AddStringToObject(body, "status", rv == WA_OK ? "ok" : "unavailable");
    cJSON_AddStringToObject(body, "service", GW_SERVICE);
    cJSON_AddStringToObject(body, "version", WA_VERSION);
    cJSON_AddNumberToObject(body, "uptimeMs",
                            (double)(wa_now_ms() - gw->started_ms));
    cJSON_AddStringToObject(body, "store",
                            rv == WA_OK ? "ok" : wa_err_code(rv));
    if (rv == WA_OK)
        cJSON_AddNumberToObject(body, "storeRoundTripMs",
                                (double)(wa_now_ms() - t0));
    else
        wa_warn(rid, "health: store-svc did not answer: %s", wa_strerror(rv));
    wa_http_reply_json(conn, rv == WA_OK ? 200 : 503, rid, body, NULL);
    cJSON_Delete(body);
    wa_reply_clear(&rep);
    return rv == WA_OK ? 200 : 503;
}

wa_err_t gw_http_start(gw_t *gw, char *err, size_t errlen)
{
    const wa_http_opts_t opts = {
        .port = gw->cfg.port,
        .threads = gw->cfg.threads,
        .request_timeout_ms = 10000,
        .max_request_size = 16384,
    };
    wa_err_t rv;

    if ((rv = wa_http_start(&opts, NULL, gw, &gw->http, err, errlen)) != WA_OK)
        return rv;
    mg_set_request_handler(gw->http, "/health$", on_health, gw);
    mg_set_request_handler(gw->http, "/", wa_http_on_not_found, gw);
    return WA_OK;
}

void gw_http_stop(gw_t *gw)
{
    if (gw->http != NULL) {
        mg_stop(gw->http);
        gw->http = NULL;
    }
}
