/* gw_logcache_test.c - kept GET /logs bodies: the body's exact text, a
 * key of user and limit compared byte for byte, replacement, the bounds
 * on entries and bytes, clearing, references that outlive their entry,
 * and many threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logcache.h"

static gw_logbody_t *body(const char *version, const char *rows)
{
    gw_logbody_t *b =
        gw_logbody_new(version, strlen(version), rows, strlen(rows));

    assert_non_null(b);
    return b;
}

static void test_body(void **state)
{
    char big[GW_LOGCACHE_VERSION_MAX + 2];
    gw_logbody_t *b = body("abc.7", "[{\"id\":7}]");

    (void)state;
    assert_string_equal(b->body, "{\"logs\":[{\"id\":7}]}");
    assert_int_equal(b->len, strlen(b->body));
    assert_string_equal(b->version, "abc.7");
    assert_int_equal(b->version_len, 5);
    gw_logbody_release(b);
    gw_logbody_release(NULL);

    /* Versions out of bounds are refused, not cut. */
    assert_null(gw_logbody_new("", 0, "[]", 2));
    assert_null(gw_logbody_new("a\0b", 3, "[]", 2));
    memset(big, 'v', sizeof(big));
    assert_null(gw_logbody_new(big, GW_LOGCACHE_VERSION_MAX + 1, "[]", 2));
    assert_non_null(b = gw_logbody_new(big, GW_LOGCACHE_VERSION_MAX, "[]", 2));
    gw_logbody_release(b);
}

/* The key is the whole user id and the limit: no prefix, no other limit,
 * no other user ever gets a body. */
static void test_key(void **state)
{
    gw_logcache_t *c;
    gw_logbody_t *b = body("e.1", "[1]"), *got;
    gw_logcache_stats_t st;

    (void)state;
    assert_int_equal(gw_logcache_new(&c), WA_OK);
    assert_null(gw_logcache_get(c, "doc1", 50));
    gw_logcache_put(c, "doc1", 50, b);
    gw_logbody_release(b);

    assert_non_null(got = gw_logcache_get(c, "doc1", 50));
    assert_string_equal(got->body, "{\"logs\":[1]}");
    gw_logbody_release(got);
    assert_null(gw_logcache_get(c, "doc1", 49));
    assert_null(gw_logcache_get(c, "doc", 50));
    assert_null(gw_logcache_get(c, "doc10", 50));
    assert_null(gw_logcache_get(c, "Doc1", 50));
    assert_null(gw_logcache_get(c, "", 50));

    gw_logcache_hit(c);
    gw_logcache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, strlen("{\"logs\":[1]}"));
    gw_logcache_free(c);
}

/* A newer body replaces the kept one; a reader of the old one keeps it
 * intact until it lets go (ASan would see a use after free). */
static void test_replace_and_clear(void **state)
{
    gw_logcache_t *c;
    gw_logbody_t *b1 = body("e.1", "[1]"), *b2 = body("e.2", "[2,1]");
    gw_logbody_t *held, *held2, *got;
    gw_logcache_stats_t st;

    (void)state;
    assert_int_equal(gw_logcache_new(&c), WA_OK);
    gw_logcache_put(c, "u", 50, b1);
    gw_logbody_release(b1);
    held = gw_logcache_get(c, "u", 50);
    gw_logcache_put(c, "u", 50, b2);
    gw_logbody_release(b2);
    assert_non_null(got = gw_logcache_get(c, "u", 50));
    assert_string_equal(got->version, "e.2");
    gw_logbody_release(got);
    assert_string_equal(held->body, "{\"logs\":[1]}");
    gw_logcache_stats(c, &st);
    assert_int_equal(st.entries, 1);

    held2 = gw_logcache_get(c, "u", 50);
    gw_logcache_clear(c);
    assert_null(gw_logcache_get(c, "u", 50));
    gw_logcache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_string_equal(held2->body, "{\"logs\":[2,1]}");
    gw_logbody_release(held2);
    gw_logbody_release(held);
    gw_logcache_free(c);
}

