/*
 * http.c - notifier-svc's CivetWeb server: the WebSocket routes (ws.c),
 * /health and /metrics.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "notifier.h"
#include "wa/service.h"

#define NT_WORKER_STACK (256 * 1024)

static void gauges(nt_t *nt, nt_gauges_t *g)
{
    nt_hub_gauges(nt->hub, g);
    g->uptime_seconds = (double)(wa_now_ms() - nt->started_ms) / 1000.0;
}

/* GET /health: the notifier answers when its loop is up. */
static int on_health(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    char rid[WA_RID_MAX + 1];
    nt_gauges_t g;
    cJSON *body;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    if ((body = cJSON_CreateObject()) == NULL) {
        wa_http_reply_error(conn, WA_ENOMEM, NULL, rid, NULL);
        return 500;
    }
    gauges(nt, &g);
    cJSON_AddStringToObject(body, "status", "ok");
    cJSON_AddStringToObject(body, "service", NT_SERVICE);
    cJSON_AddStringToObject(body, "version", WA_VERSION);
    cJSON_AddNumberToObject(body, "uptimeMs",
                            (double)(wa_now_ms() - nt->started_ms));
    cJSON_AddNumberToObject(body, "connections", (double)g.connections);
    cJSON_AddNumberToObject(body, "users", (double)g.users);
    cJSON_AddNumberToObject(body, "eventsIn",
                            (double)nt_metrics_get(&nt->metrics.events_in));
    wa_http_reply_json(conn, 200, rid, body, NULL);
    cJSON_Delete(body);
    return 200;
}

/* GET /metrics: Prometheus text. */
static int on_metrics(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    char rid[WA_RID_MAX + 1];
    nt_gauges_t g;
    char *text;
    size_t len;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    gauges(nt, &g);
    if ((rv = nt_metrics_render(&nt->metrics, &g, &text, &len)) != WA_OK) {
        wa_http_reply_error(conn, rv, NULL, rid, NULL);
        return 500;
    }
    (void)wa_http_send(conn, 200, rid,
                       "text/plain; version=0.0.4; charset=utf-8", NULL, NULL,
                       text, len);
    free(text);
    return 200;
}

/* Everything else: "/" without an upgrade, or 404. */
static int on_other(struct mg_connection *conn, void *arg)
{
    if (strcmp(mg_get_request_info(conn)->local_uri, "/") == 0)
        return nt_ws_on_plain(conn, arg);
    return wa_http_on_not_found(conn, arg);
}

wa_err_t nt_http_start(nt_t *nt, char *err, size_t errlen)
{
    /* CivetWeb 1.15 keeps one worker thread per open WebSocket for its
     * read loop, so the pool is the connection limit plus room for plain
     * requests (health, metrics, refusals when full). */
    const wa_http_opts_t opts = {
        .port = nt->cfg.port,
        .threads = nt->cfg.max_conn + nt->cfg.threads,
        .request_timeout_ms = nt->cfg.ws_timeout_ms,
        .max_request_size = 16384,
        .websocket_ping = true,
    };
    struct mg_callbacks callbacks = {
        .connection_close = nt_ws_connection_close,
    };
    pthread_attr_t attr;
    wa_err_t rv;

    /* Those workers are started at once with the default attributes: give
     * them 256 KiB stacks instead of 8 MiB (their deepest path, a request
     * with an 8 KiB token, needs a few tens of KiB). */
    if (pthread_attr_init(&attr) == 0) {
        if (pthread_attr_setstacksize(&attr, NT_WORKER_STACK) == 0)
            (void)pthread_setattr_default_np(&attr);
        pthread_attr_destroy(&attr);
    }
    if ((rv = wa_http_start(&opts, &callbacks, nt, &nt->http, err, errlen)) !=
        WA_OK)
        return rv;
    mg_set_request_handler(nt->http, "/health$", on_health, nt);
    mg_set_request_handler(nt->http, "/metrics$", on_metrics, nt);
    nt_ws_register(nt, nt->http);
    mg_set_request_handler(nt->http, "/", on_other, nt);
    return WA_OK;
}

void nt_http_stop(nt_t *nt)
{
    if (nt->http != NULL) {
        mg_stop(nt->http);
        nt->http = NULL;
    }
}
