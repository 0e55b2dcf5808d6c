/*
 * ops.c - the bus operations session-svc serves (docs/architecture.md,
 * "Bus operations"), and the rid cache that makes wa.send idempotent (with
 * store-svc's send.claim across restarts).
 *
 * The bus handler runs on nng's threads and only queues the job; a
 * uv_async wakes the loop, which validates, acts and answers (answers may
 * come later, from page call callbacks, also on the loop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "wa/hash.h"
#include "wa/log.h"

#define RID_CACHE_MAX 4096
#define RID_CACHE_TTL_MS (15 * 60 * 1000)

/* ---------------------------------------------------------- rid cache */

typedef struct rc_waiter {
    struct rc_waiter *next;
    void *waiter;
} rc_waiter_t;

typedef struct rc_entry {
    struct rc_entry *prev, *next; /* insertion order */
    char *key;                    /* user "\n" rid */
    uint64_t fp;
    bool done;
    uint64_t done_at;
    rc_result_t res;
    rc_waiter_t *waiters;
} rc_entry_t;

struct ridcache {
    rc_entry_t *head, *tail;
    size_t n, max;
    uint64_t ttl_ms;
};

wa_err_t ridcache__new(size_t max, uint64_t ttl_ms, ridcache_t **out)
{
    ridcache_t *c;

    if (out == NULL || max == 0)
        return WA_EINVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return WA_ENOMEM;
    c->max = max;
    c->ttl_ms = ttl_ms;
    *out = c;
    return WA_OK;
}

static void entry_unlink(ridcache_t *c, rc_entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    c->n--;
}

