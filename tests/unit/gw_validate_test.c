/* gw_validate_test.c - gateway input checks: chat ids, phones, integers,
 * query parameters, request paths, message text, NUL escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "validate.h"
#include "wa/json.h"

static void test_chat_id_good(void **state)
{
    static const char *const good[] = {
        "41791234567@c.us",
        "12345@c.us",                  /* 5 digits, the shortest */
        "12345678901234567890@c.us",   /* 20 digits, the longest */
        "120363025246125888@g.us",     /* new-style group */
        "41791234567-1600000000@g.us", /* old-style group */
        "12345-1@g.us",
        "12345678901234567890-12345678901234567890@g.us",
        "00000@c.us",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!gw_valid_chat_id(good[i]))
            fail_msg("refused good chat id %s", good[i]);
        assert_true(strlen(good[i]) <= GW_CHAT_ID_MAX);
    }
}

static void test_chat_id_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "@c.us",
        "1234@c.us",                  /* 4 digits */
        "123456789012345678901@c.us", /* 21 digits */
        "41791234567",                /* no suffix */
        "41791234567@s.whatsapp.net",
        "41791234567@C.US",
        "41791234567@c.us ",
        " 41791234567@c.us",
        "+41791234567@c.us",
        "4179123456a@c.us",
        "41791234567-1600000000@c.us", /* a person has no dash part */
        "41791234567-@g.us",
        "41791234567--1@g.us",
        "41791234567-1-2@g.us",
        "12345-123456789012345678901@g.us", /* 21 digits after the dash */
        "41791234567@g.us/../x",
        "41791234567@c.usx",
        "41791234567@c.us\n",
        "41791234567@lid",
        "../../etc/passwd",
        "41791234567@c.us%00",
    };
    (void)state;
    assert_false(gw_valid_chat_id(NULL));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gw_valid_chat_id(bad[i]))
            fail_msg("accepted bad chat id \"%s\"", bad[i]);
    }
}

static void test_phone(void **state)
{
    static const char *const good[] = {"+41791234567", "+1234567",
                                       "+123456789012345", "+9999999"};
    static const char *const bad[] = {
        "",
        "+",
        "41791234567",
        "+0791234567",
        "+123456",
        /* 6 digits */ "+1234567890123456", /* 16 digits */
        " +41791234567",
        "+41791234567 ",
        "+41 79 123 45 67",
        "+4179123456a",
        "++41791234567",
        "+-41791234567",
        "0041791234567",
        "+41791234567\n",
    };
    (void)state;
    assert_false(gw_valid_phone(NULL));
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!gw_valid_phone(good[i]))
            fail_msg("refused good phone %s", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gw_valid_phone(bad[i]))
            fail_msg("accepted bad phone \"%s\"", bad[i]);
    }
}

static void test_parse_int(void **state)
{
    static const char *const bad[] = {
        "",           "0",
        "501",        "-1",
        "+5",         " 5",
        "5 ",         "5a",
        "1e2",        "0x10",
        "5.0",        "50,",
        "9999999999", "1000000000000000000000",
        "٥", /* an Arabic-Indic five */
    };
    long v = -7;

    (void)state;
    assert_int_equal(gw_parse_int("1", 1, 500, &v), WA_OK);
    assert_int_equal(v, 1);
    assert_int_equal(gw_parse_int("500", 1, 500, &v), WA_OK);
    assert_int_equal(v, 500);
    assert_int_equal(gw_parse_int("050", 1, 500, &v), WA_OK);
    assert_int_equal(v, 50);
    assert_int_equal(gw_parse_int("0", 0, 9, &v), WA_OK);
    assert_int_equal(v, 0);
    assert_int_equal(gw_parse_int("999999999", 0, 999999999, &v), WA_OK);
    assert_int_equal(gw_parse_int(NULL, 1, 500, &v), WA_EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -7;
        if (gw_parse_int(bad[i], 1, 500, &v) != WA_EINVAL)
            fail_msg("accepted limit \"%s\"", bad[i]);
        assert_int_equal(v, -7); /* untouched on failure */
    }
}

