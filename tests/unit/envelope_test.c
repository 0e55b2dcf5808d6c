/*
 * envelope_test.c - the bus contract of envelope.h: UTF-8 and id checks,
 * the op and event type tables, round trips of every message kind, and one
 * test per kind of hostile input. Decoders must return the documented code
 * and leave nothing to free; none of this may crash (run it under ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa/envelope.h"

/* ------------------------------------------------------------- helpers */

/* Decode and check the failure contract: on error the struct is all zero
 * (nothing to free). On success the decoded value is released. */
static wa_err_t req_dec_n(const void *buf, size_t len)
{
    wa_request_t r;
    wa_err_t rv;

    memset(&r, 0xA5, sizeof(r));
    rv = wa_request_decode(buf, len, &r);
    if (rv == WA_OK) {
        assert_true(cJSON_IsObject(r.args));
        wa_request_clear(&r);
    } else {
        assert_null(r.args);
        assert_string_equal(r.user, "");
        assert_string_equal(r.rid, "");
    }
    return rv;
}

static wa_err_t req_dec(const char *json)
{
    return req_dec_n(json, strlen(json));
}

static wa_err_t rep_dec_n(const void *buf, size_t len)
{
    wa_reply_t r;
    wa_err_t rv;

    memset(&r, 0xA5, sizeof(r));
    rv = wa_reply_decode(buf, len, &r);
    if (rv == WA_OK) {
        if (r.ok)
            assert_non_null(r.data);
        else
            assert_null(r.data);
        wa_reply_clear(&r);
    } else {
        assert_null(r.data);
    }
    return rv;
}

static wa_err_t rep_dec(const char *json)
{
    return rep_dec_n(json, strlen(json));
}

/* Every event decoded here is decoded twice: by wa_event_decode and by
 * wa_event_decode_frame, which must give the same verdict, the same fields
 * and, as its frame, the value wa_event_frame() prints (the same bytes
 * when our encoder wrote the event: test_event_frame_bytes). */
static wa_err_t ev_dec_n(const void *buf, size_t len)
{
    wa_event_t e, f;
    wa_err_t rv, rv2;
    char *frame = NULL;
    size_t flen = 0;

    memset(&e, 0xA5, sizeof(e));
    memset(&f, 0x5A, sizeof(f));
    rv = wa_event_decode(buf, len, &e);
    rv2 = wa_event_decode_frame(buf, len, &f);
    assert_int_equal(rv2, rv);
    if (rv == WA_OK) {
        assert_true(cJSON_IsObject(e.data));
        assert_null(e.frame);
        assert_null(f.data);
        assert_string_equal(f.user, e.user);
        assert_int_equal(f.type, e.type);
        assert_int_equal(f.seq, e.seq);
        assert_string_equal(f.timestamp, e.timestamp);
        assert_int_equal(wa_event_frame(&e, &frame, &flen), WA_OK);
        assert_int_equal(f.frame_len, strlen(f.frame));
        if (strcmp(f.frame, frame) != 0) {
            /* Data is copied as the publisher wrote it (whitespace,
             * escapes); the value must be the same. */
            cJSON *back = cJSON_Parse(f.frame);
            char *again = cJSON_PrintUnformatted(back);

            assert_non_null(again);
            assert_string_equal(again, frame);
            free(again);
            cJSON_Delete(back);
        }
        free(frame);
        wa_event_clear(&e);
        wa_event_clear(&f);
    } else {
        assert_null(e.data);
        assert_string_equal(e.user, "");
        assert_null(f.frame);
        assert_string_equal(f.user, "");
    }
    return rv;
}

static wa_err_t ev_dec(const char *msg)
{
    return ev_dec_n(msg, strlen(msg));
}

/* A request with one field replaced: "%s" in tmpl gets the text. */
static wa_err_t req_with(const char *tmpl, const char *text)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), tmpl, text);
    return req_dec(buf);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

#define REQ_OK                                                                 \
    "{\"v\":1,\"op\":\"ping\",\"user\":\"alice\",\"rid\":\"r1\",\"args\":{}}"
#define EV_JSON(type, data, ts, seq)                                           \
    "{\"v\":1,\"type\":" type ",\"data\":" data ",\"timestamp\":" ts           \
    ",\"seq\":" seq "}"
#define TS "\"2026-11-26T10:00:00.123Z\""

/* ---------------------------------------------------------------- UTF-8 */

