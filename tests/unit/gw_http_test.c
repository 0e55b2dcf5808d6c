/* gw_http_test.c - the route table: template matching, the metrics table
 * kept next to it, which routes are public and which serve a user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway.h"

static void test_match(void **state)
{
    char param[GW_PARAM_MAX + 1];

    (void)state;
    assert_true(gw_route_match("/status", "/status", param, sizeof(param)));
    assert_false(gw_route_match("/status", "/status/", param, sizeof(param)));
    assert_false(gw_route_match("/status", "/statu", param, sizeof(param)));
    assert_false(gw_route_match("/status", "/statuses", param, sizeof(param)));
    assert_false(gw_route_match("/status", "", param, sizeof(param)));

    assert_true(gw_route_match("/messages/{chatId}", "/messages/1@c.us", param,
                               sizeof(param)));
    assert_string_equal(param, "1@c.us");
    /* One segment only, never empty. */
    assert_false(gw_route_match("/messages/{chatId}", "/messages/", param,
                                sizeof(param)));
    assert_false(gw_route_match("/messages/{chatId}", "/messages", param,
                                sizeof(param)));
    assert_false(gw_route_match("/messages/{chatId}", "/messages/a/b", param,
                                sizeof(param)));
    /* Too long: matched, but empty (the handler refuses it with 400). */
    {
        char path[512];

        memset(path, 'x', sizeof(path));
        memcpy(path, "/messages/", 10);
        path[sizeof(path) - 1] = '\0';
        assert_true(
            gw_route_match("/messages/{chatId}", path, param, sizeof(param)));
        assert_string_equal(param, "");
    }
}

static void test_tables_agree(void **state)
{
    (void)state;
    for (size_t i = 0; i < gw_nroutes; i++) {
        assert_string_equal(gw_routes[i].method, gw_metric_routes[i].method);
        assert_string_equal(gw_routes[i].path, gw_metric_routes[i].path);
        assert_non_null(gw_routes[i].handler);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(gw_routes[i].path, gw_routes[j].path) == 0 &&
                strcmp(gw_routes[i].method, gw_routes[j].method) == 0)
                fail_msg("route %s %s twice", gw_routes[i].method,
                         gw_routes[i].path);
        }
    }
}

static void test_public_routes(void **state)
{
    static const char *const public[] = {"/health", "/metrics", "/openapi.json",
                                         "/",       "/app.js",  "/app.css"};

    (void)state;
    for (size_t i = 0; i < gw_nroutes; i++) {
        bool is_public = false;

        for (size_t j = 0; j < sizeof(public) / sizeof(public[0]); j++)
            is_public = is_public || strcmp(gw_routes[i].path, public[j]) == 0;
        if (gw_routes[i].auth == is_public)
            fail_msg("%s: auth is %d", gw_routes[i].path, gw_routes[i].auth);
        /* Only reads are shared between requests. */
        if (gw_routes[i].coalesce)
            assert_string_equal(gw_routes[i].method, "GET");
    }
}

/* The routes that act for the token's user, and only they, refuse a token
 * naming none (an admin service key): DESIGN §4's user routes. */
static void test_user_routes(void **state)
{
    static const char *const user[] = {
        "/status", "/connect", "/disconnect",    "/chats",
        "/logs",   "/send",    "/chat-by-phone", "/messages/{chatId}"};

    (void)state;
    for (size_t i = 0; i < gw_nroutes; i++) {
        bool is_user = false;

        for (size_t j = 0; j < sizeof(user) / sizeof(user[0]); j++)
            is_user = is_user || strcmp(gw_routes[i].path, user[j]) == 0;
        if (gw_routes[i].user != is_user)
            fail_msg("%s: user is %d", gw_routes[i].path, gw_routes[i].user);
        /* A user comes from a token. */
        if (gw_routes[i].user)
            assert_true(gw_routes[i].auth);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_tables_agree),
        cmocka_unit_test(test_public_routes),
        cmocka_unit_test(test_user_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
