/*
 * ss_advertise_test.c - the URL a session-svc instance registers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>

#include "session.h"

/* SESSION_ADVERTISE_URL wins; a dialable SESSION_URL is used as it is. */
static void test_given(void **state)
{
    char out[128];
    bool guessed = true;
    (void)state;
    assert_int_equal(ss_advertise_url("tcp://0.0.0.0:5580",
                                      "tcp://session-svc-2:5580", out,
                                      sizeof(out), &guessed),
                     WA_OK);
    assert_string_equal(out, "tcp://session-svc-2:5580");
    assert_false(guessed);
    assert_int_equal(ss_advertise_url("tcp://127.0.0.1:5580", NULL, out,
                                      sizeof(out), &guessed),
                     WA_OK);
    assert_string_equal(out, "tcp://127.0.0.1:5580");
    assert_int_equal(
        ss_advertise_url("tcp://10.0.0.7:5580", "", out, sizeof(out), &guessed),
        WA_OK);
    assert_string_equal(out, "tcp://10.0.0.7:5580");
    assert_int_equal(ss_advertise_url("ipc:///tmp/ss.sock", NULL, out,
                                      sizeof(out), &guessed),
                     WA_OK);
    assert_string_equal(out, "ipc:///tmp/ss.sock");
}

/* Is a an address of one of this host's interfaces? */
static bool on_this_host(const struct in_addr *a)
{
    struct ifaddrs *ifs, *i;
    bool found = false;

    assert_int_equal(getifaddrs(&ifs), 0);
    for (i = ifs; i != NULL && !found; i = i->ifa_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

        found = sin != NULL && sin->sin_family == AF_INET &&
                sin->sin_addr.s_addr == a->s_addr;
    }
    freeifaddrs(ifs);
    return found;
}

/* Every interface: an address of one of this host's interfaces (never the
 * wildcard), loopback only when nothing else is there, and the same
 * port. */
static void test_wildcard(void **state)
{
    static const char *const listens[] = {"tcp://0.0.0.0:5580", "tcp://*:5580",
                                          "tcp://[::]:5580"};
    char out[128], addr[64];
    struct in_addr a;
    bool guessed;
    (void)state;
    for (size_t i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
        assert_int_equal(
            ss_advertise_url(listens[i], NULL, out, sizeof(out), &guessed),
            WA_OK);
        assert_int_equal(sscanf(out, "tcp://%63[0-9.]:5580", addr), 1);
        assert_int_equal(strlen(out),
                         strlen("tcp://") + strlen(addr) + strlen(":5580"));
        assert_int_equal(inet_pton(AF_INET, addr, &a), 1);
        assert_true(a.s_addr != htonl(INADDR_ANY));
        assert_true(on_this_host(&a));
        assert_true(guessed == (strcmp(addr, "127.0.0.1") == 0));
    }
}

static void test_bad(void **state)
{
    char out[16];
    bool guessed;
    (void)state;
    assert_int_equal(
        ss_advertise_url("tcp://0.0.0.0:", NULL, out, sizeof(out), &guessed),
        WA_EINVAL);
    assert_int_equal(
        ss_advertise_url("tcp://0.0.0.0:55x", NULL, out, sizeof(out), &guessed),
        WA_EINVAL);
    assert_int_equal(ss_advertise_url("tcp://a-rather-long-host:5580", NULL,
                                      out, sizeof(out), &guessed),
                     WA_ETOOBIG);
    assert_int_equal(ss_advertise_url(NULL, NULL, out, sizeof(out), &guessed),
                     WA_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_given),
        cmocka_unit_test(test_wildcard),
        cmocka_unit_test(test_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
