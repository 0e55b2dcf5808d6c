/*
 * auth.c - bearer token -> principal (auth.h, DESIGN §3).
 *
 * libjwt 1.10 does no claim validation, takes the algorithm from the token
 * and accepts alg=none given an empty key. So every decision is made here:
 * the token's shape, its header (alg pinned to HS256) and its claims are
 * checked by us, and libjwt is only asked to check the HMAC, always with a
 * configured secret of at least WA_AUTH_SECRET_MIN bytes.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <jwt.h>

#include "wa/auth.h"

#define HS256_SIG_LEN 32 /* bytes of an HMAC-SHA256 */
#define NSECRETS 2

struct wa_auth {
    char *secret[NSECRETS]; /* JWT_SECRET, SUPABASE_JWT_SECRET; NULL = unset */
    size_t secret_len[NSECRETS];
    char **admins; /* ADMIN_USER_IDS, never NULL (maybe empty) */
    bool dev_mode;
    bool require_exp;
};

static const char *const secret_names[NSECRETS] = {"JWT_SECRET",
                                                   "SUPABASE_JWT_SECRET"};

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

wa_err_t wa_auth_new(const wa_auth_opts_t *opts, wa_auth_t **out, char *err,
                     size_t errlen)
{
    const char *given[NSECRETS];
    wa_auth_t *a = NULL;
    wa_err_t rv;
    bool any = false;
    char msg[96];

    if (opts == NULL || out == NULL) {
        set_err(err, errlen, "invalid arguments");
        return WA_EINVAL;
    }
    given[0] = opts->jwt_secret;
    given[1] = opts->supabase_secret;

    /* An empty value counts as unset, like in wa_config_load(). */
    for (int i = 0; i < NSECRETS; i++) {
        if (given[i] != NULL && given[i][0] == '\0')
            given[i] = NULL;
        if (given[i] == NULL)
            continue;
        any = true;
        size_t n = strlen(given[i]);
        if (n < WA_AUTH_SECRET_MIN || n > INT_MAX) {
            snprintf(msg, sizeof(msg), "%s must be at least %d bytes",
                     secret_names[i], WA_AUTH_SECRET_MIN);
            set_err(err, errlen, msg);
            return WA_ECONFIG;
        }
    }
    if (!any) {
        set_err(err, errlen, "JWT_SECRET or SUPABASE_JWT_SECRET is required");
        return WA_ECONFIG;
    }

    if ((a = calloc(1, sizeof(*a))) == NULL) {
        rv = WA_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < NSECRETS; i++) {
        if (given[i] == NULL)
            continue;
        if ((a->secret[i] = strdup(given[i])) == NULL) {
            rv = WA_ENOMEM;
            goto fail;
        }
        a->secret_len[i] = strlen(given[i]);
    }
    if ((a->admins = wa_strv_split(opts->admin_ids)) == NULL) {
        rv = WA_ENOMEM;
        goto fail;
    }
    a->dev_mode = opts->dev_mode;
    a->require_exp = opts->require_exp;
    *out = a;
    return WA_OK;

fail:
    set_err(err, errlen, wa_strerror(rv));
    wa_auth_free(a);
    return rv;
}

void wa_auth_free(wa_auth_t *auth)
{
    if (auth == NULL)
        return;
    for (int i = 0; i < NSECRETS; i++) {
        if (auth->secret[i] != NULL) {
            explicit_bzero(auth->secret[i], auth->secret_len[i]);
            free(auth->secret[i]);
        }
    }
    wa_strv_free(auth->admins);
    free(auth);
}

bool wa_auth_dev_mode(const wa_auth_t *auth)
{
    return auth != NULL && auth->dev_mode;
}

/* --- base64url and JSON helpers ---------------------------------------- */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decode src[0..n) as canonical unpadded base64url (RFC 7515 §2) into dst,
 * which must hold n * 3 / 4 + 1 bytes; dst is NUL-terminated. Returns the
 * decoded length, or -1 for any other alphabet, padding, an impossible
 * length or non-zero trailing bits (so each byte string has one encoding).
 */