static void test_utf8_valid(void **state)
{
    static const char *const ok[] = {
        "",
        "plain ascii, longer than one 8-byte word",
        "\xC2\x80",         /* U+0080 */
        "\xDF\xBF",         /* U+07FF */
        "\xE0\xA0\x80",     /* U+0800 */
        "\xED\x9F\xBF",     /* U+D7FF, last before surrogates */
        "\xEE\x80\x80",     /* U+E000, first after */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF0\x90\x80\x80", /* U+10000 */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF */
        "Zo\xC3\xAB \xE5\x8C\xBB\xE7\x94\x9F \xF0\x9F\x98\x80",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(wa_utf8_valid(ok[i], strlen(ok[i])));
    /* U+0000 is valid UTF-8. */
    assert_true(wa_utf8_valid("a\0b", 3));
    assert_true(wa_utf8_valid(NULL, 0));
    assert_false(wa_utf8_valid(NULL, 1));
}

static void test_utf8_invalid(void **state)
{
    static const char *const bad[] = {
        "\xC0\x80",             /* overlong NUL */
        "\xC1\xBF",             /* overlong */
        "\xE0\x80\x80",         /* overlong 3-byte */
        "\xE0\x9F\xBF",         /* overlong 3-byte, top */
        "\xF0\x80\x80\x80",     /* overlong 4-byte */
        "\xF0\x8F\xBF\xBF",     /* overlong 4-byte, top */
        "\xED\xA0\x80",         /* U+D800 surrogate */
        "\xED\xBF\xBF",         /* U+DFFF surrogate */
        "\xF4\x90\x80\x80",     /* U+110000 */
        "\xF5\x80\x80\x80",     /* F5+ lead */
        "\xF8\x88\x80\x80\x80", /* old 5-byte form */
        "\xFE",
        "\xFF",
        "\x80", /* stray continuation */
        "\xBF",
        "\xC3",         /* truncated 2-byte */
        "\xE2\x82",     /* truncated 3-byte */
        "\xF0\x9F\x98", /* truncated 4-byte */
        "\xC3\x28",     /* bad continuation */
        "\xE2\x28\xA1",
        "\xE2\x82\x28",
        "\xF0\x9F\x28\x80",
        "\xF0\x9F\x98\x28",
        "0123456789abcdef\x80", /* after the 8-byte fast path */
        "01234567\xC3",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(wa_utf8_valid(bad[i], strlen(bad[i])));
    /* The length is honoured: a valid prefix of a longer buffer. */
    assert_true(wa_utf8_valid("ab\xC3", 2));
    assert_false(wa_utf8_valid("\xE2\x82\xAC", 2));
}

/* A cut never splits a sequence, and never reads past max + 1 bytes. */
static void test_utf8_prefix(void **state)
{
    const char euro[] = "ab\xE2\x82\xAC"; /* "ab" and a 3-byte sign */
    const char unterminated[4] = {'a', 'b', 'c', 'd'};
    (void)state;
    assert_int_equal(wa_utf8_prefix("", 0), 0);
    assert_int_equal(wa_utf8_prefix("abc", 5), 3);
    assert_int_equal(wa_utf8_prefix("abc", 3), 3);
    assert_int_equal(wa_utf8_prefix("abc", 2), 2);
    assert_int_equal(wa_utf8_prefix(euro, 5), 5);
    for (size_t max = 2; max < 5; max++)
        assert_int_equal(wa_utf8_prefix(euro, max), 2);
    assert_int_equal(wa_utf8_prefix("\xF0\x9F\x98\x80", 3), 0);
    assert_int_equal(wa_utf8_prefix("\xC3\xA9\xC3\xA9", 3), 2);
    assert_int_equal(wa_utf8_prefix(unterminated, 3), 3);
    for (size_t max = 0; max < 12; max++)
        assert_true(wa_utf8_valid(euro, wa_utf8_prefix(euro, max)));
}

static void test_check_user(void **state)
{
    char *s;
    (void)state;

    assert_int_equal(wa_check_user("alice"), WA_OK);
    assert_int_equal(wa_check_user("8f14e45f-ceea-467f-a0e4-4c8a6e5c6b1d"),
                     WA_OK);
    assert_int_equal(wa_check_user("Dr. Zo\xC3\xAB \xE5\x8C\xBB"), WA_OK);
    assert_int_equal(wa_check_user("a b"), WA_OK);
    assert_int_equal(wa_check_user(NULL), WA_EINVAL);
    assert_int_equal(wa_check_user(""), WA_EINVAL);
    assert_int_equal(wa_check_user("a\x01"), WA_EINVAL);
    assert_int_equal(wa_check_user("a\nb"), WA_EINVAL);
    assert_int_equal(wa_check_user("a\tb"), WA_EINVAL);
    assert_int_equal(wa_check_user("a\x7f"), WA_EINVAL);
    assert_int_equal(wa_check_user("a\xC0\x80"), WA_EUTF8);
    assert_int_equal(wa_check_user("\xED\xA0\x80"), WA_EUTF8);

    s = repeat('u', WA_USER_MAX);
    assert_int_equal(wa_check_user(s), WA_OK);
    free(s);
    s = repeat('u', WA_USER_MAX + 1);
    assert_int_equal(wa_check_user(s), WA_EINVAL);
    free(s);
}

static void test_check_rid(void **state)
{
    char *s;
    (void)state;

    assert_int_equal(wa_check_rid("r1"), WA_OK);
    assert_int_equal(wa_check_rid("!~"), WA_OK);
    assert_int_equal(wa_check_rid(NULL), WA_EINVAL);
    assert_int_equal(wa_check_rid(""), WA_EINVAL);
    assert_int_equal(wa_check_rid("a b"), WA_EINVAL);
    assert_int_equal(wa_check_rid("a\x7f"), WA_EINVAL);
    assert_int_equal(wa_check_rid("a\n"), WA_EINVAL);
    assert_int_equal(wa_check_rid("\xC3\xA9"), WA_EINVAL);

    s = repeat('r', WA_RID_MAX);
    assert_int_equal(wa_check_rid(s), WA_OK);
    free(s);
    s = repeat('r', WA_RID_MAX + 1);
    assert_int_equal(wa_check_rid(s), WA_EINVAL);
    free(s);
}

/* --------------------------------------------------------------- tables */

static void test_json_int(void **state)
{
    const int64_t vs[] = {0, 1, -7, 9007199254740993LL, INT64_MIN};
    const char *const want[] = {"0", "1", "-7", "9007199254740993",
                                "-9223372036854775808"};
    (void)state;

    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        cJSON *o = cJSON_CreateObject(), *n = wa_json_int(vs[i]);
        char *text, expect[64];

        assert_non_null(n);
        assert_true(cJSON_IsRaw(n));
        cJSON_AddItemToObject(o, "id", n);
        text = cJSON_PrintUnformatted(o);
        snprintf(expect, sizeof(expect), "{\"id\":%s}", want[i]);
        assert_string_equal(text, expect);
        free(text);
        cJSON_Delete(o);
    }
}

static void test_op_table(void **state)
{
    static const char *const names[WA_OP_COUNT] = {
        "ping",          "session.get",       "session.upsert",
        "session.list",  "log.append",        "log.list",
        "event.record",  "instance.register", "instance.heartbeat",
        "instance.list", "placement.resolve", "placement.list",
        "diag",          "send.claim",        "wa.connect",
        "wa.disconnect", "wa.status",         "wa.chats",
        "wa.messages",   "wa.send",           "wa.chat_by_phone",
        "bus.batch",
    };
    wa_op_t op;
    (void)state;

    for (int i = 0; i < WA_OP_COUNT; i++) {
        assert_string_equal(wa_op_name((wa_op_t)i), names[i]);
        assert_int_equal(wa_op_from_name(names[i], &op), WA_OK);
        assert_int_equal(op, i);
    }
    assert_null(wa_op_name(WA_OP_COUNT));
    assert_null(wa_op_name((wa_op_t)-1));
    assert_int_equal(wa_op_from_name("nope", &op), WA_EUNKNOWNOP);
    assert_int_equal(wa_op_from_name("PING", &op), WA_EUNKNOWNOP);
    assert_int_equal(wa_op_from_name("", &op), WA_EUNKNOWNOP);
    assert_int_equal(wa_op_from_name(NULL, &op), WA_EUNKNOWNOP);
}

static void test_event_type_table(void **state)
{
    static const char *const names[WA_EV_COUNT] = {
        "status", "qr", "ready", "message", "disconnected", "error", "resync",
    };
    wa_event_type_t t;
    (void)state;

    for (int i = 0; i < WA_EV_COUNT; i++) {
        assert_string_equal(wa_event_type_name((wa_event_type_t)i), names[i]);
        assert_true(strlen(names[i]) <= WA_EVENT_TYPE_MAX);
        assert_int_equal(wa_event_type_from_name(names[i], &t), WA_OK);
        assert_int_equal(t, i);
    }
    assert_null(wa_event_type_name(WA_EV_COUNT));
    assert_int_equal(wa_event_type_from_name("nope", &t), WA_EINVAL);
    assert_int_equal(wa_event_type_from_name(NULL, &t), WA_EINVAL);
}

static void test_timestamp_now(void **state)
{
    char ts[WA_TIMESTAMP_MAX + 1];
    char small[10] = "xxxxxxxxx";
    (void)state;

    wa_timestamp_now(ts, sizeof(ts));
    /* 2026-11-26T10:00:00.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T');
    assert_true(ts[13] == ':' && ts[16] == ':' && ts[19] == '.');
    assert_true(ts[23] == 'Z');
    for (int i = 20; i < 23; i++)
        assert_true(ts[i] >= '0' && ts[i] <= '9');
    /* Too short: empty, never a cut timestamp; no crash on NULL. */
    wa_timestamp_now(small, sizeof(small));
    assert_string_equal(small, "");
    wa_timestamp_now(NULL, 0);
}

/* ------------------------------------------------------------- requests */

static void test_timestamp_ms(void **state)
{
    char buf[WA_TIMESTAMP_MAX + 1], small[24];

    (void)state;
    wa_timestamp_ms(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    wa_timestamp_ms(1795689600123LL, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-26T10:40:00.123Z");
    wa_timestamp_ms(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    wa_timestamp_ms(1795689600123LL, small, sizeof(small)); /* 24 needs 25 */
    assert_string_equal(small, "");
    wa_timestamp_ms(0, NULL, 0);
}

static void test_request_round_trip(void **state)
{
    cJSON *args = cJSON_CreateObject();
    wa_request_t r;
    char *out = NULL;
    size_t len = 0;
    const char *body = "Gr\xC3\xBC\xC3\x9F"
                       "e \"quoted\" \\ back\nslash "
                       "\xF0\x9F\x98\x80 \xE5\x8C\xBB\xE7\x94\x9F\t</script>";
    (void)state;

    cJSON_AddStringToObject(args, "chatId", "41791234567@c.us");
    cJSON_AddStringToObject(args, "message", body);
    cJSON_AddNumberToObject(args, "limit", 50);
    assert_int_equal(wa_request_encode(WA_OP_WA_SEND, "Dr. Zo\xC3\xAB", "r-1",
                                       args, &out, &len),
                     WA_OK);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    assert_true(wa_utf8_valid(out, len));

    assert_int_equal(wa_request_decode(out, len, &r), WA_OK);
    assert_int_equal(r.op, WA_OP_WA_SEND);
    assert_string_equal(r.user, "Dr. Zo\xC3\xAB");
    assert_string_equal(r.rid, "r-1");
    assert_true(cJSON_Compare(r.args, args, 1));
    assert_string_equal(cJSON_GetObjectItem(r.args, "message")->valuestring,
                        body);
    wa_request_clear(&r);
    wa_request_clear(&r); /* idempotent */
    free(out);

    /* The caller's args are untouched and still owned by the caller. */
    assert_string_equal(cJSON_GetObjectItem(args, "chatId")->valuestring,
                        "41791234567@c.us");
    cJSON_Delete(args);
}

static void test_request_exact_wire(void **state)
{
    char *out = NULL;
    size_t len;
    (void)state;

    /* No user, no args: the canonical compact form. */
    assert_int_equal(wa_request_encode(WA_OP_PING, "", "r1", NULL, &out, &len),
                     WA_OK);
    assert_string_equal(out, "{\"v\":1,\"op\":\"ping\",\"user\":\"\",\"rid\":"
                             "\"r1\",\"args\":{}}");
    assert_int_equal(req_dec_n(out, len), WA_OK);
    free(out);
}

static void test_request_large_args(void **state)
{
    size_t big = 1024 * 1024;
    char *s = repeat('x', big);
    cJSON *args = cJSON_CreateObject();
    wa_request_t r;
    char *out = NULL;
    size_t len;
    (void)state;

    cJSON_AddStringToObject(args, "blob", s);
    assert_int_equal(
        wa_request_encode(WA_OP_LOG_APPEND, "alice", "r", args, &out, &len),
        WA_OK);
    assert_int_equal(wa_request_decode(out, len, &r), WA_OK);
    assert_int_equal(strlen(cJSON_GetObjectItem(r.args, "blob")->valuestring),
                     big);
    wa_request_clear(&r);
    free(out);
    cJSON_Delete(args);
    free(s);

    /* Over WA_ENVELOPE_MAX once encoded: refused by the encoder. */
    s = repeat('y', WA_ENVELOPE_MAX);
    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "blob", s);
    out = (char *)1;
    assert_int_equal(
        wa_request_encode(WA_OP_LOG_APPEND, "alice", "r", args, &out, &len),
        WA_ETOOBIG);
    assert_null(out);
    cJSON_Delete(args);
    free(s);
}

static void test_request_encode_rejects(void **state)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON *bad = cJSON_CreateObject();
    char *long_user = repeat('u', WA_USER_MAX + 1);
    char *long_rid = repeat('r', WA_RID_MAX + 1);
    char *out = NULL;
    size_t len;
    (void)state;

    assert_int_equal(
        wa_request_encode(WA_OP_COUNT, "alice", "r", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode((wa_op_t)-1, "alice", "r", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(wa_request_encode(WA_OP_PING, NULL, "r", NULL, &out, &len),
                     WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, long_user, "r", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "a\nb", "r", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "\xC0\x80", "r", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", NULL, NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "a b", NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", long_rid, NULL, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "r", arr, &out, &len),
        WA_EINVAL);
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "r", NULL, NULL, &len),
        WA_EINVAL);
    assert_null(out);

    /* Bad bytes in caller data would make a message no decoder accepts. */
    cJSON_AddStringToObject(bad, "s", "\xED\xA0\x80");
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "r", bad, &out, &len), WA_EUTF8);
    assert_null(out);

    /* outlen is optional. */
    assert_int_equal(
        wa_request_encode(WA_OP_PING, "alice", "r", NULL, &out, NULL), WA_OK);
    free(out);

    cJSON_Delete(arr);
    cJSON_Delete(bad);
    free(long_user);
    free(long_rid);
}

