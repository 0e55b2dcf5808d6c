/*
 * idem.c - idempotency by request id (DESIGN §6).
 *
 * The bus sends a request again when its connection was lost (bus.c), and
 * callers retry with the same rid, so a mutation can arrive more than once. The
 * first arrival reserves its key; duplicates arriving while it runs wait for
 * its answer; duplicates arriving later get the recorded reply. Failed requests
 * are not recorded (they wrote nothing): a retry runs again.
 *
 * The key is (op, user, rid), not the rid alone: rids can come from clients
 * (X-Request-Id), so one user must never receive another's reply, and a rid
 * reused with different arguments is refused rather than answered with the
 * reply to something else.
 *
 * Completed entries live on a list in completion order; with one TTL for
 * all, the oldest is always at the head, so expiry and eviction are O(1).
 * Reserved (pending) entries are not on it and are never evicted; there are
 * at most as many as requests in flight.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "wa/hash.h"

typedef struct waiter {
    struct waiter *next;
    void *w;
} waiter_t;

typedef struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* completion order; done entries only */
    uint64_t hash;
    uint64_t fp;
    int64_t done_ms;
    bool done;
    char *reply; /* done: the data as JSON text */
    size_t reply_len;
    waiter_t *waiters; /* pending: duplicates to answer */
    size_t keylen;
    char key[]; /* "<op>\n<user>\n<rid>" */
} entry_t;

struct idem {
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    entry_t *oldest, *newest;
    size_t count; /* done entries */
    size_t bytes; /* reply bytes of done entries */
    size_t max_entries, max_bytes;
    int64_t ttl_ms;
};

wa_err_t idem__new(size_t max_entries, size_t max_bytes, int64_t ttl_ms,
                   idem_t **out)
{
    idem_t *c;
    size_t n = 16;

    if (max_entries == 0 || ttl_ms <= 0 || out == NULL)
        return WA_EINVAL;
    while (n < max_entries * 2)
        n *= 2;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return WA_ENOMEM;
    if ((c->buckets = calloc(n, sizeof(*c->buckets))) == NULL ||
        pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->buckets);
        free(c);
        return WA_ENOMEM;
    }
    c->nbuckets = n;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    c->ttl_ms = ttl_ms;
    *out = c;
    return WA_OK;
}

static void free_entry(entry_t *e)
{
    waiter_t *w, *next;

    for (w = e->waiters; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    free(e->reply);
    free(e);
}

void idem__free(idem_t *c)
{
    entry_t *e, *next;

    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (e = c->buckets[i]; e != NULL; e = next) {
            next = e->hnext;
            free_entry(e);
        }
    }
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c);
}

/* Longest key: an op number, a user id, a rid and two separators. */
#define KEY_MAX (16 + 1 + WA_USER_MAX + 1 + WA_RID_MAX)

/* Build the key into buf (KEY_MAX + 1 bytes); returns its length. */
static size_t make_key(char *buf, wa_op_t op, const char *user, const char *rid)
{
    size_t n = 0, len;

    /* The op's number, then the user and the rid: neither can hold '\n'
     * (the envelope refuses control characters in both). */
    n += (size_t)snprintf(buf, KEY_MAX + 1, "%d\n", (int)op);
    len = strnlen(user, WA_USER_MAX);
    memcpy(buf + n, user, len);
    n += len;
    buf[n++] = '\n';
    len = strnlen(rid, WA_RID_MAX);
    memcpy(buf + n, rid, len);
    n += len;
    buf[n] = '\0';
    return n;
}

