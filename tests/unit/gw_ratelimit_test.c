/* gw_ratelimit_test.c - per-user token buckets: burst, refill, Retry-After,
 * users apart, eviction and its bound, many threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define T0 1000000 /* an arbitrary monotonic start, ms */

static void test_bad_arguments(void **state)
{
    gw_ratelimit_t *rl = NULL;

    (void)state;
    assert_int_equal(gw_ratelimit_new(0, 10, 1024, &rl), WA_EINVAL);
    assert_int_equal(gw_ratelimit_new(10, 0, 1024, &rl), WA_EINVAL);
    assert_int_equal(gw_ratelimit_new(10, 10, GW_RL_STRIPES - 1, &rl),
                     WA_EINVAL);
    assert_null(rl);
}

static void test_burst_then_refused(void **state)
{
    gw_ratelimit_t *rl;
    long retry = 0;

    (void)state;
    assert_int_equal(gw_ratelimit_new(2, 5, 1024, &rl), WA_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_ERATELIMIT);
    /* 2 per second: the next token is 0.5 s away, rounded up to 1 s. */
    assert_int_equal(retry, 1);
    gw_ratelimit_free(rl);
}

static void test_refill(void **state)
{
    gw_ratelimit_t *rl;
    long retry = 0;

    (void)state;
    assert_int_equal(gw_ratelimit_new(10, 3, 1024, &rl), WA_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_ERATELIMIT);
    /* 10/s: after 99 ms still nothing, after 100 ms one token. */
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 99, &retry),
                     WA_ERATELIMIT);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 100, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 100, &retry),
                     WA_ERATELIMIT);
    /* A long pause refills to the burst, never beyond it. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 60000, &retry),
                         WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 60000, &retry),
                     WA_ERATELIMIT);
    /* A clock that does not move forward (or goes back) adds nothing. */
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_ERATELIMIT);
    gw_ratelimit_free(rl);
}

static void test_retry_after(void **state)
{
    gw_ratelimit_t *rl;
    long retry = 0;

    (void)state;
    /* 0.2 tokens per second is not expressible (rps is whole), so use
     * rps 1 and a burst of 1: an empty bucket is 1 s from a token. */
    assert_int_equal(gw_ratelimit_new(1, 1, 1024, &rl), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_ERATELIMIT);
    assert_int_equal(retry, 1);
    /* 0.6 s later: 0.4 s to go, still reported as a whole second. */
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0 + 600, &retry),
                     WA_ERATELIMIT);
    assert_int_equal(retry, 1);
    gw_ratelimit_free(rl);

    /* Fast refill: less than a second away is still at least 1. */
    assert_int_equal(gw_ratelimit_new(1000, 1, 1024, &rl), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "u1", T0, &retry), WA_ERATELIMIT);
    assert_int_equal(retry, 1);
    gw_ratelimit_free(rl);
}

static void test_users_apart(void **state)
{
    gw_ratelimit_t *rl;
    long retry = 0;

    (void)state;
    assert_int_equal(gw_ratelimit_new(1, 2, 1024, &rl), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "alice", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "alice", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "alice", T0, &retry), WA_ERATELIMIT);
    /* Bob, and a user whose id starts like Alice's, have their own. */
    assert_int_equal(gw_ratelimit_take(rl, "bob", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "alice2", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_take(rl, "alic", T0, &retry), WA_OK);
    assert_int_equal(gw_ratelimit_count(rl), 4);
    gw_ratelimit_free(rl);
}

