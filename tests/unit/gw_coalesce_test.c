/* gw_coalesce_test.c - single-flight: one leader per key, followers get its
 * answer, a published flight is never joined again, failures and timeouts,
 * forgetting a user's flights, many threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coalesce.h"
#include "wa/service.h"

static void test_leader_then_follower(void **state)
{
    gw_flights_t *f;
    gw_flight_t *a, *b, *c;
    const gw_answer_t *ans;
    bool leader;

    (void)state;
    assert_int_equal(gw_flights_new(&f), WA_OK);
    a = gw_flight_join(f, "/status\nu1\n", &leader);
    assert_non_null(a);
    assert_true(leader);
    b = gw_flight_join(f, "/status\nu1\n", &leader);
    assert_ptr_equal(a, b);
    assert_false(leader);
    /* Another user, another query: other flights. */
    c = gw_flight_join(f, "/status\nu2\n", &leader);
    assert_true(leader);
    assert_ptr_not_equal(a, c);
    assert_int_equal(gw_flights_active(f), 2);

    gw_flight_publish(f, a, 200, "application/json", "{\"x\":1}", 7,
                      "X-A: b\r\n");
    assert_int_equal(gw_flights_active(f), 1);
    assert_int_equal(gw_flight_wait(f, b, wa_now_ms() + 1000, &ans), WA_OK);
    assert_int_equal(ans->status, 200);
    assert_int_equal(ans->len, 7);
    assert_memory_equal(ans->body, "{\"x\":1}", 7);
    assert_string_equal(ans->ctype, "application/json");
    assert_string_equal(ans->extra, "X-A: b\r\n");

    /* Published: a new arrival leads a new flight. */
    b = gw_flight_join(f, "/status\nu1\n", &leader);
    assert_true(leader);
    assert_ptr_not_equal(a, b);
    gw_flight_publish(f, b, 204, "application/json", "", 0, NULL);
    gw_flight_leave(f, b);

    gw_flight_leave(f, a); /* the follower's reference */
    gw_flight_leave(f, a); /* the leader's */
    gw_flight_publish_failed(f, c);
    gw_flight_leave(f, c);
    assert_int_equal(gw_flights_active(f), 0);
    gw_flights_free(f);
}

static void test_failed_and_timeout(void **state)
{
    gw_flights_t *f;
    gw_flight_t *a, *b;
    const gw_answer_t *ans = NULL;
    bool leader;
    long long t0;

    (void)state;
    assert_int_equal(gw_flights_new(&f), WA_OK);
    a = gw_flight_join(f, "k", &leader);
    b = gw_flight_join(f, "k", &leader);
    t0 = wa_now_ms();
    assert_int_equal(gw_flight_wait(f, b, t0 + 50, &ans), WA_ETIMEDOUT);
    assert_true(wa_now_ms() - t0 >= 49);
    assert_null(ans);
    gw_flight_leave(f, b);
    b = gw_flight_join(f, "k", &leader);
    assert_false(leader);
    gw_flight_publish_failed(f, a);
    assert_int_equal(gw_flight_wait(f, b, wa_now_ms() + 1000, &ans),
                     WA_EINTERNAL);
    gw_flight_leave(f, b);
    gw_flight_leave(f, a);
    assert_int_equal(gw_flights_active(f), 0);
    gw_flights_free(f);
}

static void test_forget_user(void **state)
{
    gw_flights_t *f;
    gw_flight_t *a, *b, *c, *d;
    bool leader;

    (void)state;
    assert_int_equal(gw_flights_new(&f), WA_OK);
    a = gw_flight_join(f, "/status\nu1\n", &leader);
    b = gw_flight_join(f, "/logs\nu1\nlimit=5", &leader);
    c = gw_flight_join(f, "/status\nu10\n", &leader); /* not u1 */
    d = gw_flight_join(f, "/status\nu\n", &leader);   /* not u1 either */
    assert_int_equal(gw_flights_active(f), 4);
    gw_flights_forget_user(f, "u1");
    assert_int_equal(gw_flights_active(f), 2);
    /* After a write, the next read of u1 leads its own flight. */
    {
        gw_flight_t *e = gw_flight_join(f, "/status\nu1\n", &leader);

        assert_true(leader);
        assert_ptr_not_equal(e, a);
        gw_flight_publish_failed(f, e);
        gw_flight_leave(f, e);
    }
    /* Publishing a forgotten flight is harmless. */
    gw_flight_publish(f, a, 200, "t", "x", 1, NULL);
    gw_flight_publish(f, b, 200, "t", "x", 1, NULL);
    gw_flight_publish(f, c, 200, "t", "x", 1, NULL);
    gw_flight_publish(f, d, 200, "t", "x", 1, NULL);
    gw_flight_leave(f, a);
    gw_flight_leave(f, b);
    gw_flight_leave(f, c);
    gw_flight_leave(f, d);
    assert_int_equal(gw_flights_active(f), 0);
    gw_flights_free(f);
}

#define THREADS 16
#define ROUNDS 2000

typedef struct ctx {
    gw_flights_t *f;
    int leads, follows;
} ctx_t;

static void *racer(void *arg)
{
    ctx_t *c = arg;

    for (int i = 0; i < ROUNDS; i++) {
        char key[32];
        const gw_answer_t *ans;
        bool leader;
        gw_flight_t *fl;

        snprintf(key, sizeof(key), "k%d", i % 3);
        fl = gw_flight_join(c->f, key, &leader);
        assert_non_null(fl);
        if (leader) {
            c->leads++;
            gw_flight_publish(c->f, fl, 200, "t", key, strlen(key), NULL);
        } else {
            c->follows++;
            assert_int_equal(gw_flight_wait(c->f, fl, wa_now_ms() + 5000, &ans),
                             WA_OK);
            /* Always the answer for its own key. */
            assert_int_equal(ans->len, strlen(key));
            assert_memory_equal(ans->body, key, ans->len);
        }
        gw_flight_leave(c->f, fl);
    }
    return NULL;
}

static void test_many_threads(void **state)
{
    pthread_t th[THREADS];
    ctx_t c[THREADS];
    gw_flights_t *f;
    int leads = 0, follows = 0;

    (void)state;
    assert_int_equal(gw_flights_new(&f), WA_OK);
    for (int i = 0; i < THREADS; i++) {
        c[i] = (ctx_t){.f = f};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &c[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        leads += c[i].leads;
        follows += c[i].follows;
    }
    assert_int_equal(leads + follows, THREADS * ROUNDS);
    assert_true(leads > 0);
    assert_int_equal(gw_flights_active(f), 0);
    gw_flights_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_then_follower),
        cmocka_unit_test(test_failed_and_timeout),
        cmocka_unit_test(test_forget_user),
        cmocka_unit_test(test_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
