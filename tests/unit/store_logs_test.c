/*
 * store_logs_test.c - store-svc/logs.c and the group-commit writer
 * (writer.c): rows newest first per user, the event sequence, and that a
 * job's done always follows the commit of its row, with many rows per
 * transaction under concurrency, a failing job undoing only itself, and a
 * drain on stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_testlib.h"
#include "wa/json.h"

typedef struct fx {
    char *dir;
    char *path;
    db_t *db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    f->dir = tl_tmpdir();
    f->path = tl_path(f->dir, "logs.db");
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

/* All rows, counted from scratch. */
static int64_t count_rows(fx_t *f)
{
    int64_t rows = 0, max_id = 0;

    assert_int_equal(logs__count(&f->db->rd, &rows, &max_id), WA_OK);
    return rows;
}

/* The answer as the bus carries it: eventData goes out as the stored text
 * (raw), so read it back the way a client does. */
static void test_append_list(void **state)
{
    fx_t *f = *state;
    cJSON *res = NULL, *logs, *row;
    int64_t id, ids[5];
    char data[32];

    for (int i = 0; i < 5; i++) {
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        assert_int_equal(logs__append(&f->db->wr, "u1", "message", data,
                                      "2026-01-01T00:00:00.000Z", &ids[i]),
                         WA_OK);
        assert_int_equal(logs__append(&f->db->wr, "u2", "status", "null",
                                      "2026-01-01T00:00:00.000Z", &id),
                         WA_OK);
    }
    assert_int_equal(logs__list(&f->db->rd, "u1", 3, NULL, &res), WA_OK);
    res = tl_as_sent(res);
    logs = cJSON_GetObjectItem(res, "logs");
    assert_int_equal(cJSON_GetArraySize(logs), 3);
    for (int i = 0; i < 3; i++) {
        row = cJSON_GetArrayItem(logs, i);
        assert_int_equal(cJSON_GetObjectItem(row, "id")->valuedouble,
                         (double)ids[4 - i]);
        assert_string_equal(cJSON_GetObjectItem(row, "eventType")->valuestring,
                            "message");
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(row, "eventData"), "n")
                ->valueint,
            4 - i);
        assert_string_equal(cJSON_GetObjectItem(row, "timestamp")->valuestring,
                            "2026-01-01T00:00:00.000Z");
        assert_int_equal(cJSON_GetArraySize(row), 4);
    }
    cJSON_Delete(res);
    /* JSON null is data too. */
    assert_int_equal(logs__list(&f->db->rd, "u2", 1, NULL, &res), WA_OK);
    res = tl_as_sent(res);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(res, "logs"), 0), "eventData")));
    cJSON_Delete(res);
    /* Stored text that is not JSON (or not quite) goes out as a string,
     * never spliced into the answer. */
    assert_int_equal(logs__append(&f->db->wr, "u4", "message", "plain \"text",
                                  "2026-01-01T00:00:00.000Z", &id),
                     WA_OK);
    assert_int_equal(logs__append(&f->db->wr, "u4", "message", "{\"a\":1",
                                  "2026-01-01T00:00:00.000Z", &id),
                     WA_OK);
    assert_int_equal(logs__list(&f->db->rd, "u4", 2, NULL, &res), WA_OK);
    res = tl_as_sent(res);
    logs = cJSON_GetObjectItem(res, "logs");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 0), "eventData")
            ->valuestring,
        "{\"a\":1");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 1), "eventData")
            ->valuestring,
        "plain \"text");
    cJSON_Delete(res);
    assert_int_equal(logs__list(&f->db->rd, "u3", 500, NULL, &res), WA_OK);
    res = tl_as_sent(res);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(res, "logs")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "logs")), 0);
    cJSON_Delete(res);
    assert_int_equal(count_rows(f), 12);
}

/* The answer is written as text: every byte of stored text that is not
 * JSON comes back exactly, escaped, and the whole answer is valid JSON. */
static void test_list_text_escaped(void **state)
{
    static const char odd[] = "a\x01b\x1f\n\r\t\b\f\"q\\ \xc3\xa9 </script>";
    fx_t *f = *state;
    cJSON *res = NULL, *row;
    int64_t id;

    assert_int_equal(logs__append(&f->db->wr, "u5", "message", odd,
                                  "2026-01-01T00:00:00.000Z", &id),
                     WA_OK);
    assert_int_equal(logs__list(&f->db->rd, "u5", 50, NULL, &res), WA_OK);
    assert_true(cJSON_IsRaw(res));
    assert_int_equal(
        wa_json_check(res->valuestring, strlen(res->valuestring), NULL), WA_OK);
    res = tl_as_sent(res);
    row = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "logs"), 0);
    assert_string_equal(cJSON_GetObjectItem(row, "eventData")->valuestring,
                        odd);
    assert_int_equal((int64_t)cJSON_GetObjectItem(row, "id")->valuedouble, id);
    cJSON_Delete(res);
}