/* Neither bound is ever passed, the newest entry is kept, and a body
 * larger than a stripe's share is not kept at all. */
static void test_bounds(void **state)
{
    const size_t rows_len = 100 * 1024;
    char *rows = malloc(rows_len + 1), user[32];
    gw_logcache_t *c;
    gw_logcache_stats_t st;
    gw_logbody_t *b, *got;

    (void)state;
    assert_non_null(rows);
    assert_int_equal(gw_logcache_new(&c), WA_OK);
    memset(rows, '1', rows_len);
    rows[0] = '[';
    rows[rows_len - 1] = ']';
    rows[rows_len] = '\0';
    for (int i = 0; i < 200; i++) {
        snprintf(user, sizeof(user), "big-%d", i);
        b = body("e.1", rows);
        gw_logcache_put(c, user, 50, b);
        gw_logbody_release(b);
        gw_logcache_stats(c, &st);
        assert_true(st.bytes <= GW_LOGCACHE_BYTES);
        assert_non_null(got = gw_logcache_get(c, user, 50));
        gw_logbody_release(got);
    }
    assert_true(st.entries < 200);
    gw_logcache_clear(c);

    for (int i = 0; i < GW_LOGCACHE_MAX + 500; i++) {
        snprintf(user, sizeof(user), "small-%d", i);
        b = body("e.1", "[]");
        gw_logcache_put(c, user, 50, b);
        gw_logbody_release(b);
    }
    gw_logcache_stats(c, &st);
    assert_true(st.entries <= GW_LOGCACHE_MAX);
    assert_true(st.entries > GW_LOGCACHE_MAX / 2);
    gw_logcache_clear(c);

    rows = realloc(rows, GW_LOGCACHE_BYTES / 8);
    assert_non_null(rows);
    memset(rows, '1', GW_LOGCACHE_BYTES / 8 - 1);
    rows[0] = '[';
    rows[GW_LOGCACHE_BYTES / 8 - 2] = ']';
    rows[GW_LOGCACHE_BYTES / 8 - 1] = '\0';
    b = body("e.1", rows);
    gw_logcache_put(c, "huge", 50, b);
    gw_logbody_release(b);
    assert_null(gw_logcache_get(c, "huge", 50));
    free(rows);
    gw_logcache_free(c);
}

typedef struct worker {
    gw_logcache_t *c;
    int id;
    int wrong; /* bodies seen under another key (cmocka asserts only on
                  the main thread) */
} worker_t;

static void *churn(void *arg)
{
    worker_t *w = arg;
    char user[32], quoted[40], version[32], rows[64];

    for (int i = 0; i < 20000; i++) {
        gw_logbody_t *b;

        snprintf(user, sizeof(user), "user-%d", i % 37);
        snprintf(quoted, sizeof(quoted), "\"%s\"", user);
        if ((b = gw_logcache_get(w->c, user, 50)) != NULL) {
            /* Every body was made for its key: the user is in it. */
            if (strstr(b->body, quoted) == NULL)
                w->wrong++;
            gw_logbody_release(b);
        }
        if (i % 3 == w->id % 3) {
            snprintf(version, sizeof(version), "e.%d", i);
            snprintf(rows, sizeof(rows), "[\"%s\",%d]", user, i);
            b = body(version, rows);
            gw_logcache_put(w->c, user, 50, b);
            gw_logbody_release(b);
        }
        if (w->id == 0 && i % 997 == 0)
            gw_logcache_clear(w->c);
    }
    return NULL;
}

static void test_threads(void **state)
{
    enum { N = 8 };
    pthread_t t[N];
    worker_t w[N];
    gw_logcache_t *c;

    (void)state;
    assert_int_equal(gw_logcache_new(&c), WA_OK);
    for (int i = 0; i < N; i++) {
        w[i] = (worker_t){c, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].wrong, 0);
    }
    gw_logcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_replace_and_clear),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
