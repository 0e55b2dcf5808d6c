/*
 * http.c - notifier-svc's HTTP endpoints.
 */
#include <string.h>

#include "notifier.h"
#include "wa/service.h"

/* GET /health: the notifier answers when its loop is up. */
static int on_health(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    char rid[WA_RID_MAX + 1];
    cJSON *body;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    if ((body = cJSON_CreateObject()) == NULL) {
        wa_http_reply_error(conn, WA_ENOMEM, NULL, rid, NULL);
        return 500;
    }
    cJSON_AddStringToObject(body, "status", "ok");
    cJSON_AddStringToObject(body, "service", NT_SERVICE);
    cJSON_AddStringToObject(body, "version", WA_VERSION);
    cJSON_AddNumberToObject(body, "uptimeMs",
                            (double)(wa_now_ms() - nt->started_ms));
    cJSON_AddNumberToObject(
        body, "eventsIn",
        (double)__atomic_load_n(&nt->events_in, __ATOMIC_RELAXED));
    wa_http_reply_json(conn, 200, rid, body, NULL);
    cJSON_Delete(body);
    return 200;
}

wa_err_t nt_http_start(nt_t *nt, char *err, size_t errlen)
{
    const wa_http_opts_t opts = {
        .port = nt->cfg.port,
        .threads = nt->cfg.threads,
        .request_timeout_ms = 10000,
        .max_request_size = 16384,
        .websocket_ping = true,
    };
    wa_err_t rv;

    if ((rv = wa_http_start(&opts, NULL, nt, &nt->http, err, errlen)) != WA_OK)
        return rv;
    mg_set_request_handler(nt->http, "/health$", on_health, nt);
    mg_set_request_handler(nt->http, "/", wa_http_on_not_found, nt);
    return WA_OK;
}

void nt_http_stop(nt_t *nt)
{
    if (nt->http != NULL) {
        mg_stop(nt->http);
        nt->http = NULL;
    }
}
