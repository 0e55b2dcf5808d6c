/*
 * store_idem_test.c - store-svc/idem.c: the rid cache. Keys are
 * (op, user, rid); a different fingerprint is a mismatch; duplicates of a
 * running request wait for its answer; failures are forgotten; entries
 * expire and are evicted by count and bytes. Times are passed in: no
 * sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_testlib.h"

#define OP WA_OP_LOG_APPEND

static idem_state_t begin(idem_t *c, const char *user, const char *rid,
                          uint64_t fp, void *waiter, int64_t now, char **reply)
{
    idem_state_t st;

    *reply = NULL;
    assert_int_equal(idem__begin(c, OP, user, rid, fp, waiter, now, &st, reply),
                     WA_OK);
    return st;
}

static void test_new_then_done(void **state)
{
    idem_t *c;
    char *reply;

    (void)state;
    assert_int_equal(idem__new(16, 1 << 20, 1000, &c), WA_OK);
    assert_int_equal(begin(c, "u", "r1", 7, NULL, 0, &reply), IDEM_NEW);
    assert_int_equal(idem__size(c), 0); /* pending entries do not count */
    idem__end(c, OP, "u", "r1", "{\"id\":1}", 0, NULL, NULL);
    assert_int_equal(idem__size(c), 1);
    assert_int_equal(begin(c, "u", "r1", 7, NULL, 10, &reply), IDEM_DONE);
    assert_string_equal(reply, "{\"id\":1}");
    free(reply);
    /* Same rid, different arguments. */
    assert_int_equal(begin(c, "u", "r1", 8, NULL, 10, &reply), IDEM_MISMATCH);
    assert_null(reply);
    /* Same rid from another user, or for another op: unrelated. */
    assert_int_equal(begin(c, "v", "r1", 7, NULL, 10, &reply), IDEM_NEW);
    idem__end(c, OP, "v", "r1", NULL, 10, NULL, NULL);
    {
        idem_state_t st;

        assert_int_equal(idem__begin(c, WA_OP_EVENT_RECORD, "u", "r1", 7, NULL,
                                     10, &st, &reply),
                         WA_OK);
        assert_int_equal(st, IDEM_NEW);
        idem__end(c, WA_OP_EVENT_RECORD, "u", "r1", NULL, 10, NULL, NULL);
    }
    /* Key parts cannot run into each other. */
    assert_int_equal(begin(c, "u\nr", "1", 7, NULL, 10, &reply), IDEM_NEW);
    idem__end(c, OP, "u\nr", "1", NULL, 10, NULL, NULL);
    idem__free(c);
}

typedef struct seen {
    int n;
    void *who[8];
} seen_t;

static void record(void *waiter, void *arg)
{
    seen_t *s = arg;

    s->who[s->n++] = waiter;
}

static void test_pending_waiters(void **state)
{
    int w1, w2;
    seen_t seen = {0};
    idem_t *c;
    char *reply;

    (void)state;
    assert_int_equal(idem__new(16, 1 << 20, 1000, &c), WA_OK);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 0, &reply), IDEM_NEW);
    assert_int_equal(begin(c, "u", "r", 1, &w1, 0, &reply), IDEM_PENDING);
    assert_int_equal(begin(c, "u", "r", 1, &w2, 0, &reply), IDEM_PENDING);
    assert_int_equal(begin(c, "u", "r", 2, &w2, 0, &reply), IDEM_MISMATCH);
    idem__end(c, OP, "u", "r", "{}", 0, record, &seen);
    /* Both waiters, in arrival order. */
    assert_int_equal(seen.n, 2);
    assert_ptr_equal(seen.who[0], &w1);
    assert_ptr_equal(seen.who[1], &w2);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 0, &reply), IDEM_DONE);
    free(reply);
    idem__free(c);
}

/* A failed request is not remembered: a retry runs again. Its waiters are
 * still answered. */
static void test_failure_forgotten(void **state)
{
    int w1;
    seen_t seen = {0};
    idem_t *c;
    char *reply;

    (void)state;
    assert_int_equal(idem__new(16, 1 << 20, 1000, &c), WA_OK);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 0, &reply), IDEM_NEW);
    assert_int_equal(begin(c, "u", "r", 1, &w1, 0, &reply), IDEM_PENDING);
    idem__end(c, OP, "u", "r", NULL, 0, record, &seen);
    assert_int_equal(seen.n, 1);
    assert_int_equal(idem__size(c), 0);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 0, &reply), IDEM_NEW);
    idem__end(c, OP, "u", "r", NULL, 0, NULL, NULL);
    /* Ending what was never begun is harmless. */
    idem__end(c, OP, "u", "never", "{}", 0, NULL, NULL);
    assert_int_equal(idem__size(c), 0);
    idem__free(c);
}

