/*
 * ss_adapter_test.c - what the page may send session-svc: binding payloads
 * and call results are checked field by field and rebuilt; bad JSON, wrong
 * types, huge strings, invalid UTF-8, control characters and unknown kinds
 * are refused. Also the chat id and phone number checks of the bus ops,
 * and which auto-attached target is the session's page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static const char msg_ok[] =
    "{\"id\":\"false_41790000009@c.us_ABC\",\"chatId\":\"41790000009@c.us\","
    "\"from\":\"41790000009@c.us\",\"to\":\"41791112233@c.us\","
    "\"body\":\"hi \\\"x\\\" </script>\",\"timestamp\":1700000000,"
    "\"fromMe\":false,\"type\":\"chat\"}";

static void good_payloads(void **state)
{
    ss_page_event_t ev;
    char buf[2048];

    (void)state;
    assert_int_equal(
        adapter__parse_payload("{\"t\":\"hello\",\"version\":null}", &ev),
        WA_OK);
    assert_int_equal(ev.kind, PAGE_HELLO);
    ss_page_event_clear(&ev);
    assert_int_equal(adapter__parse_payload(
                         "{\"t\":\"qr\",\"qr\":\"2@abc,def,ghi,jkl,1\"}", &ev),
                     WA_OK);
    assert_int_equal(ev.kind, PAGE_QR);
    assert_string_equal(ev.text, "2@abc,def,ghi,jkl,1");
    ss_page_event_clear(&ev);
    assert_int_equal(
        adapter__parse_payload("{\"t\":\"ready\",\"phone\":\"41791112233\","
                               "\"name\":\"Dr \\u00e9\"}",
                               &ev),
        WA_OK);
    assert_int_equal(ev.kind, PAGE_READY);
    assert_string_equal(ev.phone, "41791112233");
    assert_string_equal(ev.name, "Dr \xc3\xa9");
    ss_page_event_clear(&ev);
    snprintf(buf, sizeof(buf), "{\"t\":\"message\",\"msg\":%s}", msg_ok);
    assert_int_equal(adapter__parse_payload(buf, &ev), WA_OK);
    assert_int_equal(ev.kind, PAGE_MESSAGE);
    assert_non_null(ev.msg);
    assert_string_equal(cJSON_GetObjectItem(ev.msg, "body")->valuestring,
                        "hi \"x\" </script>");
    ss_page_event_clear(&ev);
    assert_int_equal(adapter__parse_payload("{\"t\":\"logout\"}", &ev), WA_OK);
    assert_int_equal(ev.kind, PAGE_LOGOUT);
    assert_int_equal(
        adapter__parse_payload("{\"t\":\"error\",\"message\":\"missing module "
                               "WAWebCmd\"}",
                               &ev),
        WA_OK);
    assert_int_equal(ev.kind, PAGE_ERROR);
    assert_string_equal(ev.text, "missing module WAWebCmd");
    ss_page_event_clear(&ev);
}

static void hostile_payloads(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "\"qr\"",
        "{\"t\":\"qr\"}",
        "{\"t\":\"qr\",\"qr\":42}",
        "{\"t\":\"qr\",\"qr\":\"\"}",
        "{\"t\":\"qr\",\"qr\":\"line\\nbreak\"}",
        "{\"t\":\"qr\",\"qr\":\"nul\\u0000x\"}",
        "{\"t\":\"qr\",\"qr\":\"caf\\u00e9\"}", /* QR strings are ASCII */
        "{\"t\":\"ready\",\"phone\":\"+4179\"}",
        "{\"t\":\"ready\",\"phone\":\"41791112233\",\"name\":7}",
        "{\"t\":\"ready\",\"phone\":\"123456789012345678901\"}",
        "{\"t\":\"message\",\"msg\":{}}",
        "{\"t\":\"message\",\"msg\":\"x\"}",
        "{\"t\":\"message\"}",
        "{\"t\":\"error\"}",
        "{\"t\":\"nonsense\"}",
        "{\"t\":1}",
        "{\"t\":\"logout\"} trailing",
        "{\"t\":\"logout\"",
    };
    ss_page_event_t ev;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wa_err_t err = adapter__parse_payload(bad[i], &ev);

        if (err == WA_OK)
            fail_msg("accepted: %s", bad[i]);
        assert_null(ev.msg);
    }
    assert_int_equal(adapter__parse_payload(NULL, &ev), WA_EINVAL);
    /* Invalid UTF-8 and a payload over the limit. */
    assert_int_equal(
        adapter__parse_payload("{\"t\":\"qr\",\"qr\":\"\xff\"}", &ev),
        WA_EUTF8);
    char *huge = malloc(SS_PAYLOAD_MAX + 64);
    snprintf(huge, 32, "{\"t\":\"error\",\"message\":\"");
    memset(huge + strlen(huge), 'A', SS_PAYLOAD_MAX);
    strcpy(huge + SS_PAYLOAD_MAX + 20, "\"}");
    assert_int_equal(adapter__parse_payload(huge, &ev), WA_ETOOBIG);
    /* A long QR string (over SS_QR_RAW_MAX) is refused. */
    snprintf(huge, 32, "{\"t\":\"qr\",\"qr\":\"");
    size_t pre = strlen(huge);
    memset(huge + pre, 'A', SS_QR_RAW_MAX + 1);
    strcpy(huge + pre + SS_QR_RAW_MAX + 1, "\"}");
    assert_int_equal(adapter__parse_payload(huge, &ev), WA_EINVAL);
    free(huge);
}