/* Stored text that SQLite's json_valid() accepts but every reader of the
 * answer refuses (\u0000, a lone surrogate) goes out as a string: spliced
 * in, it would make the user's whole answer unreadable. */
static void test_list_reader_strict(void **state)
{
    static const char *const odd[] = {"{\"a\":\"\\u0000\"}", "[\"\\ud800\"]"};
    fx_t *f = *state;
    cJSON *res = NULL, *logs;
    int64_t id;
    size_t i;

    for (i = 0; i < 2; i++)
        assert_int_equal(logs__append(&f->db->wr, "u6", "message", odd[i],
                                      "2026-01-01T00:00:00.000Z", &id),
                         WA_OK);
    assert_int_equal(logs__list(&f->db->rd, "u6", 50, NULL, &res), WA_OK);
    assert_true(cJSON_IsRaw(res));
    assert_int_equal(
        wa_json_check(res->valuestring, strlen(res->valuestring), NULL), WA_OK);
    res = tl_as_sent(res);
    logs = cJSON_GetObjectItem(res, "logs");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 0), "eventData")
            ->valuestring,
        odd[1]);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 1), "eventData")
            ->valuestring,
        odd[0]);
    cJSON_Delete(res);
}

static int cache_used(db_conn_t *c)
{
    int cur = 0, hi = 0;

    assert_int_equal(
        sqlite3_db_status(c->h, SQLITE_DBSTATUS_CACHE_USED, &cur, &hi, 0),
        SQLITE_OK);
    return cur;
}

/* An idle store gives its page caches back: the read connection's under
 * the read lock, the write connection's on the writer thread. */
static void test_release_memory(void **state)
{
    fx_t *f = *state;
    writer_t *w = NULL;
    cJSON *res = NULL;
    int64_t id;
    char user[16];
    int before;

    assert_int_equal(db__exec(&f->db->wr, ST_BEGIN), WA_OK);
    for (int i = 0; i < 5000; i++) {
        snprintf(user, sizeof(user), "u%d", i % 10);
        assert_int_equal(logs__append(&f->db->wr, user, "message",
                                      "{\"body\":\"0123456789abcdef\"}",
                                      "2026-01-01T00:00:00.000Z", &id),
                         WA_OK);
    }
    assert_int_equal(db__exec(&f->db->wr, ST_COMMIT), WA_OK);
    assert_int_equal(logs__list(&f->db->rd, "u3", 500, NULL, &res), WA_OK);
    cJSON_Delete(res);
    before = cache_used(&f->db->rd);
    assert_true(before > 64 * 1024);
    db__release_memory(f->db);
    assert_true(cache_used(&f->db->rd) < before / 4);

    before = cache_used(&f->db->wr);
    assert_true(before > 64 * 1024);
    assert_int_equal(writer__start(f->db, &w), WA_OK);
    writer__release_memory(w);
    assert_true(cache_used(&f->db->wr) < before / 4);
    /* Stopped: returns at once, nothing to do. */
    writer__stop(w);
    writer__release_memory(w);
    writer__free(w);
    db__release_memory(NULL);
    writer__release_memory(NULL);
}