static void test_idle_buckets_evicted(void **state)
{
    const size_t max = GW_RL_STRIPES * 4; /* 4 buckets per stripe */
    gw_ratelimit_t *rl;
    char user[32];
    long retry = 0;

    (void)state;
    assert_int_equal(gw_ratelimit_new(10, 10, max, &rl), WA_OK);
    /* Many more users than buckets: the count never passes the bound, and
     * each new user still gets a full burst. */
    for (int i = 0; i < 10000; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        assert_int_equal(gw_ratelimit_take(rl, user, T0 + i, &retry), WA_OK);
        assert_true(gw_ratelimit_count(rl) <= max);
    }
    assert_int_equal(gw_ratelimit_count(rl), max);
    /* An hour later every bucket is full again, hence idle: one new user
     * sweeps its stripe, freeing all four and keeping only itself. */
    assert_int_equal(gw_ratelimit_take(rl, "late", T0 + 3600000, &retry),
                     WA_OK);
    assert_int_equal(gw_ratelimit_count(rl), max - 3);
    gw_ratelimit_free(rl);
}

static void test_periodic_sweep(void **state)
{
    gw_ratelimit_t *rl;
    char user[32];
    long retry = 0;
    size_t before;

    (void)state;
    /* Plenty of room: no stripe ever fills, idle buckets still go. */
    assert_int_equal(gw_ratelimit_new(10, 10, 65536, &rl), WA_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        assert_int_equal(gw_ratelimit_take(rl, user, T0, &retry), WA_OK);
    }
    before = gw_ratelimit_count(rl);
    assert_int_equal(before, 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "later-%d", i);
        assert_int_equal(gw_ratelimit_take(rl, user, T0 + 120000, &retry),
                         WA_OK);
    }
    /* Every stripe got a new user after more than a minute, and swept. */
    assert_int_equal(gw_ratelimit_count(rl), 1000);
    gw_ratelimit_free(rl);
}

static void test_lru_when_all_active(void **state)
{
    const size_t max = GW_RL_STRIPES; /* one bucket per stripe */
    gw_ratelimit_t *rl;
    char user[32];
    long retry = 0;

    (void)state;
    assert_int_equal(gw_ratelimit_new(1, 1, max, &rl), WA_OK);
    /* Buckets that are not idle (empty, refill 1 s away) are evicted only
     * when a stripe is full of them, least recently used first: the bound
     * holds, and the evicted user is let in again (lenient, never the
     * other way). */
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "active-%d", i);
        assert_int_equal(gw_ratelimit_take(rl, user, T0 + i / 100, &retry),
                         WA_OK);
        assert_int_equal(gw_ratelimit_take(rl, user, T0 + i / 100, &retry),
                         WA_ERATELIMIT);
        assert_true(gw_ratelimit_count(rl) <= max);
    }
    gw_ratelimit_free(rl);
}

#define THREADS 8
#define TAKES 20000

typedef struct worker {
    gw_ratelimit_t *rl;
    const char *user;
    int ok;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    long retry;

    for (int i = 0; i < TAKES; i++) {
        if (gw_ratelimit_take(w->rl, w->user, T0, &retry) == WA_OK)
            w->ok++;
    }
    return NULL;
}

static void test_many_threads(void **state)
{
    worker_t w[THREADS];
    pthread_t th[THREADS];
    gw_ratelimit_t *rl;
    int shared_ok = 0;

    (void)state;
    /* The clock stands still: exactly `burst` takes may succeed per user,
     * however the threads interleave. */
    assert_int_equal(gw_ratelimit_new(1, 1000, 4096, &rl), WA_OK);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.rl = rl, .user = i % 2 ? "shared" : "own"};
        if (i % 2 == 0) {
            static char names[THREADS][16];
            snprintf(names[i], sizeof(names[i]), "own-%d", i);
            w[i].user = names[i];
        }
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (i % 2 == 0)
            assert_int_equal(w[i].ok, 1000);
        else
            shared_ok += w[i].ok;
    }
    assert_int_equal(shared_ok, 1000);
    assert_int_equal(gw_ratelimit_count(rl), THREADS / 2 + 1);
    gw_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_users_apart),
        cmocka_unit_test(test_idle_buckets_evicted),
        cmocka_unit_test(test_periodic_sweep),
        cmocka_unit_test(test_lru_when_all_active),
        cmocka_unit_test(test_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
