/*
 * auth_test.c - wa_auth_* and wa_user_dirname() (auth.h, DESIGN §3).
 *
 * Every rule of §3 has a test, most of them an attack built with jwt_forge:
 * tokens are signed correctly over hostile content so that a refusal proves
 * the check under test, not a signature mismatch. Time is fixed (NOW).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "jwt_forge.h"
#include "wa/auth.h"

#define NOW ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define LATER ((long long)NOW + 3600)

static const char S1[] = "jwt-secret-for-unit-tests-0123456789ab";
static const char S2[] = "supabase-secret-for-unit-tests-987654321";
static const char WRONG[] = "not-the-secret-but-long-enough-0123456789";

/* --- fixtures: every string a test builds is freed at teardown ---------- */

static char *tracked[1024];
static size_t ntracked;
static wa_auth_t *auths[8];
static size_t nauths;

static char *T(char *s)
{
    if (s == NULL || ntracked == sizeof(tracked) / sizeof(*tracked))
        abort();
    tracked[ntracked++] = s;
    return s;
}

static int teardown(void **state)
{
    (void)state;
    while (ntracked > 0)
        free(tracked[--ntracked]);
    while (nauths > 0)
        wa_auth_free(auths[--nauths]);
    return 0;
}

static wa_auth_t *mk(const char *s1, const char *s2, const char *admins,
                     bool dev, bool require_exp)
{
    wa_auth_opts_t o = {.jwt_secret = (char *)s1,
                        .supabase_secret = (char *)s2,
                        .admin_ids = (char *)admins,
                        .dev_mode = dev,
                        .require_exp = require_exp};
    wa_auth_t *a = NULL;
    char err[128] = "";

    assert_int_equal(wa_auth_new(&o, &a, err, sizeof(err)), WA_OK);
    assert_non_null(a);
    auths[nauths++] = a;
    return a;
}

/* The common verifier: both secrets, admin "root", prod mode, exp needed. */
static wa_auth_t *prod(void)
{
    return mk(S1, S2, "root", false, true);
}

/* {"exp":LATER,<claims>} */
static const char *pl(const char *claims)
{
    return T(
        forge_fmt("{\"exp\":%lld%s%s}", LATER, *claims ? "," : "", claims));
}

static const char *tok1(const char *claims)
{
    return T(forge_hs256(pl(claims), S1));
}

static const char *forge(const char *hdr, const char *payload, forge_sig_t s,
                         const char *key)
{
    return T(forge_jwt(hdr, payload, s, key));
}

/* Every phrase `why` may hold: static text, never derived from input. */
static const char *const reasons[] = {
    "missing token",
    "token too large",
    "malformed token",
    "unsupported algorithm",
    "unsupported token type",
    "unsupported critical header",
    "bad signature",
    "token expired",
    "token not yet valid",
    "missing exp",
    "invalid exp",
    "invalid nbf",
    "no user id in token",
    "invalid user id",
    "anonymous users are not allowed",
    "unsupported authorization scheme",
    "missing user id",
};

static void check_why(const char *why, const char *expect, const char *input,
                      const char *file, int line)
{
    bool known = false;

    _assert_true(why != NULL, "why != NULL", file, line);
    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        known = known || why == reasons[i] || strcmp(why, reasons[i]) == 0;
    _assert_true(known, "why is a known phrase", file, line);
    _assert_string_equal(why, expect, file, line);
    if (input != NULL && strlen(input) >= 8)
        _assert_true(strstr(why, input) == NULL, "why hides input", file, line);
}

static void check_ok(wa_err_t rv, const wa_principal_t *p, const char *why,
                     const char *user, bool admin, const char *file, int line)
{
    _assert_int_equal(rv, WA_OK, file, line);
    _assert_true(why == NULL, "why == NULL", file, line);
    _assert_string_equal(p->user, user, file, line);
    _assert_int_equal(p->admin, admin, file, line);
}

/* Accepted both as a bare token and as "Bearer <token>". */
static void ok_tok(wa_auth_t *a, const char *tok, const char *user, bool admin,
                   const char *file, int line)
{
    wa_principal_t p;
    const char *why = "unset";
    char *hdr = forge_fmt("Bearer %s", tok);
    wa_err_t rv;

    memset(&p, 0, sizeof(p));
    rv = wa_auth_token(a, tok, NOW, &p, &why);
    check_ok(rv, &p, why, user, admin, file, line);
    memset(&p, 0, sizeof(p));
    why = "unset";
    rv = wa_auth_header(a, hdr, NOW, &p, &why);
    check_ok(rv, &p, why, user, admin, file, line);
    free(hdr);
}
#define OK_TOK(a, tok, user, admin)                                            \
    ok_tok((a), (tok), (user), (admin), __FILE__, __LINE__)

/* Refused with `expect`, both forms, and *out left untouched. */
static void bad_tok(wa_auth_t *a, const char *tok, const char *expect,
                    const char *file, int line)
{
    wa_principal_t p, sentinel;
    const char *why = NULL;
    char *hdr = forge_fmt("Bearer %s", tok);

    memset(&sentinel, 'Z', sizeof(sentinel));
    p = sentinel;
    _assert_int_equal(wa_auth_token(a, tok, NOW, &p, &why), WA_EUNAUTH, file,
                      line);
    check_why(why, expect, tok, file, line);
    _assert_memory_equal(&p, &sentinel, sizeof(p), file, line);
    why = NULL;
    _assert_int_equal(wa_auth_header(a, hdr, NOW, &p, &why), WA_EUNAUTH, file,
                      line);
    check_why(why, expect, tok, file, line);
    _assert_memory_equal(&p, &sentinel, sizeof(p), file, line);
    free(hdr);
}
#define BAD_TOK(a, tok, expect)                                                \
    bad_tok((a), (tok), (expect), __FILE__, __LINE__)

static void ok_hdr(wa_auth_t *a, const char *hdr, const char *user, bool admin,
                   const char *file, int line)
{
    wa_principal_t p;
    const char *why = "unset";
    wa_err_t rv;

    memset(&p, 0, sizeof(p));
    rv = wa_auth_header(a, hdr, NOW, &p, &why);
    check_ok(rv, &p, why, user, admin, file, line);
}
#define OK_HDR(a, hdr, user, admin)                                            \
    ok_hdr((a), (hdr), (user), (admin), __FILE__, __LINE__)

