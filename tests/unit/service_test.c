/* service_test.c - config failure exits 2 with one line; signals stop. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "free_port.h"
#include "wa/service.h"

/* Run fn in a child with stderr captured; return its exit status. */
static int run_child(void (*fn)(void), char *out, size_t outlen)
{
    int fds[2], status;
    size_t used = 0;
    ssize_t n;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    /* Read to EOF: stderr is unbuffered, the line comes in pieces. */
    while (used + 1 < outlen &&
           (n = read(fds[0], out + used, outlen - 1 - used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void bad_port(void)
{
    long port = 0;
    const wa_config_spec_t specs[] = {
        WA_CFG_INT_SPEC("T_SVC_PORT", &port, "1", 1, 10),
    };

    setenv("T_SVC_PORT", "11", 1);
    wa_service_load_config("svc", specs, 1);
}

static void test_config_failure_exits_2(void **state)
{
    char out[512];

    (void)state;
    assert_int_equal(run_child(bad_port, out, sizeof(out)), WA_EXIT_CONFIG);
    assert_string_equal(out, "svc: configuration: T_SVC_PORT: must be an "
                             "integer in 1..10, got \"11\"\n");
}

static void fail_direct(void)
{
    wa_service_config_fail("gw", "no %s", "secret");
}

static void test_config_fail(void **state)
{
    char out[512];

    (void)state;
    assert_int_equal(run_child(fail_direct, out, sizeof(out)), 2);
    assert_string_equal(out, "gw: no secret\n");
}

/* The address a service listens on, held: one line, exit status 2 (the
 * child exits with what wa_service_listen left in status). */
static char held_url[64];

static void listen_held(void)
{
    nng_socket s;
    int status = 1;

    if (wa_service_listen("st", WA_SOCK_REP, held_url, NULL, &s, &status) ==
        WA_OK)
        _exit(0);
    _exit(status);
}

static void test_listen_held_exits_2(void **state)
{
    struct sockaddr_in sa = {0};
    nng_socket b;
    int status = 1, port, fd;
    char out[512], want[256];

    (void)state;
    /* Held by a plain socket: nng must not run in this process before the
     * fork (its threads would not be in the child). */
    port = test_free_port();
    assert_true(port > 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    snprintf(held_url, sizeof(held_url), "tcp://127.0.0.1:%d", port);
    assert_int_equal(run_child(listen_held, out, sizeof(out)), WA_EXIT_CONFIG);
    snprintf(want, sizeof(want), "st: cannot listen on %s: %s\n", held_url,
             nng_strerror(NNG_EADDRINUSE));
    assert_string_equal(out, want);
    close(fd);
    /* Free again: opened, status untouched. */
    assert_int_equal(
        wa_service_listen("st", WA_SOCK_REP, held_url, NULL, &b, &status),
        WA_OK);
    assert_int_equal(status, 1);
    nng_close(b);
}

static void short_secret(void)
{
    wa_auth_opts_t o = {.jwt_secret = "short", .require_exp = true};

    wa_service_auth("nt", &o);
}

static void test_auth_failure_exits_2(void **state)
{
    wa_auth_opts_t o = {
        .jwt_secret = "0123456789abcdef0123456789abcdef",
        .require_exp = true,
    };
    wa_auth_t *auth;
    char out[512];

    (void)state;
    assert_int_equal(run_child(short_secret, out, sizeof(out)), 2);
    assert_string_equal(out, "nt: configuration: JWT_SECRET must be at least "
                             "32 bytes\n");
    auth = wa_service_auth("nt", &o);
    assert_non_null(auth);
    wa_auth_free(auth);
}

static void test_wait_times_out(void **state)
{
    long long t0;

    (void)state;
    assert_int_equal(wa_service_signals(), WA_OK);
    t0 = wa_now_ms();
    assert_false(wa_service_wait(50));
    assert_true(wa_now_ms() - t0 >= 50);
    assert_false(wa_service_stopping());
}

static void test_sigterm_wakes_wait(void **state)
{
    (void)state;
    assert_int_equal(wa_service_signals(), WA_OK);
    /* SIGPIPE is ignored: a write to a closed pipe must not kill us. */
    assert_int_equal(raise(SIGPIPE), 0);
    assert_int_equal(raise(SIGTERM), 0);
    assert_true(wa_service_stopping());
    assert_true(wa_service_wait(-1));
}

static void test_trim_when_idle(void **state)
{
    (void)state;
    /* Trims once, on the first still second after work. */
    assert_false(wa_service_trim_when_idle(0, NULL, NULL));
    assert_false(wa_service_trim_when_idle(0, NULL, NULL));
    assert_false(wa_service_trim_when_idle(5, NULL, NULL));
    assert_true(wa_service_trim_when_idle(5, NULL, NULL));
    assert_false(wa_service_trim_when_idle(5, NULL, NULL));
    assert_false(wa_service_trim_when_idle(7, NULL, NULL));
    assert_false(wa_service_trim_when_idle(9, NULL, NULL));
    assert_true(wa_service_trim_when_idle(9, NULL, NULL));
    assert_false(wa_service_trim_when_idle(9, NULL, NULL));
}

static void count_release(void *arg)
{
    (*(int *)arg)++;
}

/* The service's own release runs once per trim, and only then. */
static void test_trim_releases(void **state)
{
    int n = 0;

    (void)state;
    assert_false(wa_service_trim_when_idle(20, count_release, &n));
    assert_int_equal(n, 0);
    assert_true(wa_service_trim_when_idle(20, count_release, &n));
    assert_int_equal(n, 1);
    assert_false(wa_service_trim_when_idle(20, count_release, &n));
    assert_false(wa_service_trim_when_idle(21, count_release, &n));
    assert_int_equal(n, 1);
    assert_true(wa_service_trim_when_idle(21, count_release, &n));
    assert_int_equal(n, 2);
}

/* The re-executed test binary prints what it got (see main). */
static void tune_fresh(void)
{
    char *argv[] = {"service_test", "--print-tunables", NULL};

    unsetenv("GLIBC_TUNABLES");
    wa_service_tune_malloc(argv);
    _exit(3); /* not re-executed */
}

static void tune_preset(void)
{
    char *argv[] = {"service_test", "--print-tunables", NULL};

    setenv("GLIBC_TUNABLES", "glibc.malloc.check=0", 1);
    wa_service_tune_malloc(argv);
    _exit(4); /* the operator's setting wins: not re-executed */
}

static void test_tune_malloc(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(run_child(tune_fresh, out, sizeof(out)), 0);
    assert_string_equal(out, "glibc.malloc.tcache_count=0");
    assert_int_equal(run_child(tune_preset, out, sizeof(out)), 4);
    assert_string_equal(out, "");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-tunables") == 0) {
        const char *t = getenv("GLIBC_TUNABLES");

        fprintf(stderr, "%s", t != NULL ? t : "(none)");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_when_idle),
        cmocka_unit_test(test_trim_releases),
        cmocka_unit_test(test_tune_malloc),
        cmocka_unit_test(test_config_failure_exits_2),
        cmocka_unit_test(test_config_fail),
        cmocka_unit_test(test_auth_failure_exits_2),
        cmocka_unit_test(test_listen_held_exits_2),
        cmocka_unit_test(test_wait_times_out),
        cmocka_unit_test(test_sigterm_wakes_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
