/*
 * bus_test.c - wa/bus.h over real nng sockets (inproc:// and
 * tcp://127.0.0.1 on a free port).
 *
 * Timing checks are correctness checks of deadlines (at least the timeout,
 * well under twice it), never performance assertions. cmocka asserts only
 * run on the main thread; helper threads record what they saw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "free_port.h"
#include "wa/bus.h"

/* ---- helpers ---- */

/* A free TCP port on 127.0.0.1: bind port 0, read it back, release it. */
static int free_port(void)
{
    int port = test_free_port();

    assert_true(port > 0);
    return port;
}

static void tcp_url(char *buf, size_t len)
{
    snprintf(buf, len, "tcp://127.0.0.1:%d", free_port());
}

static void inproc_url(char *buf, size_t len)
{
    static atomic_int n;

    snprintf(buf, len, "inproc://bus_test_%d", atomic_fetch_add(&n, 1));
}

static int64_t elapsed_ms(nng_time start)
{
    return (int64_t)(nng_clock() - start);
}

static const wa_sock_opts_t *opts_timeouts(wa_sock_opts_t *o, int send_ms,
                                           int recv_ms)
{
    memset(o, 0, sizeof(*o));
    o->send_timeout_ms = send_ms;
    o->recv_timeout_ms = recv_ms;
    return o;
}

/* What a test handler does, and what it saw. */
typedef struct handler_ctx {
    int delay_ms;  /* sleep this long (on nng's thread) */
    wa_err_t fail; /* answer with this error if not WA_OK */
    const char *fail_msg;
    atomic_int calls;
    atomic_int active;
    atomic_int max_active;
} handler_ctx_t;

/* Data echoing the request: {"op","user","rid","args"}. */
static cJSON *echo_of(const wa_request_t *req)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "op", wa_op_name(req->op));
    cJSON_AddStringToObject(d, "user", req->user);
    cJSON_AddStringToObject(d, "rid", req->rid);
    cJSON_AddItemToObject(d, "args", cJSON_Duplicate(req->args, 1));
    return d;
}

static void test_handler(void *arg, wa_bus_job_t *job)
{
    handler_ctx_t *h = arg;
    int a, m;
    cJSON *data;

    atomic_fetch_add(&h->calls, 1);
    a = atomic_fetch_add(&h->active, 1) + 1;
    m = atomic_load(&h->max_active);
    while (a > m && !atomic_compare_exchange_weak(&h->max_active, &m, a))
        ;
    if (h->delay_ms > 0)
        nng_msleep(h->delay_ms);
    if (h->fail != WA_OK) {
        atomic_fetch_sub(&h->active, 1);
        wa_bus_reply_err(job, h->fail, h->fail_msg);
        return;
    }
    data = echo_of(wa_bus_job_request(job));
    atomic_fetch_sub(&h->active, 1);
    wa_bus_reply_ok(job, data); /* synchronous answer inside the callback */
}

/* A REP socket listening on url with a server of `workers` on h. */
typedef struct rig {
    nng_socket rep;
    nng_socket req;
    wa_bus_server_t *srv;
    char url[64];
} rig_t;

static void rig_start(rig_t *r, bool tcp, int workers, wa_bus_handler_fn fn,
                      void *arg, int req_timeout_ms)
{
    wa_sock_opts_t o;

    memset(r, 0, sizeof(*r));
    if (tcp)
        tcp_url(r->url, sizeof(r->url));
    else
        inproc_url(r->url, sizeof(r->url));
    assert_int_equal(
        wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, r->url, NULL, &r->rep), WA_OK);
    assert_int_equal(wa_bus_server_start(r->rep, workers, fn, arg, &r->srv),
                     WA_OK);
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, r->url,
                    opts_timeouts(&o, req_timeout_ms, req_timeout_ms), &r->req),
        WA_OK);
}

static void rig_stop(rig_t *r)
{
    nng_close(r->req);
    wa_bus_server_stop(r->srv);
    nng_close(r->rep);
}

/* ---- wa_bus_open ---- */

static void check_opts(nng_socket s, size_t recv_max, int send_ms, int recv_ms)
{
    size_t sz;
    nng_duration d;

    assert_int_equal(nng_socket_get_size(s, NNG_OPT_RECVMAXSZ, &sz), 0);
    assert_int_equal(sz, recv_max);
    assert_int_equal(nng_socket_get_ms(s, NNG_OPT_SENDTIMEO, &d), 0);
    assert_int_equal(d, send_ms);
    assert_int_equal(nng_socket_get_ms(s, NNG_OPT_RECVTIMEO, &d), 0);
    assert_int_equal(d, recv_ms);
}

static void test_open_each_kind(void **state)
{
    static const wa_sock_kind_t kinds[] = {WA_SOCK_REQ, WA_SOCK_REP,
                                           WA_SOCK_PUB, WA_SOCK_SUB};
    static const int protos[] = {NNG_REQ0_SELF, NNG_REP0_SELF, 0x20, 0x21};
    wa_sock_opts_t o = {
        .recv_max = 1000, .send_timeout_ms = 250, .recv_timeout_ms = 300};
    (void)state;

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t room = kinds[i] == WA_SOCK_SUB ? WA_USER_MAX + 1 : 0;
        char lurl[64], durl[64];
        nng_socket l, d;
        nng_duration ms;
        int proto;

        inproc_url(lurl, sizeof(lurl));
        tcp_url(durl, sizeof(durl)); /* nobody there: dial is background */
        assert_int_equal(wa_bus_open(kinds[i], WA_SOCK_LISTEN, lurl, NULL, &l),
                         WA_OK);
        check_opts(l, WA_ENVELOPE_MAX + room, WA_BUS_DEFAULT_TIMEOUT_MS,
                   WA_BUS_DEFAULT_TIMEOUT_MS);
        assert_int_equal(nng_socket_get_int(l, NNG_OPT_PROTO, &proto), 0);
        assert_int_equal(proto, protos[i]);

        assert_int_equal(wa_bus_open(kinds[i], WA_SOCK_DIAL, durl, &o, &d),
                         WA_OK);
        check_opts(d, 1000 + room, 250, 300);
        assert_int_equal(nng_socket_get_ms(d, NNG_OPT_RECONNMINT, &ms), 0);
        assert_int_equal(ms, 100);
        assert_int_equal(nng_socket_get_ms(d, NNG_OPT_RECONNMAXT, &ms), 0);
        assert_int_equal(ms, 250);
        if (kinds[i] == WA_SOCK_REQ) {
            /* Beyond send + receive timeout: no resend for slowness. */
            assert_int_equal(nng_socket_get_ms(d, NNG_OPT_REQ_RESENDTIME, &ms),
                             0);
            assert_true(ms > 250 + 300);
        }
        nng_close(d);
        nng_close(l);
    }
}