static void bad_hdr(wa_auth_t *a, const char *hdr, const char *expect,
                    const char *file, int line)
{
    wa_principal_t p, sentinel;
    const char *why = NULL;

    memset(&sentinel, 'Z', sizeof(sentinel));
    p = sentinel;
    _assert_int_equal(wa_auth_header(a, hdr, NOW, &p, &why), WA_EUNAUTH, file,
                      line);
    check_why(why, expect, NULL, file, line);
    _assert_memory_equal(&p, &sentinel, sizeof(p), file, line);
}
#define BAD_HDR(a, hdr, expect)                                                \
    bad_hdr((a), (hdr), (expect), __FILE__, __LINE__)

/* --- valid tokens and user id precedence ------------------------------- */

static void test_valid_sub(void **state)
{
    (void)state;
    wa_auth_t *a = prod();

    OK_TOK(a, tok1("\"sub\":\"alice\""), "alice", false);
    OK_TOK(a, tok1("\"sub\":\"a1b2c3d4-0000-4000-8000-000000000000\""),
           "a1b2c3d4-0000-4000-8000-000000000000", false);
    /* Non-ASCII and unusual but legal ids pass wa_check_user(). */
    OK_TOK(a, tok1("\"sub\":\"j\\u00fcrgen b\""), "j\xc3\xbcrgen b", false);
    /* Other claims are ignored. */
    OK_TOK(a,
           tok1("\"sub\":\"alice\",\"iat\":1767225000,\"aud\":\"x\","
                "\"role\":\"authenticated\",\"is_anonymous\":false"),
           "alice", false);
}

static void test_user_id_precedence(void **state)
{
    (void)state;
    wa_auth_t *a = prod();

    OK_TOK(a, tok1("\"user_id\":\"u3\",\"userId\":\"u2\",\"sub\":\"u1\""), "u1",
           false);
    OK_TOK(a, tok1("\"user_id\":\"u3\",\"userId\":\"u2\""), "u2", false);
    OK_TOK(a, tok1("\"user_id\":\"u3\""), "u3", false);
    /* The first claim present decides: a bad "sub" does not fall through. */
    BAD_TOK(a, tok1("\"sub\":42,\"userId\":\"u2\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":null,\"userId\":\"u2\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"\",\"user_id\":\"u3\""), "invalid user id");
    BAD_TOK(a, tok1("\"userId\":[\"u2\"],\"user_id\":\"u3\""),
            "invalid user id");
}

/* A token made by libjwt itself (the shape real issuers produce). */
static void test_libjwt_interop(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    jwt_t *j = NULL;
    char *s;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)S2,
                                 (int)strlen(S2)),
                     0);
    assert_int_equal(jwt_add_grant(j, "sub", "from-libjwt"), 0);
    assert_int_equal(jwt_add_grant_int(j, "exp", (long)LATER), 0);
    assert_int_equal(jwt_add_grant_int(j, "iat", (long)NOW), 0);
    s = jwt_encode_str(j);
    assert_non_null(s);
    OK_TOK(a, s, "from-libjwt", false);
    free(s);
    jwt_free(j);
}

/* --- secrets ------------------------------------------------------------ */

static void test_both_secrets(void **state)
{
    (void)state;
    wa_auth_t *both = prod();
    wa_auth_t *only1 = mk(S1, NULL, NULL, false, true);
    wa_auth_t *only2 = mk("", S2, NULL, false, true);
    const char *p = pl("\"sub\":\"alice\"");
    const char *t1 = T(forge_hs256(p, S1)), *t2 = T(forge_hs256(p, S2));

    OK_TOK(both, t1, "alice", false);
    OK_TOK(both, t2, "alice", false);
    OK_TOK(only1, t1, "alice", false);
    BAD_TOK(only1, t2, "bad signature");
    OK_TOK(only2, t2, "alice", false);
    BAD_TOK(only2, t1, "bad signature");
}

static void test_wrong_secret(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *good = tok1("\"sub\":\"alice\"");
    const char *p = pl("\"sub\":\"alice\"");
    char prefix[WA_AUTH_SECRET_MIN + 1];
    const char *other;
    char *dot, *tampered;

    BAD_TOK(a, T(forge_hs256(p, WRONG)), "bad signature");
    /* A prefix of the real secret is not the secret. */
    memcpy(prefix, S1, WA_AUTH_SECRET_MIN);
    prefix[WA_AUTH_SECRET_MIN] = '\0';
    BAD_TOK(a, T(forge_hs256(p, prefix)), "bad signature");

    /* Payload swapped under a valid signature (same-size claims). */
    other = tok1("\"sub\":\"admin\"");
    dot = strrchr(good, '.');
    assert_int_equal(dot - good, strrchr(other, '.') - other);
    tampered = T(strdup(good));
    memcpy(tampered, other, (size_t)(dot - good));
    BAD_TOK(a, tampered, "bad signature");

    /* Signature of one token on another; signature too short/long. */
    tampered = T(forge_fmt("%.*s%s", (int)(strrchr(other, '.') - other), other,
                           strrchr(good, '.')));
    BAD_TOK(a, tampered, "bad signature");
    BAD_TOK(a,
            T(forge_fmt("%.*s.AAAA", (int)(strrchr(good, '.') - good), good)),
            "bad signature");
    BAD_TOK(a, T(forge_fmt("%sAAAA", good)), "bad signature");
}

/* --- algorithm pinning -------------------------------------------------- */