static void test_request_decode_basics(void **state)
{
    (void)state;
    assert_int_equal(req_dec(REQ_OK), WA_OK);
    /* Whitespace around and inside is JSON. */
    assert_int_equal(req_dec(" \t\r\n" REQ_OK " \r\n\t"), WA_OK);
    /* Unknown members are ignored (forward compatibility). */
    assert_int_equal(req_dec("{\"v\":1,\"op\":\"ping\",\"user\":\"\",\"rid\":"
                             "\"r\",\"args\":{},\"extra\":[1,2]}"),
                     WA_OK);
    /* 1.0 is the number 1. */
    assert_int_equal(req_dec("{\"v\":1.0,\"op\":\"ping\",\"user\":\"\",\"rid\":"
                             "\"r\",\"args\":{}}"),
                     WA_OK);
}

static void test_request_decode_null_ish(void **state)
{
    wa_request_t r;
    (void)state;

    assert_int_equal(req_dec_n("", 0), WA_EPROTO);
    assert_int_equal(req_dec_n(NULL, 0), WA_EPROTO);
    assert_int_equal(req_dec_n(NULL, 10), WA_EINVAL);
    assert_int_equal(wa_request_decode(REQ_OK, strlen(REQ_OK), NULL),
                     WA_EINVAL);
    assert_int_equal(req_dec("   "), WA_EPROTO);
    /* Clearing a zeroed or NULL struct is fine. */
    memset(&r, 0, sizeof(r));
    wa_request_clear(&r);
    wa_request_clear(NULL);
}

static void test_request_decode_not_json(void **state)
{
    (void)state;
    assert_int_equal(req_dec("hello"), WA_EPROTO);
    assert_int_equal(req_dec("{"), WA_EPROTO);
    assert_int_equal(req_dec("{\"v\":1,"), WA_EPROTO);
    assert_int_equal(req_dec("{\"v\":1,\"op\":\"ping}"), WA_EPROTO);
    assert_int_equal(req_dec("{'v':1}"), WA_EPROTO);
    /* A lone UTF-16 surrogate escape is not a character. */
    assert_int_equal(req_with("{\"v\":1,\"op\":\"ping\",\"user\":\"%s\","
                              "\"rid\":\"r\",\"args\":{}}",
                              "\\ud800"),
                     WA_EPROTO);
}

static void test_request_decode_trailing_garbage(void **state)
{
    (void)state;
    assert_int_equal(req_dec(REQ_OK "x"), WA_EPROTO);
    assert_int_equal(req_dec(REQ_OK "{}"), WA_EPROTO);
    assert_int_equal(req_dec(REQ_OK " ,"), WA_EPROTO);
    assert_int_equal(req_dec(REQ_OK REQ_OK), WA_EPROTO);
    /* Bytes cJSON skips as "whitespace" but JSON does not. */
    assert_int_equal(req_dec(REQ_OK "\x0b"), WA_EPROTO);
    assert_int_equal(req_dec("\x01" REQ_OK), WA_EPROTO);
}