static long b64url_decode(const char *src, size_t n, unsigned char *dst)
{
    size_t o = 0, i = 0;
    int v[4];

    if (n % 4 == 1)
        return -1;
    for (; i + 4 <= n; i += 4) {
        for (int k = 0; k < 4; k++)
            if ((v[k] = b64url_val((unsigned char)src[i + k])) < 0)
                return -1;
        dst[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        dst[o++] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
        dst[o++] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
    }
    size_t rest = n - i;
    for (size_t k = 0; k < rest; k++)
        if ((v[k] = b64url_val((unsigned char)src[i + k])) < 0)
            return -1;
    if (rest == 2) {
        if (v[1] & 0xf)
            return -1;
        dst[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    } else if (rest == 3) {
        if (v[2] & 0x3)
            return -1;
        dst[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        dst[o++] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
    }
    dst[o] = '\0';
    return (long)o;
}

/*
 * Parse a decoded segment as one JSON object: valid UTF-8, no NUL (raw or
 * escaped), nothing after it, no member name twice at the top level
 * (parsers disagree on which duplicate wins, and libjwt's jansson reads the
 * token too). NULL if any of that fails.
 */
static cJSON *parse_object(const unsigned char *buf, long len)
{
    cJSON *obj;

    if (len <= 0 || strlen((const char *)buf) != (size_t)len ||
        !wa_utf8_valid(buf, (size_t)len))
        return NULL;
    /* cJSON ends a string at an escaped NUL ("HS256\u0000x" reads as
     * "HS256") where jansson refuses it: refuse it here too. A literal
     * backslash followed by "u0000" is refused as well, harmlessly. */
    if (strstr((const char *)buf, "\\u0000") != NULL)
        return NULL;
    obj = cJSON_ParseWithOpts((const char *)buf, NULL, 1);
    if (!cJSON_IsObject(obj))
        goto fail;
    for (const cJSON *a = obj->child; a != NULL; a = a->next) {
        if (a->string == NULL)
            goto fail;
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (b->string == NULL || strcmp(a->string, b->string) == 0)
                goto fail;
    }
    return obj;

fail:
    cJSON_Delete(obj);
    return NULL;
}

/* --- verification ------------------------------------------------------- */

/* Is tok[0..len) three '.'-separated non-empty segments? Sets the dots. */
static bool jwt_shaped(const char *tok, size_t len, size_t *dot1, size_t *dot2)
{
    size_t dots[2], nd = 0;

    for (size_t i = 0; i < len; i++) {
        if (tok[i] != '.')
            continue;
        if (nd == 2)
            return false;
        dots[nd++] = i;
    }
    if (nd != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len)
        return false;
    *dot1 = dots[0];
    *dot2 = dots[1];
    return true;
}

/* Fill *p for a user id already checked with wa_check_user(). */
static void principal_set(const wa_auth_t *auth, const char *user,
                          wa_principal_t *p, bool role_admin)
{
    size_t n = strlen(user);

    memcpy(p->user, user, n);
    p->user[n] = '\0';
    p->admin = role_admin || wa_strv_contains(auth->admins, user);
}

/* Dev mode: the whole value is the user id. */
static const char *dev_user(const wa_auth_t *auth, const char *id,
                            wa_principal_t *p)
{
    if (wa_check_user(id) != WA_OK || strlen(id) > WA_USER_MAX)
        return "invalid user id";
    principal_set(auth, id, p, false);
    return NULL;
}

/* Check the decoded JOSE header. Returns NULL or the reason to refuse. */
static const char *check_header(const cJSON *hdr)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");

    /* The algorithm is pinned by our key: anything but HS256 is refused
     * before libjwt, which would obey it, ever sees the token. */
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        return "unsupported algorithm";
    /* typ is a media type, compared case-insensitively (RFC 7515 §4.1.9). */
    if (typ != NULL &&
        (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
        return "unsupported token type";
    /* We implement no JWS extension, so any "crit" must be refused. */
    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL)
        return "unsupported critical header";
    return NULL;
}

/* Read a NumericDate claim: 0 absent, 1 present (*v set), -1 not a number. */
static int numeric_date(const cJSON *claims, const char *name, double *v)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(claims, name);

    if (c == NULL)
        return 0;
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble))
        return -1;
    *v = c->valuedouble;
    return 1;
}