static void test_alg_none(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    /* Only SUPABASE_JWT_SECRET set, JWT_SECRET empty: no empty key is ever
     * handed to libjwt (which would accept alg=none with it). */
    wa_auth_t *emptykey = mk("", S2, NULL, false, true);
    const char *p = pl("\"sub\":\"root\"");
    static const char *const nones[] = {
        "{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\"}"};

    for (size_t i = 0; i < sizeof(nones) / sizeof(*nones); i++) {
        const char *h = nones[i];
        /* "h.p." - the canonical unsigned JWS: no signature segment. */
        BAD_TOK(a, forge(h, p, FORGE_SIG_EMPTY, NULL), "malformed token");
        BAD_TOK(emptykey, forge(h, p, FORGE_SIG_EMPTY, NULL),
                "malformed token");
        /* "h.p": two segments. */
        BAD_TOK(a, forge(h, p, FORGE_SIG_OMIT, NULL), "malformed token");
        /* With a signature segment (even a valid HS256 one). */
        BAD_TOK(a, forge(h, p, FORGE_HS256, S1), "unsupported algorithm");
        BAD_TOK(emptykey, forge(h, p, FORGE_HS256, S2),
                "unsupported algorithm");
        BAD_TOK(a, T(forge_fmt("%s.AAAA", forge(h, p, FORGE_SIG_OMIT, NULL))),
                "unsupported algorithm");
    }
}

static void test_alg_other(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *p = pl("\"sub\":\"root\"");
    static const char *const algs[] = {"HS384",  "HS512",  "RS256", "RS384",
                                       "RS512",  "ES256",  "ES384", "ES512",
                                       "PS256",  "EdDSA",  "hs256", "HS256 ",
                                       " HS256", "HS2560", "HS25",  ""};
    static const forge_sig_t sigs[] = {FORGE_HS256, FORGE_HS384, FORGE_HS512};

    for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++) {
        const char *h =
            T(forge_fmt("{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[i]));
        for (size_t k = 0; k < sizeof(sigs) / sizeof(*sigs); k++) {
            /* Signed with the real secret: key confusion must not work. */
            BAD_TOK(a, forge(h, p, sigs[k], S1), "unsupported algorithm");
            BAD_TOK(a, forge(h, p, sigs[k], S2), "unsupported algorithm");
        }
        /* A 64-byte "ECDSA signature". */
        BAD_TOK(a,
                T(forge_fmt("%s.%s", forge(h, p, FORGE_SIG_OMIT, NULL),
                            T(forge_b64url("0123456789abcdef0123456789abcdef"
                                           "0123456789abcdef0123456789abcdef",
                                           64)))),
                "unsupported algorithm");
    }
}

static void test_alg_missing_or_not_string(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *p = pl("\"sub\":\"root\"");
    static const char *const hdrs[] = {
        "{}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":true}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":{\"HS256\":1}}",
        "{\"ALG\":\"HS256\"}",
        "{\"Alg\":\"HS256\"}",
    };

    for (size_t i = 0; i < sizeof(hdrs) / sizeof(*hdrs); i++)
        BAD_TOK(a, forge(hdrs[i], p, FORGE_HS256, S1), "unsupported algorithm");
}

static void test_header_shape(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *p = pl("\"sub\":\"alice\"");
    static const char *const malformed[] = {
        "[]",
        "\"HS256\"",
        "null",
        "{",
        "{\"alg\":\"HS256\"} x",
        "{\"alg\":\"HS256\"}{}",
        /* Duplicates: parsers disagree on which one wins. */
        "{\"alg\":\"HS256\",\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}",
        /* cJSON would read "HS256", jansson refuses: a parser differential. */
        "{\"alg\":\"HS256\\u0000\"}",
        "{\"alg\":\"HS256\\u0000none\"}",
        /* Not UTF-8. */
        "{\"alg\":\"HS256\",\"kid\":\"\xff\"}",
    };

    for (size_t i = 0; i < sizeof(malformed) / sizeof(*malformed); i++)
        BAD_TOK(a, forge(malformed[i], p, FORGE_HS256, S1), "malformed token");

    /* typ, if present, is a string equal to "JWT" (case-insensitively). */
    OK_TOK(a, forge("{\"alg\":\"HS256\"}", p, FORGE_HS256, S1), "alice", false);
    OK_TOK(a, forge("{\"typ\":\"jwt\",\"alg\":\"HS256\"}", p, FORGE_HS256, S1),
           "alice", false);
    OK_TOK(a,
           forge("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", p,
                 FORGE_HS256, S1),
           "alice", false);
    BAD_TOK(a, forge("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", p, FORGE_HS256, S1),
            "unsupported token type");
    BAD_TOK(a,
            forge("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", p, FORGE_HS256, S1),
            "unsupported token type");
    BAD_TOK(a, forge("{\"alg\":\"HS256\",\"typ\":1}", p, FORGE_HS256, S1),
            "unsupported token type");
    BAD_TOK(a, forge("{\"alg\":\"HS256\",\"typ\":null}", p, FORGE_HS256, S1),
            "unsupported token type");
    BAD_TOK(a,
            forge("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", p,
                  FORGE_HS256, S1),
            "unsupported critical header");
}

/* --- exp / nbf ---------------------------------------------------------- */

static const char *tok_claims(const char *json)
{
    return T(forge_hs256(json, S1));
}

static const char *with_time(const char *name, long long t)
{
    return tok_claims(T(forge_fmt(
        "{\"sub\":\"alice\",\"%s\":%lld%s}", name, t,
        strcmp(name, "exp") ? T(forge_fmt(",\"exp\":%lld", LATER)) : "")));
}

static void test_exp(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    long long now = (long long)NOW;

    BAD_TOK(a, with_time("exp", now - 3600), "token expired");
    BAD_TOK(a, with_time("exp", now - WA_AUTH_LEEWAY_S - 1), "token expired");
    BAD_TOK(a, with_time("exp", now - WA_AUTH_LEEWAY_S), "token expired");
    BAD_TOK(a, with_time("exp", 0), "token expired");
    BAD_TOK(a, with_time("exp", -1), "token expired");
    OK_TOK(a, with_time("exp", now - WA_AUTH_LEEWAY_S + 1), "alice", false);
    OK_TOK(a, with_time("exp", now), "alice", false);
    OK_TOK(a, with_time("exp", now + 1), "alice", false);
    OK_TOK(a, tok_claims("{\"sub\":\"alice\",\"exp\":1767229200.5}"), "alice",
           false);
    OK_TOK(a, tok_claims("{\"sub\":\"alice\",\"exp\":1e300}"), "alice", false);
    BAD_TOK(a, tok_claims("{\"sub\":\"alice\",\"exp\":-1e300}"),
            "token expired");
}

