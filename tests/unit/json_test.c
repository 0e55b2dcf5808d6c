/*
 * json_test.c - proto's JSON text module (json.h): the strict checker
 * against RFC 8259 and against cJSON, the iterator, key comparison, and the
 * writer's escaping against cJSON's own printer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa/envelope.h"
#include "wa/json.h"

/* A span of a string literal, without its NUL. */
#define SPAN(lit) ((wa_json_span_t){(lit), sizeof(lit) - 1})

static wa_err_t check(const char *s)
{
    return wa_json_check(s, strlen(s), NULL);
}

static void test_accepts(void **state)
{
    static const char *const ok[] = {
        "0",
        "-0",
        "1",
        "-12.5e+3",
        "1E9",
        "0.25",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\uD83D\\uDE00\"",
        "\"\xc3\xa9\"",
        "[]",
        "{}",
        " [ 1 , [ ] , { } ] ",
        "\t{\"a\":{\"b\":[null]}}\r\n",
        "{\"\":0,\"a\":\"x\",\"a\":1}", /* duplicates are the reader's business
                                         */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cJSON *tree = cJSON_Parse(ok[i]);

        if (check(ok[i]) != WA_OK)
            fail_msg("refused: %s", ok[i]);
        /* Everything accepted is read the same way by cJSON. */
        assert_non_null(tree);
        cJSON_Delete(tree);
    }
}

static void test_refuses(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "+1",
        "1 2",
        "tru",
        "nul",
        "True",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{1:1}",
        "[1",
        "{\"a\":1",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "[1]]",
        "{}{}",
        "/*c*/1",
        "NaN",
        "Infinity",
        "'a'",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (check(bad[i]) != WA_EPROTO)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(wa_json_check(NULL, 0, NULL), WA_EPROTO);
    /* A NUL inside the length is a control character, never an end. */
    assert_int_equal(wa_json_check("\"a\0b\"", 5, NULL), WA_EPROTO);
    assert_int_equal(wa_json_check("1\0", 2, NULL), WA_EPROTO);
    assert_int_equal(wa_json_check_object("[]", 2, NULL), WA_EPROTO);
    assert_int_equal(wa_json_check_object(" {} ", 4, NULL), WA_OK);
}

/* Nesting stops where cJSON's does, without recursion of our own. */
static void test_depth(void **state)
{
    size_t n = WA_JSON_DEPTH_MAX + 1;
    char *s = malloc(2 * n + 1);
    cJSON *tree;

    (void)state;
    assert_non_null(s);
    memset(s, '[', n - 1);
    memset(s + n - 1, ']', n - 1);
    s[2 * (n - 1)] = '\0';
    assert_int_equal(check(s), WA_OK);
    assert_non_null(tree = cJSON_Parse(s));
    cJSON_Delete(tree);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    assert_int_equal(check(s), WA_EPROTO);
    assert_null(cJSON_Parse(s));
    /* Deep and unclosed, as an attacker would send it. */
    memset(s, '{', 2 * n);
    assert_int_equal(check(s), WA_EPROTO);
    free(s);
}

static void span_is(wa_json_span_t sp, const char *want)
{
    if (sp.n != strlen(want) || memcmp(sp.p, want, sp.n) != 0)
        fail_msg("span '%.*s' != '%s'", (int)sp.n, sp.p, want);
}

