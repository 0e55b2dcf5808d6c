/*
 * store_placement_test.c - store-svc/placement.c (DESIGN §6): the instance
 * registry, liveness by the caller's clock (no sleeping: the tests pass
 * now_ms), rendezvous placement with capacity, stickiness, and moving the
 * users of a dead instance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_testlib.h"

#define T0 1795689600000LL /* 2026-11-26T10:40:00.000Z */

typedef struct fx {
    char *dir;
    char *path;
    db_t *db;
    db_conn_t *c;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    f->dir = tl_tmpdir();
    f->path = tl_path(f->dir, "placement.db");
    f->db = tl_open(f->path);
    f->c = &f->db->wr;
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

static void reg(fx_t *f, const char *inst, long cap, int64_t now)
{
    char url[64];

    snprintf(url, sizeof(url), "tcp://%s:5580", inst);
    assert_int_equal(placement__register(f->c, inst, url, cap, now), WA_OK);
}

static const char *resolve(fx_t *f, const char *user, int64_t now,
                           placement_t *p)
{
    assert_int_equal(placement__resolve(f->c, user, now, "t", p), WA_OK);
    return p->instance;
}

/* The instance rendezvous hashing should pick among names[0..n). */
static const char *best_of(const char *user, const char *const *names, int n)
{
    const char *best = NULL;
    uint64_t top = 0;

    for (int i = 0; i < n; i++) {
        uint64_t s = placement__score(user, names[i]);

        if (best == NULL || s > top) {
            top = s;
            best = names[i];
        }
    }
    return best;
}

static void test_score(void **state)
{
    static const char *const names[] = {"a", "b", "c", "d"};
    int counts[4] = {0};
    char user[16];

    (void)state;
    assert_true(placement__score("u", "i") == placement__score("u", "i"));
    assert_true(placement__score("u", "i") != placement__score("i", "u"));
    assert_true(placement__score("ab", "c") != placement__score("a", "bc"));
    /* Spread: 4000 users over 4 instances, each within 20% of 1000. */
    for (int i = 0; i < 4000; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        const char *b = best_of(user, names, 4);
        counts[b[0] - 'a']++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(counts[i] > 800 && counts[i] < 1200);
}

static void test_register_heartbeat_liveness(void **state)
{
    fx_t *f = *state;
    cJSON *res = NULL, *arr, *o;

    reg(f, "i1", 5, T0);
    assert_int_equal(placement__heartbeat(f->c, "i1", 3, T0 + 2000), WA_OK);
    assert_int_equal(placement__heartbeat(f->c, "nope", 0, T0), WA_ENOTFOUND);

    assert_int_equal(placement__instances(f->c, T0 + 2000, &res), WA_OK);
    arr = cJSON_GetObjectItem(res, "instances");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    o = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "instance")->valuestring, "i1");
    assert_string_equal(cJSON_GetObjectItem(o, "url")->valuestring,
                        "tcp://i1:5580");
    assert_int_equal(cJSON_GetObjectItem(o, "capacity")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(o, "sessions")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(o, "lastSeen")->valuestring,
                        "2026-11-26T10:40:02.000Z");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "alive")));
    assert_int_equal(cJSON_GetArraySize(o), 6);
    cJSON_Delete(res);

    /* Silent for exactly 10 s: still alive; one ms more: dead. */
    assert_int_equal(placement__instances(f->c, T0 + 12000, &res), WA_OK);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(res, "instances"), 0),
        "alive")));
    cJSON_Delete(res);
    assert_int_equal(placement__instances(f->c, T0 + 12001, &res), WA_OK);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(res, "instances"), 0),
        "alive")));
    cJSON_Delete(res);
    assert_int_equal(placement__instance_counts(f->c, T0 + 12001, &res), WA_OK);
    assert_int_equal(cJSON_GetObjectItem(res, "total")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(res, "alive")->valueint, 0);
    cJSON_Delete(res);

    /* A dead instance's heartbeat is refused: it must register again. */
    assert_int_equal(placement__heartbeat(f->c, "i1", 3, T0 + 12001),
                     WA_ENOTFOUND);
    reg(f, "i1", 5, T0 + 12002);
    assert_int_equal(placement__heartbeat(f->c, "i1", 3, T0 + 13000), WA_OK);
}