static void test_open_bad_args(void **state)
{
    wa_sock_opts_t o = {.send_timeout_ms = -1};
    nng_socket s;
    (void)state;

    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, "inproc://x", &o, &s),
        WA_EINVAL);
    o.send_timeout_ms = 0;
    o.recv_timeout_ms = -5;
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, "inproc://x", &o, &s),
        WA_EINVAL);
    assert_int_equal(
        wa_bus_open((wa_sock_kind_t)42, WA_SOCK_DIAL, "inproc://x", NULL, &s),
        WA_EINVAL);
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, (wa_sock_mode_t)42, "inproc://x", NULL, &s),
        WA_EINVAL);
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, "inproc://x", NULL, NULL),
        WA_EINVAL);
}

static void test_open_bad_url(void **state)
{
    static const char *const bad[] = {
        "nope://x",           /* no such transport */
        "not a url",          /* no scheme */
        "tcp://",             /* no address */
        "tcp://127.0.0.1",    /* no port */
        "tcp://127.0.0.1:x1", /* bad port */
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:70000",
        "",
    };
    nng_socket s;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, bad[i], NULL, &s),
            WA_EINVAL);
        assert_int_equal(
            wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, bad[i], NULL, &s),
            WA_EINVAL);
    }
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, NULL, NULL, &s),
                     WA_EINVAL);
    /* No host: nothing to dial (listening on it would mean all addresses). */
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, "tcp://:5555", NULL, &s),
        WA_EINVAL);
}

static void test_open_addr_in_use(void **state)
{
    char url[64];
    nng_socket a, b;
    (void)state;

    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &a),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &b),
                     WA_EUNAVAIL);
    nng_close(a);

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &a),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &b),
                     WA_EUNAVAIL);
    nng_close(a);
}

/* A service's own address: what cannot be used is configuration, said in
 * one line with nng's reason. */
static void test_listen_config(void **state)
{
    char url[64], why[256], want[128];
    nng_socket a, b;
    (void)state;

    tcp_url(url, sizeof(url));
    strcpy(why, "untouched");
    assert_int_equal(
        wa_bus_listen(WA_SOCK_REP, url, NULL, &a, why, sizeof(why)), WA_OK);
    assert_string_equal(why, "untouched");
    assert_int_equal(
        wa_bus_listen(WA_SOCK_SUB, url, NULL, &b, why, sizeof(why)),
        WA_ECONFIG);
    snprintf(want, sizeof(want), "cannot listen on %s: %s", url,
             nng_strerror(NNG_EADDRINUSE));
    assert_string_equal(why, want);
    /* why is optional, and cut to its size. */
    assert_int_equal(wa_bus_listen(WA_SOCK_REP, url, NULL, &b, NULL, 0),
                     WA_ECONFIG);
    assert_int_equal(wa_bus_listen(WA_SOCK_REP, url, NULL, &b, why, 10),
                     WA_ECONFIG);
    assert_string_equal(why, "cannot li");
    nng_close(a);

    /* Not this host's address; not a URL; a missing ipc:// directory. */
    assert_int_equal(wa_bus_listen(WA_SOCK_REP, "tcp://192.0.2.1:5999", NULL,
                                   &b, why, sizeof(why)),
                     WA_ECONFIG);
    assert_non_null(strstr(why, "cannot listen on tcp://192.0.2.1:5999: "));
    assert_int_equal(wa_bus_listen(WA_SOCK_REP, "tcp://127.0.0.1:0", NULL, &b,
                                   why, sizeof(why)),
                     WA_ECONFIG);
    assert_int_equal(wa_bus_listen(WA_SOCK_REP,
                                   "ipc:///nonexistent-wa-dir/x.sock", NULL, &b,
                                   why, sizeof(why)),
                     WA_ECONFIG);
    /* Misuse is not configuration. */
    assert_int_equal(
        wa_bus_listen(WA_SOCK_REP, url, NULL, NULL, why, sizeof(why)),
        WA_EINVAL);
    assert_non_null(strstr(why, "cannot listen on "));
}

static void test_bus_err(void **state)
{
    (void)state;
    assert_int_equal(wa_bus_err(0), WA_OK);
    assert_int_equal(wa_bus_err(NNG_ETIMEDOUT), WA_ETIMEDOUT);
    assert_int_equal(wa_bus_err(NNG_ECLOSED), WA_ECLOSED);
    assert_int_equal(wa_bus_err(NNG_ENOMEM), WA_ENOMEM);
    assert_int_equal(wa_bus_err(NNG_EMSGSIZE), WA_ETOOBIG);
    assert_int_equal(wa_bus_err(NNG_ECONNREFUSED), WA_EUNAVAIL);
    assert_int_equal(wa_bus_err(NNG_EUNREACHABLE), WA_EUNAVAIL);
    assert_int_equal(wa_bus_err(NNG_ECONNRESET), WA_EUNAVAIL);
    assert_int_equal(wa_bus_err(NNG_EADDRINUSE), WA_EUNAVAIL);
    assert_int_equal(wa_bus_err(NNG_EINVAL), WA_EINVAL);
    assert_int_equal(wa_bus_err(NNG_EADDRINVAL), WA_EINVAL);
    assert_int_equal(wa_bus_err(NNG_EPROTO), WA_EPROTO);
    assert_int_equal(wa_bus_err(NNG_EINTERNAL), WA_EINTERNAL);
    assert_int_equal(wa_bus_err(NNG_ESYSERR + 5), WA_EINTERNAL);
}

/* ---- request / reply ---- */

static void assert_echo(const wa_reply_t *rep, const char *op, const char *user,
                        const char *rid)
{
    assert_true(rep->ok);
    assert_int_equal(rep->err, WA_OK);
    assert_non_null(rep->data);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(rep->data, "op")), op);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(rep->data, "user")), user);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(rep->data, "rid")), rid);
}

static void test_call_sync_handler(void **state)
{
    handler_ctx_t h = {0};
    wa_reply_t rep;
    char rid[WA_RID_MAX + 1];
    cJSON *args = cJSON_CreateObject();
    rig_t r;
    (void)state;

    rig_start(&r, true, 2, test_handler, &h, 2000);
    cJSON_AddNumberToObject(args, "x", 7);
    wa_rid_new(rid, sizeof(rid));
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_SESSION_GET, "alice", rid, args, 2000, &rep),
        WA_OK);
    assert_echo(&rep, "session.get", "alice", rid);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(rep.data, "args"), "x")),
                     7);
    wa_reply_clear(&rep);

    /* No user, no args (encoded as {}); 0 = the default timeout. */
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "rid-2", NULL, 0, &rep),
                     WA_OK);
    assert_echo(&rep, "ping", "", "rid-2");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(rep.data, "args")));
    wa_reply_clear(&rep);
    assert_int_equal(atomic_load(&h.calls), 2);
    assert_int_equal(wa_bus_server_requests(r.srv), 2);
    assert_int_equal(wa_bus_server_requests(NULL), 0);

    cJSON_Delete(args);
    rig_stop(&r);
}

