/*
 * http.c - the gateway's HTTP server: the route table and the one CivetWeb
 * handler that serves every request through it.
 *
 * Order of work for each request: request id, CORS headers, the path
 * decoded (400 for %00 or a bad escape), route lookup (404), preflight
 * (204/403), method (405 with Allow), then for routes that need it the
 * bearer token (401), a user in it for the user's routes (403) and the
 * user's rate limit (429), then the handler. Every answer is counted in the
 * metrics by route template, method and status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* method, path, auth, user, coalesce, handler */
const gw_route_t gw_routes[] = {
    {"GET", "/health", false, false, true, gw_route_health},
    {"GET", "/status", true, true, true, gw_route_status},
    {"POST", "/connect", true, true, false, gw_route_connect},
    {"POST", "/disconnect", true, true, false, gw_route_disconnect},
    {"GET", "/chats", true, true, false, gw_route_chats},
    {"GET", "/messages/{chatId}", true, true, false, gw_route_messages},
    {"POST", "/send", true, true, false, gw_route_send},
    {"GET", "/chat-by-phone", true, true, false, gw_route_chat_by_phone},
    {"GET", "/logs", true, true, true, gw_route_logs},
    {"GET", "/diagnostics", true, false, false, gw_route_diagnostics},
    {"GET", "/admin/sessions", true, false, false, gw_route_admin_sessions},
    {"GET", "/metrics", false, false, false, gw_route_metrics},
    {"GET", "/openapi.json", false, false, false, gw_route_openapi},
    {"GET", "/", false, false, false, gw_route_page},
    {"GET", "/app.js", false, false, false, gw_route_page_js},
    {"GET", "/app.css", false, false, false, gw_route_page_css},
};
const size_t gw_nroutes = sizeof(gw_routes) / sizeof(gw_routes[0]);

/* Kept by hand next to gw_routes; gw_http_test checks they agree. */
const gw_metric_route_t gw_metric_routes[] = {
    {"GET", "/health"},         {"GET", "/status"},
    {"POST", "/connect"},       {"POST", "/disconnect"},
    {"GET", "/chats"},          {"GET", "/messages/{chatId}"},
    {"POST", "/send"},          {"GET", "/chat-by-phone"},
    {"GET", "/logs"},           {"GET", "/diagnostics"},
    {"GET", "/admin/sessions"}, {"GET", "/metrics"},
    {"GET", "/openapi.json"},   {"GET", "/"},
    {"GET", "/app.js"},         {"GET", "/app.css"},
};

bool gw_route_match(const char *tmpl, const char *path, char *param,
                    size_t paramlen)
{
    while (*tmpl != '\0') {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            size_t n = strcspn(path, "/");

            if (close == NULL || n == 0 || paramlen == 0)
                return false;
            /* Too long to be valid: matched, but empty, so that the
             * handler's check refuses it with 400 rather than 404. */
            if (n >= paramlen) {
                param[0] = '\0';
            } else {
                memcpy(param, path, n);
                param[n] = '\0';
            }
            tmpl = close + 1;
            path += n;
            continue;
        }
        if (*tmpl++ != *path++)
            return false;
    }
    return *path == '\0';
}

/* Append "<method>, " to buf[0..len) at used (and "HEAD, " after GET: the
 * GET route serves it); the new used, len or more when it did not fit. */
static size_t put_method(char *buf, size_t used, size_t len, const char *m)
{
    if (used >= len)
        return used;
    return used + (size_t)snprintf(buf + used, len - used, "%s, %s", m,
                                   strcmp(m, "GET") == 0 ? "HEAD, " : "");
}

/* "GET, HEAD, OPTIONS" for the routes sharing route i's template. */
static void allowed_methods(size_t i, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t j = 0; j < gw_nroutes; j++) {
        if (strcmp(gw_routes[j].path, gw_routes[i].path) == 0)
            used = put_method(buf, used, len, gw_routes[j].method);
    }
    if (used < len)
        snprintf(buf + used, len - used, "OPTIONS");
}

/* Find the route for path and method: *route set to the match, or to the
 * first route with that path when only the method differs (returns false),
 * or to gw_nroutes when no template matches. */