static void test_nbf(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    long long now = (long long)NOW;

    BAD_TOK(a, with_time("nbf", now + 3600), "token not yet valid");
    BAD_TOK(a, with_time("nbf", now + WA_AUTH_LEEWAY_S + 1),
            "token not yet valid");
    OK_TOK(a, with_time("nbf", now + WA_AUTH_LEEWAY_S), "alice", false);
    OK_TOK(a, with_time("nbf", now), "alice", false);
    OK_TOK(a, with_time("nbf", now - 3600), "alice", false);
    BAD_TOK(a, tok_claims(pl("\"sub\":\"alice\",\"nbf\":\"0\"")),
            "invalid nbf");
    BAD_TOK(a, tok_claims(pl("\"sub\":\"alice\",\"nbf\":null")), "invalid nbf");
}

static void test_exp_required(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    wa_auth_t *legacy = mk(S1, NULL, NULL, false, false);
    const char *noexp = tok_claims("{\"sub\":\"alice\"}");
    static const char *const bad[] = {
        "{\"sub\":\"alice\",\"exp\":\"1767229200\"}",
        "{\"sub\":\"alice\",\"exp\":null}",
        "{\"sub\":\"alice\",\"exp\":true}",
        "{\"sub\":\"alice\",\"exp\":[1767229200]}",
        "{\"sub\":\"alice\",\"exp\":{}}",
    };

    BAD_TOK(a, noexp, "missing exp");
    OK_TOK(legacy, noexp, "alice", false);
    /* Relaxing the requirement does not relax the checks of a given exp. */
    BAD_TOK(legacy, with_time("exp", (long long)NOW - 3600), "token expired");
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        BAD_TOK(a, tok_claims(bad[i]), "invalid exp");
        BAD_TOK(legacy, tok_claims(bad[i]), "invalid exp");
    }
}

/* --- user id ------------------------------------------------------------ */

static void test_user_id_invalid(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    char id128[WA_USER_MAX + 1], id129[WA_USER_MAX + 2];

    BAD_TOK(a, tok1("\"role\":\"authenticated\""), "no user id in token");
    BAD_TOK(a, tok1("\"uid\":\"alice\",\"userid\":\"x\",\"Sub\":\"y\""),
            "no user id in token");
    BAD_TOK(a, tok1("\"sub\":42"), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":true"), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":{\"id\":\"alice\"}"), "invalid user id");
    BAD_TOK(a, tok1("\"userId\":7"), "invalid user id");
    BAD_TOK(a, tok1("\"user_id\":null"), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"a\\u0001b\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"alice\\n\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"a\\u007fb\""), "invalid user id");
    BAD_TOK(a, tok1("\"sub\":\"\\t\""), "invalid user id");

    memset(id128, 'u', WA_USER_MAX);
    id128[WA_USER_MAX] = '\0';
    memset(id129, 'u', WA_USER_MAX + 1);
    id129[WA_USER_MAX + 1] = '\0';
    OK_TOK(a, tok1(T(forge_fmt("\"sub\":\"%s\"", id128))), id128, false);
    BAD_TOK(a, tok1(T(forge_fmt("\"sub\":\"%s\"", id129))), "invalid user id");
}

/* --- size and shape ----------------------------------------------------- */

/* A validly signed token of exactly `size` bytes, padding a claim and a
 * header field until the base64 lengths add up. */
static const char *sized_token(size_t size)
{
    for (size_t k = 0; k < 4; k++) {
        char *h =
            forge_fmt("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%.*s\"}",
                      (int)k, "kkkk");
        for (size_t pad = size * 3 / 4 - 200; pad < size; pad++) {
            char *p =
                forge_fmt("{\"sub\":\"big\",\"exp\":%lld,\"pad\":\"%0*d\"}",
                          LATER, (int)pad, 0);
            char *t = forge_jwt(h, p, FORGE_HS256, S1);
            size_t n = strlen(t);

            free(p);
            if (n == size) {
                free(h);
                return T(t);
            }
            free(t);
            if (n > size)
                break;
        }
        free(h);
    }
    fail_msg("could not build a token of %zu bytes", size);
    return NULL;
}

static void test_token_size(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *at = sized_token(WA_AUTH_TOKEN_MAX);
    const char *over = sized_token(WA_AUTH_TOKEN_MAX + 1);
    char *junk = T(malloc(1 << 20));

    assert_int_equal(strlen(at), WA_AUTH_TOKEN_MAX);
    OK_TOK(a, at, "big", false);
    /* Validly signed but one byte over: refused before decoding. */
    assert_int_equal(strlen(over), WA_AUTH_TOKEN_MAX + 1);
    BAD_TOK(a, over, "token too large");

    memset(junk, 'A', (1 << 20) - 1);
    junk[(1 << 20) - 1] = '\0';
    BAD_TOK(a, junk, "token too large");
    junk[WA_AUTH_TOKEN_MAX + 1] = '\0';
    BAD_TOK(a, junk, "token too large");
    junk[WA_AUTH_TOKEN_MAX] = '\0';
    BAD_TOK(a, junk, "malformed token");
}

/* Replace the first char of segment seg (0..2) of tok with c. */
static const char *poke(const char *tok, int seg, size_t off, char c)
{
    char *t = T(strdup(tok)), *s = t;

    for (int i = 0; i < seg; i++)
        s = strchr(s, '.') + 1;
    s[off] = c;
    return t;
}