static void test_call_remote_error(void **state)
{
    handler_ctx_t h = {.fail = WA_ENOTFOUND, .fail_msg = "no such user"};
    wa_reply_t rep;
    rig_t r;
    (void)state;

    rig_start(&r, false, 1, test_handler, &h, 2000);
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_SESSION_GET, "bob", "r1", NULL, 2000, &rep),
        WA_ENOTFOUND);
    assert_false(rep.ok);
    assert_int_equal(rep.err, WA_ENOTFOUND);
    assert_string_equal(rep.message, "no such user");
    assert_null(rep.data);
    wa_reply_clear(&rep);

    h.fail = WA_ENOTREADY;
    h.fail_msg = NULL; /* the generic message is used */
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_WA_SEND, "bob", "r2", NULL, 2000, &rep),
        WA_ENOTREADY);
    assert_string_equal(rep.message, wa_strerror(WA_ENOTREADY));
    wa_reply_clear(&rep);
    rig_stop(&r);
}

static void test_call_bad_args(void **state)
{
    handler_ctx_t h = {0};
    wa_reply_t rep;
    nng_socket pub;
    char url[64];
    cJSON *arr = cJSON_CreateArray();
    rig_t r;
    (void)state;

    rig_start(&r, false, 1, test_handler, &h, 2000);
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "r", NULL, 1000, NULL),
                     WA_EINVAL);
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "r", NULL, -1, &rep),
                     WA_EINVAL);
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "r", arr, 1000, &rep),
                     WA_EINVAL);
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "", NULL, 1000, &rep),
                     WA_EINVAL);
    assert_int_equal(wa_bus_call(r.req, WA_OP_COUNT, "", "r", NULL, 1000, &rep),
                     WA_EINVAL);
    assert_null(rep.data);
    /* Not a REQ socket. */
    assert_int_equal(wa_bus_call(r.rep, WA_OP_PING, "", "r", NULL, 1000, &rep),
                     WA_EINVAL);
    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    assert_int_equal(wa_bus_call(pub, WA_OP_PING, "", "r", NULL, 1000, &rep),
                     WA_EINVAL);
    nng_close(pub);
    assert_int_equal(atomic_load(&h.calls), 0);
    cJSON_Delete(arr);
    rig_stop(&r);
}

/* ---- asynchronous handler: answered later, from another thread ---- */

#define QMAX 64

typedef struct async_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wa_bus_job_t *q[QMAX];
    int n;
    bool quit;
    int delay_ms;
    atomic_int calls;
    atomic_int overflow;
    pthread_t thread;
} async_ctx_t;

static void async_handler(void *arg, wa_bus_job_t *job)
{
    async_ctx_t *a = arg;

    atomic_fetch_add(&a->calls, 1);
    pthread_mutex_lock(&a->mu);
    if (a->n == QMAX) {
        pthread_mutex_unlock(&a->mu);
        atomic_fetch_add(&a->overflow, 1);
        wa_bus_reply_err(job, WA_EFULL, NULL);
        return;
    }
    a->q[a->n++] = job;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void *async_replier(void *arg)
{
    async_ctx_t *a = arg;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        wa_bus_job_t *job;

        while (a->n == 0 && !a->quit)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->n == 0)
            break;
        job = a->q[0];
        memmove(a->q, a->q + 1, (size_t)--a->n * sizeof(a->q[0]));
        pthread_mutex_unlock(&a->mu);
        nng_msleep(a->delay_ms);
        wa_bus_reply_ok(job, echo_of(wa_bus_job_request(job)));
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void async_start(async_ctx_t *a, int delay_ms)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->delay_ms = delay_ms;
    assert_int_equal(pthread_create(&a->thread, NULL, async_replier, a), 0);
}

/* Answers everything still queued, then ends the thread. */
static void async_stop(async_ctx_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->quit = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
}

static void test_call_async_handler(void **state)
{
    async_ctx_t a;
    wa_reply_t rep;
    nng_time t0;
    rig_t r;
    (void)state;

    async_start(&a, 50);
    rig_start(&r, false, 2, async_handler, &a, 2000);
    for (int i = 0; i < 3; i++) {
        char rid[16];

        snprintf(rid, sizeof(rid), "async-%d", i);
        t0 = nng_clock();
        assert_int_equal(
            wa_bus_call(r.req, WA_OP_WA_STATUS, "carol", rid, NULL, 2000, &rep),
            WA_OK);
        assert_true(elapsed_ms(t0) >= 45); /* really answered later */
        assert_echo(&rep, "wa.status", "carol", rid);
        wa_reply_clear(&rep);
    }
    assert_int_equal(atomic_load(&a.calls), 3);
    nng_close(r.req);
    async_stop(&a); /* every job answered before the server stops */
    wa_bus_server_stop(r.srv);
    nng_close(r.rep);
}

/* ---- many concurrent calls on one REQ socket ---- */

#define CALLERS 8
#define CALLS_EACH 25

typedef struct caller {
    nng_socket req;
    int id;
    int ok;
    int wrong;
    wa_err_t last_err;
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;

    for (int i = 0; i < CALLS_EACH; i++) {
        char rid[WA_RID_MAX + 1], user[16];
        wa_reply_t rep;
        wa_err_t err;

        wa_rid_new(rid, sizeof(rid));
        snprintf(user, sizeof(user), "user-%d", c->id);
        err =
            wa_bus_call(c->req, WA_OP_SESSION_GET, user, rid, NULL, 5000, &rep);
        if (err != WA_OK) {
            c->last_err = err;
            continue;
        }
        /* Each reply must be the answer to this very request. */
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(rep.data, "rid")),
                   rid) == 0 &&
            strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(rep.data, "user")),
                   user) == 0)
            c->ok++;
        else
            c->wrong++;
        wa_reply_clear(&rep);
    }
    return NULL;
}

static void test_call_concurrent(void **state)
{
    handler_ctx_t h = {.delay_ms = 5};
    pthread_t t[CALLERS];
    caller_t c[CALLERS];
    rig_t r;
    (void)state;

    rig_start(&r, true, 4, test_handler, &h, 5000);
    for (int i = 0; i < CALLERS; i++) {
        c[i] = (caller_t){.req = r.req, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].last_err, WA_OK);
        assert_int_equal(c[i].wrong, 0);
        assert_int_equal(c[i].ok, CALLS_EACH);
    }
    assert_int_equal(atomic_load(&h.calls), CALLERS * CALLS_EACH);
    /* Calls do not wait for each other, and the pool bounds the server. */
    assert_true(atomic_load(&h.max_active) >= 2);
    assert_true(atomic_load(&h.max_active) <= 4);
    rig_stop(&r);
}

/* ---- deadlines ---- */

static void test_call_no_server_times_out(void **state)
{
    wa_reply_t rep;
    nng_socket req;
    char url[64];
    nng_time t0;
    int64_t ms;
    (void)state;

    tcp_url(url, sizeof(url)); /* nobody listens */
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    t0 = nng_clock();
    assert_int_equal(wa_bus_call(req, WA_OP_PING, "", "r", NULL, 300, &rep),
                     WA_ETIMEDOUT);
    ms = elapsed_ms(t0);
    assert_true(ms >= 299); /* nng_clock has ms granularity */
    assert_true(ms < 600);
    assert_false(rep.ok);
    assert_null(rep.data);
    nng_close(req);
}

