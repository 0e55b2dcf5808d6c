/*
 * store_ops_test.c - the store-svc bus operations end to end: a real store
 * (temporary database, injected clock) served on an inproc:// REP socket,
 * called with wa_bus_call() as the gateway and session-svc do.
 *
 * Covers every operation of the docs table, every kind of bad argument,
 * idempotency by rid (a repeated rid, concurrent duplicates, and nng REQ's
 * own resend while the first is still running), errors not being cached,
 * restart on the same database, and the quiesce before shutdown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "store_testlib.h"

#define T0 1795689600000LL /* 2026-11-26T10:40:00.000Z */
#define WORKERS 32

static _Atomic int64_t fake_now = T0;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

typedef struct fx {
    char *dir;
    char *path;
    char url[64];
    store_t *st;
    nng_socket rep, req;
    wa_bus_server_t *srv;
} fx_t;

static void start_store(fx_t *f)
{
    store_opts_t o = {.db_path = f->path, .now_ms = fake_clock};
    char err[512] = "";

    if (store__open(&o, &f->st, err, sizeof(err)) != WA_OK)
        fail_msg("store__open: %s", err);
    assert_int_equal(
        wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, f->url, NULL, &f->rep), WA_OK);
    assert_int_equal(
        wa_bus_server_start(f->rep, WORKERS, ops__handle, f->st, &f->srv),
        WA_OK);
}

/* The order of main(): quiesce, stop the server, close, free. */
static void stop_store(fx_t *f)
{
    store__quiesce(f->st);
    wa_bus_server_stop(f->srv);
    nng_close(f->rep);
    store__close(f->st);
    f->st = NULL;
}

static int setup(void **state)
{
    static atomic_int n;
    fx_t *f = calloc(1, sizeof(*f));

    atomic_store(&fake_now, T0);
    f->dir = tl_tmpdir();
    f->path = tl_path(f->dir, "db/sessions.db");
    snprintf(f->url, sizeof(f->url), "inproc://store_ops_%d",
             atomic_fetch_add(&n, 1));
    start_store(f);
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, f->url, NULL, &f->req), WA_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    nng_close(f->req);
    if (f->st != NULL)
        stop_store(f);
    free(f->path);
    tl_rmrf(f->dir);
    free(f);
    return 0;
}

/* Call op with args given as JSON text (NULL: none) and a given rid (NULL:
 * a fresh one). rep must be cleared by the caller. */
static wa_err_t call_rid(fx_t *f, wa_op_t op, const char *user,
                         const char *args_json, const char *rid,
                         wa_reply_t *rep)
{
    char fresh[WA_RID_MAX + 1];
    cJSON *args = NULL;
    wa_err_t rv;

    if (args_json != NULL) {
        args = cJSON_Parse(args_json);
        if (args == NULL)
            fail_msg("bad test JSON: %s", args_json);
    }
    if (rid == NULL) {
        wa_rid_new(fresh, sizeof(fresh));
        rid = fresh;
    }
    rv = wa_bus_call(f->req, op, user, rid, args, 5000, rep);
    cJSON_Delete(args);
    return rv;
}

static wa_err_t call(fx_t *f, wa_op_t op, const char *user,
                     const char *args_json, wa_reply_t *rep)
{
    return call_rid(f, op, user, args_json, NULL, rep);
}

/* Call, expect success, return the data (the caller frees it). */
static cJSON *ok(fx_t *f, wa_op_t op, const char *user, const char *args_json)
{
    wa_reply_t rep;
    wa_err_t rv = call(f, op, user, args_json, &rep);
    cJSON *data;

    if (rv != WA_OK)
        fail_msg("%s %s: %s (%s)", wa_op_name(op), args_json ? args_json : "",
                 wa_err_code(rv), rep.message);
    data = rep.data;
    rep.data = NULL;
    wa_reply_clear(&rep);
    return data;
}

/* Call, expect the error code want with a message containing needle. */
static void fails(fx_t *f, wa_op_t op, const char *user, const char *args_json,
                  wa_err_t want, const char *needle)
{
    wa_reply_t rep;
    wa_err_t rv = call(f, op, user, args_json, &rep);

    if (rv != want)
        fail_msg("%s %s: got %s, want %s (%s)", wa_op_name(op),
                 args_json ? args_json : "", wa_err_code(rv), wa_err_code(want),
                 rep.message);
    if (needle != NULL && strstr(rep.message, needle) == NULL)
        fail_msg("%s %s: message \"%s\" lacks \"%s\"", wa_op_name(op),
                 args_json ? args_json : "", rep.message, needle);
    wa_reply_clear(&rep);
}