static void test_request_decode_embedded_nul(void **state)
{
    static const char trail[] = REQ_OK "\0";
    static const char trail_junk[] = REQ_OK "\0junk";
    static const char in_str[] =
        "{\"v\":1,\"op\":\"ping\",\"user\":\"ali\0ce\",\"rid\":\"r\","
        "\"args\":{}}";
    (void)state;

    assert_int_equal(req_dec_n(trail, sizeof(trail) - 1), WA_EPROTO);
    assert_int_equal(req_dec_n(trail_junk, sizeof(trail_junk) - 1), WA_EPROTO);
    assert_int_equal(req_dec_n(in_str, sizeof(in_str) - 1), WA_EPROTO);
    /* The escaped form would truncate "alice\u0000admin" to "alice". */
    assert_int_equal(req_with("{\"v\":1,\"op\":\"ping\",\"user\":\"%s\","
                              "\"rid\":\"r\",\"args\":{}}",
                              "alice\\u0000admin"),
                     WA_EPROTO);
    assert_int_equal(req_with("{\"v\":1,\"op\":\"ping\",\"user\":\"a\","
                              "\"rid\":\"r\",\"args\":{\"k\":\"%s\"}}",
                              "x\\u0000"),
                     WA_EPROTO);
    /* An escaped backslash followed by "u0000" is just text. */
    assert_int_equal(req_with("{\"v\":1,\"op\":\"ping\",\"user\":\"a\","
                              "\"rid\":\"r\",\"args\":{\"k\":\"%s\"}}",
                              "\\\\u0000"),
                     WA_OK);
    /* Raw control characters inside strings are not JSON. */
    assert_int_equal(req_with("{\"v\":1,\"op\":\"ping\",\"user\":\"a\","
                              "\"rid\":\"r\",\"args\":{\"k\":\"%s\"}}",
                              "a\x01"),
                     WA_EPROTO);
}

static void test_request_decode_not_object(void **state)
{
    (void)state;
    assert_int_equal(req_dec("[]"), WA_EPROTO);
    assert_int_equal(req_dec("[" REQ_OK "]"), WA_EPROTO);
    assert_int_equal(req_dec("\"ping\""), WA_EPROTO);
    assert_int_equal(req_dec("1"), WA_EPROTO);
    assert_int_equal(req_dec("null"), WA_EPROTO);
    assert_int_equal(req_dec("true"), WA_EPROTO);
    assert_int_equal(req_dec("{}"), WA_EPROTO);
}

static void test_request_decode_version(void **state)
{
    const char *t = "{%s\"op\":\"ping\",\"user\":\"\",\"rid\":\"r\","
                    "\"args\":{}}";
    (void)state;
    assert_int_equal(req_with(t, ""), WA_EPROTO);
    assert_int_equal(req_with(t, "\"v\":\"1\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"v\":true,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"v\":null,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"v\":[1],"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"v\":2,"), WA_EVERSION);
    assert_int_equal(req_with(t, "\"v\":1.5,"), WA_EVERSION);
    assert_int_equal(req_with(t, "\"v\":0,"), WA_EVERSION);
    assert_int_equal(req_with(t, "\"v\":-1,"), WA_EVERSION);
    assert_int_equal(req_with(t, "\"v\":1e400,"), WA_EVERSION);
    assert_int_equal(req_with(t, "\"v\":1,\"v\":1,"), WA_EPROTO);
    /* A future version wins over shape errors: v2 may look different. */
    assert_int_equal(req_dec("{\"v\":2}"), WA_EVERSION);
}

static void test_request_decode_op(void **state)
{
    const char *t = "{\"v\":1,%s\"user\":\"\",\"rid\":\"r\",\"args\":{}}";
    (void)state;
    assert_int_equal(req_with(t, ""), WA_EPROTO);
    assert_int_equal(req_with(t, "\"op\":1,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"op\":null,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"op\":[\"ping\"],"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"op\":\"nope\","), WA_EUNKNOWNOP);
    assert_int_equal(req_with(t, "\"op\":\"\","), WA_EUNKNOWNOP);
    assert_int_equal(req_with(t, "\"op\":\"PING\","), WA_EUNKNOWNOP);
    assert_int_equal(req_with(t, "\"op\":\"ping \","), WA_EUNKNOWNOP);
    /* Member names are case-sensitive. */
    assert_int_equal(req_with(t, "\"OP\":\"ping\","), WA_EPROTO);
    /* A known member twice is ambiguous. */
    assert_int_equal(req_with(t, "\"op\":\"ping\",\"op\":\"wa.send\","),
                     WA_EPROTO);
}

static void test_request_decode_user(void **state)
{
    const char *t = "{\"v\":1,\"op\":\"ping\",%s\"rid\":\"r\",\"args\":{}}";
    char buf[512];
    char *u;
    (void)state;

    assert_int_equal(req_with(t, ""), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":1,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":null,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":{},"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":\"\","), WA_OK);
    assert_int_equal(req_with(t, "\"user\":\"a\\u0001\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":\"a\\n\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":\"a\\u007f\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":\"a\x01\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"user\":\"\xC0\x80\","), WA_EUTF8);
    assert_int_equal(req_with(t, "\"user\":\"\\u00e9\\u533b\","), WA_OK);

    u = repeat('u', WA_USER_MAX);
    snprintf(buf, sizeof(buf), "\"user\":\"%s\",", u);
    assert_int_equal(req_with(t, buf), WA_OK);
    free(u);
    u = repeat('u', WA_USER_MAX + 1);
    snprintf(buf, sizeof(buf), "\"user\":\"%s\",", u);
    assert_int_equal(req_with(t, buf), WA_ETOOBIG);
    free(u);
}

static void test_request_decode_rid(void **state)
{
    const char *t =
        "{\"v\":1,\"op\":\"ping\",\"user\":\"alice\",%s\"args\":{}}";
    char buf[256];
    char *r;
    (void)state;

    assert_int_equal(req_with(t, ""), WA_EPROTO);
    assert_int_equal(req_with(t, "\"rid\":\"\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"rid\":7,"), WA_EPROTO);
    assert_int_equal(req_with(t, "\"rid\":\"a b\","), WA_EPROTO);
    assert_int_equal(req_with(t, "\"rid\":\"\\u00e9\","), WA_EPROTO);
    r = repeat('r', WA_RID_MAX);
    snprintf(buf, sizeof(buf), "\"rid\":\"%s\",", r);
    assert_int_equal(req_with(t, buf), WA_OK);
    free(r);
    r = repeat('r', WA_RID_MAX + 1);
    snprintf(buf, sizeof(buf), "\"rid\":\"%s\",", r);
    assert_int_equal(req_with(t, buf), WA_ETOOBIG);
    free(r);
}

static void test_request_decode_args(void **state)
{
    const char *t = "{\"v\":1,\"op\":\"ping\",\"user\":\"\",\"rid\":\"r\"%s}";
    (void)state;
    assert_int_equal(req_with(t, ""), WA_EPROTO);
    assert_int_equal(req_with(t, ",\"args\":[]"), WA_EPROTO);
    assert_int_equal(req_with(t, ",\"args\":\"{}\""), WA_EPROTO);
    assert_int_equal(req_with(t, ",\"args\":null"), WA_EPROTO);
    assert_int_equal(req_with(t, ",\"args\":0"), WA_EPROTO);
    assert_int_equal(req_with(t, ",\"args\":{\"a\":{\"b\":[1,null,true]}}"),
                     WA_OK);
}