static void test_query_param(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(gw_query_param(NULL, "limit", out, sizeof(out)),
                     WA_ENOTFOUND);
    assert_int_equal(gw_query_param("", "limit", out, sizeof(out)),
                     WA_ENOTFOUND);
    assert_int_equal(gw_query_param("limit=5", "limit", out, sizeof(out)),
                     WA_OK);
    assert_string_equal(out, "5");
    assert_int_equal(
        gw_query_param("a=1&limit=20&b=2", "limit", out, sizeof(out)), WA_OK);
    assert_string_equal(out, "20");
    /* A name that only starts like ours is another parameter. */
    assert_int_equal(
        gw_query_param("limits=5&xlimit=6", "limit", out, sizeof(out)),
        WA_ENOTFOUND);
    /* '+' stays '+'; %2B decodes to '+'. */
    assert_int_equal(
        gw_query_param("phone=+41791234567", "phone", out, sizeof(out)), WA_OK);
    assert_string_equal(out, "+41791234567");
    assert_int_equal(
        gw_query_param("phone=%2B41791234567", "phone", out, sizeof(out)),
        WA_OK);
    assert_string_equal(out, "+41791234567");
    assert_int_equal(gw_query_param("phone=%2b4179", "phone", out, sizeof(out)),
                     WA_OK);
    assert_string_equal(out, "+4179");
    /* Empty values, with and without '='. */
    assert_int_equal(gw_query_param("limit=", "limit", out, sizeof(out)),
                     WA_OK);
    assert_string_equal(out, "");
    assert_int_equal(gw_query_param("limit", "limit", out, sizeof(out)), WA_OK);
    assert_string_equal(out, "");
    /* Twice is ambiguous. */
    assert_int_equal(
        gw_query_param("limit=5&limit=6", "limit", out, sizeof(out)),
        WA_EINVAL);
    /* Bad escapes and NUL. */
    assert_int_equal(gw_query_param("phone=%2", "phone", out, sizeof(out)),
                     WA_EINVAL);
    assert_int_equal(gw_query_param("phone=%zz1", "phone", out, sizeof(out)),
                     WA_EINVAL);
    assert_int_equal(gw_query_param("phone=%00", "phone", out, sizeof(out)),
                     WA_EINVAL);
    /* Too long for the buffer. */
    assert_int_equal(gw_query_param("phone=12345678", "phone", out, 8),
                     WA_ETOOBIG);
    assert_int_equal(gw_query_param("phone=1234567", "phone", out, 8), WA_OK);
}

static void test_path_decode(void **state)
{
    static const struct {
        const char *raw, *want;
    } good[] = {
        {"/status", "/status"},
        {"/st%61tus", "/status"},
        {"/messages/41791234567%40c.us", "/messages/41791234567@c.us"},
        {"/messages/41791234567%40C.US", "/messages/41791234567@C.US"},
        {"/a%2Fb", "/a/b"}, /* decoded before routing, as CivetWeb did */
        {"/a%2fb%20c", "/a/b c"},
        {"/a+b", "/a+b"}, /* a path is not a form */
        {"/%25", "/%"},
        {"/%C3%A9", "/\xc3\xa9"},
        {"", ""},
    };
    static const struct {
        const char *raw, *why;
    } bad[] = {
        {"/status%00junk", "path: must not contain %00"},
        {"/messages/41791234567@c.us%00junk", "path: must not contain %00"},
        {"%00", "path: must not contain %00"},
        {"/a%", "path: malformed percent-encoding"},
        {"/a%0", "path: malformed percent-encoding"},
        {"/a%zz", "path: malformed percent-encoding"},
        {"/a%0g", "path: malformed percent-encoding"},
        {"/a%%41", "path: malformed percent-encoding"},
    };
    char out[64];
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        why = NULL;
        assert_int_equal(gw_path_decode(good[i].raw, out, sizeof(out), &why),
                         WA_OK);
        assert_string_equal(out, good[i].want);
        assert_null(why);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(gw_path_decode(bad[i].raw, out, sizeof(out), &why),
                         WA_EINVAL);
        assert_string_equal(why, bad[i].why);
    }
    /* The decoded path and its NUL must fit; decoding only shrinks, so
     * strlen(raw) + 1 always does. */
    assert_int_equal(gw_path_decode("/status", out, 7, &why), WA_ETOOBIG);
    assert_int_equal(gw_path_decode("/status", out, 8, &why), WA_OK);
    assert_int_equal(gw_path_decode("/st%61tus", out, 8, &why), WA_OK);
    assert_int_equal(gw_path_decode("", out, 0, &why), WA_ETOOBIG);
}