static const char *s(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double n(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static int log_rows(fx_t *f, const char *user)
{
    cJSON *d = ok(f, WA_OP_LOG_LIST, user, "{\"limit\":500}");
    int rows = cJSON_GetArraySize(cJSON_GetObjectItem(d, "logs"));

    cJSON_Delete(d);
    return rows;
}

/* ---- operations ---- */

static void test_ping(void **state)
{
    fx_t *f = *state;
    cJSON *d = ok(f, WA_OP_PING, "", NULL);

    assert_string_equal(s(d, "service"), "store-svc");
    assert_string_equal(s(d, "version"), WA_VERSION);
    cJSON_Delete(d);
}

static void test_sessions(void **state)
{
    fx_t *f = *state;
    cJSON *d, *row;

    d = ok(f, WA_OP_SESSION_GET, "doc1", NULL);
    assert_string_equal(s(d, "userId"), "doc1");
    assert_string_equal(s(d, "status"), "disconnected");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "qrCode")));
    cJSON_Delete(d);

    d = ok(f, WA_OP_SESSION_UPSERT, "doc1",
           "{\"status\":\"qr\",\"qrCode\":\"2@ref,k1,k2,s\"}");
    assert_string_equal(s(d, "status"), "qr");
    assert_string_equal(s(d, "qrCode"), "2@ref,k1,k2,s");
    assert_non_null(s(d, "createdAt"));
    assert_int_equal(strlen(s(d, "createdAt")), 24);
    cJSON_Delete(d);

    d = ok(f, WA_OP_SESSION_UPSERT, "doc1",
           "{\"status\":\"ready\",\"qrCode\":null,\"phoneNumber\":"
           "\"+41791234567\",\"displayName\":\"Dr. Zoë\",\"connectedAt\":"
           "\"2026-11-26T10:00:00.123Z\",\"lastActivity\":"
           "\"2026-11-26T10:00:01Z\"}");
    assert_string_equal(s(d, "status"), "ready");
    assert_null(s(d, "qrCode"));
    assert_string_equal(s(d, "displayName"), "Dr. Zoë");
    cJSON_Delete(d);

    d = ok(f, WA_OP_SESSION_GET, "doc1", NULL);
    assert_string_equal(s(d, "phoneNumber"), "+41791234567");
    assert_string_equal(s(d, "connectedAt"), "2026-11-26T10:00:00.123Z");
    /* Kept in one form: milliseconds. */
    assert_string_equal(s(d, "lastActivity"), "2026-11-26T10:00:01.000Z");
    cJSON_Delete(d);
    cJSON_Delete(ok(f, WA_OP_SESSION_UPSERT, "doc1",
                    "{\"connectedAt\":\"2024-02-29T23:59:59.987654321Z\","
                    "\"lastActivity\":\"2026-11-26T10:00:02.5Z\"}"));
    d = ok(f, WA_OP_SESSION_GET, "doc1", NULL);
    assert_string_equal(s(d, "connectedAt"), "2024-02-29T23:59:59.987Z");
    assert_string_equal(s(d, "lastActivity"), "2026-11-26T10:00:02.500Z");
    cJSON_Delete(d);

    cJSON_Delete(ok(f, WA_OP_SESSION_UPSERT, "doc2", "{}"));
    d = ok(f, WA_OP_SESSION_LIST, "", "{\"limit\":10}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "sessions")), 2);
    row = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "sessions"), 0);
    assert_string_equal(s(row, "userId"), "doc1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(row, "instance")));
    cJSON_Delete(d);
    d = ok(f, WA_OP_SESSION_LIST, "", "{\"offset\":1}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "sessions")), 1);
    cJSON_Delete(d);
}

static void test_logs(void **state)
{
    fx_t *f = *state;
    cJSON *d, *logs;
    double first;

    d = ok(f, WA_OP_LOG_APPEND, "doc1",
           "{\"eventType\":\"message.sent\",\"eventData\":{\"chatId\":"
           "\"41791234567@c.us\",\"n\":[1,2,3]}}");
    first = n(d, "id");
    assert_int_equal(strlen(s(d, "timestamp")), 24);
    cJSON_Delete(d);
    d = ok(f, WA_OP_LOG_APPEND, "doc1",
           "{\"eventType\":\"status\",\"eventData\":\"plain\"}");
    assert_true(n(d, "id") > first);
    cJSON_Delete(d);
    cJSON_Delete(ok(f, WA_OP_LOG_APPEND, "doc2",
                    "{\"eventType\":\"x\",\"eventData\":null}"));

    d = ok(f, WA_OP_LOG_LIST, "doc1", NULL); /* limit defaults to 50 */
    logs = cJSON_GetObjectItem(d, "logs");
    assert_int_equal(cJSON_GetArraySize(logs), 2);
    assert_string_equal(s(cJSON_GetArrayItem(logs, 0), "eventType"), "status");
    assert_string_equal(s(cJSON_GetArrayItem(logs, 0), "eventData"), "plain");
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 1), "eventData"),
            "n")),
        3);
    cJSON_Delete(d);
    d = ok(f, WA_OP_LOG_LIST, "doc1", "{\"limit\":1}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "logs")), 1);
    cJSON_Delete(d);
}

/* log.list {"ifChanged":"<version>"}: a version with each answer;
 * {"unchanged":true} while no row of that user was appended, the rows as
 * soon as one was; another user's rows and a restart of the store (the
 * file may have been replaced meanwhile) are told apart. */
static void test_log_versions(void **state)
{
    fx_t *f = *state;
    cJSON *d;
    char v0[128], v1[128], args[192];

    d = ok(f, WA_OP_LOG_LIST, "ver", "{\"ifChanged\":\"\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "logs")), 0);
    assert_non_null(s(d, "version"));
    snprintf(v0, sizeof(v0), "%s", s(d, "version"));
    assert_non_null(strstr(v0, ".0"));
    cJSON_Delete(d);

    /* No version asked for: the answer is as it always was. */
    d = ok(f, WA_OP_LOG_LIST, "ver", NULL);
    assert_null(cJSON_GetObjectItem(d, "version"));
    assert_int_equal(cJSON_GetArraySize(d), 1);
    cJSON_Delete(d);

    snprintf(args, sizeof(args), "{\"limit\":5,\"ifChanged\":\"%s\"}", v0);
    d = ok(f, WA_OP_LOG_LIST, "ver", args);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "unchanged")));
    assert_string_equal(s(d, "version"), v0);
    assert_null(cJSON_GetObjectItem(d, "logs"));
    cJSON_Delete(d);

    /* Another user's row changes nothing here. */
    cJSON_Delete(ok(f, WA_OP_LOG_APPEND, "other",
                    "{\"eventType\":\"status\",\"eventData\":1}"));
    d = ok(f, WA_OP_LOG_LIST, "ver", args);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "unchanged")));
    cJSON_Delete(d);

    cJSON_Delete(ok(f, WA_OP_LOG_APPEND, "ver",
                    "{\"eventType\":\"status\",\"eventData\":2}"));
    d = ok(f, WA_OP_LOG_LIST, "ver", args);
    assert_null(cJSON_GetObjectItem(d, "unchanged"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "logs")), 1);
    snprintf(v1, sizeof(v1), "%s", s(d, "version"));
    assert_string_not_equal(v1, v0);
    cJSON_Delete(d);

    /* A restart: the same rows, another version. */
    stop_store(f);
    start_store(f);
    snprintf(args, sizeof(args), "{\"ifChanged\":\"%s\"}", v1);
    d = ok(f, WA_OP_LOG_LIST, "ver", args);
    assert_null(cJSON_GetObjectItem(d, "unchanged"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "logs")), 1);
    assert_string_not_equal(s(d, "version"), v1);
    cJSON_Delete(d);
}

/* log.append with "rows": all rows in one answer, ids in order, newest
 * first in the list; a bad row refuses the whole batch. */