/* Check the verified claims and fill *p. Returns NULL or the reason. */
static const char *check_claims(const wa_auth_t *auth, const cJSON *claims,
                                time_t now, wa_principal_t *p)
{
    static const char *const id_claims[] = {"sub", "userId", "user_id"};
    const cJSON *role, *anon, *id = NULL;
    double t, dnow = (double)now;
    bool role_admin;
    int r;

    r = numeric_date(claims, "exp", &t);
    if (r < 0)
        return "invalid exp";
    if (r == 0 && auth->require_exp)
        return "missing exp";
    if (r > 0 && dnow >= t + WA_AUTH_LEEWAY_S)
        return "token expired";
    r = numeric_date(claims, "nbf", &t);
    if (r < 0)
        return "invalid nbf";
    if (r > 0 && t > dnow + WA_AUTH_LEEWAY_S)
        return "token not yet valid";

    /* Supabase's public anon key carries role "anon"; anonymous sign-ins
     * carry is_anonymous. Anything but an explicit false there is refused. */
    role = cJSON_GetObjectItemCaseSensitive(claims, "role");
    if (cJSON_IsString(role) && strcmp(role->valuestring, "anon") == 0)
        return "anonymous users are not allowed";
    anon = cJSON_GetObjectItemCaseSensitive(claims, "is_anonymous");
    if (anon != NULL && !cJSON_IsFalse(anon) && !cJSON_IsNull(anon))
        return "anonymous users are not allowed";

    role_admin = cJSON_IsString(role) &&
                 (strcmp(role->valuestring, "admin") == 0 ||
                  strcmp(role->valuestring, "service_role") == 0);

    /* The first claim present decides: an invalid "sub" does not fall
     * through to "userId". */
    for (size_t i = 0; id == NULL && i < sizeof(id_claims) / sizeof(*id_claims);
         i++)
        id = cJSON_GetObjectItemCaseSensitive(claims, id_claims[i]);
    if (id == NULL && role_admin) {
        /* Supabase's service_role key names no user: an admin acting for
         * no one. Callers keep it to the admin routes (auth.h). */
        p->user[0] = '\0';
        p->admin = true;
        return NULL;
    }
    if (id == NULL)
        return "no user id in token";
    if (!cJSON_IsString(id) || wa_check_user(id->valuestring) != WA_OK ||
        strlen(id->valuestring) > WA_USER_MAX)
        return "invalid user id";

    principal_set(auth, id->valuestring, p, role_admin);
    return NULL;
}

/*
 * Verify tok[0..len) (no NUL needed, len <= WA_AUTH_TOKEN_MAX). On success
 * fills *p and returns WA_OK; else WA_EUNAUTH with *why, or WA_ENOMEM.
 */
static wa_err_t verify(const wa_auth_t *auth, const char *tok, size_t len,
                       time_t now, wa_principal_t *p, const char **why)
{
    char *copy = NULL, *grants = NULL;
    unsigned char *buf = NULL;
    cJSON *hdr = NULL, *body = NULL, *claims = NULL;
    jwt_t *jwt = NULL;
    size_t d1, d2;
    long n;
    wa_err_t rv = WA_EUNAUTH;

    *why = NULL;
    if ((copy = malloc(len + 1)) == NULL ||
        (buf = malloc(len * 3 / 4 + 2)) == NULL) {
        rv = WA_ENOMEM;
        goto fail;
    }
    memcpy(copy, tok, len);
    copy[len] = '\0';

    if (!jwt_shaped(copy, len, &d1, &d2)) {
        if (!auth->dev_mode) {
            *why = "malformed token";
            goto fail;
        }
        if ((*why = dev_user(auth, copy, p)) != NULL)
            goto fail;
        rv = WA_OK;
        goto done;
    }

    /* Header first: the algorithm is decided before any signature work. */
    n = b64url_decode(copy, d1, buf);
    if (n < 0 || (hdr = parse_object(buf, n)) == NULL) {
        *why = "malformed token";
        goto fail;
    }
    if ((*why = check_header(hdr)) != NULL)
        goto fail;
    n = b64url_decode(copy + d1 + 1, d2 - d1 - 1, buf);
    if (n < 0 || (body = parse_object(buf, n)) == NULL) {
        *why = "malformed token";
        goto fail;
    }
    n = b64url_decode(copy + d2 + 1, len - d2 - 1, buf);
    if (n < 0) {
        *why = "malformed token";
        goto fail;
    }
    if (n != HS256_SIG_LEN) {
        *why = "bad signature";
        goto fail;
    }

    for (int i = 0; i < NSECRETS && jwt == NULL; i++) {
        if (auth->secret[i] == NULL)
            continue;
        int rc = jwt_decode(&jwt, copy, (const unsigned char *)auth->secret[i],
                            (int)auth->secret_len[i]);
        if (rc == ENOMEM) {
            rv = WA_ENOMEM;
            goto fail;
        }
        if (rc != 0)
            jwt = NULL;
    }
    if (jwt == NULL) {
        *why = "bad signature";
        goto fail;
    }
    /* Belt and braces: libjwt must have verified with the algorithm we
     * checked, whatever its own reading of the header was. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *why = "unsupported algorithm";
        goto fail;
    }

    /* Claims as libjwt verified them, re-serialized by jansson. */
    if ((grants = jwt_get_grants_json(jwt, NULL)) == NULL) {
        rv = WA_ENOMEM;
        goto fail;
    }
    claims = cJSON_Parse(grants);
    if (!cJSON_IsObject(claims)) {
        *why = "malformed token";
        goto fail;
    }
    if ((*why = check_claims(auth, claims, now, p)) != NULL)
        goto fail;
    rv = WA_OK;
    goto done;

fail:
    if (rv == WA_ENOMEM)
        *why = "out of memory";
done:
    cJSON_Delete(claims);
    free(grants);
    jwt_free(jwt);
    cJSON_Delete(body);
    cJSON_Delete(hdr);
    free(buf);
    if (copy != NULL) {
        explicit_bzero(copy, len);
        free(copy);
    }
    return rv;
}

