/*
 * ss_ridcache_test.c - wa.send's rid cache: a repeated rid gets the first
 * answer, a duplicate arriving while the first is in flight waits for it,
 * users never share entries, a reused rid with other arguments is a
 * conflict, unkept failures let a retry run, and entries expire and are
 * evicted (never while in flight).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "session.h"

static int woken;
static char woken_data[64];

static void wake(void *waiter, const rc_result_t *res)
{
    woken += *(int *)waiter;
    strcpy(woken_data, res->data != NULL ? res->data : res->message);
}

static void done_then_cached(void **state)
{
    ridcache_t *c;
    rc_result_t res = {0}, got;
    rc_state_t st;
    int one = 1;

    (void)state;
    woken = 0;
    assert_int_equal(ridcache__new(8, 1000, &c), WA_OK);
    assert_int_equal(ridcache__begin(c, "u1", "r1", 7, 0, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_NEW);
    /* in flight: duplicates wait */
    assert_int_equal(ridcache__begin(c, "u1", "r1", 7, 1, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_PENDING);
    assert_int_equal(ridcache__begin(c, "u1", "r1", 7, 1, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_PENDING);
    /* other user, same rid: independent */
    assert_int_equal(ridcache__begin(c, "u2", "r1", 7, 1, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_NEW);
    /* same rid, other arguments */
    assert_int_equal(ridcache__begin(c, "u1", "r1", 8, 1, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_MISMATCH);
    res.data = "{\"id\":\"m1\"}";
    ridcache__finish(c, "u1", "r1", &res, true, 2, wake);
    assert_int_equal(woken, 2);
    assert_string_equal(woken_data, "{\"id\":\"m1\"}");
    assert_int_equal(ridcache__begin(c, "u1", "r1", 7, 3, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_DONE);
    assert_string_equal(got.data, "{\"id\":\"m1\"}");
    free(got.data);
    /* expired after ttl: runs again */
    assert_int_equal(ridcache__begin(c, "u1", "r1", 7, 1003, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_NEW);
    ridcache__free(c);
}

static void unkept_failure_allows_retry(void **state)
{
    ridcache_t *c;
    rc_result_t res = {0}, got;
    rc_state_t st;
    int one = 1;

    (void)state;
    woken = 0;
    assert_int_equal(ridcache__new(8, 1000, &c), WA_OK);
    assert_int_equal(ridcache__begin(c, "u1", "r2", 1, 0, &one, &st, &got),
                     WA_OK);
    assert_int_equal(ridcache__begin(c, "u1", "r2", 1, 0, &one, &st, &got),
                     WA_OK);
    res.err = WA_ENOTREADY;
    strcpy(res.message, "not ready");
    ridcache__finish(c, "u1", "r2", &res, false, 1, wake);
    assert_int_equal(woken, 1);
    assert_string_equal(woken_data, "not ready");
    assert_int_equal(ridcache__size(c), 0);
    assert_int_equal(ridcache__begin(c, "u1", "r2", 1, 2, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_NEW);
    /* a kept failure is answered again, not retried */
    res.err = WA_ETIMEDOUT;
    ridcache__finish(c, "u1", "r2", &res, true, 3, wake);
    assert_int_equal(ridcache__begin(c, "u1", "r2", 1, 4, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_DONE);
    assert_int_equal(got.err, WA_ETIMEDOUT);
    ridcache__free(c);
}

static void bounded(void **state)
{
    ridcache_t *c;
    rc_result_t res = {0}, got;
    rc_state_t st;
    char rid[16];
    int one = 1;

    (void)state;
    assert_int_equal(ridcache__new(4, 100000, &c), WA_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(rid, sizeof(rid), "r%d", i);
        assert_int_equal(ridcache__begin(c, "u", rid, 1, 0, &one, &st, &got),
                         WA_OK);
    }
    /* four in flight: a fifth is refused, none evicted */
    assert_int_equal(ridcache__begin(c, "u", "r9", 1, 0, &one, &st, &got),
                     WA_EFULL);
    res.data = "{}";
    ridcache__finish(c, "u", "r0", &res, true, 1, NULL);
    assert_int_equal(ridcache__begin(c, "u", "r9", 1, 2, &one, &st, &got),
                     WA_OK);
    assert_int_equal(st, RC_NEW);
    assert_int_equal(ridcache__size(c), 4);
    /* "u\nr" keys: user "u\nr" + rid "0" cannot collide with "u"+"r0"
     * because user ids never hold a newline (wa_check_user). */
    ridcache__free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(done_then_cached),
        cmocka_unit_test(unkept_failure_allows_retry),
        cmocka_unit_test(bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