static void entry_free(rc_entry_t *e)
{
    rc_waiter_t *w, *next;

    for (w = e->waiters; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    free(e->res.data);
    free(e->key);
    free(e);
}

void ridcache__free(ridcache_t *c)
{
    rc_entry_t *e, *next;

    if (c == NULL)
        return;
    for (e = c->head; e != NULL; e = next) {
        next = e->next;
        entry_free(e);
    }
    free(c);
}

size_t ridcache__size(const ridcache_t *c)
{
    return c == NULL ? 0 : c->n;
}

static char *make_key(const char *user, const char *rid)
{
    size_t ul = strlen(user), rl = strlen(rid);
    char *k = malloc(ul + rl + 2);

    if (k != NULL) {
        memcpy(k, user, ul);
        k[ul] = '\n';
        memcpy(k + ul + 1, rid, rl + 1);
    }
    return k;
}

static rc_entry_t *lookup(ridcache_t *c, const char *key)
{
    rc_entry_t *e;

    for (e = c->tail; e != NULL; e = e->prev) {
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* Drop expired completed entries; with full set, also the oldest
 * completed ones until there is room. In-flight entries are never
 * dropped. */
static void evict(ridcache_t *c, uint64_t now, bool full)
{
    rc_entry_t *e, *next;

    for (e = c->head; e != NULL; e = next) {
        next = e->next;
        if (e->done &&
            (now - e->done_at >= c->ttl_ms || (full && c->n >= c->max))) {
            entry_unlink(c, e);
            entry_free(e);
        }
    }
}

static wa_err_t copy_result(rc_result_t *dst, const rc_result_t *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->data != NULL && (dst->data = strdup(src->data)) == NULL)
        return WA_ENOMEM;
    return WA_OK;
}

wa_err_t ridcache__begin(ridcache_t *c, const char *user, const char *rid,
                         uint64_t fp, uint64_t now_ms, void *waiter,
                         rc_state_t *state, rc_result_t *res)
{
    rc_entry_t *e;
    rc_waiter_t *w;
    char *key;

    if (c == NULL || user == NULL || rid == NULL || state == NULL ||
        res == NULL)
        return WA_EINVAL;
    memset(res, 0, sizeof(*res));
    if ((key = make_key(user, rid)) == NULL)
        return WA_ENOMEM;
    evict(c, now_ms, false);
    if ((e = lookup(c, key)) != NULL) {
        free(key);
        if (e->fp != fp) {
            *state = RC_MISMATCH;
            return WA_OK;
        }
        if (e->done) {
            *state = RC_DONE;
            return copy_result(res, &e->res);
        }
        if ((w = calloc(1, sizeof(*w))) == NULL)
            return WA_ENOMEM;
        w->waiter = waiter;
        w->next = e->waiters;
        e->waiters = w;
        *state = RC_PENDING;
        return WA_OK;
    }
    evict(c, now_ms, true);
    if (c->n >= c->max) {
        free(key);
        return WA_EFULL; /* every entry is in flight */
    }
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        free(key);
        return WA_ENOMEM;
    }
    e->key = key;
    e->fp = fp;
    e->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n++;
    *state = RC_NEW;
    return WA_OK;
}

void ridcache__finish(ridcache_t *c, const char *user, const char *rid,
                      const rc_result_t *res, bool keep, uint64_t now_ms,
                      rc_waiter_fn fn)
{
    rc_waiter_t *w, *next;
    rc_entry_t *e;
    char *key;

    if (c == NULL || (key = make_key(user, rid)) == NULL)
        return;
    e = lookup(c, key);
    free(key);
    if (e == NULL || e->done)
        return;
    w = e->waiters;
    e->waiters = NULL;
    if (keep && copy_result(&e->res, res) == WA_OK) {
        e->done = true;
        e->done_at = now_ms;
    } else {
        entry_unlink(c, e);
        entry_free(e);
    }
    for (; w != NULL; w = next) {
        next = w->next;
        if (fn != NULL)
            fn(w->waiter, res);
        free(w);
    }
}

/* ---------------------------------------------------------- the queue */

typedef struct op_item {
    struct op_item *next;
    wa_bus_job_t *job;
} op_item_t;

struct ss_opq {
    pthread_mutex_t mu;
    op_item_t *head, *tail;
    uv_async_t async;
    bool closed;
};

static void dispatch(ss_t *ss, wa_bus_job_t *job);

static void on_async(uv_async_t *a)
{
    ss_t *ss = a->data;
    ss_opq_t *q = ss->opq;
    op_item_t *it, *next;

    pthread_mutex_lock(&q->mu);
    it = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    for (; it != NULL; it = next) {
        next = it->next;
        dispatch(ss, it->job);
        free(it);
    }
}

static void reply_ping(ss_t *ss, wa_bus_job_t *job)
{
    cJSON *data;

    if ((data = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(data, "service", SS_SERVICE) == NULL ||
        cJSON_AddStringToObject(data, "instance", ss->instance) == NULL ||
        cJSON_AddStringToObject(data, "version", WA_VERSION) == NULL) {
        cJSON_Delete(data);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    wa_bus_reply_ok(job, data);
}

void ops__handle(void *arg, wa_bus_job_t *job)
{
    ss_t *ss = arg;
    const wa_request_t *req = wa_bus_job_request(job);
    ss_opq_t *q = ss->opq;
    op_item_t *it;

    if (req->op == WA_OP_PING) {
        reply_ping(ss, job); /* reads only what never changes */
        return;
    }
    if (req->op < WA_OP_WA_CONNECT || req->op > WA_OP_WA_CHAT_BY_PHONE) {
        wa_bus_reply_err(job, WA_EUNKNOWNOP,
                         "operation not served by " SS_SERVICE);
        return;
    }
    if ((it = calloc(1, sizeof(*it))) == NULL) {
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    it->job = job;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        free(it);
        wa_bus_reply_err(job, WA_ECLOSED, "session-svc is shutting down");
        return;
    }
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->async);
}

wa_err_t ops__init(ss_t *ss)
{
    ss_opq_t *q;

    if ((q = calloc(1, sizeof(*q))) == NULL)
        return WA_ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    if (uv_async_init(ss->loop, &q->async, on_async) != 0) {
        pthread_mutex_destroy(&q->mu);
        free(q);
        return WA_EINTERNAL;
    }
    q->async.data = ss;
    ss->opq = q;
    wa_rid_new(ss->send_nonce, sizeof(ss->send_nonce));
    return ridcache__new(RID_CACHE_MAX, RID_CACHE_TTL_MS, &ss->rids);
}

void ops__shutdown(ss_t *ss)
{
    ss_opq_t *q = ss->opq;
    op_item_t *it, *next;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    it = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    for (; it != NULL; it = next) {
        next = it->next;
        wa_bus_reply_err(it->job, WA_ECLOSED, "session-svc is shutting down");
        free(it);
    }
    /* From now on the handler answers by itself and never wakes us. */
    uv_close((uv_handle_t *)&q->async, NULL);
}

void ops__free(ss_t *ss)
{
    if (ss->opq != NULL) {
        pthread_mutex_destroy(&ss->opq->mu);
        free(ss->opq);
        ss->opq = NULL;
    }
    ridcache__free(ss->rids);
    ss->rids = NULL;
}

/* ---------------------------------------------------------- operations */

static cJSON *status_data(const ss_session_t *s)
{
    cJSON *o = cJSON_CreateObject();
    const char *v[6];
    static const char *const keys[6] = {"status",      "phoneNumber",
                                        "displayName", "qrCode",
                                        "connectedAt", "lastActivity"};
    int i;

    if (o == NULL)
        return NULL;
    v[0] = state__name(s != NULL ? s->status : SS_DISCONNECTED);
    v[1] = s != NULL ? s->phone : NULL;
    v[2] = s != NULL ? s->name : NULL;
    v[3] = s != NULL && s->status == SS_QR ? s->qr_url : NULL;
    v[4] = s != NULL ? s->connected_at : NULL;
    v[5] = s != NULL ? s->last_activity : NULL;
    for (i = 0; i < 6; i++) {
        cJSON *x = v[i] != NULL && v[i][0] != '\0' ? cJSON_CreateString(v[i])
                                                   : cJSON_CreateNull();
        if (x == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, keys[i], x);
    }
    return o;
}

static void reply_status(wa_bus_job_t *job, const char *status)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "status", status) == NULL) {
        cJSON_Delete(o);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    wa_bus_reply_ok(job, o);
}