static void test_iterate(void **state)
{
    const char *s =
        " { \"a\" : [1, {\"x\":\"]}\"}] ,\"b\":\"s\\\"}\",\"c\":-1.5e3 ,"
        "\"d\":{}, \"e\" :true} ";
    wa_json_span_t top, key, val;
    wa_json_iter_t it, arr;

    (void)state;
    assert_int_equal(wa_json_check(s, strlen(s), &top), WA_OK);
    assert_int_equal(top.p[0], '{');
    assert_int_equal(top.p[top.n - 1], '}');
    assert_true(wa_json_iter_init(&it, top));
    assert_true(it.object);
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(key, "\"a\"");
    span_is(val, "[1, {\"x\":\"]}\"}]");
    assert_int_equal(wa_json_kind(val), '[');
    assert_true(wa_json_iter_init(&arr, val));
    assert_false(arr.object);
    assert_true(wa_json_iter_next(&arr, &key, &val));
    assert_null(key.p);
    span_is(val, "1");
    assert_true(wa_json_iter_next(&arr, &key, &val));
    span_is(val, "{\"x\":\"]}\"}");
    assert_false(wa_json_iter_next(&arr, &key, &val));
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(val, "\"s\\\"}\"");
    assert_int_equal(wa_json_kind(val), '"');
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(val, "-1.5e3");
    assert_int_equal(wa_json_kind(val), '0');
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(val, "{}");
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(key, "\"e\"");
    span_is(val, "true");
    assert_false(wa_json_iter_next(&it, &key, &val));
    assert_false(wa_json_iter_next(&it, &key, &val));
    /* Empty containers, and what is not one. */
    assert_true(wa_json_iter_init(&it, SPAN("[ ]")));
    assert_false(wa_json_iter_next(&it, &key, &val));
    assert_false(wa_json_iter_init(&it, SPAN("12")));
    assert_false(wa_json_iter_next(&it, &key, &val));
}

/* Entering containers instead of skipping them: the outer walk goes on
 * right after each, whether the inner walk finished it or left early. */
static void test_iterate_in(void **state)
{
    const char *s = "{\"a\":[1,[2,3],{\"b\":\"]\"}],\"c\":{\"d\":[]},\"e\":5,"
                    "\"f\":[{\"g\":1}, 7] }";
    wa_json_span_t top, key, val, k2, v2;
    wa_json_iter_t it, in, in2;

    (void)state;
    assert_int_equal(wa_json_check(s, strlen(s), &top), WA_OK);
    assert_true(wa_json_iter_init(&it, top));
    /* "a": entered and walked to its end, entering one level more. */
    assert_true(wa_json_iter_next_in(&it, &key, &val, &in));
    span_is(key, "\"a\"");
    assert_int_equal(wa_json_kind(val), '[');
    assert_int_equal(val.n, 0);
    assert_true(wa_json_iter_next_in(&in, &k2, &v2, &in2));
    span_is(v2, "1");
    assert_true(wa_json_iter_next_in(&in, &k2, &v2, &in2));
    assert_int_equal(wa_json_kind(v2), '[');
    assert_true(wa_json_iter_next(&in2, &k2, &v2));
    span_is(v2, "2");
    /* in2 left early: in skips the rest of [2,3] itself. */
    assert_true(wa_json_iter_next(&in, &k2, &v2));
    span_is(v2, "{\"b\":\"]\"}");
    assert_false(wa_json_iter_next(&in, &k2, &v2));
    /* "c": entered, not walked at all. */
    assert_true(wa_json_iter_next_in(&it, &key, &val, &in));
    span_is(key, "\"c\"");
    /* "e": a scalar comes back whole. */
    assert_true(wa_json_iter_next_in(&it, &key, &val, &in));
    span_is(key, "\"e\"");
    span_is(val, "5");
    assert_false(wa_json_iter_next(&in, &k2, &v2));
    /* "f": skipped the ordinary way after all. */
    assert_true(wa_json_iter_next(&it, &key, &val));
    span_is(val, "[{\"g\":1}, 7]");
    assert_false(wa_json_iter_next_in(&it, &key, &val, &in));
    assert_false(wa_json_iter_next(&it, &key, &val));
}

