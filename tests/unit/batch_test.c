/*
 * batch_test.c - "bus.batch": the server taking batches apart (bus.c) and
 * the batching client (batch.c, wa_bus_batcher_*), over inproc:// sockets.
 *
 * The client is tested against a scripted peer (a bare REP socket on a
 * thread) that shows what went on the wire, and against the real server.
 * Timing checks are deadline checks, never performance assertions. cmocka
 * asserts only run on the main thread; helper threads record what they saw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "wa/bus.h"

static void inproc_url(char *buf, size_t len)
{
    static atomic_int n;

    snprintf(buf, len, "inproc://batch_test_%d", atomic_fetch_add(&n, 1));
}

/* {"op","user","rid"} of a request: what every peer here answers. */
static cJSON *echo_of(const wa_request_t *req)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "op", wa_op_name(req->op));
    cJSON_AddStringToObject(d, "user", req->user);
    cJSON_AddStringToObject(d, "rid", req->rid);
    return d;
}

static bool is_echo(const wa_reply_t *rep, const char *user, const char *rid)
{
    const char *u =
        cJSON_GetStringValue(cJSON_GetObjectItem(rep->data, "user"));
    const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(rep->data, "rid"));

    return rep->ok && u != NULL && r != NULL && strcmp(u, user) == 0 &&
           strcmp(r, rid) == 0;
}

/* ---- the server side ---- */

/* Echoes, except user "failme" (WA_ENOTFOUND) and user "slow" (answered
 * 30 ms later from another thread, so members finish out of order). */
static void *late_answer(void *arg)
{
    wa_bus_job_t *job = arg;

    nng_msleep(30);
    wa_bus_reply_ok(job, echo_of(wa_bus_job_request(job)));
    return NULL;
}

static atomic_int handled;

static void handler(void *arg, wa_bus_job_t *job)
{
    const wa_request_t *req = wa_bus_job_request(job);
    pthread_t t;
    (void)arg;

    atomic_fetch_add(&handled, 1);
    if (strcmp(req->user, "failme") == 0) {
        wa_bus_reply_err(job, WA_ENOTFOUND, "no such session");
    } else if (strcmp(req->user, "slow") == 0 &&
               pthread_create(&t, NULL, late_answer, job) == 0) {
        pthread_detach(t);
    } else {
        wa_bus_reply_ok(job, echo_of(req));
    }
}

typedef struct rig {
    nng_socket rep, req;
    wa_bus_server_t *srv;
} rig_t;

static void rig_start(rig_t *r, int workers)
{
    char url[64];

    inproc_url(url, sizeof(url));
    assert_int_equal(
        wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &r->rep), WA_OK);
    assert_int_equal(
        wa_bus_server_start(r->rep, workers, handler, NULL, &r->srv), WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &r->req),
                     WA_OK);
}

static void rig_stop(rig_t *r)
{
    nng_close(r->req);
    wa_bus_server_stop(r->srv);
    nng_close(r->rep);
}

/* Append the request envelope of (op name, user, rid) to calls, through
 * the real encoder, or a hand-written one when raw is given. */
static void add_call(cJSON *calls, wa_op_t op, const char *user,
                     const char *rid, const char *raw)
{
    char *buf = NULL;
    size_t len;

    if (raw == NULL) {
        assert_int_equal(wa_request_encode(op, user, rid, NULL, &buf, &len),
                         WA_OK);
        raw = buf;
    }
    cJSON_AddItemToArray(calls, cJSON_Parse(raw));
    free(buf);
}

