/*
 * placement.c - which session-svc instance serves a user, and the REQ
 * sockets to those instances (gateway.h, gw_session_call).
 *
 * Two small tables under one mutex, each held only for a lookup or an
 * insert, never across a bus call:
 *   - the placement cache, user -> instance url, each answer of
 *     placement.resolve kept GW_PLACEMENT_TTL_MS; bounded by CACHE_MAX
 *     entries (expired entries go first, then the whole cache is dropped:
 *     it is only a cache);
 *   - the instance sockets, url -> REQ socket, dialed on first use and kept
 *     (nng reconnects them in the background); bounded by MAX_INSTANCES,
 *     the least recently used one is closed to make room.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "gateway.h"
#include "wa/hash.h"
#include "wa/log.h"
#include "wa/service.h"

#define CHAINS 256
#define CACHE_MAX 8192
#define MAX_INSTANCES 64
#define URL_MAX 512

_Static_assert(GW_PING_MAX * 2 <= MAX_INSTANCES,
               "a health check must not evict the sockets it does not use");

typedef struct entry {
    struct entry *next;
    long long expires_ms;
    char *url;
    char user[];
} entry_t;

typedef struct instance {
    char url[URL_MAX + 1];
    nng_socket sock;
    long long used_ms;
} instance_t;

struct gw_placement {
    gw_t *gw;
    pthread_mutex_t mu;
    entry_t *chains[CHAINS];
    size_t count;
    instance_t inst[MAX_INSTANCES];
    size_t ninst;
};

static unsigned chain_of(const char *user)
{
    return (unsigned)(wa_fnv1a_str(user) % CHAINS);
}

wa_err_t gw_placement_new(gw_t *gw, gw_placement_t **out)
{
    gw_placement_t *p;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        return WA_ENOMEM;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return WA_ENOMEM;
    }
    p->gw = gw;
    *out = p;
    return WA_OK;
}

static void entry_free(entry_t *e)
{
    free(e->url);
    free(e);
}

/* Drop every cached entry; with only_expired, the expired ones. Caller
 * holds p->mu. */
static void cache_prune(gw_placement_t *p, long long now_ms, bool only_expired)
{
    for (int c = 0; c < CHAINS; c++) {
        entry_t **pp = &p->chains[c];

        while (*pp != NULL) {
            entry_t *e = *pp;

            if (only_expired && e->expires_ms > now_ms) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            entry_free(e);
            p->count--;
        }
    }
}