static void test_resolve_rendezvous_and_sticky(void **state)
{
    fx_t *f = *state;
    static const char *const names[] = {"alpha", "beta", "gamma"};
    char user[16];
    placement_t p;
    cJSON *users = NULL;
    int on_alpha = 0;

    reg(f, "alpha", 1000, T0);
    reg(f, "beta", 1000, T0);
    for (int i = 0; i < 50; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        assert_string_equal(resolve(f, user, T0, &p), best_of(user, names, 2));
        assert_string_equal(p.previous, "");
        if (strcmp(p.instance, "alpha") == 0)
            on_alpha++;
    }
    assert_string_equal(p.url, strcmp(p.instance, "alpha") == 0
                                   ? "tcp://alpha:5580"
                                   : "tcp://beta:5580");
    /* A new instance takes only new users: placed ones stay put. */
    reg(f, "gamma", 1000, T0 + 1000);
    for (int i = 0; i < 50; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        assert_string_equal(resolve(f, user, T0 + 1000, &p),
                            best_of(user, names, 2));
    }
    snprintf(user, sizeof(user), "new");
    assert_string_equal(resolve(f, user, T0 + 1000, &p),
                        best_of(user, names, 3));

    assert_int_equal(placement__users(f->c, "alpha", &users), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(users, "users")),
                     on_alpha + (strcmp(p.instance, "alpha") == 0));
    cJSON_Delete(users);
    assert_int_equal(placement__users(f->c, "nobody", &users), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(users, "users")),
                     0);
    cJSON_Delete(users);

    /* lookup (the read path) agrees and does not place anyone. */
    assert_int_equal(placement__lookup(f->c, "u0", T0 + 1000, &p), WA_OK);
    assert_int_equal(placement__lookup(f->c, "unplaced", T0 + 1000, &p),
                     WA_ENOTFOUND);
}

/* Give user a session status (what session-svc writes as it runs). */
static void set_status(fx_t *f, const char *user, const char *status)
{
    session_update_t u = {.status = {true, status}};
    cJSON *row = NULL;

    assert_int_equal(
        sessions__upsert(f->c, user, &u, "2026-11-26T10:40:00.000Z", &row),
        WA_OK);
    cJSON_Delete(row);
}

/* Capacity counts the placed users whose session is live: a placement
 * whose session is disconnected keeps its owner but takes no slot. */
static void test_capacity(void **state)
{
    fx_t *f = *state;
    placement_t p;
    char user[16];
    int on[2] = {0, 0};

    reg(f, "x", 2, T0);
    reg(f, "y", 3, T0);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "c%d", i);
        resolve(f, user, T0, &p);
        on[p.instance[0] - 'x']++;
        set_status(f, user, i % 2 ? "ready" : "initializing");
    }
    assert_int_equal(on[0], 2);
    assert_int_equal(on[1], 3);
    /* Full everywhere: alive, but no room (not "no instance"). */
    assert_int_equal(placement__resolve(f->c, "sixth", T0, "t", &p), WA_EFULL);
    /* A placed user still resolves. */
    assert_int_equal(placement__resolve(f->c, "c0", T0, "t", &p), WA_OK);
    /* One session ends: its slot is free again, its placement stays. */
    set_status(f, "c1", "disconnected");
    assert_int_equal(placement__resolve(f->c, "sixth", T0, "t", &p), WA_OK);
    assert_int_equal(placement__resolve(f->c, "c1", T0, "t", &p), WA_OK);
    /* No instance at all. */
    assert_int_equal(placement__resolve(f->c, "c0", T0 + 60000, "t", &p),
                     WA_ENOSESSIONSVC);
}

/* When an instance dies, its users (and only they) move to live ones. */
static void test_dead_owner_reassigned(void **state)
{
    fx_t *f = *state;
    static const char *const names[] = {"a", "b", "c"};
    char owner[40][STORE_INSTANCE_MAX + 1];
    char user[16];
    placement_t p;
    int64_t later = T0 + 10001;

    for (int i = 0; i < 3; i++)
        reg(f, names[i], 100, T0);
    for (int i = 0; i < 40; i++) {
        snprintf(user, sizeof(user), "d%d", i);
        snprintf(owner[i], sizeof(owner[i]), "%s", resolve(f, user, T0, &p));
    }
    /* b and c heartbeat; a falls silent. */
    assert_int_equal(placement__heartbeat(f->c, "b", 0, T0 + 5000), WA_OK);
    assert_int_equal(placement__heartbeat(f->c, "c", 0, T0 + 5000), WA_OK);
    for (int i = 0; i < 40; i++) {
        snprintf(user, sizeof(user), "d%d", i);
        resolve(f, user, later, &p);
        if (strcmp(owner[i], "a") == 0) {
            assert_string_equal(p.instance, best_of(user, names + 1, 2));
            assert_string_equal(p.previous, "a");
        } else {
            assert_string_equal(p.instance, owner[i]);
            assert_string_equal(p.previous, "");
        }
    }
    /* a comes back: nobody moves back (that would kill live browsers). */
    reg(f, "a", 100, later);
    for (int i = 0; i < 40; i++) {
        snprintf(user, sizeof(user), "d%d", i);
        assert_string_not_equal(resolve(f, user, later, &p), "a");
    }
}

/* Users of a long dead instance move without being asked, a batch at a
 * time; disconnected ones stay; a short silence moves nobody unasked. */
