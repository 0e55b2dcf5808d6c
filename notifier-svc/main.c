/*
 * notifier-svc - the live event stream (DESIGN §5): receives every session
 * event on a SUB socket listening on EVENTS_URL and fans it out to the
 * WebSocket subscribers of that user only.
 *
 * This file is process plumbing only: configuration, sockets, the HTTP
 * server, the event pump (this thread), signals and teardown.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "notifier.h"
#include "wa/log.h"
#include "wa/service.h"

/* How long shutdown waits for clients to answer the 1001 close frames. */
#define NT_DRAIN_MS 2000

/* nng SUB's receive queue, in messages (nng's maximum). A burst beyond it
 * is dropped by nng, which is why events carry seq. */
#define NT_SUB_RECVBUF 8192

/* How long the pump waits for an event before it checks for a stop. */
#define NT_PUMP_WAIT_MS 200

/* Say goodbye (1001) to every client and give them a moment to answer, so
 * CivetWeb's stop finds few connections left to cut. */
static void drain(nt_t *nt)
{
    long long deadline = wa_now_ms() + NT_DRAIN_MS;
    nt_gauges_t g;

    nt_hub_close_all(nt->hub, NT_CLOSE_GOING_AWAY, "server shutting down");
    for (;;) {
        nt_hub_gauges(nt->hub, &g);
        if (g.connections == 0 || wa_now_ms() >= deadline)
            break;
        struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

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
        WA_CFG_INT_SPEC("NOTIFIER_REPLAY", &cfg->replay, "256", 1, 65536),
        WA_CFG_INT_SPEC("NOTIFIER_REPLAY_BYTES", &cfg->replay_bytes, "1048576",
                        4096, 268435456),
        WA_CFG_INT_SPEC("NOTIFIER_REPLAY_USERS", &cfg->replay_users, "1000", 1,
                        1000000),
        WA_CFG_INT_SPEC("NOTIFIER_MAX_CONN", &cfg->max_conn, "1000", 1, 50000),
        WA_CFG_INT_SPEC("NOTIFIER_MAX_CONN_PER_USER", &cfg->max_conn_user, "16",
                        1, 50000),
        WA_CFG_INT_SPEC("NOTIFIER_QUEUE_FRAMES", &cfg->queue_frames, "1024", 2,
                        1048576),
        WA_CFG_INT_SPEC("NOTIFIER_QUEUE_BYTES", &cfg->queue_bytes, "4194304",
                        4096, 1073741824),
        WA_CFG_INT_SPEC("NOTIFIER_WS_TIMEOUT_MS", &cfg->ws_timeout_ms, "5000",
                        200, 600000),
        WA_CFG_INT_SPEC("NOTIFIER_WRITERS", &cfg->writers, "4", 1, 256),
        WA_LOG_LEVEL_SPEC(&cfg->log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    const wa_sock_opts_t sub_opts = {.recv_timeout_ms = NT_PUMP_WAIT_MS};
    nt_pump_t *pump = NULL;
    nt_hub_opts_t hub_opts;
    char err[256];
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(NT_SERVICE, specs, nspecs);
    /* A replay must fit a fresh send queue, or every ?since= would
     * overflow it. */
    if (cfg->queue_frames <= cfg->replay)
        wa_service_config_fail(NT_SERVICE,
                               "NOTIFIER_QUEUE_FRAMES: must be greater than "
                               "NOTIFIER_REPLAY (%ld)",
                               cfg->replay);
    if (cfg->queue_bytes < cfg->replay_bytes)
        wa_service_config_fail(NT_SERVICE,
                               "NOTIFIER_QUEUE_BYTES: must be at least "
                               "NOTIFIER_REPLAY_BYTES (%ld)",
                               cfg->replay_bytes);
    if ((nt.origins = wa_strv_split(cfg->allowed_origins)) == NULL)
        wa_service_config_fail(NT_SERVICE, "out of memory");
    wa_log_init(NT_SERVICE, (wa_log_level_t)cfg->log_level);
    nt.auth = wa_service_auth(NT_SERVICE, &cfg->auth);
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    hub_opts = (nt_hub_opts_t){
        .replay = (size_t)cfg->replay,
        .replay_bytes = (size_t)cfg->replay_bytes,
        .users_max = (size_t)cfg->replay_users,
        .max_conn = (size_t)cfg->max_conn,
        .max_conn_per_user = (size_t)cfg->max_conn_user,
    };
    if ((rv = nt_hub_new(&hub_opts, &nt.metrics, &nt.hub)) != WA_OK) {
        wa_error(NULL, "cannot create the hub: %s", wa_strerror(rv));
        goto out;
    }
    if ((rv = nt_writers_new((size_t)cfg->writers, &nt.metrics, &nt.writers)) !=
        WA_OK) {
        wa_error(NULL, "cannot start the writer pool: %s", wa_strerror(rv));
        goto out;
    }
    if (wa_service_listen(NT_SERVICE, WA_SOCK_SUB, cfg->events_url, &sub_opts,
                          &nt.sub, &status) != WA_OK)
        goto out;
    if ((rv = wa_bus_subscribe(nt.sub, NULL)) != WA_OK ||
        (rv = wa_bus_err(nng_socket_set_int(nt.sub, NNG_OPT_RECVBUF,
                                            NT_SUB_RECVBUF))) != WA_OK) {
        wa_error(NULL, "cannot subscribe on %s: %s", cfg->events_url,
                 wa_strerror(rv));
        goto out;
    }
    if ((rv = nt_pump_new(nt.sub, NT_PUMP_WAIT_MS, nt.hub, nt.writers,
                          &nt.metrics, &pump)) != WA_OK) {
        wa_error(NULL, "cannot start the event pump: %s", wa_strerror(rv));
        goto out;
    }
    nt.started_ms = wa_now_ms();
    if ((rv = nt_http_start(&nt, err, sizeof(err))) != WA_OK) {
        /* A port we cannot listen on is configuration (DESIGN §2). */
        wa_service_config_line(NT_SERVICE, "%s", err);
        status = WA_EXIT_CONFIG;
        goto out;
    }
    wa_info(NULL, "listening on port %ld, events on %s", cfg->port,
            cfg->events_url);

    while (!wa_service_stopping())
        (void)nt_pump_run_once(pump);
    wa_info(NULL, "stopping");
    drain(&nt);
    status = 0;
out:
    /* mg_stop runs every remaining close handler, which stops its queue
     * and detaches from the hub; only then may the pool and hub go. */
    nt_http_stop(&nt);
    if (nng_socket_id(nt.sub) > 0)
        nng_close(nt.sub);
    nt_pump_free(pump);
    nt_writers_free(nt.writers);
    nt_hub_free(nt.hub);
    wa_strv_free(nt.origins);
    wa_auth_free(nt.auth);
    wa_config_free(specs, nspecs);
    return status;
}