static void test_server_members(void **state)
{
    cJSON *args = cJSON_CreateObject();
    cJSON *calls = cJSON_AddArrayToObject(args, "calls");
    cJSON *replies;
    wa_reply_t rep, m;
    rig_t r;
    (void)state;

    rig_start(&r, 2);
    add_call(calls, WA_OP_SESSION_GET, "slow", "r0", NULL);
    add_call(calls, WA_OP_SESSION_GET, "alice", "r1", NULL);
    add_call(calls, WA_OP_LOG_LIST, "failme", "r2", NULL);
    add_call(calls, 0, NULL, NULL,
             "{\"v\":1,\"op\":\"nope\",\"user\":\"a\",\"rid\":\"r3\","
             "\"args\":{}}");
    add_call(
        calls, 0, NULL, NULL,
        "{\"v\":1,\"op\":\"session.get\",\"user\":\"a\\u0001b\",\"rid\":\"r4\","
        "\"args\":{}}");
    /* A batch within a batch is refused, whatever it holds. */
    add_call(calls, WA_OP_BUS_BATCH, "", "r5", NULL);
    add_call(calls, WA_OP_SESSION_GET, "bob", "r6", NULL);

    atomic_store(&handled, 0);
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_BUS_BATCH, "", "batch-1", args, 2000, &rep),
        WA_OK);
    replies = cJSON_GetObjectItem(rep.data, "replies");
    assert_true(cJSON_IsArray(replies));
    assert_int_equal(cJSON_GetArraySize(replies), 7);

    /* In request order, whatever order they were answered in. */
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 0), &m),
                     WA_OK);
    assert_true(is_echo(&m, "slow", "r0"));
    wa_reply_clear(&m);
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 1), &m),
                     WA_OK);
    assert_true(is_echo(&m, "alice", "r1"));
    wa_reply_clear(&m);
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 2), &m),
                     WA_OK);
    assert_false(m.ok);
    assert_int_equal(m.err, WA_ENOTFOUND);
    assert_string_equal(m.message, "no such session");
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 3), &m),
                     WA_OK);
    assert_int_equal(m.err, WA_EUNKNOWNOP);
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 4), &m),
                     WA_OK);
    assert_int_equal(m.err, WA_EPROTO);
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 5), &m),
                     WA_OK);
    assert_int_equal(m.err, WA_EINVAL);
    assert_int_equal(wa_reply_from_json(cJSON_GetArrayItem(replies, 6), &m),
                     WA_OK);
    assert_true(is_echo(&m, "bob", "r6"));
    wa_reply_clear(&m);
    /* Only the well-formed members reached the handler. */
    assert_int_equal(atomic_load(&handled), 4);
    wa_reply_clear(&rep);
    cJSON_Delete(args);
    rig_stop(&r);
}

static void test_server_limits(void **state)
{
    cJSON *args;
    wa_reply_t rep;
    rig_t r;
    (void)state;

    rig_start(&r, 1);
    /* No calls member, an empty one, one that is not an array. */
    args = cJSON_CreateObject();
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_BUS_BATCH, "", "b1", args, 2000, &rep),
        WA_EINVAL);
    cJSON_AddArrayToObject(args, "calls");
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_BUS_BATCH, "", "b2", args, 2000, &rep),
        WA_EINVAL);
    cJSON_DeleteItemFromObject(args, "calls");
    cJSON_AddStringToObject(args, "calls", "x");
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_BUS_BATCH, "", "b3", args, 2000, &rep),
        WA_EINVAL);
    cJSON_Delete(args);

    /* One more than WA_BUS_BATCH_MAX. */
    args = cJSON_CreateObject();
    cJSON *calls = cJSON_AddArrayToObject(args, "calls");
    for (int i = 0; i <= WA_BUS_BATCH_MAX; i++)
        add_call(calls, WA_OP_PING, "", "p", NULL);
    atomic_store(&handled, 0);
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_BUS_BATCH, "", "b4", args, 2000, &rep),
        WA_EINVAL);
    assert_int_equal(atomic_load(&handled), 0);
    cJSON_Delete(args);
    rig_stop(&r);
}

/* ---- the client against a scripted peer ---- */

typedef enum peer_mode {
    P_ECHO,        /* answer singles and batches */
    P_NO_BATCH,    /* answer bus.batch with unknown_op, as an old server */
    P_SHORT_BATCH, /* answer a batch with one reply too few */
    P_SILENT,      /* never answer */
    P_NO_ANSWER_TO_BATCH, /* answer singles, never a batch */
} peer_mode_t;

typedef struct peer {
    nng_socket rep;
    peer_mode_t mode;
    int first_delay_ms; /* hold the first request this long */
    atomic_bool quit;
    /* What came, on the peer's thread: */
    atomic_int received, singles, batches, members, max_members;
    pthread_t thread;
} peer_t;

static char *encode_echo(const wa_request_t *req, size_t *len)
{
    cJSON *d = echo_of(req);
    char *buf = NULL;

    if (wa_reply_encode_ok(d, &buf, len) != WA_OK)
        buf = NULL;
    cJSON_Delete(d);
    return buf;
}