static void op_connect(ss_t *ss, wa_bus_job_t *job, const wa_request_t *req)
{
    ss_session_t *s = sessions__find(ss, req->user);
    wa_err_t err;

    if (s != NULL && s->want) {
        /* Waiting out a crash backoff: the user asks now, so start now
         * (the backoff still grows if it crashes again). */
        sessions__relaunch_now(s);
        reply_status(job, state__name(s->status));
        return;
    }
    if (s != NULL && s->stopping) {
        wa_bus_reply_err(job, WA_ECONFLICT,
                         "a disconnect is in progress; try again");
        return;
    }
    if (sessions__active(ss) >= ss->cfg.max_sessions) {
        wa_warn(req->rid, "user %s: refused, %ld sessions is the maximum",
                req->user, ss->cfg.max_sessions);
        wa_bus_reply_err(job, WA_EFULL,
                         "this instance runs its maximum of sessions "
                         "(MAX_SESSIONS)");
        return;
    }
    if ((err = sessions__get(ss, req->user, &s)) != WA_OK ||
        (err = sessions__start(s, req->rid)) != WA_OK) {
        wa_bus_reply_err(job, err, NULL);
        return;
    }
    reply_status(job, state__name(s->status));
}

static void disconnected_stored(void *arg)
{
    reply_status(arg, "disconnected");
}

/* The browser is closed and the profile gone; answer once the disconnected
 * status is in the database, so a GET /status right after sees it. */
static void disconnected(void *arg, ss_session_t *s)
{
    storeio__barrier(s->ss->io, s->user, disconnected_stored, arg);
}

static void op_disconnect(ss_t *ss, wa_bus_job_t *job, const wa_request_t *req)
{
    ss_session_t *s;
    wa_err_t err;

    if ((err = sessions__get(ss, req->user, &s)) != WA_OK) {
        wa_bus_reply_err(job, err, NULL);
        return;
    }
    wa_info(req->rid, "user %s: disconnect requested", req->user);
    sessions__stop(s, STOP_LOGOUT, "disconnect", disconnected, job);
}

/* A page call's answer goes straight back to its job. */
static void call_replied(void *arg, wa_err_t err, cJSON *data,
                         const char *message)
{
    wa_bus_job_t *job = arg;

    if (err == WA_OK)
        wa_bus_reply_ok(job, data);
    else
        wa_bus_reply_err(job, err, message);
}