static void test_garbage_base64(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *h = T(forge_b64url("{\"alg\":\"HS256\"}", 15));
    const char *p = T(
        forge_b64url(pl("\"sub\":\"alice\""), strlen(pl("\"sub\":\"alice\""))));
    const char *good = T(forge_raw(h, p, FORGE_HS256, S1));
    static const char bad_chars[] = "+/=!%* \t\x01\x80";

    OK_TOK(a, good, "alice", false);
    /* Non-alphabet bytes in header or payload, signed over as they are, so
     * only base64 decoding can refuse them. */
    for (const char *c = bad_chars; *c; c++) {
        const char *hh = T(forge_fmt("%c%s", *c, h + 1));
        const char *pp = T(forge_fmt("%s%c", p, *c));
        if (*c == ' ' || *c == '\t') {
            /* Whitespace cannot travel in a header value's token68. */
            wa_principal_t pr;
            const char *why;
            assert_int_equal(wa_auth_token(a,
                                           T(forge_raw(hh, p, FORGE_HS256, S1)),
                                           NOW, &pr, &why),
                             WA_EUNAUTH);
            assert_string_equal(why, "malformed token");
            continue;
        }
        BAD_TOK(a, T(forge_raw(hh, p, FORGE_HS256, S1)), "malformed token");
        BAD_TOK(a, T(forge_raw(h, pp, FORGE_HS256, S1)), "malformed token");
        BAD_TOK(a, poke(good, 2, 5, *c), "malformed token");
    }
    /* Padding, as some encoders add it. */
    BAD_TOK(a, T(forge_raw(T(forge_fmt("%s==", h)), p, FORGE_HS256, S1)),
            "malformed token");
    /* Impossible length (4n+1). */
    BAD_TOK(a, T(forge_raw(T(forge_fmt("%sA", h)), p, FORGE_HS256, S1)),
            "malformed token");
    BAD_TOK(a, T(forge_raw("e", p, FORGE_HS256, S1)), "malformed token");
    BAD_TOK(a, T(forge_fmt("%sAA", good)), "malformed token");
    /* Non-canonical: non-zero trailing bits decode to the same bytes in
     * lenient decoders; 15 header bytes end on a full group, so use 16. */
    {
        const char *h16 = T(forge_b64url("{\"alg\":\"HS256\" }", 16));
        size_t n = strlen(h16);
        char *alt = T(strdup(h16));
        OK_TOK(a, T(forge_raw(h16, p, FORGE_HS256, S1)), "alice", false);
        alt[n - 1] = alt[n - 1] == 'A' ? 'B' : (char)(alt[n - 1] + 1);
        BAD_TOK(a, T(forge_raw(alt, p, FORGE_HS256, S1)), "malformed token");
    }
    /* Base64 that decodes to something not a JSON object. */
    BAD_TOK(a, forge("{\"alg\":\"HS256\"}", "not json", FORGE_HS256, S1),
            "malformed token");
    BAD_TOK(a, forge("{\"alg\":\"HS256\"}", "[1,2]", FORGE_HS256, S1),
            "malformed token");
    BAD_TOK(a, forge("{\"alg\":\"HS256\"}", "\"alice\"", FORGE_HS256, S1),
            "malformed token");
    BAD_TOK(a,
            forge("{\"alg\":\"HS256\"}",
                  T(forge_fmt("%s trailing", pl("\"sub\":\"alice\""))),
                  FORGE_HS256, S1),
            "malformed token");
    BAD_TOK(a,
            forge("{\"alg\":\"HS256\"}",
                  T(forge_fmt("{\"exp\":%lld,\"sub\":\"root\",\"sub\":\"x\"}",
                              LATER)),
                  FORGE_HS256, S1),
            "malformed token");
    BAD_TOK(a,
            forge("{\"alg\":\"HS256\"}", pl("\"sub\":\"\xc3\x28\""),
                  FORGE_HS256, S1),
            "malformed token");
    {
        /* A NUL byte inside the payload JSON. */
        char raw[64];
        int n = snprintf(raw, sizeof(raw), "{\"sub\":\"root\"}%c{}", 0);
        const char *pz = T(forge_b64url(raw, (size_t)n));
        BAD_TOK(a, T(forge_raw(h, pz, FORGE_HS256, S1)), "malformed token");
    }
}

static void test_segments(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *good = tok1("\"sub\":\"alice\"");
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    int hl = (int)(d1 - good);

    BAD_TOK(a, "..", "malformed token");
    BAD_TOK(a, ".", "malformed token");
    BAD_TOK(a, "...", "malformed token");
    BAD_TOK(a, "a.b", "malformed token");
    BAD_TOK(a, "a..c", "malformed token");
    BAD_TOK(a, T(forge_fmt(".%s", d1 + 1)), "malformed token");
    BAD_TOK(a, T(forge_fmt("%.*s.%s", hl, good, d2 + 1)), "malformed token");
    BAD_TOK(a, T(forge_fmt("%.*s.", (int)(d2 - good), good)),
            "malformed token");
    BAD_TOK(a, T(forge_fmt("%s.", good)), "malformed token");
    BAD_TOK(a, T(forge_fmt("%s.%s", good, d2 + 1)), "malformed token");
    BAD_TOK(a, T(forge_fmt("%.*s.%s", hl, good, good)), "malformed token");
    BAD_TOK(a, "alice", "malformed token");
}

/* --- anonymous and admin ------------------------------------------------ */

static void test_anonymous(void **state)
{
    (void)state;
    wa_auth_t *a = prod();

    /* Supabase's public anon key: role anon, no sub. */
    BAD_TOK(a,
            tok1("\"iss\":\"supabase\",\"ref\":\"abc\",\"role\":\"anon\","
                 "\"iat\":1767000000"),
            "anonymous users are not allowed");
    BAD_TOK(a, tok1("\"sub\":\"alice\",\"role\":\"anon\""),
            "anonymous users are not allowed");
    /* Anonymous sign-ins have a sub and role "authenticated". */
    BAD_TOK(a,
            tok1("\"sub\":\"alice\",\"role\":\"authenticated\","
                 "\"is_anonymous\":true"),
            "anonymous users are not allowed");
    BAD_TOK(a, tok1("\"sub\":\"alice\",\"is_anonymous\":\"true\""),
            "anonymous users are not allowed");
    BAD_TOK(a, tok1("\"sub\":\"alice\",\"is_anonymous\":1"),
            "anonymous users are not allowed");
    OK_TOK(a, tok1("\"sub\":\"alice\",\"is_anonymous\":false"), "alice", false);
    OK_TOK(a, tok1("\"sub\":\"alice\",\"role\":\"anonymous\""), "alice", false);
}