static void long_error_text_is_cut(void **state)
{
    char buf[8192];
    ss_page_event_t ev;

    (void)state;
    strcpy(buf, "{\"t\":\"error\",\"message\":\"");
    for (int i = 0; i < 1000; i++)
        strcat(buf, "\xc3\xa9"); /* two bytes each: cut on a boundary */
    strcat(buf, "\"}");
    assert_int_equal(adapter__parse_payload(buf, &ev), WA_OK);
    assert_true(strlen(ev.text) <= SS_ERRMSG_MAX);
    assert_true(wa_utf8_valid(ev.text, strlen(ev.text)));
}

static void messages_are_rebuilt(void **state)
{
    cJSON *in = cJSON_Parse(msg_ok), *out;

    (void)state;
    cJSON_AddStringToObject(in, "extra", "dropped");
    out = adapter__message(in);
    assert_non_null(out);
    assert_null(cJSON_GetObjectItem(out, "extra"));
    assert_int_equal(cJSON_GetArraySize(out), 8);
    cJSON_Delete(out);
    /* wrong types and sizes */
    cJSON_ReplaceItemInObject(in, "timestamp", cJSON_CreateNumber(1.5));
    assert_null(adapter__message(in));
    cJSON_ReplaceItemInObject(in, "timestamp", cJSON_CreateNumber(-1));
    assert_null(adapter__message(in));
    cJSON_ReplaceItemInObject(in, "timestamp", cJSON_CreateNumber(1));
    cJSON_ReplaceItemInObject(in, "fromMe", cJSON_CreateString("false"));
    assert_null(adapter__message(in));
    cJSON_ReplaceItemInObject(in, "fromMe", cJSON_CreateFalse());
    cJSON_ReplaceItemInObject(in, "id", cJSON_CreateString("a\nb"));
    assert_null(adapter__message(in));
    cJSON_ReplaceItemInObject(in, "id", cJSON_CreateString("ok"));
    char *big = malloc(300 * 1024);
    memset(big, 'b', 300 * 1024 - 1);
    big[300 * 1024 - 1] = '\0';
    cJSON_ReplaceItemInObject(in, "body", cJSON_CreateString(big));
    assert_null(adapter__message(in));
    free(big);
    cJSON_ReplaceItemInObject(in, "body", cJSON_CreateString("\xed\xa0\x80"));
    assert_null(adapter__message(in)); /* a UTF-16 surrogate in UTF-8 */
    cJSON_Delete(in);
}