/* The count is incremental and stays exact. */
static void test_count_incremental(void **state)
{
    fx_t *f = *state;
    int64_t rows = 0, max_id = 0, id;

    assert_int_equal(logs__count(&f->db->rd, &rows, &max_id), WA_OK);
    assert_int_equal(rows, 0);
    assert_int_equal(max_id, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(logs__append(&f->db->wr, "u", "t", "1", "t", &id),
                         WA_OK);
    assert_int_equal(logs__count(&f->db->rd, &rows, &max_id), WA_OK);
    assert_int_equal(rows, 3);
    assert_int_equal(max_id, id);
    assert_int_equal(logs__count(&f->db->rd, &rows, &max_id), WA_OK);
    assert_int_equal(rows, 3);
    assert_int_equal(logs__append(&f->db->wr, "v", "t", "1", "t", &id), WA_OK);
    assert_int_equal(logs__count(&f->db->rd, &rows, &max_id), WA_OK);
    assert_int_equal(rows, 4);
}

static void test_seq_per_user_durable(void **state)
{
    fx_t *f = *state;
    int64_t seq;

    for (int i = 1; i <= 3; i++) {
        assert_int_equal(logs__next_seq(&f->db->wr, "a", &seq), WA_OK);
        assert_int_equal(seq, i);
    }
    assert_int_equal(logs__next_seq(&f->db->wr, "b", &seq), WA_OK);
    assert_int_equal(seq, 1);
    db__close(f->db);
    f->db = tl_open(f->path);
    assert_int_equal(logs__next_seq(&f->db->wr, "a", &seq), WA_OK);
    assert_int_equal(seq, 4);
}

/* ---- the writer ---- */

#define THREADS 8
#define PER_THREAD 250

typedef struct append_job {
    writer_job_t wj;
    db_t *db;
    char user[16];
    int64_t id;
    bool fail; /* exec inserts, then fails: its row must vanish */
    atomic_int *done_ok, *done_err, *visible_before_done;
} append_job_t;

static wa_err_t append_exec(writer_job_t *j, db_conn_t *c)
{
    append_job_t *a = (append_job_t *)j;
    wa_err_t e;

    e = logs__append(c, a->user, "t", "{}", "2026-01-01T00:00:00.000Z", &a->id);
    if (e == WA_OK && a->fail)
        return WA_EINVAL;
    return e;
}

/* The row must be visible to another connection when done runs: the
 * answer never precedes the commit. */
static void append_done(writer_job_t *j, wa_err_t err)
{
    append_job_t *a = (append_job_t *)j;
    sqlite3_stmt *st;
    db_conn_t *rd;
    int found = 0;

    if (err != WA_OK) {
        atomic_fetch_add(a->done_err, 1);
        free(a);
        return;
    }
    rd = db__read_begin(a->db);
    if (sqlite3_prepare_v2(rd->h,
                           "SELECT count(*) FROM session_logs WHERE "
                           "id = ?1",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, a->id) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        found = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    db__read_end(a->db);
    if (found == 1)
        atomic_fetch_add(a->visible_before_done, 1);
    atomic_fetch_add(a->done_ok, 1);
    free(a);
}

typedef struct counters {
    atomic_int ok, err, visible;
} counters_t;

static append_job_t *new_job(db_t *db, counters_t *k, const char *user,
                             bool fail)
{
    append_job_t *a = calloc(1, sizeof(*a));

    assert_non_null(a);
    a->wj.exec = append_exec;
    a->wj.done = append_done;
    a->db = db;
    a->fail = fail;
    snprintf(a->user, sizeof(a->user), "%s", user);
    a->done_ok = &k->ok;
    a->done_err = &k->err;
    a->visible_before_done = &k->visible;
    return a;
}

typedef struct submitter {
    writer_t *w;
    db_t *db;
    counters_t *k;
    int n;
    int failed_submits;
} submitter_t;

static void *submit_many(void *arg)
{
    submitter_t *s = arg;
    char user[16];

    for (int i = 0; i < PER_THREAD; i++) {
        append_job_t *a;

        snprintf(user, sizeof(user), "u%d", s->n);
        a = new_job(s->db, s->k, user, false);
        if (writer__submit(s->w, &a->wj) != WA_OK) {
            s->failed_submits++;
            free(a);
        }
    }
    return NULL;
}

static void wait_for(atomic_int *a, atomic_int *b, int want)
{
    for (int i = 0; i < 3000 && atomic_load(a) + atomic_load(b) < want; i++)
        usleep(10000);
}

static void test_group_commit(void **state)
{
    fx_t *f = *state;
    submitter_t subs[THREADS];
    pthread_t tids[THREADS];
    counters_t k = {0};
    writer_stats_t ws;
    writer_t *w;

    assert_int_equal(writer__start(f->db, &w), WA_OK);
    for (int i = 0; i < THREADS; i++) {
        subs[i] = (submitter_t){.w = w, .db = f->db, .k = &k, .n = i};
        assert_int_equal(pthread_create(&tids[i], NULL, submit_many, &subs[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(subs[i].failed_submits, 0);
    }
    wait_for(&k.ok, &k.err, THREADS * PER_THREAD);
    writer__stats(w, &ws);
    writer__free(w);

    assert_int_equal(atomic_load(&k.ok), THREADS * PER_THREAD);
    assert_int_equal(atomic_load(&k.err), 0);
    assert_int_equal(atomic_load(&k.visible), THREADS * PER_THREAD);
    assert_int_equal(count_rows(f), THREADS * PER_THREAD);
    assert_int_equal(ws.jobs, THREADS * PER_THREAD);
    /* Group commit: fewer transactions than rows. */
    assert_true(ws.batches < ws.jobs);
    assert_true(ws.max_batch > 1);
    print_message("%llu rows in %llu transactions, largest %llu\n",
                  (unsigned long long)ws.jobs, (unsigned long long)ws.batches,
                  (unsigned long long)ws.max_batch);
}

/* A job that holds the writer until released: what is submitted meanwhile
 * queues up and runs as the next batch. */
typedef struct gate {
    writer_job_t wj;
    sem_t entered, release;
} gate_t;

static wa_err_t gate_exec(writer_job_t *j, db_conn_t *c)
{
    gate_t *g = (gate_t *)j;

    (void)c;
    sem_post(&g->entered);
    sem_wait(&g->release);
    return WA_OK;
}

static void gate_done(writer_job_t *j, wa_err_t err)
{
    (void)j;
    (void)err;
}

/* A job that fails undoes its own row only; the batch commits. */
static void test_failing_job_alone(void **state)
{
    fx_t *f = *state;
    counters_t k = {0};
    append_job_t *jobs[3];
    gate_t g = {.wj = {.exec = gate_exec, .done = gate_done}};
    writer_stats_t ws;
    writer_t *w;

    sem_init(&g.entered, 0, 0);
    sem_init(&g.release, 0, 0);
    assert_int_equal(writer__start(f->db, &w), WA_OK);
    assert_int_equal(writer__submit(w, &g.wj), WA_OK);
    sem_wait(&g.entered);
    jobs[0] = new_job(f->db, &k, "a", false);
    jobs[1] = new_job(f->db, &k, "b", true);
    jobs[2] = new_job(f->db, &k, "c", false);
    for (int i = 0; i < 3; i++)
        assert_int_equal(writer__submit(w, &jobs[i]->wj), WA_OK);
    sem_post(&g.release);
    writer__stop(w); /* drains */
    writer__stats(w, &ws);
    writer__free(w);
    sem_destroy(&g.entered);
    sem_destroy(&g.release);
    assert_int_equal(ws.max_batch, 3); /* the three ran in one transaction */
    assert_int_equal(ws.batches, 2);
    assert_int_equal(atomic_load(&k.ok), 2);
    assert_int_equal(atomic_load(&k.err), 1);
    assert_int_equal(count_rows(f), 2);
    assert_int_equal(
        tl_scalar(&f->db->rd,
                  "SELECT count(*) FROM session_logs WHERE user_id = 'b'"),
        0);
}

/* Stop runs everything queued; later submits are refused. */
static void test_stop_drains(void **state)
{
    fx_t *f = *state;
    counters_t k = {0};
    append_job_t *a;
    writer_t *w;

    assert_int_equal(writer__start(f->db, &w), WA_OK);
    for (int i = 0; i < 1000; i++) {
        a = new_job(f->db, &k, "u", false);
        assert_int_equal(writer__submit(w, &a->wj), WA_OK);
    }
    writer__stop(w);
    assert_int_equal(atomic_load(&k.ok), 1000);
    a = new_job(f->db, &k, "u", false);
    assert_int_equal(writer__submit(w, &a->wj), WA_ECLOSED);
    free(a);
    writer__stop(w); /* idempotent */
    writer__free(w);
    assert_int_equal(count_rows(f), 1000);
}

/* A transaction that cannot start (another process holds the write lock
 * past busy_timeout) fails every job of the batch with WA_ESTORAGE. */
static void test_batch_failure(void **state)
{
    fx_t *f = *state;
    counters_t k = {0};
    append_job_t *a;
    sqlite3 *other;
    writer_t *w;

    assert_int_equal(sqlite3_exec(f->db->wr.h, "PRAGMA busy_timeout = 100",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(writer__start(f->db, &w), WA_OK);
    for (int i = 0; i < 3; i++) {
        a = new_job(f->db, &k, "u", false);
        assert_int_equal(writer__submit(w, &a->wj), WA_OK);
    }
    wait_for(&k.ok, &k.err, 3);
    assert_int_equal(atomic_load(&k.err), 3);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    /* The writer recovers. */
    a = new_job(f->db, &k, "u", false);
    assert_int_equal(writer__submit(w, &a->wj), WA_OK);
    writer__free(w);
    assert_int_equal(atomic_load(&k.ok), 1);
    assert_int_equal(count_rows(f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_text_escaped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_reader_strict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_incremental, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seq_per_user_durable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_failure, setup, teardown),
    };

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
