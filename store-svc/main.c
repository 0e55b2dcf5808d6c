/*
 * store-svc - the only owner of the SQLite database (DESIGN §1, §6).
 *
 * Serves the bus operations of the store on a REP socket listening on
 * STORE_URL. This file is process plumbing only: configuration, signals,
 * the bus server, orderly teardown.
 */
#include <stdio.h>
#include <string.h>

#include "wa/bus.h"
#include "wa/log.h"
#include "wa/service.h"

#define SERVICE "store-svc"

typedef struct store_config {
    char *db_path;
    char *store_url;
    long workers;
    int log_level;
} store_config_t;

static void handle(void *arg, wa_bus_job_t *job)
{
    const wa_request_t *req = wa_bus_job_request(job);
    cJSON *data;

    (void)arg;
    if (req->op != WA_OP_PING) {
        wa_bus_reply_err(job, WA_EUNKNOWNOP,
                         "operation not served by " SERVICE);
        return;
    }
    if ((data = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(data, "service", SERVICE) == NULL ||
        cJSON_AddStringToObject(data, "version", WA_VERSION) == NULL) {
        cJSON_Delete(data);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    wa_bus_reply_ok(job, data);
}

int main(void)
{
    store_config_t cfg = {0};
    const wa_config_spec_t specs[] = {
        WA_CFG_STR_SPEC("DB_PATH", &cfg.db_path, "./data/sessions.db", 1, 4096),
        WA_CFG_URL_SPEC("STORE_URL", &cfg.store_url, "tcp://127.0.0.1:5560"),
        WA_CFG_INT_SPEC("STORE_WORKERS", &cfg.workers, "8", 1, 256),
        WA_LOG_LEVEL_SPEC(&cfg.log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    wa_bus_server_t *server = NULL;
    nng_socket rep = NNG_SOCKET_INITIALIZER;
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(SERVICE, specs, nspecs);
    wa_log_init(SERVICE, (wa_log_level_t)cfg.log_level);
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    if ((rv = wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, cfg.store_url, NULL,
                          &rep)) != WA_OK) {
        wa_error(NULL, "cannot listen on %s: %s", cfg.store_url,
                 wa_strerror(rv));
        goto out;
    }
    if ((rv = wa_bus_server_start(rep, (int)cfg.workers, handle, NULL,
                                  &server)) != WA_OK) {
        wa_error(NULL, "cannot start the bus server: %s", wa_strerror(rv));
        goto out;
    }
    wa_info(NULL, "listening on %s (database %s)", cfg.store_url, cfg.db_path);

    wa_service_wait(-1);
    wa_info(NULL, "stopping");
    status = 0;
out:
    if (server != NULL)
        wa_bus_server_stop(server);
    if (nng_socket_id(rep) > 0)
        nng_close(rep);
    wa_config_free(specs, nspecs);
    return status;
}