static void results_are_checked(void **state)
{
    cJSON *v, *out = NULL;
    char buf[4096];

    (void)state;
    snprintf(buf, sizeof(buf),
             "[{\"id\":\"41790000009@c.us\",\"name\":\"A\",\"isGroup\":false,"
             "\"unreadCount\":2,\"timestamp\":5,\"lastMessage\":%s},"
             "{\"id\":7},"
             "{\"id\":\"1@g.us\",\"name\":\"G\",\"isGroup\":true,"
             "\"unreadCount\":0,\"timestamp\":0,\"lastMessage\":null}]",
             msg_ok);
    v = cJSON_Parse(buf);
    assert_int_equal(adapter__result("chats", v, &out), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "chats")), 2);
    cJSON_Delete(out);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"id\":\"true_x_1\",\"timestamp\":17}");
    assert_int_equal(adapter__result("send", v, &out), WA_OK);
    assert_string_equal(cJSON_GetObjectItem(out, "id")->valuestring,
                        "true_x_1");
    cJSON_Delete(out);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"id\":\"true_x_1\"}");
    assert_int_equal(adapter__result("send", v, &out), WA_EBROWSER);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"chat\":null}");
    assert_int_equal(adapter__result("chatByPhone", v, &out), WA_ENOTFOUND);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"chat\":{\"id\":1}}");
    assert_int_equal(adapter__result("chatByPhone", v, &out), WA_EBROWSER);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"not\":\"a list\"}");
    assert_int_equal(adapter__result("messages", v, &out), WA_EBROWSER);
    assert_int_equal(adapter__result("chats", v, &out), WA_EBROWSER);
    assert_int_equal(adapter__result("nope", v, &out), WA_EINVAL);
    cJSON_Delete(v);
}