static void test_call_slow_server_times_out(void **state)
{
    handler_ctx_t h = {.delay_ms = 600};
    wa_reply_t rep;
    nng_time t0;
    int64_t ms;
    rig_t r;
    (void)state;

    rig_start(&r, true, 1, test_handler, &h, 2000);
    /* The deadline covers send and receive together. */
    t0 = nng_clock();
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_PING, "", "slow", NULL, 250, &rep),
        WA_ETIMEDOUT);
    ms = elapsed_ms(t0);
    assert_true(ms >= 249);
    assert_true(ms < 500);
    assert_null(rep.data);
    /* Stop while the handler is still running: its late answer is
     * refused by the stopped aio and freed (ASan checks). */
    rig_stop(&r);
    assert_int_equal(atomic_load(&h.calls), 1);
}

/* The thread's kept context: reused after a reply, dropped after a timeout
 * (the late reply must not reach the next call), dropped when its socket
 * closes, and a new socket gets its own. */
static void test_call_context_kept(void **state)
{
    handler_ctx_t h = {0};
    wa_reply_t rep;
    rig_t r;
    nng_socket req2;
    wa_sock_opts_t o;
    (void)state;

    rig_start(&r, true, 2, test_handler, &h, 2000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            wa_bus_call(r.req, WA_OP_PING, "", "keep", NULL, 1000, &rep),
            WA_OK);
        assert_echo(&rep, "ping", "", "keep");
        wa_reply_clear(&rep);
    }
    h.delay_ms = 400;
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_PING, "", "late", NULL, 100, &rep),
        WA_ETIMEDOUT);
    h.delay_ms = 0;
    nng_msleep(500); /* the late reply has arrived and must be discarded */
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_PING, "", "next", NULL, 1000, &rep), WA_OK);
    assert_echo(&rep, "ping", "", "next");
    wa_reply_clear(&rep);

    /* Closed socket: an error, not a crash; a new socket works. */
    nng_close(r.req);
    assert_int_not_equal(
        wa_bus_call(r.req, WA_OP_PING, "", "closed", NULL, 500, &rep), WA_OK);
    assert_null(rep.data);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, r.url,
                                 opts_timeouts(&o, 2000, 2000), &req2),
                     WA_OK);
    assert_int_equal(
        wa_bus_call(req2, WA_OP_PING, "", "again", NULL, 1000, &rep), WA_OK);
    assert_echo(&rep, "ping", "", "again");
    wa_reply_clear(&rep);
    r.req = req2;
    rig_stop(&r);
}

static void test_call_slow_handler_not_resent(void **state)
{
    handler_ctx_t h = {.delay_ms = 1200};
    wa_reply_t rep;
    rig_t r;
    (void)state;

    /* A handler slower than a short resend time would be run twice if nng
     * resent on its timer; the bus only resends on a lost peer. */
    rig_start(&r, false, 2, test_handler, &h, 3000);
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_WA_SEND, "dave", "once", NULL, 3000, &rep),
        WA_OK);
    wa_reply_clear(&rep);
    assert_int_equal(atomic_load(&h.calls), 1);
    rig_stop(&r);
}

/* The request goes out on a pipe to A, A dies without answering: the bus
 * sends it again at once to B, well before the deadline. */
typedef struct lost_call {
    nng_socket req;
    wa_err_t err;
    int64_t ms;
    wa_reply_t rep;
} lost_call_t;

static void *lost_call_main(void *arg)
{
    lost_call_t *c = arg;
    nng_time t0 = nng_clock();

    c->err = wa_bus_call(c->req, WA_OP_WA_SEND, "erin", "resend-me", NULL, 4000,
                         &c->rep);
    c->ms = elapsed_ms(t0);
    return NULL;
}

static void test_call_resent_on_lost_peer(void **state)
{
    handler_ctx_t h = {0};
    char urla[64], urlb[64];
    nng_socket a, b;
    wa_bus_server_t *srv;
    lost_call_t c = {0};
    pthread_t t;
    char *buf = NULL;
    size_t len = 0;
    (void)state;

    inproc_url(urla, sizeof(urla));
    inproc_url(urlb, sizeof(urlb));
    assert_int_equal(nng_rep0_open(&a), 0);
    assert_int_equal(nng_socket_set_ms(a, NNG_OPT_RECVTIMEO, 3000), 0);
    assert_int_equal(nng_listen(a, urla, NULL, 0), 0);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, urla, NULL, &c.req),
                     WA_OK);
    assert_int_equal(pthread_create(&t, NULL, lost_call_main, &c), 0);
    assert_int_equal(nng_recv(a, &buf, &len, NNG_FLAG_ALLOC), 0);
    assert_non_null(strstr(buf, "resend-me"));
    nng_free(buf, len);

    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, urlb, NULL, &b),
                     WA_OK);
    assert_int_equal(wa_bus_server_start(b, 1, test_handler, &h, &srv), WA_OK);
    assert_int_equal(nng_dial(c.req, urlb, NULL, NNG_FLAG_NONBLOCK), 0);
    nng_close(a); /* A is lost with the request */

    pthread_join(t, NULL);
    assert_int_equal(c.err, WA_OK);
    assert_echo(&c.rep, "wa.send", "erin", "resend-me");
    assert_true(c.ms < 3000); /* not the resend timer, not the deadline */
    wa_reply_clear(&c.rep);
    assert_int_equal(atomic_load(&h.calls), 1);
    nng_close(c.req);
    wa_bus_server_stop(srv);
    nng_close(b);
}

/* ---- a peer that is down ---- */

/* Long enough that waiting it out would be plain: such a call would end
 * with WA_ETIMEDOUT, not WA_EUNAVAIL, and take the test's whole budget. */
#define LONG_MS 30000

/* A REP socket on url served by h, or *rep closed on failure. */
static void serve(const char *url, handler_ctx_t *h, nng_socket *rep,
                  wa_bus_server_t **srv)
{
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, rep),
                     WA_OK);
    assert_int_equal(wa_bus_server_start(*rep, 2, test_handler, h, srv), WA_OK);
}

static void unserve(nng_socket rep, wa_bus_server_t *srv)
{
    wa_bus_server_stop(srv);
    nng_close(rep);
}

/* Nobody listens: the call, and a batcher's, fail as unavailable, not at
 * their deadline. Sockets the bus did not dial keep waiting as nng does. */