static bool find_route(gw_req_t *r, const char *path, const char *method,
                       size_t *route)
{
    /* HEAD is served by the GET route (RFC 9110 9.3.2): wa_http_send
     * writes the headers a GET would get, without the body. */
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    *route = gw_nroutes;
    for (size_t i = 0; i < gw_nroutes; i++) {
        if (!gw_route_match(gw_routes[i].path, path, r->param,
                            sizeof(r->param)))
            continue;
        if (strcmp(gw_routes[i].method, method) == 0) {
            *route = i;
            return true;
        }
        if (*route == gw_nroutes)
            *route = i;
    }
    return false;
}

/* OPTIONS on a known path: a CORS preflight, or a plain question. */
static void answer_options(gw_req_t *r, const char *allow)
{
    const char *origin = mg_get_header(r->conn, "Origin");
    char extra[GW_CORS_HEADERS_MAX + 128];
    char hdrs[GW_CORS_HEADERS_MAX];

    if (!gw_cors_is_preflight(
            r->ri->request_method,
            mg_get_header(r->conn, "Access-Control-Request-Method"))) {
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        gw_reply_json(r, 204, NULL, extra);
        return;
    }
    if (!gw_cors_preflight_headers(r->gw->origins, origin, allow, hdrs,
                                   sizeof(hdrs))) {
        gw_reply_error(r, WA_EFORBIDDEN, "origin not allowed");
        return;
    }
    /* The preflight's CORS headers replace the ordinary ones. */
    snprintf(r->cors, sizeof(r->cors), "%s", hdrs);
    gw_reply_json(r, 204, NULL, NULL);
}

/* The access-log line of a request, at debug: a failure worth a warning
 * was already logged, once, with its reason, where it was handled. */
static void log_request(const gw_req_t *r, int64_t usec)
{
    const wa_log_level_t level = WA_LOG_DEBUG;
    char status[8], ms[24];

    if (!wa_log_enabled(level))
        return;
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(ms, sizeof(ms), "%.3f", (double)usec / 1000.0);
    wa_log_kv(level, r->rid, "request", "method", r->ri->request_method,
              "route",
              r->route < gw_nroutes ? gw_routes[r->route].path : "unmatched",
              "status", status, "ms", ms, "user",
              r->who.user[0] != '\0' ? r->who.user : NULL, NULL);
}

/*
 * Serve a read that identical requests in flight may share (coalesce.h).
 * The key names everything the answer depends on: route, user, query.
 */
static void serve_coalesced(gw_req_t *r)
{
    const gw_route_t *route = &gw_routes[r->route];
    const char *q = r->ri->query_string != NULL ? r->ri->query_string : "";
    const gw_answer_t *ans;
    gw_flight_t *fl;
    char key[512];
    bool leader;
    int n;
    wa_err_t rv;

    n = snprintf(key, sizeof(key), "%s\n%s\n%s", route->path, r->who.user, q);
    if (n < 0 || (size_t)n >= sizeof(key) ||
        (fl = gw_flight_join(r->gw->flights, key, &leader)) == NULL) {
        route->handler(r); /* a long query, or no memory: on our own */
        return;
    }
    if (leader) {
        r->flight = fl;
        route->handler(r);
        if (r->flight != NULL) /* nothing was sent: nothing to share */
            gw_flight_publish_failed(r->gw->flights, fl);
        r->flight = NULL;
        gw_flight_leave(r->gw->flights, fl);
        return;
    }
    rv = gw_flight_wait(r->gw->flights, fl, r->deadline_ms, &ans);
    if (rv == WA_OK) {
        wa_debug(r->rid, "answer shared with an identical request");
        gw_reply_answer(r, ans);
    } else if (rv == WA_ETIMEDOUT) {
        gw_reply_error(r, WA_ETIMEDOUT, "store-svc did not answer in time");
    } else {
        route->handler(r);
    }
    gw_flight_leave(r->gw->flights, fl);
}

