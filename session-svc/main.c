/*
 * session-svc - the WhatsApp Web clients (DESIGN §7): one headless Chromium
 * per user, driven over the DevTools protocol from a libuv loop.
 *
 * This file is process plumbing only: configuration, the bus sockets, the
 * loop, signals and teardown.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "wa/log.h"
#include "wa/service.h"

static void handle(void *arg, wa_bus_job_t *job)
{
    const wa_request_t *req = wa_bus_job_request(job);
    ss_t *ss = arg;
    cJSON *data;

    if (req->op != WA_OP_PING) {
        wa_bus_reply_err(job, WA_EUNKNOWNOP,
                         "operation not served by " SS_SERVICE);
        return;
    }
    if ((data = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(data, "service", SS_SERVICE) == NULL ||
        cJSON_AddStringToObject(data, "instance", ss->instance) == NULL ||
        cJSON_AddStringToObject(data, "version", WA_VERSION) == NULL) {
        cJSON_Delete(data);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    wa_bus_reply_ok(job, data);
}

static void on_signal(uv_signal_t *h, int signum)
{
    wa_info(NULL, "signal %d: stopping", signum);
    uv_stop(h->loop);
}

static void close_cb_noop(uv_handle_t *h)
{
    (void)h;
}

int main(void)
{
    static ss_t ss; /* large (paths); static keeps it off the stack */
    ss_config_t *cfg = &ss.cfg;
    char *path_env = NULL;
    const wa_config_spec_t specs[] = {
        WA_CFG_STR_SPEC("SESSIONS_DIR", &cfg->sessions_dir,
                        "./whatsapp-sessions", 1, 3000),
        WA_CFG_STR_SPEC("WA_WEB_URL", &cfg->wa_web_url,
                        "https://web.whatsapp.com", 8, 2048),
        WA_CFG_STR_SPEC("CHROMIUM_PATH", &cfg->chromium_path, NULL, 1, 4000),
        WA_CFG_STR_SPEC("PUPPETEER_EXECUTABLE_PATH", &cfg->puppeteer_path, NULL,
                        1, 4000),
        WA_CFG_INT_SPEC("MAX_SESSIONS", &cfg->max_sessions, "50", 1, 10000),
        WA_CFG_STR_SPEC("INSTANCE_ID", &cfg->instance_id, NULL, 1, 100),
        WA_CFG_URL_SPEC("STORE_URL", &cfg->store_url, "tcp://127.0.0.1:5560"),
        WA_CFG_URL_SPEC("EVENTS_URL", &cfg->events_url, "tcp://127.0.0.1:5570"),
        WA_CFG_URL_SPEC("SESSION_URL", &cfg->session_url,
                        "tcp://127.0.0.1:5580"),
        WA_CFG_URL_SPEC("SESSION_ADVERTISE_URL", &cfg->advertise_url, NULL),
        WA_CFG_INT_SPEC("SESSION_WORKERS", &cfg->workers, "16", 1, 256),
        WA_CFG_STR_SPEC("PATH", &path_env, "/usr/local/bin:/usr/bin:/bin", 0,
                        65536),
        WA_LOG_LEVEL_SPEC(&cfg->log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    char err[512], host[64];
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(SS_SERVICE, specs, nspecs);
    if (strncmp(cfg->wa_web_url, "https://", 8) != 0 &&
        strncmp(cfg->wa_web_url, "http://", 7) != 0)
        wa_service_config_fail(SS_SERVICE,
                               "configuration: WA_WEB_URL: must be an "
                               "http:// or https:// URL");
    if (ss_chromium_resolve(cfg->chromium_path, cfg->puppeteer_path, path_env,
                            ss.chromium, sizeof(ss.chromium), err,
                            sizeof(err)) != WA_OK)
        wa_service_config_fail(SS_SERVICE, "configuration: %s", err);
    if (cfg->instance_id != NULL) {
        snprintf(ss.instance, sizeof(ss.instance), "%s", cfg->instance_id);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(ss.instance, sizeof(ss.instance), "%s-%ld", host,
                 (long)getpid());
    }
    wa_log_init(SS_SERVICE, (wa_log_level_t)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);

    ss.loop = uv_default_loop();
    if (uv_signal_init(ss.loop, &ss.sigterm) != 0 ||
        uv_signal_init(ss.loop, &ss.sigint) != 0 ||
        uv_signal_start(&ss.sigterm, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&ss.sigint, on_signal, SIGINT) != 0) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    if ((rv = wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, cfg->store_url, NULL,
                          &ss.store)) != WA_OK ||
        (rv = wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, cfg->events_url, NULL,
                          &ss.events)) != WA_OK) {
        wa_error(NULL, "cannot dial the store or events URL: %s",
                 wa_strerror(rv));
        goto out;
    }
    if ((rv = wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, cfg->session_url, NULL,
                          &ss.rep)) != WA_OK) {
        wa_error(NULL, "cannot listen on %s: %s", cfg->session_url,
                 wa_strerror(rv));
        goto out;
    }
    if ((rv = wa_bus_server_start(ss.rep, (int)cfg->workers, handle, &ss,
                                  &ss.server)) != WA_OK) {
        wa_error(NULL, "cannot start the bus server: %s", wa_strerror(rv));
        goto out;
    }
    wa_info(NULL,
            "instance %s listening on %s (browser %s, at most %ld "
            "sessions)",
            ss.instance, cfg->session_url, ss.chromium, cfg->max_sessions);

    uv_run(ss.loop, UV_RUN_DEFAULT);
    status = 0;
out:
    if (ss.server != NULL)
        wa_bus_server_stop(ss.server);
    if (nng_socket_id(ss.rep) > 0)
        nng_close(ss.rep);
    if (nng_socket_id(ss.events) > 0)
        nng_close(ss.events);
    if (nng_socket_id(ss.store) > 0)
        nng_close(ss.store);
    if (ss.loop != NULL) {
        uv_close((uv_handle_t *)&ss.sigterm, close_cb_noop);
        uv_close((uv_handle_t *)&ss.sigint, close_cb_noop);
        uv_run(ss.loop, UV_RUN_DEFAULT);
        uv_loop_close(ss.loop);
    }
    wa_config_free(specs, nspecs);
    return status;
}