static void test_admin(void **state)
{
    (void)state;
    wa_auth_t *a = mk(S1, S2, " alice , bob,,", false, true);
    wa_auth_t *none = mk(S1, S2, NULL, false, true);

    OK_TOK(a, tok1("\"sub\":\"alice\""), "alice", true);
    OK_TOK(a, tok1("\"user_id\":\"bob\""), "bob", true);
    OK_TOK(a, tok1("\"sub\":\"carol\""), "carol", false);
    OK_TOK(a, tok1("\"sub\":\"ali\""), "ali", false);
    OK_TOK(a, tok1("\"sub\":\"Alice\""), "Alice", false);
    OK_TOK(none, tok1("\"sub\":\"alice\""), "alice", false);
    OK_TOK(none, tok1("\"sub\":\"carol\",\"role\":\"admin\""), "carol", true);
    OK_TOK(none, tok1("\"sub\":\"carol\",\"role\":\"service_role\""), "carol",
           true);
    OK_TOK(none, tok1("\"sub\":\"carol\",\"role\":\"authenticated\""), "carol",
           false);
    OK_TOK(none, tok1("\"sub\":\"carol\",\"role\":\"Admin\""), "carol", false);
    OK_TOK(none, tok1("\"sub\":\"carol\",\"role\":[\"admin\"]"), "carol",
           false);
}

/* Supabase's service_role key has no sub: an admin naming no user, with
 * every other check as always. */
static void test_admin_without_user(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    wa_auth_t *legacy = mk(S1, S2, NULL, false, false);
    const char *service =
        "\"iss\":\"supabase\",\"ref\":\"abc\",\"role\":\"service_role\","
        "\"iat\":1767000000";

    OK_TOK(a, tok1(service), "", true);
    OK_TOK(a, T(forge_hs256(pl(service), S2)), "", true); /* Supabase's */
    OK_TOK(a, tok1("\"role\":\"admin\""), "", true);
    /* Still a token like any other: signature, exp, nbf, anonymity. */
    BAD_TOK(a, T(forge_hs256(pl(service), WRONG)), "bad signature");
    BAD_TOK(a,
            T(forge_hs256(T(forge_fmt("{\"role\":\"service_role\","
                                      "\"exp\":%lld}",
                                      (long long)NOW - 3600)),
                          S1)),
            "token expired");
    BAD_TOK(a, T(forge_hs256("{\"role\":\"service_role\"}", S1)),
            "missing exp");
    OK_TOK(legacy, T(forge_hs256("{\"role\":\"service_role\"}", S1)), "", true);
    BAD_TOK(a,
            tok1(T(forge_fmt("\"role\":\"service_role\",\"nbf\":%lld",
                             (long long)NOW + 3600))),
            "token not yet valid");
    BAD_TOK(a, tok1("\"role\":\"service_role\",\"is_anonymous\":true"),
            "anonymous users are not allowed");
    /* Any other role, or none, still needs a user. */
    BAD_TOK(a, tok1("\"role\":\"anon\""), "anonymous users are not allowed");
    BAD_TOK(a, tok1("\"role\":\"authenticated\""), "no user id in token");
    BAD_TOK(a, tok1("\"role\":\"Service_Role\""), "no user id in token");
    BAD_TOK(a, tok1("\"role\":[\"service_role\"]"), "no user id in token");
    BAD_TOK(a, tok1(""), "no user id in token");
    /* A user id claim present decides, as always: it must be valid. */
    BAD_TOK(a, tok1("\"role\":\"service_role\",\"sub\":\"\""),
            "invalid user id");
    BAD_TOK(a, tok1("\"role\":\"service_role\",\"sub\":null"),
            "invalid user id");
    BAD_TOK(a, tok1("\"role\":\"service_role\",\"user_id\":7"),
            "invalid user id");
    OK_TOK(a, tok1("\"role\":\"service_role\",\"sub\":\"svc\""), "svc", true);
}

/* --- Authorization header and dev mode --------------------------------- */

static void test_header_forms(void **state)
{
    (void)state;
    wa_auth_t *a = prod();
    const char *t = tok1("\"sub\":\"alice\"");

    BAD_HDR(a, NULL, "missing token");
    BAD_HDR(a, "", "missing token");
    BAD_HDR(a, "   ", "missing token");
    BAD_HDR(a, "Bearer", "missing token");
    BAD_HDR(a, "Bearer ", "missing token");
    BAD_HDR(a, "Bearer   \t ", "missing token");
    BAD_HDR(a, "Basic dXNlcjpwYXNz", "unsupported authorization scheme");
    BAD_HDR(a, "Digest x", "unsupported authorization scheme");
    BAD_HDR(a, T(forge_fmt("Bearer%s", t)), "unsupported authorization scheme");
    BAD_HDR(a, T(forge_fmt("Bearer: %s", t)),
            "unsupported authorization scheme");
    BAD_HDR(a, T(forge_fmt("Token %s", t)), "unsupported authorization scheme");
    BAD_HDR(a, T(forge_fmt("Bearer %s %s", t, t)), "malformed token");
    BAD_HDR(a, T(forge_fmt("Bearer %s x", t)), "malformed token");
    OK_HDR(a, T(forge_fmt("bearer %s", t)), "alice", false);
    OK_HDR(a, T(forge_fmt("BEARER %s", t)), "alice", false);
    OK_HDR(a, T(forge_fmt("Bearer    %s", t)), "alice", false);
    OK_HDR(a, T(forge_fmt("Bearer \t%s", t)), "alice", false);
    OK_HDR(a, T(forge_fmt("  Bearer %s  ", t)), "alice", false);

    /* The bare-token entry point. */
    {
        wa_principal_t p;
        const char *why = NULL;
        assert_int_equal(wa_auth_token(a, NULL, NOW, &p, &why), WA_EUNAUTH);
        assert_string_equal(why, "missing token");
        assert_int_equal(wa_auth_token(a, "", NOW, &p, &why), WA_EUNAUTH);
        assert_string_equal(why, "missing token");
        /* why is optional. */
        assert_int_equal(wa_auth_token(a, "x", NOW, &p, NULL), WA_EUNAUTH);
        assert_int_equal(wa_auth_token(a, t, NOW, &p, NULL), WA_OK);
    }
}

