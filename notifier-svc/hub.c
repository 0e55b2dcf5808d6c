/*
 * hub.c - users -> connections, fan-out, and the per-user replay rings.
 *
 * One mutex guards everything here: the user table, each user's list of
 * attached connections and its ring, the LRU list and the counts. The pump
 * holds it while it queues one event to a user's connections; an attach
 * holds it while it snapshots the ring and links the connection. Queueing
 * never blocks (outq.c), so the lock is held for memory operations only.
 *
 * A user entry lives while it has a reservation or a non-empty ring. Users
 * with a ring but no connection sit on an LRU list; past users_max the
 * least recently published-to is forgotten. Rings are bounded by count and
 * by bytes, and kept in ascending seq order.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "notifier.h"
#include "wa/log.h"

#define HUB_INITIAL_BUCKETS 64
#define RING_INITIAL_CAP 8

struct nt_user {
    char name[WA_USER_MAX + 1];
    nt_user_t *hnext; /* hash chain */
    nt_user_t *lru_prev, *lru_next;
    bool in_lru;
    nt_sub_t *subs;    /* attached connections */
    size_t nconn;      /* reservations (attached or not) */
    nt_frame_t **ring; /* circular, ascending seq */
    size_t cap, head, count, bytes;
};

struct nt_hub {
    pthread_mutex_t mu;
    nt_hub_opts_t o;
    nt_metrics_t *m;
    nt_user_t **buckets;
    size_t nbuckets, nusers;
    nt_user_t *lru_head, *lru_tail; /* most recent first */
    size_t nlru;
    size_t nconn;
    size_t ring_bytes;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

wa_err_t nt_hub_new(const nt_hub_opts_t *opts, nt_metrics_t *metrics,
                    nt_hub_t **out)
{
    nt_hub_t *hub;

    if (opts == NULL || out == NULL || opts->replay == 0 ||
        opts->replay_bytes == 0 || opts->users_max == 0 ||
        opts->max_conn == 0 || opts->max_conn_per_user == 0)
        return WA_EINVAL;
    if ((hub = calloc(1, sizeof(*hub))) == NULL)
        return WA_ENOMEM;
    if ((hub->buckets = calloc(HUB_INITIAL_BUCKETS, sizeof(*hub->buckets))) ==
        NULL)
        goto fail_buckets;
    if (pthread_mutex_init(&hub->mu, NULL) != 0)
        goto fail_mu;
    hub->nbuckets = HUB_INITIAL_BUCKETS;
    hub->o = *opts;
    hub->m = metrics;
    *out = hub;
    return WA_OK;

fail_mu:
    free(hub->buckets);
fail_buckets:
    free(hub);
    return WA_ENOMEM;
}

/* Count into a metrics field, if the hub was given metrics. */
#define COUNT(hub, field, n)                                                   \
    do {                                                                       \
        if ((hub)->m != NULL)                                                  \
            nt_metrics_add(&(hub)->m->field, (n));                             \
    } while (0)

/* ---- the user table ------------------------------------------------------
 */

static nt_user_t *find(nt_hub_t *hub, const char *name)
{
    nt_user_t *u = hub->buckets[hash_name(name) & (hub->nbuckets - 1)];

    while (u != NULL && strcmp(u->name, name) != 0)
        u = u->hnext;
    return u;
}

/* Double the buckets when the table is full; on out-of-memory keep the old
 * (longer chains, still correct). */
static void maybe_grow(nt_hub_t *hub)
{
    size_t n = hub->nbuckets * 2;
    nt_user_t **b;

    if (hub->nusers < hub->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
        return;
    for (size_t i = 0; i < hub->nbuckets; i++) {
        nt_user_t *u = hub->buckets[i], *next;

        for (; u != NULL; u = next) {
            size_t k = hash_name(u->name) & (n - 1);

            next = u->hnext;
            u->hnext = b[k];
            b[k] = u;
        }
    }
    free(hub->buckets);
    hub->buckets = b;
    hub->nbuckets = n;
}

static nt_user_t *find_or_add(nt_hub_t *hub, const char *name)
{
    nt_user_t *u = find(hub, name);
    size_t k, len = strlen(name);

    if (u != NULL)
        return u;
    if (len > WA_USER_MAX || (u = calloc(1, sizeof(*u))) == NULL)
        return NULL;
    memcpy(u->name, name, len + 1);
    maybe_grow(hub);
    k = hash_name(name) & (hub->nbuckets - 1);
    u->hnext = hub->buckets[k];
    hub->buckets[k] = u;
    hub->nusers++;
    return u;
}

static void lru_unlink(nt_hub_t *hub, nt_user_t *u)
{
    if (!u->in_lru)
        return;
    if (u->lru_prev != NULL)
        u->lru_prev->lru_next = u->lru_next;
    else
        hub->lru_head = u->lru_next;
    if (u->lru_next != NULL)
        u->lru_next->lru_prev = u->lru_prev;
    else
        hub->lru_tail = u->lru_prev;
    u->lru_prev = u->lru_next = NULL;
    u->in_lru = false;
    hub->nlru--;
}

static void ring_clear(nt_hub_t *hub, nt_user_t *u)
{
    for (size_t i = 0; i < u->count; i++)
        nt_frame_unref(u->ring[(u->head + i) % u->cap]);
    hub->ring_bytes -= u->bytes;
    free(u->ring);
    u->ring = NULL;
    u->cap = u->head = u->count = u->bytes = 0;
}

static void remove_user(nt_hub_t *hub, nt_user_t *u)
{
    nt_user_t **p = &hub->buckets[hash_name(u->name) & (hub->nbuckets - 1)];

    while (*p != u)
        p = &(*p)->hnext;
    *p = u->hnext;
    hub->nusers--;
    lru_unlink(hub, u);
    ring_clear(hub, u);
    free(u);
}

/*
 * Put u where its state says: on the LRU front if it has a ring and no
 * connection, off it otherwise; forgotten if it has neither. Then keep the
 * LRU within users_max. Caller holds the lock.
 */
static void settle(nt_hub_t *hub, nt_user_t *u)
{
    lru_unlink(hub, u);
    if (u->nconn == 0 && u->count == 0) {
        remove_user(hub, u);
    } else if (u->nconn == 0) {
        u->lru_next = hub->lru_head;
        if (hub->lru_head != NULL)
            hub->lru_head->lru_prev = u;
        hub->lru_head = u;
        if (hub->lru_tail == NULL)
            hub->lru_tail = u;
        u->in_lru = true;
        hub->nlru++;
    }
    while (hub->nlru > hub->o.users_max) {
        remove_user(hub, hub->lru_tail);
        COUNT(hub, evicted_users, 1);
    }
}

/* ---- rings ---------------------------------------------------------------
 */

static nt_frame_t *ring_at(const nt_user_t *u, size_t i)
{
    return u->ring[(u->head + i) % u->cap];
}

static void ring_drop_oldest(nt_hub_t *hub, nt_user_t *u)
{
    nt_frame_t *f = u->ring[u->head];

    u->bytes -= f->len;
    hub->ring_bytes -= f->len;
    nt_frame_unref(f);
    u->head = (u->head + 1) % u->cap;
    u->count--;
}

static bool ring_has(const nt_user_t *u, int64_t seq)
{
    for (size_t i = u->count; i > 0; i--) {
        int64_t s = ring_at(u, i - 1)->seq;

        if (s == seq)
            return true;
        if (s < seq)
            return false;
    }
    return false;
}

/* Keep a reference to f in u's ring, in seq order, within the bounds.
 * WA_ENOMEM leaves the ring as it was. */
static wa_err_t ring_add(nt_hub_t *hub, nt_user_t *u, nt_frame_t *f)
{
    size_t i;

    if (u->count > 0 && u->count == hub->o.replay &&
        f->seq < ring_at(u, 0)->seq)
        return WA_OK; /* older than all a full ring holds: not worth it */
    if (u->count == u->cap && u->cap < hub->o.replay) {
        size_t cap = u->cap == 0 ? RING_INITIAL_CAP : u->cap * 2;
        nt_frame_t **ring;

        if (cap > hub->o.replay)
            cap = hub->o.replay;
        if ((ring = malloc(cap * sizeof(*ring))) == NULL)
            return WA_ENOMEM;
        for (i = 0; i < u->count; i++)
            ring[i] = ring_at(u, i);
        free(u->ring);
        u->ring = ring;
        u->cap = cap;
        u->head = 0;
    }
    if (u->count == u->cap)
        ring_drop_oldest(hub, u);
    /* Append, then move back past newer seqs (an out-of-order arrival). */
    i = u->count++;
    while (i > 0 && ring_at(u, i - 1)->seq > f->seq) {
        u->ring[(u->head + i) % u->cap] = ring_at(u, i - 1);
        i--;
    }
    u->ring[(u->head + i) % u->cap] = nt_frame_ref(f);
    u->bytes += f->len;
    hub->ring_bytes += f->len;
    while (u->count > 1 && u->bytes > hub->o.replay_bytes)
        ring_drop_oldest(hub, u);
    return WA_OK;
}

/* ---- connections ---------------------------------------------------------
 */

wa_err_t nt_hub_reserve(nt_hub_t *hub, nt_sub_t *sub)
{
    nt_user_t *u;
    wa_err_t rv = WA_OK;

    if (sub->reserved || wa_check_user(sub->user) != WA_OK)
        return WA_EINVAL;
    pthread_mutex_lock(&hub->mu);
    if ((u = find(hub, sub->user)) != NULL &&
        u->nconn >= hub->o.max_conn_per_user) {
        rv = WA_ERATELIMIT;
    } else if (hub->nconn >= hub->o.max_conn) {
        rv = WA_EFULL;
    } else if ((u = find_or_add(hub, sub->user)) == NULL) {
        rv = WA_ENOMEM;
    } else {
        u->nconn++;
        hub->nconn++;
        lru_unlink(hub, u);
        sub->owner = u;
        sub->reserved = true;
    }
    pthread_mutex_unlock(&hub->mu);
    return rv;
}

void nt_hub_release(nt_hub_t *hub, nt_sub_t *sub)
{
    nt_user_t *u = sub->owner;

    if (!sub->reserved)
        return;
    pthread_mutex_lock(&hub->mu);
    if (sub->attached) {
        if (sub->prev != NULL)
            sub->prev->next = sub->next;
        else
            u->subs = sub->next;
        if (sub->next != NULL)
            sub->next->prev = sub->prev;
        sub->prev = sub->next = NULL;
        sub->attached = false;
    }
    u->nconn--;
    hub->nconn--;
    sub->reserved = false;
    sub->owner = NULL;
    settle(hub, u);
    pthread_mutex_unlock(&hub->mu);
}

/* The resync frame: {"type":"resync","data":{"since":n,"oldest":m},...}.
 * Its seq is oldest - 1: where the client stands once it has refetched
 * /status, so the frames that follow continue the sequence without a gap. */
static wa_err_t resync_frame(const char *user, int64_t since, int64_t oldest,
                             nt_frame_t **out)
{
    wa_event_t ev;
    char *json = NULL;
    size_t len;
    wa_err_t rv;

    if ((rv = wa_event_init(&ev, user, WA_EV_RESYNC)) != WA_OK)
        return rv;
    ev.seq = oldest - 1;
    if (cJSON_AddNumberToObject(ev.data, "since", (double)since) == NULL ||
        cJSON_AddNumberToObject(ev.data, "oldest", (double)oldest) == NULL)
        rv = WA_ENOMEM;
    if (rv == WA_OK)
        rv = wa_event_frame(&ev, &json, &len);
    if (rv == WA_OK)
        rv = nt_frame_new_text(json, len, 0, out);
    free(json);
    wa_event_clear(&ev);
    return rv;
}

/* Count what a push to sub did. */
static bool account(nt_hub_t *hub, nt_sub_t *sub, wa_err_t rv)
{
    if (rv == WA_OK) {
        COUNT(hub, frames_queued, 1);
        return true;
    }
    if (rv == WA_EFULL) {
        COUNT(hub, drops[NT_DROP_OVERFLOW], 1);
        wa_warn(NULL,
                "dropped a slow WebSocket client of user %s: its send "
                "queue overflowed",
                sub->user);
    }
    return false;
}

/* Queue f to sub. Caller holds the lock. */
static bool queue_to(nt_hub_t *hub, nt_sub_t *sub, nt_frame_t *f)
{
    return account(hub, sub, nt_outq_push(sub->q, f));
}

/*
 * Pending pushes of a fan-out: (connection, frame) pairs in event order,
 * handed to the writer pool in chunks under one pool lock each. Caller
 * holds the hub lock throughout. A chunk is bounded in bytes too: the
 * writers cannot drain a queue while the pump holds the pool lock, so one
 * chunk must never carry enough to overflow a healthy connection's queue.
 */
#define FANOUT_CHUNK 128
#define FANOUT_BYTES 65536

typedef struct fanout {
    nt_sub_t *subs[FANOUT_CHUNK];
    nt_outq_t *qs[FANOUT_CHUNK];
    nt_frame_t *fs[FANOUT_CHUNK];
    wa_err_t rv[FANOUT_CHUNK];
    size_t n, bytes;
} fanout_t;

static void fanout_flush(nt_hub_t *hub, fanout_t *fo)
{
    if (fo->n == 0)
        return;
    nt_outq_push_each(fo->qs, fo->fs, fo->n, fo->rv);
    for (size_t i = 0; i < fo->n; i++)
        (void)account(hub, fo->subs[i], fo->rv[i]);
    fo->n = 0;
    fo->bytes = 0;
}

/* Queue f to every sub of u (references are taken by the queues). */
static void fanout_add(nt_hub_t *hub, fanout_t *fo, nt_user_t *u, nt_frame_t *f)
{
    for (nt_sub_t *s = u->subs; s != NULL; s = s->next) {
        if (fo->n == FANOUT_CHUNK || fo->bytes >= FANOUT_BYTES)
            fanout_flush(hub, fo);
        fo->subs[fo->n] = s;
        fo->qs[fo->n] = s->q;
        fo->fs[fo->n] = f;
        fo->n++;
        fo->bytes += f->len;
    }
}

wa_err_t nt_hub_attach(nt_hub_t *hub, nt_sub_t *sub, int64_t since,
                       nt_replay_t *info)
{
    nt_replay_t r = {0};
    nt_user_t *u = sub->owner;
    wa_err_t rv = WA_OK;

    if (!sub->reserved || sub->attached || sub->q == NULL)
        return WA_EINVAL;
    pthread_mutex_lock(&hub->mu);
    sub->prev = NULL;
    sub->next = u->subs;
    if (u->subs != NULL)
        u->subs->prev = sub;
    u->subs = sub;
    sub->attached = true;

    if (since >= 0) {
        COUNT(hub, replays, 1);
        if (u->count > 0 && ring_at(u, 0)->seq > since + 1) {
            nt_frame_t *f = NULL;

            r.resync = true;
            r.oldest = ring_at(u, 0)->seq;
            if ((rv = resync_frame(u->name, since, r.oldest, &f)) == WA_OK) {
                COUNT(hub, resyncs, 1);
                (void)queue_to(hub, sub, f);
            }
            nt_frame_unref(f);
        }
        for (size_t i = 0; rv == WA_OK && i < u->count; i++) {
            nt_frame_t *f = ring_at(u, i);

            if (f->seq > since && queue_to(hub, sub, f))
                r.frames++;
        }
        COUNT(hub, replayed_frames, r.frames);
    }
    pthread_mutex_unlock(&hub->mu);
    if (info != NULL)
        *info = r;
    return rv;
}

/* ---- fan-out -------------------------------------------------------------
 */

/* The frame of an event, encoded once and shared by every recipient: the
 * one the pump's decoder made (wa_event_decode_frame), else encoded here. */
static wa_err_t event_frame(const wa_event_t *ev, nt_frame_t **out)
{
    char *json = NULL;
    size_t len;
    wa_err_t rv;

    if (ev->frame != NULL)
        return nt_frame_new_text(ev->frame, ev->frame_len, ev->seq, out);
    if ((rv = wa_event_frame(ev, &json, &len)) != WA_OK)
        return rv;
    rv = nt_frame_new_text(json, len, ev->seq, out);
    free(json);
    return rv;
}

/* Relay one encoded event: ring, then fan-out. Caller holds the lock. */
static wa_err_t publish_locked(nt_hub_t *hub, fanout_t *fo,
                               const wa_event_t *ev, nt_frame_t *f)
{
    nt_user_t *u;
    wa_err_t rv = WA_OK;

    u = ev->seq > 0 ? find_or_add(hub, ev->user) : find(hub, ev->user);
    if (u == NULL)
        return ev->seq > 0 ? WA_ENOMEM : WA_OK; /* no one to tell */
    if (ev->seq > 0 && u->count > 0) {
        int64_t newest = ring_at(u, u->count - 1)->seq;

        if (ev->seq <= newest && ring_has(u, ev->seq)) {
            COUNT(hub, events_duplicate, 1);
            return WA_OK; /* already relayed: never twice */
        }
        /* Seqs rise by one per user: a jump means events were lost on
         * the way (a full SUB queue drops silently). */
        if (ev->seq > newest + 1)
            COUNT(hub, events_gap, (uint64_t)(ev->seq - newest - 1));
    }
    if (ev->seq > 0)
        rv = ring_add(hub, u, f);
    fanout_add(hub, fo, u, f);
    settle(hub, u);
    return rv;
}

void nt_hub_publish_many(nt_hub_t *hub, const wa_event_t *evs, size_t n,
                         wa_err_t *results)
{
    nt_frame_t *frames[NT_PUMP_BATCH];
    fanout_t fo;

    while (n > 0) {
        size_t k = n < NT_PUMP_BATCH ? n : NT_PUMP_BATCH;

        /* Encoded outside the lock. */
        for (size_t i = 0; i < k; i++) {
            frames[i] = NULL;
            results[i] = event_frame(&evs[i], &frames[i]);
        }
        fo.n = fo.bytes = 0;
        pthread_mutex_lock(&hub->mu);
        for (size_t i = 0; i < k; i++)
            if (results[i] == WA_OK)
                results[i] = publish_locked(hub, &fo, &evs[i], frames[i]);
        fanout_flush(hub, &fo);
        pthread_mutex_unlock(&hub->mu);
        for (size_t i = 0; i < k; i++)
            nt_frame_unref(frames[i]);
        evs += k;
        results += k;
        n -= k;
    }
}

wa_err_t nt_hub_publish(nt_hub_t *hub, const wa_event_t *ev)
{
    wa_err_t rv;

    if (hub == NULL || ev == NULL)
        return WA_EINVAL;
    nt_hub_publish_many(hub, ev, 1, &rv);
    return rv;
}

void nt_hub_close_all(nt_hub_t *hub, uint16_t code, const char *reason)
{
    pthread_mutex_lock(&hub->mu);
    for (size_t i = 0; i < hub->nbuckets; i++)
        for (nt_user_t *u = hub->buckets[i]; u != NULL; u = u->hnext)
            for (nt_sub_t *s = u->subs; s != NULL; s = s->next)
                nt_outq_close(s->q, code, reason, false);
    pthread_mutex_unlock(&hub->mu);
}

void nt_hub_gauges(nt_hub_t *hub, nt_gauges_t *g)
{
    pthread_mutex_lock(&hub->mu);
    g->connections = hub->nconn;
    g->users = hub->nusers;
    g->ring_bytes = hub->ring_bytes;
    pthread_mutex_unlock(&hub->mu);
}

size_t nt_hub_ring_seqs(nt_hub_t *hub, const char *user, int64_t *out,
                        size_t max)
{
    nt_user_t *u;
    size_t n = 0;

    pthread_mutex_lock(&hub->mu);
    if ((u = find(hub, user)) != NULL)
        for (; n < u->count && n < max; n++)
            out[n] = ring_at(u, n)->seq;
    pthread_mutex_unlock(&hub->mu);
    return n;
}

void nt_hub_free(nt_hub_t *hub)
{
    if (hub == NULL)
        return;
    for (size_t i = 0; i < hub->nbuckets; i++) {
        nt_user_t *u = hub->buckets[i], *next;

        for (; u != NULL; u = next) {
            next = u->hnext;
            ring_clear(hub, u);
            free(u);
        }
    }
    free(hub->buckets);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}
