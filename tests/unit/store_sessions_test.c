/*
 * store_sessions_test.c - store-svc/sessions.c: the user_sessions row as
 * session.get shows it, partial upserts, clearing, listing, counting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store_testlib.h"

typedef struct fx {
    char *dir;
    char *path;
    db_t *db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    f->dir = tl_tmpdir();
    f->path = tl_path(f->dir, "sessions.db");
    f->db = tl_open(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    db__close(f->db);
    free(f->path);
    tl_rmrf(f->dir);
    free(f);
    return 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_non_null(v);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_unknown_user(void **state)
{
    fx_t *f = *state;
    cJSON *row = NULL;
    static const char *const nulls[] = {
        "phoneNumber",  "displayName", "qrCode",    "connectedAt",
        "lastActivity", "createdAt",   "updatedAt",
    };

    assert_int_equal(sessions__get(&f->db->rd, "nobody", 0, &row), WA_OK);
    assert_string_equal(str(row, "userId"), "nobody");
    assert_string_equal(str(row, "status"), "disconnected");
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(row, nulls[i])));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(row, "instanceAlive")));
    assert_int_equal(cJSON_GetArraySize(row), 10);
    cJSON_Delete(row);
}

static bool instance_alive(fx_t *f, const char *user, int64_t now_ms)
{
    cJSON *row = NULL;
    bool alive;

    assert_int_equal(sessions__get(&f->db->rd, user, now_ms, &row), WA_OK);
    alive = cJSON_IsTrue(cJSON_GetObjectItem(row, "instanceAlive"));
    assert_true(alive ||
                cJSON_IsFalse(cJSON_GetObjectItem(row, "instanceAlive")));
    cJSON_Delete(row);
    return alive;
}

/* instanceAlive: placed on an instance heard from within
 * STORE_DEAD_AFTER_MS. Unplaced, or placed on one gone silent: false. */
static void test_instance_alive(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1000000;
    session_update_t u = {.status = {true, "ready"}};
    placement_t p;
    cJSON *row = NULL;

    assert_int_equal(sessions__upsert(&f->db->wr, "u1", &u, "t", &row), WA_OK);
    cJSON_Delete(row);
    assert_false(instance_alive(f, "u1", t0));
    assert_int_equal(
        placement__register(&f->db->wr, "i1", "tcp://127.0.0.1:1", 5, t0),
        WA_OK);
    assert_int_equal(placement__resolve(&f->db->wr, "u1", t0, "t", &p), WA_OK);
    assert_true(instance_alive(f, "u1", t0));
    assert_true(instance_alive(f, "u1", t0 + STORE_DEAD_AFTER_MS));
    assert_false(instance_alive(f, "u1", t0 + STORE_DEAD_AFTER_MS + 1));
    /* A heartbeat brings it back. */
    assert_int_equal(
        placement__heartbeat(&f->db->wr, "i1", 1, t0 + STORE_DEAD_AFTER_MS - 1),
        WA_OK);
    assert_true(instance_alive(f, "u1", t0 + STORE_DEAD_AFTER_MS + 1));
    /* Another user's placement says nothing of this one. */
    assert_false(instance_alive(f, "u2", t0));
}

static void test_upsert_partial_and_clear(void **state)
{
    fx_t *f = *state;
    session_update_t u = {
        .status = {true, "qr"},
        .qr = {true, "2@abc,def,ghi,jkl"},
        .phone = {true, "+41791234567"},
    };
    cJSON *row = NULL;

    assert_int_equal(sessions__upsert(&f->db->wr, "u1", &u,
                                      "2026-01-01T00:00:00.000Z", &row),
                     WA_OK);
    assert_string_equal(str(row, "status"), "qr");
    assert_string_equal(str(row, "qrCode"), "2@abc,def,ghi,jkl");
    assert_string_equal(str(row, "createdAt"), "2026-01-01T00:00:00.000Z");
    assert_string_equal(str(row, "updatedAt"), "2026-01-01T00:00:00.000Z");
    assert_null(str(row, "displayName"));
    cJSON_Delete(row);

    /* Only what is set changes; null clears; created_at stays. */
    memset(&u, 0, sizeof(u));
    u.status = (session_field_t){true, "ready"};
    u.qr = (session_field_t){true, NULL};
    u.name = (session_field_t){true, "Dr Müller"};
    u.connected_at = (session_field_t){true, "2026-01-01T00:00:05.000Z"};
    assert_int_equal(sessions__upsert(&f->db->wr, "u1", &u,
                                      "2026-01-01T00:00:06.000Z", &row),
                     WA_OK);
    cJSON_Delete(row);
    assert_int_equal(sessions__get(&f->db->rd, "u1", 0, &row), WA_OK);
    assert_string_equal(str(row, "status"), "ready");
    assert_null(str(row, "qrCode"));
    assert_string_equal(str(row, "displayName"), "Dr Müller");
    assert_string_equal(str(row, "phoneNumber"), "+41791234567");
    assert_string_equal(str(row, "connectedAt"), "2026-01-01T00:00:05.000Z");
    assert_string_equal(str(row, "createdAt"), "2026-01-01T00:00:00.000Z");
    assert_string_equal(str(row, "updatedAt"), "2026-01-01T00:00:06.000Z");
    cJSON_Delete(row);

    /* An empty update only touches updated_at. */
    memset(&u, 0, sizeof(u));
    assert_int_equal(sessions__upsert(&f->db->wr, "u1", &u,
                                      "2026-01-01T00:00:07.000Z", &row),
                     WA_OK);
    assert_string_equal(str(row, "status"), "ready");
    assert_string_equal(str(row, "updatedAt"), "2026-01-01T00:00:07.000Z");
    cJSON_Delete(row);

    /* A status cannot be cleared. */
    u.status = (session_field_t){true, NULL};
    assert_int_equal(sessions__upsert(&f->db->wr, "u1", &u, "x", &row),
                     WA_EINVAL);
}