static void test_members(void **state)
{
    static const char *const names[] = {"a", "b", "c"};
    wa_json_span_t m[3];
    double d;

    (void)state;
    assert_int_equal(
        wa_json_members(
            SPAN("{\"b\":[1,{\"a\":2}],\"x\":0,\"\\u0061\":-1.5e1}"), names, 3,
            m),
        WA_OK);
    span_is(m[0], "-1.5e1");
    span_is(m[1], "[1,{\"a\":2}]");
    assert_null(m[2].p);
    assert_true(wa_json_number(m[0], &d));
    assert_true(d == -15.0);
    assert_false(wa_json_number(m[1], &d));
    assert_false(wa_json_number(m[2], &d));
    /* A named member twice: refused; an unnamed one twice: not ours. */
    assert_int_equal(wa_json_members(SPAN("{\"a\":1,\"a\":2}"), names, 3, m),
                     WA_EPROTO);
    assert_int_equal(wa_json_members(SPAN("{\"z\":1,\"z\":2}"), names, 3, m),
                     WA_OK);
    assert_int_equal(wa_json_members(SPAN("[1]"), names, 3, m), WA_EPROTO);
}

static void test_key_is(void **state)
{
    (void)state;
    assert_true(wa_json_key_is(SPAN("\"data\""), "data"));
    assert_false(wa_json_key_is(SPAN("\"data\""), "dat"));
    assert_false(wa_json_key_is(SPAN("\"dat\""), "data"));
    /* An escaped key is the key every reader sees. */
    assert_true(wa_json_key_is(SPAN("\"d\\u0061ta\""), "data"));
    assert_false(wa_json_key_is(SPAN("\"d\\u0062ta\""), "data"));
    assert_true(wa_json_key_is(SPAN("\"\\u00e9\\n\\\"\\/\""), "\xc3\xa9\n\"/"));
    assert_true(
        wa_json_key_is(SPAN("\"\\ud83d\\ude00x\""), "\xf0\x9f\x98\x80x"));
    assert_false(
        wa_json_key_is(SPAN("\"\\ud83d\\ude00x\""), "\xf0\x9f\x98\x80"));
    assert_false(wa_json_key_is(SPAN("\"a\\n\""), "a"));
    assert_false(wa_json_key_is(SPAN("\""), ""));
    assert_true(wa_json_key_is(SPAN("\"\""), ""));
}

/* The writer's strings are cJSON's, byte for byte. */
static void test_buf_string(void **state)
{
    char s[300], *text = NULL, *want;
    wa_json_buf_t b = {0};
    cJSON *node;
    size_t len, n = 0;

    (void)state;
    for (int c = 1; c < 128; c++)
        s[n++] = (char)c;
    memcpy(s + n, "\xc3\xa9\xf0\x9f\x98\x80 </script>", 16);
    s[n + 16] = '\0';
    wa_json_buf_string(&b, s);
    wa_json_buf_lit(&b, ",");
    wa_json_buf_string(&b, NULL);
    wa_json_buf_lit(&b, ",");
    wa_json_buf_string(&b, "");
    assert_int_equal(wa_json_buf_done(&b, &text, &len), WA_OK);
    assert_non_null(node = cJSON_CreateString(s));
    assert_non_null(want = cJSON_PrintUnformatted(node));
    assert_int_equal(strlen(text), len);
    assert_true(len == strlen(want) + strlen(",null,\"\""));
    assert_memory_equal(text, want, strlen(want));
    assert_string_equal(text + strlen(want), ",null,\"\"");
    free(want);
    free(text);
    cJSON_Delete(node);
}

static void test_buf_int(void **state)
{
    wa_json_buf_t b = {0};
    char *text;

    (void)state;
    wa_json_buf_int(&b, 0);
    wa_json_buf_lit(&b, " ");
    wa_json_buf_int(&b, -1);
    wa_json_buf_lit(&b, " ");
    wa_json_buf_int(&b, INT64_MAX);
    wa_json_buf_lit(&b, " ");
    wa_json_buf_int(&b, INT64_MIN);
    assert_int_equal(wa_json_buf_done(&b, &text, NULL), WA_OK);
    assert_string_equal(text, "0 -1 9223372036854775807 -9223372036854775808");
    free(text);
    /* Nothing added is an empty text, not an error. */
    assert_int_equal(wa_json_buf_done(&b, &text, NULL), WA_OK);
    assert_string_equal(text, "");
    free(text);
}

/* Formatted text: appended as it comes, growing the buffer when a piece
 * is longer than the room left (the second vsnprintf). */