static void peer_batch(peer_t *p, wa_request_t *req, char **out, size_t *len)
{
    cJSON *calls = cJSON_GetObjectItem(req->args, "calls");
    int n = cJSON_GetArraySize(calls), m, k = 0;
    char *parts[WA_BUS_BATCH_MAX];
    size_t lens[WA_BUS_BATCH_MAX];

    atomic_fetch_add(&p->batches, 1);
    atomic_fetch_add(&p->members, n);
    m = atomic_load(&p->max_members);
    if (n > m)
        atomic_store(&p->max_members, n);
    if (p->mode == P_NO_BATCH) {
        (void)wa_reply_encode_err(WA_EUNKNOWNOP, NULL, out, len);
        return;
    }
    for (cJSON *c = calls->child; c != NULL && k < WA_BUS_BATCH_MAX;
         c = c->next) {
        wa_request_t member;

        if (wa_request_from_json(c, &member) != WA_OK)
            break;
        parts[k] = encode_echo(&member, &lens[k]);
        wa_request_clear(&member);
        k++;
    }
    if (p->mode == P_SHORT_BATCH && k > 0)
        free(parts[--k]);
    if (k == 0 ||
        wa_batch_reply_encode(parts, lens, (size_t)k, out, len) != WA_OK)
        (void)wa_reply_encode_err(WA_EINTERNAL, NULL, out, len);
    for (int i = 0; i < k; i++)
        free(parts[i]);
}

static void *peer_main(void *arg)
{
    peer_t *p = arg;
    bool first = true;

    while (!atomic_load(&p->quit)) {
        char *buf = NULL, *out = NULL;
        size_t len = 0, olen = 0;
        wa_request_t req;
        bool batch;

        if (nng_recv(p->rep, &buf, &len, NNG_FLAG_ALLOC) != 0)
            continue; /* receive timeout: look at quit again */
        if (wa_request_decode(buf, len, &req) != WA_OK) {
            nng_free(buf, len);
            continue;
        }
        nng_free(buf, len);
        atomic_fetch_add(&p->received, 1);
        if (first && p->first_delay_ms > 0)
            nng_msleep(p->first_delay_ms);
        first = false;
        if (req.op == WA_OP_BUS_BATCH) {
            peer_batch(p, &req, &out, &olen);
        } else {
            atomic_fetch_add(&p->singles, 1);
            out = encode_echo(&req, &olen);
        }
        batch = req.op == WA_OP_BUS_BATCH;
        wa_request_clear(&req);
        if (p->mode != P_SILENT && out != NULL &&
            !(p->mode == P_NO_ANSWER_TO_BATCH && batch))
            (void)nng_send(p->rep, out, olen, 0);
        free(out);
    }
    return NULL;
}

static void peer_start(peer_t *p, peer_mode_t mode, int first_delay_ms,
                       nng_socket *req)
{
    wa_sock_opts_t o = {.send_timeout_ms = 1000, .recv_timeout_ms = 50};
    char url[64];

    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->first_delay_ms = first_delay_ms;
    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, &o, &p->rep),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, req),
                     WA_OK);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer_t *p)
{
    atomic_store(&p->quit, true);
    pthread_join(p->thread, NULL);
    nng_close(p->rep);
}

#define CALLERS 8

typedef struct caller {
    wa_bus_batcher_t *b;
    int id, calls, timeout_ms;
    int ok, wrong;
    wa_err_t last_err;
    atomic_bool *go;
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;

    while (c->go != NULL && !atomic_load(c->go))
        nng_msleep(1);
    for (int i = 0; i < c->calls; i++) {
        char rid[32], user[16];
        wa_reply_t rep;
        wa_err_t err;

        snprintf(rid, sizeof(rid), "c%d-%d", c->id, i);
        snprintf(user, sizeof(user), "user-%d", c->id);
        err = wa_bus_batcher_call(c->b, WA_OP_SESSION_GET, user, rid, NULL,
                                  c->timeout_ms, &rep);
        if (err != WA_OK) {
            c->last_err = err;
            continue;
        }
        if (is_echo(&rep, user, rid))
            c->ok++;
        else
            c->wrong++;
        wa_reply_clear(&rep);
    }
    return NULL;
}

/* A batcher with one place on the wire, on a scripted peer, and the
 * callers of one burst: c[CALLERS] is the lone first call. */
typedef struct burst {
    peer_t p;
    nng_socket req;
    wa_bus_batcher_t *b;
    caller_t c[CALLERS + 1];
} burst_t;

static void burst_open(burst_t *f, peer_mode_t mode, int first_delay_ms)
{
    peer_start(&f->p, mode, first_delay_ms, &f->req);
    assert_int_equal(wa_bus_batcher_new(f->req, 1, &f->b), WA_OK);
}