/* A new row without a status is "disconnected". */
static void test_new_row_default_status(void **state)
{
    fx_t *f = *state;
    session_update_t u = {.name = {true, "n"}};
    cJSON *row = NULL;

    assert_int_equal(sessions__upsert(&f->db->wr, "fresh", &u, "t", &row),
                     WA_OK);
    assert_string_equal(str(row, "status"), "disconnected");
    cJSON_Delete(row);
}

/* Hostile user ids are data, never SQL. */
static void test_hostile_user_ids(void **state)
{
    fx_t *f = *state;
    const char *evil = "x'); DROP TABLE user_sessions; --";
    session_update_t u = {.status = {true, "error"}};
    cJSON *row = NULL;

    assert_int_equal(sessions__upsert(&f->db->wr, evil, &u, "t", &row), WA_OK);
    cJSON_Delete(row);
    assert_int_equal(sessions__get(&f->db->rd, evil, 0, &row), WA_OK);
    assert_string_equal(str(row, "userId"), evil);
    assert_string_equal(str(row, "status"), "error");
    cJSON_Delete(row);
    assert_int_equal(sessions__get(&f->db->rd, "x", 0, &row), WA_OK);
    assert_string_equal(str(row, "status"), "disconnected");
    cJSON_Delete(row);
}

static void test_list_and_counts(void **state)
{
    fx_t *f = *state;
    static const char *const users[] = {"c", "a", "d", "b"};
    static const char *const statuses[] = {"ready", "qr", "ready", "error"};
    session_update_t u = {0};
    placement_t p;
    cJSON *res = NULL, *arr, *counts = NULL;

    for (int i = 0; i < 4; i++) {
        u.status = (session_field_t){true, statuses[i]};
        assert_int_equal(sessions__upsert(&f->db->wr, users[i], &u, "t", &res),
                         WA_OK);
        cJSON_Delete(res);
    }
    assert_int_equal(
        placement__register(&f->db->wr, "i1", "tcp://h:1", 10, 1000), WA_OK);
    assert_int_equal(placement__resolve(&f->db->wr, "b", 1000, "t", &p), WA_OK);

    assert_int_equal(sessions__list(&f->db->rd, 2, 1, 1000, &res), WA_OK);
    arr = cJSON_GetObjectItem(res, "sessions");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "userId"), "b");
    assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "instance"), "i1");
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "instanceAlive")));
    assert_string_equal(str(cJSON_GetArrayItem(arr, 1), "userId"), "c");
    assert_null(str(cJSON_GetArrayItem(arr, 1), "instance"));
    assert_true(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "instanceAlive")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(arr, 0)), 11);
    cJSON_Delete(res);

    /* i1 silent for longer than STORE_DEAD_AFTER_MS: its users' sessions
     * run nowhere. */
    assert_int_equal(
        sessions__list(&f->db->rd, 1, 1, 1000 + STORE_DEAD_AFTER_MS + 1, &res),
        WA_OK);
    arr = cJSON_GetObjectItem(res, "sessions");
    assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "instance"), "i1");
    assert_true(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "instanceAlive")));
    cJSON_Delete(res);

    assert_int_equal(sessions__list(&f->db->rd, 10, 100, 1000, &res), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "sessions")),
                     0);
    cJSON_Delete(res);

    assert_int_equal(sessions__count_by_status(&f->db->rd, &counts), WA_OK);
    assert_int_equal(cJSON_GetArraySize(counts), 6);
    assert_int_equal(cJSON_GetObjectItem(counts, "ready")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(counts, "qr")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(counts, "error")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(counts, "disconnected")->valueint, 0);
    cJSON_Delete(counts);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_true(sessions__status_valid("disconnected"));
    assert_true(sessions__status_valid("initializing"));
    assert_true(sessions__status_valid("qr"));
    assert_true(sessions__status_valid("authenticated"));
    assert_true(sessions__status_valid("ready"));
    assert_true(sessions__status_valid("error"));
    assert_false(sessions__status_valid("Ready"));
    assert_false(sessions__status_valid(""));
    assert_false(sessions__status_valid("ready "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_partial_and_clear, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_row_default_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_user_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_counts, setup, teardown),
        cmocka_unit_test(test_status_names),
    };

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