static void test_request_decode_invalid_utf8(void **state)
{
    const char *t = "{\"v\":1,\"op\":\"ping\",\"user\":\"a\",\"rid\":\"r\","
                    "\"args\":{\"k\":\"%s\"}}";
    char buf[256];
    (void)state;

    assert_int_equal(req_with(t, "\xC0\x80"), WA_EUTF8);     /* overlong */
    assert_int_equal(req_with(t, "\xED\xA0\x80"), WA_EUTF8); /* surrogate */
    assert_int_equal(req_with(t, "\xF5\x80\x80\x80"), WA_EUTF8);
    assert_int_equal(req_with(t, "\xF4\x90\x80\x80"), WA_EUTF8);
    assert_int_equal(req_with(t, "\xFF"), WA_EUTF8);
    /* Truncated sequence at the very end of the message. */
    snprintf(buf, sizeof(buf), "%s\xE2\x82", REQ_OK);
    assert_int_equal(req_dec(buf), WA_EUTF8);
    /* Invalid UTF-8 outranks a JSON syntax error. */
    assert_int_equal(req_dec("\xC0\x80"), WA_EUTF8);
}

static void test_request_decode_oversize(void **state)
{
    size_t n = WA_ENVELOPE_MAX + 1;
    char *buf = malloc(n);
    size_t base = strlen(REQ_OK);
    (void)state;

    assert_non_null(buf);
    /* A valid request padded with whitespace to the limit is accepted... */
    memcpy(buf, REQ_OK, base);
    memset(buf + base, ' ', n - base);
    assert_int_equal(req_dec_n(buf, WA_ENVELOPE_MAX), WA_OK);
    /* ...and one byte more is refused before parsing. */
    assert_int_equal(req_dec_n(buf, n), WA_ETOOBIG);
    assert_int_equal(rep_dec_n(buf, n), WA_ETOOBIG);
    assert_int_equal(ev_dec_n(buf, n), WA_ETOOBIG);
    /* Size is checked before the bytes are read: even SIZE_MAX. */
    assert_int_equal(req_dec_n(buf, SIZE_MAX), WA_ETOOBIG);
    free(buf);
}

/* Build n copies of open, then n copies of close, wrapped in tmpl. */
static char *nested(const char *tmpl, const char *open, const char *close,
                    size_t n)
{
    size_t lo = strlen(open), lc = strlen(close);
    size_t body = n * (lo + lc);
    char *inner = malloc(body + 1), *out;
    size_t p = 0;

    assert_non_null(inner);
    for (size_t i = 0; i < n; i++, p += lo)
        memcpy(inner + p, open, lo);
    for (size_t i = 0; i < n; i++, p += lc)
        memcpy(inner + p, close, lc);
    inner[p] = '\0';
    out = malloc(strlen(tmpl) + body + 1);
    assert_non_null(out);
    sprintf(out, tmpl, inner);
    free(inner);
    return out;
}

static void test_decode_deep_nesting(void **state)
{
    const char *t = "{\"v\":1,\"op\":\"ping\",\"user\":\"\",\"rid\":\"r\","
                    "\"args\":{\"a\":%s}}";
    char *s;
    (void)state;

    /* Unbalanced: 100000 '[' and nothing else. */
    s = repeat('[', 100000);
    assert_int_equal(req_dec(s), WA_EPROTO);
    assert_int_equal(rep_dec(s), WA_EPROTO);
    free(s);
    s = repeat('{', 100000);
    assert_int_equal(req_dec(s), WA_EPROTO);
    free(s);

    /* Balanced but past cJSON's nesting limit (1000). */
    s = nested(t, "[", "]", 100000);
    assert_int_equal(req_dec(s), WA_EPROTO);
    free(s);
    s = nested(t, "{\"k\":", "}", 5000);
    assert_int_equal(req_dec(s), WA_EPROTO);
    free(s);

    /* Deep but within the limit is fine. */
    s = nested(t, "[", "]", 900);
    assert_int_equal(req_dec(s), WA_OK);
    free(s);
}

/* -------------------------------------------------------------- replies */

static void test_reply_ok_round_trip(void **state)
{
    cJSON *values[6];
    wa_reply_t r;
    char *out;
    size_t len;
    (void)state;

    values[0] = cJSON_CreateObject();
    cJSON_AddStringToObject(values[0], "status", "ready");
    cJSON_AddStringToObject(values[0], "displayName",
                            "Dr. \"Zo\xC3\xAB\" \xF0\x9F\xA9\xBA");
    values[1] = cJSON_CreateArray();
    cJSON_AddItemToArray(values[1], cJSON_CreateNumber(1.5));
    cJSON_AddItemToArray(values[1], cJSON_CreateString("x"));
    values[2] = cJSON_CreateString("just a string \\ \"");
    values[3] = cJSON_CreateNumber(-42);
    values[4] = cJSON_CreateTrue();
    values[5] = cJSON_CreateNull();

    for (int i = 0; i < 6; i++) {
        assert_int_equal(wa_reply_encode_ok(values[i], &out, &len), WA_OK);
        assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
        assert_true(r.ok);
        assert_int_equal(r.err, WA_OK);
        assert_true(cJSON_Compare(r.data, values[i], 1));
        wa_reply_clear(&r);
        free(out);
        cJSON_Delete(values[i]);
    }

    /* NULL data is encoded as null. */
    assert_int_equal(wa_reply_encode_ok(NULL, &out, &len), WA_OK);
    assert_string_equal(out, "{\"v\":1,\"ok\":true,\"data\":null}");
    assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
    assert_true(cJSON_IsNull(r.data));
    wa_reply_clear(&r);
    free(out);
    assert_int_equal(wa_reply_encode_ok(NULL, NULL, &len), WA_EINVAL);
}

static void test_reply_err_round_trip(void **state)
{
    wa_reply_t r;
    char *out;
    size_t len;
    (void)state;

    assert_int_equal(wa_reply_encode_err(WA_ENOTREADY,
                                         "session \"x\" not ready", &out, &len),
                     WA_OK);
    assert_string_equal(out, "{\"v\":1,\"ok\":false,\"code\":\"not_ready\","
                             "\"message\":\"session \\\"x\\\" not ready\"}");
    assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
    assert_false(r.ok);
    assert_int_equal(r.err, WA_ENOTREADY);
    assert_string_equal(r.message, "session \"x\" not ready");
    assert_null(r.data);
    wa_reply_clear(&r);
    free(out);

    /* Every code survives the trip. */
    for (int e = 1; e < WA_ERR_COUNT; e++) {
        assert_int_equal(wa_reply_encode_err((wa_err_t)e, NULL, &out, &len),
                         WA_OK);
        assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
        assert_int_equal(r.err, e);
        assert_string_equal(r.message, wa_strerror((wa_err_t)e));
        wa_reply_clear(&r);
        free(out);
    }
}

