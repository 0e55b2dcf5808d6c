/*
 * ss_state_test.c - the status machine: the table of legal and illegal
 * transitions, and state__set end to end through storeio against a fake
 * store-svc (inproc REP) and a SUB socket: every transition is written
 * (session.upsert, then event.record) before its event is published with
 * the seq the store returned; QR codes and message bodies are published
 * but never stored in the log; an illegal move changes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "wa/log.h"
#include "wa/pub.h"
#include "wa/service.h"

#define D SS_DISCONNECTED
#define I SS_INITIALIZING
#define Q SS_QR
#define A SS_AUTHENTICATED
#define R SS_READY
#define E SS_ERROR

static void table(void **state)
{
    static const struct {
        ss_status_t from, to;
        bool ok;
    } t[] = {
        {D, I, true},  {D, Q, false}, {D, A, false}, {D, R, false},
        {D, E, false}, {I, Q, true},  {I, A, true},  {I, R, false},
        {I, E, true},  {I, D, true},  {Q, Q, true},  {Q, A, true},
        {Q, R, false}, {Q, E, true},  {Q, D, true},  {Q, I, false},
        {A, R, true},  {A, Q, false}, {A, E, true},  {A, D, true},
        {R, A, true},  {R, E, true},  {R, D, true},  {R, Q, false},
        {R, I, false}, {E, I, true},  {E, D, true},  {E, R, false},
        {E, Q, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (state__legal(t[i].from, t[i].to) != t[i].ok)
            fail_msg("%s -> %s should be %s", state__name(t[i].from),
                     state__name(t[i].to), t[i].ok ? "legal" : "illegal");
    }
    assert_false(state__legal(SS_STATUS_COUNT, D));
    assert_string_equal(state__name(A), "authenticated");
    assert_null(state__name(SS_STATUS_COUNT));
}

/* ---- a fake store-svc ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char oplog[64][16];
static char datalog[64][1024];
static int nops;
static int seq;

static void store_handler(void *arg, wa_bus_job_t *job)
{
    const wa_request_t *req = wa_bus_job_request(job);
    cJSON *data = cJSON_CreateObject();
    char *args = cJSON_PrintUnformatted(req->args);

    (void)arg;
    pthread_mutex_lock(&mu);
    if (nops < 64) {
        snprintf(oplog[nops], sizeof(oplog[0]), "%s", wa_op_name(req->op));
        snprintf(datalog[nops], sizeof(datalog[0]), "%s", args);
        nops++;
    }
    if (req->op == WA_OP_EVENT_RECORD) {
        cJSON_AddNumberToObject(data, "seq", ++seq);
        cJSON_AddStringToObject(data, "timestamp", "2026-01-01T00:00:00.000Z");
    }
    pthread_mutex_unlock(&mu);
    free(args);
    wa_bus_reply_ok(job, data);
}

typedef struct fx {
    ss_t ss;
    ss_session_t s;
    nng_socket rep, sub;
    wa_bus_server_t *srv;
} fx_t;

/* The message being read: events are published through a wa_publisher_t,
 * which may send several in one batch message (pub.h). */
static nng_msg *pending;
static wa_pub_split_t pending_split;

static void drop_pending(void)
{
    if (pending != NULL)
        nng_msg_free(pending);
    pending = NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    wa_sock_opts_t o = {0, 0, 2000};

    nops = seq = 0;
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN,
                                 "inproc://ss-state-store", NULL, &f->rep),
                     WA_OK);
    assert_int_equal(
        wa_bus_server_start(f->rep, 2, store_handler, NULL, &f->srv), WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN,
                                 "inproc://ss-state-events", &o, &f->sub),
                     WA_OK);
    assert_int_equal(wa_bus_subscribe(f->sub, NULL), WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL,
                                 "inproc://ss-state-store", NULL, &f->ss.store),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL,
                                 "inproc://ss-state-events", NULL,
                                 &f->ss.events),
                     WA_OK);
    assert_int_equal(
        storeio__new(f->ss.store, f->ss.events, 2, 1000, 2000, &f->ss.io),
        WA_OK);
    usleep(50 * 1000); /* let the dialers connect */
    f->s.ss = &f->ss;
    snprintf(f->s.user, sizeof(f->s.user), "u1");
    f->s.status = D;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    storeio__free(f->ss.io, 2000);
    drop_pending();
    wa_bus_server_stop(f->srv);
    nng_close(f->ss.store);
    nng_close(f->ss.events);
    nng_close(f->rep);
    nng_close(f->sub);
    free(f->s.qr_raw);
    free(f->s.qr_url);
    free(f);
    return 0;
}

static void drain(fx_t *f)
{
    for (int i = 0; i < 200 && storeio__backlog(f->ss.io) > 0; i++)
        usleep(10 * 1000);
    assert_int_equal(storeio__backlog(f->ss.io), 0);
}

/* The next event on the SUB socket, in either form. */
static wa_err_t next_event(fx_t *f, wa_event_t *ev)
{
    for (;;) {
        int rv;

        if (pending != NULL && wa_pub_split_next(&pending_split, ev) == WA_OK)
            return WA_OK;
        if (pending != NULL)
            assert_int_equal(pending_split.bad, 0);
        drop_pending();
        if ((rv = nng_recvmsg(f->sub, &pending, 0)) != 0)
            return wa_bus_err(rv);
        assert_int_equal(wa_pub_split_begin(&pending_split,
                                            nng_msg_body(pending),
                                            nng_msg_len(pending)),
                         WA_OK);
    }
}

static void expect_event(fx_t *f, wa_event_type_t type, int64_t want_seq,
                         wa_event_t *ev)
{
    assert_int_equal(next_event(f, ev), WA_OK);
    assert_string_equal(ev->user, "u1");
    assert_int_equal(ev->type, type);
    assert_int_equal(ev->seq, want_seq);
}

