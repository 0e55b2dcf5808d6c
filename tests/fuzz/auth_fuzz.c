/*
 * auth_fuzz.c - token verification on arbitrary bytes, with and without
 * dev mode. Whatever it accepts must carry a valid user id, or none only
 * for an admin (a service key naming no user, auth.h).
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wa/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wa_auth_t *strict, *dev;

static void init(void)
{
    wa_auth_opts_t o = {
        .jwt_secret = "fuzz-secret-fuzz-secret-fuzz-secret-0123",
        .require_exp = true,
    };
    char err[128];

    if (wa_auth_new(&o, &strict, err, sizeof(err)) != WA_OK)
        abort();
    o.dev_mode = true;
    if (wa_auth_new(&o, &dev, err, sizeof(err)) != WA_OK)
        abort();
}

static bool principal_ok(const wa_principal_t *p)
{
    if (p->user[0] == '\0')
        return p->admin;
    return wa_check_user(p->user) == WA_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_principal_t p;
    const char *why;
    char *s;

    if (strict == NULL)
        init();
    if ((s = malloc(size + 1)) == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    /* Accepted: a valid user id, or none only for an admin (a service
     * key, auth.h). */
    if (wa_auth_token(strict, s, 1800000000, &p, &why) == WA_OK &&
        !principal_ok(&p))
        abort();
    if (wa_auth_header(dev, s, 1800000000, &p, &why) == WA_OK &&
        !principal_ok(&p))
        abort();
    free(s);
    return 0;
}
