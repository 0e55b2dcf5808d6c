/* gw_authcache_test.c - remembered verifications: exact header match, the
 * token's exp and the TTL both end an entry, only "Bearer <jwt>" is kept,
 * the bound holds, and the cache never answers what the verifier would
 * not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authcache.h"
#include "jwt_forge.h"

#define KEY "0123456789abcdef0123456789abcdef-cache"
#define NOW 1800000000

static char *bearer(const char *payload)
{
    char *tok = forge_hs256(payload, KEY);
    char *h = forge_fmt("Bearer %s", tok);

    free(tok);
    return h;
}

static void test_put_get(void **state)
{
    gw_authcache_t *c;
    wa_principal_t p = {.user = "u1", .admin = true}, out;
    char *h = bearer("{\"sub\":\"u1\",\"exp\":1800003600}");
    char *other = bearer("{\"sub\":\"u2\",\"exp\":1800003600}");

    (void)state;
    assert_int_equal(gw_authcache_new(&c), WA_OK);
    assert_false(gw_authcache_get(c, h, NOW, &out));
    gw_authcache_put(c, h, NOW, &p);
    memset(&out, 0, sizeof(out));
    assert_true(gw_authcache_get(c, h, NOW + 1, &out));
    assert_string_equal(out.user, "u1");
    assert_true(out.admin);
    /* Another token, or the same one changed by a byte, is not known. */
    assert_false(gw_authcache_get(c, other, NOW, &out));
    h[strlen(h) - 1] ^= 1;
    assert_false(gw_authcache_get(c, h, NOW, &out));
    h[strlen(h) - 1] ^= 1;
    assert_false(gw_authcache_get(c, NULL, NOW, &out));
    /* The TTL ends it even though the token lives an hour. */
    assert_true(gw_authcache_get(c, h, NOW + GW_AUTHCACHE_TTL_S - 1, &out));
    assert_false(gw_authcache_get(c, h, NOW + GW_AUTHCACHE_TTL_S, &out));
    gw_authcache_free(c);
    free(h);
    free(other);
}

static void test_exp_ends_entry(void **state)
{
    gw_authcache_t *c;
    wa_principal_t p = {.user = "u1"}, out;
    char *soon = bearer("{\"sub\":\"u1\",\"exp\":1800000010}");
    char *gone = bearer("{\"sub\":\"u1\",\"exp\":1799999990}");

    (void)state;
    assert_int_equal(gw_authcache_new(&c), WA_OK);
    gw_authcache_put(c, soon, NOW, &p);
    assert_true(gw_authcache_get(c, soon, NOW + 9, &out));
    /* At exp the cache forgets, with no leeway (stricter than the
     * verifier, never looser). */
    assert_false(gw_authcache_get(c, soon, NOW + 10, &out));
    /* A token the verifier accepted within its leeway, already past exp,
     * is not remembered at all. */
    gw_authcache_put(c, gone, NOW, &p);
    assert_false(gw_authcache_get(c, gone, NOW, &out));
    gw_authcache_free(c);
    free(soon);
    free(gone);
}

static void test_only_bearer_jwts(void **state)
{
    static const char *const not_kept[] = {
        "UserId u1",
        "Bearer u1",     /* dev-mode raw id */
        "Bearer  a.b.c", /* two spaces */
        "Bearer a.b.c ", /* trailing space */
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer a.!!!.c",         /* payload not base64url */
        "Bearer a.bm90IGpzb24.c", /* payload not JSON */
        "Basic dTE6cA==",
        "",
    };
    gw_authcache_t *c;
    wa_principal_t p = {.user = "u1"}, out;

    (void)state;
    assert_int_equal(gw_authcache_new(&c), WA_OK);
    for (size_t i = 0; i < sizeof(not_kept) / sizeof(not_kept[0]); i++) {
        gw_authcache_put(c, not_kept[i], NOW, &p);
        if (gw_authcache_get(c, not_kept[i], NOW, &out))
            fail_msg("remembered \"%s\"", not_kept[i]);
    }
    gw_authcache_free(c);
}

static void test_no_exp_uses_ttl(void **state)
{
    gw_authcache_t *c;
    wa_principal_t p = {.user = "legacy"}, out;
    char *h = bearer("{\"sub\":\"legacy\"}");

    (void)state;
    assert_int_equal(gw_authcache_new(&c), WA_OK);
    gw_authcache_put(c, h, NOW, &p);
    assert_true(gw_authcache_get(c, h, NOW + 59, &out));
    assert_false(gw_authcache_get(c, h, NOW + 60, &out));
    gw_authcache_free(c);
    free(h);
}

static void test_bounded(void **state)
{
    gw_authcache_t *c;
    wa_principal_t p = {.user = "u"}, out;
    char *first = bearer("{\"sub\":\"first\",\"exp\":1800003600}");
    int found = 0;

    (void)state;
    assert_int_equal(gw_authcache_new(&c), WA_OK);
    gw_authcache_put(c, first, NOW, &p);
    /* Four times the bound in distinct tokens, each added later: the
     * oldest go, so the first is long gone. (ASan checks nothing leaks.) */
    for (int i = 0; i < 4 * GW_AUTHCACHE_MAX; i++) {
        char payload[96];
        char *h;

        snprintf(payload, sizeof(payload),
                 "{\"sub\":\"u%d\",\"exp\":1800003600}", i);
        h = bearer(payload);
        gw_authcache_put(c, h, NOW + 1 + i / 1000, &p);
        if (i == 4 * GW_AUTHCACHE_MAX - 1)
            found = gw_authcache_get(c, h, NOW + 1 + i / 1000, &out);
        free(h);
    }
    assert_true(found);
    assert_false(gw_authcache_get(c, first, NOW + 2, &out));
    gw_authcache_free(c);
    free(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_exp_ends_entry),
        cmocka_unit_test(test_only_bearer_jwts),
        cmocka_unit_test(test_no_exp_uses_ttl),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
