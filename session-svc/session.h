/*
 * session.h - session-svc's private state, shared by its files.
 */
#ifndef SS_SESSION_H
#define SS_SESSION_H

#include <stddef.h>

#include <uv.h>

#include "wa/bus.h"

#define SS_SERVICE "session-svc"

typedef struct ss_config {
    char *sessions_dir;
    char *wa_web_url;
    char *chromium_path;
    char *puppeteer_path;
    long max_sessions;
    char *instance_id;
    char *store_url;
    char *events_url;
    char *session_url;
    char *advertise_url;
    long workers;
    int log_level;
} ss_config_t;

typedef struct ss {
    ss_config_t cfg;
    char chromium[4096]; /* resolved browser executable */
    char instance[128];  /* INSTANCE_ID or hostname-pid */
    uv_loop_t *loop;
    uv_signal_t sigterm, sigint;
    nng_socket rep;    /* REP, listens on SESSION_URL */
    nng_socket store;  /* REQ, dials STORE_URL */
    nng_socket events; /* PUB, dials EVENTS_URL */
    wa_bus_server_t *server;
} ss_t;

/*
 * Find the browser: CHROMIUM_PATH, else PUPPETEER_EXECUTABLE_PATH, else the
 * first of chromium, chromium-browser, google-chrome on PATH. The result is
 * an executable regular file. WA_OK and out filled, or WA_ENOTFOUND with a
 * one-line reason in err.
 */
wa_err_t ss_chromium_resolve(const char *configured, const char *puppeteer,
                             const char *path_env, char *out, size_t outlen,
                             char *err, size_t errlen);

#endif /* SS_SESSION_H */