static void test_call_no_peer_unavailable(void **state)
{
    wa_bus_batcher_t *b;
    wa_sock_opts_t o;
    nng_socket req, raw, lreq;
    wa_reply_t rep;
    char url[64], url2[64];
    (void)state;

    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url,
                                 opts_timeouts(&o, LONG_MS, LONG_MS), &req),
                     WA_OK);
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "none-1", NULL, LONG_MS, &rep),
        WA_EUNAVAIL);
    assert_false(rep.ok);
    assert_null(rep.data);
    /* Found down: the next calls are told so too. */
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "none-2", NULL, LONG_MS, &rep),
        WA_EUNAVAIL);
    assert_int_equal(wa_bus_batcher_new(req, 2, &b), WA_OK);
    assert_int_equal(
        wa_bus_batcher_call(b, WA_OP_PING, "u1", "none-3", NULL, LONG_MS, &rep),
        WA_EUNAVAIL);
    assert_null(rep.data);
    wa_bus_batcher_free(b);
    /* Closed is closed, not a peer that is down. */
    nng_close(req);
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "none-5", NULL, LONG_MS, &rep),
        WA_ECLOSED);

    /* The same through a batcher on a fresh socket: its first call waits
     * the grace itself. */
    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    assert_int_equal(wa_bus_batcher_new(req, 2, &b), WA_OK);
    assert_int_equal(wa_bus_batcher_call_raw(b, WA_OP_PING, "u1", "none-4",
                                             NULL, LONG_MS, &rep),
                     WA_EUNAVAIL);
    assert_null(rep.raw);
    wa_bus_batcher_free(b);
    nng_close(req);

    /* A REQ socket dialed by hand, and one the bus opened to listen: no
     * watch, the deadline decides. */
    tcp_url(url, sizeof(url));
    assert_int_equal(nng_req0_open(&raw), 0);
    assert_int_equal(nng_dial(raw, url, NULL, NNG_FLAG_NONBLOCK), 0);
    assert_int_equal(wa_bus_call(raw, WA_OP_PING, "", "raw", NULL, 300, &rep),
                     WA_ETIMEDOUT);
    nng_close(raw);
    inproc_url(url2, sizeof(url2));
    assert_int_equal(
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_LISTEN, url2, NULL, &lreq), WA_OK);
    assert_int_equal(
        wa_bus_call(lreq, WA_OP_PING, "", "listen", NULL, 300, &rep),
        WA_ETIMEDOUT);
    nng_close(lreq);
}

typedef struct late_rep {
    char url[64];
    int after_ms;
    handler_ctx_t *h;
    nng_socket rep;
    wa_bus_server_t *srv;
} late_rep_t;

static void *late_rep_main(void *arg)
{
    late_rep_t *l = arg;

    nng_msleep(l->after_ms);
    if (wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, l->url, NULL, &l->rep) !=
            WA_OK ||
        wa_bus_server_start(l->rep, 2, test_handler, l->h, &l->srv) != WA_OK)
        l->srv = NULL; /* the main thread sees the call fail */
    return NULL;
}

/* The REP comes up after the REQ dialed: a call made then succeeds, and so
 * does one already waiting when it comes. */
static void test_call_peer_comes_up(void **state)
{
    handler_ctx_t h = {0};
    late_rep_t l = {.after_ms = 50, .h = &h};
    nng_socket req, rep;
    wa_bus_server_t *srv;
    wa_reply_t rep_;
    pthread_t t;
    char url[64];
    (void)state;

    /* Dialed long before: the grace counts from the call, not the dial. */
    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    nng_msleep(1200);
    serve(url, &h, &rep, &srv);
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "up-1", NULL, LONG_MS, &rep_), WA_OK);
    assert_echo(&rep_, "ping", "", "up-1");
    wa_reply_clear(&rep_);
    nng_close(req);
    unserve(rep, srv);

    /* The call is waiting when the REP comes. */
    tcp_url(l.url, sizeof(l.url));
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, l.url, NULL, &req),
                     WA_OK);
    assert_int_equal(pthread_create(&t, NULL, late_rep_main, &l), 0);
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "up-2", NULL, LONG_MS, &rep_), WA_OK);
    assert_echo(&rep_, "ping", "", "up-2");
    wa_reply_clear(&rep_);
    pthread_join(t, NULL);
    assert_non_null(l.srv);
    nng_close(req);
    unserve(l.rep, l.srv);
}

/* Call until one succeeds: the dialer finds a peer that is back within a
 * retry interval. Every failure meanwhile is WA_EUNAVAIL. */
static void call_until_ok(nng_socket req, const char *rid)
{
    wa_reply_t rep;
    wa_err_t err;
    int tries = 0;

    while ((err = wa_bus_call(req, WA_OP_PING, "", rid, NULL, LONG_MS, &rep)) !=
           WA_OK) {
        assert_int_equal(err, WA_EUNAVAIL);
        assert_true(++tries < 100);
        nng_msleep(50);
    }
    assert_echo(&rep, "ping", "", rid);
    wa_reply_clear(&rep);
}

/* The REP goes away between calls: the next call fails as unavailable;
 * the REP comes back on the same url and calls succeed again. */
static void test_call_peer_lost_and_back(void **state)
{
    handler_ctx_t h = {0};
    nng_socket req, rep;
    wa_bus_server_t *srv;
    wa_reply_t r;
    char url[64];
    (void)state;

    tcp_url(url, sizeof(url));
    serve(url, &h, &rep, &srv);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    call_until_ok(req, "before");

    unserve(rep, srv);
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "gone", NULL, LONG_MS, &r),
        WA_EUNAVAIL);
    assert_null(r.data);

    serve(url, &h, &rep, &srv);
    call_until_ok(req, "after");
    call_until_ok(req, "after-2");
    nng_close(req);
    unserve(rep, srv);
}

/* The request is out when its peer dies without answering, and no other
 * peer comes: unavailable after the grace, not the deadline. */
typedef struct sent_call {
    nng_socket req;
    wa_err_t err;
} sent_call_t;

static void *sent_call_main(void *arg)
{
    sent_call_t *c = arg;
    wa_reply_t rep;

    c->err =
        wa_bus_call(c->req, WA_OP_WA_SEND, "erin", "lost", NULL, LONG_MS, &rep);
    wa_reply_clear(&rep);
    return NULL;
}

static void test_call_sent_peer_lost(void **state)
{
    sent_call_t c = {0};
    nng_socket a;
    pthread_t t;
    char url[64], *buf = NULL;
    size_t len = 0;
    (void)state;

    tcp_url(url, sizeof(url));
    assert_int_equal(nng_rep0_open(&a), 0);
    assert_int_equal(nng_socket_set_ms(a, NNG_OPT_RECVTIMEO, LONG_MS), 0);
    assert_int_equal(nng_listen(a, url, NULL, 0), 0);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &c.req),
                     WA_OK);
    assert_int_equal(pthread_create(&t, NULL, sent_call_main, &c), 0);
    assert_int_equal(nng_recv(a, &buf, &len, NNG_FLAG_ALLOC), 0);
    assert_non_null(strstr(buf, "lost"));
    nng_free(buf, len);
    nng_close(a); /* dies with the request */
    pthread_join(t, NULL);
    assert_int_equal(c.err, WA_EUNAVAIL);
    nng_close(c.req);
}

/* ---- malformed input and size limits ---- */

