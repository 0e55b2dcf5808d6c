/*
 * wa-token - sign an HS256 access token for wa-server with JWT_SECRET, for
 * the local demo, service accounts and tests:
 *
 *   JWT_SECRET=... wa-token <user-id> [ttl-seconds] [role]
 *
 * Prints the token on stdout. Exit status 2 on bad usage or configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>

#include "wa/auth.h"
#include "wa/service.h"

int main(int argc, char **argv)
{
    char *secret = NULL;
    const wa_config_spec_t specs[] = {
        WA_CFG_SECRET_SPEC("JWT_SECRET", &secret, WA_AUTH_SECRET_MIN, 4096),
    };
    long ttl = 3600;
    jwt_t *jwt = NULL;
    char *token = NULL, *end;
    int status = 1;

    if (argc < 2 || argc > 4 || wa_check_user(argv[1]) != WA_OK) {
        fprintf(stderr, "usage: wa-token <user-id> [ttl-seconds] [role]\n");
        return 2;
    }
    if (argc > 2) {
        ttl = strtol(argv[2], &end, 10);
        if (*end != '\0' || ttl < 1 || ttl > 10L * 365 * 86400) {
            fprintf(stderr, "wa-token: ttl must be 1..315360000 seconds\n");
            return 2;
        }
    }
    wa_service_load_config("wa-token", specs, 1);
    if (secret == NULL)
        wa_service_config_fail("wa-token", "JWT_SECRET is required");
    if (jwt_new(&jwt) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret,
                    (int)strlen(secret)) != 0 ||
        jwt_add_grant(jwt, "sub", argv[1]) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)time(NULL)) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)time(NULL) + ttl) != 0 ||
        (argc > 3 && jwt_add_grant(jwt, "role", argv[3]) != 0) ||
        (token = jwt_encode_str(jwt)) == NULL) {
        fprintf(stderr, "wa-token: cannot sign the token\n");
        goto out;
    }
    printf("%s\n", token);
    status = 0;
out:
    free(token);
    jwt_free(jwt);
    wa_config_free(specs, 1);
    return status;
}