static void test_reply_err_truncation(void **state)
{
    /* 100 x U+20AC (3 bytes): 256 bytes would cut the 86th in half. */
    char msg[301];
    wa_reply_t r;
    char *out;
    size_t len;
    (void)state;

    for (int i = 0; i < 100; i++)
        memcpy(msg + 3 * i, "\xE2\x82\xAC", 3);
    msg[300] = '\0';
    assert_int_equal(wa_reply_encode_err(WA_EBROWSER, msg, &out, &len), WA_OK);
    assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
    assert_int_equal(strlen(r.message), 255);
    assert_true(wa_utf8_valid(r.message, 255));
    assert_memory_equal(r.message, msg, 255);
    wa_reply_clear(&r);
    free(out);

    /* Exactly WA_MESSAGE_MAX ASCII bytes: kept whole. */
    memset(msg, 'm', WA_MESSAGE_MAX);
    msg[WA_MESSAGE_MAX] = '\0';
    assert_int_equal(wa_reply_encode_err(WA_EBROWSER, msg, &out, &len), WA_OK);
    assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
    assert_int_equal(strlen(r.message), WA_MESSAGE_MAX);
    wa_reply_clear(&r);
    free(out);

    /* Invalid UTF-8 falls back to the generic text, never fails. */
    assert_int_equal(
        wa_reply_encode_err(WA_EBROWSER, "bad \xFF bytes", &out, &len), WA_OK);
    assert_int_equal(wa_reply_decode(out, len, &r), WA_OK);
    assert_string_equal(r.message, wa_strerror(WA_EBROWSER));
    wa_reply_clear(&r);
    free(out);
}

static void test_reply_err_encode_rejects(void **state)
{
    char *out = NULL;
    size_t len;
    (void)state;
    assert_int_equal(wa_reply_encode_err(WA_OK, "x", &out, &len), WA_EINVAL);
    assert_int_equal(wa_reply_encode_err(WA_ERR_COUNT, "x", &out, &len),
                     WA_EINVAL);
    assert_int_equal(wa_reply_encode_err((wa_err_t)-1, "x", &out, &len),
                     WA_EINVAL);
    assert_int_equal(wa_reply_encode_err(WA_EINVAL, "x", NULL, &len),
                     WA_EINVAL);
    assert_null(out);
}

static void test_reply_decode_ok_field(void **state)
{
    const char *absent = "{\"v\":1,\"ok\":true}";
    wa_reply_t r;
    (void)state;

    assert_int_equal(rep_dec("{\"v\":1,\"ok\":true,\"data\":{}}"), WA_OK);
    assert_int_equal(rep_dec("{\"v\":1,\"data\":{}}"), WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":\"true\",\"data\":{}}"),
                     WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":1,\"data\":{}}"), WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":null}"), WA_EPROTO);
    assert_int_equal(rep_dec("{\"ok\":true,\"data\":{}}"), WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":2,\"ok\":true,\"data\":{}}"), WA_EVERSION);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":true,\"ok\":false}"), WA_EPROTO);
    assert_int_equal(rep_dec("[true]"), WA_EPROTO);

    /* data absent -> JSON null, never a NULL pointer. */
    assert_int_equal(wa_reply_decode(absent, strlen(absent), &r), WA_OK);
    assert_non_null(r.data);
    assert_true(cJSON_IsNull(r.data));
    wa_reply_clear(&r);
    wa_reply_clear(NULL);
}

static void test_reply_decode_error_fields(void **state)
{
    char buf[512];
    char *m;
    (void)state;

    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"code\":\"not_found\","
                             "\"message\":\"no chat\"}"),
                     WA_OK);
    /* code: present, a string, a known machine code, not "ok". */
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"message\":\"m\"}"),
                     WA_EPROTO);
    assert_int_equal(
        rep_dec("{\"v\":1,\"ok\":false,\"code\":404,\"message\":\"m\"}"),
        WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"code\":\"teapot\","
                             "\"message\":\"m\"}"),
                     WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"code\":\"ok\","
                             "\"message\":\"m\"}"),
                     WA_EPROTO);
    /* message: present, a string, at most WA_MESSAGE_MAX bytes. */
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"code\":\"not_found\"}"),
                     WA_EPROTO);
    assert_int_equal(rep_dec("{\"v\":1,\"ok\":false,\"code\":\"not_found\","
                             "\"message\":null}"),
                     WA_EPROTO);
    m = repeat('m', WA_MESSAGE_MAX);
    snprintf(buf, sizeof(buf),
             "{\"v\":1,\"ok\":false,\"code\":\"timeout\",\"message\":\"%s\"}",
             m);
    assert_int_equal(rep_dec(buf), WA_OK);
    free(m);
    m = repeat('m', WA_MESSAGE_MAX + 1);
    snprintf(buf, sizeof(buf),
             "{\"v\":1,\"ok\":false,\"code\":\"timeout\",\"message\":\"%s\"}",
             m);
    assert_int_equal(rep_dec(buf), WA_ETOOBIG);
    free(m);
}

/* --------------------------------------------------------------- events */

static void test_event_round_trip(void **state)
{
    wa_event_t ev, got;
    char *out;
    size_t len;
    (void)state;

    assert_int_equal(wa_event_init(&ev, "Dr. Zo\xC3\xAB", WA_EV_MESSAGE),
                     WA_OK);
    assert_int_equal(ev.seq, 0);
    assert_int_equal(strlen(ev.timestamp), 24);
    cJSON_AddStringToObject(ev.data, "body",
                            "\"hi\"\n\\ \xF0\x9F\x91\x8B \xE5\x8C\xBB");
    cJSON_AddBoolToObject(ev.data, "fromMe", 0);
    ev.seq = 42;

    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_OK);
    assert_int_equal(len, strlen(out));
    assert_memory_equal(out, "Dr. Zo\xC3\xAB\n", 8);
    assert_int_equal(wa_event_decode(out, len, &got), WA_OK);
    assert_string_equal(got.user, ev.user);
    assert_int_equal(got.type, WA_EV_MESSAGE);
    assert_int_equal(got.seq, 42);
    assert_string_equal(got.timestamp, ev.timestamp);
    assert_true(cJSON_Compare(got.data, ev.data, 1));
    wa_event_clear(&got);
    free(out);

    /* The largest seq prints as plain digits and comes back exactly. */
    ev.seq = INT64_C(9007199254740991);
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_OK);
    assert_non_null(strstr(out, "\"seq\":9007199254740991}"));
    assert_int_equal(wa_event_decode(out, len, &got), WA_OK);
    assert_int_equal(got.seq, INT64_C(9007199254740991));
    wa_event_clear(&got);
    free(out);

    wa_event_clear(&ev);
    wa_event_clear(&ev);
    wa_event_clear(NULL);
}

static void test_event_frame(void **state)
{
    wa_event_t ev;
    cJSON *f;
    char *out;
    size_t len;
    (void)state;

    assert_int_equal(wa_event_init(&ev, "alice", WA_EV_QR), WA_OK);
    cJSON_AddStringToObject(ev.data, "qr", "2@abc,def,ghi,jkl");
    ev.seq = 7;
    strcpy(ev.timestamp, "2026-11-26T10:00:00.123Z");
    assert_int_equal(wa_event_frame(&ev, &out, &len), WA_OK);
    assert_string_equal(out, "{\"type\":\"qr\",\"data\":{\"qr\":\"2@abc,def,"
                             "ghi,jkl\"},\"timestamp\":\"2026-11-26T10:00:"
                             "00.123Z\",\"seq\":7}");
    f = cJSON_ParseWithLength(out, len);
    assert_non_null(f);
    assert_null(cJSON_GetObjectItem(f, "v"));
    cJSON_Delete(f);
    free(out);
    assert_int_equal(wa_event_frame(NULL, &out, &len), WA_EINVAL);
    assert_int_equal(wa_event_frame(&ev, NULL, &len), WA_EINVAL);
    wa_event_clear(&ev);
}

