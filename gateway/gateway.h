/*
 * gateway.h - the gateway's private state, shared by its files.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <civetweb.h>

#include "wa/auth.h"
#include "wa/bus.h"
#include "wa/http.h"

#define GW_SERVICE "gateway"

typedef struct gw_config {
    long port;
    wa_auth_opts_t auth;
    char *allowed_origins;
    long rate_rps;
    long rate_burst;
    char *store_url;
    long threads;
    long bus_timeout_ms;
    int log_level;
} gw_config_t;

typedef struct gw {
    gw_config_t cfg;
    wa_auth_t *auth;
    char **origins;   /* ALLOWED_ORIGINS, split */
    nng_socket store; /* REQ, dials STORE_URL */
    struct mg_context *http;
    long long started_ms;
} gw_t;

/* Start / stop the HTTP server with every route registered. */
wa_err_t gw_http_start(gw_t *gw, char *err, size_t errlen);
void gw_http_stop(gw_t *gw);

#endif /* GW_GATEWAY_H */