static entry_t **find(idem_t *c, const char *key, size_t keylen, uint64_t h)
{
    entry_t **pp = &c->buckets[h & (c->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->hnext) {
        if ((*pp)->hash == h && (*pp)->keylen == keylen &&
            memcmp((*pp)->key, key, keylen) == 0)
            break;
    }
    return pp;
}

static void list_unlink(idem_t *c, entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->oldest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->newest = e->prev;
    e->prev = e->next = NULL;
}

/* Remove a done entry entirely. */
static void drop(idem_t *c, entry_t *e)
{
    entry_t **pp = find(c, e->key, e->keylen, e->hash);

    *pp = e->hnext;
    list_unlink(c, e);
    c->count--;
    c->bytes -= e->reply_len;
    free_entry(e);
}

/* Expire entries past their TTL, then evict the oldest over the bounds. */
static void trim(idem_t *c, int64_t now_ms)
{
    while (c->oldest != NULL &&
           (now_ms - c->oldest->done_ms >= c->ttl_ms ||
            c->count > c->max_entries || c->bytes > c->max_bytes))
        drop(c, c->oldest);
}

wa_err_t idem__begin(idem_t *c, wa_op_t op, const char *user, const char *rid,
                     uint64_t fp, void *waiter, int64_t now_ms,
                     idem_state_t *state, char **reply)
{
    char key[KEY_MAX + 1];
    size_t keylen = make_key(key, op, user, rid);
    uint64_t h = wa_fnv1a(WA_FNV1A_INIT, key, keylen);
    wa_err_t err = WA_OK;
    entry_t **pp, *e;
    waiter_t *w;

    pthread_mutex_lock(&c->mu);
    trim(c, now_ms);
    pp = find(c, key, keylen, h);
    if ((e = *pp) == NULL) {
        if ((e = calloc(1, sizeof(*e) + keylen + 1)) == NULL) {
            err = WA_ENOMEM;
            goto out;
        }
        e->hash = h;
        e->fp = fp;
        e->keylen = keylen;
        memcpy(e->key, key, keylen + 1);
        *pp = e;
        *state = IDEM_NEW;
    } else if (e->fp != fp) {
        *state = IDEM_MISMATCH;
    } else if (e->done) {
        if ((*reply = malloc(e->reply_len + 1)) == NULL) {
            err = WA_ENOMEM;
            goto out;
        }
        memcpy(*reply, e->reply, e->reply_len + 1);
        *state = IDEM_DONE;
    } else {
        if ((w = malloc(sizeof(*w))) == NULL) {
            err = WA_ENOMEM;
            goto out;
        }
        w->w = waiter;
        w->next = e->waiters;
        e->waiters = w;
        *state = IDEM_PENDING;
    }
out:
    pthread_mutex_unlock(&c->mu);
    return err;
}

void idem__end(idem_t *c, wa_op_t op, const char *user, const char *rid,
               const char *reply, int64_t now_ms, idem_waiter_fn fn, void *arg)
{
    char key[KEY_MAX + 1];
    size_t keylen = make_key(key, op, user, rid);
    uint64_t h = wa_fnv1a(WA_FNV1A_INIT, key, keylen);
    waiter_t *waiters = NULL, *w, *next;
    entry_t **pp, *e;
    size_t len;

    pthread_mutex_lock(&c->mu);
    pp = find(c, key, keylen, h);
    if ((e = *pp) == NULL || e->done) {
        pthread_mutex_unlock(&c->mu); /* not ours: a caller's bug */
        return;
    }
    waiters = e->waiters;
    e->waiters = NULL;
    len = reply != NULL ? strlen(reply) : 0;
    if (reply == NULL || (e->reply = malloc(len + 1)) == NULL) {
        /* Failed (or no memory to remember it): forget the key. */
        *pp = e->hnext;
        free_entry(e);
    } else {
        memcpy(e->reply, reply, len + 1);
        e->reply_len = len;
        e->done = true;
        e->done_ms = now_ms;
        e->prev = c->newest;
        if (c->newest != NULL)
            c->newest->next = e;
        else
            c->oldest = e;
        c->newest = e;
        c->count++;
        c->bytes += len;
        trim(c, now_ms);
    }
    pthread_mutex_unlock(&c->mu);

    /* Answer duplicates outside the lock, oldest first. */
    for (w = waiters, waiters = NULL; w != NULL; w = next) {
        next = w->next;
        w->next = waiters;
        waiters = w;
    }
    for (w = waiters; w != NULL; w = next) {
        next = w->next;
        if (fn != NULL)
            fn(w->w, arg);
        free(w);
    }
}

size_t idem__size(idem_t *c)
{
    size_t n;

    pthread_mutex_lock(&c->mu);
    n = c->count;
    pthread_mutex_unlock(&c->mu);
    return n;
}
