/*
 * notifier-svc - the live event stream (DESIGN §5): receives every session
 * event on a SUB socket listening on EVENTS_URL and fans it out to the
 * WebSocket subscribers of that user only.
 *
 * This file is process plumbing only: configuration, sockets, the HTTP
 * server, signals and teardown.
 */
#include <stdio.h>
#include <string.h>

#include "notifier.h"
#include "wa/log.h"
#include "wa/service.h"

int main(void)
{
    nt_t nt = {0};
    nt_config_t *cfg = &nt.cfg;
    const wa_config_spec_t specs[] = {
        WA_CFG_INT_SPEC("NOTIFIER_PORT", &cfg->port, "3002", 1, 65535),
        WA_AUTH_CONFIG_SPECS(&cfg->auth),
        WA_CFG_STR_SPEC("ALLOWED_ORIGINS", &cfg->allowed_origins, NULL, 0,
                        65536),
        WA_CFG_URL_SPEC("EVENTS_URL", &cfg->events_url, "tcp://127.0.0.1:5570"),
        WA_CFG_INT_SPEC("NOTIFIER_THREADS", &cfg->threads, "16", 2, 1024),
        WA_LOG_LEVEL_SPEC(&cfg->log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    const wa_sock_opts_t sub_opts = {.recv_timeout_ms = 200};
    char err[256];
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(NT_SERVICE, specs, nspecs);
    if (wa_auth_new(&cfg->auth, &nt.auth, err, sizeof(err)) != WA_OK)
        wa_service_config_fail(NT_SERVICE, "configuration: %s", err);
    if ((nt.origins = wa_strv_split(cfg->allowed_origins)) == NULL)
        wa_service_config_fail(NT_SERVICE, "out of memory");
    wa_log_init(NT_SERVICE, (wa_log_level_t)cfg->log_level);
    if (wa_auth_dev_mode(nt.auth))
        wa_warn(NULL, "AUTH_DEV_MODE=1: insecure raw tokens are accepted; "
                      "never use this in production");
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    if ((rv = wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN, cfg->events_url,
                          &sub_opts, &nt.sub)) != WA_OK ||
        (rv = wa_bus_subscribe(nt.sub, NULL)) != WA_OK) {
        wa_error(NULL, "cannot listen on %s: %s", cfg->events_url,
                 wa_strerror(rv));
        goto out;
    }
    nt.started_ms = wa_now_ms();
    if ((rv = nt_http_start(&nt, err, sizeof(err))) != WA_OK) {
        wa_error(NULL, "%s", err);
        goto out;
    }
    wa_info(NULL, "listening on port %ld, events on %s", cfg->port,
            cfg->events_url);

    /* The event pump: events are counted here until fan-out lands. */
    while (!wa_service_stopping()) {
        wa_event_t ev;

        rv = wa_bus_recv_event(nt.sub, &ev);
        if (rv == WA_OK) {
            __atomic_add_fetch(&nt.events_in, 1, __ATOMIC_RELAXED);
            wa_event_clear(&ev);
        } else if (rv != WA_ETIMEDOUT && rv != WA_ECLOSED) {
            wa_warn(NULL, "dropped a malformed event: %s", wa_strerror(rv));
        }
    }
    wa_info(NULL, "stopping");
    status = 0;
out:
    nt_http_stop(&nt);
    if (nng_socket_id(nt.sub) > 0)
        nng_close(nt.sub);
    wa_strv_free(nt.origins);
    wa_auth_free(nt.auth);
    wa_config_free(specs, nspecs);
    return status;
}
