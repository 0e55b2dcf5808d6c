/*
 * gateway - the HTTP front door (DESIGN §4): authenticates each request and
 * answers it from store-svc and the session-svc instance that owns the user.
 *
 * This file is process plumbing only: configuration, the shared objects
 * (rate limiter, metrics, placement, the store socket), the HTTP server,
 * signals and teardown in reverse order. Routes live in their own files.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* For the idle trim: kept /logs bodies help only while clients poll. */
static void release_memory(void *arg)
{
    gw_t *gw = arg;

    gw_logcache_clear(gw->logcache);
}

int main(int argc, char **argv)
{
    gw_t gw = {0};
    gw_config_t *cfg = &gw.cfg;
    const wa_config_spec_t specs[] = {
        WA_CFG_INT_SPEC("PORT", &cfg->port, "3001", 1, 65535),
        WA_AUTH_CONFIG_SPECS(&cfg->auth),
        WA_CFG_STR_SPEC("ALLOWED_ORIGINS", &cfg->allowed_origins, NULL, 0,
                        65536),
        WA_CFG_INT_SPEC("RATE_LIMIT_RPS", &cfg->rate_rps, "20", 1, 1000000),
        WA_CFG_INT_SPEC("RATE_LIMIT_BURST", &cfg->rate_burst, "40", 1, 1000000),
        WA_CFG_URL_SPEC("STORE_URL", &cfg->store_url, "tcp://127.0.0.1:5560"),
        WA_CFG_INT_SPEC("GATEWAY_THREADS", &cfg->threads, "32", 2, 1024),
        WA_CFG_INT_SPEC("GATEWAY_MAX_BODY", &cfg->max_body, "262144", 1024,
                        4194304),
        WA_CFG_INT_SPEC("BUS_TIMEOUT_MS", &cfg->bus_timeout_ms, "3000", 50,
                        60000),
        WA_LOG_LEVEL_SPEC(&cfg->log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    char err[256];
    int status = 1;
    wa_err_t rv;

    (void)argc;
    wa_service_tune_malloc(argv);
    gw.store = (nng_socket)NNG_SOCKET_INITIALIZER;
    /* glibc gives busy threads arenas of their own, up to 8 per CPU, and
     * each keeps what it freed: with a CivetWeb thread per connection that
     * is megabytes held for nothing. Two arenas measured as fast on the
     * hot path (tcache serves the small allocations) and hold less. Not
     * fatal if refused. */
    (void)mallopt(M_ARENA_MAX, 2);
    wa_service_load_config(GW_SERVICE, specs, nspecs);
    if ((gw.origins = wa_strv_split(cfg->allowed_origins)) == NULL)
        wa_service_config_fail(GW_SERVICE, "out of memory");
    wa_log_init(GW_SERVICE, (wa_log_level_t)cfg->log_level);
    gw.auth = wa_service_auth(GW_SERVICE, &cfg->auth);
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    if ((rv = gw_ratelimit_new((double)cfg->rate_rps, (double)cfg->rate_burst,
                               GW_RL_MAX_BUCKETS_DEFAULT, &gw.ratelimit)) !=
            WA_OK ||
        (rv = gw_metrics_new(gw_metric_routes, gw_nroutes, &gw.metrics)) !=
            WA_OK ||
        (rv = gw_placement_new(&gw, &gw.placement)) != WA_OK ||
        (rv = gw_flights_new(&gw.flights)) != WA_OK ||
        (rv = gw_authcache_new(&gw.authcache)) != WA_OK ||
        (rv = gw_logcache_new(&gw.logcache)) != WA_OK) {
        wa_error(NULL, "cannot start: %s", wa_strerror(rv));
        goto out;
    }
    if ((rv = wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, cfg->store_url, NULL,
                          &gw.store)) != WA_OK) {
        wa_error(NULL, "cannot dial %s: %s", cfg->store_url, wa_strerror(rv));
        goto out;
    }
    if ((rv = wa_bus_batcher_new(gw.store, GW_STORE_INFLIGHT,
                                 &gw.store_batch)) != WA_OK) {
        wa_error(NULL, "cannot start: %s", wa_strerror(rv));
        goto out;
    }
    gw_metrics_watch_store(gw.metrics, gw.store_batch);
    gw_metrics_watch_logcache(gw.metrics, gw.logcache);
    gw.started_ms = wa_now_ms();
    if ((rv = gw_http_start(&gw, err, sizeof(err))) != WA_OK) {
        /* A port we cannot listen on is configuration (DESIGN §2): one
         * plain line, as for any other bad setting, and exit status 2. */
        wa_service_config_line(GW_SERVICE, "%s", err);
        status = WA_EXIT_CONFIG;
        goto out;
    }
    wa_info(NULL, "listening on port %ld with %ld threads, store at %s",
            cfg->port, cfg->threads, cfg->store_url);

    while (!wa_service_wait(1000)) {
        if (wa_service_trim_when_idle(gw_metrics_requests_total(gw.metrics),
                                      release_memory, &gw))
            wa_debug(NULL, "idle: freed heap memory returned to the system");
    }
    wa_info(NULL, "stopping");
    status = 0;
out:
    /* The server first: mg_stop() waits for running handlers, which use
     * everything below. */
    gw_http_stop(&gw);
    gw_authcache_free(gw.authcache);
    gw_logcache_free(gw.logcache);
    gw_flights_free(gw.flights);
    gw_placement_free(gw.placement);
    if (nng_socket_id(gw.store) > 0)
        nng_close(gw.store);
    wa_bus_batcher_free(gw.store_batch);
    gw_metrics_free(gw.metrics);
    gw_ratelimit_free(gw.ratelimit);
    wa_strv_free(gw.origins);
    wa_auth_free(gw.auth);
    wa_config_free(specs, nspecs);
    return status;
}
