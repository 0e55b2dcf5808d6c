/* config_test.c - the environment table: types, defaults, bounds, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wa/config.h"
#include "wa/log.h"

typedef struct cfg {
    long port;
    bool dev;
    char *name;
    char *url;
    char *secret;
    int level;
} cfg_t;

static cfg_t c;
static char err[256];

static const wa_config_spec_t specs[] = {
    WA_CFG_INT_SPEC("T_PORT", &c.port, "3001", 1, 65535),
    WA_CFG_BOOL_SPEC("T_DEV", &c.dev, "0"),
    WA_CFG_STR_SPEC("T_NAME", &c.name, "dflt", 1, 8),
    WA_CFG_URL_SPEC("T_URL", &c.url, "tcp://127.0.0.1:5560"),
    WA_CFG_SECRET_SPEC("T_SECRET", &c.secret, 4, 64),
    WA_CFG_ENUM_SPEC("T_LEVEL", &c.level, "info", wa_log_level_names),
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static int setup(void **state)
{
    (void)state;
    unsetenv("T_PORT");
    unsetenv("T_DEV");
    unsetenv("T_NAME");
    unsetenv("T_URL");
    unsetenv("T_SECRET");
    unsetenv("T_LEVEL");
    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wa_config_free(specs, NSPECS);
    return 0;
}

static wa_err_t load(void)
{
    return wa_config_load(specs, NSPECS, err, sizeof(err));
}

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(load(), WA_OK);
    assert_int_equal(c.port, 3001);
    assert_false(c.dev);
    assert_string_equal(c.name, "dflt");
    assert_string_equal(c.url, "tcp://127.0.0.1:5560");
    assert_null(c.secret);
    assert_int_equal(c.level, WA_LOG_INFO);
}

static void test_values(void **state)
{
    (void)state;
    setenv("T_PORT", "8080", 1);
    setenv("T_DEV", "true", 1);
    setenv("T_NAME", "abc", 1);
    setenv("T_URL", "ipc:///tmp/x.sock", 1);
    setenv("T_SECRET", "s3cr3t", 1);
    setenv("T_LEVEL", "DEBUG", 1);
    assert_int_equal(load(), WA_OK);
    assert_int_equal(c.port, 8080);
    assert_true(c.dev);
    assert_string_equal(c.name, "abc");
    assert_string_equal(c.url, "ipc:///tmp/x.sock");
    assert_string_equal(c.secret, "s3cr3t");
    assert_int_equal(c.level, WA_LOG_DEBUG);
}

static void test_empty_is_unset(void **state)
{
    (void)state;
    setenv("T_PORT", "", 1);
    setenv("T_NAME", "", 1);
    assert_int_equal(load(), WA_OK);
    assert_int_equal(c.port, 3001);
    assert_string_equal(c.name, "dflt");
}

static void expect_bad(const char *var, const char *val, const char *needle)
{
    setenv(var, val, 1);
    assert_int_equal(load(), WA_ECONFIG);
    assert_non_null(strstr(err, var));
    assert_non_null(strstr(err, needle));
    assert_null(strchr(err, '\n'));
    /* Nothing stays allocated after a failure. */
    assert_null(c.name);
    assert_null(c.url);
    unsetenv(var);
}

static void test_bad_int(void **state)
{
    (void)state;
    expect_bad("T_PORT", "abc", "1..65535");
    expect_bad("T_PORT", "0", "1..65535");
    expect_bad("T_PORT", "65536", "got \"65536\"");
    expect_bad("T_PORT", "12x", "integer");
    expect_bad("T_PORT", " 12", "integer");
    expect_bad("T_PORT", "99999999999999999999999", "integer");
    expect_bad("T_PORT", "0x10", "integer");
    expect_bad("T_PORT", "+5", "integer");
}

static void test_bad_bool(void **state)
{
    (void)state;
    expect_bad("T_DEV", "2", "0 or 1");
    expect_bad("T_DEV", "maybe", "0 or 1");
}

static void test_bad_str(void **state)
{
    (void)state;
    expect_bad("T_NAME", "123456789", "1..8");
}

static void test_bad_url(void **state)
{
    (void)state;
    expect_bad("T_URL", "http://x:1", "tcp://host:port");
    expect_bad("T_URL", "tcp://host", "tcp://host:port");
    expect_bad("T_URL", "tcp://host:99999", "tcp://host:port");
    expect_bad("T_URL", "tcp://:80", "tcp://host:port");
    expect_bad("T_URL", "tcp://a b:80", "tcp://host:port");
    expect_bad("T_URL", "ipc://", "tcp://host:port");
    setenv("T_URL", "tcp://[::1]:5560", 1);
    assert_int_equal(load(), WA_OK);
    assert_string_equal(c.url, "tcp://[::1]:5560");
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_bad("T_LEVEL", "verbose", "debug, info, warn, error");
}

static void test_secret_not_echoed(void **state)
{
    (void)state;
    setenv("T_SECRET", "xyz", 1); /* too short */
    assert_int_equal(load(), WA_ECONFIG);
    assert_non_null(strstr(err, "T_SECRET"));
    assert_null(strstr(err, "xyz"));
}

static void test_unprintable_value_quoted_safely(void **state)
{
    (void)state;
    setenv("T_PORT", "1\x1b[2J", 1);
    assert_int_equal(load(), WA_ECONFIG);
    assert_null(strchr(err, '\x1b'));
}

static void test_strv(void **state)
{
    char **v;

    (void)state;
    v = wa_strv_split(" a, b ,,c ,");
    assert_non_null(v);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "b");
    assert_string_equal(v[2], "c");
    assert_null(v[3]);
    assert_true(wa_strv_contains(v, "b"));
    assert_false(wa_strv_contains(v, "ab"));
    assert_false(wa_strv_contains(v, ""));
    assert_false(wa_strv_contains(v, NULL));
    wa_strv_free(v);

    v = wa_strv_split(NULL);
    assert_non_null(v);
    assert_null(v[0]);
    wa_strv_free(v);

    v = wa_strv_split(",, ,");
    assert_non_null(v);
    assert_null(v[0]);
    wa_strv_free(v);
    assert_false(wa_strv_contains(NULL, "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_is_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_str, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_not_echoed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unprintable_value_quoted_safely,
                                        setup, teardown),
        cmocka_unit_test(test_strv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