static void test_log_rows(void **state)
{
    fx_t *f = *state;
    cJSON *d, *ids, *logs;
    char *big;
    size_t len;

    d = ok(f, WA_OP_LOG_APPEND, "batch",
           "{\"rows\":[{\"eventType\":\"message\",\"eventData\":{\"n\":1}},"
           "{\"eventType\":\"status\",\"eventData\":\"two\"},"
           "{\"eventType\":\"message\",\"eventData\":[3]}]}");
    ids = cJSON_GetObjectItem(d, "ids");
    assert_int_equal(cJSON_GetArraySize(ids), 3);
    assert_true(cJSON_GetArrayItem(ids, 1)->valuedouble >
                cJSON_GetArrayItem(ids, 0)->valuedouble);
    assert_true(cJSON_GetArrayItem(ids, 2)->valuedouble >
                cJSON_GetArrayItem(ids, 1)->valuedouble);
    assert_int_equal(strlen(s(d, "timestamp")), 24);
    cJSON_Delete(d);
    d = ok(f, WA_OP_LOG_LIST, "batch", NULL);
    logs = cJSON_GetObjectItem(d, "logs");
    assert_int_equal(cJSON_GetArraySize(logs), 3);
    assert_string_equal(s(cJSON_GetArrayItem(logs, 1), "eventData"), "two");
    assert_int_equal(
        cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 0), "eventData"), 0)
            ->valueint,
        3);
    cJSON_Delete(d);

    fails(f, WA_OP_LOG_APPEND, "batch", "{\"rows\":[]}", WA_EINVAL,
          "rows: must be an array of 1..256 rows");
    fails(f, WA_OP_LOG_APPEND, "batch", "{\"rows\":{}}", WA_EINVAL, "rows");
    fails(f, WA_OP_LOG_APPEND, "batch",
          "{\"rows\":[{\"eventType\":\"a\",\"eventData\":1}],"
          "\"eventType\":\"a\"}",
          WA_EINVAL, "not both");
    fails(f, WA_OP_LOG_APPEND, "batch",
          "{\"rows\":[{\"eventType\":\"a\",\"eventData\":1},"
          "{\"eventType\":\"Bad\",\"eventData\":1}]}",
          WA_EINVAL, "rows[1].eventType");
    fails(f, WA_OP_LOG_APPEND, "batch",
          "{\"rows\":[{\"eventType\":\"a\",\"eventData\":1,\"x\":2}]}",
          WA_EINVAL, "rows[0]: must be an object");
    fails(f, WA_OP_LOG_APPEND, "batch", "{\"rows\":[{\"eventType\":\"a\"}]}",
          WA_EINVAL, "rows[0]");
    fails(f, WA_OP_LOG_APPEND, "batch", "{\"rows\":[7]}", WA_EINVAL, "rows[0]");
    /* 257 rows: over the limit. */
    len = 10 + 257 * 40;
    big = malloc(len);
    assert_non_null(big);
    strcpy(big, "{\"rows\":[");
    for (int i = 0; i < 257; i++)
        strcat(big, i ? ",{\"eventType\":\"a\",\"eventData\":1}"
                      : "{\"eventType\":\"a\",\"eventData\":1}");
    strcat(big, "]}");
    fails(f, WA_OP_LOG_APPEND, "batch", big, WA_EINVAL, "1..256");
    free(big);
    /* Nothing of the refused batches was written. */
    assert_int_equal(log_rows(f, "batch"), 3);
}

/* seq rises by one per user and keeps rising across a restart. */
static void test_event_record(void **state)
{
    fx_t *f = *state;
    cJSON *d;

    for (int i = 1; i <= 3; i++) {
        d = ok(f, WA_OP_EVENT_RECORD, "doc1",
               "{\"type\":\"status\",\"data\":{\"status\":\"qr\"}}");
        assert_int_equal(n(d, "seq"), i);
        assert_true(n(d, "id") > 0);
        assert_non_null(s(d, "timestamp"));
        cJSON_Delete(d);
    }
    d = ok(f, WA_OP_EVENT_RECORD, "doc2", "{\"type\":\"ready\",\"data\":{}}");
    assert_int_equal(n(d, "seq"), 1);
    cJSON_Delete(d);

    stop_store(f);
    start_store(f);
    d = ok(f, WA_OP_EVENT_RECORD, "doc1",
           "{\"type\":\"message\",\"data\":{\"body\":\"hi\"}}");
    assert_int_equal(n(d, "seq"), 4);
    cJSON_Delete(d);
    /* Each event is a session_logs row as well. */
    assert_int_equal(log_rows(f, "doc1"), 4);
}