/* An event our encoder wrote: the relay's frame (wa_event_decode_frame) is
 * byte for byte what wa_event_frame() prints from the tree. */
static void test_event_frame_bytes(void **state)
{
    wa_event_t ev, got;
    cJSON *msg;
    char *enc, *frame;
    size_t len, flen;
    (void)state;

    assert_int_equal(wa_event_init(&ev, "dr-\xc3\xa9", WA_EV_MESSAGE), WA_OK);
    msg = ev.data;
    cJSON_AddStringToObject(msg, "body",
                            "quote \" backslash \\ </script> \n tab\t "
                            "\xf0\x9f\x99\x82 \x01");
    cJSON_AddNumberToObject(msg, "timestamp", 1795687200);
    cJSON_AddNumberToObject(msg, "ratio", 0.125);
    cJSON_AddBoolToObject(msg, "fromMe", 0);
    cJSON_AddNullToObject(msg, "quoted");
    cJSON_AddItemToObject(msg, "list", cJSON_CreateIntArray((int[]){1, 2}, 2));
    ev.seq = 9007199254740991;
    strcpy(ev.timestamp, "2026-11-26T10:00:00.123Z");
    assert_int_equal(wa_event_encode(&ev, &enc, &len), WA_OK);
    assert_int_equal(wa_event_frame(&ev, &frame, &flen), WA_OK);
    assert_int_equal(wa_event_decode_frame(enc, len, &got), WA_OK);
    assert_null(got.data);
    assert_string_equal(got.user, "dr-\xc3\xa9");
    assert_int_equal(got.type, WA_EV_MESSAGE);
    assert_int_equal(got.seq, ev.seq);
    assert_int_equal(got.frame_len, flen);
    assert_string_equal(got.frame, frame);
    wa_event_clear(&got);
    assert_null(got.frame);
    free(frame);
    free(enc);
    wa_event_clear(&ev);
    assert_int_equal(wa_event_decode_frame("a\n{}", 4, NULL), WA_EINVAL);
}

/* A reply whose data is a raw node is the text cJSON would print, built
 * without the printer, with the same limits. */
static void test_reply_raw_data(void **state)
{
    cJSON *raw = cJSON_CreateRaw("{\"logs\":[{\"id\":1,\"x\":\"\xc3\xa9\"}]}");
    cJSON *root = cJSON_CreateObject();
    char *out, *want, *big;
    size_t len;
    wa_reply_t r;
    (void)state;

    assert_int_equal(wa_reply_encode_ok(raw, &out, &len), WA_OK);
    cJSON_AddItemToObject(root, "v", cJSON_CreateNumber(1));
    cJSON_AddItemToObject(root, "ok", cJSON_CreateTrue());
    cJSON_AddItemToObject(root, "data", cJSON_CreateRaw(raw->valuestring));
    want = cJSON_PrintUnformatted(root);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(wa_reply_decode_raw(out, len, &r), WA_OK);
    assert_string_equal(r.raw, raw->valuestring);
    wa_reply_clear(&r);
    free(out);
    free(want);
    cJSON_Delete(root);
    cJSON_Delete(raw);

    raw = cJSON_CreateRaw("\"\xff\"");
    assert_int_equal(wa_reply_encode_ok(raw, &out, &len), WA_EUTF8);
    assert_null(out);
    cJSON_Delete(raw);
    big = malloc(WA_ENVELOPE_MAX + 1);
    memset(big, '1', WA_ENVELOPE_MAX);
    big[WA_ENVELOPE_MAX] = '\0';
    raw = cJSON_CreateRaw(big);
    assert_int_equal(wa_reply_encode_ok(raw, &out, &len), WA_ETOOBIG);
    cJSON_Delete(raw);
    free(big);
}

static void test_event_encode_rejects(void **state)
{
    wa_event_t ev;
    char *out = NULL;
    size_t len;
    char *u = repeat('u', WA_USER_MAX + 1);
    (void)state;

    assert_int_equal(wa_event_init(&ev, u, WA_EV_STATUS), WA_EINVAL);
    assert_null(ev.data);
    assert_int_equal(wa_event_init(&ev, "", WA_EV_STATUS), WA_EINVAL);
    assert_int_equal(wa_event_init(&ev, "a\nb", WA_EV_STATUS), WA_EINVAL);
    assert_int_equal(wa_event_init(&ev, "alice", WA_EV_COUNT), WA_EINVAL);
    assert_int_equal(wa_event_init(NULL, "alice", WA_EV_STATUS), WA_EINVAL);
    free(u);

    assert_int_equal(wa_event_init(&ev, "alice", WA_EV_STATUS), WA_OK);
    ev.seq = -1;
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_EINVAL);
    ev.seq = INT64_C(9007199254740992);
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_EINVAL);
    assert_int_equal(wa_event_frame(&ev, &out, &len), WA_EINVAL);
    ev.seq = 1;
    ev.type = WA_EV_COUNT;
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_EINVAL);
    ev.type = WA_EV_STATUS;
    ev.timestamp[0] = '\0';
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_EINVAL);
    wa_timestamp_now(ev.timestamp, sizeof(ev.timestamp));
    strcpy(ev.user, "a\x01");
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_EINVAL);
    assert_null(out);
    strcpy(ev.user, "alice");
    assert_int_equal(wa_event_encode(&ev, &out, &len), WA_OK);
    free(out);
    wa_event_clear(&ev);
}

