/* log_test.c - JSON lines, levels, and redaction of tokens and bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "wa/log.h"

#define JWT "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"

static char line[32768];

/* Parse a record, failing the test if it is not one JSON object line. */
static cJSON *parse(const char *s)
{
    size_t n = strlen(s);
    cJSON *j;

    assert_true(n >= 2);
    assert_int_equal(s[n - 1], '\n');
    assert_null(memchr(s, '\n', n - 1));
    j = cJSON_ParseWithLength(s, n);
    assert_non_null(j);
    assert_true(cJSON_IsObject(j));
    return j;
}

static const char *field(cJSON *j, const char *k)
{
    cJSON *f = cJSON_GetObjectItemCaseSensitive(j, k);

    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static void test_shape(void **state)
{
    const char *kv[] = {"route", "/status", "ms", "3"};
    cJSON *j;

    (void)state;
    wa_log_init("gateway", WA_LOG_INFO);
    wa_log_format(line, sizeof(line), WA_LOG_WARN, "rid-1", "hello \"x\"\n", kv,
                  2);
    j = parse(line);
    assert_string_equal(field(j, "level"), "warn");
    assert_string_equal(field(j, "svc"), "gateway");
    assert_string_equal(field(j, "rid"), "rid-1");
    assert_string_equal(field(j, "msg"), "hello \"x\"\n");
    assert_string_equal(field(j, "route"), "/status");
    assert_string_equal(field(j, "ms"), "3");
    assert_int_equal(strlen(field(j, "ts")), 24);
    cJSON_Delete(j);
}

static void test_no_rid(void **state)
{
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_INFO, NULL, "x", NULL, 0);
    j = parse(line);
    assert_null(cJSON_GetObjectItem(j, "rid"));
    cJSON_Delete(j);
}

static void test_secret_keys_redacted(void **state)
{
    const char *kv[] = {
        "token",        "abc",          "Authorization", "Bearer xyz",
        "body",         "hello doctor", "message_body",  "hi",
        "access_token", "t0",           "qrCode",        "data:image/png",
        "user",         "u1",           "null_value",    NULL};
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_INFO, "r", "m", kv, 8);
    j = parse(line);
    assert_string_equal(field(j, "token"), "[redacted]");
    assert_string_equal(field(j, "Authorization"), "[redacted]");
    assert_string_equal(field(j, "body"), "[redacted]");
    assert_string_equal(field(j, "message_body"), "[redacted]");
    assert_string_equal(field(j, "access_token"), "[redacted]");
    assert_string_equal(field(j, "qrCode"), "[redacted]");
    assert_string_equal(field(j, "user"), "u1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "null_value")));
    assert_null(strstr(line, "hello doctor"));
    assert_null(strstr(line, "xyz"));
    cJSON_Delete(j);
}

static void test_jwt_in_message_redacted(void **state)
{
    const char *kv[] = {"note", "got " JWT " from client"};
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_ERROR, NULL,
                  "verify failed for " JWT "!", kv, 1);
    assert_null(strstr(line, "eyJ"));
    j = parse(line);
    assert_string_equal(field(j, "msg"), "verify failed for [redacted]!");
    assert_string_equal(field(j, "note"), "got [redacted] from client");
    cJSON_Delete(j);
}

static void test_bearer_redacted(void **state)
{
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_ERROR, NULL,
                  "header was bearer   s3cr3t-raw-token, rejected", NULL, 0);
    assert_null(strstr(line, "s3cr3t"));
    j = parse(line);
    assert_string_equal(field(j, "msg"),
                        "header was bearer [redacted], rejected");
    cJSON_Delete(j);
    wa_log_format(line, sizeof(line), WA_LOG_ERROR, NULL, "Bearer ", NULL, 0);
    cJSON_Delete(parse(line));
}

static void test_not_jwt_kept(void **state)
{
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_INFO, NULL, "eyJ.only-one-dot",
                  NULL, 0);
    j = parse(line);
    assert_string_equal(field(j, "msg"), "eyJ.only-one-dot");
    cJSON_Delete(j);
}

static void test_control_and_invalid_utf8(void **state)
{
    cJSON *j;

    (void)state;
    wa_log_format(line, sizeof(line), WA_LOG_INFO, NULL,
                  "a\x01\x7f\xc3\xa9\xff\xc0\x80z \xf0\x9f\x98\x80", NULL, 0);
    j = parse(line);
    assert_string_equal(field(j, "msg"),
                        "a\x01\x7f\xc3\xa9???z \xf0\x9f\x98\x80");
    cJSON_Delete(j);
}

static void test_truncation_stays_json(void **state)
{
    char *big = malloc(100000), small[1024];
    const char *kv[32];
    size_t i, n;

    (void)state;
    memset(big, '"', 99999);
    big[99999] = '\0';
    for (i = 0; i < 32; i++)
        kv[i] = i % 2 ? big : "k";
    n = wa_log_format(line, sizeof(line), WA_LOG_INFO, NULL, big, kv, 16);
    assert_true(n < sizeof(line));
    cJSON_Delete(parse(line));

    n = wa_log_format(small, sizeof(small), WA_LOG_INFO, big, big, kv, 16);
    assert_true(n < sizeof(small));
    cJSON_Delete(parse(small));
    assert_int_equal(wa_log_format(small, 100, WA_LOG_INFO, NULL, "x", NULL, 0),
                     0);
    free(big);
}

static void test_levels_and_emit(void **state)
{
    char buf[4096];
    int fds[2];
    ssize_t n;
    cJSON *j;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    wa_log_set_fd(fds[1]);
    wa_log_init("store-svc", WA_LOG_WARN);
    assert_false(wa_log_enabled(WA_LOG_INFO));
    assert_true(wa_log_enabled(WA_LOG_ERROR));
    wa_info("r0", "not written %d", 1);
    wa_error("r1", "written %d", 2);
    wa_log_kv(WA_LOG_WARN, "r2", "kv", "user", "u1", NULL);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fds[0]);
    wa_log_set_fd(2);
    assert_null(strstr(buf, "not written"));
    assert_non_null(strstr(buf, "\"msg\":\"written 2\""));
    assert_non_null(strstr(buf, "\"svc\":\"store-svc\""));
    j = parse(strchr(buf, '\n') + 1);
    assert_string_equal(field(j, "user"), "u1");
    assert_string_equal(field(j, "rid"), "r2");
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_no_rid),
        cmocka_unit_test(test_secret_keys_redacted),
        cmocka_unit_test(test_jwt_in_message_redacted),
        cmocka_unit_test(test_bearer_redacted),
        cmocka_unit_test(test_not_jwt_kept),
        cmocka_unit_test(test_control_and_invalid_utf8),
        cmocka_unit_test(test_truncation_stays_json),
        cmocka_unit_test(test_levels_and_emit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