static void test_placement(void **state)
{
    fx_t *f = *state;
    cJSON *d, *arr;
    char moved[5][STORE_INSTANCE_MAX + 1];
    char user[8];

    d = ok(f, WA_OP_INSTANCE_REGISTER, "",
           "{\"instance\":\"i1\",\"url\":\"tcp://10.0.0.1:5580\","
           "\"capacity\":10}");
    assert_int_equal(n(d, "heartbeatMs"), 2000);
    assert_int_equal(n(d, "deadAfterMs"), 10000);
    cJSON_Delete(d);
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i2\",\"url\":\"ipc:///tmp/i2.sock\","
                    "\"capacity\":10}"));
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        d = ok(f, WA_OP_PLACEMENT_RESOLVE, user, NULL);
        snprintf(moved[i], sizeof(moved[i]), "%s", s(d, "instance"));
        assert_string_equal(s(d, "url"), strcmp(moved[i], "i1") == 0
                                             ? "tcp://10.0.0.1:5580"
                                             : "ipc:///tmp/i2.sock");
        assert_int_equal(cJSON_GetArraySize(d), 2);
        cJSON_Delete(d);
        /* Stable while the owner lives. */
        d = ok(f, WA_OP_PLACEMENT_RESOLVE, user, NULL);
        assert_string_equal(s(d, "instance"), moved[i]);
        cJSON_Delete(d);
    }
    cJSON_Delete(ok(f, WA_OP_INSTANCE_HEARTBEAT, "",
                    "{\"instance\":\"i1\",\"sessions\":2}"));

    /* i2 keeps beating, i1 falls silent for more than 10 s. */
    atomic_store(&fake_now, T0 + 6000);
    cJSON_Delete(ok(f, WA_OP_INSTANCE_HEARTBEAT, "",
                    "{\"instance\":\"i2\",\"sessions\":0}"));
    atomic_store(&fake_now, T0 + 10001);
    d = ok(f, WA_OP_INSTANCE_LIST, "", NULL);
    arr = cJSON_GetObjectItem(d, "instances");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    assert_string_equal(s(cJSON_GetArrayItem(arr, 0), "instance"), "i1");
    assert_int_equal(n(cJSON_GetArrayItem(arr, 0), "sessions"), 2);
    assert_true(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "alive")));
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "alive")));
    cJSON_Delete(d);

    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        d = ok(f, WA_OP_PLACEMENT_RESOLVE, user, NULL);
        assert_string_equal(s(d, "instance"), "i2");
        cJSON_Delete(d);
    }
    d = ok(f, WA_OP_PLACEMENT_LIST, "", "{\"instance\":\"i2\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "users")), 5);
    cJSON_Delete(d);
    d = ok(f, WA_OP_PLACEMENT_LIST, "", "{\"instance\":\"i1\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "users")), 0);
    cJSON_Delete(d);

    /* The dead one must register again. */
    fails(f, WA_OP_INSTANCE_HEARTBEAT, "",
          "{\"instance\":\"i1\",\"sessions\":0}", WA_ENOTFOUND,
          "register again");
    fails(f, WA_OP_INSTANCE_HEARTBEAT, "",
          "{\"instance\":\"never\",\"sessions\":0}", WA_ENOTFOUND, NULL);

    d = ok(f, WA_OP_SESSION_LIST, "", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "sessions")),
                     0); /* placements are not sessions */
    cJSON_Delete(d);

    /* Nothing alive at all. */
    atomic_store(&fake_now, T0 + 60000);
    fails(f, WA_OP_PLACEMENT_RESOLVE, "u0", NULL, WA_ENOSESSIONSVC,
          "no live session-svc");
}

/* The heartbeat's "lost": once an instance is dead, the first live
 * heartbeat after it names the users whose session was running there,
 * once; a new registration of the dead one starts it over. */
static void test_lost_instance(void **state)
{
    fx_t *f = *state;
    const char *beat2 = "{\"instance\":\"i2\",\"sessions\":0}";
    cJSON *d, *lost;
    const char *in;
    char user[8], where[4][STORE_INSTANCE_MAX + 1];
    int on_i1 = 0;

    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i1\",\"url\":\"tcp://10.0.0.1:5580\","
                    "\"capacity\":10}"));
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i2\",\"url\":\"tcp://10.0.0.2:5580\","
                    "\"capacity\":10}"));
    /* u0..u3: ready, qr, disconnected, never had a session row. */
    for (int i = 0; i < 4; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        d = ok(f, WA_OP_PLACEMENT_RESOLVE, user, NULL);
        in = s(d, "instance");
        assert_non_null(in);
        snprintf(where[i], sizeof(where[i]), "%s", in != NULL ? in : "");
        cJSON_Delete(d);
    }
    cJSON_Delete(ok(f, WA_OP_SESSION_UPSERT, "u0", "{\"status\":\"ready\"}"));
    cJSON_Delete(ok(f, WA_OP_SESSION_UPSERT, "u1", "{\"status\":\"qr\"}"));
    cJSON_Delete(
        ok(f, WA_OP_SESSION_UPSERT, "u2", "{\"status\":\"disconnected\"}"));

    /* Both alive: nothing to tell. */
    d = ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "lost")), 0);
    cJSON_Delete(d);

    /* i1 silent past 10 s: i2's next heartbeat names i1's running users. */
    atomic_store(&fake_now, T0 + 6000);
    cJSON_Delete(ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2));
    atomic_store(&fake_now, T0 + 10001);
    d = ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2);
    lost = cJSON_GetObjectItem(d, "lost");
    for (int i = 0; i < 2; i++) {
        if (strcmp(where[i], "i1") != 0)
            continue;
        snprintf(user, sizeof(user), "u%d", i);
        assert_string_equal(cJSON_GetArrayItem(lost, on_i1++)->valuestring,
                            user);
    }
    assert_int_equal(cJSON_GetArraySize(lost), on_i1);
    cJSON_Delete(d);
    /* Once. */
    d = ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "lost")), 0);
    cJSON_Delete(d);

    /* i1 comes back and dies again: told again. */
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i1\",\"url\":\"tcp://10.0.0.1:5580\","
                    "\"capacity\":10}"));
    atomic_store(&fake_now, T0 + 16000);
    cJSON_Delete(ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2));
    atomic_store(&fake_now, T0 + 20002);
    d = ok(f, WA_OP_INSTANCE_HEARTBEAT, "", beat2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "lost")), on_i1);
    cJSON_Delete(d);
}

static void test_placement_capacity(void **state)
{
    fx_t *f = *state;

    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"small\",\"url\":\"inproc://small\","
                    "\"capacity\":1}"));
    cJSON_Delete(ok(f, WA_OP_PLACEMENT_RESOLVE, "first", NULL));
    cJSON_Delete(
        ok(f, WA_OP_SESSION_UPSERT, "first", "{\"status\":\"initializing\"}"));
    fails(f, WA_OP_PLACEMENT_RESOLVE, "second", NULL, WA_EFULL,
          "maximum of sessions");
    cJSON_Delete(ok(f, WA_OP_PLACEMENT_RESOLVE, "first", NULL));
    /* A disconnected session frees its slot. */
    cJSON_Delete(
        ok(f, WA_OP_SESSION_UPSERT, "first", "{\"status\":\"disconnected\"}"));
    cJSON_Delete(ok(f, WA_OP_PLACEMENT_RESOLVE, "second", NULL));
}

