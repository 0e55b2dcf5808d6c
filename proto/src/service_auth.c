/*
 * service_auth.c - wa_service_auth (service.h), in a file of its own: a
 * static library member is linked only into the binaries that call it, so
 * only the gateway and notifier-svc load libjwt and libcrypto (about
 * 1.5 MiB resident each), not every service that uses service.c.
 */
#include "wa/log.h"
#include "wa/service.h"

wa_auth_t *wa_service_auth(const char *service, const wa_auth_opts_t *opts)
{
    wa_auth_t *auth = NULL;
    char err[256];

    if (wa_auth_new(opts, &auth, err, sizeof(err)) != WA_OK)
        wa_service_config_fail(service, "configuration: %s", err);
    if (wa_auth_dev_mode(auth))
        wa_warn(NULL, "AUTH_DEV_MODE=1: 'Authorization: UserId <id>' and raw "
                      "bearer user ids are accepted without a signature; "
                      "never use this in production");
    return auth;
}