static void test_message(void **state)
{
    const char *why = NULL;
    char *big = malloc(GW_MESSAGE_MAX + 2);

    (void)state;
    assert_int_equal(gw_check_message("hi", 2, &why), WA_OK);
    assert_int_equal(gw_check_message("Grüezi 👋", strlen("Grüezi 👋"), &why),
                     WA_OK);
    assert_int_equal(gw_check_message("", 0, &why), WA_EINVAL);
    assert_non_null(strstr(why, "message"));
    assert_int_equal(gw_check_message(NULL, 0, &why), WA_EINVAL);
    assert_int_equal(gw_check_message("\xff", 1, &why), WA_EINVAL);
    assert_non_null(strstr(why, "UTF-8"));
    assert_int_equal(gw_check_message("\xed\xa0\x80", 3, &why), WA_EINVAL);
    assert_int_equal(gw_check_message("\xc0\xaf", 2, &why), WA_EINVAL);
    memset(big, 'a', GW_MESSAGE_MAX + 1);
    big[GW_MESSAGE_MAX + 1] = '\0';
    assert_int_equal(gw_check_message(big, GW_MESSAGE_MAX, &why), WA_OK);
    assert_int_equal(gw_check_message(big, GW_MESSAGE_MAX + 1, &why),
                     WA_EINVAL);
    assert_non_null(strstr(why, "65536"));
    free(big);
}

static void test_nul_escape(void **state)
{
    static const char *const with[] = {
        "{\"m\":\"\\u0000\"}", "{\"m\":\"a\\u0000b\"}", "{\"\\u0000\":1}",
        "{\"m\":\"\\\\\\u0000\"}", /* an escaped backslash, then \u0000 */
    };
    static const char *const without[] = {
        "{\"m\":\"\\\\u0000\"}", /* the text \u0000, backslash escaped */
        "{\"m\":\"\\u0001\"}",
        "{\"m\":\"u0000\"}",
        "{\"m\":\"\\u00000\"}" /* \u0000 then 0: still a NUL */,
    };
    (void)state;
    for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++) {
        if (!gw_json_has_nul_escape(with[i], strlen(with[i])))
            fail_msg("missed the NUL in %s", with[i]);
    }
    for (size_t i = 0; i + 1 < sizeof(without) / sizeof(without[0]); i++) {
        if (gw_json_has_nul_escape(without[i], strlen(without[i])))
            fail_msg("saw a NUL in %s", without[i]);
    }
    assert_true(gw_json_has_nul_escape(without[3], strlen(without[3])));
    /* Cut short: no out-of-bounds read. */
    assert_false(gw_json_has_nul_escape("{\"m\":\"\\u000", 10));
}

/* store-svc's log.list answer, whose rows become the GET /logs body:
 * exactly the contract. */
