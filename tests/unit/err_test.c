/*
 * err_test.c - the error table of err.h: complete, consistent, and safe on
 * values outside the enum.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wa/err.h"

/* The contract as err.h's comments state it, written out independently of
 * err.c so a changed row in either place fails here. */
static const struct {
    wa_err_t err;
    const char *code;
    int status;
} expected[] = {
    {WA_OK, "ok", 200},
    {WA_EINVAL, "bad_request", 400},
    {WA_ETOOBIG, "payload_too_large", 413},
    {WA_EUTF8, "invalid_utf8", 400},
    {WA_EPROTO, "bad_envelope", 400},
    {WA_EVERSION, "unsupported_version", 400},
    {WA_EUNKNOWNOP, "unknown_operation", 400},
    {WA_EUNAUTH, "unauthorized", 401},
    {WA_EFORBIDDEN, "forbidden", 403},
    {WA_ENOTFOUND, "not_found", 404},
    {WA_EMETHOD, "method_not_allowed", 405},
    {WA_ENOTREADY, "not_ready", 409},
    {WA_ECONFLICT, "conflict", 409},
    {WA_ERATELIMIT, "rate_limited", 429},
    {WA_ENOMEM, "out_of_memory", 500},
    {WA_EINTERNAL, "internal_error", 500},
    {WA_ESTORAGE, "storage_error", 500},
    {WA_EUNAVAIL, "unavailable", 503},
    {WA_ENOSESSIONSVC, "no_session_service", 503},
    {WA_EFULL, "capacity_reached", 503},
    {WA_ETIMEDOUT, "timeout", 504},
    {WA_ECLOSED, "closed", 503},
    {WA_EBROWSER, "browser_error", 502},
    {WA_ECONFIG, "bad_config", 500},
};

static void test_expected_covers_enum(void **state)
{
    (void)state;
    assert_int_equal(sizeof(expected) / sizeof(expected[0]), WA_ERR_COUNT);
    for (int i = 0; i < WA_ERR_COUNT; i++)
        assert_int_equal(expected[i].err, i);
}

static void test_table_matches_header(void **state)
{
    (void)state;
    for (int i = 0; i < WA_ERR_COUNT; i++) {
        assert_string_equal(wa_err_code(expected[i].err), expected[i].code);
        assert_int_equal(wa_err_http_status(expected[i].err),
                         expected[i].status);
    }
}

static void test_every_code_complete(void **state)
{
    (void)state;
    for (int i = 0; i < WA_ERR_COUNT; i++) {
        wa_err_t e = (wa_err_t)i;
        const char *code = wa_err_code(e);
        const char *msg = wa_strerror(e);
        int status = wa_err_http_status(e);

        assert_non_null(code);
        assert_true(strlen(code) > 0);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_in_range(status, 200, 599);
        /* Machine codes are snake_case ASCII: they go into JSON and URLs. */
        for (const char *p = code; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                        *p == '_');
        /* Only WA_OK is a success. */
        if (e != WA_OK)
            assert_true(status >= 400);
    }
}

static void test_codes_unique(void **state)
{
    (void)state;
    for (int i = 0; i < WA_ERR_COUNT; i++) {
        for (int j = i + 1; j < WA_ERR_COUNT; j++)
            assert_string_not_equal(wa_err_code((wa_err_t)i),
                                    wa_err_code((wa_err_t)j));
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < WA_ERR_COUNT; i++) {
        wa_err_t out = WA_ERR_COUNT;
        assert_int_equal(wa_err_from_code(wa_err_code((wa_err_t)i), &out),
                         WA_OK);
        assert_int_equal(out, i);
    }
}

static void test_from_code_rejects(void **state)
{
    wa_err_t out = WA_EBROWSER;
    (void)state;

    assert_int_equal(wa_err_from_code(NULL, &out), WA_EINVAL);
    assert_int_equal(wa_err_from_code("", &out), WA_EINVAL);
    assert_int_equal(wa_err_from_code("no_such_code", &out), WA_EINVAL);
    assert_int_equal(wa_err_from_code("BAD_REQUEST", &out), WA_EINVAL);
    assert_int_equal(wa_err_from_code("bad_request ", &out), WA_EINVAL);
    assert_int_equal(wa_err_from_code("bad_request", NULL), WA_EINVAL);
    /* *out untouched on failure. */
    assert_int_equal(out, WA_EBROWSER);
}

static void test_out_of_range(void **state)
{
    const wa_err_t bad[] = {WA_ERR_COUNT, (wa_err_t)(WA_ERR_COUNT + 1),
                            (wa_err_t)1000, (wa_err_t)-1, (wa_err_t)INT32_MAX};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_non_null(wa_strerror(bad[i]));
        assert_true(strlen(wa_strerror(bad[i])) > 0);
        assert_non_null(wa_err_code(bad[i]));
        assert_int_equal(wa_err_http_status(bad[i]), 500);
        assert_false(wa_err_detail_shown(bad[i]));
    }
}

/* A peer's message reaches a client for every 4xx and for
 * capacity_reached only. */
static void test_detail_shown(void **state)
{
    (void)state;
    for (int e = 0; e < WA_ERR_COUNT; e++)
        assert_true(wa_err_detail_shown((wa_err_t)e) ==
                    (wa_err_http_status((wa_err_t)e) < 500 || e == WA_EFULL));
    assert_true(wa_err_detail_shown(WA_EINVAL));
    assert_true(wa_err_detail_shown(WA_EFULL));
    assert_false(wa_err_detail_shown(WA_EINTERNAL));
    assert_false(wa_err_detail_shown(WA_EUNAVAIL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_covers_enum),
        cmocka_unit_test(test_table_matches_header),
        cmocka_unit_test(test_every_code_complete),
        cmocka_unit_test(test_detail_shown),
        cmocka_unit_test(test_codes_unique),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_from_code_rejects),
        cmocka_unit_test(test_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