static void test_ttl(void **state)
{
    idem_t *c;
    char *reply;

    (void)state;
    assert_int_equal(idem__new(16, 1 << 20, 300000, &c), WA_OK);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 1000, &reply), IDEM_NEW);
    idem__end(c, OP, "u", "r", "{}", 1000, NULL, NULL);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 300999, &reply), IDEM_DONE);
    free(reply);
    assert_int_equal(begin(c, "u", "r", 1, NULL, 301000, &reply), IDEM_NEW);
    assert_int_equal(idem__size(c), 0);
    idem__end(c, OP, "u", "r", NULL, 301000, NULL, NULL);
    idem__free(c);
}

static void test_bounds(void **state)
{
    char rid[16], big[101];
    idem_t *c;
    char *reply;

    (void)state;
    /* By count: the oldest go first. */
    assert_int_equal(idem__new(4, 1 << 20, 1000, &c), WA_OK);
    for (int i = 0; i < 6; i++) {
        snprintf(rid, sizeof(rid), "r%d", i);
        assert_int_equal(begin(c, "u", rid, 1, NULL, i, &reply), IDEM_NEW);
        idem__end(c, OP, "u", rid, "{}", i, NULL, NULL);
    }
    assert_int_equal(idem__size(c), 4);
    assert_int_equal(begin(c, "u", "r0", 1, NULL, 6, &reply), IDEM_NEW);
    idem__end(c, OP, "u", "r0", NULL, 6, NULL, NULL);
    assert_int_equal(begin(c, "u", "r5", 1, NULL, 6, &reply), IDEM_DONE);
    free(reply);
    idem__free(c);

    /* By bytes: 100-byte replies, 250 bytes allowed. */
    memset(big, 'x', 100);
    big[100] = '\0';
    assert_int_equal(idem__new(100, 250, 1000, &c), WA_OK);
    for (int i = 0; i < 5; i++) {
        snprintf(rid, sizeof(rid), "b%d", i);
        assert_int_equal(begin(c, "u", rid, 1, NULL, 0, &reply), IDEM_NEW);
        idem__end(c, OP, "u", rid, big, 0, NULL, NULL);
    }
    assert_int_equal(idem__size(c), 2);
    assert_int_equal(begin(c, "u", "b4", 1, NULL, 0, &reply), IDEM_DONE);
    assert_int_equal(strlen(reply), 100);
    free(reply);
    idem__free(c);
}

/* Many threads on one cache: run under the sanitizers. */
typedef struct worker {
    idem_t *c;
    int n;
    int done, new_;
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;
    char rid[32];
    idem_state_t st;
    char *reply;

    for (int i = 0; i < 2000; i++) {
        /* Half the rids are shared between threads. */
        snprintf(rid, sizeof(rid), "r%d-%d", i % 2 ? w->n : 0, i);
        reply = NULL;
        if (idem__begin(w->c, OP, "u", rid, 1, w, i, &st, &reply) != WA_OK)
            continue;
        if (st == IDEM_NEW) {
            w->new_++;
            idem__end(w->c, OP, "u", rid, "{}", i, NULL, NULL);
        } else if (st == IDEM_DONE) {
            w->done++;
        }
        free(reply);
    }
    return NULL;
}

static void test_threads(void **state)
{
    worker_t w[8];
    pthread_t t[8];
    idem_t *c;

    (void)state;
    assert_int_equal(idem__new(1024, 1 << 20, 1000000, &c), WA_OK);
    for (int i = 0; i < 8; i++) {
        w[i] = (worker_t){.c = c, .n = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_true(idem__size(c) <= 1024);
    idem__free(c);
}

static void test_bad_params(void **state)
{
    idem_t *c = NULL;

    (void)state;
    assert_int_equal(idem__new(0, 1, 1, &c), WA_EINVAL);
    assert_int_equal(idem__new(1, 1, 0, &c), WA_EINVAL);
    assert_null(c);
    idem__free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_then_done),
        cmocka_unit_test(test_pending_waiters),
        cmocka_unit_test(test_failure_forgotten),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bad_params),
    };

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
