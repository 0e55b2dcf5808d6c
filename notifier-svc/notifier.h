/*
 * notifier.h - notifier-svc's private state, shared by its files.
 */
#ifndef NT_NOTIFIER_H
#define NT_NOTIFIER_H

#include <stdint.h>

#include <civetweb.h>

#include "wa/auth.h"
#include "wa/bus.h"
#include "wa/http.h"

#define NT_SERVICE "notifier-svc"

typedef struct nt_config {
    long port;
    wa_auth_opts_t auth;
    char *allowed_origins;
    char *events_url;
    long threads;
    int log_level;
} nt_config_t;

typedef struct nt {
    nt_config_t cfg;
    wa_auth_t *auth;
    char **origins;
    nng_socket sub; /* SUB, listens on EVENTS_URL */
    struct mg_context *http;
    long long started_ms;
    uint64_t events_in; /* atomic */
} nt_t;

wa_err_t nt_http_start(nt_t *nt, char *err, size_t errlen);
void nt_http_stop(nt_t *nt);

#endif /* NT_NOTIFIER_H */