static void chat_ids(void **state)
{
    static const char *const good[] = {"41791234567@c.us", "12345@c.us",
                                       "41791234567-1600000000@g.us",
                                       "120363041234567890@g.us"};
    static const char *const bad[] = {"",
                                      "41791234567",
                                      "+41791234567@c.us",
                                      "4179@c.us",
                                      "41791234567@s.whatsapp.net",
                                      "abc@c.us",
                                      "1-2@c.us",
                                      "41791234567@c.us\n",
                                      "123456789012345678901@c.us",
                                      "@c.us",
                                      "41791234567@g.us@c.us",
                                      "12345-@g.us"};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(adapter__chat_id_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (adapter__chat_id_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    }
    assert_false(adapter__chat_id_valid(NULL));
}

static void phones(void **state)
{
    char d[SS_PHONE_MAX + 1];

    (void)state;
    assert_true(adapter__phone_normalize("+41791234567", d, sizeof(d)));
    assert_string_equal(d, "41791234567");
    assert_true(adapter__phone_normalize("41791234567", d, sizeof(d)));
    assert_false(adapter__phone_normalize("+041791234567", d, sizeof(d)));
    assert_false(adapter__phone_normalize("+4179123", d, sizeof(d)) &&
                 strlen(d) < 7);
    assert_false(adapter__phone_normalize("+123456", d, sizeof(d)));
    assert_false(adapter__phone_normalize("+1234567890123456", d, sizeof(d)));
    assert_false(adapter__phone_normalize("+41 79 123 45 67", d, sizeof(d)));
    assert_false(adapter__phone_normalize(" 41791234567", d, sizeof(d)));
    assert_false(adapter__phone_normalize("", d, sizeof(d)));
    assert_false(adapter__phone_normalize(NULL, d, sizeof(d)));
}

/* The page's attachedToTarget comes before createTarget's answer: kept,
 * then claimed; any other target is released. */
static void page_attached_before_created(void **state)
{
    char rel[SS_PAGE_CANDIDATES][CDP_SESSION_MAX + 1];
    ss_page_t pg;
    int n = -1;

    (void)state;
    memset(&pg, 0, sizeof(pg));
    /* A browser's own first tab (no --no-startup-window), then ours. */
    assert_int_equal(adapter__page_attached(&pg, "TAB0", "S0"),
                     SS_ATTACH_PENDING);
    assert_int_equal(adapter__page_attached(&pg, "OURS", "S1"),
                     SS_ATTACH_PENDING);
    assert_false(pg.attached);
    assert_true(adapter__page_created(&pg, "OURS", rel, &n));
    assert_true(pg.attached);
    assert_string_equal(pg.target_id, "OURS");
    assert_string_equal(pg.session_id, "S1");
    assert_int_equal(n, 1);
    assert_string_equal(rel[0], "S0");
    assert_int_equal(pg.ncand, 0);
    /* Later targets (a popup) are never ours. */
    assert_int_equal(adapter__page_attached(&pg, "POPUP", "S2"),
                     SS_ATTACH_FOREIGN);
    assert_int_equal(adapter__page_attached(&pg, "OURS", "S3"),
                     SS_ATTACH_FOREIGN);
    assert_string_equal(pg.session_id, "S1");
}

/* createTarget answers first: the attachment is matched when it comes. */
static void page_created_before_attached(void **state)
{
    char rel[SS_PAGE_CANDIDATES][CDP_SESSION_MAX + 1];
    ss_page_t pg;
    int n = -1;

    (void)state;
    memset(&pg, 0, sizeof(pg));
    assert_false(adapter__page_created(&pg, "OURS", rel, &n));
    assert_int_equal(n, 0);
    assert_false(pg.attached);
    assert_int_equal(adapter__page_attached(&pg, "OTHER", "S9"),
                     SS_ATTACH_FOREIGN);
    assert_false(pg.attached);
    assert_int_equal(adapter__page_attached(&pg, "OURS", "S1"), SS_ATTACH_OURS);
    assert_true(pg.attached);
    assert_string_equal(pg.session_id, "S1");
}

/* Bounded: candidates beyond SS_PAGE_CANDIDATES, empty or oversized ids
 * are refused (released), never stored. */
static void page_attach_bounds(void **state)
{
    char rel[SS_PAGE_CANDIDATES][CDP_SESSION_MAX + 1];
    char big[CDP_SESSION_MAX + 2], t[16], sid[16];
    ss_page_t pg;
    int i, n = -1;

    (void)state;
    memset(&pg, 0, sizeof(pg));
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(adapter__page_attached(&pg, big, "S"), SS_ATTACH_FOREIGN);
    assert_int_equal(adapter__page_attached(&pg, "T", big), SS_ATTACH_FOREIGN);
    assert_int_equal(adapter__page_attached(&pg, "", "S"), SS_ATTACH_FOREIGN);
    assert_int_equal(adapter__page_attached(&pg, NULL, "S"), SS_ATTACH_FOREIGN);
    for (i = 0; i < SS_PAGE_CANDIDATES; i++) {
        snprintf(t, sizeof(t), "T%d", i);
        snprintf(sid, sizeof(sid), "S%d", i);
        assert_int_equal(adapter__page_attached(&pg, t, sid),
                         SS_ATTACH_PENDING);
    }
    assert_int_equal(adapter__page_attached(&pg, "T9", "S9"),
                     SS_ATTACH_FOREIGN);
    /* None of them is ours: all released, and ours comes later. */
    assert_false(adapter__page_created(&pg, "OURS", rel, &n));
    assert_int_equal(n, SS_PAGE_CANDIDATES);
    snprintf(sid, sizeof(sid), "S%d", SS_PAGE_CANDIDATES - 1);
    assert_string_equal(rel[SS_PAGE_CANDIDATES - 1], sid);
    assert_int_equal(adapter__page_attached(&pg, "OURS", "S8"), SS_ATTACH_OURS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_payloads),
        cmocka_unit_test(hostile_payloads),
        cmocka_unit_test(long_error_text_is_cut),
        cmocka_unit_test(messages_are_rebuilt),
        cmocka_unit_test(results_are_checked),
        cmocka_unit_test(chat_ids),
        cmocka_unit_test(phones),
        cmocka_unit_test(page_attached_before_created),
        cmocka_unit_test(page_created_before_attached),
        cmocka_unit_test(page_attach_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