static int on_request(struct mg_connection *conn, void *arg)
{
    gw_t *gw = arg;
    gw_req_t r;
    const char *raw, *path, *why = "path: malformed";
    char *decoded = NULL;
    char allow[64];
    int64_t usec;
    bool exact;

    /* Not zeroed whole: the buffers are filled before they are read. */
    r.gw = gw;
    r.conn = conn;
    r.ri = mg_get_request_info(conn);
    r.route = gw_nroutes;
    r.status = 0;
    r.body_read = false;
    r.flight = NULL;
    r.param[0] = '\0';
    r.who.user[0] = '\0';
    r.who.admin = false;
    r.t0_us = gw_now_us();
    r.deadline_ms = wa_now_ms() + gw->cfg.bus_timeout_ms;
    gw_metrics_in_flight(gw->metrics, 1);
    wa_http_request_id(conn, r.rid, sizeof(r.rid));
    gw_cors_headers(gw->origins, mg_get_header(conn, "Origin"), r.cors,
                    sizeof(r.cors));

    /* CivetWeb leaves the path encoded for us (wa_http_opts_t.raw_path):
     * its own decoding would end it at an encoded NUL, and
     * "/status%00junk" would be served as /status. */
    path = raw = r.ri->local_uri != NULL ? r.ri->local_uri : "";
    if (strchr(raw, '%') != NULL) {
        size_t n = strlen(raw) + 1;
        wa_err_t rv;

        if ((decoded = malloc(n)) == NULL) {
            gw_reply_error(&r, WA_ENOMEM, NULL);
            goto done;
        }
        if ((rv = gw_path_decode(raw, decoded, n, &why)) != WA_OK) {
            gw_reply_error(&r, rv == WA_EINVAL ? WA_EINVAL : WA_EINTERNAL,
                           rv == WA_EINVAL ? why : NULL);
            goto done;
        }
        path = decoded;
    }
    exact = find_route(&r, path, r.ri->request_method, &r.route);
    if (r.route == gw_nroutes) {
        gw_reply_error(&r, WA_ENOTFOUND, "no such route");
        goto done;
    }
    allowed_methods(r.route, allow, sizeof(allow));
    if (!exact && strcmp(r.ri->request_method, "OPTIONS") == 0) {
        answer_options(&r, allow);
        goto done;
    }
    if (!exact) {
        char extra[96];

        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        gw_reply_error_status(&r, 405, WA_EMETHOD, NULL, extra);
        goto done;
    }
    if (gw_routes[r.route].auth && !gw_authenticate(&r))
        goto done;
    /* An admin service key (Supabase's service_role) names no user: it
     * may use the admin routes, never a user's. */
    if (gw_routes[r.route].user && r.who.user[0] == '\0') {
        gw_reply_error(&r, WA_EFORBIDDEN, "token names no user");
        goto done;
    }
    if (gw_routes[r.route].auth && !gw_rate_limit(&r))
        goto done;
    if (gw_routes[r.route].coalesce)
        serve_coalesced(&r);
    else
        gw_routes[r.route].handler(&r);
    if (r.status == 0) {
        /* A handler that forgot to answer is a bug; never leave the client
         * hanging. */
        wa_error(r.rid, "handler for %s answered nothing",
                 gw_routes[r.route].path);
        gw_reply_error(&r, WA_EINTERNAL, NULL);
    }
done:
    free(decoded);
    usec = gw_now_us() - r.t0_us;
    gw_metrics_request(gw->metrics, r.route, r.ri->request_method, r.status,
                       usec);
    gw_metrics_in_flight(gw->metrics, -1);
    log_request(&r, usec);
    return r.status;
}

/* The connection data of a connection whose request CivetWeb refused
 * itself (on_http_error answered it and the connection closes): nothing
 * is left for on_connection_close to answer. */
static char refused_mark;

/*
 * CivetWeb's own error answers (a request it could not parse, headers over
 * the size limit...) in our error shape, with a request id, and counted.
 * The connection is closed after it: the stream cannot be trusted.
 */
static int on_http_error(struct mg_connection *conn, int status,
                         const char *errmsg)
{
    gw_t *gw = mg_get_user_data(mg_get_context(conn));
    wa_err_t code = status == 413                    ? WA_ETOOBIG
                    : status == 405                  ? WA_EMETHOD
                    : status >= 500 && status != 505 ? WA_EINTERNAL
                                                     : WA_EINVAL;
    const char *msg = status == 413   ? "request headers too large"
                      : status == 405 ? "method not allowed"
                      : status == 505 ? "HTTP version not supported"
                      : status >= 500 ? "internal error"
                                      : "malformed request";
    gw_req_t r = {.gw = gw, .conn = conn, .route = gw_nroutes};
    static const struct mg_request_info none = {.content_length = -1};

    (void)errmsg; /* CivetWeb's text; not for clients */
    r.ri =
        mg_get_request_info(conn) != NULL ? mg_get_request_info(conn) : &none;
    r.t0_us = gw_now_us();
    r.body_read = true;
    wa_http_request_id(conn, r.rid, sizeof(r.rid));
    snprintf(r.cors, sizeof(r.cors), "Vary: Origin\r\n");
    mg_disable_connection_keep_alive(conn);
    mg_set_user_connection_data(conn, &refused_mark);
    gw_reply_error_status(&r, status, code, msg, "Connection: close\r\n");
    gw_metrics_request(gw->metrics, gw_nroutes, r.ri->request_method, status,
                       0);
    wa_debug(r.rid, "CivetWeb refused a request: %d", status);
    return 0;
}

