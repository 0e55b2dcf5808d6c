/*
 * logcache.c - kept GET /logs bodies (logcache.h).
 *
 * Each stripe is a list in order of use, most recent first: a lookup moves
 * its entry to the front, so the entry to drop when the stripe is full is
 * the last one.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "logcache.h"
#include "stripes.h"
#include "wa/envelope.h"
#include "wa/hash.h"

#define STRIPES 16
#define PER_STRIPE (GW_LOGCACHE_MAX / STRIPES)
#define STRIPE_BYTES (GW_LOGCACHE_BYTES / STRIPES)

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    long limit;
    gw_logbody_t *body;
    size_t user_len;
    char user[]; /* NUL-terminated */
} entry_t;

typedef struct stripe {
    pthread_mutex_t mu;
    entry_t *head;
    size_t count;
    size_t bytes;
} stripe_t;

struct gw_logcache {
    stripe_t stripes[STRIPES];
    atomic_ullong hits;
    atomic_ullong misses;
};

static const char body_head[] = "{\"logs\":";

wa_err_t gw_logcache_new(gw_logcache_t **out)
{
    gw_logcache_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return WA_ENOMEM;
    if (gw_stripes_init(&c->stripes[0].mu, STRIPES, sizeof(c->stripes[0])) !=
        WA_OK) {
        free(c);
        return WA_ENOMEM;
    }
    *out = c;
    return WA_OK;
}

gw_logbody_t *gw_logbody_new(const char *version, size_t vlen, const char *rows,
                             size_t rows_len)
{
    const size_t head = sizeof(body_head) - 1;
    gw_logbody_t *b;
    size_t len;

    if (vlen == 0 || vlen > GW_LOGCACHE_VERSION_MAX ||
        memchr(version, '\0', vlen) != NULL || rows_len > SIZE_MAX / 2)
        return NULL;
    len = head + rows_len + 1;
    if ((b = malloc(sizeof(*b) + len + 1)) == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    memcpy(b->version, version, vlen);
    b->version[vlen] = '\0';
    b->version_len = vlen;
    memcpy(b->body, body_head, head);
    memcpy(b->body + head, rows, rows_len);
    b->body[len - 1] = '}';
    b->body[len] = '\0';
    b->len = len;
    return b;
}

void gw_logbody_release(gw_logbody_t *b)
{
    if (b != NULL &&
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

static void retain(gw_logbody_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

/* Caller holds the stripe's lock. */
static void entry_drop(stripe_t *st, entry_t *e)
{
    st->count--;
    st->bytes -= e->body->len;
    gw_logbody_release(e->body);
    free(e);
}

void gw_logcache_clear(gw_logcache_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &c->stripes[i];
        entry_t *e, *next;

        pthread_mutex_lock(&st->mu);
        for (e = st->head; e != NULL; e = next) {
            next = e->next;
            entry_drop(st, e);
        }
        st->head = NULL;
        pthread_mutex_unlock(&st->mu);
    }
}

void gw_logcache_free(gw_logcache_t *c)
{
    if (c == NULL)
        return;
    gw_logcache_clear(c);
    gw_stripes_destroy(&c->stripes[0].mu, STRIPES, sizeof(c->stripes[0]));
    free(c);
}

static uint64_t key_hash(const char *user, size_t len, long limit)
{
    return wa_fnv1a(wa_fnv1a(WA_FNV1A_INIT, user, len), &limit, sizeof(limit));
}

/* The link that points at (user, limit)'s entry, or NULL. Caller holds the
 * stripe's lock. */
static entry_t **find(stripe_t *st, uint64_t h, const char *user, size_t len,
                      long limit)
{
    for (entry_t **pp = &st->head; *pp != NULL; pp = &(*pp)->next) {
        const entry_t *e = *pp;

        if (e->hash == h && e->limit == limit && e->user_len == len &&
            memcmp(e->user, user, len) == 0)
            return pp;
    }
    return NULL;
}

gw_logbody_t *gw_logcache_get(gw_logcache_t *c, const char *user, long limit)
{
    size_t len = strnlen(user, WA_USER_MAX + 1);
    uint64_t h;
    stripe_t *st;
    entry_t **pp, *e;
    gw_logbody_t *b = NULL;

    if (len == 0 || len > WA_USER_MAX)
        return NULL;
    h = key_hash(user, len, limit);
    st = &c->stripes[h % STRIPES];
    pthread_mutex_lock(&st->mu);
    if ((pp = find(st, h, user, len, limit)) != NULL) {
        e = *pp;
        *pp = e->next; /* to the front: the most recently used */
        e->next = st->head;
        st->head = e;
        b = e->body;
        retain(b);
    }
    pthread_mutex_unlock(&st->mu);
    return b;
}

/* Drop the least recently used entries until there is room for one more
 * entry of bytes. Caller holds the stripe's lock. */
static void make_room(stripe_t *st, size_t bytes)
{
    while (st->head != NULL &&
           (st->count >= PER_STRIPE || st->bytes + bytes > STRIPE_BYTES)) {
        entry_t **pp = &st->head;

        while ((*pp)->next != NULL)
            pp = &(*pp)->next;
        entry_drop(st, *pp);
        *pp = NULL;
    }
}

void gw_logcache_put(gw_logcache_t *c, const char *user, long limit,
                     gw_logbody_t *b)
{
    size_t len = strnlen(user, WA_USER_MAX + 1);
    uint64_t h;
    stripe_t *st;
    entry_t **pp, *e;

    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
    if (len == 0 || len > WA_USER_MAX || b->len > STRIPE_BYTES)
        return;
    if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
        return; /* not kept: the next request fetches the rows again */
    h = key_hash(user, len, limit);
    e->hash = h;
    e->limit = limit;
    e->body = b;
    e->user_len = len;
    memcpy(e->user, user, len + 1);
    retain(b);

    st = &c->stripes[h % STRIPES];
    pthread_mutex_lock(&st->mu);
    if ((pp = find(st, h, user, len, limit)) != NULL) {
        entry_t *old = *pp;

        *pp = old->next;
        entry_drop(st, old);
    }
    make_room(st, b->len);
    e->next = st->head;
    st->head = e;
    st->count++;
    st->bytes += b->len;
    pthread_mutex_unlock(&st->mu);
}

void gw_logcache_hit(gw_logcache_t *c)
{
    atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
}

void gw_logcache_stats(gw_logcache_t *c, gw_logcache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &c->stripes[i];

        pthread_mutex_lock(&st->mu);
        out->entries += st->count;
        out->bytes += st->bytes;
        pthread_mutex_unlock(&st->mu);
    }
}