static void test_rescue(void **state)
{
    fx_t *f = *state;
    placement_t p;
    cJSON *on;
    char user[16];
    int moved;

    reg(f, "a", 100, T0);
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "r%02d", i);
        assert_string_equal(resolve(f, user, T0, &p), "a");
        set_status(f, user, i == 0 ? "disconnected" : "ready");
    }
    reg(f, "b", 100, T0 + 20000);
    /* a is dead (silent 20 s) but may be restarting: nobody moves unasked. */
    assert_int_equal(placement__rescue(f->c, T0 + 20000, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, 0);
    /* Silent past STORE_RESCUE_AFTER_MS: the 19 live sessions move. */
    assert_int_equal(placement__heartbeat(f->c, "b", 0, T0 + 29000), WA_OK);
    assert_int_equal(placement__rescue(f->c, T0 + 30001, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, STORE_RESCUE_BATCH);
    assert_int_equal(placement__rescue(f->c, T0 + 30001, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, 19 - STORE_RESCUE_BATCH);
    assert_int_equal(placement__rescue(f->c, T0 + 30001, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, 0);
    assert_int_equal(placement__users(f->c, "b", &on), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(on, "users")), 19);
    cJSON_Delete(on);
    assert_int_equal(placement__users(f->c, "a", &on), WA_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(on, "users")), 1);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(on, "users"), 0)->valuestring,
        "r00");
    cJSON_Delete(on);
    /* Nobody alive to take them: nothing moves, and that is no error. */
    set_status(f, "r00", "ready");
    assert_int_equal(placement__rescue(f->c, T0 + 90000, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, 0);
}

/* An instance live at the URL of one silent for 3 s replaced it (a
 * restart under a new id): that one is dead at once and its users move
 * now. One that heartbeats is never taken for gone. */
static void test_superseded(void **state)
{
    static const char url[] = "tcp://host-1:5580";
    fx_t *f = *state;
    cJSON *list, *row;
    placement_t p;
    int n, moved;

    assert_int_equal(placement__register(f->c, "old", url, 10, T0), WA_OK);
    assert_string_equal(resolve(f, "s1", T0, &p), "old");
    set_status(f, "s1", "ready");
    /* A new process at the URL 1 s after old's last heartbeat (a fast
     * restart, or two instances given one URL by mistake): nothing yet. */
    assert_int_equal(placement__heartbeat(f->c, "old", 1, T0 + 4000), WA_OK);
    assert_int_equal(placement__register(f->c, "new", url, 10, T0 + 5000),
                     WA_OK);
    assert_int_equal(placement__supersede(f->c, "new", T0 + 5000, &n), WA_OK);
    assert_int_equal(n, 0);
    assert_int_equal(placement__lookup(f->c, "s1", T0 + 5000, &p), WA_OK);
    assert_string_equal(p.instance, "old");
    /* new's next heartbeat, old silent 3.5 s: old is gone now, not 10 s
     * later, and s1 moves at once, not 30 s later. */
    assert_int_equal(placement__heartbeat(f->c, "new", 0, T0 + 7500), WA_OK);
    assert_int_equal(placement__supersede(f->c, "new", T0 + 7500, &n), WA_OK);
    assert_int_equal(n, 1);
    assert_int_equal(placement__instances(f->c, T0 + 7500, &list), WA_OK);
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(list, "instances"))
    {
        const cJSON *seen = cJSON_GetObjectItem(row, "lastSeen");
        bool is_new = strcmp(cJSON_GetObjectItem(row, "instance")->valuestring,
                             "new") == 0;

        /* The replaced one: dead, and no time of a last sign of life. */
        assert_true(is_new ? cJSON_IsString(seen) : cJSON_IsNull(seen));
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(row, "alive")) == is_new);
    }
    cJSON_Delete(list);
    assert_int_equal(placement__lookup(f->c, "s1", T0 + 7500, &p),
                     WA_ENOTFOUND);
    assert_int_equal(placement__rescue(f->c, T0 + 7500, "t", NULL, &moved),
                     WA_OK);
    assert_int_equal(moved, 1);
    assert_int_equal(placement__lookup(f->c, "s1", T0 + 7500, &p), WA_OK);
    assert_string_equal(p.instance, "new");
    /* Counted once; and two live ones at one URL leave each other be. */
    assert_int_equal(placement__supersede(f->c, "new", T0 + 8000, &n), WA_OK);
    assert_int_equal(n, 0);
    assert_int_equal(placement__register(f->c, "twin", url, 10, T0 + 8000),
                     WA_OK);
    for (int64_t t = T0 + 9000; t < T0 + 20000; t += 2000) {
        assert_int_equal(placement__heartbeat(f->c, "new", 1, t), WA_OK);
        assert_int_equal(placement__heartbeat(f->c, "twin", 0, t), WA_OK);
        assert_int_equal(placement__supersede(f->c, "new", t, &n), WA_OK);
        assert_int_equal(n, 0);
        assert_int_equal(placement__supersede(f->c, "twin", t, &n), WA_OK);
        assert_int_equal(n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score),
        cmocka_unit_test_setup_teardown(test_register_heartbeat_liveness, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_rendezvous_and_sticky,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_owner_reassigned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rescue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded, setup, teardown),
    };

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