/* "GET, HEAD, POST, OPTIONS": every method some route serves. */
static void server_methods(char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < gw_nroutes; i++) {
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(gw_routes[j].method, gw_routes[i].method) == 0;
        if (!seen)
            used = put_method(buf, used, len, gw_routes[i].method);
    }
    if (used < len)
        snprintf(buf + used, len - used, "OPTIONS");
}

/*
 * CivetWeb 1.15 reads a request whose target is "*" (OPTIONS * asks about
 * the server as a whole, RFC 9110 9.3.7) or an absolute URI naming another
 * server, calls no handler for it and closes the connection without a byte
 * (civetweb.c, process_new_connection: "TODO: Deal with '*'" and "TODO:
 * handle non-local request (PROXY)"). The connection_close callback is the
 * one place such a request is still seen, its buffer intact (CivetWeb
 * discards a request's bytes only to read the next one on a kept
 * connection), so it is answered here, before the socket closes, like any
 * other: 204 with Allow for OPTIONS *, else 400, with X-Request-Id.
 *
 * The request it left unanswered is the one with a method and a target
 * but no local path: a request that was served has one (until the next
 * request is read, which clears the method), and a request CivetWeb
 * refused carries refused_mark.
 */
static void on_connection_close(const struct mg_connection *cconn)
{
    const struct mg_request_info *ri = mg_get_request_info(cconn);
    gw_t *gw = mg_get_user_data(mg_get_context(cconn));
    struct mg_connection *conn = (struct mg_connection *)cconn;
    char extra[128], methods[64];
    gw_req_t r;

    if (gw == NULL || ri == NULL || ri->request_method == NULL ||
        ri->request_uri == NULL || ri->local_uri != NULL ||
        mg_get_user_connection_data(cconn) == &refused_mark)
        return;
    /* Only mg_write is used on it, as CivetWeb's own close path allows. */
    r.gw = gw;
    r.conn = conn;
    r.ri = ri;
    r.route = gw_nroutes;
    r.status = 0;
    r.body_read = true; /* the connection closes: nothing to drain */
    r.flight = NULL;
    r.who.user[0] = '\0';
    r.who.admin = false;
    r.t0_us = gw_now_us();
    wa_http_request_id(conn, r.rid, sizeof(r.rid));
    gw_cors_headers(gw->origins, mg_get_header(conn, "Origin"), r.cors,
                    sizeof(r.cors));
    if (strcmp(ri->request_uri, "*") != 0) {
        gw_reply_error_status(&r, 400, WA_EINVAL,
                              "request target names another server",
                              "Connection: close\r\n");
    } else if (strcmp(ri->request_method, "OPTIONS") != 0) {
        gw_reply_error_status(&r, 400, WA_EINVAL,
                              "request target * is for OPTIONS only",
                              "Connection: close\r\n");
    } else {
        server_methods(methods, sizeof(methods));
        snprintf(extra, sizeof(extra), "Allow: %s\r\nConnection: close\r\n",
                 methods);
        gw_reply_json(&r, 204, NULL, extra);
    }
    gw_metrics_request(gw->metrics, gw_nroutes, ri->request_method, r.status,
                       gw_now_us() - r.t0_us);
    log_request(&r, gw_now_us() - r.t0_us);
}

wa_err_t gw_http_start(gw_t *gw, char *err, size_t errlen)
{
    static const struct mg_callbacks callbacks = {
        .http_error = on_http_error,
        .connection_close = on_connection_close,
    };
    const wa_http_opts_t opts = {
        .port = gw->cfg.port,
        .threads = gw->cfg.threads,
        .request_timeout_ms = 10000,
        .max_request_size = 16384,
        .raw_path = true,
    };
    wa_err_t rv;

    if ((rv = wa_http_start(&opts, &callbacks, gw, &gw->http, err, errlen)) !=
        WA_OK)
        return rv;
    mg_set_request_handler(gw->http, "/", on_request, gw);
    return WA_OK;
}

void gw_http_stop(gw_t *gw)
{
    if (gw->http != NULL) {
        mg_stop(gw->http);
        gw->http = NULL;
    }
}

int64_t gw_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
