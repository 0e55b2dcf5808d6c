/* gw_cors_test.c - the gateway's CORS headers and preflight answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cors.h"
#include "wa/config.h"

static char **origins;

static int setup(void **state)
{
    (void)state;
    origins = wa_strv_split("https://crm.example, http://localhost:5173");
    return origins == NULL;
}

static int teardown(void **state)
{
    (void)state;
    wa_strv_free(origins);
    return 0;
}

static void test_allowed(void **state)
{
    char buf[GW_CORS_HEADERS_MAX];

    (void)state;
    assert_true(
        gw_cors_headers(origins, "https://crm.example", buf, sizeof(buf)));
    assert_string_equal(buf, "Vary: Origin\r\n"
                             "Access-Control-Allow-Origin: "
                             "https://crm.example\r\n"
                             "Access-Control-Expose-Headers: X-Request-Id, "
                             "Retry-After\r\n");
    assert_true(
        gw_cors_headers(origins, "http://localhost:5173", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "Allow-Origin: http://localhost:5173\r\n"));
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "https://evil.example",
        "https://crm.example.evil.example",
        "https://crm.example/",
        "HTTPS://CRM.EXAMPLE",
        "https://crm.exampl",
        " https://crm.example",
        "null",
        "*",
        "",
    };
    char buf[GW_CORS_HEADERS_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(gw_cors_headers(origins, bad[i], buf, sizeof(buf)));
        /* No CORS header at all, but still Vary. */
        assert_string_equal(buf, "Vary: Origin\r\n");
    }
    assert_false(gw_cors_headers(origins, NULL, buf, sizeof(buf)));
    assert_string_equal(buf, "Vary: Origin\r\n");
}

static void test_no_origins_configured(void **state)
{
    char **none = wa_strv_split(NULL);
    char buf[GW_CORS_HEADERS_MAX];

    (void)state;
    assert_non_null(none);
    assert_false(
        gw_cors_headers(none, "https://crm.example", buf, sizeof(buf)));
    assert_string_equal(buf, "Vary: Origin\r\n");
    assert_false(gw_cors_allowed(NULL, "https://crm.example"));
    wa_strv_free(none);
}

static void test_long_origin(void **state)
{
    char *origin = malloc(GW_ORIGIN_MAX + 2);
    char list[GW_ORIGIN_MAX + 16];
    char buf[GW_CORS_HEADERS_MAX];
    char **long_list;

    (void)state;
    memset(origin, 'a', GW_ORIGIN_MAX + 1);
    origin[GW_ORIGIN_MAX + 1] = '\0';
    snprintf(list, sizeof(list), "%s", origin);
    long_list = wa_strv_split(list);
    /* Even when configured, an origin over the limit is never echoed. */
    assert_false(gw_cors_headers(long_list, origin, buf, sizeof(buf)));
    origin[GW_ORIGIN_MAX] = '\0';
    wa_strv_free(long_list);
    long_list = wa_strv_split(origin);
    assert_true(gw_cors_headers(long_list, origin, buf, sizeof(buf)));
    wa_strv_free(long_list);
    free(origin);
}

static void test_preflight(void **state)
{
    char buf[GW_CORS_HEADERS_MAX];

    (void)state;
    assert_true(gw_cors_is_preflight("OPTIONS", "GET"));
    assert_false(gw_cors_is_preflight("OPTIONS", NULL));
    assert_false(gw_cors_is_preflight("GET", "GET"));
    assert_false(gw_cors_is_preflight(NULL, "GET"));

    assert_true(gw_cors_preflight_headers(origins, "https://crm.example",
                                          "POST, OPTIONS", buf, sizeof(buf)));
    assert_string_equal(buf,
                        "Vary: Origin\r\n"
                        "Access-Control-Allow-Origin: https://crm.example\r\n"
                        "Access-Control-Expose-Headers: X-Request-Id, "
                        "Retry-After\r\n"
                        "Access-Control-Allow-Methods: POST, OPTIONS\r\n"
                        "Access-Control-Allow-Headers: Authorization, "
                        "Content-Type, X-Request-Id\r\n"
                        "Access-Control-Max-Age: 600\r\n");

    assert_false(gw_cors_preflight_headers(origins, "https://evil.example",
                                           "GET, OPTIONS", buf, sizeof(buf)));
    assert_string_equal(buf, "Vary: Origin\r\n");
    assert_false(gw_cors_preflight_headers(origins, NULL, "GET, OPTIONS", buf,
                                           sizeof(buf)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_no_origins_configured),
        cmocka_unit_test(test_long_origin),
        cmocka_unit_test(test_preflight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