static ss_session_t *ready_session(ss_t *ss, wa_bus_job_t *job,
                                   const wa_request_t *req)
{
    ss_session_t *s = sessions__find(ss, req->user);

    if (s == NULL || s->status != SS_READY || s->browser == NULL) {
        wa_bus_reply_err(job, WA_ENOTREADY, "the session is not ready");
        return NULL;
    }
    return s;
}

static const char *arg_string(const wa_request_t *req, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->args, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void op_chats(ss_t *ss, wa_bus_job_t *job, const wa_request_t *req)
{
    ss_session_t *s = ready_session(ss, job, req);

    if (s != NULL)
        adapter__call(s, "chats", NULL, (int)ss->cfg.call_timeout_ms,
                      call_replied, job);
}

static void op_messages(ss_t *ss, wa_bus_job_t *job, const wa_request_t *req)
{
    const char *chat = arg_string(req, "chatId");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(req->args, "limit");
    double limit = SS_LIMIT_DEFAULT;
    ss_session_t *s;
    cJSON *a;

    if (!adapter__chat_id_valid(chat)) {
        wa_bus_reply_err(job, WA_EINVAL, "chatId is not a valid chat id");
        return;
    }
    if (lim != NULL && !cJSON_IsNull(lim)) {
        if (!cJSON_IsNumber(lim) || lim->valuedouble < 1 ||
            lim->valuedouble > SS_LIMIT_MAX ||
            lim->valuedouble != (double)(long)lim->valuedouble) {
            wa_bus_reply_err(job, WA_EINVAL,
                             "limit must be an integer in 1..500");
            return;
        }
        limit = lim->valuedouble;
    }
    if ((s = ready_session(ss, job, req)) == NULL)
        return;
    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "chatId", chat) == NULL ||
        cJSON_AddNumberToObject(a, "limit", limit) == NULL) {
        cJSON_Delete(a);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    adapter__call(s, "messages", a, (int)ss->cfg.call_timeout_ms, call_replied,
                  job);
}

static void op_chat_by_phone(ss_t *ss, wa_bus_job_t *job,
                             const wa_request_t *req)
{
    const char *phone = arg_string(req, "phone");
    char digits[SS_PHONE_MAX + 1];
    ss_session_t *s;
    cJSON *a;

    if (!adapter__phone_normalize(phone, digits, sizeof(digits))) {
        wa_bus_reply_err(job, WA_EINVAL,
                         "phone must be an E.164 number like +41791234567");
        return;
    }
    if ((s = ready_session(ss, job, req)) == NULL)
        return;
    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "phone", digits) == NULL) {
        cJSON_Delete(a);
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    adapter__call(s, "chatByPhone", a, (int)ss->cfg.call_timeout_ms,
                  call_replied, job);
}

/* ---- wa.send ---- */

typedef struct send_ctx {
    uv_work_t work; /* the send.claim call, off the loop */
    ss_t *ss;
    wa_bus_job_t *job;
    cJSON *args; /* {chatId, message} for the page */
    wa_err_t claim_err;
    char user[WA_USER_MAX + 1];
    char rid[WA_RID_MAX + 1];
} send_ctx_t;

/* Answer a job from a cached or shared result. */
static void reply_result(wa_bus_job_t *job, const rc_result_t *res)
{
    cJSON *data;

    if (res->err != WA_OK) {
        wa_bus_reply_err(job, res->err,
                         res->message[0] != '\0' ? res->message : NULL);
        return;
    }
    if (res->data == NULL || (data = cJSON_Parse(res->data)) == NULL) {
        wa_bus_reply_err(job, WA_ENOMEM, NULL);
        return;
    }
    wa_bus_reply_ok(job, data);
}

static void waiter_reply(void *waiter, const rc_result_t *res)
{
    reply_result(waiter, res);
}