static void burst_close(burst_t *f)
{
    wa_bus_batcher_free(f->b);
    nng_close(f->req);
    peer_stop(&f->p);
}

/* One call holds the only place on the wire (the peer sits on it for
 * first_delay_ms); CALLERS more arrive meanwhile and queue. Caller 0 has
 * first_ms to the others' timeout_ms. */
static void burst_run(burst_t *f, int timeout_ms, int first_ms)
{
    pthread_t t[CALLERS + 1];
    caller_t *c = f->c;
    int before = atomic_load(&f->p.received);

    c[CALLERS] =
        (caller_t){.b = f->b, .id = 99, .calls = 1, .timeout_ms = timeout_ms};
    assert_int_equal(
        pthread_create(&t[CALLERS], NULL, caller_main, &c[CALLERS]), 0);
    /* The lone call is on the wire: the peer has it (a loaded machine
     * may take longer than any fixed sleep to get it there). */
    for (int ms = 0; atomic_load(&f->p.received) == before && ms < 10000; ms++)
        nng_msleep(1);
    assert_true(atomic_load(&f->p.received) > before);
    for (int i = 0; i < CALLERS; i++) {
        c[i] = (caller_t){.b = f->b,
                          .id = i,
                          .calls = 1,
                          .timeout_ms = i == 0 ? first_ms : timeout_ms};
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
    }
    for (int i = 0; i <= CALLERS; i++)
        pthread_join(t[i], NULL);
}

static void test_batcher_forms_batch(void **state)
{
    wa_bus_batcher_stats_t st;
    burst_t f;
    (void)state;

    burst_open(&f, P_ECHO, 400);
    burst_run(&f, 5000, 5000);
    for (int i = 0; i <= CALLERS; i++) {
        assert_int_equal(f.c[i].last_err, WA_OK);
        assert_int_equal(f.c[i].wrong, 0);
        assert_int_equal(f.c[i].ok, 1);
    }
    /* The lone call went as a plain request; the queued ones shared. */
    assert_true(atomic_load(&f.p.batches) >= 1);
    assert_true(atomic_load(&f.p.max_members) >= 2);
    assert_int_equal(atomic_load(&f.p.singles) + atomic_load(&f.p.members),
                     CALLERS + 1);
    wa_bus_batcher_stats(f.b, &st);
    assert_int_equal(st.calls, CALLERS + 1);
    assert_int_equal(st.batches, atomic_load(&f.p.batches));
    assert_int_equal(st.batched, atomic_load(&f.p.members));
    burst_close(&f);
}

static void test_batcher_old_peer(void **state)
{
    int batches;
    burst_t f;
    (void)state;

    burst_open(&f, P_NO_BATCH, 400);
    burst_run(&f, 5000, 5000);
    for (int i = 0; i <= CALLERS; i++) {
        assert_int_equal(f.c[i].last_err, WA_OK);
        assert_int_equal(f.c[i].ok, 1);
    }
    /* Refused once, then every call went alone, and keeps doing so. */
    batches = atomic_load(&f.p.batches);
    assert_int_equal(batches, 1);
    assert_int_equal(atomic_load(&f.p.singles), CALLERS + 1);
    burst_run(&f, 5000, 5000);
    for (int i = 0; i <= CALLERS; i++)
        assert_int_equal(f.c[i].ok, 1);
    assert_int_equal(atomic_load(&f.p.batches), batches);
    burst_close(&f);
}

static void test_batcher_short_reply(void **state)
{
    int proto = 0;
    burst_t f;
    (void)state;

    burst_open(&f, P_SHORT_BATCH, 400);
    burst_run(&f, 5000, 5000);
    /* The lone call is answered; a batch answered with the wrong count is
     * the peer's fault for every member, never a reply given to the
     * wrong caller. */
    assert_int_equal(f.c[CALLERS].ok, 1);
    for (int i = 0; i < CALLERS; i++) {
        assert_int_equal(f.c[i].wrong, 0);
        if (f.c[i].last_err == WA_EPROTO)
            proto++;
        else
            assert_int_equal(f.c[i].ok, 1); /* went alone */
    }
    assert_true(atomic_load(&f.p.batches) >= 1);
    assert_int_equal(proto, atomic_load(&f.p.members));
    burst_close(&f);
}