static void test_diag(void **state)
{
    fx_t *f = *state;
    cJSON *d;

    cJSON_Delete(ok(f, WA_OP_SESSION_UPSERT, "a", "{\"status\":\"ready\"}"));
    cJSON_Delete(
        ok(f, WA_OP_LOG_APPEND, "a", "{\"eventType\":\"t\",\"eventData\":{}}"));
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i\",\"url\":\"tcp://h:1\","
                    "\"capacity\":1}"));
    d = ok(f, WA_OP_DIAG, "", NULL);
    assert_string_equal(s(d, "version"), WA_VERSION);
    assert_true(n(d, "uptimeMs") >= 0);
    assert_int_equal(n(cJSON_GetObjectItem(d, "sessionsByStatus"), "ready"), 1);
    assert_int_equal(
        n(cJSON_GetObjectItem(d, "sessionsByStatus"), "disconnected"), 0);
    assert_int_equal(n(d, "logRows"), 1);
    assert_int_equal(n(cJSON_GetObjectItem(d, "instances"), "total"), 1);
    assert_int_equal(n(cJSON_GetObjectItem(d, "instances"), "alive"), 1);
    assert_true(n(d, "dbBytes") > 0);
    cJSON_Delete(d);
}

/* ---- refusals ---- */

static void test_unknown_op(void **state)
{
    fx_t *f = *state;

    fails(f, WA_OP_WA_STATUS, "u", NULL, WA_EUNKNOWNOP,
          "wa.status is not served by store-svc");
    fails(f, WA_OP_WA_SEND, "u", "{\"chatId\":\"x\",\"message\":\"m\"}",
          WA_EUNKNOWNOP, NULL);
}

static void test_user_required(void **state)
{
    fx_t *f = *state;
    static const wa_op_t need[] = {
        WA_OP_SESSION_GET, WA_OP_SESSION_UPSERT, WA_OP_LOG_APPEND,
        WA_OP_LOG_LIST,    WA_OP_EVENT_RECORD,   WA_OP_PLACEMENT_RESOLVE,
    };

    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        fails(f, need[i], "", NULL, WA_EINVAL, "user: required");
}

typedef struct bad {
    wa_op_t op;
    const char *args;
    const char *needle;
} bad_t;

static const bad_t bad_args[] = {
    /* Unknown and repeated fields, everywhere. */
    {WA_OP_PING, "{\"x\":1}", "unknown field \"x\""},
    {WA_OP_SESSION_GET, "{\"limit\":1}", "unknown field \"limit\""},
    {WA_OP_DIAG, "{\"a\":null}", "unknown field"},
    {WA_OP_INSTANCE_LIST, "{\"all\":true}", "unknown field"},
    {WA_OP_PLACEMENT_RESOLVE, "{\"instance\":\"i\"}", "unknown field"},
    {WA_OP_SESSION_UPSERT, "{\"foo\":1}", "unknown field \"foo\""},
    /* A long multi-byte name is cut on a character boundary. */
    {WA_OP_SESSION_UPSERT,
     "{\"a\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
     "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
     "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
     "\u00e9\u00e9\u00e9\u00e9\u00e9x\":1}",
     "unknown field \"a\xc3\xa9"},
    {WA_OP_SESSION_UPSERT, "{\"status\":\"ready\",\"status\":\"qr\"}",
     "status: given more than once"},
    /* session.upsert */
    {WA_OP_SESSION_UPSERT, "{\"status\":\"bogus\"}", "status: must be one of"},
    {WA_OP_SESSION_UPSERT, "{\"status\":\"READY\"}", "status: must be one of"},
    {WA_OP_SESSION_UPSERT, "{\"status\":null}", "status: must be a string"},
    {WA_OP_SESSION_UPSERT, "{\"status\":1}", "status: must be a string"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"\"}", "phoneNumber"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"+\"}", "phoneNumber"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"+41 79\"}", "phoneNumber"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"12a\"}", "phoneNumber"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"++1\"}", "phoneNumber"},
    {WA_OP_SESSION_UPSERT, "{\"phoneNumber\":41791234567}",
     "phoneNumber: must be a string or null"},
    {WA_OP_SESSION_UPSERT, "{\"displayName\":\"a\\u0001b\"}", "displayName"},
    {WA_OP_SESSION_UPSERT, "{\"displayName\":\"tab\\there\"}", "displayName"},
    {WA_OP_SESSION_UPSERT, "{\"displayName\":[]}", "displayName"},
    {WA_OP_SESSION_UPSERT, "{\"qrCode\":\"\"}", "qrCode"},
    {WA_OP_SESSION_UPSERT, "{\"qrCode\":\"caf\\u00e9\"}", "qrCode"},
    {WA_OP_SESSION_UPSERT, "{\"qrCode\":{}}", "qrCode"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"yesterday\"}", "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2026-13-01T00:00:00Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2026-01-01 00:00:00Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2026-01-01T00:00:00.Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":1764150000}", "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"lastActivity\":\"2026-01-01T00:00:00\"}",
     "lastActivity"},
    {WA_OP_SESSION_UPSERT, "{\"lastActivity\":\"2026-01-01T24:00:00Z\"}",
     "lastActivity"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2024-02-31T23:59:59Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2023-02-29T00:00:00Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"connectedAt\":\"2024-04-31T00:00:00Z\"}",
     "connectedAt"},
    {WA_OP_SESSION_UPSERT, "{\"lastActivity\":\"2026-01-01T23:59:60Z\"}",
     "lastActivity"},
    /* session.list */
    {WA_OP_SESSION_LIST, "{\"limit\":0}",
     "limit: must be an integer in 1..500"},
    {WA_OP_SESSION_LIST, "{\"limit\":501}", "limit"},
    {WA_OP_SESSION_LIST, "{\"limit\":1.5}", "limit"},
    {WA_OP_SESSION_LIST, "{\"limit\":\"10\"}", "limit"},
    {WA_OP_SESSION_LIST, "{\"limit\":null}", "limit"},
    {WA_OP_SESSION_LIST, "{\"offset\":-1}", "offset"},
    {WA_OP_SESSION_LIST, "{\"offset\":1e10}", "offset"},
    /* log.append */
    {WA_OP_LOG_APPEND, "{}", "eventType: required"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"a\"}", "eventData: required"},
    {WA_OP_LOG_APPEND, "{\"eventData\":1}", "eventType: required"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"Bad\",\"eventData\":1}",
     "eventType: must be 1..64 characters of a-z"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"\",\"eventData\":1}", "eventType"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"a-b\",\"eventData\":1}", "eventType"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"a b\",\"eventData\":1}", "eventType"},
    {WA_OP_LOG_APPEND, "{\"eventType\":5,\"eventData\":1}",
     "eventType: must be a string"},
    {WA_OP_LOG_APPEND, "{\"eventType\":\"x\",\"eventData\":1,\"extra\":1}",
     "unknown field"},
    /* log.list */
    {WA_OP_LOG_LIST, "{\"limit\":0}", "limit"},
    {WA_OP_LOG_LIST, "{\"limit\":-5}", "limit"},
    {WA_OP_LOG_LIST, "{\"limit\":\"x\"}", "limit"},
    {WA_OP_LOG_LIST, "{\"limit\":true}", "limit"},
    {WA_OP_LOG_LIST, "{\"offset\":0}", "unknown field"},
    {WA_OP_LOG_LIST, "{\"ifChanged\":1}", "ifChanged: must be a string"},
    {WA_OP_LOG_LIST, "{\"ifChanged\":\"a b\"}", "ifChanged: must be a version"},
    {WA_OP_LOG_LIST,
     "{\"ifChanged\":\"0123456789012345678901234567890123456789"
     "012345678901234567890123456789\"}",
     "ifChanged: must be a version"},
    /* event.record */
    {WA_OP_EVENT_RECORD, "{\"type\":\"resync\",\"data\":{}}", "type: must be"},
    {WA_OP_EVENT_RECORD, "{\"type\":\"bogus\",\"data\":{}}", "type: must be"},
    {WA_OP_EVENT_RECORD, "{\"type\":\"QR\",\"data\":{}}", "type: must be"},
    {WA_OP_EVENT_RECORD, "{\"type\":\"qr\"}", "data: required"},
    {WA_OP_EVENT_RECORD, "{\"type\":\"qr\",\"data\":[]}",
     "data: must be an object"},
    {WA_OP_EVENT_RECORD, "{\"type\":\"qr\",\"data\":\"x\"}", "data"},
    {WA_OP_EVENT_RECORD, "{\"data\":{}}", "type: required"},
    /* instance.register */
    {WA_OP_INSTANCE_REGISTER, "{\"url\":\"tcp://h:1\",\"capacity\":1}",
     "instance: required"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"\",\"url\":\"tcp://h:1\",\"capacity\":1}",
     "instance: must be 1..100"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"a\\u0001\",\"url\":\"tcp://h:1\",\"capacity\":1}",
     "instance"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"h\\u00e9\",\"url\":\"tcp://h:1\",\"capacity\":1}",
     "instance"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":1,\"url\":\"tcp://h:1\",\"capacity\":1}",
     "instance: must be a string"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"http://h:1\",\"capacity\":1}",
     "url: must be a tcp://, ipc:// or inproc://"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"tcp://\",\"capacity\":1}", "url"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"tcp://h :1\",\"capacity\":1}", "url"},
    {WA_OP_INSTANCE_REGISTER, "{\"instance\":\"i\",\"capacity\":1}",
     "url: required"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"tcp://h:1\",\"capacity\":0}",
     "capacity: must be an integer in 1..10000"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"tcp://h:1\",\"capacity\":10001}",
     "capacity"},
    {WA_OP_INSTANCE_REGISTER,
     "{\"instance\":\"i\",\"url\":\"tcp://h:1\",\"capacity\":\"5\"}",
     "capacity"},
    {WA_OP_INSTANCE_REGISTER, "{\"instance\":\"i\",\"url\":\"tcp://h:1\"}",
     "capacity: required"},
    /* instance.heartbeat */
    {WA_OP_INSTANCE_HEARTBEAT, "{\"instance\":\"i\"}", "sessions: required"},
    {WA_OP_INSTANCE_HEARTBEAT, "{\"instance\":\"i\",\"sessions\":-1}",
     "sessions"},
    {WA_OP_INSTANCE_HEARTBEAT, "{\"instance\":\"i\",\"sessions\":0.5}",
     "sessions"},
    {WA_OP_INSTANCE_HEARTBEAT, "{\"sessions\":1}", "instance: required"},
    /* placement.list */
    {WA_OP_PLACEMENT_LIST, "{}", "instance: required"},
    {WA_OP_PLACEMENT_LIST, "{\"instance\":\"\"}", "instance"},
    {WA_OP_PLACEMENT_LIST, "{\"instance\":null}", "instance"},
};