static void test_dev_mode_off(void **state)
{
    (void)state;
    wa_auth_t *a = mk(S1, NULL, "alice", false, true);

    assert_false(wa_auth_dev_mode(a));
    BAD_HDR(a, "UserId alice", "unsupported authorization scheme");
    BAD_HDR(a, "userid alice", "unsupported authorization scheme");
    BAD_HDR(a, "Bearer alice", "malformed token");
    BAD_TOK(a, "alice", "malformed token");
    BAD_TOK(a, "a1b2c3d4-0000-4000-8000-000000000000", "malformed token");
}

static void test_dev_mode_on(void **state)
{
    (void)state;
    wa_auth_t *a = mk(S1, NULL, "alice", true, true);
    const char *p = pl("\"sub\":\"alice\"");
    const char *none = forge("{\"alg\":\"none\"}", p, FORGE_SIG_EMPTY, NULL);
    char id129[WA_USER_MAX + 2];

    assert_true(wa_auth_dev_mode(a));
    assert_false(wa_auth_dev_mode(NULL));
    OK_HDR(a, "UserId alice", "alice", true);
    OK_HDR(a, "userid  bob ", "bob", false);
    OK_HDR(a, "Bearer bob", "bob", false);
    OK_TOK(a, "bob", "bob", false);
    OK_TOK(a, "a.b", "a.b", false);
    /* Real JWTs still work, and bad ones are refused even here. */
    OK_TOK(a, tok1("\"sub\":\"carol\""), "carol", false);
    BAD_TOK(a, T(forge_hs256(p, WRONG)), "bad signature");
    BAD_TOK(a, forge("{\"alg\":\"none\"}", p, FORGE_HS256, S1),
            "unsupported algorithm");
    BAD_TOK(a, with_time("exp", (long long)NOW - 3600), "token expired");
    /* An unsigned "h.p." is not JWT-shaped: it is at most the literal id,
     * never the sub it claims. */
    OK_TOK(a, none, none, false);

    BAD_HDR(a, "UserId", "missing user id");
    BAD_HDR(a, "UserId   ", "missing user id");
    BAD_HDR(a, "UserId a\x01", "invalid user id");
    BAD_HDR(a, "UserId \xff", "invalid user id");
    BAD_TOK(a, "a\x01", "invalid user id");
    memset(id129, 'u', WA_USER_MAX + 1);
    id129[WA_USER_MAX + 1] = '\0';
    BAD_HDR(a, T(forge_fmt("UserId %s", id129)), "invalid user id");
    BAD_TOK(a, id129, "invalid user id");
    id129[WA_USER_MAX] = '\0';
    OK_HDR(a, T(forge_fmt("UserId %s", id129)), id129, false);
    BAD_HDR(a, "Basic x", "unsupported authorization scheme");
}

/* --- wa_auth_new -------------------------------------------------------- */

static wa_err_t try_new(const char *s1, const char *s2, char *err,
                        size_t errlen, wa_auth_t **out)
{
    wa_auth_opts_t o = {.jwt_secret = (char *)s1,
                        .supabase_secret = (char *)s2,
                        .require_exp = true};
    return wa_auth_new(&o, out, err, errlen);
}

