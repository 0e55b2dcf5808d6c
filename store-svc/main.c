/*
 * store-svc - the only owner of the SQLite database (DESIGN §1, §6).
 *
 * Serves the bus operations of the store on a REP socket listening on
 * STORE_URL. This file is process plumbing only: configuration, signals,
 * the store, the bus server, orderly teardown. The operations are in
 * ops.c; store.h maps the rest.
 *
 * Exit status: 0 after SIGTERM/SIGINT; 2 for bad configuration, including
 * a DB_PATH that cannot name a database file and a STORE_URL that cannot be
 * listened on (held by another process, not this host's); 1 when the
 * database cannot be opened or migrated (unwritable, corrupt, a newer
 * schema), with the reason logged.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "wa/bus.h"
#include "wa/log.h"
#include "wa/service.h"

typedef struct store_config {
    char *db_path;
    char *store_url;
    long workers;
    int log_level;
} store_config_t;

int main(void)
{
    store_config_t cfg = {0};
    const wa_config_spec_t specs[] = {
        WA_CFG_STR_SPEC("DB_PATH", &cfg.db_path, "./data/sessions.db", 1, 4096),
        WA_CFG_URL_SPEC("STORE_URL", &cfg.store_url, "tcp://127.0.0.1:5560"),
        /* Bus contexts: requests in flight at once, and so the largest
         * group commit (a write holds its context until committed). */
        WA_CFG_INT_SPEC("STORE_WORKERS", &cfg.workers, "64", 1, 256),
        WA_LOG_LEVEL_SPEC(&cfg.log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    store_opts_t o = {0};
    wa_bus_server_t *server = NULL;
    nng_socket rep = NNG_SOCKET_INITIALIZER;
    store_t *store = NULL;
    char err[512];
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(STORE_SERVICE, specs, nspecs);
    wa_log_init(STORE_SERVICE, (wa_log_level_t)cfg.log_level);
    if (wa_service_signals() != WA_OK) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    /* The address first: one taken is configuration, refused before the
     * database is touched. Requests that come before the server starts
     * wait in the socket. */
    if (wa_service_listen(STORE_SERVICE, WA_SOCK_REP, cfg.store_url, NULL, &rep,
                          &status) != WA_OK)
        goto out;
    o.db_path = cfg.db_path;
    if ((rv = store__open(&o, &store, err, sizeof(err))) != WA_OK) {
        if (rv == WA_ECONFIG) {
            wa_config_free(specs, nspecs);
            wa_service_config_fail(STORE_SERVICE, "%s", err);
        }
        wa_error(NULL, "cannot open the database %s: %s", cfg.db_path, err);
        goto out;
    }
    if ((rv = wa_bus_server_start(rep, (int)cfg.workers, ops__handle, store,
                                  &server)) != WA_OK) {
        wa_error(NULL, "cannot start the bus server: %s", wa_strerror(rv));
        goto out;
    }
    wa_info(NULL, "listening on %s (database %s, schema version %d)",
            cfg.store_url, cfg.db_path, DB_SCHEMA_VERSION);

    while (!wa_service_wait(1000))
        (void)wa_service_trim_when_idle(wa_bus_server_requests(server),
                                        store__release_memory, store);
    wa_info(NULL, "stopping");
    status = 0;
out:
    /* Writes still queued are committed and answered before the bus server
     * goes: it must not be stopped while a job is held (bus.h). */
    store__quiesce(store);
    if (server != NULL)
        wa_bus_server_stop(server);
    if (nng_socket_id(rep) > 0)
        nng_close(rep);
    store__close(store);
    wa_config_free(specs, nspecs);
    return status;
}