static void test_bad_arguments(void **state)
{
    fx_t *f = *state;
    cJSON *d;

    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++)
        fails(f, bad_args[i].op, "u", bad_args[i].args, WA_EINVAL,
              bad_args[i].needle);
    /* Nothing was written by any of them. */
    d = ok(f, WA_OP_DIAG, "", NULL);
    assert_int_equal(n(d, "logRows"), 0);
    assert_int_equal(n(cJSON_GetObjectItem(d, "instances"), "total"), 0);
    assert_int_equal(
        n(cJSON_GetObjectItem(d, "sessionsByStatus"), "ready") +
            n(cJSON_GetObjectItem(d, "sessionsByStatus"), "disconnected"),
        0);
    cJSON_Delete(d);
}

/* A JSON string of n bytes of c, as an args member. */
static char *sized(const char *fmt, size_t len, char c)
{
    char *fill = malloc(len + 1), *out;

    memset(fill, c, len);
    fill[len] = '\0';
    assert_true(asprintf(&out, fmt, fill) > 0);
    free(fill);
    return out;
}

static void at_limit(fx_t *f, wa_op_t op, const char *fmt, size_t max, char c,
                     const char *needle)
{
    char *a = sized(fmt, max, c), *b = sized(fmt, max + 1, c);

    cJSON_Delete(ok(f, op, "u", a));
    fails(f, op, "u", b, WA_EINVAL, needle);
    free(a);
    free(b);
}

