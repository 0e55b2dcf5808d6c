/*
 * auth.h - bearer token -> user id (DESIGN §3), shared by gateway and
 * notifier-svc, and the user id -> directory name sanitizer.
 *
 * JWTs: HS256 only, pinned by the key (the token's "alg" is checked, never
 * obeyed); signature checked against JWT_SECRET, then SUPABASE_JWT_SECRET;
 * tokens over WA_AUTH_TOKEN_MAX refused before decoding; "exp" required unless
 * require_exp is off; "exp"/"nbf" enforced with a leeway; user id from "sub",
 * else "userId", else "user_id"; Supabase's anon key (role "anon") and
 * anonymous users ("is_anonymous": true) refused. Admin: the user id is in
 * ADMIN_USER_IDS, or claim "role" is "admin" or "service_role".
 *
 * A token with an admin role and none of the user id claims (Supabase's
 * service_role key has no "sub") is accepted as an admin that names no
 * user: wa_principal_t.user is "". Every caller must keep such a principal
 * away from anything done for a user (gateway: 403 on the user's routes;
 * notifier-svc: no subscription).
 *
 * Only with dev_mode: "Authorization: UserId <id>", and a bearer token that is
 * not JWT-shaped taken as the user id.
 *
 * A wa_auth_t is immutable after wa_auth_new(): verification is thread-safe.
 */
#ifndef WA_AUTH_H
#define WA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "wa/config.h"
#include "wa/envelope.h"
#include "wa/err.h"

#define WA_AUTH_TOKEN_MAX 8192 /* bytes, before any decoding */
#define WA_AUTH_SECRET_MIN 32  /* bytes */
#define WA_AUTH_LEEWAY_S 30
#define WA_USER_DIR_MAX 65 /* sanitized name, bytes without NUL */

typedef struct wa_auth_opts {
    char *jwt_secret;      /* JWT_SECRET, may be NULL */
    char *supabase_secret; /* SUPABASE_JWT_SECRET, may be NULL */
    char *admin_ids;       /* ADMIN_USER_IDS, comma-separated, may be NULL */
    bool dev_mode;         /* AUTH_DEV_MODE */
    bool require_exp;      /* JWT_REQUIRE_EXP */
} wa_auth_opts_t;

/* Config table entries for wa_auth_opts_t, for a service's spec array. */
#define WA_AUTH_CONFIG_SPECS(o)                                                \
    WA_CFG_SECRET_SPEC("JWT_SECRET", &(o)->jwt_secret, 0, 4096),               \
        WA_CFG_SECRET_SPEC("SUPABASE_JWT_SECRET", &(o)->supabase_secret, 0,    \
                           4096),                                              \
        WA_CFG_STR_SPEC("ADMIN_USER_IDS", &(o)->admin_ids, NULL, 0, 65536),    \
        WA_CFG_BOOL_SPEC("AUTH_DEV_MODE", &(o)->dev_mode, "0"),                \
        WA_CFG_BOOL_SPEC("JWT_REQUIRE_EXP", &(o)->require_exp, "1")

typedef struct wa_auth wa_auth_t;

/*
 * Build a verifier from opts (copied; opts may be freed after). Fails with
 * WA_ECONFIG and a one-line reason in err when neither secret is set or a
 * secret is shorter than WA_AUTH_SECRET_MIN bytes. Free with wa_auth_free().
 */
wa_err_t wa_auth_new(const wa_auth_opts_t *opts, wa_auth_t **out, char *err,
                     size_t errlen);
void wa_auth_free(wa_auth_t *auth);

/* Is dev mode on (the caller logs a loud warning at start)? */
bool wa_auth_dev_mode(const wa_auth_t *auth);

typedef struct wa_principal {
    char user[WA_USER_MAX + 1]; /* "" only for an admin naming no user */
    bool admin;
} wa_principal_t;

/*
 * Verify the value of an Authorization header ("Bearer <token>", or in dev
 * mode "UserId <id>") at time now. WA_OK and *out filled, or WA_EUNAUTH with
 * the reason in why (a short fixed phrase safe to return to the client, never
 * containing the token), or WA_ENOMEM.
 */
wa_err_t wa_auth_header(const wa_auth_t *auth, const char *header, time_t now,
                        wa_principal_t *out, const char **why);

/* Verify a bare token (the WebSocket's ?token=). Same results. */
wa_err_t wa_auth_token(const wa_auth_t *auth, const char *token, time_t now,
                       wa_principal_t *out, const char **why);

/*
 * The directory name for a user id: the id itself when it is 1..64 bytes of
 * [A-Za-z0-9._-] not starting with '.'; otherwise "~" followed by the 64 hex
 * digits of its SHA-256. Injective, never "." or "..", never contains '/'.
 * out must hold WA_USER_DIR_MAX + 1 bytes. WA_EINVAL for an empty id or a
 * short buffer.
 */
wa_err_t wa_user_dirname(const char *user, char *out, size_t outlen);

#endif /* WA_AUTH_H */