static void written_before_published(void **state)
{
    fx_t *f = *state;
    ss_transition_t t = {0};
    wa_event_t ev;
    const char *qr = "2@ref,key1,key2,secret,1";

    t.to = I;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    expect_event(f, WA_EV_STATUS, 1, &ev);
    assert_string_equal(cJSON_GetObjectItem(ev.data, "status")->valuestring,
                        "initializing");
    wa_event_clear(&ev);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_int_equal(nops, 2);
    assert_string_equal(oplog[0], "session.upsert");
    assert_string_equal(oplog[1], "event.record");
    pthread_mutex_unlock(&mu);

    t.to = Q;
    t.qr = qr;
    f->s.qr_count = 1;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    assert_int_equal(f->s.status, Q);
    assert_non_null(f->s.qr_url);
    expect_event(f, WA_EV_QR, 2, &ev);
    assert_string_equal(cJSON_GetObjectItem(ev.data, "qr")->valuestring, qr);
    assert_int_equal(
        strncmp(cJSON_GetObjectItem(ev.data, "qrDataUrl")->valuestring,
                "data:image/png;base64,", 22),
        0);
    wa_event_clear(&ev);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_string_equal(oplog[2], "session.upsert");
    assert_non_null(strstr(datalog[2], "\"qrCode\":\"data:image/png;base64,"));
    assert_string_equal(oplog[3], "event.record");
    assert_null(strstr(datalog[3], qr)); /* never in the log */
    assert_null(strstr(datalog[3], "base64"));
    pthread_mutex_unlock(&mu);

    memset(&t, 0, sizeof(t));
    t.to = A;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    assert_null(f->s.qr_url); /* cleared after qr */
    expect_event(f, WA_EV_STATUS, 3, &ev);
    wa_event_clear(&ev);
    t.to = R;
    t.phone = "41791112233";
    t.name = "Dr \"Who\"";
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    expect_event(f, WA_EV_READY, 4, &ev);
    assert_string_equal(
        cJSON_GetObjectItem(ev.data, "phoneNumber")->valuestring,
        "41791112233");
    wa_event_clear(&ev);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_non_null(strstr(datalog[4], "\"qrCode\":null"));
    assert_non_null(strstr(datalog[6], "\"phoneNumber\":\"41791112233\""));
    assert_non_null(strstr(datalog[6], "\"connectedAt\":\""));
    pthread_mutex_unlock(&mu);
}

static void illegal_changes_nothing(void **state)
{
    fx_t *f = *state;
    ss_transition_t t = {0};

    t.to = R;
    t.phone = "41791112233";
    assert_int_equal(state__set(&f->s, &t), WA_ECONFLICT);
    assert_int_equal(f->s.status, D);
    t.to = Q;
    t.qr = "x";
    assert_int_equal(state__set(&f->s, &t), WA_ECONFLICT);
    /* the same status again: nothing written */
    t.to = D;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_int_equal(nops, 0);
    pthread_mutex_unlock(&mu);
    /* a bad QR string is refused before anything changes */
    f->s.status = I;
    t.to = Q;
    t.qr = "";
    assert_int_equal(state__set(&f->s, &t), WA_EINVAL);
    assert_int_equal(f->s.status, I);
}

static void message_body_published_not_stored(void **state)
{
    fx_t *f = *state;
    cJSON *m = cJSON_Parse("{\"id\":\"x\",\"chatId\":\"41790000009@c.us\","
                           "\"body\":\"secret body\",\"fromMe\":false}");
    wa_event_t ev;

    f->s.status = R;
    assert_int_equal(state__message(&f->s, m), WA_OK);
    expect_event(f, WA_EV_MESSAGE, 1, &ev);
    assert_string_equal(cJSON_GetObjectItem(ev.data, "body")->valuestring,
                        "secret body");
    wa_event_clear(&ev);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_string_equal(oplog[1], "event.record");
    assert_null(strstr(datalog[1], "secret body"));
    assert_non_null(strstr(datalog[1], "41790000009@c.us"));
    pthread_mutex_unlock(&mu);
}

static void disconnect_forgets_account(void **state)
{
    fx_t *f = *state;
    ss_transition_t t = {0};
    wa_event_t ev;

    f->s.status = R;
    strcpy(f->s.phone, "41791112233");
    t.to = D;
    t.reason = "logout";
    t.clear_account = true;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    assert_string_equal(f->s.phone, "");
    expect_event(f, WA_EV_DISCONNECTED, 1, &ev);
    assert_string_equal(cJSON_GetObjectItem(ev.data, "reason")->valuestring,
                        "logout");
    wa_event_clear(&ev);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_non_null(strstr(datalog[0], "\"phoneNumber\":null"));
    pthread_mutex_unlock(&mu);
}

/* What the barrier saw of the store when it ran. */
static int barrier_saw = -1;

static void barrier_done(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    barrier_saw = nops;
    pthread_mutex_unlock(&mu);
}

/* A barrier runs only after the user's earlier writes reached the store
 * (wa.disconnect answers through one). */
static void barrier_after_writes(void **state)
{
    fx_t *f = *state;
    ss_transition_t t = {0};

    t.to = I;
    assert_int_equal(state__set(&f->s, &t), WA_OK);
    storeio__barrier(f->ss.io, "u1", barrier_done, NULL);
    drain(f);
    pthread_mutex_lock(&mu);
    assert_int_equal(barrier_saw, 2); /* session.upsert, event.record */
    pthread_mutex_unlock(&mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test_setup_teardown(written_before_published, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(illegal_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(message_body_published_not_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(disconnect_forgets_account, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(barrier_after_writes, setup, teardown),
    };

    wa_log_init("ss_state_test", WA_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