static void test_logs_shape(void **state)
{
    static const struct {
        const char *text, *rows; /* rows: NULL for an unchanged answer */
    } good[] = {
        {"{\"logs\":[],\"version\":\"e.0\"}", "[]"},
        {"{\"logs\":[{\"id\":1,\"eventType\":\"qr\",\"eventData\":{\"a\":[1]},"
         "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}],\"version\":\"e.1\"}",
         "[{\"id\":1,\"eventType\":\"qr\",\"eventData\":{\"a\":[1]},"
         "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}]"},
        {" { \"version\" : \"e.3\" , \"logs\" : [ "
         "{\"timestamp\":null,\"eventData\":\"x\",\"eventType\":null,"
         "\"id\":2} , {\"id\":3,\"eventType\":\"t\",\"eventData\":null,"
         "\"timestamp\":\"t\"} ] } ",
         "[ {\"timestamp\":null,\"eventData\":\"x\",\"eventType\":null,"
         "\"id\":2} , {\"id\":3,\"eventType\":\"t\",\"eventData\":null,"
         "\"timestamp\":\"t\"} ]"},
        {"{\"unchanged\":true,\"version\":\"e.3\"}", NULL},
        {"{\"version\":\"e.3\",\"unchanged\":true}", NULL},
    };
    static const char *const bad[] = {
        "{}",
        "[]",
        "{\"logs\":[]}", /* no version */
        "{\"version\":\"e.1\"}",
        "{\"logs\":{},\"version\":\"e.1\"}",
        "{\"logs\":[],\"version\":\"e.1\",\"more\":1}",
        "{\"logs\":[],\"logs\":[],\"version\":\"e.1\"}",
        "{\"logs\":[],\"version\":\"e.1\",\"version\":\"e.1\"}",
        "{\"logs\":[1],\"version\":\"e.1\"}",
        "{\"logs\":[{}],\"version\":\"e.1\"}",
        /* versions: not a string, empty, an escape, a space, too long */
        "{\"logs\":[],\"version\":1}",
        "{\"logs\":[],\"version\":\"\"}",
        "{\"logs\":[],\"version\":\"e\\u002e1\"}",
        "{\"logs\":[],\"version\":\"e 1\"}",
        "{\"logs\":[],\"version\":\"0123456789012345678901234567890123456789"
        "0123456789012345678901234\"}",
        /* unchanged: only true, and never with rows */
        "{\"unchanged\":false,\"version\":\"e.1\"}",
        "{\"unchanged\":true}",
        "{\"unchanged\":true,\"logs\":[],\"version\":\"e.1\"}",
        /* a column too many, one missing, one twice, wrong types */
        "{\"logs\":[{\"id\":1,\"eventType\":\"t\",\"eventData\":1,"
        "\"timestamp\":\"t\",\"userId\":\"bob\"}],\"version\":\"e.1\"}",
        "{\"logs\":[{\"id\":1,\"eventType\":\"t\",\"eventData\":1}],"
        "\"version\":\"e.1\"}",
        "{\"logs\":[{\"id\":1,\"id\":1,\"eventType\":\"t\",\"eventData\":1,"
        "\"timestamp\":\"t\"}],\"version\":\"e.1\"}",
        "{\"logs\":[{\"id\":\"1\",\"eventType\":\"t\",\"eventData\":1,"
        "\"timestamp\":\"t\"}],\"version\":\"e.1\"}",
        "{\"logs\":[{\"id\":1,\"eventType\":2,\"eventData\":1,"
        "\"timestamp\":\"t\"}],\"version\":\"e.1\"}",
        "{\"logs\":[{\"id\":1,\"eventType\":\"t\",\"eventData\":1,"
        "\"timestamp\":[]}],\"version\":\"e.1\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        gw_logs_answer_t a;
        wa_json_span_t v;

        assert_int_equal(wa_json_check(good[i].text, strlen(good[i].text), &v),
                         WA_OK);
        if (!gw_logs_answer(v.p, v.n, &a))
            fail_msg("refused: %s", good[i].text);
        assert_int_equal(a.version_len, 3);
        assert_memory_equal(a.version, "e.", 2);
        assert_int_equal(a.unchanged, good[i].rows == NULL);
        if (good[i].rows != NULL) {
            assert_int_equal(a.rows.n, strlen(good[i].rows));
            assert_memory_equal(a.rows.p, good[i].rows, a.rows.n);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_logs_answer_t a;
        wa_json_span_t v;

        assert_int_equal(wa_json_check(bad[i], strlen(bad[i]), &v), WA_OK);
        if (gw_logs_answer(v.p, v.n, &a))
            fail_msg("accepted: %s", bad[i]);
    }
}

static void status_is(const char *store, const char *want)
{
    wa_json_span_t v;
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(wa_json_check(store, strlen(store), &v), WA_OK);
    assert_int_equal(gw_status_body(v.p, v.n, &out, &len), WA_OK);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

/* The GET /status body: the six fields, strings or null, the QR only while
 * scanning, nothing else of the store's row. */
static void test_status_body(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{\"status\":null}",
        "{\"status\":1}",
        "[]",
        "{\"status\":\"qr\",\"status\":\"ready\"}",
        "{\"status\":\"qr\",\"qrCode\":\"a\",\"qrCode\":\"b\"}",
        "{\"status\":\"qr\",\"instanceAlive\":false,\"instanceAlive\":true}",
    };
    (void)state;
    status_is("{\"userId\":\"u\",\"status\":\"qr\",\"qrCode\":\"data:x\","
              "\"phoneNumber\":null,\"updatedAt\":\"t\",\"displayName\":"
              "\"Dr \\\"Z\\u00f6\\\"\"}",
              "{\"status\":\"qr\",\"phoneNumber\":null,\"displayName\":"
              "\"Dr \\\"Z\\u00f6\\\"\",\"qrCode\":\"data:x\",\"connectedAt\":"
              "null,\"lastActivity\":null}");
    status_is("{\"status\":\"ready\",\"qrCode\":\"stale\",\"phoneNumber\":"
              "\"+41791234567\",\"connectedAt\":\"2026-11-26T10:00:00.000Z\","
              "\"lastActivity\":7,\"displayName\":{\"x\":1}}",
              "{\"status\":\"ready\",\"phoneNumber\":\"+41791234567\","
              "\"displayName\":null,\"qrCode\":null,\"connectedAt\":"
              "\"2026-11-26T10:00:00.000Z\",\"lastActivity\":null}");
    /* The instance that wrote a running status is dead: it runs nowhere. */
    status_is("{\"status\":\"qr\",\"qrCode\":\"data:x\",\"instanceAlive\":"
              "false,\"connectedAt\":null}",
              "{\"status\":\"error\",\"phoneNumber\":null,\"displayName\":"
              "null,\"qrCode\":null,\"connectedAt\":null,\"lastActivity\":"
              "null}");
    status_is("{\"status\":\"ready\",\"instanceAlive\":false,"
              "\"phoneNumber\":\"+41791234567\"}",
              "{\"status\":\"error\",\"phoneNumber\":\"+41791234567\","
              "\"displayName\":null,\"qrCode\":null,\"connectedAt\":null,"
              "\"lastActivity\":null}");
    /* Alive, or a status no browser holds, or no flag: as stored. */
    status_is("{\"status\":\"ready\",\"instanceAlive\":true}",
              "{\"status\":\"ready\",\"phoneNumber\":null,\"displayName\":"
              "null,\"qrCode\":null,\"connectedAt\":null,\"lastActivity\":"
              "null}");
    status_is("{\"status\":\"disconnected\",\"instanceAlive\":false}",
              "{\"status\":\"disconnected\",\"phoneNumber\":null,"
              "\"displayName\":null,\"qrCode\":null,\"connectedAt\":null,"
              "\"lastActivity\":null}");
    status_is("{\"status\":\"error\",\"instanceAlive\":false}",
              "{\"status\":\"error\",\"phoneNumber\":null,\"displayName\":"
              "null,\"qrCode\":null,\"connectedAt\":null,\"lastActivity\":"
              "null}");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wa_json_span_t v;
        char *out = NULL;

        assert_int_equal(wa_json_check(bad[i], strlen(bad[i]), &v), WA_OK);
        if (gw_status_body(v.p, v.n, &out, NULL) != WA_EPROTO)
            fail_msg("accepted: %s", bad[i]);
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_id_good), cmocka_unit_test(test_chat_id_bad),
        cmocka_unit_test(test_phone),        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_query_param),  cmocka_unit_test(test_path_decode),
        cmocka_unit_test(test_message),      cmocka_unit_test(test_nul_escape),
        cmocka_unit_test(test_logs_shape),   cmocka_unit_test(test_status_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