/* Send raw bytes on a REQ socket, decode whatever comes back. */
static wa_err_t raw_call(nng_socket req, const void *bytes, size_t n,
                         wa_reply_t *rep)
{
    char *buf = NULL;
    size_t len = 0;
    wa_err_t err;

    assert_int_equal(nng_send(req, (void *)bytes, n, 0), 0);
    assert_int_equal(nng_recv(req, &buf, &len, NNG_FLAG_ALLOC), 0);
    err = wa_reply_decode(buf, len, rep);
    nng_free(buf, len);
    return err;
}

static void test_malformed_request(void **state)
{
    static const struct {
        const char *bytes;
        wa_err_t want;
        const char *code;
    } cases[] = {
        {"not json", WA_EPROTO, "bad_envelope"},
        {"{\"v\":1,\"op\":\"ping\",\"user\":\"\xff\xfe\",\"rid\":\"r\","
         "\"args\":{}}",
         WA_EUTF8, "invalid_utf8"},
        {"{\"v\":2,\"op\":\"ping\",\"user\":\"\",\"rid\":\"r\",\"args\":{}}",
         WA_EVERSION, "unsupported_version"},
        {"{\"v\":1,\"op\":\"nope\",\"user\":\"\",\"rid\":\"r\",\"args\":{}}",
         WA_EUNKNOWNOP, "unknown_operation"},
        {"{\"v\":1,\"op\":\"ping\",\"user\":\"\",\"rid\":\"r\",\"args\":[]}",
         WA_EPROTO, "bad_envelope"},
        {"", WA_EPROTO, "bad_envelope"},
    };
    handler_ctx_t h = {0};
    nng_socket raw;
    wa_reply_t rep;
    rig_t r;
    (void)state;

    rig_start(&r, false, 2, test_handler, &h, 2000);
    assert_int_equal(nng_req0_open(&raw), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 2000), 0);
    assert_int_equal(nng_dial(raw, r.url, NULL, 0), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(
            raw_call(raw, cases[i].bytes, strlen(cases[i].bytes), &rep), WA_OK);
        assert_false(rep.ok);
        assert_int_equal(rep.err, cases[i].want);
        assert_string_equal(wa_err_code(rep.err), cases[i].code);
        wa_reply_clear(&rep);
    }
    assert_int_equal(atomic_load(&h.calls), 0);

    /* The server keeps serving well-formed requests. */
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_PING, "", "after", NULL, 2000, &rep), WA_OK);
    wa_reply_clear(&rep);
    assert_int_equal(atomic_load(&h.calls), 1);
    nng_close(raw);
    rig_stop(&r);
}

static void test_request_too_big(void **state)
{
    handler_ctx_t h = {0};
    wa_sock_opts_t o = {.recv_max = 1024};
    wa_reply_t rep;
    nng_socket rep_sock, req;
    wa_bus_server_t *srv;
    char url[64];
    char *big = malloc(4096);
    cJSON *args = cJSON_CreateObject();
    nng_time t0;
    int64_t ms;
    (void)state;

    memset(big, 'x', 4095);
    big[4095] = '\0';
    cJSON_AddStringToObject(args, "blob", big);

    /* A server with a 1 KiB limit: nng drops the oversized message (and
     * the connection); the handler never runs and the call times out. */
    tcp_url(url, sizeof(url));
    assert_int_equal(
        wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, &o, &rep_sock), WA_OK);
    assert_int_equal(wa_bus_server_start(rep_sock, 2, test_handler, &h, &srv),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    t0 = nng_clock();
    assert_int_equal(
        wa_bus_call(req, WA_OP_LOG_APPEND, "u", "big", args, 400, &rep),
        WA_ETIMEDOUT);
    ms = elapsed_ms(t0);
    assert_true(ms >= 399 && ms < 800);
    assert_int_equal(atomic_load(&h.calls), 0);
    /* Small requests still pass (nng reconnects). */
    assert_int_equal(
        wa_bus_call(req, WA_OP_PING, "", "small", NULL, 3000, &rep), WA_OK);
    wa_reply_clear(&rep);
    assert_int_equal(atomic_load(&h.calls), 1);

    /* Over WA_ENVELOPE_MAX the call fails before sending anything. */
    free(big);
    big = malloc(WA_ENVELOPE_MAX + 1);
    memset(big, 'y', WA_ENVELOPE_MAX);
    big[WA_ENVELOPE_MAX] = '\0';
    cJSON_DeleteItemFromObject(args, "blob");
    cJSON_AddStringToObject(args, "blob", big);
    assert_int_equal(
        wa_bus_call(req, WA_OP_LOG_APPEND, "u", "huge", args, 1000, &rep),
        WA_ETOOBIG);
    assert_int_equal(atomic_load(&h.calls), 1);

    free(big);
    cJSON_Delete(args);
    nng_close(req);
    wa_bus_server_stop(srv);
    nng_close(rep_sock);
}

/* A handler whose answer is too large gets a payload_too_large error. */
static void big_reply_handler(void *arg, wa_bus_job_t *job)
{
    char *big = malloc(WA_ENVELOPE_MAX + 1);
    cJSON *d = cJSON_CreateObject();

    (void)arg;
    memset(big, 'z', WA_ENVELOPE_MAX);
    big[WA_ENVELOPE_MAX] = '\0';
    cJSON_AddStringToObject(d, "blob", big);
    free(big);
    wa_bus_reply_ok(job, d);
}

static void test_reply_too_big(void **state)
{
    wa_reply_t rep;
    rig_t r;
    (void)state;

    rig_start(&r, false, 1, big_reply_handler, NULL, 3000);
    assert_int_equal(
        wa_bus_call(r.req, WA_OP_LOG_LIST, "u", "r", NULL, 3000, &rep),
        WA_ETOOBIG);
    assert_string_equal(rep.message, "reply too large");
    wa_reply_clear(&rep);
    rig_stop(&r);
}

/* ---- server lifecycle ---- */

static void test_server_start_bad_args(void **state)
{
    handler_ctx_t h = {0};
    wa_bus_server_t *srv = NULL;
    nng_socket rep, req;
    char url[64];
    (void)state;

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &rep),
                     WA_OK);
    assert_int_equal(wa_bus_server_start(rep, 0, test_handler, &h, &srv),
                     WA_EINVAL);
    assert_int_equal(wa_bus_server_start(rep, 257, test_handler, &h, &srv),
                     WA_EINVAL);
    assert_int_equal(wa_bus_server_start(rep, 1, NULL, &h, &srv), WA_EINVAL);
    assert_int_equal(wa_bus_server_start(rep, 1, test_handler, &h, NULL),
                     WA_EINVAL);
    assert_int_equal(wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &req),
                     WA_OK);
    assert_int_equal(wa_bus_server_start(req, 1, test_handler, &h, &srv),
                     WA_EINVAL);
    assert_null(srv);
    nng_close(req);
    nng_close(rep);
    wa_bus_server_stop(NULL);
}

