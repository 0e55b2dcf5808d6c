/*
 * fakewa - the fake WhatsApp Web (DESIGN §8): serves a page that behaves
 * like web.whatsapp.com as far as session-svc's adapter can tell, and a
 * control API through which tests play the phone.
 *
 * This file is process plumbing: configuration, the HTTP server, the timer
 * that rotates QR refs, signals and teardown.
 */
#include <stdio.h>

#include "fakewa.h"
#include "wa/http.h"
#include "wa/log.h"
#include "wa/service.h"

/* Each open page holds one CivetWeb thread for its WebSocket. */
#define FW_THREADS (FW_PAGES_MAX + 28)
#define FW_TICK_MS 100

typedef struct fw_config {
    long port;
    long ref_interval_ms;
    long idle_after_ms;
    int log_level;
} fw_config_t;

int main(void)
{
    fw_config_t cfg = {0};
    const wa_config_spec_t specs[] = {
        WA_CFG_INT_SPEC("FAKEWA_PORT", &cfg.port, "3100", 1, 65535),
        WA_CFG_INT_SPEC("FAKEWA_REF_INTERVAL_MS", &cfg.ref_interval_ms, "20000",
                        100, 3600000),
        WA_CFG_INT_SPEC("FAKEWA_IDLE_AFTER_MS", &cfg.idle_after_ms, "180000",
                        100, 86400000),
        WA_LOG_LEVEL_SPEC(&cfg.log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    fw_state_opts_t sopts = {.send = fw_push_send};
    wa_http_opts_t hopts = {
        .threads = FW_THREADS,
        .request_timeout_ms = 10000,
        .max_request_size = 16384,
        /* Idle page channels are kept alive by pings, not closed. */
        .websocket_ping = true,
    };
    struct mg_context *http = NULL;
    fw_state_t *st = NULL;
    char err[256];
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(FW_SERVICE, specs, nspecs);
    wa_log_init(FW_SERVICE, (wa_log_level_t)cfg.log_level);
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    sopts.ref_interval_ms = cfg.ref_interval_ms;
    sopts.idle_after_ms = cfg.idle_after_ms;
    if ((rv = fw_state_new(&sopts, &st)) != WA_OK) {
        wa_error(NULL, "cannot create the state: %s", wa_strerror(rv));
        goto out;
    }
    hopts.port = cfg.port;
    if ((rv = wa_http_start(&hopts, NULL, st, &http, err, sizeof(err))) !=
        WA_OK) {
        /* A port we cannot listen on is configuration (DESIGN §2). */
        wa_service_config_line(FW_SERVICE, "%s", err);
        status = WA_EXIT_CONFIG;
        goto out;
    }
    fw_push_register(http, st);
    fw_control_register(http, st);
    wa_info(NULL,
            "listening on port %ld (QR ref every %ld ms, idle after %ld ms)",
            cfg.port, cfg.ref_interval_ms, cfg.idle_after_ms);

    while (!wa_service_wait(FW_TICK_MS))
        fw_state_tick(st);
    wa_info(NULL, "stopping");
    status = 0;
out:
    /* mg_stop closes every page channel (close handlers run) first. */
    if (http != NULL)
        mg_stop(http);
    fw_state_free(st);
    wa_config_free(specs, nspecs);
    return status;
}