static void test_event_decode_topic(void **state)
{
    char buf[1024];
    char *u;
    static const char nul_topic[] =
        "al\0ce\n" EV_JSON("\"status\"", "{}", TS, "1");
    (void)state;

    assert_int_equal(ev_dec("alice\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_OK);
    /* No separator at all. */
    assert_int_equal(ev_dec(EV_JSON("\"status\"", "{}", TS, "1")), WA_EPROTO);
    assert_int_equal(ev_dec("alice"), WA_EPROTO);
    assert_int_equal(ev_dec_n("", 0), WA_EPROTO);
    assert_int_equal(ev_dec_n(NULL, 0), WA_EPROTO);
    assert_int_equal(ev_dec_n(NULL, 3), WA_EINVAL);
    assert_int_equal(wa_event_decode("a\n{}", 4, NULL), WA_EINVAL);
    /* Empty topic, empty JSON. */
    assert_int_equal(ev_dec("\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("alice\n"), WA_EPROTO);
    /* Topic under the same rules as a user id. */
    assert_int_equal(ev_dec("a\x01"
                            "b\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\x7f\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\r\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("\xC0\x80\n" EV_JSON("\"status\"", "{}", TS, "1")),
                     WA_EUTF8);
    assert_int_equal(ev_dec_n(nul_topic, sizeof(nul_topic) - 1), WA_EPROTO);
    u = repeat('u', WA_USER_MAX);
    snprintf(buf, sizeof(buf), "%s\n" EV_JSON("\"status\"", "{}", TS, "1"), u);
    assert_int_equal(ev_dec(buf), WA_OK);
    free(u);
    u = repeat('u', WA_USER_MAX + 1);
    snprintf(buf, sizeof(buf), "%s\n" EV_JSON("\"status\"", "{}", TS, "1"), u);
    assert_int_equal(ev_dec(buf), WA_ETOOBIG);
    free(u);
    /* Trailing garbage after the JSON. */
    assert_int_equal(
        ev_dec("alice\n" EV_JSON("\"status\"", "{}", TS, "1") "\nbob"),
        WA_EPROTO);
}

static void test_event_decode_fields(void **state)
{
    (void)state;
    /* type */
    assert_int_equal(ev_dec("a\n" EV_JSON("\"bogus\"", "{}", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("1", "{}", TS, "1")), WA_EPROTO);
    assert_int_equal(
        ev_dec("a\n{\"v\":1,\"data\":{},\"timestamp\":" TS ",\"seq\":1}"),
        WA_EPROTO);
    /* data */
    assert_int_equal(ev_dec("a\n" EV_JSON("\"qr\"", "[]", TS, "1")), WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"qr\"", "null", TS, "1")),
                     WA_EPROTO);
    assert_int_equal(
        ev_dec("a\n{\"v\":1,\"type\":\"qr\",\"timestamp\":" TS ",\"seq\":1}"),
        WA_EPROTO);
    /* v */
    assert_int_equal(ev_dec("a\n"
                            "{\"v\":2,\"type\":\"qr\"}"),
                     WA_EVERSION);
    assert_int_equal(ev_dec("a\n"
                            "{\"type\":\"qr\",\"data\":{},"
                            "\"timestamp\":" TS ",\"seq\":1}"),
                     WA_EPROTO);
    /* top level */
    assert_int_equal(ev_dec("a\n[]"), WA_EPROTO);
    assert_int_equal(ev_dec("a\nnot json"), WA_EPROTO);
}

static void test_event_decode_seq(void **state)
{
    wa_event_t e;
    const char *m = "a\n" EV_JSON("\"status\"", "{}", TS, "0");
    (void)state;

    assert_int_equal(wa_event_decode(m, strlen(m), &e), WA_OK);
    assert_int_equal(e.seq, 0);
    wa_event_clear(&e);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "1e3")),
                     WA_OK);
    assert_int_equal(
        ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "9007199254740991")),
        WA_OK);

    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "-1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "1.5")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "\"1\"")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "null")),
                     WA_EPROTO);
    assert_int_equal(
        ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "9007199254740992")),
        WA_EPROTO);
    assert_int_equal(
        ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "9007199254740993")),
        WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "1e300")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", TS, "1e999")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n{\"v\":1,\"type\":\"qr\",\"data\":{},"
                            "\"timestamp\":" TS "}"),
                     WA_EPROTO);
}

static void test_event_decode_timestamp(void **state)
{
    (void)state;
    /* 32 bytes: the limit. */
    assert_int_equal(
        ev_dec("a\n" EV_JSON("\"status\"", "{}",
                             "\"2026-11-26T10:00:00.123456789+01\"", "1")),
        WA_OK);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}",
                                          "\"2026-11-26T10:00:00.123456789+01:"
                                          "00\"",
                                          "1")),
                     WA_ETOOBIG);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", "\"\"", "1")),
                     WA_EPROTO);
    assert_int_equal(ev_dec("a\n" EV_JSON("\"status\"", "{}", "12", "1")),
                     WA_EPROTO);
    assert_int_equal(
        ev_dec("a\n" EV_JSON("\"status\"", "{}", "\"2026 11 26\"", "1")),
        WA_EPROTO);
    assert_int_equal(ev_dec("a\n{\"v\":1,\"type\":\"qr\",\"data\":{},"
                            "\"seq\":1}"),
                     WA_EPROTO);
}

/* -------------------------------------------------------- mutation fuzz */

/*
 * Deterministic mutations of valid messages: flip, insert and truncate
 * bytes. Whatever the result, decoders must not crash and must keep the
 * failure contract (checked by the helpers); under ASan this also catches
 * reads past len, since every input is an exact-size heap copy.
 */
static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_mutations(void **state)
{
    const char *seeds[3] = {
        REQ_OK,
        "{\"v\":1,\"ok\":false,\"code\":\"not_found\",\"message\":"
        "\"x\\u00e9\"}",
        "alice\n" EV_JSON("\"message\"", "{\"body\":\"h\\\"i\"}", TS, "12"),
    };
    static const char alphabet[] = "{}[]\":,\\u0\n \x80\xC3\xED\xF4\x00";
    (void)state;

    for (int iter = 0; iter < 30000; iter++) {
        const char *seed = seeds[iter % 3];
        size_t n = strlen(seed);
        char *buf = malloc(n + 8);
        int edits = 1 + (int)(rng() % 4);

        assert_non_null(buf);
        memcpy(buf, seed, n);
        for (int k = 0; k < edits && n > 0; k++) {
            size_t pos = rng() % n;
            char c = alphabet[rng() % (sizeof(alphabet) - 1)];
            switch (rng() % 3) {
            case 0:
                buf[pos] = c;
                break;
            case 1:
                if (n < strlen(seed) + 8) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = c;
                    n++;
                }
                break;
            default:
                n = pos;
                break;
            }
        }
        /* Exact-size copy so ASan sees any over-read. */
        char *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        memcpy(exact, buf, n);
        (void)req_dec_n(exact, n);
        (void)rep_dec_n(exact, n);
        (void)ev_dec_n(exact, n);
        free(exact);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_timestamp_ms),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_utf8_prefix),
        cmocka_unit_test(test_check_user),
        cmocka_unit_test(test_check_rid),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_json_int),
        cmocka_unit_test(test_event_type_table),
        cmocka_unit_test(test_timestamp_now),
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_exact_wire),
        cmocka_unit_test(test_request_large_args),
        cmocka_unit_test(test_request_encode_rejects),
        cmocka_unit_test(test_request_decode_basics),
        cmocka_unit_test(test_request_decode_null_ish),
        cmocka_unit_test(test_request_decode_not_json),
        cmocka_unit_test(test_request_decode_trailing_garbage),
        cmocka_unit_test(test_request_decode_embedded_nul),
        cmocka_unit_test(test_request_decode_not_object),
        cmocka_unit_test(test_request_decode_version),
        cmocka_unit_test(test_request_decode_op),
        cmocka_unit_test(test_request_decode_user),
        cmocka_unit_test(test_request_decode_rid),
        cmocka_unit_test(test_request_decode_args),
        cmocka_unit_test(test_request_decode_invalid_utf8),
        cmocka_unit_test(test_request_decode_oversize),
        cmocka_unit_test(test_decode_deep_nesting),
        cmocka_unit_test(test_reply_ok_round_trip),
        cmocka_unit_test(test_reply_err_round_trip),
        cmocka_unit_test(test_reply_err_truncation),
        cmocka_unit_test(test_reply_err_encode_rejects),
        cmocka_unit_test(test_reply_decode_ok_field),
        cmocka_unit_test(test_reply_decode_error_fields),
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_event_frame),
        cmocka_unit_test(test_event_frame_bytes),
        cmocka_unit_test(test_reply_raw_data),
        cmocka_unit_test(test_event_encode_rejects),
        cmocka_unit_test(test_event_decode_topic),
        cmocka_unit_test(test_event_decode_fields),
        cmocka_unit_test(test_event_decode_seq),
        cmocka_unit_test(test_event_decode_timestamp),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