static void test_batcher_deadline(void **state)
{
    nng_time t0;
    int64_t took;
    burst_t f;
    (void)state;

    burst_open(&f, P_SILENT, 0);
    t0 = nng_clock();
    burst_run(&f, 300, 300);
    took = (int64_t)(nng_clock() - t0);
    for (int i = 0; i <= CALLERS; i++)
        assert_int_equal(f.c[i].last_err, WA_ETIMEDOUT);
    /* The queued calls started 50 ms after the lone one: none waits for
     * two deadlines in a row. */
    assert_true(took >= 300);
    assert_true(took < 300 + 50 + 300);
    burst_close(&f);
}

/* A batch waits only as long as its most urgent member may; when it times
 * out, the members with time left go again alone and are answered. */
static void test_batcher_urgent_member(void **state)
{
    burst_t f;
    (void)state;

    burst_open(&f, P_NO_ANSWER_TO_BATCH, 300);
    burst_run(&f, 5000, 500);
    assert_int_equal(f.c[CALLERS].ok, 1);
    assert_true(atomic_load(&f.p.batches) >= 1);
    assert_int_equal(f.c[0].last_err, WA_ETIMEDOUT);
    for (int i = 1; i < CALLERS; i++) {
        assert_int_equal(f.c[i].last_err, WA_OK);
        assert_int_equal(f.c[i].ok, 1);
    }
    burst_close(&f);
}

static void test_batcher_bad_args(void **state)
{
    wa_bus_batcher_t *b;
    wa_reply_t rep;
    nng_socket req;
    peer_t p;
    (void)state;

    peer_start(&p, P_ECHO, 0, &req);
    assert_int_equal(wa_bus_batcher_new(req, 0, &b), WA_EINVAL);
    assert_int_equal(wa_bus_batcher_new(req, 1, NULL), WA_EINVAL);
    assert_int_equal(wa_bus_batcher_new(req, 2, &b), WA_OK);
    assert_int_equal(
        wa_bus_batcher_call(b, WA_OP_PING, "", "r", NULL, -1, &rep), WA_EINVAL);
    assert_int_equal(
        wa_bus_batcher_call(b, WA_OP_PING, "a\nb", "r", NULL, 100, &rep),
        WA_EINVAL);
    assert_int_equal(
        wa_bus_batcher_call(NULL, WA_OP_PING, "", "r", NULL, 100, &rep),
        WA_EINVAL);
    assert_int_equal(
        wa_bus_batcher_call(b, WA_OP_PING, "", "r", NULL, 100, NULL),
        WA_EINVAL);
    /* 0 is the default timeout, as for wa_bus_call. */
    assert_int_equal(
        wa_bus_batcher_call(b, WA_OP_PING, "", "r0", NULL, 0, &rep), WA_OK);
    assert_true(is_echo(&rep, "", "r0"));
    wa_reply_clear(&rep);
    wa_bus_batcher_free(b);
    wa_bus_batcher_free(NULL);
    nng_close(req);
    peer_stop(&p);
}

/* ---- the client against the real server ---- */

static void test_batcher_many_callers(void **state)
{
    wa_bus_batcher_stats_t st;
    caller_t c[CALLERS * 2];
    pthread_t t[CALLERS * 2];
    atomic_bool go = false;
    wa_bus_batcher_t *b;
    rig_t r;
    (void)state;

    rig_start(&r, 2);
    assert_int_equal(wa_bus_batcher_new(r.req, 2, &b), WA_OK);
    atomic_store(&handled, 0);
    for (int i = 0; i < CALLERS * 2; i++) {
        c[i] = (caller_t){
            .b = b, .id = i, .calls = 100, .timeout_ms = 5000, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
    }
    atomic_store(&go, true);
    for (int i = 0; i < CALLERS * 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].last_err, WA_OK);
        assert_int_equal(c[i].wrong, 0);
        assert_int_equal(c[i].ok, 100);
    }
    assert_int_equal(atomic_load(&handled), CALLERS * 2 * 100);
    wa_bus_batcher_stats(b, &st);
    assert_int_equal(st.calls, CALLERS * 2 * 100);
    assert_true(st.batched <= st.calls);
    wa_bus_batcher_free(b);
    rig_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_members),
        cmocka_unit_test(test_server_limits),
        cmocka_unit_test(test_batcher_forms_batch),
        cmocka_unit_test(test_batcher_old_peer),
        cmocka_unit_test(test_batcher_short_reply),
        cmocka_unit_test(test_batcher_deadline),
        cmocka_unit_test(test_batcher_urgent_member),
        cmocka_unit_test(test_batcher_bad_args),
        cmocka_unit_test(test_batcher_many_callers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