static void test_limits(void **state)
{
    fx_t *f = *state;

    at_limit(f, WA_OP_SESSION_UPSERT, "{\"qrCode\":\"%s\"}", 65536, 'q',
             "qrCode");
    at_limit(f, WA_OP_SESSION_UPSERT, "{\"displayName\":\"%s\"}", 256, 'n',
             "displayName");
    at_limit(f, WA_OP_SESSION_UPSERT, "{\"phoneNumber\":\"+%s\"}", 31, '4',
             "phoneNumber");
    at_limit(f, WA_OP_LOG_APPEND, "{\"eventType\":\"%s\",\"eventData\":1}", 64,
             'e', "eventType");
    /* eventData: 65536 bytes of JSON text, the quotes included. */
    at_limit(f, WA_OP_LOG_APPEND, "{\"eventType\":\"t\",\"eventData\":\"%s\"}",
             65534, 'd', "eventData: must be at most 65536 bytes");
    at_limit(f, WA_OP_INSTANCE_REGISTER,
             "{\"instance\":\"%s\",\"url\":\"tcp://h:1\",\"capacity\":1}", 100,
             'i', "instance");
    cJSON_Delete(ok(f, WA_OP_LOG_LIST, "u", "{\"limit\":500}"));
    cJSON_Delete(ok(f, WA_OP_SESSION_LIST, "", "{\"limit\":500,\"offset\":0}"));
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"i\",\"url\":\"tcp://h:1\","
                    "\"capacity\":10000}"));
}

/* ---- idempotency ---- */

static void test_repeated_rid(void **state)
{
    fx_t *f = *state;
    const char *args = "{\"eventType\":\"status\",\"eventData\":{\"a\":1}}";
    wa_reply_t r1, r2;
    char *t1, *t2;

    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u", args, "rid-1", &r1),
                     WA_OK);
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u", args, "rid-1", &r2),
                     WA_OK);
    t1 = cJSON_PrintUnformatted(r1.data);
    t2 = cJSON_PrintUnformatted(r2.data);
    assert_string_equal(t1, t2); /* the same id and timestamp */
    free(t1);
    free(t2);
    wa_reply_clear(&r1);
    wa_reply_clear(&r2);
    assert_int_equal(log_rows(f, "u"), 1);
    assert_true(atomic_load(&f->st->stats.idem_hits) >= 1);

    /* The same rid with other arguments is a client bug, not a repeat. */
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u",
                              "{\"eventType\":\"other\",\"eventData\":1}",
                              "rid-1", &r1),
                     WA_ECONFLICT);
    assert_non_null(strstr(r1.message, "different request"));
    wa_reply_clear(&r1);
    /* Another user's rid is never someone else's answer. */
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "v", args, "rid-1", &r1),
                     WA_OK);
    wa_reply_clear(&r1);
    assert_int_equal(log_rows(f, "v"), 1);
    assert_int_equal(log_rows(f, "u"), 1);

    /* Also for event.record: one seq per logical event. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call_rid(f, WA_OP_EVENT_RECORD, "u",
                                  "{\"type\":\"qr\",\"data\":{}}", "ev-1", &r1),
                         WA_OK);
        assert_int_equal(n(r1.data, "seq"), 1);
        wa_reply_clear(&r1);
    }
}

/* A resend after a restart (the in-memory cache is gone) still writes
 * once: log.append, event.record and session.upsert keep their answers in
 * the database, for STORE_RID_KEEP_MS. */
static void test_rid_survives_restart(void **state)
{
    fx_t *f = *state;
    const char *args = "{\"eventType\":\"status\",\"eventData\":{\"a\":1}}";
    const char *ev = "{\"type\":\"message\",\"data\":{}}";
    wa_reply_t r1, r2;
    cJSON *d;
    char *t1, *t2;

    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u", args, "d-1", &r1),
                     WA_OK);
    assert_int_equal(call_rid(f, WA_OP_EVENT_RECORD, "u", ev, "d-2", &r2),
                     WA_OK);
    assert_int_equal(n(r2.data, "seq"), 1);
    wa_reply_clear(&r2);
    /* A status written, then a later one: the first request resent after
     * the restart must not put the older status back. */
    assert_int_equal(call_rid(f, WA_OP_SESSION_UPSERT, "u",
                              "{\"status\":\"qr\"}", "d-3", &r2),
                     WA_OK);
    wa_reply_clear(&r2);
    assert_int_equal(call_rid(f, WA_OP_SESSION_UPSERT, "u",
                              "{\"status\":\"ready\"}", "d-4", &r2),
                     WA_OK);
    wa_reply_clear(&r2);
    stop_store(f);
    start_store(f);
    assert_int_equal(idem__size(f->st->idem), 0);
    assert_int_equal(call_rid(f, WA_OP_SESSION_UPSERT, "u",
                              "{\"status\":\"qr\"}", "d-3", &r2),
                     WA_OK);
    wa_reply_clear(&r2);
    d = ok(f, WA_OP_SESSION_GET, "u", NULL);
    assert_string_equal(s(d, "status"), "ready");
    cJSON_Delete(d);

    wa_reply_clear(&r2);
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u", args, "d-1", &r2),
                     WA_OK);
    t1 = cJSON_PrintUnformatted(r1.data);
    t2 = cJSON_PrintUnformatted(r2.data);
    assert_string_equal(t1, t2); /* the same id and timestamp */
    free(t1);
    free(t2);
    wa_reply_clear(&r1);
    wa_reply_clear(&r2);
    assert_int_equal(call_rid(f, WA_OP_EVENT_RECORD, "u", ev, "d-2", &r1),
                     WA_OK);
    assert_int_equal(n(r1.data, "seq"), 1); /* not a second seq */
    wa_reply_clear(&r1);
    assert_int_equal(log_rows(f, "u"), 2);
    /* Other arguments under a recorded rid: a conflict, also now. */
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u",
                              "{\"eventType\":\"other\",\"eventData\":1}",
                              "d-1", &r1),
                     WA_ECONFLICT);
    wa_reply_clear(&r1);

    /* After the keep time the answers are pruned (on a later write). */
    stop_store(f);
    start_store(f);
    atomic_fetch_add(&fake_now, STORE_RID_KEEP_MS + 120000);
    cJSON_Delete(ok(f, WA_OP_LOG_APPEND, "w", args));
    assert_int_equal(call_rid(f, WA_OP_LOG_APPEND, "u", args, "d-1", &r1),
                     WA_OK);
    wa_reply_clear(&r1);
    assert_int_equal(log_rows(f, "u"), 3);
}

/* send.claim: one attempt per (user, rid) ever, also across a restart; the
 * same attempt asking again (an nng resend) gets its answer again. */