void gw_placement_free(gw_placement_t *p)
{
    if (p == NULL)
        return;
    cache_prune(p, 0, false);
    for (size_t i = 0; i < p->ninst; i++)
        nng_close(p->inst[i].sock);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Copy user's cached url into url (URL_MAX + 1 bytes) if fresh. */
static bool cache_get(gw_placement_t *p, const char *user, char *url)
{
    long long now = wa_now_ms();
    bool found = false;

    pthread_mutex_lock(&p->mu);
    for (entry_t *e = p->chains[chain_of(user)]; e != NULL; e = e->next) {
        if (strcmp(e->user, user) == 0) {
            if (e->expires_ms > now) {
                strcpy(url, e->url);
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return found;
}

void gw_placement_forget(gw_placement_t *p, const char *user)
{
    pthread_mutex_lock(&p->mu);
    for (entry_t **pp = &p->chains[chain_of(user)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (strcmp((*pp)->user, user) == 0) {
            entry_t *e = *pp;

            *pp = e->next;
            entry_free(e);
            p->count--;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

/* Remember user -> url. Out of memory only costs a later re-resolve. */
static void cache_put(gw_placement_t *p, const char *user, const char *url)
{
    size_t ulen = strlen(user);
    long long now = wa_now_ms();
    entry_t *e;

    gw_placement_forget(p, user);
    if ((e = malloc(sizeof(*e) + ulen + 1)) == NULL)
        return;
    if ((e->url = strdup(url)) == NULL) {
        free(e);
        return;
    }
    memcpy(e->user, user, ulen + 1);
    e->expires_ms = now + GW_PLACEMENT_TTL_MS;
    pthread_mutex_lock(&p->mu);
    if (p->count >= CACHE_MAX)
        cache_prune(p, now, true);
    if (p->count >= CACHE_MAX)
        cache_prune(p, now, false);
    e->next = p->chains[chain_of(user)];
    p->chains[chain_of(user)] = e;
    p->count++;
    pthread_mutex_unlock(&p->mu);
}

/* The socket for url, if one is open. Caller holds p->mu. */
static instance_t *find_instance(gw_placement_t *p, const char *url)
{
    for (size_t i = 0; i < p->ninst; i++) {
        if (strcmp(p->inst[i].url, url) == 0)
            return &p->inst[i];
    }
    return NULL;
}

/*
 * The REQ socket for url, dialed now if it is new. WA_EINVAL for a url
 * nng cannot dial (store-svc's answer was wrong).
 */
static wa_err_t socket_for(gw_placement_t *p, const char *url, nng_socket *out)
{
    nng_socket s, evicted = NNG_SOCKET_INITIALIZER;
    instance_t *in;
    wa_err_t rv;

    if (strlen(url) > URL_MAX)
        return WA_EINVAL;
    pthread_mutex_lock(&p->mu);
    if ((in = find_instance(p, url)) != NULL) {
        in->used_ms = wa_now_ms();
        *out = in->sock;
        pthread_mutex_unlock(&p->mu);
        return WA_OK;
    }
    pthread_mutex_unlock(&p->mu);

    /* Dialing is non-blocking; done unlocked all the same. */
    if ((rv = wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, NULL, &s)) != WA_OK)
        return rv;

    pthread_mutex_lock(&p->mu);
    if ((in = find_instance(p, url)) != NULL) {
        /* Another thread dialed it meanwhile: use theirs. */
        evicted = s;
    } else {
        if (p->ninst == MAX_INSTANCES) {
            size_t lru = 0;

            for (size_t i = 1; i < p->ninst; i++) {
                if (p->inst[i].used_ms < p->inst[lru].used_ms)
                    lru = i;
            }
            /* Calls still using it fail with "closed" and are retried. */
            evicted = p->inst[lru].sock;
            p->inst[lru] = p->inst[--p->ninst];
        }
        in = &p->inst[p->ninst++];
        strcpy(in->url, url);
        in->sock = s;
    }
    in->used_ms = wa_now_ms();
    *out = in->sock;
    pthread_mutex_unlock(&p->mu);
    if (nng_socket_id(evicted) > 0)
        nng_close(evicted);
    return WA_OK;
}

/* Ask store-svc where r's user lives; the url into url. On failure the
 * store's reply (if any) is left in *rep for the caller. */
static wa_err_t resolve(gw_req_t *r, char *url, wa_reply_t *rep)
{
    const char *u;
    wa_err_t rv;

    rv = gw_store_call(r, WA_OP_PLACEMENT_RESOLVE, r->who.user, NULL, rep);
    if (rv != WA_OK)
        return rv;
    u = gw_json_string(rep->data, "url");
    if (u == NULL || u[0] == '\0' || strlen(u) > URL_MAX) {
        wa_reply_clear(rep); /* zeroes it: no remote error to report */
        gw_metrics_bus_error(r->gw->metrics, WA_OP_PLACEMENT_RESOLVE,
                             WA_EPROTO);
        return WA_EPROTO;
    }
    strcpy(url, u);
    wa_reply_clear(rep);
    return WA_OK;
}

/* Transport failures after which another instance may answer. */
static bool worth_retry(wa_err_t rv, const wa_reply_t *rep)
{
    return rep->err == WA_OK &&
           (rv == WA_ETIMEDOUT || rv == WA_ECLOSED || rv == WA_EUNAVAIL);
}

wa_err_t gw_session_call(gw_req_t *r, wa_op_t op, const cJSON *args,
                         wa_reply_t *rep, bool *from_store)
{
    gw_placement_t *p = r->gw->placement;
    char url[URL_MAX + 1];
    nng_socket s;
    wa_err_t rv = WA_ETIMEDOUT;

    memset(rep, 0, sizeof(*rep));
    *from_store = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cache_get(p, r->who.user, url)) {
            if ((rv = resolve(r, url, rep)) != WA_OK) {
                *from_store = true;
                return rv;
            }
            cache_put(p, r->who.user, url);
        }
        if ((rv = socket_for(p, url, &s)) != WA_OK) {
            wa_debug(r->rid, "cannot dial session-svc at %s: %s", url,
                     wa_strerror(rv));
            gw_placement_forget(p, r->who.user);
            *from_store = true; /* store-svc named a url we cannot use */
            return WA_EPROTO;
        }
        rv = gw_bus_call(r->gw, s, op, r->who.user, r->rid, args,
                         gw_remaining_ms(r), rep);
        if (!worth_retry(rv, rep))
            return rv;
        gw_placement_forget(p, r->who.user);
        if (attempt == 0 && gw_remaining_ms(r) > 0)
            wa_info(r->rid, "session-svc at %s: %s; resolving again", url,
                    wa_err_code(rv));
        if (gw_remaining_ms(r) <= 0)
            break;
    }
    return rv;
}

wa_err_t gw_instance_ping(gw_t *gw, const char *url, const char *rid,
                          int timeout_ms, int64_t *rtt_us)
{
    wa_reply_t rep;
    nng_socket s;
    int64_t t0;
    wa_err_t rv;

    if ((rv = socket_for(gw->placement, url, &s)) != WA_OK)
        return rv;
    t0 = gw_now_us();
    rv = gw_bus_call(gw, s, WA_OP_PING, "", rid, NULL, timeout_ms, &rep);
    if (rv == WA_OK)
        *rtt_us = gw_now_us() - t0;
    wa_reply_clear(&rep);
    return rv;
}

/* One ping of gw_instances_ping() on its own REQ context. */
typedef struct ping_op {
    nng_ctx ctx;
    nng_aio *aio;
    bool ctx_open;
    int64_t t0_us;
} ping_op_t;

/* Milliseconds left before deadline_ms (wa_now_ms() clock), >= 0. */
static nng_duration left_ms(long long deadline_ms)
{
    long long left = deadline_ms - wa_now_ms();

    return left > 0 ? (nng_duration)left : NNG_DURATION_ZERO;
}

/* Send the encoded request req[0..len) to url; the answer is collected by
 * ping_finish(). */
static wa_err_t ping_start(gw_placement_t *p, ping_op_t *op, const char *url,
                           const char *req, size_t len, long long deadline_ms)
{
    nng_msg *msg = NULL;
    nng_socket s;
    wa_err_t rv;
    int rc;

    if ((rv = socket_for(p, url, &s)) != WA_OK)
        return rv;
    if ((rc = nng_ctx_open(&op->ctx, s)) != 0)
        return wa_bus_err(rc);
    op->ctx_open = true;
    if ((rc = nng_aio_alloc(&op->aio, NULL, NULL)) != 0 ||
        (rc = nng_msg_alloc(&msg, 0)) != 0 ||
        (rc = nng_msg_append(msg, req, len)) != 0) {
        if (msg != NULL)
            nng_msg_free(msg);
        return wa_bus_err(rc);
    }
    nng_aio_set_msg(op->aio, msg);
    nng_aio_set_timeout(op->aio, left_ms(deadline_ms));
    op->t0_us = gw_now_us();
    nng_ctx_send(op->ctx, op->aio);
    return WA_OK;
}

/* Wait for op's send, then for its answer, both by deadline_ms: WA_OK with
 * *rtt_us when it answered ping, else why not. */
static wa_err_t ping_finish(ping_op_t *op, long long deadline_ms,
                            int64_t *rtt_us)
{
    wa_reply_t rep;
    nng_msg *msg;
    wa_err_t rv;
    int rc;

    nng_aio_wait(op->aio);
    if ((rc = nng_aio_result(op->aio)) != 0) {
        /* A message not sent is still ours to free. */
        if ((msg = nng_aio_get_msg(op->aio)) != NULL)
            nng_msg_free(msg);
        nng_aio_set_msg(op->aio, NULL);
        return wa_bus_err(rc);
    }
    nng_aio_set_timeout(op->aio, left_ms(deadline_ms));
    nng_ctx_recv(op->ctx, op->aio);
    nng_aio_wait(op->aio);
    if ((rc = nng_aio_result(op->aio)) != 0)
        return wa_bus_err(rc);
    msg = nng_aio_get_msg(op->aio);
    rv = wa_reply_decode(nng_msg_body(msg), nng_msg_len(msg), &rep);
    nng_msg_free(msg);
    if (rv == WA_OK && rep.err != WA_OK)
        rv = rep.err;
    wa_reply_clear(&rep);
    if (rv == WA_OK)
        *rtt_us = gw_now_us() - op->t0_us;
    return rv;
}

wa_err_t gw_instances_ping(gw_t *gw, gw_ping_t *pings, size_t n,
                           const char *rid, int timeout_ms)
{
    const long long deadline_ms = wa_now_ms() + timeout_ms;
    ping_op_t ops[GW_PING_MAX] = {0};
    char *req = NULL;
    size_t len = 0;
    wa_err_t rv;

    if (n > GW_PING_MAX || timeout_ms <= 0)
        return WA_EINVAL;
    /* The same request for each: the instances are distinct peers, so one
     * rid is no repeat to any of them. */
    if ((rv = wa_request_encode(WA_OP_PING, "", rid, NULL, &req, &len)) !=
        WA_OK) {
        for (size_t i = 0; i < n; i++)
            pings[i].rv = rv;
        return rv;
    }
    /* All on the wire first; then each answer is awaited in turn, which
     * costs nothing more: every wait ends by the same deadline. */
    for (size_t i = 0; i < n; i++) {
        pings[i].rtt_us = 0;
        pings[i].rv = ping_start(gw->placement, &ops[i], pings[i].url, req, len,
                                 deadline_ms);
    }
    for (size_t i = 0; i < n; i++) {
        if (pings[i].rv == WA_OK)
            pings[i].rv = ping_finish(&ops[i], deadline_ms, &pings[i].rtt_us);
        if (pings[i].rv != WA_OK)
            gw_metrics_bus_error(gw->metrics, WA_OP_PING, pings[i].rv);
    }
    /* nng_aio_free stops an aio first; closing the context then abandons a
     * request still pending. */
    for (size_t i = 0; i < n; i++) {
        if (ops[i].aio != NULL)
            nng_aio_free(ops[i].aio);
        if (ops[i].ctx_open)
            nng_ctx_close(ops[i].ctx);
    }
    free(req);
    return WA_OK;
}