static void test_new_config_errors(void **state)
{
    (void)state;
    char err[128];
    char s31[32], s32[33];
    wa_auth_t *sentinel = (wa_auth_t *)&err, *a = sentinel;

    memset(s31, 's', 31);
    s31[31] = '\0';
    memset(s32, 's', 32);
    s32[32] = '\0';

    assert_int_equal(try_new(NULL, NULL, err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "JWT_SECRET or SUPABASE_JWT_SECRET is required");
    assert_ptr_equal(a, sentinel);
    assert_int_equal(try_new("", "", err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "JWT_SECRET or SUPABASE_JWT_SECRET is required");
    assert_int_equal(try_new(s31, NULL, err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "JWT_SECRET must be at least 32 bytes");
    assert_int_equal(try_new(NULL, s31, err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "SUPABASE_JWT_SECRET must be at least 32 bytes");
    /* A short secret stops the start even when the other one is fine. */
    assert_int_equal(try_new(S1, "short", err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "SUPABASE_JWT_SECRET must be at least 32 bytes");
    assert_int_equal(try_new("short", S2, err, sizeof(err), &a), WA_ECONFIG);
    assert_string_equal(err, "JWT_SECRET must be at least 32 bytes");
    assert_ptr_equal(a, sentinel);
    /* err is optional and truncated to errlen. */
    assert_int_equal(try_new(NULL, NULL, NULL, 0, &a), WA_ECONFIG);
    assert_int_equal(try_new(NULL, NULL, err, 4, &a), WA_ECONFIG);
    assert_string_equal(err, "JWT");
    assert_int_equal(wa_auth_new(NULL, &a, err, sizeof(err)), WA_EINVAL);
    assert_ptr_equal(a, sentinel);

    assert_int_equal(try_new(s32, NULL, err, sizeof(err), &a), WA_OK);
    wa_auth_free(a);
    assert_int_equal(try_new(NULL, s32, err, sizeof(err), &a), WA_OK);
    wa_auth_free(a);
    wa_auth_free(NULL);
}

/* Options are copied: the caller may wipe and free them. */
static void test_new_copies(void **state)
{
    (void)state;
    char *s1 = strdup(S1), *admins = strdup("alice");
    wa_auth_opts_t o = {
        .jwt_secret = s1, .admin_ids = admins, .require_exp = true};
    wa_auth_t *a = NULL;

    assert_int_equal(wa_auth_new(&o, &a, NULL, 0), WA_OK);
    auths[nauths++] = a;
    memset(s1, 'x', strlen(s1));
    memset(admins, 'x', strlen(admins));
    free(s1);
    free(admins);
    OK_TOK(a, tok1("\"sub\":\"alice\""), "alice", true);
}

/* --- wa_user_dirname ---------------------------------------------------- */

static const char *dirname_of(const char *user)
{
    char *out = T(malloc(WA_USER_DIR_MAX + 1));

    assert_int_equal(wa_user_dirname(user, out, WA_USER_DIR_MAX + 1), WA_OK);
    return out;
}

static void assert_hashed(const char *user, const char *hex)
{
    const char *d = dirname_of(user);

    assert_int_equal(strlen(d), WA_USER_DIR_MAX);
    assert_int_equal(d[0], '~');
    assert_int_equal(strspn(d + 1, "0123456789abcdef"), 64);
    if (hex != NULL)
        assert_string_equal(d + 1, hex);
}

static void test_dirname_rules(void **state)
{
    (void)state;
    char id64[65], id65[66];

    assert_string_equal(dirname_of("alice"), "alice");
    assert_string_equal(dirname_of("A-Z_a.z-0.9"), "A-Z_a.z-0.9");
    assert_string_equal(dirname_of("a1b2c3d4-0000-4000-8000-000000000000"),
                        "a1b2c3d4-0000-4000-8000-000000000000");
    assert_string_equal(dirname_of("a."), "a.");
    assert_string_equal(dirname_of("-rf"), "-rf");
    assert_string_equal(dirname_of("x"), "x");

    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'a', 65);
    id65[65] = '\0';
    assert_string_equal(dirname_of(id64), id64);
    assert_hashed(id65, NULL);

    assert_hashed(".", "cdb4ee2aea69cc6a83331bbe96dc2caa9a299d21329efb0336fc02a"
                       "82e1839a8");
    assert_hashed("..", "5ec1f7e700f37c3d0b2981d04855fc34b94aaa15457b05ca57181"
                        "7442d228f81");
    assert_hashed("a/b", "c14cddc033f64b9dea80ea675cf280a015e672516090a5626781"
                         "153dc68fea11");
    assert_hashed("j\xc3\xbcrgen", "19b720a911fced55aecd96bf4ddcada1c69be5a96d"
                                   "c523d5be336b8efbde3109");
    assert_hashed("../etc", NULL);
    assert_hashed("../../etc/passwd", NULL);
    assert_hashed("/", NULL);
    assert_hashed(".hidden", NULL);
    assert_hashed("a b", NULL);
    assert_hashed("a\\b", NULL);
    assert_hashed("~alice", NULL);
    assert_hashed("alice\n", NULL);
    assert_hashed("C:", NULL);
}

static void test_dirname_injective(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"a/b", "a_b"},     {".", ".."},    {"..", "..."},
        {"alice", "Alice"}, {"a b", "a_b"}, {"alice", "alice\n"},
        {"a.b", "a/b"},     {"x", ".x"},
    };
    char id64[65], id65[66];
    const char *h;

    for (size_t i = 0; i < sizeof(pairs) / sizeof(*pairs); i++)
        assert_string_not_equal(dirname_of(pairs[i][0]),
                                dirname_of(pairs[i][1]));
    /* A user whose id is another user's hashed name gets a different one. */
    h = dirname_of("a/b");
    assert_string_not_equal(dirname_of(h), h);
    /* 64 bytes kept vs 65 hashed; the kept one can't look hashed. */
    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'a', 65);
    id65[65] = '\0';
    assert_string_not_equal(dirname_of(id64), dirname_of(id65));
    /* Deterministic. */
    assert_string_equal(dirname_of("a/b"), dirname_of("a/b"));
}

static void test_dirname_errors(void **state)
{
    (void)state;
    char out[WA_USER_DIR_MAX + 1];

    assert_int_equal(wa_user_dirname("", out, sizeof(out)), WA_EINVAL);
    assert_int_equal(wa_user_dirname(NULL, out, sizeof(out)), WA_EINVAL);
    assert_int_equal(wa_user_dirname("alice", NULL, sizeof(out)), WA_EINVAL);
    /* The buffer must fit any result, even for an id that is kept. */
    assert_int_equal(wa_user_dirname("alice", out, WA_USER_DIR_MAX), WA_EINVAL);
    assert_int_equal(wa_user_dirname("a/b", out, WA_USER_DIR_MAX), WA_EINVAL);
    assert_int_equal(wa_user_dirname("a/b", out, 0), WA_EINVAL);
    assert_int_equal(wa_user_dirname("a/b", out, sizeof(out)), WA_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_valid_sub, teardown),
        cmocka_unit_test_teardown(test_user_id_precedence, teardown),
        cmocka_unit_test_teardown(test_libjwt_interop, teardown),
        cmocka_unit_test_teardown(test_both_secrets, teardown),
        cmocka_unit_test_teardown(test_wrong_secret, teardown),
        cmocka_unit_test_teardown(test_alg_none, teardown),
        cmocka_unit_test_teardown(test_alg_other, teardown),
        cmocka_unit_test_teardown(test_alg_missing_or_not_string, teardown),
        cmocka_unit_test_teardown(test_header_shape, teardown),
        cmocka_unit_test_teardown(test_exp, teardown),
        cmocka_unit_test_teardown(test_nbf, teardown),
        cmocka_unit_test_teardown(test_exp_required, teardown),
        cmocka_unit_test_teardown(test_user_id_invalid, teardown),
        cmocka_unit_test_teardown(test_token_size, teardown),
        cmocka_unit_test_teardown(test_garbage_base64, teardown),
        cmocka_unit_test_teardown(test_segments, teardown),
        cmocka_unit_test_teardown(test_anonymous, teardown),
        cmocka_unit_test_teardown(test_admin, teardown),
        cmocka_unit_test_teardown(test_admin_without_user, teardown),
        cmocka_unit_test_teardown(test_header_forms, teardown),
        cmocka_unit_test_teardown(test_dev_mode_off, teardown),
        cmocka_unit_test_teardown(test_dev_mode_on, teardown),
        cmocka_unit_test_teardown(test_new_config_errors, teardown),
        cmocka_unit_test_teardown(test_new_copies, teardown),
        cmocka_unit_test_teardown(test_dirname_rules, teardown),
        cmocka_unit_test_teardown(test_dirname_injective, teardown),
        cmocka_unit_test_teardown(test_dirname_errors, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