static void test_server_stop_clean(void **state)
{
    handler_ctx_t h = {0};
    wa_bus_server_t *srv;
    wa_reply_t rep;
    nng_socket s;
    char url[64];
    rig_t r;
    (void)state;

    /* Stop with every worker waiting in receive. */
    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, url, NULL, &s),
                     WA_OK);
    assert_int_equal(wa_bus_server_start(s, 256, test_handler, &h, &srv),
                     WA_OK);
    wa_bus_server_stop(srv);
    /* The socket is still the caller's, and serves a new server. */
    assert_int_equal(wa_bus_server_start(s, 3, test_handler, &h, &srv), WA_OK);
    wa_bus_server_stop(srv);
    nng_close(s);

    /* Stop after traffic, with a client still connected. */
    rig_start(&r, true, 8, test_handler, &h, 2000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(
            wa_bus_call(r.req, WA_OP_PING, "", "r", NULL, 2000, &rep), WA_OK);
        wa_reply_clear(&rep);
    }
    wa_bus_server_stop(r.srv);
    /* Nobody serves now: the client times out, nothing crashes. */
    assert_int_equal(wa_bus_call(r.req, WA_OP_PING, "", "r", NULL, 200, &rep),
                     WA_ETIMEDOUT);
    nng_close(r.req);
    nng_close(r.rep);

    /* Socket closed first, server stopped after. */
    rig_start(&r, false, 4, test_handler, &h, 2000);
    nng_close(r.req);
    nng_close(r.rep);
    wa_bus_server_stop(r.srv);
}

/* ---- events ---- */

static void make_event(wa_event_t *ev, const char *user, int64_t seq)
{
    assert_int_equal(wa_event_init(ev, user, WA_EV_STATUS), WA_OK);
    ev->seq = seq;
    cJSON_AddStringToObject(ev->data, "status", "ready");
}

static void publish(nng_socket pub, const char *user, int64_t seq)
{
    wa_event_t ev;

    make_event(&ev, user, seq);
    assert_int_equal(wa_bus_publish(pub, &ev), WA_OK);
    wa_event_clear(&ev);
}

/* Receive the next event that is not a "sync" one. */
static wa_err_t recv_skip_sync(nng_socket sub, wa_event_t *ev)
{
    wa_err_t err;

    while ((err = wa_bus_recv_event(sub, ev)) == WA_OK &&
           strcmp(ev->user, "sync") == 0)
        wa_event_clear(ev);
    return err;
}

/* Wait until every subscriber is connected: each also subscribes to
 * "sync", which is published until all have seen one, then dropped. */
static void sync_subs(nng_socket pub, nng_socket *subs, int n)
{
    bool done[8] = {false};
    int left = n;
    nng_time until = nng_clock() + 10000;

    for (int i = 0; i < n; i++) {
        assert_int_equal(wa_bus_subscribe(subs[i], "sync"), WA_OK);
        assert_int_equal(nng_socket_set_ms(subs[i], NNG_OPT_RECVTIMEO, 20), 0);
    }
    while (left > 0 && nng_clock() < until) {
        publish(pub, "sync", 1);
        for (int i = 0; i < n; i++) {
            wa_event_t ev;

            if (done[i] || wa_bus_recv_event(subs[i], &ev) != WA_OK)
                continue;
            done[i] = true;
            left--;
            wa_event_clear(&ev);
        }
    }
    assert_int_equal(left, 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(
            nng_socket_set(subs[i], NNG_OPT_SUB_UNSUBSCRIBE, "sync\n", 5), 0);
        assert_int_equal(nng_socket_set_ms(subs[i], NNG_OPT_RECVTIMEO, 1000),
                         0);
    }
}

static void test_pubsub_topic_filter(void **state)
{
    nng_socket pub, subs[4];
    char url[64];
    wa_event_t ev;
    (void)state;

    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url, NULL, &subs[i]), WA_OK);
    assert_int_equal(wa_bus_subscribe(subs[0], "ab"), WA_OK);
    assert_int_equal(wa_bus_subscribe(subs[1], "abc"), WA_OK);
    assert_int_equal(wa_bus_subscribe(subs[2], NULL), WA_OK); /* all */
    assert_int_equal(wa_bus_subscribe(subs[3], ""), WA_OK);   /* all */
    sync_subs(pub, subs, 4);

    publish(pub, "abc", 1);
    publish(pub, "ab", 2);
    publish(pub, "a", 3);
    publish(pub, "ab", 4);

    /* "ab" sees only its own events, not "abc" nor "a". */
    assert_int_equal(recv_skip_sync(subs[0], &ev), WA_OK);
    assert_string_equal(ev.user, "ab");
    assert_int_equal(ev.seq, 2);
    assert_int_equal(ev.type, WA_EV_STATUS);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(ev.data, "status")), "ready");
    wa_event_clear(&ev);
    assert_int_equal(recv_skip_sync(subs[0], &ev), WA_OK);
    assert_int_equal(ev.seq, 4);
    wa_event_clear(&ev);

    assert_int_equal(recv_skip_sync(subs[1], &ev), WA_OK);
    assert_string_equal(ev.user, "abc");
    assert_int_equal(ev.seq, 1);
    wa_event_clear(&ev);

    for (int i = 2; i < 4; i++) {
        for (int64_t seq = 1; seq <= 4; seq++) {
            assert_int_equal(recv_skip_sync(subs[i], &ev), WA_OK);
            assert_int_equal(ev.seq, seq);
            wa_event_clear(&ev);
        }
    }

    /* Nothing else came. */
    assert_int_equal(nng_socket_set_ms(subs[0], NNG_OPT_RECVTIMEO, 100), 0);
    assert_int_equal(nng_socket_set_ms(subs[1], NNG_OPT_RECVTIMEO, 100), 0);
    assert_int_equal(recv_skip_sync(subs[0], &ev), WA_ETIMEDOUT);
    assert_int_equal(recv_skip_sync(subs[1], &ev), WA_ETIMEDOUT);

    for (int i = 0; i < 4; i++)
        nng_close(subs[i]);
    nng_close(pub);
}

static void test_subscribe_bad_user(void **state)
{
    nng_socket sub;
    char url[64];
    char longuser[WA_USER_MAX + 2];
    (void)state;

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url, NULL, &sub),
                     WA_OK);
    assert_int_not_equal(wa_bus_subscribe(sub, "a\nb"), WA_OK);
    memset(longuser, 'u', sizeof(longuser) - 1);
    longuser[sizeof(longuser) - 1] = '\0';
    assert_int_not_equal(wa_bus_subscribe(sub, longuser), WA_OK);
    nng_close(sub);
}

static void test_recv_event_timeout(void **state)
{
    wa_sock_opts_t o;
    nng_socket pub, sub;
    char url[64];
    wa_event_t ev;
    nng_time t0;
    int64_t ms;
    (void)state;

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url,
                                 opts_timeouts(&o, 0, 150), &sub),
                     WA_OK);
    assert_int_equal(wa_bus_subscribe(sub, NULL), WA_OK);
    t0 = nng_clock();
    assert_int_equal(wa_bus_recv_event(sub, &ev), WA_ETIMEDOUT);
    ms = elapsed_ms(t0);
    assert_true(ms >= 149 && ms < 300);
    assert_null(ev.data);
    /* The non-blocking form answers at once. */
    t0 = nng_clock();
    assert_int_equal(wa_bus_try_recv_event(sub, &ev), WA_ETIMEDOUT);
    assert_true(elapsed_ms(t0) < 100);
    assert_null(ev.data);
    nng_close(sub);
    nng_close(pub);
}