static void sent(void *arg, wa_err_t err, cJSON *data, const char *message)
{
    send_ctx_t *sc = arg;
    ss_t *ss = sc->ss;
    rc_result_t res = {0};

    res.err = err;
    if (message != NULL)
        snprintf(res.message, sizeof(res.message), "%s", message);
    if (err == WA_OK && (res.data = cJSON_PrintUnformatted(data)) == NULL)
        res.err = WA_ENOMEM;
    if (res.err == WA_OK)
        wa_info(sc->rid, "user %s: message sent", sc->user);
    else
        wa_warn(sc->rid, "user %s: send failed: %s", sc->user,
                wa_err_code(res.err));
    cJSON_Delete(data);
    /* Once handed to the page, even a failure is kept: a retry with the
     * same rid must never send a second time. */
    ridcache__finish(ss->rids, sc->user, sc->rid, &res, true, uv_now(ss->loop),
                     waiter_reply);
    reply_result(sc->job, &res);
    free(res.data);
    free(sc);
}

/* A send that never reached the page: answered (with those waiting on its
 * rid), and its rid forgotten so that a retry may send. */
static void send_not_sent(ss_t *ss, wa_bus_job_t *job, const char *user,
                          const char *rid, wa_err_t err, const char *message)
{
    rc_result_t res = {0};

    res.err = err;
    if (message != NULL)
        snprintf(res.message, sizeof(res.message), "%s", message);
    ridcache__finish(ss->rids, user, rid, &res, false, uv_now(ss->loop),
                     waiter_reply);
    reply_result(job, &res);
}

static void send_refused(send_ctx_t *sc, wa_err_t err, const char *message)
{
    send_not_sent(sc->ss, sc->job, sc->user, sc->rid, err, message);
    cJSON_Delete(sc->args);
    free(sc);
}

/*
 * The in-memory rid cache dies with the process; store-svc keeps a claim of
 * the rid (send.claim, durable) for a day. A claim made with another nonce
 * (a session-svc before a restart, or another instance after a move) means
 * this send may have reached WhatsApp already: it is never sent again.
 */
static void claim_work(uv_work_t *w)
{
    send_ctx_t *sc = w->data;
    wa_reply_t rep;
    cJSON *a;

    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "nonce", sc->ss->send_nonce) == NULL) {
        cJSON_Delete(a);
        sc->claim_err = WA_ENOMEM;
        return;
    }
    sc->claim_err =
        wa_bus_call(sc->ss->store, WA_OP_SEND_CLAIM, sc->user, sc->rid, a,
                    (int)sc->ss->cfg.store_timeout_ms, &rep);
    if (sc->claim_err == WA_OK && rep.err != WA_OK)
        sc->claim_err = rep.err;
    cJSON_Delete(a);
    wa_reply_clear(&rep);
}

static void claim_done(uv_work_t *w, int status)
{
    send_ctx_t *sc = w->data;
    ss_t *ss = sc->ss;
    ss_session_t *s;
    cJSON *a;

    if (status != 0 || ss->stopping) {
        send_refused(sc, WA_ECLOSED, "session-svc is shutting down");
        return;
    }
    if (sc->claim_err == WA_ECONFLICT) {
        wa_warn(sc->rid, "user %s: send refused: its rid was claimed before",
                sc->user);
        send_refused(sc, WA_ECONFLICT,
                     "this request id was used for a send before (by an "
                     "earlier session-svc); it is never sent twice: use a "
                     "new request id to send again");
        return;
    }
    if (sc->claim_err != WA_OK) {
        wa_warn(sc->rid, "user %s: send not started: store-svc: %s", sc->user,
                wa_err_code(sc->claim_err));
        send_refused(sc,
                     sc->claim_err == WA_ETIMEDOUT ? WA_ETIMEDOUT : WA_EUNAVAIL,
                     "store-svc cannot record the send");
        return;
    }
    s = sessions__find(ss, sc->user);
    if (s == NULL || s->status != SS_READY || s->browser == NULL) {
        send_refused(sc, WA_ENOTREADY, "the session is not ready");
        return;
    }
    a = sc->args;
    sc->args = NULL;
    adapter__call(s, "send", a, (int)ss->cfg.call_timeout_ms, sent, sc);
}