static void test_buf_printf(void **state)
{
    wa_json_buf_t b = {0};
    char long_text[5000], *text, *want;
    size_t len;

    (void)state;
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    wa_json_buf_printf(&b, "a %d %s %.1f\n", 42, "b", 0.5);
    wa_json_buf_lit(&b, "|");
    wa_json_buf_printf(&b, "%s", long_text);
    wa_json_buf_printf(&b, "%s", "");
    wa_json_buf_printf(&b, "|%llu", 18446744073709551615ULL);
    assert_int_equal(wa_json_buf_done(&b, &text, &len), WA_OK);
    assert_int_equal(
        asprintf(&want, "a 42 b 0.5\n|%s|18446744073709551615", long_text),
        (int)len);
    assert_string_equal(text, want);
    free(want);
    free(text);
}

/* Large text grows the buffer many times; the result stays exact. */
static void test_buf_grows(void **state)
{
    wa_json_buf_t b = {0};
    char *text;
    size_t len;

    (void)state;
    wa_json_buf_reserve(&b, 100);
    assert_true(b.cap > 100);
    wa_json_buf_lit(&b, "[");
    for (int i = 0; i < 10000; i++) {
        if (i > 0)
            wa_json_buf_lit(&b, ",");
        wa_json_buf_int(&b, i);
    }
    wa_json_buf_lit(&b, "]");
    assert_int_equal(wa_json_buf_done(&b, &text, &len), WA_OK);
    assert_int_equal(wa_json_check(text, len, NULL), WA_OK);
    assert_int_equal(strncmp(text + len - 6, ",9999]", 6), 0);
    free(text);
}

/* A reply's data as text: the same answer as the tree, byte for byte where
 * the peer sent it. */
static void test_reply_raw(void **state)
{
    const char *s = "{\"data\" : {\"logs\":[{\"id\":7,\"x\":\"\\u00e9\"}]} "
                    ",\"ok\":true,\"v\":1}";
    wa_reply_t rep;

    (void)state;
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_OK);
    assert_true(rep.ok);
    assert_null(rep.data);
    assert_string_equal(rep.raw, "{\"logs\":[{\"id\":7,\"x\":\"\\u00e9\"}]}");
    assert_int_equal(rep.raw_len, strlen(rep.raw));
    wa_reply_clear(&rep);
    assert_null(rep.raw);

    s = "{\"v\":1,\"ok\":true}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_OK);
    assert_string_equal(rep.raw, "null");
    wa_reply_clear(&rep);

    s = "{\"v\":1,\"ok\":false,\"code\":\"not_found\",\"message\":"
        "\"n\\u00f6\"}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_OK);
    assert_false(rep.ok);
    assert_int_equal(rep.err, WA_ENOTFOUND);
    assert_string_equal(rep.message, "n\xc3\xb6");
    assert_null(rep.raw);
    wa_reply_clear(&rep);

    /* The envelope's rules hold as in wa_reply_decode. */
    s = "{\"v\":2,\"ok\":true,\"data\":1}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EVERSION);
    s = "{\"v\":1,\"ok\":true,\"data\":1,\"data\":2}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EPROTO);
    s = "{\"v\":1,\"ok\":true,\"data\":[1,]}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EPROTO);
    s = "{\"v\":1,\"ok\":false,\"code\":\"ok\",\"message\":\"\"}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EPROTO);
    s = "{\"v\":1,\"ok\":\"yes\",\"data\":1}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EPROTO);
    s = "{\"v\":1,\"ok\":true,\"data\":\"\xff\"}";
    assert_int_equal(wa_reply_decode_raw(s, strlen(s), &rep), WA_EUTF8);
    assert_null(rep.raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),    cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_depth),      cmocka_unit_test(test_iterate),
        cmocka_unit_test(test_iterate_in), cmocka_unit_test(test_members),
        cmocka_unit_test(test_key_is),     cmocka_unit_test(test_buf_string),
        cmocka_unit_test(test_buf_int),    cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_grows),  cmocka_unit_test(test_reply_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