static void test_try_recv_event(void **state)
{
    nng_socket pub, sub;
    wa_event_t ev, got;
    char url[64];
    int i;
    (void)state;

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url, NULL, &sub),
                     WA_OK);
    assert_int_equal(wa_bus_subscribe(sub, "u1"), WA_OK);
    assert_int_equal(wa_event_init(&ev, "u1", WA_EV_STATUS), WA_OK);
    /* Publish until the subscription is in place and one arrives. */
    for (i = 0; i < 100; i++) {
        ev.seq = i + 1;
        assert_int_equal(wa_bus_publish(pub, &ev), WA_OK);
        nng_msleep(10);
        if (wa_bus_try_recv_event(sub, &got) == WA_OK)
            break;
    }
    assert_true(i < 100);
    assert_string_equal(got.user, "u1");
    assert_int_equal(got.type, WA_EV_STATUS);
    wa_event_clear(&got);
    wa_event_clear(&ev);
    nng_close(sub);
    nng_close(pub);
}

static void test_malformed_event(void **state)
{
    static const char *const junk[] = {
        "ab\nnot json",
        "no newline at all",
        "ab\n{\"v\":1,\"type\":\"status\"}",
        "\xff\n{}",
    };
    nng_socket pub, sub;
    char url[64];
    wa_event_t ev;
    (void)state;

    inproc_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url, NULL, &sub),
                     WA_OK);
    sync_subs(pub, &sub, 1);
    assert_int_equal(wa_bus_subscribe(sub, NULL), WA_OK);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(nng_send(pub, (void *)junk[i], strlen(junk[i]), 0), 0);
    publish(pub, "ab", 9);

    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        wa_err_t err = recv_skip_sync(sub, &ev);

        assert_int_not_equal(err, WA_OK);
        assert_int_not_equal(err, WA_ETIMEDOUT);
        assert_null(ev.data);
    }
    /* Each malformed message was consumed; the good one follows. */
    assert_int_equal(recv_skip_sync(sub, &ev), WA_OK);
    assert_int_equal(ev.seq, 9);
    wa_event_clear(&ev);
    nng_close(sub);
    nng_close(pub);
}

static void test_sub_recv_max(void **state)
{
    wa_sock_opts_t o = {.recv_max = 512};
    nng_socket pub, sub;
    char url[64];
    char big[2048];
    wa_event_t ev;
    (void)state;

    /* recv_max bounds the JSON; the topic gets room of its own. */
    tcp_url(url, sizeof(url));
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_LISTEN, url, NULL, &pub),
                     WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_DIAL, url, &o, &sub),
                     WA_OK);
    sync_subs(pub, &sub, 1);
    assert_int_equal(wa_bus_subscribe(sub, "big"), WA_OK);

    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    make_event(&ev, "big", 1);
    cJSON_AddStringToObject(ev.data, "blob", big);
    assert_int_equal(wa_bus_publish(pub, &ev), WA_OK);
    wa_event_clear(&ev);

    /* Dropped by nng, with the connection; SUB redials, so resync. */
    sync_subs(pub, &sub, 1);
    publish(pub, "big", 2);
    assert_int_equal(recv_skip_sync(sub, &ev), WA_OK);
    assert_int_equal(ev.seq, 2);
    wa_event_clear(&ev);
    nng_close(sub);
    nng_close(pub);
}

/* ---- request ids ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_rid_new(void **state)
{
    enum { N = 2000 };
    char **rids = calloc(N, sizeof(*rids));
    char small[8];
    (void)state;

    for (int i = 0; i < N; i++) {
        rids[i] = malloc(WA_RID_MAX + 1);
        wa_rid_new(rids[i], WA_RID_MAX + 1);
        assert_int_equal(strlen(rids[i]), 24);
        assert_int_equal(strspn(rids[i], "0123456789abcdef"), 24);
        assert_int_equal(wa_check_rid(rids[i]), WA_OK);
    }
    qsort(rids, N, sizeof(*rids), cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(rids[i - 1], rids[i]);
    for (int i = 0; i < N; i++)
        free(rids[i]);
    free(rids);

    /* Ids begin with their creation time in ms (11 hex digits), so later
     * ids sort after earlier ones. */
    {
        char a[WA_RID_MAX + 1], b[WA_RID_MAX + 1], ms[12];
        struct timespec ts;
        long long now, t;

        wa_rid_new(a, sizeof(a));
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        memcpy(ms, a, 11);
        ms[11] = '\0';
        t = strtoll(ms, NULL, 16);
        assert_true(t <= now && now - t < 1000);
        usleep(2000);
        wa_rid_new(b, sizeof(b));
        assert_true(strcmp(a, b) < 0);
    }

    /* A short buffer is truncated, still terminated. */
    wa_rid_new(small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    wa_rid_new(NULL, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_each_kind),
        cmocka_unit_test(test_open_bad_args),
        cmocka_unit_test(test_open_bad_url),
        cmocka_unit_test(test_open_addr_in_use),
        cmocka_unit_test(test_listen_config),
        cmocka_unit_test(test_bus_err),
        cmocka_unit_test(test_call_sync_handler),
        cmocka_unit_test(test_call_remote_error),
        cmocka_unit_test(test_call_bad_args),
        cmocka_unit_test(test_call_async_handler),
        cmocka_unit_test(test_call_concurrent),
        cmocka_unit_test(test_call_no_server_times_out),
        cmocka_unit_test(test_call_slow_server_times_out),
        cmocka_unit_test(test_call_context_kept),
        cmocka_unit_test(test_call_slow_handler_not_resent),
        cmocka_unit_test(test_call_resent_on_lost_peer),
        cmocka_unit_test(test_call_no_peer_unavailable),
        cmocka_unit_test(test_call_peer_comes_up),
        cmocka_unit_test(test_call_peer_lost_and_back),
        cmocka_unit_test(test_call_sent_peer_lost),
        cmocka_unit_test(test_malformed_request),
        cmocka_unit_test(test_request_too_big),
        cmocka_unit_test(test_reply_too_big),
        cmocka_unit_test(test_server_start_bad_args),
        cmocka_unit_test(test_server_stop_clean),
        cmocka_unit_test(test_pubsub_topic_filter),
        cmocka_unit_test(test_subscribe_bad_user),
        cmocka_unit_test(test_recv_event_timeout),
        cmocka_unit_test(test_try_recv_event),
        cmocka_unit_test(test_malformed_event),
        cmocka_unit_test(test_sub_recv_max),
        cmocka_unit_test(test_rid_new),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