static void op_send(ss_t *ss, wa_bus_job_t *job, const wa_request_t *req)
{
    const char *chat = arg_string(req, "chatId");
    const char *msg = arg_string(req, "message");
    rc_result_t res;
    rc_state_t st;
    send_ctx_t *sc;
    ss_session_t *s;
    uint64_t fp;
    size_t len;
    cJSON *a;
    wa_err_t err;

    if (!adapter__chat_id_valid(chat)) {
        wa_bus_reply_err(job, WA_EINVAL, "chatId is not a valid chat id");
        return;
    }
    if (msg == NULL || (len = strlen(msg)) == 0) {
        wa_bus_reply_err(job, WA_EINVAL, "message must be a non-empty string");
        return;
    }
    if (len > SS_BODY_MAX) {
        wa_bus_reply_err(job, WA_ETOOBIG, "message is over 65536 bytes");
        return;
    }
    if (!wa_utf8_valid(msg, len)) {
        wa_bus_reply_err(job, WA_EUTF8, "message is not valid UTF-8");
        return;
    }
    fp = wa_fnv1a(WA_FNV1A_INIT, chat, strlen(chat) + 1);
    fp = wa_fnv1a(fp, msg, len);
    err = ridcache__begin(ss->rids, req->user, req->rid, fp, uv_now(ss->loop),
                          job, &st, &res);
    if (err != WA_OK) {
        wa_bus_reply_err(job, err,
                         err == WA_EFULL ? "too many sends in flight" : NULL);
        return;
    }
    switch (st) {
    case RC_DONE:
        wa_info(req->rid, "user %s: repeated send answered from the cache",
                req->user);
        reply_result(job, &res);
        free(res.data);
        return;
    case RC_PENDING:
        return; /* answered when the first completes */
    case RC_MISMATCH:
        wa_bus_reply_err(job, WA_ECONFLICT,
                         "request id already used for another send");
        return;
    case RC_NEW:
        break;
    }
    s = sessions__find(ss, req->user);
    if (s == NULL || s->status != SS_READY || s->browser == NULL) {
        send_not_sent(ss, job, req->user, req->rid, WA_ENOTREADY,
                      "the session is not ready");
        return;
    }
    if ((sc = calloc(1, sizeof(*sc))) == NULL ||
        (a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "chatId", chat) == NULL ||
        cJSON_AddStringToObject(a, "message", msg) == NULL) {
        if (sc != NULL)
            cJSON_Delete(a);
        free(sc);
        send_not_sent(ss, job, req->user, req->rid, WA_ENOMEM, NULL);
        return;
    }
    sc->ss = ss;
    sc->job = job;
    sc->args = a;
    sc->work.data = sc;
    snprintf(sc->user, sizeof(sc->user), "%s", req->user);
    snprintf(sc->rid, sizeof(sc->rid), "%s", req->rid);
    if (uv_queue_work(ss->loop, &sc->work, claim_work, claim_done) != 0)
        send_refused(sc, WA_EINTERNAL, NULL);
}

static void dispatch(ss_t *ss, wa_bus_job_t *job)
{
    const wa_request_t *req = wa_bus_job_request(job);
    cJSON *data;

    if (ss->stopping) {
        wa_bus_reply_err(job, WA_ECLOSED, "session-svc is shutting down");
        return;
    }
    if (req->user[0] == '\0') {
        wa_bus_reply_err(job, WA_EINVAL, "a user is required");
        return;
    }
    switch (req->op) {
    case WA_OP_WA_STATUS:
        if ((data = status_data(sessions__find(ss, req->user))) == NULL)
            wa_bus_reply_err(job, WA_ENOMEM, NULL);
        else
            wa_bus_reply_ok(job, data);
        break;
    case WA_OP_WA_CONNECT:
        op_connect(ss, job, req);
        break;
    case WA_OP_WA_DISCONNECT:
        op_disconnect(ss, job, req);
        break;
    case WA_OP_WA_CHATS:
        op_chats(ss, job, req);
        break;
    case WA_OP_WA_MESSAGES:
        op_messages(ss, job, req);
        break;
    case WA_OP_WA_SEND:
        op_send(ss, job, req);
        break;
    case WA_OP_WA_CHAT_BY_PHONE:
        op_chat_by_phone(ss, job, req);
        break;
    default:
        wa_bus_reply_err(job, WA_EUNKNOWNOP, NULL);
        break;
    }
}