/* Length-bounded entry shared by both public functions. */
static wa_err_t auth_token_n(const wa_auth_t *auth, const char *tok, size_t len,
                             time_t now, wa_principal_t *out, const char **why)
{
    wa_principal_t p;
    const char *reason = NULL;
    wa_err_t rv;

    if (len == 0) {
        reason = "missing token";
        rv = WA_EUNAUTH;
    } else if (len > WA_AUTH_TOKEN_MAX) {
        reason = "token too large";
        rv = WA_EUNAUTH;
    } else {
        rv = verify(auth, tok, len, now, &p, &reason);
    }
    if (rv == WA_OK)
        *out = p;
    if (why != NULL)
        *why = rv == WA_OK ? NULL : reason;
    return rv;
}

wa_err_t wa_auth_token(const wa_auth_t *auth, const char *token, time_t now,
                       wa_principal_t *out, const char **why)
{
    if (auth == NULL || out == NULL) {
        if (why != NULL)
            *why = "invalid arguments";
        return WA_EINVAL;
    }
    /* strnlen: a huge token is refused without reading all of it. */
    size_t len = token == NULL ? 0 : strnlen(token, WA_AUTH_TOKEN_MAX + 1);
    return auth_token_n(auth, token, len, now, out, why);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

wa_err_t wa_auth_header(const wa_auth_t *auth, const char *header, time_t now,
                        wa_principal_t *out, const char **why)
{
    const char *p, *scheme, *val;
    size_t slen, vlen;

    if (auth == NULL || out == NULL) {
        if (why != NULL)
            *why = "invalid arguments";
        return WA_EINVAL;
    }
    if (header == NULL)
        return auth_token_n(auth, NULL, 0, now, out, why);

    /* credentials = auth-scheme 1*SP token68 (RFC 9110 §11.4); leading
     * and trailing whitespace tolerated. */
    for (p = header; is_ows(*p); p++)
        ;
    scheme = p;
    while (*p != '\0' && !is_ows(*p))
        p++;
    slen = (size_t)(p - scheme);
    while (is_ows(*p))
        p++;
    val = p;
    vlen = strlen(val);
    while (vlen > 0 && is_ows(val[vlen - 1]))
        vlen--;

    if (slen == 0 || (slen == 6 && strncasecmp(scheme, "Bearer", 6) == 0)) {
        for (size_t i = 0; i < vlen && i <= WA_AUTH_TOKEN_MAX; i++) {
            if (is_ows(val[i])) {
                if (why != NULL)
                    *why = "malformed token";
                return WA_EUNAUTH;
            }
        }
        return auth_token_n(auth, val, vlen, now, out, why);
    }
    if (auth->dev_mode && slen == 6 && strncasecmp(scheme, "UserId", 6) == 0) {
        wa_principal_t pr;
        char id[WA_USER_MAX + 1];
        const char *reason = "invalid user id";

        if (vlen == 0)
            reason = "missing user id";
        if (vlen > 0 && vlen <= WA_USER_MAX) {
            memcpy(id, val, vlen);
            id[vlen] = '\0';
            reason = dev_user(auth, id, &pr);
        }
        if (reason == NULL)
            *out = pr;
        if (why != NULL)
            *why = reason;
        return reason == NULL ? WA_OK : WA_EUNAUTH;
    }
    if (why != NULL)
        *why = "unsupported authorization scheme";
    return WA_EUNAUTH;
}