static void test_send_claim(void **state)
{
    fx_t *f = *state;
    wa_reply_t r;

    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "u", "{\"nonce\":\"a1\"}", "s-1", &r),
        WA_OK);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.data, "claimed")));
    wa_reply_clear(&r);
    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "u", "{\"nonce\":\"a1\"}", "s-1", &r),
        WA_OK);
    wa_reply_clear(&r);
    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "u", "{\"nonce\":\"b2\"}", "s-1", &r),
        WA_ECONFLICT);
    wa_reply_clear(&r);
    /* Another user's rid is another key. */
    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "v", "{\"nonce\":\"b2\"}", "s-1", &r),
        WA_OK);
    wa_reply_clear(&r);
    stop_store(f);
    start_store(f);
    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "u", "{\"nonce\":\"c3\"}", "s-1", &r),
        WA_ECONFLICT);
    wa_reply_clear(&r);
    assert_int_equal(
        call_rid(f, WA_OP_SEND_CLAIM, "u", "{\"nonce\":\"a1\"}", "s-1", &r),
        WA_OK);
    wa_reply_clear(&r);
    fails(f, WA_OP_SEND_CLAIM, "u", "{}", WA_EINVAL, "nonce");
    fails(f, WA_OP_SEND_CLAIM, "", "{\"nonce\":\"x\"}", WA_EINVAL, "user");
}

/* A failed operation is not remembered: the retry runs again. */
static void test_errors_not_cached(void **state)
{
    fx_t *f = *state;
    const char *beat = "{\"instance\":\"late\",\"sessions\":0}";
    wa_reply_t r;

    assert_int_equal(
        call_rid(f, WA_OP_INSTANCE_HEARTBEAT, "", beat, "hb-1", &r),
        WA_ENOTFOUND);
    wa_reply_clear(&r);
    cJSON_Delete(ok(f, WA_OP_INSTANCE_REGISTER, "",
                    "{\"instance\":\"late\",\"url\":\"tcp://h:1\","
                    "\"capacity\":1}"));
    assert_int_equal(
        call_rid(f, WA_OP_INSTANCE_HEARTBEAT, "", beat, "hb-1", &r), WA_OK);
    wa_reply_clear(&r);
}

typedef struct dup {
    fx_t *f;
    wa_err_t rv;
    double id;
} dup_t;

static void *send_dup(void *arg)
{
    dup_t *d = arg;
    wa_reply_t r;

    d->rv = call_rid(d->f, WA_OP_LOG_APPEND, "dup",
                     "{\"eventType\":\"t\",\"eventData\":{}}", "same-rid", &r);
    if (d->rv == WA_OK)
        d->id = cJSON_GetObjectItem(r.data, "id")->valuedouble;
    wa_reply_clear(&r);
    return NULL;
}

/* Duplicates racing each other: one row, one answer for all. */
static void test_concurrent_duplicates(void **state)
{
    fx_t *f = *state;
    dup_t d[16];
    pthread_t t[16];

    for (int i = 0; i < 16; i++) {
        d[i] = (dup_t){.f = f};
        assert_int_equal(pthread_create(&t[i], NULL, send_dup, &d[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(d[i].rv, WA_OK);
        assert_true(d[i].id == d[0].id);
    }
    assert_int_equal(log_rows(f, "dup"), 1);
}

/* nng's REQ resends a request it has no answer for. While the first copy
 * waits on the database (another connection holds the write lock), the
 * copies arrive, wait for it, and the row is written once. */
static void test_req_resend_writes_once(void **state)
{
    fx_t *f = *state;
    char *buf = NULL, rid[WA_RID_MAX + 1];
    cJSON *args = cJSON_Parse("{\"eventType\":\"t\",\"eventData\":{}}");
    sqlite3 *other;
    nng_socket raw;
    wa_reply_t rep;
    size_t len;
    void *answer;
    size_t alen;

    assert_int_equal(nng_req0_open(&raw), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_REQ_RESENDTIME, 40), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 10000), 0);
    assert_int_equal(nng_dial(raw, f->url, NULL, 0), 0);

    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    wa_rid_new(rid, sizeof(rid));
    assert_int_equal(
        wa_request_encode(WA_OP_LOG_APPEND, "resend", rid, args, &buf, &len),
        WA_OK);
    assert_int_equal(nng_send(raw, buf, len, 0), 0);
    nng_msleep(400); /* ~10 resends */
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);

    assert_int_equal(nng_recv(raw, &answer, &alen, NNG_FLAG_ALLOC), 0);
    assert_int_equal(wa_reply_decode(answer, alen, &rep), WA_OK);
    assert_true(rep.ok);
    wa_reply_clear(&rep);
    nng_free(answer, alen);
    nng_close(raw);
    free(buf);
    cJSON_Delete(args);

    assert_int_equal(log_rows(f, "resend"), 1);
    assert_true(atomic_load(&f->st->stats.idem_waiters) +
                    atomic_load(&f->st->stats.idem_hits) >=
                1);
    print_message("resends seen: %llu waited, %llu from cache\n",
                  (unsigned long long)atomic_load(&f->st->stats.idem_waiters),
                  (unsigned long long)atomic_load(&f->st->stats.idem_hits));
}

/* After quiesce (SIGTERM), writes are refused, reads still answered. */
static void test_quiesce(void **state)
{
    fx_t *f = *state;
    cJSON *d;

    cJSON_Delete(
        ok(f, WA_OP_LOG_APPEND, "q", "{\"eventType\":\"t\",\"eventData\":1}"));
    store__quiesce(f->st);
    fails(f, WA_OP_LOG_APPEND, "q", "{\"eventType\":\"t\",\"eventData\":2}",
          WA_ECLOSED, "stopping");
    d = ok(f, WA_OP_SESSION_GET, "q", NULL);
    cJSON_Delete(d);
    assert_int_equal(log_rows(f, "q"), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping),
        T(test_sessions),
        T(test_logs),
        T(test_log_rows),
        T(test_log_versions),
        T(test_event_record),
        T(test_placement),
        T(test_lost_instance),
        T(test_placement_capacity),
        T(test_diag),
        T(test_unknown_op),
        T(test_user_required),
        T(test_bad_arguments),
        T(test_limits),
        T(test_repeated_rid),
        T(test_rid_survives_restart),
        T(test_send_claim),
        T(test_errors_not_cached),
        T(test_concurrent_duplicates),
        T(test_req_resend_writes_once),
        T(test_quiesce),
    };
#undef T

    tl_quiet();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
